import ArgumentParser

@main
struct Disco: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "disco",
        abstract: "The Disco virtual machine monitor, re-created as a distributed emulation."
    )
}
