import Testing
@testable import Protocol

@Suite struct CodecTests {
    @Test(arguments: MessageType.allCases)
    func everyMessageRoundTrips(_ type: MessageType) throws {
        var gen = MessageGenerator(seed: UInt64(type.rawValue) &* 7919)
        for _ in 0..<300 {
            let m = gen.message(of: type)
            #expect(m.type == type)
            let frame = m.frame()
            #expect(frame.count == FrameHeader.size + Int(frame[4]) + Int(frame[5]) << 8 + Int(frame[6]) << 16)
            let back = try Message.decodeFrame(frame)
            #expect(back == m)
        }
    }

    @Test func streamOfFramesInRandomPiecesDecodesInOrder() throws {
        var gen = MessageGenerator(seed: 42)
        let messages = (0..<2000).map { _ in gen.message() }
        var w = WireWriter()
        for m in messages { m.encodeFrame(into: &w) }
        let stream = w.bytes
        var decoder = FrameDecoder()
        var decoded: [Message] = []
        var i = 0
        while i < stream.count {
            let n = min(stream.count - i, Int(gen.rng.next() % 700) + 1)
            decoder.append(Array(stream[i..<i + n]))
            i += n
            while let m = try decoder.next() { decoded.append(m) }
        }
        #expect(decoded == messages)
        #expect(decoder.bufferedBytes == 0)
    }

    @Test(arguments: MessageType.allCases)
    func everyTruncationIsATypedError(_ type: MessageType) throws {
        var gen = MessageGenerator(seed: 99 &+ UInt64(type.rawValue))
        let frame = gen.message(of: type).frame()
        for cut in 0..<frame.count {
            #expect(throws: WireError.self) { try Message.decodeFrame(Array(frame[0..<cut])) }
            // A streaming decoder just waits for the rest.
            var d = FrameDecoder()
            d.append(Array(frame[0..<cut]))
            #expect(try d.next() == nil)
        }
        // A payload that claims to be shorter than its fields is truncated, not misread.
        if frame.count > FrameHeader.size {
            var short = Array(frame[0..<frame.count - 1])
            short[4] = short[4] &- 1
            if short[4] == 0xFF { short[5] = short[5] &- 1 }
            #expect(throws: WireError.self) { try Message.decodeFrame(short) }
        }
    }

    @Test func badHeadersAreRejectedBeforeThePayload() throws {
        let good = Message.heartbeat(sequence: 1, sentAtNanos: 2).frame()
        var badMagic = good
        badMagic[0] = 0
        #expect(throws: WireError.badMagic(0xD100)) { try Message.decodeFrame(badMagic) }
        var badVersion = good
        badVersion[2] = 9
        #expect(throws: WireError.unsupportedVersion(9)) { try Message.decodeFrame(badVersion) }
        var badType = good
        badType[3] = 0xEE
        #expect(throws: WireError.unknownType(0xEE)) { try Message.decodeFrame(badType) }

        // An oversized frame fails on its header alone: no payload byte has arrived.
        var header = Array(good[0..<FrameHeader.size])
        header[4] = 0xFF; header[5] = 0xFF; header[6] = 0xFF; header[7] = 0x7F
        var d = FrameDecoder(payloadLimit: 1 << 16)
        d.append(header)
        #expect(throws: WireError.oversized(length: 0x7FFF_FFFF, limit: 1 << 16)) { try d.next() }
        // ... and stays failed.
        d.append(good)
        #expect(throws: WireError.self) { try d.next() }
    }

    @Test func lyingCountsDoNotAllocate() throws {
        // A TLB shootdown claiming 2^32-1 pages in a 20-byte payload.
        var w = WireWriter()
        w.put(FrameHeader.magic); w.put(FrameHeader.version); w.put(MessageType.tlbShootdown.rawValue)
        w.put(UInt32(16)); w.put(UInt64(1)); w.put(UInt32(0)); w.put(UInt32.max)
        #expect(throws: WireError.truncated(field: "pages")) { try Message.decodeFrame(w.bytes) }
        // A byte string claiming 4 GiB.
        var b = WireWriter()
        b.put(FrameHeader.magic); b.put(FrameHeader.version); b.put(MessageType.console.rawValue)
        b.put(UInt32(8)); b.put(UInt32(3)); b.put(UInt32.max)
        #expect(throws: WireError.truncated(field: "bytes")) { try Message.decodeFrame(b.bytes) }
    }

    @Test func invalidFieldValuesAreTypedErrors() throws {
        var m = Message.mmioRequest(MMIORequest(id: 1, vm: 0, vcpu: 0, address: 0x1000_0000, size: 4, isWrite: true, value: 7)).frame()
        m[FrameHeader.size + 24] = 3  // size must be 1, 2, 4 or 8
        #expect(throws: WireError.invalidValue(field: "size")) { try Message.decodeFrame(m) }
        var b = Message.recall(line: 0x80, keepShared: true).frame()
        b[b.count - 1] = 2  // a Bool is 0 or 1
        #expect(throws: WireError.invalidValue(field: "keepShared")) { try Message.decodeFrame(b) }
        var s = Message.leave(reason: "ab").frame()
        s[s.count - 1] = 0xFF  // not UTF-8
        #expect(throws: WireError.invalidValue(field: "reason")) { try Message.decodeFrame(s) }
        var t = Message.putAck(line: 1).frame() + [0]
        t[4] += 1
        #expect(throws: WireError.trailingBytes(1)) { try Message.decodeFrame(t) }
    }
}
