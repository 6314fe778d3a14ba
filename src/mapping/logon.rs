//! Logons: DeviceLogonEvents (guide §9), and the logon types and
//! authentication protocols it shares with IdentityLogonEvents.

use super::common::{self, DEVICE, INITIATING_PROCESS};
use super::device::DEVICE_KEY;
use super::event::Event;
use super::field::{Context, Conv::*, Field, f};
use super::table::{Activity, Product, Shape, Table};
use super::value::V;
use serde_json::Value;

// ---------------------------------------------------------------------------
// DeviceLogonEvents → 3002 Authentication (guide §9)
// ---------------------------------------------------------------------------

const LOGON: &[Field] = &[
    f("AccountName", "user.name", Str),
    f("AccountDomain", "user.domain", Str),
    f("AccountSid", "user.uid", Str),
    f("FailureReason", "status_detail", Str),
    f("RemoteIP", "src_endpoint.ip", Ip),
    f("RemotePort", "src_endpoint.port", Port),
    f("RemoteDeviceName", "src_endpoint.hostname", Str),
    f("LogonId", "session.uid", Str),
];

static LOGON_SHAPE: Shape = Shape {
    fields: &[DEVICE, LOGON, INITIATING_PROCESS],
    finish: finish_logon,
    gives: &[("dst_endpoint", &["DeviceId", "DeviceName"])],
};

pub static DEVICE_LOGON_EVENTS: Table = Table {
    name: "DeviceLogonEvents",
    product: Product::Endpoint,
    key: DEVICE_KEY,
    activities: &[
        ("LogonSuccess", Activity::new(3002, 1).status(1)),
        ("LogonFailed", Activity::new(3002, 1).status(2)),
        ("LogonAttempted", Activity::new(3002, 1).status(0)),
    ],
    prefixes: &[],
    fallback: Activity::new(3002, 99),
    shape: &LOGON_SHAPE,
    join: None,
    licence: None,
};

/// Windows logon types to OCSF `logon_type_id`.
pub(crate) fn logon_type_id(text: &str) -> u32 {
    match text.to_ascii_lowercase().replace([' ', '_'], "").as_str() {
        "interactive" => 2,
        "network" => 3,
        "batch" => 4,
        "service" => 5,
        "unlock" => 7,
        "networkcleartext" => 8,
        "newcredentials" => 9,
        "remoteinteractive" | "remotedesktop" => 10,
        "cachedinteractive" => 11,
        "cachedremoteinteractive" => 12,
        "cachedunlock" => 13,
        _ => 99,
    }
}

/// Authentication protocols to OCSF `auth_protocol_id`.
pub(crate) fn auth_protocol_id(text: &str) -> u32 {
    match text.to_ascii_lowercase().as_str() {
        "ntlm" => 1,
        "kerberos" => 2,
        "ldap" => 12,
        _ => 99,
    }
}

fn finish_logon(e: &mut Event, _ctx: &Context) {
    if let Some(t) = e.take_string("LogonType") {
        e.set("logon_type_id", logon_type_id(&t));
        e.set("logon_type", t);
    }
    if let Some(p) = e.take_string("Protocol") {
        e.set("auth_protocol_id", auth_protocol_id(&p));
        e.set("auth_protocol", p);
    }
    // true makes the user an Admin; false says nothing OCSF's user types
    // can hold (not an admin is not "User"), so it stays under `unmapped`.
    if e.column("IsLocalAdmin", Bool) == Some(Value::Bool(true)) {
        e.drop_column("IsLocalAdmin");
        e.set("user.type_id", 2);
        e.set("user.type", "Admin");
    }
    common::map_additional(e, &[("IsLocalLogon", "unmapped_is_local_logon", Bool)]);
    if let Some(local) = e.root.remove("unmapped_is_local_logon").as_ref().and_then(V::as_bool) {
        e.set("is_remote", !local);
    }
    common::finish_endpoints(e);
    common::finish_device(e);
    // The device logged on to is the destination (3002 needs one).
    e.copy("device.uid", "dst_endpoint.uid");
    e.copy("device.hostname", "dst_endpoint.hostname");
    common::require_any(e, "user", &["name", "uid", "account"]);
    common::finish_actor(e);
}
