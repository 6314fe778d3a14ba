//! The Identity* tables of Defender for Identity (guide §10–§12).
//! `Account*` is the account that acted (§0.4); `Target*` is the one acted on.

use super::common;
use super::event::Event;
use super::field::{Context, Conv::*, Field, f, join};
use super::logon::{auth_protocol_id, logon_type_id};
use super::ocsf;
use super::table::{Activity, Product, Shape, Table};
use super::value::V;
use serde_json::Value;

const IDENTITY_KEY: &[&str] = &["ReportId", "Timestamp", "ActionType", "AccountSid", "AccountUpn"];

/// The source and destination of the activity.
const ENDPOINTS: &[Field] = &[
    f("IPAddress", "src_endpoint.ip", Ip),
    f("Port", "src_endpoint.port", Port),
    f("DeviceName", "src_endpoint.hostname", Str),
    f("Location", "src_endpoint.location.country", Str),
    f("DestinationIPAddress", "dst_endpoint.ip", Ip),
    f("DestinationPort", "dst_endpoint.port", Port),
    f("DestinationDeviceName", "dst_endpoint.hostname", Str),
];

/// The account that logged on (IdentityLogonEvents).
const LOGON_USER: &[Field] = &[
    f("AccountName", "user.name", Str),
    f("AccountDomain", "user.domain", Str),
    f("AccountSid", "user.uid", Str),
    f("AccountObjectId", "user.uid_alt", Str),
    f("AccountUpn", "user.email_addr", Email),
    f("AccountDisplayName", "user.full_name", Str),
];

/// The account that acted (query and directory tables).
const ACTOR_USER: &[Field] = &[
    f("AccountName", "actor.user.name", Str),
    f("AccountDomain", "actor.user.domain", Str),
    f("AccountSid", "actor.user.uid", Str),
    f("AccountObjectId", "actor.user.uid_alt", Str),
    f("AccountUpn", "actor.user.email_addr", Email),
    f("AccountDisplayName", "actor.user.full_name", Str),
];

/// The account acted on.
const TARGET_USER: &[Field] = &[
    f("TargetAccountUpn", "user.email_addr", Email),
    f("TargetAccountDisplayName", "user.full_name", Str),
];

// ---------------------------------------------------------------------------
// IdentityLogonEvents → 3002 Authentication
// ---------------------------------------------------------------------------

static LOGON: Shape = Shape {
    fields: &[
        LOGON_USER,
        ENDPOINTS,
        &[f("Application", "service.name", Str), f("FailureReason", "status_detail", Str)],
    ],
    finish: finish_logon,
    gives: &[("user", &["AccountUpn"])],
};

pub static IDENTITY_LOGON_EVENTS: Table = Table {
    name: "IdentityLogonEvents",
    product: Product::Identity,
    key: IDENTITY_KEY,
    activities: &[
        ("LogonSuccess", Activity::new(3002, 1).status(1)),
        ("LogonFailed", Activity::new(3002, 1).status(2)),
    ],
    prefixes: &[],
    fallback: Activity::new(3002, 99),
    shape: &LOGON,
    join: None,
    licence: None,
};

fn finish_logon(e: &mut Event, _ctx: &Context) {
    if let Some(t) = e.take_string("LogonType") {
        e.set("logon_type_id", logon_type_id(&t));
        e.set("logon_type", t);
    }
    if let Some(p) = e.take_string("Protocol") {
        let id = auth_protocol_id(&p);
        e.set("auth_protocol_id", id);
        if id == 12
            && e.get_str("logon_type")
                .is_some_and(|t| t.to_ascii_lowercase().contains("cleartext"))
        {
            e.set("is_cleartext", true);
        }
        e.set("auth_protocol", p);
    }
    // A user needs a name or id; the display name alone is not one.
    if e.get("user.name").is_none() && e.get("user.uid").is_none() {
        e.copy("user.email_addr", "user.name");
    }
    common::require_any(e, "user", &["name", "uid", "account"]);
    common::finish_endpoints(e);
    common::require_any(e, "src_endpoint.location", ocsf::LOCATION_IDENTITY);
}

// ---------------------------------------------------------------------------
// IdentityQueryEvents → 4003 DNS Activity / 4001 Network Activity (guide §11)
// ---------------------------------------------------------------------------

static QUERY: Shape = Shape {
    fields: &[ACTOR_USER, ENDPOINTS, &[f("Protocol", "app_protocol_name", Str)]],
    finish: finish_query,
    gives: &[],
};
static DNS_QUERY: Shape = Shape {
    fields: &[
        ACTOR_USER,
        ENDPOINTS,
        &[f("QueryTarget", "query.hostname", Str), f("QueryType", "query.type", Str)],
    ],
    finish: finish_query,
    gives: &[],
};

pub static IDENTITY_QUERY_EVENTS: Table = Table {
    name: "IdentityQueryEvents",
    product: Product::Identity,
    key: IDENTITY_KEY,
    activities: &[
        ("DNS query", Activity::new(4003, 1).shape(&DNS_QUERY)),
        ("DnsQuery", Activity::new(4003, 1).shape(&DNS_QUERY)),
        ("LDAP query", Activity::new(4001, 99)),
        ("LdapQuery", Activity::new(4001, 99)),
        ("SAMR query", Activity::new(4001, 99)),
    ],
    prefixes: &[],
    fallback: Activity::new(4001, 99),
    shape: &QUERY,
    join: None,
    licence: None,
};

fn finish_query(e: &mut Event, _ctx: &Context) {
    identity_user(e, "actor.user");
    // A DNS query is one by the name asked for; a type alone stays under
    // `unmapped`.
    common::require_any(e, "query", &["hostname"]);
    common::finish_endpoints(e);
    common::require_any(e, "src_endpoint.location", ocsf::LOCATION_IDENTITY);
    if e.get("src_endpoint").is_none() && e.get("dst_endpoint").is_none() {
        // Network classes need an endpoint; the queried target names one.
        e.map_column("TargetDeviceName", "dst_endpoint.hostname", Str);
    }
}

/// A user needs a name or id; fall back to the UPN as the name.
fn identity_user(e: &mut Event, path: &str) {
    if e.get(&join(path, "name")).is_none() && e.get(&join(path, "uid")).is_none() {
        e.copy(&join(path, "email_addr"), &join(path, "name"));
    }
    common::require_any(e, path, &["name", "uid", "account"]);
}

// ---------------------------------------------------------------------------
// IdentityDirectoryEvents → 3001 / 3006 / 1006 / 6002 (guide §12)
// ---------------------------------------------------------------------------

/// The account changed: the target's, from `AdditionalFields`, else the
/// actor's (`finish_directory`).
const CHANGED_USER: (&str, &[&str]) = (
    "user",
    &["TargetAccountUpn", "AdditionalFields", "AccountName", "AccountSid", "AccountUpn"],
);

static DIRECTORY: Shape = Shape {
    fields: &[ACTOR_USER, TARGET_USER, ENDPOINTS],
    finish: finish_directory,
    gives: &[CHANGED_USER],
};
static GROUP: Shape = Shape {
    fields: &[ACTOR_USER, TARGET_USER, ENDPOINTS],
    finish: finish_group,
    gives: &[("group", &["AdditionalFields"]), CHANGED_USER],
};
static TASK: Shape = Shape {
    fields: &[ACTOR_USER, TARGET_USER, ENDPOINTS],
    finish: finish_task,
    gives: &[
        ("job", &["AdditionalFields"]),
        ("device", &["TargetDeviceName", "DestinationDeviceName", "DestinationIPAddress"]),
    ],
};
static SERVICE: Shape = Shape {
    fields: &[ACTOR_USER, TARGET_USER, ENDPOINTS],
    finish: finish_service,
    gives: &[("app", &["AdditionalFields"])],
};

pub static IDENTITY_DIRECTORY_EVENTS: Table = Table {
    name: "IdentityDirectoryEvents",
    product: Product::Identity,
    key: IDENTITY_KEY,
    activities: &[
        ("Account Password changed", Activity::new(3001, 3)),
        ("Account Password expired", Activity::new(3001, 99)),
        ("Security Principal created", Activity::new(3001, 1)),
        ("User Account Created", Activity::new(3001, 1)),
        ("Computer Account Created", Activity::new(3001, 1)),
        ("Device Account Created", Activity::new(3001, 1)),
        ("Security Principal deleted changed", Activity::new(3001, 6)),
        ("Account Disabled changed", Activity::new(3001, 5)),
        ("Account Locked changed", Activity::new(3001, 9)),
        ("Account Unlock changed", Activity::new(3001, 12)),
        ("Group Membership changed", Activity::new(3006, 3).shape(&GROUP)),
        ("Task scheduling", Activity::new(1006, 1).shape(&TASK)),
        ("Service creation", Activity::new(6002, 1).shape(&SERVICE)),
    ],
    prefixes: &[],
    // Every other "... changed", replication, remote execution: 3001 Other.
    fallback: Activity::new(3001, 99),
    shape: &DIRECTORY,
    join: None,
    licence: None,
};

/// AdditionalFields keys of the object acted on.
fn additional_str(e: &Event, keys: &[&str]) -> Option<String> {
    let fields = e.additional_fields()?;
    keys.iter()
        .find_map(|k| fields.get(*k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string))
}

fn finish_directory(e: &mut Event, _ctx: &Context) {
    identity_user(e, "actor.user");
    common::map_additional(
        e,
        &[
            ("TARGET_OBJECT.USER", "user.name", Str),
            ("TARGET_OBJECT.ENTITY_USER", "user.name", Str),
            ("TARGET_OBJECT.SID", "user.uid", Str),
        ],
    );
    // An enable/unlock is the same ActionType as disable/lock, told apart by
    // the new value (guide §12): TO.ACCOUNT_DISABLED true is 5 Disable, false
    // 2 Enable; TO.ACCOUNT_LOCKED false is 12 Unlock. Older rows say
    // TO.ACCOUNT_STATE Enabled/Disabled.
    let new_value = |keys: &[&str]| additional_str(e, keys).map(|s| s.to_ascii_lowercase());
    match e.get("activity_id").and_then(V::as_u64) {
        Some(5) => {
            let disabled = new_value(&["TO.ACCOUNT_DISABLED"])
                .or_else(|| new_value(&["TO.ACCOUNT_STATE"]).map(|s| if s == "enabled" { "false".into() } else { s }));
            if disabled.as_deref() == Some("false") {
                e.set_activity(2);
            }
        }
        Some(9) if new_value(&["TO.ACCOUNT_LOCKED", "TO.ACCOUNT_STATE"]).is_some_and(|s| s == "false" || s == "unlocked") => {
            e.set_activity(12)
        }
        _ => {}
    }
    identity_user(e, "user");
    if e.get("user").is_none() {
        // The account changed is named only by the actor's columns (for
        // example, a password change by the account itself).
        e.copy("actor.user", "user");
    }
    common::finish_endpoints(e);
    common::require_any(e, "src_endpoint.location", ocsf::LOCATION_IDENTITY);
    // IAM classes have a source endpoint only; jobs and app lifecycle neither.
    match e.get("class_uid").and_then(V::as_u64) {
        Some(3001 | 3006) => common::move_to_unmapped(e, "dst_endpoint"),
        Some(1006 | 6002) => {
            common::move_to_unmapped(e, "src_endpoint");
            common::move_to_unmapped(e, "dst_endpoint");
        }
        _ => {}
    }
}

fn finish_group(e: &mut Event, ctx: &Context) {
    let added = additional_str(e, &["TO.GROUP"]);
    let removed = additional_str(e, &["FROM.GROUP"]);
    match (added, removed) {
        (Some(g), _) => {
            common::map_additional(e, &[("TO.GROUP", "group.name", Str)]);
            let _ = g;
        }
        (None, Some(_)) => {
            e.set_activity(4);
            common::map_additional(e, &[("FROM.GROUP", "group.name", Str)]);
        }
        (None, None) => {}
    }
    finish_directory(e, ctx);
    if e.get("group").is_none() {
        // 3006 requires a group; without one the row is an account change.
        e.set_class(3001, 99);
    }
}

fn finish_task(e: &mut Event, ctx: &Context) {
    common::map_additional(e, &[("TaskName", "job.name", Str), ("TARGET_OBJECT.TASK", "job.name", Str)]);
    // The task runs on the target device; rows without TargetDeviceName
    // name it as the destination.
    if !e.map_column("TargetDeviceName", "device.hostname", Str) {
        for (from, to) in [("dst_endpoint.hostname", "device.hostname"), ("dst_endpoint.ip", "device.ip")] {
            if let Some(v) = e.remove(from) {
                e.set(to, v);
            }
        }
    }
    finish_directory(e, ctx);
    if let Some(user) = e.root.remove("user") {
        common::merge(e, "unmapped.user", user);
    }
    if e.get("device").is_some() {
        common::finish_device(e);
    }
}

fn finish_service(e: &mut Event, ctx: &Context) {
    common::map_additional(e, &[("ServiceName", "app.name", Str), ("TARGET_OBJECT.SERVICE", "app.name", Str)]);
    finish_directory(e, ctx);
    if let Some(user) = e.root.remove("user") {
        common::merge(e, "unmapped.user", user);
    }
}

// ---------------------------------------------------------------------------
// IdentityInfo → 5003 User Inventory Info (guide §25), an entity table
// ---------------------------------------------------------------------------

const INFO_FIELDS: &[Field] = &[
    f("AccountObjectId", "user.uid_alt", Str),
    f("AccountName", "user.name", Str),
    f("AccountDomain", "user.domain", Str),
    f("AccountUpn", "user.email_addr", Email),
    f("AccountDisplayName", "user.display_name", Str),
    f("RiskScore", "user.risk_score", Int),
    f("GivenName", "user.ldap_person.given_name", Str),
    f("Surname", "user.ldap_person.surname", Str),
    f("Department", "user.ldap_person.department", Str),
    f("JobTitle", "user.ldap_person.job_title", Str),
    f("EmailAddress", "user.ldap_person.email_addrs", EmailItem),
    f("Manager", "user.ldap_person.manager.name", Str),
    f("Phone", "user.ldap_person.phone_number", Str),
    f("City", "user.ldap_person.location.city", Str),
    f("State", "user.ldap_person.location.region", Str),
    f("DistinguishedName", "user.ldap_person.ldap_dn", Str),
    f("CreatedDateTime", "user.ldap_person.created_time", Time),
    f("DeletedDateTime", "user.ldap_person.deleted_time", Time),
    f("EmployeeId", "user.ldap_person.employee_uid", Str),
    f("CompanyName", "user.org.name", Str),
];

static IDENTITY_INFO_SHAPE: Shape = Shape {
    fields: &[INFO_FIELDS],
    finish: finish_identity_info,
    gives: &[("user", &["OnPremSid", "CloudSid", "AccountObjectId", "AccountUpn"])],
};

pub static IDENTITY_INFO: Table = Table {
    name: "IdentityInfo",
    product: Product::Xdr,
    key: &["AccountObjectId", "ReportId", "Timestamp"],
    activities: &[],
    prefixes: &[],
    fallback: Activity::new(5003, 2),
    shape: &IDENTITY_INFO_SHAPE,
    join: None,
    licence: None,
};

fn finish_identity_info(e: &mut Event, _ctx: &Context) {
    // The SID: on-premises, else the cloud one (S-1-12-1-...).
    if !e.map_column("OnPremSid", "user.uid", Str) {
        e.map_column("CloudSid", "user.uid", Str);
    }
    super::cloud::entra_account(e, "user");
    if let Some(enabled) = e.column("IsAccountEnabled", Bool).as_ref().and_then(Value::as_bool) {
        e.drop_column("IsAccountEnabled");
        if e.get("user.account").is_some() {
            e.set("user.account.is_disabled", !enabled);
        } else {
            e.put_column("IsAccountEnabled", Value::Bool(enabled));
        }
    }
    let kind = e.column("Type", Str);
    let type_id = match kind.as_ref().and_then(Value::as_str) {
        Some("User") => Some(1),
        Some("ServiceAccount") => Some(4),
        Some(_) => Some(99),
        None => None,
    };
    if let Some(id) = type_id {
        e.drop_column("Type");
        e.set("user.type_id", id);
        if id == 99 {
            e.set("user.type", kind.unwrap_or_default());
        }
    }
    let risk = match e
        .column("RiskLevel", Str)
        .as_ref()
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("none") => Some(0),
        Some("low") => Some(1),
        Some("medium") => Some(2),
        Some("high") => Some(3),
        _ => None,
    };
    if let Some(id) = risk {
        e.drop_column("RiskLevel");
        e.set("user.risk_level_id", id);
    }
    // Country: ISO alpha-2 where it is one, else the name as a description
    // of a location the city or region names (a description alone is not
    // one: the column then stays under `unmapped`).
    if let Some(Value::String(c)) = e.column("Country", Str) {
        let c = c.trim().to_string();
        if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) {
            e.drop_column("Country");
            e.set("user.ldap_person.location.country", c.to_ascii_uppercase());
        } else if !c.is_empty() && common::has_any(e.get("user.ldap_person.location"), &["city", "region", "postal_code"]) {
            e.drop_column("Country");
            e.set("user.ldap_person.location.desc", c);
        }
    }
    if let Some(Value::Array(items)) = e.column("OtherMailAddresses", Json)
        && items.iter().all(|a| a.as_str().is_some_and(super::field::is_email))
    {
        e.drop_column("OtherMailAddresses");
        for a in items {
            e.push("user.ldap_person.email_addrs", V::from(a));
        }
    }
    if let Some(Value::Array(groups)) = e.column("GroupMembership", Json)
        && groups.iter().all(|g| g.as_str().is_some_and(|s| !s.is_empty()))
    {
        e.drop_column("GroupMembership");
        for g in groups {
            e.push("user.groups", V::from(serde_json::json!({"name": g})));
        }
    }
    common::require_any(e, "user", &["name", "uid", "account"]);
}
