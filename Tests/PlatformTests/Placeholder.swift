import Testing
@Test func PlatformTestsBuilds() { #expect(Bool(true)) }
