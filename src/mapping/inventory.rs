//! The entity tables of Defender for Endpoint: snapshots of devices,
//! network adapters and file certificates (guide §13–§15), mapped to
//! inventory and evidence classes.

use super::common::{self, DEVICE};
use super::event::Event;
use super::field::{Context, Conv::*, Field, f};
use super::table::{Activity, Product, Shape, Table};
use super::value::V;
use serde_json::Value;

// ---------------------------------------------------------------------------
// Entity tables: snapshots of devices, adapters and file certificates, not
// events. They are collected every `entity_interval`, and each collection
// emits one state per entity, identified by these columns (see
// `crate::snapshot`).
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// DeviceInfo → 5001 Device Inventory Info (guide §13)
// ---------------------------------------------------------------------------

const DEVICE_INVENTORY: &[Field] = &[
    f("OSPlatform", "device.os.name", Str),
    f("OSVersion", "device.os.version", Str),
    f("OSBuild", "device.os.build", Str),
    f("Model", "device.model", Str),
    f("Vendor", "device.vendor_name", Str),
    f("AadDeviceId", "device.uid_alt", Str),
    f("RegistryDeviceTag", "device.groups", NamedItem),
];

static DEVICE_INFO_SHAPE: Shape = Shape {
    fields: &[DEVICE, DEVICE_INVENTORY],
    finish: finish_device_info,
    gives: &[],
};

pub static DEVICE_INFO: Table = Table {
    name: "DeviceInfo",
    product: Product::Endpoint,
    key: &["DeviceId", "Timestamp", "ReportId"],
    activities: &[],
    prefixes: &[],
    fallback: Activity::new(5001, 2),
    shape: &DEVICE_INFO_SHAPE,
    join: None,
    licence: None,
};

/// `OSPlatform` to OCSF `os.type_id`.
pub(crate) fn os_type_id(platform: &str) -> u32 {
    let p = platform.to_ascii_lowercase();
    if p.starts_with("windows") {
        100
    } else if p.starts_with("linux") || ["ubuntu", "debian", "rhel", "centos", "suse", "sles"].iter().any(|d| p.contains(d)) {
        200
    } else if p.starts_with("android") {
        201
    } else if p.starts_with("macos") || p.starts_with("mac os") {
        300
    } else if p.starts_with("ios") {
        301
    } else {
        99
    }
}

fn finish_device_info(e: &mut Event, _ctx: &Context) {
    if let Some(name) = e.get_str("device.os.name").map(std::borrow::Cow::into_owned) {
        e.set("device.os.type_id", os_type_id(&name));
    }
    if let Some(Value::String(arch)) = e.column("OSArchitecture", Str) {
        let bits = if arch.contains("64") {
            Some(64)
        } else if arch.contains("32") {
            Some(32)
        } else {
            None
        };
        if let Some(b) = bits {
            e.drop_column("OSArchitecture");
            e.set("device.os.cpu_bits", b);
        }
    }
    if let Some(Value::String(kind)) = e.column("DeviceType", Str) {
        let id = match kind.as_str() {
            "Workstation" => 2,
            "Server" => 1,
            "Mobile" => 5,
            _ => 99,
        };
        e.set("device.type_id", id);
        if id == 99 {
            e.set("device.type", kind);
        }
        e.drop_column("DeviceType");
    }
    if let Some(Value::String(level)) = e.column("ExposureLevel", Str) {
        let id = match level.as_str() {
            "Low" => Some(1),
            "Medium" => Some(2),
            "High" => Some(3),
            _ => None,
        };
        if let Some(id) = id {
            e.drop_column("ExposureLevel");
            e.set("device.risk_level_id", id);
        }
    }
    if let Some(version) = e.take_string("ClientVersion") {
        e.push(
            "device.agent_list",
            serde_json::json!({"name": "Microsoft Defender for Endpoint", "type_id": 1, "type": "Endpoint Detection and Response", "version": version, "vendor_name": "Microsoft"}),
        );
    }
    for tags in ["DeviceManualTags", "DeviceDynamicTags"] {
        if let Some(Value::Array(items)) = e.column(tags, Json)
            && items.iter().all(Value::is_string)
        {
            e.drop_column(tags);
            for item in items {
                e.push("device.groups", serde_json::json!({"name": item}));
            }
        }
    }
    // The first logged-on user is the actor; the full list stays in unmapped.
    if let Some(Value::Array(users)) = e.column("LoggedOnUsers", Json)
        && let Some(Value::Object(first)) = users.first()
    {
        for (key, path) in [
            ("UserName", "actor.user.name"),
            ("DomainName", "actor.user.domain"),
            ("Sid", "actor.user.uid"),
        ] {
            if let Some(Value::String(v)) = first.get(key).filter(|v| !super::field::is_absent(v)) {
                e.set(path, v.clone());
            }
        }
    }
    if e.get("device.os").is_some() {
        e.set_default("device.os.type_id", 0);
        common::require_any(e, "device.os", &["name"]);
    }
    common::finish_device(e);
}

// ---------------------------------------------------------------------------
// DeviceNetworkInfo → 5001 Device Inventory Info (guide §14)
// ---------------------------------------------------------------------------

static DEVICE_NETWORK_INFO_SHAPE: Shape = Shape {
    fields: &[DEVICE, &[f("MacAddress", "device.mac", Str)]],
    finish: finish_device_network_info,
    gives: &[],
};

pub static DEVICE_NETWORK_INFO: Table = Table {
    name: "DeviceNetworkInfo",
    product: Product::Endpoint,
    key: &["DeviceId", "Timestamp", "ReportId", "NetworkAdapterName"],
    activities: &[],
    prefixes: &[],
    fallback: Activity::new(5001, 2),
    shape: &DEVICE_NETWORK_INFO_SHAPE,
    join: None,
    licence: None,
};

fn finish_device_network_info(e: &mut Event, _ctx: &Context) {
    // Defender writes MACs as 00-15-5D-... or as bare hex (000D3A9EC781);
    // OCSF wants colons.
    if let Some(mac) = e.get_str("device.mac").map(|m| normalize_mac(&m)) {
        if is_mac(&mac) {
            e.set("device.mac", mac);
        } else {
            common::move_to_unmapped(e, "device.mac");
        }
    }
    // A name is text; anything else stays under `unmapped`.
    let name = e
        .column("NetworkAdapterName", Str)
        .filter(|n| n.as_str().is_some_and(|n| !n.is_empty()));
    let kind = e.column("NetworkAdapterType", Str);
    let type_id = match kind.as_ref().and_then(Value::as_str) {
        Some("Ethernet") => Some(1),
        Some("Wireless80211") => Some(2),
        Some("Tunnel") => Some(4),
        Some(_) => Some(99),
        None => None,
    };
    let mut interface = serde_json::Map::new();
    if let Some(n) = name {
        e.drop_column("NetworkAdapterName");
        interface.insert("name".into(), n);
    }
    if let Some(mac) = e.get("device.mac") {
        interface.insert("mac".into(), mac.to_value());
    }
    if let Some(id) = type_id {
        interface.insert("type_id".into(), id.into());
        if id == 99 {
            interface.insert("type".into(), kind.clone().unwrap_or_default());
        } else {
            interface.insert(
                "type".into(),
                ["Unknown", "Wired", "Wireless", "Mobile", "Tunnel"][id as usize].into(),
            );
        }
    }
    let addresses = match e.column("IPAddresses", Json) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    let mut interfaces = Vec::new();
    let mut all_converted = true;
    for item in &addresses {
        let ip = item
            .get("IPAddress")
            .and_then(Value::as_str)
            .filter(|s| s.parse::<std::net::IpAddr>().is_ok());
        match ip {
            Some(ip) => {
                let mut one = interface.clone();
                one.insert("ip".into(), ip.into());
                if let Some(prefix) = item.get("SubnetPrefix").and_then(Value::as_i64) {
                    one.insert("subnet_prefix".into(), prefix.into());
                }
                interfaces.push(Value::Object(one));
            }
            None => all_converted = false,
        }
    }
    // An interface is one by its name or MAC when no address names it; a
    // type alone is not one, and stays under `unmapped`.
    if interfaces.is_empty() && (interface.contains_key("name") || interface.contains_key("mac")) {
        interfaces.push(Value::Object(interface));
    }
    // A type OCSF names is in the interfaces; another is kept as it came.
    if !interfaces.is_empty() && type_id.is_some_and(|id| id != 99) {
        e.drop_column("NetworkAdapterType");
    }
    if all_converted && !addresses.is_empty() {
        // Every entry is in network_interfaces; AddressType etc. are not.
        let leftovers: Vec<Value> = addresses
            .iter()
            .filter_map(|a| a.as_object())
            .map(|a| {
                a.iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "IPAddress" | "SubnetPrefix"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<serde_json::Map<_, _>>()
            })
            .filter(|m| !m.is_empty())
            .map(Value::Object)
            .collect();
        e.drop_column("IPAddresses");
        if !leftovers.is_empty() {
            e.put_column("IPAddresses", Value::Array(leftovers));
        }
    }
    if !interfaces.is_empty() {
        e.set("device.network_interfaces", V::from(Value::Array(interfaces)));
    }
    common::finish_device(e);
}

/// `00-15-5D-01-02-03`, `00155D010203` or `00:15:5D:01:02:03` as
/// `00:15:5d:01:02:03`. Anything else is only lowercased with dashes made
/// colons, for `is_mac` to judge.
fn normalize_mac(m: &str) -> String {
    let m = m.trim().to_ascii_lowercase();
    if m.len() == 12 && m.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut out = String::with_capacity(17);
        for (i, c) in m.chars().enumerate() {
            if i > 0 && i % 2 == 0 {
                out.push(':');
            }
            out.push(c);
        }
        return out;
    }
    m.replace('-', ":")
}

fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

// ---------------------------------------------------------------------------
// DeviceFileCertificateInfo → 5040 Live Evidence Info (guide §15)
// ---------------------------------------------------------------------------

const CERTIFICATE: &[Field] = &[
    f("SHA1", "query_evidence.file.hashes", Hash(2)),
    f("Issuer", "query_evidence.file.signature.certificate.issuer", Str),
    f("Signer", "query_evidence.file.signature.certificate.subject", Str),
    f(
        "CertificateSerialNumber",
        "query_evidence.file.signature.certificate.serial_number",
        Str,
    ),
    f(
        "CertificateCreationTime",
        "query_evidence.file.signature.certificate.created_time",
        Time,
    ),
    f(
        "CertificateExpirationTime",
        "query_evidence.file.signature.certificate.expiration_time",
        Time,
    ),
];

static CERTIFICATE_SHAPE: Shape = Shape {
    fields: &[DEVICE, CERTIFICATE],
    finish: finish_certificate,
    gives: &[],
};

pub static DEVICE_FILE_CERTIFICATE_INFO: Table = Table {
    name: "DeviceFileCertificateInfo",
    product: Product::Endpoint,
    key: &["DeviceId", "Timestamp", "ReportId", "SHA1"],
    activities: &[],
    prefixes: &[],
    fallback: Activity::new(5040, 1).sets(&[("query_evidence.query_type_id", 2), ("query_result_id", 1)]),
    shape: &CERTIFICATE_SHAPE,
    join: None,
    licence: None,
};

fn finish_certificate(e: &mut Event, _ctx: &Context) {
    e.set("query_evidence.query_type", "File");
    // The table has no file name and OCSF requires one: the SHA1 stands in,
    // and a label says so.
    let sha1 = match e.get("query_evidence.file.hashes") {
        Some(V::Arr(hashes)) => hashes.first().and_then(V::hash_value).map(std::borrow::Cow::into_owned),
        _ => None,
    };
    if let Some(sha1) = sha1 {
        e.set("query_evidence.file.name", sha1);
        e.set("query_evidence.file.type_id", 1);
        e.set("query_evidence.file.type", "Regular File");
        e.push("metadata.labels", "file-name-is-sha1");
    }
    let signed = e.column("IsSigned", Bool);
    if signed == Some(Value::Bool(false)) {
        common::move_to_unmapped(e, "query_evidence.file.signature");
    } else if e.get("query_evidence.file.signature").is_some() {
        let trusted = e.column("IsTrusted", Bool);
        e.set("query_evidence.file.signature.algorithm_id", 4);
        e.set("query_evidence.file.signature.algorithm", "Authenticode");
        if let Some(Value::Bool(t)) = trusted {
            e.drop_column("IsTrusted");
            e.set("query_evidence.file.signature.state_id", if t { 1 } else { 6 });
            e.set("query_evidence.file.signature.state", if t { "Valid" } else { "Untrusted" });
        }
        if signed.is_some() {
            e.drop_column("IsSigned");
        }
        common::require_any(e, "query_evidence.file.signature.certificate", &["issuer"]);
        let cert_ok = matches!(e.get("query_evidence.file.signature.certificate"), Some(V::Obj(c)) if c.contains_key("serial_number"));
        if !cert_ok {
            common::move_to_unmapped(e, "query_evidence.file.signature.certificate");
        }
    }
    if e.get("query_evidence.file.name").is_none() {
        common::move_to_unmapped(e, "query_evidence.file");
    }
    common::finish_device(e);
}
