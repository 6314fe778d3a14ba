//! The tables of Microsoft Defender for Cloud's workloads (guide §31, §32):
//! CloudAuditEvents, the control plane's audit log (Kubernetes, Azure, AWS,
//! GCP) → 6003 API Activity, and CloudProcessEvents, processes of cloud
//! hosts and containers → 1007 Process Activity.

use super::cloud::{self, CLIENT, raw, raw_str, text_of};
use super::common;
use super::event::Event;
use super::field::{Context, Conv::*, Field, f};
use super::table::{ALWAYS, Activity, Product, Shape, Table};
use super::value::V;
use serde_json::{Map, Value, json};

/// The licence both tables need (guide §23.7).
const LICENCE: &str = "Microsoft Defender for Cloud integrated with Defender XDR";

/// The columns that name the cloud resource a row is about, in the order
/// the guide takes the first non-empty one: the documented `ResourceId`
/// and the streamed rows' per-cloud columns.
const RESOURCE_COLUMNS: [&str; 4] = ["ResourceId", "AzureResourceId", "AwsResourceName", "GcpFullResourceName"];

/// The first of `RESOURCE_COLUMNS` the row holds as non-empty text, taken
/// (the others stay for `unmapped`).
fn take_resource(e: &mut Event) -> Option<String> {
    RESOURCE_COLUMNS.into_iter().find_map(|c| {
        let text = e.column_text(c)?.trim().to_string();
        (!text.is_empty()).then(|| {
            e.drop_column(c);
            text
        })
    })
}

/// The last segment of a resource id or path (`.../managedClusters/x` → `x`).
fn last_segment(id: &str) -> &str {
    id.trim_end_matches('/').rsplit('/').next().unwrap_or(id)
}

// ---------------------------------------------------------------------------
// CloudProcessEvents → 1007 Process Activity (guide §32)
// ---------------------------------------------------------------------------

const PROCESS: &[Field] = &[
    f("ProcessId", "process.pid", Int),
    f("FileName", "process.file.name", Str),
    f("FolderPath", "process.file.path", Str),
    f("ProcessCommandLine", "process.cmd_line", Str),
    f("ProcessCreationTime", "process.created_time", Time),
    f("ProcessCurrentWorkingDirectory", "process.working_directory", Str),
    f("AccountName", "process.user.name", Str),
    f("LogonId", "process.session.uid", Str),
    // Strings in this table, unlike `ProcessId`.
    f("ParentProcessId", "process.parent_process.pid", Int),
    f("InitiatingProcessId", "actor.process.pid", Int),
    // The cloud most rows come from; the others' columns in the finish step
    // (two fields to one attribute would keep only the last).
    f("AzureResourceId", "device.uid", Str),
];

static PROCESS_SHAPE: Shape = Shape {
    fields: &[PROCESS],
    finish: finish_process_events,
    gives: &[
        ("actor", ALWAYS),
        ("device", &["ResourceId", "AwsResourceName", "GcpFullResourceName"]),
    ],
};

pub static CLOUD_PROCESS_EVENTS: Table = Table {
    name: "CloudProcessEvents",
    product: Product::DefenderForCloud,
    // `ReportId` is in streamed rows, not in the doc (guide §23.6): without
    // it, the resource, container, process and its creation identify a row.
    key: &[
        "ReportId",
        "AzureResourceId",
        "AwsResourceName",
        "GcpFullResourceName",
        "ContainerId",
        "ProcessId",
        "ProcessCreationTime",
        "Timestamp",
    ],
    activities: &[("ProcessCreated", Activity::new(1007, 1).status(1))],
    prefixes: &[],
    fallback: Activity::new(1007, 99),
    shape: &PROCESS_SHAPE,
    join: None,
    licence: Some(LICENCE),
};

fn finish_process_events(e: &mut Event, _ctx: &Context) {
    // `FileName` holds a path (guide §32): the name is its last segment,
    // and the path, when `FolderPath` does not give it.
    const SEPARATORS: [char; 2] = ['/', '\\'];
    let mut file_name_path = None;
    if let Some(name) = e
        .get_str("process.file.name")
        .filter(|n| n.contains(SEPARATORS))
        .map(|n| n.into_owned())
    {
        if e.get("process.file.path").is_none() {
            e.set("process.file.path", name.clone());
        }
        let leaf = name.rsplit(SEPARATORS).next().unwrap_or_default().to_string();
        match leaf.is_empty() {
            true => common::move_to_unmapped(e, "process.file.name"),
            false => {
                e.set("process.file.name", leaf);
                file_name_path = Some(name);
            }
        }
    }
    common::map_additional(e, &[("uid", "process.user.uid", Str)]);
    common::finish_process(e, "process");
    // `FolderPath` gave another path than `FileName`'s: that one stays
    // under `unmapped` as it came, so neither is lost.
    if let Some(path) = file_name_path
        && e.get_str("process.file.path").is_some_and(|p| *p != *path)
    {
        e.put_column("FileName", Value::String(path));
    }
    // `ProcessName` (a kernel's short name, at most 15 characters) names
    // the process when its file does not; one that differs from the file's
    // name stays under `unmapped`.
    match e.get_str("process.name").map(|n| n.into_owned()) {
        None if e.get("process").is_some() => {
            e.map_column("ProcessName", "process.name", Str);
        }
        Some(name) if e.column_text("ProcessName").is_some_and(|p| p == name) => e.drop_column("ProcessName"),
        _ => {}
    }
    // The parent's name, and the actor's when the actor is the parent.
    let parent = e.get("process.parent_process.pid").and_then(V::as_i64);
    if parent.is_some() && e.map_column("ParentProcessName", "process.parent_process.name", Str) {
        let actor = e.get("actor.process.pid").and_then(V::as_i64);
        if actor == parent {
            e.copy("process.parent_process.name", "actor.process.name");
        }
    }
    // The device is the cluster or VM the resource id names, not a node.
    if e.get("device.uid").is_none()
        && let Some(id) = take_resource(e)
    {
        e.set("device.uid", id);
    }
    if let Some(id) = e.get_str("device.uid").map(|id| last_segment(&id).to_string()) {
        e.set("device.name", id);
        e.set("device.type_id", 0);
        e.set("device.type", "Unknown");
    }
    common::finish_actor(e);
    common::actor_or_sensor(e, Product::DefenderForCloud.name());
}

// ---------------------------------------------------------------------------
// CloudAuditEvents → 6003 API Activity (guide §31)
// ---------------------------------------------------------------------------

const AUDIT: &[Field] = &[
    f("OperationName", "api.operation", Str),
    f("DataSource", "api.service.name", Str),
    f("Account", "actor.user.uid", Str),
];

static AUDIT_SHAPE: Shape = Shape {
    fields: &[AUDIT, CLIENT],
    finish: finish_audit,
    gives: &[("actor", &["RawEventData", "UserAgent"]), ("src_endpoint", &["DataSource"])],
};

/// The documented ActionTypes, and the streamed rows' `CloudAuditEvent…`
/// spelling of each (guide §31 matches on the suffix).
pub static CLOUD_AUDIT_EVENTS: Table = Table {
    name: "CloudAuditEvents",
    product: Product::DefenderForCloud,
    key: &["ReportId", "Timestamp"],
    activities: &[
        ("Create", Activity::new(6003, 1)),
        ("CloudAuditEventCreate", Activity::new(6003, 1)),
        ("Read", Activity::new(6003, 2)),
        ("CloudAuditEventRead", Activity::new(6003, 2)),
        ("Update", Activity::new(6003, 3)),
        ("CloudAuditEventUpdate", Activity::new(6003, 3)),
        ("Delete", Activity::new(6003, 4)),
        ("CloudAuditEventDelete", Activity::new(6003, 4)),
        ("Other", Activity::new(6003, 99)),
        ("CloudAuditEventOther", Activity::new(6003, 99)),
        ("Unknown", Activity::new(6003, 0)),
        ("CloudAuditEventUnknown", Activity::new(6003, 0)),
    ],
    prefixes: &[],
    fallback: Activity::new(6003, 99),
    shape: &AUDIT_SHAPE,
    join: None,
    licence: Some(LICENCE),
};

/// The members of `RawEventData` the audit step reads: Kubernetes',
/// Azure's and AWS's request id, outcome, caller and object.
const AUDIT_RAW_KEYS: &[&str] = &[
    "AuditID",
    "correlationId",
    "eventID",
    "ResponseStatus",
    "status",
    "errorCode",
    "User",
    "ObjectRef",
    "Annotations",
];

fn finish_audit(e: &mut Event, _ctx: &Context) {
    let raw = raw(e, AUDIT_RAW_KEYS);
    if let Some(id) = ["AuditID", "correlationId", "eventID"].iter().find_map(|k| raw_str(&raw, k)) {
        e.set("api.request.uid", id);
    }
    audit_status(e, &raw);
    client_addresses(e);
    // The caller: Kubernetes names its user and groups.
    if let Some(user) = raw.get("User") {
        if let Some(name) = text_of(user.get("username")) {
            e.set("actor.user.name", name);
        }
        for group in user.get("groups").and_then(Value::as_array).into_iter().flatten() {
            if let Some(name) = text_of(Some(group)) {
                e.push("actor.user.groups", json!({ "name": name }));
            }
        }
    }
    audit_resource(e, &raw);
    // Kubernetes' authorization decision and the RBAC rule behind it.
    if let Some(Value::Object(notes)) = raw.get("Annotations") {
        let decision = text_of(notes.get("authorization.k8s.io/decision"));
        let reason = text_of(notes.get("authorization.k8s.io/reason"));
        if decision.is_some() || reason.is_some() {
            let mut authorization = Map::new();
            if let Some(d) = decision {
                authorization.insert("decision".into(), d.into());
            }
            if let Some(r) = reason {
                authorization.insert("policy".into(), json!({"desc": r, "type": "Kubernetes RBAC"}));
            }
            e.push("authorizations", Value::Object(authorization));
        }
    }
    // Groups alone do not name a user.
    common::require_any(e, "actor.user", super::ocsf::identity("user"));
    // 6003 requires an actor: without a caller, the client that called.
    if !common::has_any(e.get("actor"), super::ocsf::identity("actor"))
        && let Some(agent) = e.get_str("http_request.user_agent").map(|a| a.into_owned())
    {
        e.set("actor.app_name", agent);
    }
    let service = e.get_str("api.service.name").map(|s| s.into_owned());
    cloud::service_endpoint(e, service);
    common::finish_endpoints(e);
}

/// The outcome, read from `RawEventData` as each cloud writes it (guide
/// §31): Kubernetes' HTTP status code, Azure's `status`, AWS's `errorCode`.
fn audit_status(e: &mut Event, raw: &Map<String, Value>) {
    let code = raw.get("ResponseStatus").and_then(|s| s.get("code")).and_then(Value::as_i64);
    let azure = match raw.get("status") {
        Some(Value::String(s)) => Some(s.as_str()),
        Some(Value::Object(o)) => o.get("value").and_then(Value::as_str),
        _ => None,
    };
    let aws = raw.get("errorCode").filter(|c| !c.is_null() && c.as_str() != Some(""));
    let success = match (code, azure.map(str::to_ascii_lowercase).as_deref(), aws) {
        (Some(code), _, _) => {
            e.set("http_response.code", code);
            e.set("api.response.code", code);
            Some(code < 400)
        }
        (None, Some("succeeded"), _) => Some(true),
        (None, Some("failed"), _) => Some(false),
        (None, _, Some(_)) => Some(false),
        (None, _, None) if raw.contains_key("eventID") => Some(true),
        _ => None,
    };
    if let Some(ok) = success {
        let (id, name) = if ok { (1, "Success") } else { (2, "Failure") };
        e.set("status_id", id);
        e.set("status", name);
    }
}

/// `IPAddress` as a comma list (streamed rows, guide §23.3): the first
/// address is the client's, the rest the proxies it came through. A list
/// with anything but addresses stays in the row.
fn client_addresses(e: &mut Event) {
    // The first source fills the address (docs/mapping.md, rule 21).
    if e.get("src_endpoint.ip").is_some() {
        return;
    }
    let Some(list) = e.column_text("IPAddress").filter(|l| l.contains(',')) else {
        return;
    };
    let parts: Vec<String> = list.split(',').map(|p| p.trim().to_string()).collect();
    if !parts.iter().all(|p| p.parse::<std::net::IpAddr>().is_ok()) {
        return;
    }
    e.drop_column("IPAddress");
    let mut parts = parts.into_iter();
    if let Some(first) = parts.next() {
        e.set("src_endpoint.ip", first);
    }
    for ip in parts {
        e.push("src_endpoint.intermediate_ips", ip);
    }
}

/// The resource the call is about: its id (the first resource column), and
/// for Kubernetes the kind and namespace of the object.
fn audit_resource(e: &mut Event, raw: &Map<String, Value>) {
    let mut resource = Map::new();
    if let Some(id) = take_resource(e) {
        resource.insert("uid".into(), id.into());
    }
    let object = raw.get("ObjectRef");
    for (member, to) in [("resource", "type"), ("namespace", "namespace")] {
        if let Some(v) = text_of(object.and_then(|o| o.get(member))) {
            resource.insert(to.into(), v.into());
        }
    }
    // A resource is one by its id or name (OCSF `resource_details`).
    if resource.contains_key("uid") || resource.contains_key("name") {
        resource.insert("role_id".into(), 1.into());
        resource.insert("role".into(), "Target".into());
        e.push("resources", Value::Object(resource));
    }
}
