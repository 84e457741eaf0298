import Testing
@Test func ProtocolTestsBuilds() { #expect(Bool(true)) }
