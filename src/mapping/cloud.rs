//! What the cloud, Entra ID and Graph tables share (guide §23): the client's
//! network context, Entra accounts, and API Activity's verb rule.

use super::event::Event;
use super::field::{Conv::*, Field, f};
use super::value::V;
use serde_json::{Map, Value};

/// The client's address and location (guide §23.3). `Isp` is spelled `ISP`
/// in streamed rows; a row holds one of the two.
pub const CLIENT: &[Field] = &[
    f("IPAddress", "src_endpoint.ip", Ip),
    f("IpAddress", "src_endpoint.ip", Ip),
    f("CountryCode", "src_endpoint.location.country", Str),
    f("City", "src_endpoint.location.city", Str),
    f("State", "src_endpoint.location.region", Str),
    f("Isp", "src_endpoint.isp", Str),
    f("ISP", "src_endpoint.isp", Str),
    f("UserAgent", "http_request.user_agent", Str),
];

/// `Latitude`/`Longitude` (text) as the client location's floats; a
/// value that is not a number stays in the row, and so do both where the
/// row names no city, country, region or postal code, as OCSF's location
/// needs one of those.
pub fn coordinates(e: &mut Event) {
    if !super::common::has_any(e.get("src_endpoint.location"), super::ocsf::LOCATION_IDENTITY) {
        return;
    }
    for (column, path) in [
        ("Latitude", "src_endpoint.location.lat"),
        ("Longitude", "src_endpoint.location.long"),
    ] {
        let number = match e.column(column, Str) {
            Some(Value::String(s)) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
            _ => None,
        };
        if let Some(n) = number {
            e.drop_column(column);
            e.set(path, Value::from(n));
        }
    }
}

/// `Country` (two letters in the Entra tables) as the client's country;
/// anything longer stays in the row (OCSF wants ISO 3166-1 alpha-2).
pub fn country(e: &mut Event) {
    if let Some(Value::String(c)) = e.column("Country", Str) {
        let c = c.trim();
        if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) {
            e.set("src_endpoint.location.country", c.to_ascii_uppercase());
            e.drop_column("Country");
        }
    }
}

/// `OSPlatform` of a client as `src_endpoint.os` (name and type), and
/// `DeviceType` as `src_endpoint.type_id` (guide §24.2).
pub fn client_device(e: &mut Event) {
    if let Some(name) = e.take_string("OSPlatform") {
        let lower = name.to_ascii_lowercase();
        let id = if lower.is_empty() || lower == "unknown" {
            0
        } else {
            super::inventory::os_type_id(&name)
        };
        e.set("src_endpoint.os.type_id", id);
        e.set("src_endpoint.os.name", name);
    }
    if let Some(kind) = e.take_string("DeviceType") {
        let id = match kind.to_ascii_lowercase().as_str() {
            "desktop" => 2,
            "laptop" => 3,
            "tablet" => 4,
            "mobile" => 5,
            "" => 0,
            _ => 99,
        };
        e.set("src_endpoint.type_id", id);
        if id == 99 {
            e.set("src_endpoint.type", kind);
        }
    }
}

/// Whether `s` is shaped like a GUID (an Entra object or application id).
pub fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12]) && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Completes the Entra account of the user at `path` (guide §23.2): the
/// object id already in `<path>.uid_alt` is also `<path>.account.uid`, an
/// Azure AD Account; the UPN in `<path>.email_addr` names the account and,
/// when the row has no account name, the user.
pub fn entra_account(e: &mut Event, path: &str) {
    let join = super::field::join;
    if let Some(id) = e.get_str(&join(path, "uid_alt")).map(|s| s.into_owned()) {
        e.set_owned(&join(path, "account.uid"), id);
        e.set_owned(&join(path, "account.type_id"), 6);
        e.set_owned(&join(path, "account.type"), "Azure AD Account");
    }
    if let Some(upn) = e.get_str(&join(path, "email_addr")).map(|s| s.into_owned()) {
        if e.get(&join(path, "account")).is_some() {
            e.set_owned(&join(path, "account.name"), upn.clone());
        }
        if e.get(&join(path, "name")).is_none() {
            e.set_owned(&join(path, "name"), upn);
        }
    }
}

/// The 6003 API Activity of an operation name (guide §24.1's verb rule):
/// its first word, or its cmdlet verb, says Create, Read, Update or Delete;
/// otherwise 99 Other.
pub fn api_activity(operation: &str) -> u32 {
    let op = operation.trim().trim_end_matches('.');
    let first: String = match op.split_once(['-', ' ', '.']) {
        Some((verb, _)) => verb.to_string(),
        // CamelCase: the first word (UpdateInboxRules → Update).
        None => op
            .chars()
            .enumerate()
            .take_while(|(i, c)| *i == 0 || !c.is_ascii_uppercase())
            .map(|(_, c)| c)
            .collect(),
    };
    let lower = op.to_ascii_lowercase();
    match first.to_ascii_lowercase().as_str() {
        "add" | "new" | "create" | "register" | "install" | "upload" => 1,
        "get" | "read" | "view" | "search" | "list" | "export" | "preview" => 2,
        "set" | "update" | "modify" | "change" | "edit" | "enable" | "disable" | "write" | "rename" | "move" | "restore" => 3,
        "remove" | "delete" | "uninstall" | "purge" => 4,
        _ if ["accessed", "viewed", "read"].iter().any(|s| lower.ends_with(s)) => 2,
        _ if ["updated", "modified", "changed"].iter().any(|s| lower.ends_with(s)) => 3,
        _ if ["deleted", "removed"].iter().any(|s| lower.ends_with(s)) => 4,
        _ => 99,
    }
}

/// The client address a service-generated row lacks: API classes require a
/// `src_endpoint`, so the emitting service names it (guide §23.3).
pub fn service_endpoint(e: &mut Event, service: Option<String>) {
    let has = matches!(e.get("src_endpoint"), Some(V::Obj(o)) if super::ocsf::ENDPOINT_IDENTITY.iter().any(|k| o.contains_key(k)));
    if !has && let Some(s) = service {
        e.set("src_endpoint.svc_name", s);
    }
}

/// The members `keys` of `RawEventData` as an object (JSON text or value);
/// it stays under `unmapped` verbatim (guide §23.4, §24.2), so only read
/// here. The record is large and a step reads a few of its members: only
/// those are parsed.
pub fn raw(e: &Event, keys: &[&str]) -> Map<String, Value> {
    let cell = e.row.get(e.columns, "RawEventData");
    let text = cell.and_then(|c| c.json_text());
    if let Some((members, _)) = text.as_deref().and_then(super::cells::members) {
        // A member given twice means its last value, as in a parsed object.
        return members
            .into_iter()
            .filter(|(k, _)| keys.contains(&k.as_ref()))
            .filter_map(|(k, v)| Some((k.into_owned(), serde_json::from_str(v).ok()?)))
            .collect();
    }
    match e.column("RawEventData", Json) {
        Some(Value::Object(mut m)) => {
            m.retain(|k, _| keys.contains(&k.as_str()));
            m
        }
        _ => Map::new(),
    }
}

/// The member `key` of what [`raw`] read, if it is text that is not blank,
/// trimmed.
pub fn raw_str(raw: &Map<String, Value>, key: &str) -> Option<String> {
    text_of(raw.get(key))
}

/// `v`, if it is text that is not blank, trimmed (a member read from a
/// record such as `RawEventData`, at any depth).
pub fn text_of(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verb_rule_reads_words_cmdlets_and_camel_case() {
        for (op, id) in [
            ("Add user.", 1),
            ("New-InboxRule", 1),
            ("MailItemsAccessed", 2),
            ("Set-Mailbox", 3),
            ("UpdateInboxRules", 3),
            ("Write Deployments", 3),
            ("Remove-InboxRule", 4),
            ("FileDeleted", 4),
            ("AirInvestigationData", 99),
            ("MessageReadReceiptReceived", 99),
        ] {
            assert_eq!(api_activity(op), id, "{op}");
        }
    }

    #[test]
    fn guids() {
        assert!(is_guid("007c979b-47e7-4747-b9a3-58de6bdb275a"));
        assert!(!is_guid("airinvestigation"));
    }
}
