/// The upstream file ids a chat request refers to: Kimi's way to use an
/// uploaded image or video in a message is a content part whose URL is
/// `ms://<file_id>` (`image_url.url`, `video_url.url`). One Kimi account
/// holds every client's files, so the gateway checks each id against its
/// owner before anything goes upstream, as it does on `/v1/files/{id}`
/// (another key's id went upstream in a chat before: OWASP API1).
///
/// Read from every content part of every message, whatever its type (a
/// part type Kimi adds later is checked too; a text part's text is text),
/// and from the URL as a string
/// or an object's `url`; the scheme in any letter case, with whitespace
/// around it trimmed, since the upstream's parser may be that lenient.
public enum FileReferences {
    public static func ids(in body: JSON) -> [String] {
        var out: [String] = []
        for m in body["messages"]?.arrayValue ?? [] {
            for part in m["content"]?.arrayValue ?? [] {
                for (name, value) in part.objectValue ?? [] where name != "text" && name != "type" {
                    if let id = id(value) ?? id(value["url"]) { out.append(id) }
                }
            }
        }
        return out
    }

    /// The id of an `ms://` URL, nil for anything else.
    static func id(_ v: JSON?) -> String? {
        guard let s = v?.stringValue else { return nil }
        let t = s.trimmingSpaces()
        guard t.utf8.count > 5, t.prefix(5).lowercased() == "ms://" else { return nil }
        return String(t.dropFirst(5)).trimmingSpaces()
    }
}
