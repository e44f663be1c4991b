/// The gateway's version, in `/health`, `/api/info` and `--version`.
public enum Version {
    public static let current = "0.1.0"
}
