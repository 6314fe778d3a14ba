//! AlertInfo and AlertEvidence → 2004 Detection Finding (guide §1–§2).
//! An evidence row becomes one `evidences[]` entry; on its own (no alert row
//! in the same window) it is a valid finding with activity 2 Update.

use super::common;
use super::event::Event;
use super::field::{Context, Conv::*, Field, f};
use super::fold;
use super::table::{Activity, Product, Shape, Table};
use super::value::{Obj, V};
use serde_json::{Value, json};
use std::borrow::Cow;

const ALERT: &[Field] = &[
    f("AlertId", "finding_info.uid", Str),
    f("Title", "finding_info.title", Str),
    f("Category", "finding_info.types", Item),
    f("ServiceSource", "finding_info.product.name", Str),
    f("DetectionSource", "finding_info.product.feature.name", Str),
];

/// Evidence columns, gathered under a temporary `evidence` object that
/// `evidence_entry` turns into the `evidences[]` entry its EntityType says.
pub(crate) const EVIDENCE: &[Field] = &[
    f("FileName", "evidence.file.name", Str),
    f("FolderPath", "evidence.file.path", Str),
    f("SHA1", "evidence.file.hashes", Hash(2)),
    f("SHA256", "evidence.file.hashes", Hash(3)),
    f("FileSize", "evidence.file.size", Int),
    f("ProcessCommandLine", "evidence.process.cmd_line", Str),
    f("AccountName", "evidence.user.name", Str),
    f("AccountDomain", "evidence.user.domain", Str),
    f("AccountSid", "evidence.user.uid", Str),
    f("AccountObjectId", "evidence.user.uid_alt", Str),
    f("AccountUpn", "evidence.user.email_addr", Email),
    f("DeviceId", "evidence.device.uid", Str),
    f("DeviceName", "evidence.device.hostname", Str),
    f("LocalIP", "evidence.src_endpoint.ip", Ip),
    f("RemoteIP", "evidence.dst_endpoint.ip", Ip),
    f("RemoteUrl", "evidence.url.url_string", Str),
    f("NetworkMessageId", "evidence.email.uid", Str),
    f("EmailSubject", "evidence.email.subject", Str),
    f("RegistryKey", "evidence.reg_key.path", Str),
    f("EntityType", "evidence.name", Str),
];

/// An `evidences[]` entry needs one of these (OCSF 1.8.0 `evidences` constraint).
const EVIDENCE_MEMBERS: &[&str] = &[
    "actor",
    "api",
    "connection_info",
    "data",
    "database",
    "databucket",
    "device",
    "dst_endpoint",
    "email",
    "file",
    "process",
    "query",
    "src_endpoint",
    "url",
    "user",
    "job",
    "script",
    "reg_key",
    "reg_value",
    "win_service",
];

static ALERT_SHAPE: Shape = Shape {
    fields: &[ALERT],
    finish: finish_alert,
    gives: &[],
};
static EVIDENCE_SHAPE: Shape = Shape {
    fields: &[ALERT, EVIDENCE],
    finish: finish_evidence,
    gives: &[],
};

pub static ALERT_INFO: Table = Table {
    name: "AlertInfo",
    product: Product::Xdr,
    key: &["AlertId", "Timestamp"],
    activities: &[],
    prefixes: &[],
    fallback: Activity::new(2004, 1),
    shape: &ALERT_SHAPE,
    join: None,
    licence: None,
};

pub static ALERT_EVIDENCE: Table = Table {
    name: "AlertEvidence",
    product: Product::Xdr,
    key: &[
        "AlertId",
        "Timestamp",
        "EntityType",
        "EvidenceRole",
        "DeviceId",
        "FileName",
        "SHA1",
        "AccountSid",
        "AccountObjectId",
        "RemoteIP",
        "RemoteUrl",
        "NetworkMessageId",
        "RegistryKey",
        "ProcessCommandLine",
    ],
    activities: &[],
    prefixes: &[],
    fallback: Activity::new(2004, 2),
    shape: &EVIDENCE_SHAPE,
    join: Some(super::table::Join {
        leader: "AlertInfo",
        only_without_deprecated: false,
        fold: fold_evidence,
    }),
    licence: None,
};

/// Alert severity to OCSF `severity_id` (guide §1); a value OCSF has no id
/// for is 99 Other with its own text.
pub(crate) fn severity_id(text: &str) -> (u32, String) {
    match text.to_ascii_lowercase().as_str() {
        "informational" => (1, "Informational".into()),
        "low" => (2, "Low".into()),
        "medium" => (3, "Medium".into()),
        "high" => (4, "High".into()),
        "" | "unknown" => (0, "Unknown".into()),
        _ => (99, text.to_string()),
    }
}

/// "Name (T1234.001)" entries to `attacks[]`; ids with a dot are sub-techniques.
pub(crate) fn attacks(items: &[Value]) -> Option<Vec<Value>> {
    let mut out = Vec::new();
    for item in items {
        let text = item.as_str()?;
        let (name, uid) = match text.rsplit_once('(') {
            Some((n, rest)) => (n.trim(), rest.trim_end_matches(')').trim()),
            None => (text.trim(), ""),
        };
        if !uid.starts_with('T') {
            return None;
        }
        let technique = json!({"uid": uid, "name": name});
        out.push(match uid.split_once('.') {
            Some((parent, _)) => json!({"technique": {"uid": parent}, "sub_technique": technique}),
            None => json!({"technique": technique}),
        });
    }
    Some(out)
}

fn finish_alert(e: &mut Event, _ctx: &Context) {
    // A finding without a severity has an unknown one, not Informational.
    let (id, name) = match e.take_column("Severity") {
        Some(Value::String(s)) => severity_id(&s),
        Some(other) => {
            e.put_column("Severity", other);
            (0, "Unknown".into())
        }
        None => (0, "Unknown".into()),
    };
    e.set("severity_id", id);
    e.set("severity", name);
    // An empty `AttackTechniques` ("" or null) is absent: it reaches
    // neither the event nor `unmapped`.
    if let Some(Value::Array(items)) = e.column("AttackTechniques", Json)
        && let Some(list) = attacks(&items)
    {
        e.drop_column("AttackTechniques");
        if !list.is_empty() {
            e.set("finding_info.attacks", Value::Array(list));
        }
    }
    if let Some(Value::Array(items)) = e.column("Categories", Json)
        && items.iter().all(Value::is_string)
    {
        e.drop_column("Categories");
        for item in items {
            e.push("finding_info.types", item);
        }
    }
    if e.get("finding_info.product").is_some() {
        e.set("finding_info.product.vendor_name", "Microsoft");
        common::require_any(e, "finding_info.product", &["name", "uid"]);
    }
    e.set("is_alert", true);
}

fn finish_evidence(e: &mut Event, ctx: &Context) {
    finish_alert(e, ctx);
    evidence_entry(e);
}

/// Turns the columns gathered under `evidence` into the `evidences[]`
/// entry its EntityType says (guide §2; BehaviorEntities too, §28).
pub(crate) fn evidence_entry(e: &mut Event) {
    if let Some(family) = e.take_string("ThreatFamily") {
        e.push("malware", V::from(json!({"name": family, "classification_ids": [0]})));
    }
    let entity = e.get_str("evidence.name").as_deref().unwrap_or("").to_ascii_lowercase();
    // A process's image is its file.
    if entity == "process" {
        if let Some(file) = e.remove("evidence.file") {
            e.set("evidence.process.file", file);
        }
        common::map_additional(e, &[("ProcessId", "evidence.process.pid", Int)]);
    }
    // An IP entity names one address (in RemoteIP or LocalIP), and
    // EvidenceDirection says which end of the connection it was (guide §2).
    let side = match e.column_text("EvidenceDirection").as_deref() {
        Some(d) if d.eq_ignore_ascii_case("Source") => Some("src_endpoint"),
        Some(d) if d.eq_ignore_ascii_case("Destination") => Some("dst_endpoint"),
        _ => None,
    };
    if let (Some(side), Some(ev)) = (side, e.root.get_mut("evidence").and_then(V::as_obj_mut)) {
        let ends = ["src_endpoint", "dst_endpoint"].map(|k| ev.contains_key(k));
        if ends == [true, false] || ends == [false, true] {
            let end = ev.remove("src_endpoint").or_else(|| ev.remove("dst_endpoint"));
            if let Some(end) = end {
                ev.insert(side, end);
            }
        }
    }
    if entity == "mailmessage" {
        // The message's sender and recipient are in AdditionalFields:
        // P2Sender is the header From, Sender the envelope (P1) sender.
        common::map_additional(
            e,
            &[
                ("P2Sender", "evidence.email.from", Email),
                ("Sender", "evidence.email.smtp_from", Email),
                ("Recipient", "evidence.email.to", EmailItem),
                ("InternetMessageId", "evidence.email.message_uid", Str),
            ],
        );
    }
    if let Some(key) = e.get_str("evidence.reg_key.path").map(std::borrow::Cow::into_owned)
        && e.map_column("RegistryValueName", "evidence.reg_value.name", Str)
    {
        e.set("evidence.reg_value.path", key);
        e.map_column("RegistryValueData", "evidence.reg_value.data", Str);
    }
    if let Some(app) = e.take_string("Application") {
        // An application is a resource; `data` makes the entry a valid evidence.
        let mut resource = json!({"name": app});
        if let Some(id) = e.take_text("ApplicationId") {
            resource["uid"] = id.into();
        }
        e.set("evidence.data", V::from(json!({"application": resource.clone()})));
        e.push("evidence.resources", V::from(resource));
    }
    common::finish_file(e, "evidence.file");
    common::finish_process(e, "evidence.process");
    common::require_any(e, "evidence.process", &["pid", "uid", "cpid"]);
    common::require_any(e, "evidence.user", &["name", "uid", "account"]);
    common::require_any(e, "evidence.email", &["from", "to"]);
    if e.get("evidence.device").is_some() {
        e.set("evidence.device.type_id", 0);
        e.set("evidence.device.type", "Unknown");
    }
    common::require_any(e, "evidence.src_endpoint", super::ocsf::ENDPOINT_IDENTITY);
    common::require_any(e, "evidence.dst_endpoint", super::ocsf::ENDPOINT_IDENTITY);
    if e.get("evidence.reg_key").is_some() || e.get("evidence.reg_value").is_some() {
        common::windows_extension(e);
    }
    if let Some(V::Obj(evidence)) = e.root.remove("evidence") {
        if evidence.iter().any(|(k, _)| EVIDENCE_MEMBERS.contains(&k)) {
            e.push("evidences", V::Obj(evidence));
        } else {
            common::merge(e, "unmapped.evidence", V::Obj(evidence));
        }
    }
}

/// Folds evidence events into the finding of their alert (joined on
/// `finding_info.uid`): their `evidences[]`, `malware[]` and `resources[]`
/// join the alert's, and what they kept under `unmapped` is kept under the
/// alert's `unmapped.<their table>` (AlertEvidence, BehaviorEntities).
/// The positions of the evidence whose alert is not among `alerts` are
/// returned: those events stand alone, untouched.
pub fn fold_evidence<'a>(alerts: &mut [Obj<'a>], evidence: &mut [Obj<'a>]) -> Vec<usize> {
    let index = fold::index(alerts, "finding_info.uid");
    let mut alone = Vec::new();
    for (at, ev) in evidence.iter_mut().enumerate() {
        let Some(&first) = fold::leaders_of(&index, ev.at("finding_info.uid")).first() else {
            alone.push(at);
            continue;
        };
        let alert = &mut alerts[first];
        for list in ["evidences", "malware", "resources"] {
            if let Some(V::Arr(items)) = ev.remove(list) {
                fold::append(alert, list, items);
            }
        }
        let table = fold::table_of(ev, "AlertEvidence");
        if let Some(kept) = ev.remove("unmapped") {
            fold::keep_unmapped(alert, table, kept);
        }
        if let Some(extensions) = ev.at("metadata.extensions").cloned() {
            alert
                .child("metadata", || Cow::Borrowed("metadata"))
                .insert("extensions", extensions);
        }
    }
    alone
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The fold as it was before the index (a search of every alert for
    /// each evidence, on `serde_json` values): the oracle.
    fn reference(alerts: &mut [Value], evidence: Vec<Value>) -> Vec<Value> {
        let mut alone = Vec::new();
        for ev in evidence {
            let uid = ev.pointer("/finding_info/uid").cloned();
            let Some(alert) = alerts
                .iter_mut()
                .find(|a| uid.is_some() && a.pointer("/finding_info/uid") == uid.as_ref())
            else {
                alone.push(ev);
                continue;
            };
            for list in ["evidences", "malware", "resources"] {
                if let Some(Value::Array(items)) = ev.get(list) {
                    let entry = alert.as_object_mut().unwrap().entry(list).or_insert_with(|| json!([]));
                    if let Value::Array(l) = entry {
                        l.extend(items.iter().cloned());
                    }
                }
            }
            if let Some(u) = ev.get("unmapped") {
                let table = ev.pointer("/metadata/log_name").and_then(Value::as_str).unwrap_or("AlertEvidence");
                let unmapped = alert.as_object_mut().unwrap().entry("unmapped").or_insert_with(|| json!({}));
                if let Some(Value::Array(l)) = unmapped.as_object_mut().map(|u| u.entry(table).or_insert_with(|| json!([]))) {
                    l.push(u.clone());
                }
            }
            if ev.pointer("/metadata/extensions").is_some() {
                alert["metadata"]["extensions"] = ev["metadata"]["extensions"].clone();
            }
        }
        alone
    }

    fn event(log_name: &'static str) -> impl Strategy<Value = Value> {
        (fold::some_key(), any::<[bool; 5]>(), 0..100u32).prop_map(move |(uid, has, n)| {
            let mut e = json!({"metadata": {"log_name": log_name}, "finding_info": {}});
            if let Some(uid) = uid {
                e["finding_info"]["uid"] = uid;
            }
            for (list, on) in ["evidences", "malware", "resources"].into_iter().zip(has) {
                if on {
                    e[list] = json!([{"n": n}]);
                }
            }
            if has[3] {
                e["unmapped"] = json!({"Column": n});
            }
            if has[4] {
                e["metadata"]["extensions"] = json!([{"uid": n}]);
            }
            e
        })
    }

    /// `AttackTechniques` as Defender writes it (JSON text of a list), as a
    /// value, empty, and as text that names no technique.
    #[test]
    fn attack_techniques_become_attacks_or_stay_under_unmapped() {
        let map = |techniques: Value| {
            let row = json!({"Timestamp": "2025-01-01T00:00:00Z", "AlertId": "a1", "Title": "t", "AttackTechniques": techniques});
            crate::mapping::map_row(&ALERT_INFO, serde_json::from_value(row).unwrap(), &Context::default()).unwrap()
        };
        let listed = json!([{"technique": {"uid": "T1059", "name": "Command and Scripting Interpreter"}}]);
        for given in [
            json!("[\"Command and Scripting Interpreter (T1059)\"]"),
            json!(["Command and Scripting Interpreter (T1059)"]),
        ] {
            let e = map(given);
            assert_eq!(e["finding_info"]["attacks"], listed);
            assert!(e["unmapped"].get("AttackTechniques").is_none(), "{e}");
        }
        for empty in [json!(""), json!("[]"), Value::Null] {
            let e = map(empty.clone());
            assert!(e["finding_info"].get("attacks").is_none(), "{empty}: {e}");
            assert!(e.get("unmapped").and_then(|u| u.get("AttackTechniques")).is_none(), "{empty}: {e}");
        }
        let e = map(json!("lateral movement"));
        assert_eq!(e["unmapped"]["AttackTechniques"], "lateral movement");
        assert!(e["finding_info"].get("attacks").is_none());
    }

    proptest! {
        /// Each evidence goes to the first alert of its uid, as the search
        /// of every alert did; the rest stand alone, in order.
        #[test]
        fn evidence_folds_as_a_search_of_every_alert_would(
            alerts in proptest::collection::vec(event("AlertInfo"), 0..6),
            evidence in proptest::collection::vec(event("AlertEvidence"), 0..8),
        ) {
            fold::folds_alike(fold_evidence, reference, alerts, evidence)?;
        }
    }
}
