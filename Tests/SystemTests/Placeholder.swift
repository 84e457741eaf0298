import Testing
@Test func SystemTestsBuilds() { #expect(Bool(true)) }
