//! Column groups and derived attributes that several tables share:
//! the reporting device, the acting (initiating) process, and the fix-ups
//! that keep OCSF objects valid (guide §0.2–§0.5).

use super::engine::{Conv::*, Event, Field, f, join};
use serde_json::Value;

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
    if let Some(host) = e.get_str("device.hostname").map(str::to_string) {
        match host.split_once('.') {
            Some((name, domain)) if !name.is_empty() && !domain.is_empty() => {
                e.set("device.name", name.into());
                e.set("device.domain", domain.into());
            }
            _ => e.set("device.name", host.into()),
        }
    }
    if e.get("device").is_some() {
        e.set_default("device.type_id", 0.into());
        e.set_default("device.type", "Unknown".into());
    }
}

/// Completes the file object at `path`: joins a folder-only path with the
/// name (guide §0.5), fills `parent_folder`, `name` from the path when only
/// the path is known, and the required `type_id` (1 Regular File).
pub fn finish_file(e: &mut Event, path: &str) {
    if e.get(path).is_none() {
        return;
    }
    let name_path = join(path, "name");
    let path_path = join(path, "path");
    let name = e.get_str(&name_path).map(str::to_string);
    if let Some(full) = e.get_str(&path_path).map(str::to_string) {
        let sep = if full.contains('\\') { '\\' } else { '/' };
        let full = match &name {
            Some(n) if !full.to_lowercase().ends_with(&n.to_lowercase()) => {
                let joined = format!("{}{sep}{n}", full.trim_end_matches(sep));
                e.set(&path_path, joined.clone().into());
                joined
            }
            _ => full,
        };
        if let Some(i) = full.rfind(sep) {
            if i > 0 {
                e.set(&join(path, "parent_folder"), full[..i].to_string().into());
            }
            if name.is_none() && i + 1 < full.len() {
                e.set(&name_path, full[i + 1..].to_string().into());
            }
        }
    }
    require_any(e, &join(path, "product"), &["name", "uid"]);
    if e.get(&name_path).is_some() {
        e.set(&join(path, "type_id"), 1.into());
        e.set(&join(path, "type"), "Regular File".into());
    } else {
        move_to_unmapped(e, path);
    }
}

/// Completes the process object at `path`: `name` and `path` from its file,
/// and a valid `user`. A process that has no pid or uid cannot be an OCSF
/// process; what is known of it moves to `unmapped`.
pub fn finish_process(e: &mut Event, path: &str) {
    if e.get(path).is_none() {
        return;
    }
    let file = join(path, "file");
    finish_file(e, &file);
    e.copy(&join(&file, "name"), &join(path, "name"));
    e.copy(&join(&file, "path"), &join(path, "path"));
    require_any(e, &join(path, "user"), &["name", "uid", "account"]);
    drop_unknown_process(e, &join(path, "parent_process"));
    require_any(e, &join(path, "parent_process"), &["pid", "uid", "cpid"]);
    require_any(e, path, &["pid", "uid", "cpid"]);
}

/// The acting process (guide §0.3): completes `actor.process`, drops it when
/// all that is known is pid 0 ("no initiating process"), and copies its user
/// to `actor.user`.
pub fn finish_actor(e: &mut Event) {
    // InitiatingProcessAccount* is the actor's user even when the process
    // itself is unknown, so copy it before the process may move away.
    if e.get("actor.user").is_none() {
        e.copy("actor.process.user", "actor.user");
    }
    drop_unknown_process(e, "actor.process");
    finish_process(e, "actor.process");
    drop_unknown_process(e, "actor.process");
    require_any(e, "actor.user", &["name", "uid", "account"]);
}

/// Process Activity requires a `process`. When a row names none, Defender's
/// own "unknown process" (pid 0) stands in, with a label that says so.
pub fn unknown_process(e: &mut Event) {
    if is_unset(e, "process") {
        e.set("process.pid", 0.into());
        e.push("metadata.labels", "process-unknown".into());
    }
}

/// Removes the process at `path` when all it says is pid 0, Defender's
/// "no such process".
pub fn drop_unknown_process(e: &mut Event, path: &str) {
    let unknown = matches!(e.get(path), Some(Value::Object(p)) if p.len() == 1 && p.get("pid") == Some(&Value::from(0)));
    if unknown {
        if let Some((parent, leaf)) = path.rsplit_once('.') {
            remove_child(e, parent, leaf);
        }
    }
}

/// Moves the object at `path` to `unmapped.<path>` unless it has one of
/// `keys`, which its OCSF object type requires.
pub fn require_any(e: &mut Event, path: &str, keys: &[&str]) {
    let ok = match e.get(path) {
        None => return,
        Some(Value::Object(o)) => keys.iter().any(|k| o.contains_key(*k)),
        Some(_) => false,
    };
    if !ok {
        move_to_unmapped(e, path);
    }
}

/// Removes the attribute at `path` and keeps it under `unmapped.<path>`.
pub fn move_to_unmapped(e: &mut Event, path: &str) {
    let (parent, leaf) = match path.rsplit_once('.') {
        Some((p, l)) => (Some(p), l),
        None => (None, path),
    };
    let removed = match parent {
        Some(p) => match e.get(p).is_some() {
            true => remove_child(e, p, leaf),
            false => None,
        },
        None => e.0.remove(leaf),
    };
    if let Some(v) = removed {
        merge(e, &format!("unmapped.{path}"), v);
    }
}

/// Sets `path` to `value`, merging objects into what is already there, so
/// that two moves to the same place keep both.
pub fn merge(e: &mut Event, path: &str, value: Value) {
    fn deep(into: &mut Value, value: Value) {
        match (into, value) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    match a.get_mut(&k) {
                        Some(existing) => deep(existing, v),
                        None => {
                            a.insert(k, v);
                        }
                    }
                }
            }
            (slot, v) => *slot = v,
        }
    }
    match e.get(path).cloned() {
        Some(mut existing) => {
            deep(&mut existing, value);
            e.set(path, existing);
        }
        None => e.set(path, value),
    }
}

fn remove_child(e: &mut Event, parent: &str, leaf: &str) -> Option<Value> {
    let mut node = &mut e.0;
    for part in parent.split('.') {
        node = node.get_mut(part)?.as_object_mut()?;
    }
    node.remove(leaf)
}

/// True when the file path is a Windows one.
pub fn is_windows_path(path: &str) -> bool {
    path.contains(":\\") || path.starts_with("\\\\")
}

/// The Windows extension, which registry classes need in `metadata.extensions`.
pub fn windows_extension(e: &mut Event) {
    e.set(
        "metadata.extensions",
        serde_json::json!([{"name": "win", "uid": "2", "version": "1.8.0"}]),
    );
}

/// `Protocol` (Tcp, Udp, TcpV4, Icmp, IcmpV6, ...) to `connection_info`
/// protocol name, number and IP version. An unknown value stays in the row.
pub fn network_protocol(e: &mut Event) {
    let Some(text) = e
        .column("Protocol", super::engine::Conv::Str)
        .and_then(|v| v.as_str().map(str::to_string))
    else {
        return;
    };
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
        _ => return,
    };
    e.take_column("Protocol");
    e.set("connection_info.protocol_name", base.into());
    e.set("connection_info.protocol_num", number.into());
    if let Some(v) = version {
        e.set("connection_info.protocol_ver_id", v.into());
    }
}

/// `RemoteUrl`: a URL fills `url.url_string` and the destination host name;
/// a bare host name fills only the host name. Anything else (`host:port`, a
/// path, a fragment) also stays whole under `unmapped`, so nothing of it is
/// lost.
pub fn remote_url(e: &mut Event, endpoint: &str) {
    let Some(Value::String(text)) = e.column("RemoteUrl", super::engine::Conv::Str) else {
        return;
    };
    let is_url = text.contains("://");
    let host = match text.split_once("://") {
        Some((_, rest)) => {
            e.set("url.url_string", text.clone().into());
            rest.split(['/', '?', '#'])
                .next()
                .unwrap_or("")
                .rsplit('@')
                .next()
                .unwrap_or("")
                .to_string()
        }
        None => text.split(['/', ':']).next().unwrap_or("").to_string(),
    };
    if is_url || host == text {
        e.take_column("RemoteUrl");
    }
    if !host.is_empty() {
        e.set(&join(endpoint, "hostname"), host.into());
    }
}

/// Swaps `src_endpoint` and `dst_endpoint` (inbound rows report the device
/// as "local" and the peer as "remote").
pub fn swap_endpoints(e: &mut Event) {
    let src = e.0.remove("src_endpoint");
    let dst = e.0.remove("dst_endpoint");
    if let Some(d) = dst {
        e.0.insert("src_endpoint".into(), d);
    }
    if let Some(s) = src {
        e.0.insert("dst_endpoint".into(), s);
    }
}

/// Moves keys out of the `AdditionalFields` column to OCSF paths, leaving
/// the rest of the object to `unmapped`.
pub fn map_additional(e: &mut Event, keys: &[(&str, &str, super::engine::Conv)]) {
    let Some(mut fields) = e.additional_fields() else {
        return;
    };
    let mut changed = false;
    for (key, path, conv) in keys {
        if let Some(v) = fields.get(*key) {
            if super::engine::is_absent(v) {
                continue;
            }
            if let Some(out) = super::engine::convert(v, *conv) {
                super::engine::put(e, path, *conv, out);
                fields.remove(*key);
                changed = true;
            }
        }
    }
    if changed {
        e.1.insert("AdditionalFields".into(), Value::Object(fields));
    }
}

/// What a `network_endpoint` needs to be one; an endpoint with only a port
/// moves to `unmapped`.
pub const ENDPOINT_IDENTITY: &[&str] = &[
    "ip",
    "uid",
    "name",
    "hostname",
    "svc_name",
    "instance_uid",
    "interface_uid",
    "interface_name",
    "domain",
];

/// Checks both endpoints.
pub fn finish_endpoints(e: &mut Event) {
    require_any(e, "src_endpoint", ENDPOINT_IDENTITY);
    require_any(e, "dst_endpoint", ENDPOINT_IDENTITY);
}

/// System-activity classes need an `actor`. When a row names no initiating
/// process or account, the sensor that reported it is the actor (guide §22).
pub fn actor_or_sensor(e: &mut Event, product: &str) {
    if is_unset(e, "actor") {
        e.set("actor.app_name", product.into());
    }
}

/// Whether the object at `path` is absent or empty: finish steps that move
/// or drop its members leave it empty, and it is pruned before the event
/// goes out.
fn is_unset(e: &Event, path: &str) -> bool {
    match e.get(path) {
        None => true,
        Some(Value::Object(o)) => o.is_empty(),
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_remote_url_that_is_neither_a_url_nor_a_host_stays_whole() {
        let with = |text: &str| {
            let mut e = Event::default();
            e.1.insert("RemoteUrl".into(), json!(text));
            remote_url(&mut e, "dst_endpoint");
            e
        };
        let e = with("https://a.example/x");
        assert_eq!(e.get_str("url.url_string"), Some("https://a.example/x"));
        assert_eq!(e.get_str("dst_endpoint.hostname"), Some("a.example"));
        assert!(!e.1.contains_key("RemoteUrl"));
        let e = with("a.example");
        assert_eq!(e.get_str("dst_endpoint.hostname"), Some("a.example"));
        assert!(!e.1.contains_key("RemoteUrl"));
        // A port, or no host at all: the text is kept for `unmapped`.
        let e = with("a.example:8443");
        assert_eq!(e.get_str("dst_endpoint.hostname"), Some("a.example"));
        assert_eq!(e.1.get("RemoteUrl"), Some(&json!("a.example:8443")));
        let e = with(":a");
        assert_eq!(e.get("dst_endpoint"), None);
        assert_eq!(e.1.get("RemoteUrl"), Some(&json!(":a")));
    }

    #[test]
    fn folder_only_paths_are_joined_with_the_name() {
        let mut e = Event::default();
        e.set("file.name", json!("a.exe"));
        e.set("file.path", json!("C:\\Windows\\"));
        finish_file(&mut e, "file");
        assert_eq!(e.get_str("file.path"), Some("C:\\Windows\\a.exe"));
        assert_eq!(e.get_str("file.parent_folder"), Some("C:\\Windows"));
        assert_eq!(e.get("file.type_id"), Some(&json!(1)));
    }

    #[test]
    fn a_file_without_a_name_takes_it_from_the_path_or_moves_to_unmapped() {
        let mut e = Event::default();
        e.set("file.path", json!("/usr/bin/tar"));
        finish_file(&mut e, "file");
        assert_eq!(e.get_str("file.name"), Some("tar"));

        let mut e = Event::default();
        e.push("process.file.hashes", json!({"algorithm_id": 2, "value": "ab"}));
        e.set("process.pid", json!(4));
        finish_process(&mut e, "process");
        assert!(e.get("process.file").is_none());
        assert_eq!(
            e.get("unmapped.process.file.hashes"),
            Some(&json!([{"algorithm_id": 2, "value": "ab"}]))
        );
    }

    #[test]
    fn a_parent_without_pid_is_kept_under_unmapped() {
        let mut e = Event::default();
        e.set("actor.process.pid", json!(10));
        e.set("actor.process.parent_process.name", json!("explorer.exe"));
        finish_actor(&mut e);
        assert!(e.get("actor.process.parent_process").is_none());
        assert_eq!(e.get_str("unmapped.actor.process.parent_process.name"), Some("explorer.exe"));
    }

    #[test]
    fn pid_zero_alone_means_no_actor_process() {
        let mut e = Event::default();
        e.set("actor.process.pid", json!(0));
        e.set("actor.session.uid", json!("999"));
        finish_actor(&mut e);
        assert!(e.get("actor.process").is_none());
        assert_eq!(e.get_str("actor.session.uid"), Some("999"));
    }

    #[test]
    fn two_moves_to_the_same_place_keep_both() {
        let mut e = Event::default();
        e.set("evidence.file.path", json!("x"));
        e.set("evidence.name", json!("File"));
        move_to_unmapped(&mut e, "evidence.file");
        move_to_unmapped(&mut e, "evidence");
        assert_eq!(e.get("unmapped.evidence"), Some(&json!({"file": {"path": "x"}, "name": "File"})));
    }

    #[test]
    fn device_name_is_split() {
        let mut e = Event::default();
        e.set("device.hostname", json!("ws1.contoso.local"));
        finish_device(&mut e);
        assert_eq!(e.get_str("device.name"), Some("ws1"));
        assert_eq!(e.get_str("device.domain"), Some("contoso.local"));
        assert_eq!(e.get("device.type_id"), Some(&json!(0)));
    }
}
