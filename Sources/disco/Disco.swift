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
        subcommands: [Run.self, Demo.self, Bench.self]
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
            let code = exitCode(for: error)
            if code == .success {
                exit(withError: error)  // --help, --version
            }
            let message = self.message(for: error)
                .split(separator: "\n").first.map(String.init) ?? "\(error)"
            fail("\(message) (see disco --help)")
        }
    }
}

/// Exit statuses shared by the subcommands.
enum ExitStatus {
    static let usage: Int32 = 2
}
