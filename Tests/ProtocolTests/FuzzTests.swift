import TestSupport
import Testing
@testable import Protocol

/// A bounded random fuzz of the decoder in the test suite: random bytes, and valid
/// frames mutated by bit flips, byte overwrites, insertions, deletions and length
/// edits. Every input must decode or fail with a WireError, never trap; whatever
/// decodes must re-encode to a frame that decodes to the same message.
@Suite struct FuzzTests {
    func check(_ input: [UInt8]) {
        do {
            let m = try Message.decodeFrame(input)
            #expect((try? Message.decodeFrame(m.frame())) == m)
        } catch {
            // A typed WireError is the only failure mode (typed throws guarantee it).
        }
        var d = FrameDecoder(payloadLimit: 1 << 16)
        d.append(input)
        while true {
            do { guard try d.next() != nil else { break } } catch { break }
        }
    }

    @Test func randomBytes() {
        var rng = SeededGenerator(seed: 0xF00D)
        for _ in 0..<20_000 {
            let n = Int(rng.next() % 64)
            var input = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            // Half the inputs get a valid magic and version so the payload decoders run.
            if rng.next() & 1 == 0 && n >= 8 {
                input[0] = 0x5C; input[1] = 0xD1; input[2] = 1
                input[3] = MessageType.allCases.randomElement(using: &rng)!.rawValue
                let len = UInt32(n - 8)
                input[4] = UInt8(len & 0xFF); input[5] = 0; input[6] = 0; input[7] = 0
            }
            check(input)
        }
    }

    @Test func mutatedFrames() {
        var gen = MessageGenerator(seed: 0xBEEF)
        for _ in 0..<20_000 {
            var frame = gen.message().frame()
            let mutations = 1 + Int(gen.rng.next() % 4)
            for _ in 0..<mutations where !frame.isEmpty {
                let at = Int(gen.rng.next() % UInt64(frame.count))
                switch gen.rng.next() % 5 {
                case 0: frame[at] ^= UInt8(1 << (gen.rng.next() % 8))
                case 1: frame[at] = UInt8.random(in: 0...255, using: &gen.rng)
                case 2: frame.insert(UInt8.random(in: 0...255, using: &gen.rng), at: at)
                case 3: frame.remove(at: at)
                default:
                    if frame.count >= 8 { frame[4 + Int(gen.rng.next() % 4)] = UInt8.random(in: 0...255, using: &gen.rng) }
                }
            }
            check(frame)
        }
    }
}
