import Testing
@testable import KimiCore

@Suite struct SHA256Tests {
    @Test func matchesNISTVectors() throws {
        #expect(SHA256.hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(SHA256.hex(String(repeating: "a", count: 1000)) == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }

    @Test func theIncrementalHasherAgreesWithTheOneShot() throws {
        let message = Array(String(repeating: "abcdefghij", count: 1000).utf8)
        let h = SHA256.Hasher()
        var i = 0
        for size in [1, 7, 64, 1000, 3, 5000] where i < message.count {
            h.update(Array(message[i..<min(message.count, i + size)]))
            i += size
        }
        h.update(Array(message[min(i, message.count)...]))
        #expect(h.finalHex() == SHA256.hexString(SHA256.digest(message)))
    }

    @Test func fingerprintIsShortAndNotTheKey() throws {
        let f = SHA256.fingerprint("sk-secret-value")
        #expect(f.hasPrefix("sha256:") && f.count == 15 && !f.contains("secret"))
    }

    @Test func constantTimeEquals() throws {
        #expect(SHA256.constantTimeEquals([1, 2, 3], [1, 2, 3]))
        #expect(!SHA256.constantTimeEquals([1, 2, 3], [1, 2, 4]))
        #expect(!SHA256.constantTimeEquals([1, 2], [1, 2, 3]))
    }
}
