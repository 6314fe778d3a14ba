//! Column groups and derived attributes that several tables share:
//! the reporting device, the acting (initiating) process, and the fix-ups
//! that keep OCSF objects valid (guide §0.2–§0.5).

use super::conv::put_in;
use super::event::Event;
use super::field::{Conv, Conv::*, Field, f};
use super::ocsf;
use super::value::{Cell, Obj, V, key_of, split_last};
use crate::bytes::put;
use serde_json::Value;
use std::borrow::Cow;

/// The device that reported the row (guide §0.2).
pub const DEVICE: &[Field] = &[
    f("DeviceId", "device.uid", Str),
    f("DeviceName", "device.hostname", Str),
    f("MachineGroup", "device.groups", NamedItem),
];

/// `InitiatingProcess*`: the process that performed the action, always
/// `actor.process` (guide §0.3). Its account is the actor's user.
pub const INITIATING_PROCESS: &[Field] = &[
    f("InitiatingProcessId", "actor.process.pid", Int),
    f("InitiatingProcessUniqueId", "actor.process.uid", Str),
    f("InitiatingProcessFileName", "actor.process.file.name", Str),
    f("InitiatingProcessFolderPath", "actor.process.file.path", Str),
    f("InitiatingProcessCommandLine", "actor.process.cmd_line", Str),
    f("InitiatingProcessCreationTime", "actor.process.created_time", Time),
    f("InitiatingProcessMD5", "actor.process.file.hashes", Hash(1)),
    f("InitiatingProcessSHA1", "actor.process.file.hashes", Hash(2)),
    f("InitiatingProcessSHA256", "actor.process.file.hashes", Hash(3)),
    f("InitiatingProcessFileSize", "actor.process.file.size", Int),
    f("InitiatingProcessVersionInfoCompanyName", "actor.process.file.company_name", Str),
    f("InitiatingProcessVersionInfoProductName", "actor.process.file.product.name", Str),
    f(
        "InitiatingProcessVersionInfoProductVersion",
        "actor.process.file.product.version",
        Str,
    ),
    f("InitiatingProcessVersionInfoFileDescription", "actor.process.file.desc", Str),
    f(
        "InitiatingProcessVersionInfoOriginalFileName",
        "actor.process.file.internal_name",
        Str,
    ),
    f("InitiatingProcessIntegrityLevel", "actor.process.integrity", Integrity),
    f("InitiatingProcessAccountName", "actor.process.user.name", Str),
    f("InitiatingProcessAccountDomain", "actor.process.user.domain", Str),
    f("InitiatingProcessAccountSid", "actor.process.user.uid", Str),
    f("InitiatingProcessAccountObjectId", "actor.process.user.uid_alt", Str),
    f("InitiatingProcessAccountUpn", "actor.process.user.email_addr", Email),
    f("InitiatingProcessLogonId", "actor.session.uid", Str),
    f("IsInitiatingProcessRemoteSession", "actor.session.is_remote", Bool),
    f("InitiatingProcessParentId", "actor.process.parent_process.pid", Int),
    f("InitiatingProcessParentFileName", "actor.process.parent_process.name", Str),
    f(
        "InitiatingProcessParentCreationTime",
        "actor.process.parent_process.created_time",
        Time,
    ),
];

/// `device.name`/`domain` from the FQDN, and the required `type_id`.
pub fn finish_device(e: &mut Event) {
    match e.get_mut("device") {
        // Completed in place: the path is walked once.
        Some(V::Obj(device)) => {
            split_hostname(device);
            // A device is one by what names it (its groups alone do not):
            // without that it is kept under `unmapped`.
            if !ocsf::DEVICE_IDENTITY.iter().any(|k| device.contains_key(k)) {
                return move_to_unmapped(e, "device");
            }
            put_default(device, "type_id", 0);
            put_default(device, "type", "Unknown");
        }
        Some(_) => {
            e.set_default("device.type_id", 0);
            e.set_default("device.type", "Unknown");
        }
        None => {}
    }
}

/// Sets `key` of `o` unless it is set ([`Event::set_default`] in place).
fn put_default<'a>(o: &mut Obj<'a>, key: &'static str, value: impl Into<V<'a>>) {
    if !o.contains_key(key) {
        o.insert(key, value.into());
    }
}

/// A device's `name` and `domain` from its `hostname` (`ws-1.corp.example`:
/// `ws-1` and `corp.example`; all of it is the name when it has no dot). A
/// hostname literal without escapes (nearly every one) gives them as slices
/// of itself ([`V::Quoted`]), not copies.
fn split_hostname<'a>(device: &mut Obj<'a>) {
    /// The name and the domain of a hostname: all of it is the name unless
    /// a dot parts it into two.
    fn parts(host: &str) -> (&str, Option<&str>) {
        match host.split_once('.') {
            Some((name, domain)) if !name.is_empty() && !domain.is_empty() => (name, Some(domain)),
            _ => (host, None),
        }
    }
    let (name, domain): (V<'a>, Option<V<'a>>) = match device.get("hostname") {
        Some(&V::Cell(raw)) if raw.len() >= 2 && raw.starts_with('"') && !raw.contains('\\') => {
            let (name, domain) = parts(&raw[1..raw.len() - 1]);
            (V::Quoted(name), domain.map(V::Quoted))
        }
        Some(other) => {
            let Some(host) = other.as_str() else {
                return;
            };
            let (name, domain) = parts(&host);
            (V::from(name.to_string()), domain.map(|d| V::from(d.to_string())))
        }
        None => return,
    };
    device.insert("name", name);
    if let Some(domain) = domain {
        device.insert("domain", domain);
    }
}

/// Completes the file object at `path`: joins a folder-only path with the
/// name (guide §0.5), fills `parent_folder`, `name` from the path when only
/// the path is known, and the required `type_id` (1 Regular File).
pub fn finish_file(e: &mut Event, path: &str) {
    let Some((holder, leaf)) = e.holder_mut(path) else {
        return;
    };
    let mut moved = Moved::new();
    finish_file_in(holder, leaf, ["", "product"], &mut moved);
    moved.apply(e, path);
}

/// Parts of an object that its finish step took out, in the order taken,
/// each to go under `unmapped` at its path below the object's
/// ([`Moved::apply`]). The step completes the object in place, walking its
/// path once; what it takes out (rarely anything) moves after.
struct Moved<'a>(Vec<(&'static str, V<'a>)>);

impl<'a> Moved<'a> {
    fn new() -> Self {
        Moved(Vec::new())
    }

    /// Takes the member `key` of `o`, if set, to move it as `below`.
    fn take(&mut self, o: &mut Obj<'a>, key: &str, below: &'static str) {
        if let Some(v) = o.remove(key) {
            self.0.push((below, v));
        }
    }

    /// Moves each part taken to `unmapped.<path>.<below>` (`below` empty:
    /// `unmapped.<path>`), in the order taken, as [`move_to_unmapped`]
    /// would have moved it there.
    fn apply(self, e: &mut Event<'a, '_>, path: &str) {
        for (below, v) in self.0 {
            match below {
                "" => merge(e, &format!("unmapped.{path}"), v),
                below => merge(e, &format!("unmapped.{path}.{below}"), v),
            }
        }
    }
}

/// [`finish_file`] on the member `key` of `holder`; `below` names, under
/// the object whose parts [`Moved`] holds, the file and its product.
fn finish_file_in<'a>(holder: &mut Obj<'a>, key: &str, below: [&'static str; 2], moved: &mut Moved<'a>) {
    match holder.get_mut(key) {
        None => return,
        Some(V::Obj(file)) => {
            complete_file_names(file);
            if !absent_or_has_any(file.get("product"), &["name", "uid"]) {
                moved.take(file, "product", below[1]);
            }
            if file.get("name").is_some() {
                file.insert("type_id", V::from(1));
                file.insert("type", V::from("Regular File"));
                return;
            }
        }
        // Not an object: nothing in it to complete, and no `name`.
        Some(_) => {}
    }
    moved.take(holder, key, below[0]);
}

/// A file's `path` ends with its `name` (joined when it does not), and
/// gives its `parent_folder`, and its `name` when it has none.
fn complete_file_names(file: &mut Obj) {
    if complete_from_literals(file) {
        return;
    }
    let name = file.get("name").and_then(V::as_str).map(Cow::into_owned);
    let Some(full) = file.get("path").and_then(V::as_str).map(Cow::into_owned) else {
        return;
    };
    let sep = if full.contains('\\') { '\\' } else { '/' };
    let full = match &name {
        Some(n) if !ends_with_ignoring_case(&full, n) => {
            let joined = format!("{}{sep}{n}", full.trim_end_matches(sep));
            file.insert("path", V::from(joined.clone()));
            joined
        }
        _ => full,
    };
    if let Some(i) = full.rfind(sep) {
        if i > 0 {
            file.insert("parent_folder", V::from(full[..i].to_string()));
        }
        if name.is_none() && i + 1 < full.len() {
            file.insert("name", V::from(full[i + 1..].to_string()));
        }
    }
}

/// [`complete_file_names`] for the common case, without decoding or
/// copying: `path` and `name` are the answer's string literals, in ASCII,
/// the path's only escapes are `\\` (a Windows path), the name has none,
/// and the path ends with the name. Then the path's last separator is a
/// separator of its literal, and `parent_folder` (and `name`, when there is
/// none) are slices of that literal, escapes kept ([`V::Quoted`]), written
/// as serde_json would write their text. Returns whether the file was
/// completed; otherwise nothing changed.
fn complete_from_literals<'a>(file: &mut Obj<'a>) -> bool {
    /// The inside of an ASCII string literal as it came (`None` when
    /// absent), or `None` for any other value.
    fn literal<'a>(v: Option<&V<'a>>) -> Option<Option<&'a str>> {
        match v {
            None => Some(None),
            Some(&V::Cell(raw)) => raw.strip_prefix('"')?.strip_suffix('"').filter(|t| t.is_ascii()).map(Some),
            Some(_) => None,
        }
    }
    let (Some(Some(path)), Some(name)) = (literal(file.get("path")), literal(file.get("name"))) else {
        return false;
    };
    // Every backslash of the literal is half of a `\\` pair.
    let mut bytes = path.bytes();
    while let Some(b) = bytes.next() {
        if b == b'\\' && bytes.next() != Some(b'\\') {
            return false;
        }
    }
    // A name without backslashes at the path's end is one in its text too:
    // the bytes there are all plain characters.
    if let Some(n) = name
        && (n.contains('\\') || !ends_with_ignoring_case(path, n))
    {
        return false;
    }
    // Pairs run from the start of a run of backslashes, so the last two
    // backslashes of the literal are its last pair.
    let (at, width) = match path.as_bytes().windows(2).rposition(|pair| pair == b"\\\\") {
        Some(i) => (Some(i), 2),
        None => (path.bytes().rposition(|b| b == b'/'), 1),
    };
    if let Some(i) = at {
        if i > 0 {
            file.insert("parent_folder", V::Quoted(&path[..i]));
        }
        if name.is_none() && i + width < path.len() {
            file.insert("name", V::Quoted(&path[i + width..]));
        }
    }
    true
}

/// Whether `text` ends with `suffix`, compared lower-cased (Unicode's rules;
/// ASCII text, nearly every path, without copying it).
fn ends_with_ignoring_case(text: &str, suffix: &str) -> bool {
    if text.is_ascii() && suffix.is_ascii() {
        return text.len() >= suffix.len() && text.as_bytes()[text.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes());
    }
    text.to_lowercase().ends_with(&suffix.to_lowercase())
}

/// Completes the process object at `path`: `name` and `path` from its file,
/// and a valid `user`. A process that has no pid or uid cannot be an OCSF
/// process; what is known of it moves to `unmapped`.
pub fn finish_process(e: &mut Event, path: &str) {
    let Some((holder, leaf)) = e.holder_mut(path) else {
        return;
    };
    let mut moved = Moved::new();
    finish_process_in(holder, leaf, &A_PROCESS, &mut moved);
    moved.apply(e, path);
}

/// Where the parts of a process go under `unmapped`, below the path
/// [`Moved::apply`] is given: the process itself, its file, the file's
/// product, its user and its parent.
struct ProcessParts {
    itself: &'static str,
    file: &'static str,
    product: &'static str,
    user: &'static str,
    parent: &'static str,
}

/// A process's parts, below its own path.
const A_PROCESS: ProcessParts = ProcessParts {
    itself: "",
    file: "file",
    product: "file.product",
    user: "user",
    parent: "parent_process",
};

/// The actor's process's parts, below the actor's path.
const ACTORS_PROCESS: ProcessParts = ProcessParts {
    itself: "process",
    file: "process.file",
    product: "process.file.product",
    user: "process.user",
    parent: "process.parent_process",
};

/// [`finish_process`] on the member `key` of `holder`.
fn finish_process_in<'a>(holder: &mut Obj<'a>, key: &str, parts: &ProcessParts, moved: &mut Moved<'a>) {
    let process_ok = match holder.get_mut(key) {
        None => return,
        Some(V::Obj(process)) => {
            finish_file_in(process, "file", [parts.file, parts.product], moved);
            // The process's name and path are its file's.
            let file = match process.get("file") {
                Some(V::Obj(file)) => [file.get("name").cloned(), file.get("path").cloned()],
                _ => [None, None],
            };
            for (key, value) in ["name", "path"].into_iter().zip(file) {
                if let Some(value) = value {
                    process.insert(key, value);
                }
            }
            let needs = ocsf::identity("process");
            let user_ok = absent_or_has_any(process.get("user"), ocsf::identity("user"));
            let parent = process.get("parent_process");
            let (parent_unknown, parent_ok) = (is_unknown_process(parent), absent_or_has_any(parent, needs));
            let process_ok = needs.iter().any(|k| process.contains_key(k));
            if !user_ok {
                moved.take(process, "user", parts.user);
            }
            if parent_unknown {
                process.remove("parent_process");
            } else if !parent_ok {
                moved.take(process, "parent_process", parts.parent);
            }
            process_ok
        }
        // Not an object: nothing in it to complete.
        Some(_) => false,
    };
    if !process_ok {
        moved.take(holder, key, parts.itself);
    }
}

/// The acting process (guide §0.3): completes `actor.process`, drops it when
/// all that is known is pid 0 ("no initiating process"), and copies its user
/// to `actor.user`. An actor that is not an object has none of these.
pub fn finish_actor(e: &mut Event) {
    let Some(V::Obj(actor)) = e.get_mut("actor") else {
        return;
    };
    // InitiatingProcessAccount* is the actor's user even when the process
    // itself is unknown, so copy it before the process may move away.
    if actor.get("user").is_none()
        && let Some(user) = actor.at("process.user").cloned()
    {
        actor.insert("user", user);
    }
    let mut moved = Moved::new();
    drop_unknown_process_in(actor, "process");
    finish_process_in(actor, "process", &ACTORS_PROCESS, &mut moved);
    drop_unknown_process_in(actor, "process");
    if !absent_or_has_any(actor.get("user"), &["name", "uid", "account"]) {
        moved.take(actor, "user", "user");
    }
    moved.apply(e, "actor");
}

/// Removes the process that is the member `key` of `holder` when all it
/// says is pid 0, Defender's "no such process".
fn drop_unknown_process_in(holder: &mut Obj, key: &str) {
    if is_unknown_process(holder.get(key)) {
        holder.remove(key);
    }
}

/// Whether `v` is a process of which all that is known is pid 0.
fn is_unknown_process(v: Option<&V>) -> bool {
    matches!(v, Some(V::Obj(p)) if p.len() == 1 && p.get("pid").and_then(V::as_i64) == Some(0))
}

/// Moves the object at `path` to `unmapped.<path>` unless it has one of
/// `keys`, which its OCSF object type requires.
pub fn require_any(e: &mut Event, path: &str, keys: &[&str]) {
    if !absent_or_has_any(e.get(path), keys) {
        move_to_unmapped(e, path);
    }
}

/// Whether `v` is an object with one of `keys`.
pub fn has_any(v: Option<&V>, keys: &[&str]) -> bool {
    matches!(v, Some(V::Obj(o)) if keys.iter().any(|k| o.contains_key(k)))
}

/// Whether `v`, where an OCSF object that needs one of `keys` belongs, is
/// absent or such an object.
fn absent_or_has_any(v: Option<&V>, keys: &[&str]) -> bool {
    v.is_none() || has_any(v, keys)
}

/// Removes the attribute at `path` and keeps it under `unmapped.<path>`.
pub fn move_to_unmapped(e: &mut Event, path: &str) {
    if let Some(v) = e.remove(path) {
        merge(e, &format!("unmapped.{path}"), v);
    }
}

/// Sets `path` to `value`, merging objects into what is already there, so
/// that two moves to the same place keep both.
pub fn merge<'a>(e: &mut Event<'a, '_>, path: &str, value: V<'a>) {
    fn deep<'a>(into: &mut V<'a>, value: V<'a>) {
        match (into, value) {
            (V::Obj(a), V::Obj(b)) => {
                for (k, v) in b.0 {
                    match a.get_mut(&k) {
                        Some(existing) => deep(existing, v),
                        None => a.insert(k, v),
                    }
                }
            }
            (slot, v) => *slot = v,
        }
    }
    match e.get_mut(path) {
        Some(existing) => deep(existing, value),
        None => e.set_owned(path, value),
    }
}

/// A `malware` entry named `name` (classification 0, Unknown).
pub fn malware(name: V<'_>) -> V<'_> {
    V::Obj(super::value::Obj(vec![
        ("name".into(), name),
        ("classification_ids".into(), V::Arr(vec![V::Int(0)])),
    ]))
}

/// True when the file path is a Windows one: it names a drive (`:\`) or
/// starts with a share (`\\`).
pub fn is_windows_path(path: &str) -> bool {
    path.contains(":\\") || path.starts_with("\\\\")
}

/// [`is_windows_path`] of the string `v`. A cell is read as its JSON text,
/// without unescaping it: a Windows path's backslashes are escapes, so
/// unescaping would copy it. In that text a backslash is written `\\`, so
/// a drive's `:\` is `:\\` and a share's leading `\\` is `\\\\`. A
/// backslash may also be written `\u005c`, which only unescaping reads, so
/// a cell that holds a `\u` is unescaped first.
pub fn is_windows_path_value(v: &V) -> bool {
    match v {
        V::Cell(raw) if raw.starts_with('"') && !raw.contains("\\u") => raw.contains(":\\\\") || raw.starts_with("\"\\\\\\\\"),
        _ => v.as_str().is_some_and(|path| is_windows_path(&path)),
    }
}

/// The Windows extension, which registry classes need in `metadata.extensions`.
pub fn windows_extension(e: &mut Event) {
    e.set(
        "metadata.extensions",
        V::from(serde_json::json!([{"name": "win", "uid": "2", "version": "1.8.0"}])),
    );
}

/// `Protocol` (Tcp, Udp, TcpV4, Icmp, IcmpV6, ...) to `connection_info`
/// protocol name, number and IP version. An unknown value stays in the row.
pub fn network_protocol(e: &mut Event) {
    let Some(text) = e.column_text("Protocol") else {
        return;
    };
    // Compared in ASCII without regard to case, byte by byte (a suffix of
    // two bytes need not end a character).
    let text = text.as_bytes();
    let (base, version) = match text.len().checked_sub(2).map(|n| text.split_at(n)) {
        Some((base, v)) if v.eq_ignore_ascii_case(b"v4") => (base, Some(4)),
        Some((base, v)) if v.eq_ignore_ascii_case(b"v6") => (base, Some(6)),
        _ => (text, None),
    };
    let is = |name: &str| base.eq_ignore_ascii_case(name.as_bytes());
    // The name is the base in lower case: one of those three.
    let (name, number) = match version {
        _ if is("tcp") => ("tcp", 6),
        _ if is("udp") => ("udp", 17),
        Some(6) if is("icmp") => ("icmp", 58),
        _ if is("icmp") => ("icmp", 1),
        _ => return,
    };
    e.drop_column("Protocol");
    e.set("connection_info.protocol_name", name);
    e.set("connection_info.protocol_num", number);
    if let Some(v) = version {
        e.set("connection_info.protocol_ver_id", v);
    }
}

/// `RemoteUrl`: a URL fills `url.url_string` and the destination host name;
/// a bare host name fills only the host name. Anything else (`host:port`, a
/// path, a fragment) also stays whole under `unmapped`, so nothing of it is
/// lost. The host name goes to `hostname` (an endpoint's).
pub fn remote_url<'a>(e: &mut Event<'a, '_>, hostname: &'static str) {
    let Some(text) = e.column_text("RemoteUrl") else {
        return;
    };
    // Where the host name lies in the text: after the scheme and any user
    // up to the path, query or fragment, or before the first `/` or `:`.
    let (host, is_url) = match text.find("://") {
        Some(at) => {
            let authority = at + 3;
            let rest = &text[authority..];
            let end = authority + rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let start = text[authority..end].rfind('@').map_or(authority, |user| authority + user + 1);
            (start..end, true)
        }
        None => (0..text.find(['/', ':']).unwrap_or(text.len()), false),
    };
    let whole = host == (0..text.len());
    let host = match &text {
        Cow::Borrowed(t) => Cow::Borrowed(&t[host]),
        Cow::Owned(t) => Cow::Owned(t[host].to_string()),
    };
    // Another column may have named the host (`RemoteDeviceName`): it
    // stays, and the URL's host is kept in the URL, or a bare host name
    // under `unmapped` (nothing overwritten).
    let named = e.get(hostname).is_some_and(|h| h.as_str().as_deref() != Some(&*host));
    if is_url {
        e.set("url.url_string", text);
    }
    if is_url || (whole && !named) {
        e.drop_column("RemoteUrl");
    }
    if !host.is_empty() && !named {
        e.set(hostname, host);
    }
}

/// Swaps `src_endpoint` and `dst_endpoint` (inbound rows report the device
/// as "local" and the peer as "remote").
pub fn swap_endpoints(e: &mut Event) {
    let src = e.root.remove("src_endpoint");
    let dst = e.root.remove("dst_endpoint");
    if let Some(d) = dst {
        e.root.insert("src_endpoint", d);
    }
    if let Some(s) = src {
        e.root.insert("dst_endpoint", s);
    }
}

/// Moves keys out of the `AdditionalFields` column to OCSF paths, leaving
/// the rest of the object to `unmapped`.
pub fn map_additional(e: &mut Event, keys: &[(&str, &str, Conv)]) {
    let Some((name, cell)) = e.row.take(e.columns, "AdditionalFields") else {
        return;
    };
    if cell.is_absent() {
        e.row.put(e.columns, name, cell);
        return;
    }
    // The object's text, as the answer gave it (or as a step before left
    // it), read member by member: only the members mapped are parsed, and
    // the rest is copied.
    let text = cell.json_text();
    let members = text.as_deref().and_then(super::cells::members);
    // Read, and whether as compacting writes it.
    let read = members.as_ref().map(|(_, compact)| *compact);
    let left = match (members, text.as_deref()) {
        (Some((members, compact)), _) => map_members(e, members, compact, keys),
        // Text that is no object goes back as it was.
        (None, Some(t)) if !t.trim_start().starts_with('{') => Ok(None),
        _ => Err(()),
    };
    // An object only serde_json's reading settles (an escaped surrogate, a
    // number out of range, nesting too deep), and a value a step put back,
    // go the slow way: parsed whole, as they always were.
    let left = left.unwrap_or_else(|()| match cell.dynamic() {
        Value::Object(fields) => Some(map_fields(e, fields, keys)),
        _ => None,
    });
    let left = match (left, text) {
        (Some(left), _) => left,
        // An object read from a string cell goes back as the text it holds,
        // checked, so that neither a later step nor `unmapped` unescapes and
        // checks it again; as it is, when compacting would not change it.
        (None, Some(Cow::Owned(text))) if read == Some(true) => Cell::Written(text),
        (None, Some(Cow::Owned(text))) if read == Some(false) => Cell::Text(text),
        (None, _) => cell,
    };
    e.row.put(e.columns, name, left);
}

/// Whether the `AdditionalFields` column may hold one of `keys`: `false`
/// when it is absent, or when its text reads as an object (member by
/// member, nothing parsed) with none of them. A step that reads only those
/// keys then skips parsing the object whole; an object held as a value, or
/// text that does not read so, says `true` and takes the step's own way.
pub fn additional_may_hold(e: &Event, keys: &[&str]) -> bool {
    let Some(cell) = e.row.get(e.columns, "AdditionalFields") else {
        return false;
    };
    match cell.json_text().as_deref().and_then(super::cells::members) {
        Some((members, _)) => members.iter().any(|(name, _)| keys.contains(&name.as_ref())),
        None => true,
    }
}

/// [`map_additional`] on an object's members (`compact`: the object is as
/// compacting writes it): the cell of the members left, `None` when none
/// was mapped (the cell stays as it was), or an error, before anything is
/// mapped, for an object to parse whole.
fn map_members(
    e: &mut Event,
    members: Vec<(Cow<str>, &str)>,
    compact: bool,
    keys: &[(&str, &str, Conv)],
) -> Result<Option<Cell<'static>>, ()> {
    if !keys.iter().any(|(key, _, _)| members.iter().any(|(k, _)| k == key)) {
        return Ok(None);
    }
    // Each member's value as the rest will hold it, checked before a key
    // is taken: in a compact object, each value as it came, but a number
    // serde_json writes otherwise (`1.50`); else compacted.
    let as_they_came = compact
        && members
            .iter()
            .all(|(_, v)| !matches!(v.as_bytes().first(), Some(b'-' | b'0'..=b'9')) || super::value::is_plain_int(v));
    let mut values = Vec::new();
    let mut spans = Vec::new();
    // Whether the object of the members left is written as it is made here.
    let mut as_written = true;
    if !as_they_came {
        values.reserve(members.iter().map(|(_, v)| v.len()).sum());
        spans.reserve(members.len());
        for (_, v) in &members {
            let start = values.len();
            as_written &= member_value(&mut values, v).ok_or(())?;
            spans.push(start..values.len());
        }
    }
    let mut kept = vec![true; members.len()];
    let mut mapped = false;
    for (key, path, conv) in keys {
        // A key given twice means its last value, as in a parsed object.
        let Some(v) = members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(v) else {
            continue;
        };
        if super::field::is_absent(&v) || !put_additional(e, &v, path, *conv) {
            continue;
        }
        for (i, (k, _)) in members.iter().enumerate() {
            if k == key {
                kept[i] = false;
            }
        }
        mapped = true;
    }
    if !mapped {
        return Ok(None);
    }
    let mut left = Vec::with_capacity(members.iter().map(|(k, v)| k.len() + v.len() + 4).sum::<usize>() + 2);
    left.push(b'{');
    for (i, (k, v)) in members.iter().enumerate().filter(|(i, _)| kept[*i]) {
        if left.len() > 1 {
            left.push(b',');
        }
        super::value::write_str(&mut left, k);
        left.push(b':');
        match as_they_came {
            true => put(&mut left, v.as_bytes()),
            false => put(&mut left, &values[spans[i].clone()]),
        }
    }
    left.push(b'}');
    // The text is made of checked JSON pieces, each valid UTF-8; were it
    // not, the whole object would stay (its mapped keys too) rather than be lost.
    let cell = if as_written { Cell::Written } else { Cell::Text };
    Ok(String::from_utf8(left).ok().map(cell))
}

/// Appends the JSON text of a member's value `raw` as the rest of an
/// object holds it (what serde_json would write, its keys as they came):
/// `None` for a value only serde_json's reading settles, and whether
/// [`write_compact`](super::value::write_compact) copies it unchanged in an
/// object (it nests less deeply than that writes, and is no number that
/// serde_json writes with an exponent).
fn member_value(out: &mut Vec<u8>, raw: &str) -> Option<bool> {
    match raw.as_bytes().first() {
        Some(b'{' | b'[') => super::value::compact(out, raw).map(|depth| depth < super::value::COMPACT_DEPTH),
        Some(b'-' | b'0'..=b'9') if !super::value::is_plain_int(raw) => {
            let n = serde_json::from_str::<serde_json::Number>(raw).ok()?.to_string();
            // Compacting copies a number unchanged, or refuses it.
            let copied = super::value::compact(out, &n).is_some();
            if !copied {
                out.extend_from_slice(n.as_bytes());
            }
            Some(copied)
        }
        _ => {
            put(out, raw.as_bytes());
            Some(true)
        }
    }
}

/// [`map_additional`] on a parsed object: the cell of the keys left.
fn map_fields(e: &mut Event, mut fields: serde_json::Map<String, Value>, keys: &[(&str, &str, Conv)]) -> Cell<'static> {
    for (key, path, conv) in keys {
        if let Some(v) = fields.get(*key)
            && !super::field::is_absent(v)
            && put_additional(e, v, path, *conv)
        {
            fields.remove(*key);
        }
    }
    Cell::Owned(Value::Object(fields))
}

/// Puts the value `v` of an `AdditionalFields` key at `path`, converted by
/// `conv`; whether it was put. A value already there (from a column, or an
/// earlier key) is never overwritten: the key then stays under `unmapped`.
fn put_additional(e: &mut Event, v: &Value, path: &str, conv: Conv) -> bool {
    let appends = matches!(conv, Hash(_) | NamedItem | Item | EmailItem);
    if !appends && e.get(path).is_some() {
        return false;
    }
    match super::field::convert(v, conv) {
        Some(out) => {
            let (parent, leaf) = split_last(path);
            put_in(e.object_at(parent), key_of(leaf), conv, V::from(out));
            true
        }
        None => false,
    }
}

/// DNS details from `AdditionalFields` (guide §5, §21): the query's name,
/// type, class and transaction id, the response code, and the answers with
/// their TTLs. Keys that do not convert stay under `unmapped`.
pub fn dns(e: &mut Event) {
    map_additional(
        e,
        &[
            ("query", "query.hostname", Str),
            ("DnsQueryString", "query.hostname", Str),
            ("QueryName", "query.hostname", Str),
            ("qtype_name", "query.type", Str),
            ("qclass_name", "query.class", Str),
            ("trans_id", "query.packet_uid", Int),
        ],
    );
    // A query is one by the name asked for: without it, its type, class
    // and id are kept under `unmapped`.
    require_any(e, "query", &["hostname"]);
    dns_rcode(e);
    if !additional_may_hold(e, &["answers"]) {
        return;
    }
    let Some(Value::Object(mut fields)) = e.column("AdditionalFields", Json) else {
        return;
    };
    let answers = match fields.get("answers").map(super::field::parse_dynamic) {
        Some(Value::Array(items)) if !items.is_empty() && items.iter().all(|a| a.as_str().is_some_and(|s| !s.is_empty())) => items,
        _ => return,
    };
    let ttls = match fields.get("TTLs").map(super::field::parse_dynamic) {
        Some(Value::Array(t)) if t.len() == answers.len() => t.iter().map(whole_number).collect::<Option<Vec<i64>>>(),
        _ => None,
    };
    let list = answers
        .into_iter()
        .enumerate()
        .map(|(i, rdata)| {
            let mut answer = serde_json::Map::new();
            answer.insert("rdata".into(), rdata);
            if let Some(t) = ttls.as_ref() {
                answer.insert("ttl".into(), t[i].into());
            }
            Value::Object(answer)
        })
        .collect();
    e.set("answers", V::from(Value::Array(list)));
    fields.remove("answers");
    if ttls.is_some() {
        fields.remove("TTLs");
    }
    e.put_column("AdditionalFields", Value::Object(fields));
}

/// `rcode` (a number) to `rcode_id`, the schema's caption going to `rcode`
/// (`set_captions`); a code OCSF does not list is 99 Other, named by `rcode_name`.
fn dns_rcode(e: &mut Event) {
    if !additional_may_hold(e, &["rcode"]) {
        return;
    }
    let Some(Value::Object(mut fields)) = e.column("AdditionalFields", Json) else {
        return;
    };
    let Some(code) = fields
        .get("rcode")
        .and_then(|v| super::field::convert(v, Int))
        .and_then(|v| v.as_i64())
    else {
        return;
    };
    let name = fields.get("rcode_name").and_then(Value::as_str).map(str::to_string);
    let listed = matches!(code, 0..=11 | 16..=23);
    if listed {
        e.set("rcode_id", code);
        fields.remove("rcode");
        fields.remove("rcode_name");
    } else if let Some(name) = name {
        e.set("rcode_id", 99);
        e.set("rcode", name);
        fields.remove("rcode_name");
    } else {
        return;
    }
    e.put_column("AdditionalFields", Value::Object(fields));
}

/// A TTL such as `1200` or `1200.0` as a whole number of seconds.
fn whole_number(v: &Value) -> Option<i64> {
    match super::field::parse_dynamic(v) {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64)),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64),
        _ => None,
    }
}

/// Checks both endpoints.
pub fn finish_endpoints(e: &mut Event) {
    require_any(e, "src_endpoint", ocsf::ENDPOINT_IDENTITY);
    require_any(e, "dst_endpoint", ocsf::ENDPOINT_IDENTITY);
}

/// System-activity classes need an `actor`. When a row names no initiating
/// process or account, the sensor that reported it is the actor (guide §22).
pub fn actor_or_sensor(e: &mut Event, product: &'static str) {
    if is_unset(e, "actor") {
        e.set("actor.app_name", product);
    }
}

/// Whether the object at `path` is absent or empty: finish steps that move
/// or drop its members leave it empty, and it is pruned before the event
/// goes out.
pub fn is_unset(e: &Event, path: &str) -> bool {
    match e.get(path) {
        None => true,
        Some(V::Obj(o)) => o.is_empty(),
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::cells::{Cells, Columns};
    use serde_json::json;

    /// Runs `f` on an event whose row is `row` (JSON text) and returns the
    /// event as a value, with its left-over columns under `"<row>"`.
    fn with(row: &str, f: impl FnOnce(&mut Event)) -> Value {
        let columns = Columns::default();
        let mut e = Event::new(Cells::read(row, &columns).unwrap(), &columns);
        f(&mut e);
        let rest: serde_json::Map<String, Value> = e.row.iter().map(|(k, c)| (k.to_string(), c.to_value())).collect();
        let mut v = std::mem::take(&mut e.root);
        v.insert("<row>", V::from(Value::Object(rest)));
        V::Obj(v).to_value()
    }

    #[test]
    fn a_remote_url_that_is_neither_a_url_nor_a_host_stays_whole() {
        let url = |text: &str| with(&json!({"RemoteUrl": text}).to_string(), |e| remote_url(e, "dst_endpoint.hostname"));
        let e = url("https://a.example/x");
        assert_eq!(e["url"]["url_string"], "https://a.example/x");
        assert_eq!(e["dst_endpoint"]["hostname"], "a.example");
        assert_eq!(e["<row>"], json!({}));
        let e = url("a.example");
        assert_eq!(e["dst_endpoint"]["hostname"], "a.example");
        assert_eq!(e["<row>"], json!({}));
        // A port, or no host at all: the text is kept for `unmapped`.
        let e = url("a.example:8443");
        assert_eq!(e["dst_endpoint"]["hostname"], "a.example");
        assert_eq!(e["<row>"]["RemoteUrl"], "a.example:8443");
        let e = url(":a");
        assert_eq!(e.get("dst_endpoint"), None);
        assert_eq!(e["<row>"]["RemoteUrl"], ":a");
    }

    proptest::proptest! {
        /// `AdditionalFields` is said to hold a key exactly when its object
        /// does, whether it came as JSON text or as an object, and whatever
        /// escapes its names hold.
        #[test]
        fn additional_fields_are_said_to_hold_a_key_exactly_when_they_do(
            names in proptest::collection::vec(
                proptest::sample::select(vec!["Severity", "Sev\\u0065rity", "Action", "Actions", "action", "x"]),
                0..4,
            ),
            as_text: bool,
        ) {
            let members: Vec<String> = names.iter().enumerate().map(|(i, n)| format!("\"{n}\":{i}")).collect();
            let object = format!("{{{}}}", members.join(","));
            let cell = if as_text { serde_json::to_string(&object).unwrap() } else { object.clone() };
            let row = format!("{{\"AdditionalFields\":{cell}}}");
            let parsed: serde_json::Map<String, Value> = serde_json::from_str(&object).unwrap();
            let columns = Columns::default();
            let e = Event::new(Cells::read(&row, &columns).unwrap(), &columns);
            let keys = ["Severity", "Action"];
            let holds = keys.iter().any(|k| parsed.contains_key(*k));
            proptest::prop_assert_eq!(additional_may_hold(&e, &keys), holds, "{}", row);
        }
    }

    #[test]
    fn absent_additional_fields_hold_nothing() {
        let columns = Columns::default();
        for row in [r#"{}"#, r#"{"AdditionalFields":""}"#, r#"{"AdditionalFields":null}"#] {
            let e = Event::new(Cells::read(row, &columns).unwrap(), &columns);
            assert!(!additional_may_hold(&e, &["Severity"]), "{row}");
        }
        // Text that is not an object is left to the step's own reading.
        let e = Event::new(Cells::read(r#"{"AdditionalFields":"[1]"}"#, &columns).unwrap(), &columns);
        assert!(additional_may_hold(&e, &["Severity"]));
    }

    /// `remote_url` as it was written first, on a copy of the text: the
    /// event it makes from `text` (the row's left-over columns under
    /// `"<row>"`).
    fn remote_url_as_first_written(text: &str) -> Value {
        let mut event = json!({"<row>": {"RemoteUrl": text}});
        if text.is_empty() {
            return event;
        }
        let is_url = text.contains("://");
        let host = match text.split_once("://") {
            Some((_, rest)) => {
                event["url"] = json!({"url_string": text});
                let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
                authority.rsplit('@').next().unwrap_or("").to_string()
            }
            None => text.split(['/', ':']).next().unwrap_or("").to_string(),
        };
        if is_url || host == text {
            event["<row>"] = json!({});
        }
        if !host.is_empty() {
            event["dst_endpoint"] = json!({"hostname": host});
        }
        event
    }

    /// `network_protocol` as it was written first, on a lower-case copy of
    /// the text.
    fn network_protocol_as_first_written(text: &str) -> Value {
        let mut event = json!({"<row>": {"Protocol": text}});
        let lower = text.to_ascii_lowercase();
        let (base, version) = match lower.strip_suffix("v4") {
            Some(b) => (b, Some(4)),
            None => match lower.strip_suffix("v6") {
                Some(b) => (b, Some(6)),
                None => (lower.as_str(), None),
            },
        };
        let number = match (base, version) {
            ("tcp", _) => 6,
            ("udp", _) => 17,
            ("icmp", Some(6)) => 58,
            ("icmp", _) => 1,
            _ => return event,
        };
        event["<row>"] = json!({});
        event["connection_info"] = json!({"protocol_name": base, "protocol_num": number});
        if let Some(v) = version {
            event["connection_info"]["protocol_ver_id"] = json!(v);
        }
        event
    }

    proptest::proptest! {
        /// The host name is sliced from the cell (borrowed when the text
        /// has no escape, copied when it has) exactly where the first
        /// version found it in its copy of the text.
        #[test]
        fn a_remote_url_is_read_from_its_cell_as_from_its_text(text in "[a-c@:/é\\\\\"]{0,3}(://)?[a-c.@:é\\\\\"]{0,6}([/?#][a-c@:/]{0,3})?") {
            let got = with(&json!({"RemoteUrl": text}).to_string(), |e| remote_url(e, "dst_endpoint.hostname"));
            proptest::prop_assert_eq!(got, remote_url_as_first_written(&text), "{}", text);
        }

        /// A protocol's name, number and version are found in the cell's
        /// text without regard to case, as the first version found them in
        /// a lower-case copy.
        #[test]
        fn a_protocol_is_read_from_its_cell_as_from_its_text(
            text in "(tcp|TCP|Udp|icmp|IcMp|igmp|x|é|\\\\)?(v4|V6|v6|v|4|é)?(v4|V6)?",
        ) {
            let got = with(&json!({"Protocol": text}).to_string(), network_protocol);
            proptest::prop_assert_eq!(got, network_protocol_as_first_written(&text), "{}", text);
        }
    }

    /// The names a file gets from its literals as they came are those it
    /// gets from their text, as written and as values, for any path and name.
    fn names_from_literals_and_text(path: &str, name: Option<&str>) -> Result<bool, proptest::test_runner::TestCaseError> {
        let literals = [serde_json::to_string(path).unwrap(), serde_json::to_string(&name).unwrap()];
        let (mut raw, mut text) = (Obj::new(), Obj::new());
        raw.insert("path", V::Cell(&literals[0]));
        text.insert("path", V::from(path));
        if let Some(n) = name {
            raw.insert("name", V::Cell(&literals[1]));
            text.insert("name", V::from(n));
        }
        let fast = complete_from_literals(&mut raw.clone());
        complete_file_names(&mut raw);
        complete_file_names(&mut text);
        alike(raw, text)?;
        Ok(fast)
    }

    proptest::proptest! {
        /// A path's cell is found a Windows one exactly when its text is,
        /// however its backslashes are written.
        #[test]
        fn a_windows_path_is_found_in_the_cell_as_in_its_text(
            path in "[a-c:\\\\/u0-5]{0,8}",
            escape_every in 0..4usize,
        ) {
            let mut literal = serde_json::to_string(&path).unwrap();
            if escape_every > 0 {
                // Some backslashes written as `\u005c`, which JSON allows.
                let mut n = 0;
                literal = literal.replace("\\\\", "\u{1}").split('\u{1}').fold(String::new(), |mut out, part| {
                    if n > 0 {
                        out.push_str(if n % escape_every == 0 { "\\u005c" } else { "\\\\" });
                    }
                    n += 1;
                    out.push_str(part);
                    out
                });
            }
            proptest::prop_assert_eq!(serde_json::from_str::<String>(&literal).unwrap(), path.clone());
            proptest::prop_assert_eq!(is_windows_path_value(&V::Cell(&literal)), is_windows_path(&path), "{}", literal);
            proptest::prop_assert_eq!(is_windows_path_value(&V::from(path.as_str())), is_windows_path(&path));
        }
    }

    /// Two objects are written alike and are equal as values.
    fn alike(raw: Obj, text: Obj) -> Result<(), proptest::test_runner::TestCaseError> {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        raw.write(&mut a);
        text.write(&mut b);
        proptest::prop_assert_eq!(String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap());
        proptest::prop_assert_eq!(V::Obj(raw).to_value(), V::Obj(text).to_value());
        Ok(())
    }

    /// The finish steps as they were before they completed objects in
    /// place (walking each path again for each step), kept as the oracle
    /// of the in-place ones.
    mod walked {
        use super::super::*;
        use crate::mapping::field::join;

        pub fn finish_device(e: &mut Event) {
            if let Some(V::Obj(device)) = e.get_mut("device") {
                split_hostname(device);
            }
            if let Some(V::Obj(device)) = e.get("device")
                && !ocsf::DEVICE_IDENTITY.iter().any(|k| device.contains_key(k))
            {
                return move_to_unmapped(e, "device");
            }
            if e.get("device").is_some() {
                e.set_default("device.type_id", 0);
                e.set_default("device.type", "Unknown");
            }
        }

        pub fn finish_file(e: &mut Event, path: &str) {
            let product_ok = match e.get_mut(path) {
                None => return,
                Some(V::Obj(file)) => {
                    complete_file_names(file);
                    absent_or_has_any(file.get("product"), &["name", "uid"])
                }
                Some(_) => return move_to_unmapped(e, path),
            };
            if !product_ok {
                move_to_unmapped(e, &join(path, "product"));
            }
            match e.get_mut(path) {
                Some(V::Obj(file)) if file.get("name").is_some() => {
                    file.insert("type_id", V::from(1));
                    file.insert("type", V::from("Regular File"));
                }
                _ => move_to_unmapped(e, path),
            }
        }

        pub fn finish_process(e: &mut Event, path: &str) {
            if e.get(path).is_none() {
                return;
            }
            finish_file(e, &join(path, "file"));
            if let Some(V::Obj(process)) = e.get_mut(path) {
                let file = match process.get("file") {
                    Some(V::Obj(file)) => [file.get("name").cloned(), file.get("path").cloned()],
                    _ => [None, None],
                };
                for (key, value) in ["name", "path"].into_iter().zip(file) {
                    if let Some(value) = value {
                        process.insert(key, value);
                    }
                }
            }
            let Some(V::Obj(process)) = e.get(path) else {
                return move_to_unmapped(e, path);
            };
            let needs = ocsf::identity("process");
            let user_ok = absent_or_has_any(process.get("user"), ocsf::identity("user"));
            let parent = process.get("parent_process");
            let (parent_unknown, parent_ok) = (is_unknown_process(parent), absent_or_has_any(parent, needs));
            let process_ok = needs.iter().any(|k| process.contains_key(k));
            if !user_ok {
                move_to_unmapped(e, &join(path, "user"));
            }
            if parent_unknown {
                e.remove(&join(path, "parent_process"));
            } else if !parent_ok {
                move_to_unmapped(e, &join(path, "parent_process"));
            }
            if !process_ok {
                move_to_unmapped(e, path);
            }
        }

        fn drop_unknown_process(e: &mut Event, path: &str) {
            if is_unknown_process(e.get(path)) {
                e.remove(path);
            }
        }

        pub fn finish_actor(e: &mut Event) {
            if e.get("actor.user").is_none() {
                e.copy("actor.process.user", "actor.user");
            }
            drop_unknown_process(e, "actor.process");
            finish_process(e, "actor.process");
            drop_unknown_process(e, "actor.process");
            require_any(e, "actor.user", &["name", "uid", "account"]);
        }
    }

    /// What an event may hold where the finish steps look: each part of a
    /// process (under `process` and `actor.process`), of a file, of a
    /// device, values that are not objects where objects belong, and parts
    /// already under `unmapped`.
    fn finish_parts() -> Vec<(String, V<'static>)> {
        let mut parts: Vec<(String, V<'static>)> = Vec::new();
        for p in ["process", "actor.process"] {
            for (leaf, v) in [
                ("", V::from("x")),
                ("pid", V::from(0)),
                ("pid", V::from(4)),
                ("uid", V::from("u")),
                ("file", V::from("a.exe")),
                ("file.name", V::from("a.exe")),
                ("file.name", V::from("CMD.EXE")),
                ("file.path", V::from("C:\\Windows\\a.exe")),
                ("file.path", V::from("C:\\Windows")),
                ("file.path", V::from("/usr/bin/tar")),
                ("file.product.version", V::from("1.0")),
                ("file.product.name", V::from("P")),
                ("file.product", V::from("p")),
                ("file.size", V::from(10)),
                ("user.domain", V::from("D")),
                ("user.name", V::from("n")),
                ("user", V::from("n")),
                ("parent_process.pid", V::from(0)),
                ("parent_process.pid", V::from(7)),
                ("parent_process.name", V::from("explorer.exe")),
                ("parent_process", V::from("p")),
                ("cmd_line", V::from("a b")),
            ] {
                let path = if leaf.is_empty() { p.to_string() } else { format!("{p}.{leaf}") };
                parts.push((path, v));
            }
            parts.push((format!("unmapped.{p}.user.x"), V::from(1)));
            parts.push((format!("unmapped.{p}.file.product.y"), V::from(2)));
            parts.push((format!("unmapped.{p}"), V::from("z")));
        }
        for (path, v) in [
            ("file.name", V::from("tar")),
            ("file.path", V::from("/usr/bin/tar")),
            ("file.path", V::from("/usr/bin")),
            ("file.product.version", V::from("2")),
            ("file.product.uid", V::from("3")),
            ("file", V::from("f")),
            ("unmapped.file.z", V::from(3)),
            ("device.hostname", V::from("ws-1.corp.example")),
            ("device.hostname", V::from("ws-1")),
            ("device.type_id", V::from(3)),
            ("device.type", V::from("Server")),
            ("device", V::from("d")),
            ("class_uid", V::from(1007)),
            ("actor", V::from("a")),
            ("actor.user.name", V::from("n")),
            ("actor.user.domain", V::from("D")),
            ("actor.user", V::from("u")),
            ("actor.session.uid", V::from("9")),
            ("unmapped.actor.user.w", V::from(4)),
        ] {
            parts.push((path.to_string(), v));
        }
        parts
    }

    proptest::proptest! {
        /// The finish steps that complete objects in place make, byte for
        /// byte, the event the steps that walked each path made, whatever
        /// parts the event holds and in whatever order they were set.
        #[test]
        fn finishing_in_place_makes_the_event_walking_made(
            chosen in proptest::strategy::Strategy::prop_shuffle(
                proptest::sample::subsequence((0..finish_parts().len()).collect::<Vec<_>>(), 0..=14),
            ),
            actor in proptest::bool::ANY,
        ) {
            let parts = finish_parts();
            let columns = Columns::default();
            let event = || {
                let mut e = Event::new(Cells::read("{}", &columns).unwrap(), &columns);
                for &i in &chosen {
                    e.set_owned(&parts[i].0, parts[i].1.clone());
                }
                e
            };
            let (mut walked, mut in_place) = (event(), event());
            walked::finish_device(&mut walked);
            walked::finish_file(&mut walked, "file");
            walked::finish_process(&mut walked, "process");
            finish_device(&mut in_place);
            finish_file(&mut in_place, "file");
            finish_process(&mut in_place, "process");
            // The actor's process, alone or as the actor's.
            if actor {
                walked::finish_actor(&mut walked);
                finish_actor(&mut in_place);
            } else {
                walked::finish_process(&mut walked, "actor.process");
                finish_process(&mut in_place, "actor.process");
            }
            let written = |e: &Event| {
                let mut out = Vec::new();
                e.root.write(&mut out);
                String::from_utf8(out).unwrap()
            };
            proptest::prop_assert_eq!(written(&in_place), written(&walked));
        }
    }

    proptest::proptest! {
        #[test]
        fn a_files_names_from_its_literals_are_those_from_its_text(
            path in "[aB.\\\\/\"\né]{0,10}",
            name in proptest::option::of("[aB.\\\\/é]{0,3}"),
        ) {
            names_from_literals_and_text(&path, name.as_deref())?;
        }
    }

    proptest::proptest! {
        /// A device's name and domain from its hostname's literal are those
        /// from its text, as written and as values.
        #[test]
        fn a_devices_names_from_its_literal_are_those_from_its_text(host in "[aB.\\\\\"é]{0,8}") {
            let literal = serde_json::to_string(&host).unwrap();
            let (mut raw, mut text) = (Obj::new(), Obj::new());
            raw.insert("hostname", V::Cell(&literal));
            text.insert("hostname", V::from(host.as_str()));
            split_hostname(&mut raw);
            split_hostname(&mut text);
            alike(raw, text)?;
        }
    }

    #[test]
    fn a_plain_hostname_is_split_into_slices_of_its_literal() {
        let mut device = Obj::new();
        device.insert("hostname", V::Cell("\"ws-1.corp.example\""));
        split_hostname(&mut device);
        assert!(matches!(device.get("name"), Some(V::Quoted("ws-1"))));
        assert!(matches!(device.get("domain"), Some(V::Quoted("corp.example"))));
    }

    #[test]
    fn common_paths_are_completed_from_their_literals() {
        for (path, name) in [
            ("C:\\Windows\\System32\\cmd.exe", Some("CMD.EXE")),
            ("C:\\Windows\\System32\\cmd.exe", None),
            ("\\\\server\\share\\\\a", Some("a")),
            ("/usr/bin/tar", Some("tar")),
            ("/usr/bin/tar", None),
            ("tar", None),
        ] {
            assert!(names_from_literals_and_text(path, name).unwrap(), "{path}");
        }
        // Anything else is completed from the text.
        for (path, name) in [
            ("C:\\Windows", Some("a.exe")),
            ("C:\\\"x\"", None),
            ("/é/a", None),
            ("/b\\a", Some("\\a")),
        ] {
            assert!(!names_from_literals_and_text(path, name).unwrap(), "{path}");
        }
    }

    #[test]
    fn folder_only_paths_are_joined_with_the_name() {
        let e = with("{}", |e| {
            e.set("file.name", "a.exe");
            e.set("file.path", "C:\\Windows\\");
            finish_file(e, "file");
        });
        assert_eq!(e["file"]["path"], "C:\\Windows\\a.exe");
        assert_eq!(e["file"]["parent_folder"], "C:\\Windows");
        assert_eq!(e["file"]["type_id"], 1);
    }

    #[test]
    fn a_file_without_a_name_takes_it_from_the_path_or_moves_to_unmapped() {
        let e = with("{}", |e| {
            e.set("file.path", "/usr/bin/tar");
            finish_file(e, "file");
        });
        assert_eq!(e["file"]["name"], "tar");

        let e = with("{}", |e| {
            e.push("process.file.hashes", json!({"algorithm_id": 2, "value": "ab"}));
            e.set("process.pid", 4);
            finish_process(e, "process");
        });
        assert_eq!(e["process"].get("file"), None);
        assert_eq!(
            e["unmapped"]["process"]["file"]["hashes"],
            json!([{"algorithm_id": 2, "value": "ab"}])
        );
    }

    #[test]
    fn a_file_keeps_only_a_product_that_names_itself_and_a_process_takes_its_files_name() {
        let e = with("{}", |e| {
            e.set("process.pid", 4);
            e.set("process.file.path", "C:\\a.exe");
            e.set("process.file.product.version", "1.0");
            finish_process(e, "process");
        });
        assert_eq!(e["process"]["name"], "a.exe");
        assert_eq!(e["process"]["path"], "C:\\a.exe");
        assert_eq!(e["process"]["file"].get("product"), None);
        assert_eq!(e["process"]["file"]["type_id"], 1);
        assert_eq!(e["unmapped"]["process"]["file"]["product"], json!({"version": "1.0"}));

        // A file that is not an object has nothing to complete: it is kept
        // under `unmapped`.
        let e = with("{}", |e| {
            e.set("file", "a.exe");
            finish_file(e, "file");
        });
        assert_eq!(e.get("file"), None);
        assert_eq!(e["unmapped"]["file"], "a.exe");
    }

    #[test]
    fn a_parent_without_pid_is_kept_under_unmapped() {
        let e = with("{}", |e| {
            e.set("actor.process.pid", 10);
            e.set("actor.process.parent_process.name", "explorer.exe");
            finish_actor(e);
        });
        assert_eq!(e["actor"]["process"].get("parent_process"), None);
        assert_eq!(e["unmapped"]["actor"]["process"]["parent_process"]["name"], "explorer.exe");
    }

    #[test]
    fn pid_zero_alone_means_no_actor_process() {
        let e = with("{}", |e| {
            e.set("actor.process.pid", 0);
            e.set("actor.session.uid", "999");
            finish_actor(e);
        });
        assert_eq!(e["actor"].get("process"), None);
        assert_eq!(e["actor"]["session"]["uid"], "999");
    }

    #[test]
    fn two_moves_to_the_same_place_keep_both() {
        let e = with("{}", |e| {
            e.set("evidence.file.path", "x");
            e.set("evidence.name", "File");
            move_to_unmapped(e, "evidence.file");
            move_to_unmapped(e, "evidence");
        });
        assert_eq!(e["unmapped"]["evidence"], json!({"file": {"path": "x"}, "name": "File"}));
    }

    #[test]
    fn device_name_is_split() {
        let e = with("{}", |e| {
            e.set("device.hostname", "ws1.contoso.local");
            finish_device(e);
        });
        assert_eq!(e["device"]["name"], "ws1");
        assert_eq!(e["device"]["domain"], "contoso.local");
        assert_eq!(e["device"]["type_id"], 0);
    }

    #[test]
    fn a_key_taken_from_additional_fields_leaves_the_rest_as_a_column() {
        let row = json!({"AdditionalFields": "{\"ProcessId\": \"42\", \"Other\": 1}"}).to_string();
        let e = with(&row, |e| map_additional(e, &[("ProcessId", "process.pid", Int)]));
        assert_eq!(e["process"]["pid"], 42);
        assert_eq!(e["<row>"]["AdditionalFields"], json!({"Other": 1}));
    }

    /// The `AdditionalFields` cell left after `f`, as the JSON text it
    /// holds (a string cell's text, whether unescaped yet or not).
    fn left_after(row: &str, f: impl FnOnce(&mut Event)) -> (Value, Option<String>) {
        let columns = Columns::default();
        let mut e = Event::new(Cells::read(row, &columns).unwrap(), &columns);
        f(&mut e);
        let text = e.row.get(&columns, "AdditionalFields").map(|c| match c {
            Cell::Owned(v) => format!("value {v}"),
            c => c.json_text().unwrap().into_owned(),
        });
        let root = std::mem::take(&mut e.root);
        (V::Obj(root).to_value(), text)
    }

    #[test]
    fn keys_taken_from_additional_fields_leave_the_other_members_as_they_came() {
        let keys = &[("ProcessId", "process.pid", Int), ("Name", "process.name", Str)];
        let object = r#"{"z" : 1, "ProcessId": "7", "a": {"b" :[1, 2.50]}, "Ünï\"c": "x y", "ProcessId": "42"}"#;
        for row in [
            json!({"AdditionalFields": object}).to_string(),
            format!(r#"{{"AdditionalFields": {object}}}"#),
        ] {
            let (e, left) = left_after(&row, |e| map_additional(e, keys));
            assert_eq!(e["process"], json!({"pid": 42}), "a key given twice: its last value ({row})");
            assert_eq!(
                left.as_deref(),
                Some(r#"{"z":1,"a":{"b":[1,2.50]},"Ünï\"c":"x y"}"#),
                "the rest in its order, every copy of the key gone ({row})"
            );
        }
        // A second step reads what the first left.
        let row = json!({"AdditionalFields": r#"{"ProcessId": 5, "Name": "a.exe", "Other": null}"#}).to_string();
        let (e, left) = left_after(&row, |e| {
            map_additional(e, &keys[..1]);
            map_additional(e, &keys[1..]);
        });
        assert_eq!(e["process"], json!({"pid": 5, "name": "a.exe"}));
        assert_eq!(left.as_deref(), Some(r#"{"Other":null}"#));
    }

    /// What is left once a key is taken goes out as it is made
    /// (`Cell::Written`) exactly where `write_compact` would copy it
    /// unchanged; elsewhere it goes through `write_compact`, and serde_json
    /// where that gives up, as before.
    #[test]
    fn what_is_left_is_written_as_made_only_where_compacting_would_copy_it() {
        use crate::mapping::value::{COMPACT_DEPTH, write_compact};
        let keys = &[("ProcessId", "process.pid", Int)];
        let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        for (rest, as_made) in [
            (r#""x y""#.to_string(), true),
            (r#"{"b" : [1, 2.50], "c": {"d": null}}"#.to_string(), true),
            ("-7".to_string(), true),
            // serde_json writes 20.0, and 1e300 with its exponent.
            ("2E1".to_string(), true),
            ("1E300".to_string(), false),
            (deep(COMPACT_DEPTH - 1), true),
            (deep(COMPACT_DEPTH), false),
        ] {
            let row = json!({"AdditionalFields": format!(r#"{{"ProcessId": 1, "Rest": {rest}}}"#)}).to_string();
            let columns = Columns::default();
            let mut e = Event::new(Cells::read(&row, &columns).unwrap(), &columns);
            map_additional(&mut e, keys);
            assert_eq!(e.get("process.pid").and_then(V::as_i64), Some(1));
            let (written, text) = match e.row.get(&columns, "AdditionalFields") {
                Some(Cell::Written(text)) => (true, text),
                Some(Cell::Text(text)) => (false, text),
                other => panic!("{other:?}"),
            };
            let mut out = Vec::new();
            let copies = write_compact(&mut out, text) && out == text.as_bytes();
            let what = &rest[..rest.len().min(12)];
            assert_eq!(written, copies, "{what}: {text}");
            assert_eq!(written, as_made, "{what}: {text}");
        }
    }

    proptest::proptest! {
        /// What is left of a compact object once a key is taken (each member
        /// copied as it came) is what compacting each member makes of the
        /// same object with white space: the same text, and written as made
        /// in the same cases. An object no key is taken from goes to the
        /// output as it is exactly where compacting would copy it.
        #[test]
        fn the_rest_of_a_compact_object_is_what_compacting_its_members_makes(
            x in crate::mapping::value::json_text(),
            y in crate::mapping::value::json_text(),
            // A number as a member's value, which serde_json may write otherwise.
            z in proptest::sample::select(vec!["1.50", "-7", "0", "12345678901234567890", "2E1", "null"]),
            string_cell in proptest::bool::ANY,
        ) {
            let keys = &[("ProcessId", "process.pid", Int)];
            let left = |object: &str| {
                let row = match string_cell {
                    true => json!({"AdditionalFields": object}).to_string(),
                    false => format!(r#"{{"AdditionalFields":{object}}}"#),
                };
                let columns = Columns::default();
                let mut e = Event::new(Cells::read(&row, &columns).unwrap(), &columns);
                map_additional(&mut e, keys);
                let cell = match e.row.get(&columns, "AdditionalFields") {
                    Some(Cell::Written(text)) => format!("written {text}"),
                    Some(Cell::Text(text)) => format!("text {text}"),
                    Some(Cell::Owned(v)) => format!("value {v}"),
                    other => format!("{other:?}"),
                };
                (e.get("process.pid").and_then(V::as_i64), cell)
            };
            let compact = left(&format!(r#"{{"x":{x},"ProcessId":7,"y":{y},"z":{z}}}"#));
            proptest::prop_assert_eq!(compact.0, Some(7));
            proptest::prop_assert_eq!(&compact, &left(&format!(r#"{{"x": {x}, "ProcessId": 7, "y": {y}, "z": {z}}}"#)));
            let object = format!(r#"{{"x":{x},"y":{y},"z":{z}}}"#);
            let (pid, cell) = left(&object);
            let mut out = Vec::new();
            let copied = crate::mapping::value::compact(&mut out, &object).is_some() && out == object.as_bytes();
            proptest::prop_assert_eq!(pid, None);
            proptest::prop_assert_eq!(cell.starts_with("written "), string_cell && copied, "{}", cell);
            if string_cell && copied {
                proptest::prop_assert_eq!(cell, format!("written {object}"));
            }
        }
    }

    #[test]
    fn additional_fields_without_a_key_to_take_stay_as_they_came() {
        let keys = &[("ProcessId", "process.pid", Int)];
        for (row, why) in [
            (json!({"AdditionalFields": "{\"Other\": 1}"}), "no key of the list"),
            (json!({"AdditionalFields": "{\"ProcessId\": \"x\"}"}), "a key that does not convert"),
            (json!({"AdditionalFields": "[{\"ProcessId\": 1}]"}), "an array"),
            (json!({"AdditionalFields": "{\"ProcessId\": 1"}), "text that is not JSON"),
            (json!({"AdditionalFields": "ProcessId=1"}), "plain text"),
        ] {
            let row = row.to_string();
            let original = serde_json::from_str::<Value>(&row).unwrap()["AdditionalFields"]
                .as_str()
                .unwrap()
                .to_string();
            let (e, left) = left_after(&row, |e| map_additional(e, keys));
            assert_eq!(e.get("process"), None, "{why}");
            assert_eq!(left.as_deref(), Some(original.as_str()), "{why}");
        }
        // What only serde_json's reading of the whole object settles is
        // read that way: mapped when it reads, left whole when it does not.
        let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let row = json!({"AdditionalFields": format!(r#"{{"ProcessId": 1, "Deep": {}, "F": 1.50}}"#, deep(70))}).to_string();
        let (e, left) = left_after(&row, |e| map_additional(e, keys));
        assert_eq!(e["process"]["pid"], 1);
        let left: Value = serde_json::from_str(left.unwrap().strip_prefix("value ").unwrap()).unwrap();
        assert_eq!(left, json!({"Deep": serde_json::from_str::<Value>(&deep(70)).unwrap(), "F": 1.5}));
        for rest in [deep(5000), "1e400".to_string()] {
            let row = json!({"AdditionalFields": format!(r#"{{"ProcessId": 1, "Rest": {rest}}}"#)}).to_string();
            let original = serde_json::from_str::<Value>(&row).unwrap()["AdditionalFields"]
                .as_str()
                .unwrap()
                .to_string();
            let (e, left) = left_after(&row, |e| map_additional(e, keys));
            assert_eq!(e.get("process"), None, "{}", &rest[..rest.len().min(10)]);
            assert_eq!(left.as_deref(), Some(original.as_str()), "{}", &rest[..rest.len().min(10)]);
        }
        let row = json!({"AdditionalFields": r#"{"ProcessId": 1, "F": 1.50, "E": 2E1}"#}).to_string();
        let (e, left) = left_after(&row, |e| map_additional(e, keys));
        assert_eq!(e["process"]["pid"], 1);
        assert_eq!(left.as_deref(), Some(r#"{"F":1.5,"E":20.0}"#), "numbers as serde_json writes them");
        // An escaped surrogate pair is read as serde_json reads it.
        let row = json!({"AdditionalFields": "{\"ProcessId\": 3, \"Emoji\": \"\\ud83d\\ude00\"}"}).to_string();
        let (e, left) = left_after(&row, |e| map_additional(e, keys));
        assert_eq!(e["process"]["pid"], 3);
        assert_eq!(left.as_deref(), Some("value {\"Emoji\":\"😀\"}"));
    }
}
