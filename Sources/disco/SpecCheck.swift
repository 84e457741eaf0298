import ArgumentParser
import Cluster
import Node

/// `disco check-spec FILE`: parses and validates a VM spec file without booting it.
struct SpecCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-spec",
        abstract: "Check a VM spec file (YAML) and print what it describes.",
        discussion: """
            Keys: name, vcpus, memory (e.g. 256M), bios (a path or 'none'), kernel,
            disks (paths or {path:, readonly:, slot:, format:}), bootargs, console-log. Relative paths
            are taken from the spec file's directory. Exit status 2 on any problem.
            """
    )

    @Argument(help: ArgumentHelp("The spec file.", valueName: "file"))
    var file: String

    func run() throws {
        do {
            let spec = try VMSpec.load(file: file)
            try spec.validate()
            print("""
                name: \(spec.name)
                vcpus: \(spec.vcpus)
                memory: \(MemorySize.format(spec.memoryBytes))
                bios: \(spec.firmware.map { if case .file(let p) = $0 { p } else { "none" } } ?? "none")
                kernel: \(spec.kernel ?? "-")
                disks: \(spec.disks.map { d in
                    d.path + (d.slot.map { " (slot \($0))" } ?? "") + (d.format.map { " (\($0))" } ?? "")
                        + (d.readOnly ? " (read-only)" : "")
                }.joined(separator: ", "))
                """)
        } catch let error as SpecError {
            fail(error.description)
        }
    }
}
