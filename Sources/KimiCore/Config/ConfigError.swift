/// A config problem, naming the key and what is wrong with it.
public struct ConfigError: Error, Equatable, CustomStringConvertible, Sendable {
    public let key: String
    public let problem: String
    public init(_ key: String, _ problem: String) { self.key = key; self.problem = problem }
    public var description: String { key.isEmpty ? problem : "\(key): \(problem)" }
}
