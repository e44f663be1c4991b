import Testing
@testable import Upstream

@Suite struct UpstreamHeaderTests {
    @Test func keptHeadersAreFoundByNameInAnyCaseAndOthersAreNot() {
        func index(_ name: String) -> Int? {
            let bytes = Array(name.utf8)
            return bytes.withUnsafeBufferPointer { UpstreamClient.keptIndex($0.baseAddress!, $0.count) }
        }
        #expect(index("Retry-After").map { UpstreamClient.keptNames[$0] } == "retry-after")
        #expect(index("CONTENT-TYPE").map { UpstreamClient.keptNames[$0] } == "content-type")
        #expect(index("x-request-id").map { UpstreamClient.keptNames[$0] } == "x-request-id")
        #expect(index("Content-Length").map { UpstreamClient.keptNames[$0] } == "content-length")
        for other in ["Retry-Afte", "Retry-After2", "Set-Cookie", "Server", "content_type", "Content-Typf"] {
            #expect(index(other) == nil, "\(other)")
        }
    }
}
