// libFuzzer entry point over KimiCore's parsers (issue #9). Built by
// `scripts/fuzz.sh` with swiftc -sanitize=fuzzer,address straight from
// KimiCore's sources (no package build), one binary for every target; the
// target is chosen with KIMI_FUZZ_TARGET. Each target feeds the bytes to one
// parser as the gateway does and checks what must always hold; a crash, a
// trap or an ASan report is a finding.
#if canImport(Glibc)
import Glibc
#endif

enum FuzzTarget: String {
    case json, contentLength = "content-length", sse, config, dotenv, url, header, multipart, path, chunk
}

let target: FuzzTarget = {
    guard let raw = getenv("KIMI_FUZZ_TARGET"), let t = FuzzTarget(rawValue: String(cString: raw)) else {
        fputs("KIMI_FUZZ_TARGET must be one of json, content-length, sse, config, dotenv, url, header, multipart, path, chunk\n", stderr)
        exit(2)
    }
    return t
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let text = String(decoding: bytes, as: UTF8.self)
    switch target {
    case .json:
        // What parses must serialize and parse back to the same value.
        if let v = try? JSON.parse(bytes) {
            let again = try! JSON.parse(v.serializedBytes())
            precondition(again == v, "JSON round trip changed the value")
        }
    case .chunk:
        // A stream chunk re-spelled at random (whitespace, escaped letters)
        // is the same value, and carries text exactly when its compact form does.
        if let v = try? JSON.parse(bytes) {
            let compact = v.serializedBytes()
            let seed = bytes.prefix(8).reduce(UInt64(size)) { $0 &* 31 &+ UInt64($1) }
            let other = JSONRespelling.respell(compact, style: .random, seed: seed)
            precondition((try? JSON.parse(other)) == v, "a respelling changed the value")
            precondition(ChunkText.carriesText(String(decoding: compact, as: UTF8.self))
                == ChunkText.carriesText(String(decoding: other, as: UTF8.self)), "text found in one spelling only")
        }
    case .contentLength:
        if case let .success(n) = ContentLength.parse(text, cap: 1 << 20) { precondition(n >= 0 && n <= 1 << 20) }
    case .sse:
        // Fed in two pieces at every split the first byte picks: the events
        // must not depend on where the bytes were cut.
        var whole = SSEParser(maxEventBytes: 4096)
        var split = SSEParser(maxEventBytes: 4096)
        let cut = bytes.isEmpty ? 0 : Int(bytes[0]) % (bytes.count + 1)
        let a = try? whole.feed(bytes)
        let b1 = try? split.feed(Array(bytes[..<cut]))
        let b2 = b1 == nil ? nil : try? split.feed(Array(bytes[cut...]))
        if let a, let b1, let b2 { precondition(a == b1 + b2, "SSE events depend on how the bytes were split") }
    case .config:
        if let c = try? GatewayConfig.parse(fileBytes: bytes) { _ = try? c.validated().summary() }
    case .dotenv:
        _ = DotEnv.merged(dotEnv: DotEnv.parse(text), processEnv: ["PATH": "/bin"])
    case .url:
        if let u = URLParts(text) { precondition(u.scheme == "http" || u.scheme == "https") }
    case .multipart:
        // Uploads are parsed as they arrive: the parts and their content
        // must not depend on where the bytes were cut.
        // Parts as (header, content bytes); consecutive data events join.
        func run(_ pieces: [[UInt8]]) -> [[UInt8]]? {
            guard var p = MultipartParser(contentType: "multipart/form-data; boundary=b") else { return nil }
            var out: [[UInt8]] = []
            var inData = false
            for piece in pieces {
                guard let events = try? p.feed(piece) else { return nil }
                for e in events {
                    switch e {
                    case let .begin(part): out.append(Array("begin \(part.name) \(part.filename ?? "-")".utf8)); inData = false
                    case let .data(d): if inData { out[out.count - 1] += d } else { out.append(d); inData = true }
                    case .end: out.append(Array("end".utf8)); inData = false
                    }
                }
            }
            return out
        }
        let cut = bytes.isEmpty ? 0 : Int(bytes[0]) % (bytes.count + 1)
        let whole = run([bytes])
        let split = run([Array(bytes[..<cut]), Array(bytes[cut...])])
        if let whole, let split { precondition(whole == split, "multipart parts depend on how the bytes were split") }
    case .path:
        // One normal form: normalising twice changes nothing, and the result never climbs out of the root.
        let once = RoutePath.normalise(text)
        precondition(RoutePath.normalise(once) == once, "RoutePath.normalise is not idempotent")
        // On bytes: Character comparisons would glue "/" to a following combining mark.
        let b = Array(once.utf8)
        func has(_ needle: String) -> Bool {
            let n = Array(needle.utf8)
            return b.count >= n.count && (0...(b.count - n.count)).contains { Array(b[$0..<$0 + n.count]) == n }
        }
        precondition(b.first == 0x2F && !has("/../") && !b.ends(with: Array("/..".utf8)) && !has("//"), "a path climbed out of the root")
    case .header:
        let p = HeaderSafety.printable(text, max: 64)
        let cut = p.hasSuffix("…") ? String(p.dropLast()) : p // the one non-ASCII mark it adds
        precondition(cut.utf8.count <= 64 && HeaderSafety.isSafe(cut), "printable() left something unsafe")
        let s = Redaction.scrub(text, secrets: ["sk-" + "0123456789abcdefghij" + "KLMNOP"]) // made up, in pieces
        precondition(!s.contains("3456789abcde"), "a piece of the secret survived scrub()")
    }
    return 0
}

extension Array where Element == UInt8 {
    func ends(with suffix: [UInt8]) -> Bool { count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix }
}
