import ArgumentParser
import Foundation

@main
struct Disco: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "disco",
        abstract: "The Disco virtual machine monitor, re-created as a distributed emulation.",
        discussion: """
            Disco runs unmodified RISC-V (RV64) software built for QEMU's `virt` board —
            Debian's OpenSBI and U-Boot, kernels, the project's own guests — in virtual
            machines on an emulated ccNUMA machine.
            """,
        subcommands: [Run.self, Demo.self, Up.self, CoordinatorCommand.self, NodeCommand.self, VMCommand.self,
                      NodesCommand.self, StatsCommand.self, ConsoleCommand.self, Top.self, Bench.self, ExperimentCommand.self, SpecCheck.self, DiskCommand.self]
    )

    /// Like ArgumentParser's main, except that a bad command line is one line on
    /// stderr and exit status 2 (help and version still print as usual).
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let code as ExitCode {
            Foundation.exit(code.rawValue)
        } catch {
            if exitCode(for: error) == .success {
                exit(withError: error)  // --help, --version
            }
            let message = self.message(for: error)
                .split(separator: "\n").first.map(String.init) ?? "\(error)"
            fail("\(message) (see disco --help)")
        }
    }
}

/// Prints one line on stderr and exits with status 2.
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("disco: error: \(message)\n".utf8))
    Foundation.exit(2)
}
