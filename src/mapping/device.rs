//! The Device* tables of Defender for Endpoint (guide §4–§8, §21).

use super::common::{self, DEVICE, INITIATING_PROCESS};
use super::event::Event;
use super::field::{Context, Conv::*, Field, f, join};
use super::table::{ALWAYS, Activity, Product, Shape, Table};
use super::value::V;

/// Device* rows are unique by device, time, per-device ReportId and ActionType.
pub(crate) const DEVICE_KEY: &[&str] = &["DeviceId", "Timestamp", "ReportId", "ActionType"];

// ---------------------------------------------------------------------------
// DeviceProcessEvents → 1007 Process Activity (guide §4)
// ---------------------------------------------------------------------------

/// The new process and its account (guide §0.4: `Account*` is the new
/// process's user, not the actor).
const NEW_PROCESS: &[Field] = &[
    f("ProcessId", "process.pid", Int),
    f("ProcessUniqueId", "process.uid", Str),
    f("FileName", "process.file.name", Str),
    f("FolderPath", "process.file.path", Str),
    f("ProcessCommandLine", "process.cmd_line", Str),
    f("ProcessCreationTime", "process.created_time", Time),
    f("ProcessIntegrityLevel", "process.integrity", Integrity),
    f("MD5", "process.file.hashes", Hash(1)),
    f("SHA1", "process.file.hashes", Hash(2)),
    f("SHA256", "process.file.hashes", Hash(3)),
    f("FileSize", "process.file.size", Int),
    f("ProcessVersionInfoCompanyName", "process.file.company_name", Str),
    f("ProcessVersionInfoProductName", "process.file.product.name", Str),
    f("ProcessVersionInfoProductVersion", "process.file.product.version", Str),
    f("ProcessVersionInfoFileDescription", "process.file.desc", Str),
    f("ProcessVersionInfoOriginalFileName", "process.file.internal_name", Str),
    f("AccountName", "process.user.name", Str),
    f("AccountDomain", "process.user.domain", Str),
    f("AccountSid", "process.user.uid", Str),
    f("AccountObjectId", "process.user.uid_alt", Str),
    f("AccountUpn", "process.user.email_addr", Email),
    f("LogonId", "process.session.uid", Str),
];

/// The busiest table (the bench's first workload).
pub static DEVICE_PROCESS_EVENTS: Table = Table {
    name: "DeviceProcessEvents",
    product: Product::Endpoint,
    key: DEVICE_KEY,
    activities: &[
        ("ProcessCreated", Activity::new(1007, 1).status(1)),
        // Not in the guide's table; OCSF has a precise activity for it.
        ("OpenProcess", Activity::new(1007, 3)),
    ],
    prefixes: &[],
    fallback: Activity::new(1007, 99),
    shape: &PROCESS_SHAPE,
    join: None,
    licence: None,
};

static PROCESS_SHAPE: Shape = Shape {
    fields: &[DEVICE, NEW_PROCESS, INITIATING_PROCESS],
    finish: finish_process_events,
    gives: &[("actor", ALWAYS)],
};

fn finish_process_events(e: &mut Event, _ctx: &Context) {
    common::finish_device(e);
    common::finish_process(e, "process");
    common::finish_actor(e);
    // OCSF requires `process` and `actor` (rules 12 and 13 of docs/mapping.md).
    common::actor_or_sensor(e, Product::Endpoint.name());
    // Defender reports the initiating process, which is the creator and, as
    // far as anyone can tell from the data, the parent (guide §4, PAR).
    e.copy_when_complete("actor.process", "process.parent_process");
    let windows = e.get("process.file.path").is_some_and(common::is_windows_path_value);
    if windows && e.get("activity_id").and_then(V::as_i64) == Some(1) {
        e.set("launch_type_id", 1);
    }
}

// ---------------------------------------------------------------------------
// DeviceNetworkEvents → 4001 Network Activity, DNS inspections → 4003 (guide §5)
// ---------------------------------------------------------------------------

pub(crate) const ENDPOINTS: &[Field] = &[
    f("LocalIP", "src_endpoint.ip", Ip),
    f("LocalPort", "src_endpoint.port", Port),
    f("RemoteIP", "dst_endpoint.ip", Ip),
    f("RemotePort", "dst_endpoint.port", Port),
];

static NETWORK_SHAPE: Shape = Shape {
    fields: &[DEVICE, ENDPOINTS, INITIATING_PROCESS],
    finish: finish_network,
    gives: &[("dst_endpoint", &["RemoteUrl"]), ("src_endpoint", &["DeviceId", "DeviceName"])],
};

pub static DEVICE_NETWORK_EVENTS: Table = Table {
    name: "DeviceNetworkEvents",
    product: Product::Endpoint,
    key: DEVICE_KEY,
    activities: &[
        (
            "ConnectionSuccess",
            Activity::new(4001, 1).status(1).sets(&[("connection_info.direction_id", 2)]),
        ),
        (
            "ConnectionFailed",
            Activity::new(4001, 4).status(2).sets(&[("connection_info.direction_id", 2)]),
        ),
        (
            "ConnectionRequest",
            Activity::new(4001, 1).sets(&[("connection_info.direction_id", 2)]),
        ),
        ("ConnectionFound", Activity::new(4001, 1)),
        ("ConnectionAttempt", Activity::new(4001, 99)),
        ("ConnectionAcknowledged", Activity::new(4001, 99)),
        (
            "InboundConnectionAccepted",
            Activity::new(4001, 1).status(1).sets(&[("connection_info.direction_id", 1)]),
        ),
        (
            "ListeningConnectionCreated",
            Activity::new(4001, 7).status(1).sets(&[("connection_info.direction_id", 1)]),
        ),
        (
            "InboundInternetScanInspected",
            Activity::new(4001, 6).sets(&[("connection_info.direction_id", 1)]),
        ),
        ("DnsConnectionInspected", Activity::new(4003, 6)),
    ],
    // Other *Inspected ActionTypes become 6 Traffic in `finish_network`.
    prefixes: &[],
    fallback: Activity::new(4001, 99),
    shape: &NETWORK_SHAPE,
    join: None,
    licence: None,
};

fn finish_network(e: &mut Event, _ctx: &Context) {
    let (inspected, inbound) = {
        let action = e.get_str("metadata.event_code");
        let action = action.as_deref().unwrap_or("");
        (
            action.ends_with("Inspected"),
            action.starts_with("Inbound") || action == "ListeningConnectionCreated",
        )
    };
    // *Inspected rows (Http/Ssl/Ssh/Ntlm/NetworkSignature...) are traffic
    // inspections (guide §5).
    if inspected && e.get("class_uid").and_then(V::as_i64) == Some(4001) {
        e.set("activity_id", 6);
        e.set("activity_name", "Traffic");
        e.set("type_uid", 400106);
        e.set("type_name", "Network Activity: Traffic");
    }
    if inbound {
        common::swap_endpoints(e);
    }
    common::remote_url(e, "dst_endpoint.hostname");
    common::network_protocol(e);
    if e.get("class_uid").and_then(V::as_i64) == Some(4003) {
        common::dns(e);
        // DNS Activity has no `url`; the host name stays on the endpoint.
        common::move_to_unmapped(e, "url");
    }
    boundary(e);
    if e.get("connection_info").is_some() {
        e.set_default("connection_info.direction_id", 0);
    }
    common::finish_endpoints(e);
    if e.get("src_endpoint").is_none() && e.get("dst_endpoint").is_none() {
        // Network classes need an endpoint: the reporting device is one end.
        e.copy("device.uid", "src_endpoint.uid");
        e.copy("device.hostname", "src_endpoint.hostname");
    }
    common::finish_device(e);
    common::finish_actor(e);
}

/// `RemoteIPType` to `connection_info.boundary_id`.
fn boundary(e: &mut Event) {
    let id = match e.column_text("RemoteIPType").as_deref() {
        Some("Loopback") => 1,
        Some("Private") => 2,
        Some("Public") => 3,
        Some(_) => 99,
        None => return,
    };
    if id != 99 {
        e.drop_column("RemoteIPType");
    }
    e.set("connection_info.boundary_id", id);
}

// ---------------------------------------------------------------------------
// DeviceFileEvents → 1001 File System Activity (guide §6)
// ---------------------------------------------------------------------------

pub(crate) const FILE: &[Field] = &[
    f("FileName", "file.name", Str),
    f("FolderPath", "file.path", Str),
    f("MD5", "file.hashes", Hash(1)),
    f("SHA1", "file.hashes", Hash(2)),
    f("SHA256", "file.hashes", Hash(3)),
    f("FileSize", "file.size", Int),
    f("IsAzureInfoProtectionApplied", "file.is_encrypted", Bool),
];

/// The account of a remote (SMB/NFS) writer is the actor (guide §6).
const REQUEST_ACCOUNT: &[Field] = &[
    f("RequestAccountName", "actor.user.name", Str),
    f("RequestAccountDomain", "actor.user.domain", Str),
    f("RequestAccountSid", "actor.user.uid", Str),
];

/// A rename: `file` is the file before, `file_result` after.
const RENAMED_FILE: &[Field] = &[
    f("PreviousFileName", "file.name", Str),
    f("PreviousFolderPath", "file.path", Str),
    f("FileName", "file_result.name", Str),
    f("FolderPath", "file_result.path", Str),
    f("MD5", "file_result.hashes", Hash(1)),
    f("SHA1", "file_result.hashes", Hash(2)),
    f("SHA256", "file_result.hashes", Hash(3)),
    f("FileSize", "file_result.size", Int),
];

static FILE_SHAPE: Shape = Shape {
    fields: &[DEVICE, FILE, REQUEST_ACCOUNT, INITIATING_PROCESS],
    finish: finish_file_events,
    gives: &[("file", &["FolderPath"])],
};
static RENAME_SHAPE: Shape = Shape {
    fields: &[DEVICE, RENAMED_FILE, REQUEST_ACCOUNT, INITIATING_PROCESS],
    finish: finish_file_events,
    gives: &[("file", &["PreviousFolderPath", "FileName", "FolderPath"])],
};

pub static DEVICE_FILE_EVENTS: Table = Table {
    name: "DeviceFileEvents",
    product: Product::Endpoint,
    key: DEVICE_KEY,
    activities: &[
        ("FileCreated", Activity::new(1001, 1).status(1)),
        ("FileModified", Activity::new(1001, 3).status(1)),
        ("FileDeleted", Activity::new(1001, 4).status(1)),
        ("FileRenamed", Activity::new(1001, 5).status(1).shape(&RENAME_SHAPE)),
    ],
    prefixes: &[],
    fallback: Activity::new(1001, 99),
    shape: &FILE_SHAPE,
    join: None,
    licence: None,
};

fn finish_file_events(e: &mut Event, _ctx: &Context) {
    common::finish_device(e);
    common::finish_file(e, "file");
    common::finish_file(e, "file_result");
    // A rename row may lack the previous name: then the renamed file is the target.
    if e.get("file").is_none()
        && let Some(v) = e.root.remove("file_result")
    {
        e.set("file", v);
    }
    common::finish_actor(e);
}

// ---------------------------------------------------------------------------
// DeviceImageLoadEvents → 1005 Module Activity (guide §7)
// ---------------------------------------------------------------------------

pub(crate) const MODULE_FILE: &[Field] = &[
    f("FileName", "module.file.name", Str),
    f("FolderPath", "module.file.path", Str),
    f("MD5", "module.file.hashes", Hash(1)),
    f("SHA1", "module.file.hashes", Hash(2)),
    f("SHA256", "module.file.hashes", Hash(3)),
    f("FileSize", "module.file.size", Int),
];

static MODULE_SHAPE: Shape = Shape {
    fields: &[DEVICE, MODULE_FILE, INITIATING_PROCESS],
    finish: finish_module,
    gives: &[("module", ALWAYS)],
};

pub static DEVICE_IMAGE_LOAD_EVENTS: Table = Table {
    name: "DeviceImageLoadEvents",
    product: Product::Endpoint,
    key: DEVICE_KEY,
    activities: &[("ImageLoaded", Activity::new(1005, 1).status(1))],
    prefixes: &[],
    fallback: Activity::new(1005, 99),
    shape: &MODULE_SHAPE,
    join: None,
    licence: None,
};

pub(crate) fn finish_module(e: &mut Event, _ctx: &Context) {
    common::finish_device(e);
    common::finish_file(e, "module.file");
    // OCSF needs a load type or a function name; Defender reports standard loads.
    e.set_default("module.load_type_id", 1);
    e.set_default("module.load_type", "Standard");
    common::finish_actor(e);
}

// ---------------------------------------------------------------------------
// DeviceRegistryEvents → 201001 / 201002 (guide §8)
// ---------------------------------------------------------------------------

const REG_KEY: &[Field] = &[
    f("RegistryKey", "reg_key.path", Str),
    f("PreviousRegistryKey", "prev_reg_key.path", Str),
];
const REG_VALUE: &[Field] = &[
    f("RegistryKey", "reg_value.path", Str),
    f("RegistryValueName", "reg_value.name", Str),
    f("RegistryValueData", "reg_value.data", Str),
    f("PreviousRegistryKey", "prev_reg_value.path", Str),
    f("PreviousRegistryValueName", "prev_reg_value.name", Str),
    f("PreviousRegistryValueData", "prev_reg_value.data", Str),
];

static REG_KEY_SHAPE: Shape = Shape {
    fields: &[DEVICE, REG_KEY, INITIATING_PROCESS],
    finish: finish_registry,
    gives: &[("reg_key", &["PreviousRegistryKey"])],
};
static REG_VALUE_SHAPE: Shape = Shape {
    fields: &[DEVICE, REG_VALUE, INITIATING_PROCESS],
    finish: finish_registry,
    gives: &[("reg_value", &["PreviousRegistryKey"])],
};

pub static DEVICE_REGISTRY_EVENTS: Table = Table {
    name: "DeviceRegistryEvents",
    product: Product::Endpoint,
    key: DEVICE_KEY,
    activities: &[
        ("RegistryKeyCreated", Activity::new(201001, 1).status(1).shape(&REG_KEY_SHAPE)),
        ("RegistryKeyDeleted", Activity::new(201001, 4).status(1).shape(&REG_KEY_SHAPE)),
        ("RegistryKeyRenamed", Activity::new(201001, 5).status(1).shape(&REG_KEY_SHAPE)),
        ("RegistryValueSet", Activity::new(201002, 2).status(1)),
        ("RegistryValueDeleted", Activity::new(201002, 4).status(1)),
    ],
    prefixes: &[],
    fallback: Activity::new(201002, 99),
    shape: &REG_VALUE_SHAPE,
    join: None,
    licence: None,
};

fn finish_registry(e: &mut Event, _ctx: &Context) {
    common::windows_extension(e);
    let renamed = e.get_str("metadata.event_code").as_deref() == Some("RegistryKeyRenamed");
    for (object, previous) in [("reg_key", "prev_reg_key"), ("reg_value", "prev_reg_value")] {
        // Deletes report the key only as the previous key (guide §8).
        let path = join(object, "path");
        if e.get(&path).is_none() {
            e.copy(&join(previous, "path"), &path);
        }
        let same = e.get(&join(previous, "path")).map(V::to_value) == e.get(&path).map(V::to_value)
            && e.get(&join(previous, "name")).is_none()
            && e.get(&join(previous, "data")).is_none();
        if same && !renamed {
            // The previous key carried no information beyond the key itself.
            e.root.remove(previous);
        }
    }
    if let Some(t) = e.column_text("RegistryValueType") {
        let id = match &*t {
            "Binary" => 1,
            "Dword" => 2,
            "ExpandString" => 4,
            "Link" => 5,
            "MultiString" => 6,
            "None" => 7,
            "Qword" => 8,
            "String" => 10,
            _ => 99,
        };
        e.set("reg_value.type_id", id);
        if id != 99 {
            e.drop_column("RegistryValueType");
        }
    }
    common::require_any(e, "reg_value", &["path"]);
    common::require_any(e, "prev_reg_value", &["name"]);
    if e.get("reg_value").is_some() && e.get("reg_value.name").is_none() {
        // The key's default value has no name.
        e.set("reg_value.name", "(default)");
        e.set("reg_value.is_default", true);
    }
    common::require_any(e, "prev_reg_value", &["path"]);
    common::finish_device(e);
    common::finish_actor(e);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::map_row;
    use serde_json::{Value, json};

    fn map(table: &'static Table, row: Value) -> Value {
        let ctx = Context {
            tenant_uid: Some("tenant-1".into()),
            ..Context::default()
        };
        map_row(table, serde_json::from_value(row).unwrap(), &ctx).unwrap()
    }

    /// A Windows ProcessCreated row, written for this test, mapped field by field.
    #[test]
    fn golden_process_created() {
        let e = map(
            &DEVICE_PROCESS_EVENTS,
            json!({
                "Timestamp": "2025-02-03T04:05:06.1234567Z",
                "DeviceId": "aa11", "DeviceName": "pc1.contoso.com", "MachineGroup": "Tier0",
                "ActionType": "ProcessCreated",
                "FileName": "cmd.exe", "FolderPath": "C:\\Windows\\System32\\cmd.exe",
                "SHA1": "s1", "SHA256": "", "MD5": null, "FileSize": "289792",
                "ProcessId": 7316, "ProcessCommandLine": "cmd /c ver", "ProcessCreationTime": "2025-02-03T04:05:06.1Z",
                "ProcessIntegrityLevel": "High", "ProcessTokenElevation": "TokenElevationTypeFull",
                "AccountName": "alice", "AccountDomain": "contoso", "AccountSid": "S-1-5-21-1", "LogonId": 999,
                "InitiatingProcessId": 4120, "InitiatingProcessFileName": "explorer.exe",
                "InitiatingProcessFolderPath": "C:\\Windows\\explorer.exe", "InitiatingProcessCommandLine": "Explorer.EXE",
                "InitiatingProcessAccountName": "bob", "InitiatingProcessIntegrityLevel": "Medium",
                "InitiatingProcessParentId": 980, "InitiatingProcessParentFileName": "userinit.exe",
                "InitiatingProcessLogonId": 1234, "IsInitiatingProcessRemoteSession": "0",
                "ReportId": 9007199254740993u64,
                "AdditionalFields": "{\"ProcessStartKey\":7}",
                "BrandNewColumn": [1, 2]
            }),
        );
        assert_eq!(e["class_uid"], 1007);
        assert_eq!(e["category_uid"], 1);
        assert_eq!(e["activity_id"], 1);
        assert_eq!(e["type_uid"], 100701);
        assert_eq!(e["type_name"], "Process Activity: Launch");
        assert_eq!(e["status_id"], 1);
        assert_eq!(e["launch_type_id"], 1);
        assert_eq!(e["severity_id"], 1);
        assert_eq!(e["time"], 1738555506123i64);
        assert_eq!(e["metadata"]["original_time"], "2025-02-03T04:05:06.1234567Z");
        assert_eq!(e["metadata"]["original_event_uid"], "9007199254740993");
        assert_eq!(e["metadata"]["event_code"], "ProcessCreated");
        assert_eq!(e["metadata"]["tenant_uid"], "tenant-1");
        assert_eq!(e["metadata"]["product"]["name"], "Microsoft Defender for Endpoint");
        assert_eq!(e["metadata"]["uid"].as_str().unwrap().len(), 32);
        assert_eq!(
            e["device"],
            json!({"uid": "aa11", "hostname": "pc1.contoso.com", "name": "pc1", "domain": "contoso.com",
            "groups": [{"name": "Tier0"}], "type_id": 0, "type": "Unknown"})
        );
        // The new process and its own account.
        assert_eq!(e["process"]["pid"], 7316);
        assert_eq!(e["process"]["name"], "cmd.exe");
        assert_eq!(e["process"]["integrity_id"], 4);
        assert_eq!(
            e["process"]["user"],
            json!({"name": "alice", "domain": "contoso", "uid": "S-1-5-21-1"})
        );
        assert_eq!(e["process"]["session"]["uid"], "999");
        assert_eq!(e["process"]["file"]["size"], 289792);
        assert_eq!(
            e["process"]["file"]["hashes"],
            json!([{"algorithm_id": 2, "algorithm": "SHA-1", "value": "s1"}])
        );
        assert_eq!(e["process"]["created_time"], 1738555506100i64);
        // The initiating process is the actor, never the new process's parent only.
        assert_eq!(e["actor"]["process"]["pid"], 4120);
        assert_eq!(e["actor"]["process"]["parent_process"], json!({"pid": 980, "name": "userinit.exe"}));
        assert_eq!(e["actor"]["user"]["name"], "bob");
        assert_eq!(e["actor"]["session"], json!({"uid": "1234", "is_remote": false}));
        assert_eq!(e["process"]["parent_process"], e["actor"]["process"]);
        // Everything else, verbatim (AdditionalFields parsed); absent values dropped.
        assert_eq!(
            e["unmapped"],
            json!({"ProcessTokenElevation": "TokenElevationTypeFull",
            "AdditionalFields": {"ProcessStartKey": 7}, "BrandNewColumn": [1, 2]})
        );
    }

    /// OCSF requires `process` and `actor` in 1007: a row whose initiating
    /// process is "none" gets the sensor as its actor, even when the finish
    /// steps emptied the actor's objects; a row that names no process is
    /// rejected, naming the columns that would give one (no placeholder).
    #[test]
    fn process_events_without_a_process_or_an_actor() {
        let e = map(
            &DEVICE_PROCESS_EVENTS,
            json!({"Timestamp": "2025-01-01T00:00:00Z", "DeviceId": "d", "ActionType": "ProcessCreated", "ProcessId": 5, "InitiatingProcessId": 0}),
        );
        assert_eq!(e["actor"], json!({"app_name": "Microsoft Defender for Endpoint"}));
        assert_eq!(e["process"], json!({"pid": 5}));
        let ctx = Context::default();
        let row =
            json!({"Timestamp": "2025-01-01T00:00:00Z", "DeviceId": "d", "InitiatingProcessId": 7, "InitiatingProcessAccountDomain": "d"});
        let err = map_row(&DEVICE_PROCESS_EVENTS, serde_json::from_value(row).unwrap(), &ctx).unwrap_err();
        assert!(
            err.reason.contains("requires `process`") && err.reason.contains("ProcessId"),
            "{err}"
        );
    }

    /// Microsoft's runHuntingQuery examples project `Timestamp, FileName,
    /// InitiatingProcessFileName` (and sometimes DeviceId): OCSF 1007 needs a
    /// device and a process id, so each is a clear rejection naming what is
    /// missing, never an event with a made-up process.
    #[test]
    fn projected_rows_are_rejected_with_the_missing_columns() {
        let ctx = Context::default();
        let row =
            json!({"Timestamp": "2024-03-26T09:39:50.7688641Z", "FileName": "cmd.exe", "InitiatingProcessFileName": "powershell.exe"});
        let err = map_row(&DEVICE_PROCESS_EVENTS, serde_json::from_value(row).unwrap(), &ctx).unwrap_err();
        assert!(
            err.reason.contains("requires `device`") && err.reason.contains("DeviceId, DeviceName"),
            "{err}"
        );
        let row = json!({"Timestamp": "2020-02-05T01:10:26.2648757Z", "FileName": "csc.exe", "InitiatingProcessFileName": "powershell.exe", "DeviceId": "10cb"});
        let err = map_row(&DEVICE_PROCESS_EVENTS, serde_json::from_value(row).unwrap(), &ctx).unwrap_err();
        assert!(
            err.reason.contains("requires `process`") && err.reason.contains("ProcessId"),
            "{err}"
        );
        assert_eq!(err.table, "DeviceProcessEvents");
    }

    #[test]
    fn unknown_action_types_fall_back_to_other_with_their_name() {
        let e = map(
            &DEVICE_PROCESS_EVENTS,
            json!({"Timestamp": "2025-01-01T00:00:00Z", "DeviceId": "d", "ActionType": "ProcessHollowed", "ProcessId": 1, "InitiatingProcessId": 2}),
        );
        assert_eq!((e["activity_id"].clone(), e["type_uid"].clone()), (json!(99), json!(100799)));
        assert_eq!(e["activity_name"], "ProcessHollowed");
        assert!(e.get("launch_type_id").is_none());
    }

    #[test]
    fn a_value_of_the_wrong_type_is_kept_not_dropped() {
        let e = map(
            &DEVICE_PROCESS_EVENTS,
            json!({"Timestamp": "2025-01-01T00:00:00Z", "DeviceId": "d", "ActionType": "ProcessCreated", "ProcessId": "not-a-pid", "ProcessUniqueId": "77", "InitiatingProcessId": 2}),
        );
        assert_eq!(e["unmapped"]["ProcessId"], "not-a-pid");
        assert_eq!(e["process"]["uid"], "77");
    }

    #[test]
    fn a_row_without_a_timestamp_is_an_error_naming_its_key() {
        let ctx = Context::default();
        let row = json!({"DeviceId": "d1", "ReportId": 5, "ActionType": "ProcessCreated"});
        let err = map_row(&DEVICE_PROCESS_EVENTS, serde_json::from_value(row).unwrap(), &ctx).unwrap_err();
        assert_eq!(err.table, "DeviceProcessEvents");
        assert!(
            err.to_string().contains("DeviceId=d1") && err.to_string().contains("ReportId=5"),
            "{err}"
        );
    }

    #[test]
    fn the_same_row_gets_the_same_uid_whatever_its_timestamp_precision() {
        let a = map(
            &DEVICE_PROCESS_EVENTS,
            json!({"Timestamp": "2025-01-01T00:00:00.5Z", "DeviceId": "d", "ReportId": 1, "ProcessId": 1}),
        );
        let b = map(
            &DEVICE_PROCESS_EVENTS,
            json!({"Timestamp": "2025-01-01T00:00:00.5000000Z", "DeviceId": "d", "ReportId": 1, "ProcessId": 1}),
        );
        let c = map(
            &DEVICE_PROCESS_EVENTS,
            json!({"Timestamp": "2025-01-01T00:00:00.5000000Z", "DeviceId": "d", "ReportId": 2, "ProcessId": 1}),
        );
        assert_eq!(a["metadata"]["uid"], b["metadata"]["uid"]);
        assert_ne!(a["metadata"]["uid"], c["metadata"]["uid"]);
    }
}
