import Testing
@Test func RISCVTestsBuilds() { #expect(Bool(true)) }
