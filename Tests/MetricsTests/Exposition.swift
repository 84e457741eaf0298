import Foundation

/// Prometheus text exposition read back into series → value (`name{a="1",b="2"}` as
/// written) and metric name → TYPE, for the tests to look figures up.
struct Exposition {
    var values: [String: Double] = [:]
    var types: [String: String] = [:]

    init(_ bytes: [UInt8]) { self.init(String(decoding: bytes, as: UTF8.self)) }

    init(_ text: String) {
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                if parts.count == 4 { types[String(parts[2])] = String(parts[3]) }
                continue
            }
            guard !line.hasPrefix("#"), let space = line.lastIndex(of: " "),
                  let value = Double(line[line.index(after: space)...]) else { continue }
            values[String(line[..<space])] = value
        }
    }

    subscript(_ series: String) -> Double? { values[series] }

    /// Series of one metric (every label set).
    func series(of name: String) -> [String: Double] {
        values.filter { $0.key == name || $0.key.hasPrefix(name + "{") }
    }
}
