import Foundation
import Testing
@testable import Transport

@Suite struct MailboxTests {
    @Test func deliversEverythingInOrderAcrossThreads() {
        let box = Mailbox<Int>()
        let producer = Thread {
            for i in 0..<10_000 { box.post(i) }
        }
        producer.start()
        var got: [Int] = []
        let deadline = Date().addingTimeInterval(10)
        while got.count < 10_000 && Date() < deadline {
            got += box.wait(until: Date().addingTimeInterval(1))
        }
        #expect(got == Array(0..<10_000))
    }

    @Test func waitReturnsEmptyAtTheDeadlineOrOnWake() {
        let box = Mailbox<String>()
        let start = Date()
        #expect(box.wait(until: start.addingTimeInterval(0.05)).isEmpty)
        #expect(Date().timeIntervalSince(start) >= 0.05)
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.05) { box.wake() }
        let woke = Date()
        #expect(box.wait(until: woke.addingTimeInterval(10)).isEmpty)
        #expect(Date().timeIntervalSince(woke) < 5)
        box.post("a")
        #expect(box.takeAll() == ["a"])
        #expect(box.takeAll().isEmpty)
    }

    @Test func aStopRequestWakesTheConsumerAndKeepsTheFirstReason() {
        let box = Mailbox<Int>()
        #expect(box.stopRequested == nil)
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.05) {
            box.requestStop("signal")
            box.requestStop("later")
        }
        let start = Date()
        #expect(box.wait(until: start.addingTimeInterval(10)).isEmpty)
        #expect(Date().timeIntervalSince(start) < 5)
        #expect(box.stopRequested == "signal")
    }
}
