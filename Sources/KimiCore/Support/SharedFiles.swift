#if canImport(Glibc)
import Glibc
#endif

/// Where the files shared by a machine's gateway processes live, and whether
/// one found there can be trusted.
public enum SharedFiles {
    /// The default directory for shared tables: `/run/kimi-gateway` (the
    /// systemd unit's RuntimeDirectory) when it is ours or we may create it;
    /// else `$XDG_RUNTIME_DIR/kimi-gateway`; else a private
    /// `/tmp/kimi-gateway-<uid>`. Never a bare file in world-writable `/tmp`.
    public static func defaultDirectory(env: [String: String]) -> String {
        var st = stat()
        if stat("/run/kimi-gateway", &st) == 0 {
            if st.st_uid == geteuid() { return "/run/kimi-gateway" }
        } else if access("/run", W_OK) == 0 {
            return "/run/kimi-gateway"
        }
        if let x = env["XDG_RUNTIME_DIR"], x.hasPrefix("/") { return x + "/kimi-gateway" }
        return "/tmp/kimi-gateway-\(geteuid())"
    }

    /// Where data that must outlive a reboot lives (the database of file
    /// owners): `/var/lib/kimi-gateway` (the systemd unit's StateDirectory)
    /// when it is ours or root may create it; else
    /// `$XDG_STATE_HOME/kimi-gateway`, else `~/.local/state/kimi-gateway`.
    /// `/run` is a tmpfs, wiped at boot: not there.
    public static func stateDirectory(env: [String: String]) -> String {
        var st = stat()
        if stat("/var/lib/kimi-gateway", &st) == 0 {
            if st.st_uid == geteuid() { return "/var/lib/kimi-gateway" }
        } else if geteuid() == 0 {
            return "/var/lib/kimi-gateway"
        }
        if let x = env["XDG_STATE_HOME"], x.hasPrefix("/") { return x + "/kimi-gateway" }
        if let home = env["HOME"], home.hasPrefix("/") { return home + "/.local/state/kimi-gateway" }
        return "/tmp/kimi-gateway-\(geteuid())"
    }

    /// A directory only this user can enter, for a table whose configured
    /// file was refused: `/tmp/kimi-gateway-<uid>`, created 0700, checked.
    public static func privateDirectory() -> String? {
        let dir = "/tmp/kimi-gateway-\(geteuid())"
        if mkdir(dir, 0o700) != 0, errno != EEXIST { return nil }
        var st = stat()
        guard lstat(dir, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR, st.st_uid == geteuid(), st.st_mode & 0o077 == 0 else {
            return nil
        }
        return dir
    }

    /// Why a file found at a shared path must not be used, or nil when it
    /// may: it must be a regular file of this user, writable by nobody else.
    public static func untrusted(_ st: stat) -> String? {
        if (st.st_mode & S_IFMT) != S_IFREG { return "not a regular file" }
        if st.st_uid != geteuid() { return "owned by uid \(st.st_uid), not by this process's uid \(geteuid())" }
        if st.st_mode & 0o022 != 0 { return "writable by group or others (mode \(String(st.st_mode & 0o777, radix: 8)))" }
        return nil
    }

    /// Creates the parent directory and any missing ancestors (0700 each).
    public static func ensureParent(of path: String) -> Bool {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return true }
        let dir = String(path[..<slash])
        if dir.isEmpty { return true }
        var st = stat()
        if stat(dir, &st) == 0 { return true }
        guard ensureParent(of: dir) else { return false }
        return mkdir(dir, 0o700) == 0 || errno == EEXIST
    }

    public static func directory(of path: String) -> String {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return "." }
        return String(path[..<slash])
    }

    public static func basename(_ path: String) -> String {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return path }
        return String(path[path.utf8.index(after: slash)...])
    }
}
