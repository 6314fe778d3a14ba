//! The Device* tables of Defender for Endpoint (guide §4–§8, §21).

use super::common::{self, DEVICE, INITIATING_PROCESS};
use super::engine::{Context, Conv::*, Event, Field, f};
use super::{Activity, Product, Shape, Table};

/// Device* rows are unique by device, time, per-device ReportId and ActionType.
const DEVICE_KEY: &[&str] = &["DeviceId", "Timestamp", "ReportId", "ActionType"];

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
    f("AccountUpn", "process.user.email_addr", Str),
    f("LogonId", "process.session.uid", Str),
];

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
};

static PROCESS_SHAPE: Shape = Shape { fields: &[DEVICE, NEW_PROCESS, INITIATING_PROCESS], finish: finish_process_events };

fn finish_process_events(e: &mut Event, _ctx: &Context) {
    common::finish_device(e);
    common::finish_process(e, "process");
    common::finish_actor(e);
    // Defender reports the initiating process, which is the creator and, as
    // far as anyone can tell from the data, the parent (guide §4, PAR).
    e.copy("actor.process", "process.parent_process");
    let windows = e.get_str("process.file.path").is_some_and(common::is_windows_path);
    if windows && e.get("activity_id") == Some(&1.into()) {
        e.set("launch_type_id", 1.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::map_row;
    use serde_json::{Value, json};

    fn map(table: &Table, row: Value) -> Value {
        let ctx = Context { tenant_uid: Some("tenant-1".into()), ..Context::default() };
        map_row(table, row.as_object().unwrap().clone(), &ctx).unwrap()
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
        assert_eq!(e["device"], json!({"uid": "aa11", "hostname": "pc1.contoso.com", "name": "pc1", "domain": "contoso.com",
            "groups": [{"name": "Tier0"}], "type_id": 0, "type": "Unknown"}));
        // The new process and its own account.
        assert_eq!(e["process"]["pid"], 7316);
        assert_eq!(e["process"]["name"], "cmd.exe");
        assert_eq!(e["process"]["integrity_id"], 4);
        assert_eq!(e["process"]["user"], json!({"name": "alice", "domain": "contoso", "uid": "S-1-5-21-1"}));
        assert_eq!(e["process"]["session"]["uid"], "999");
        assert_eq!(e["process"]["file"]["size"], 289792);
        assert_eq!(e["process"]["file"]["hashes"], json!([{"algorithm_id": 2, "value": "s1"}]));
        assert_eq!(e["process"]["created_time"], 1738555506100i64);
        // The initiating process is the actor, never the new process's parent only.
        assert_eq!(e["actor"]["process"]["pid"], 4120);
        assert_eq!(e["actor"]["process"]["parent_process"], json!({"pid": 980, "name": "userinit.exe"}));
        assert_eq!(e["actor"]["user"]["name"], "bob");
        assert_eq!(e["actor"]["session"], json!({"uid": "1234", "is_remote": false}));
        assert_eq!(e["process"]["parent_process"], e["actor"]["process"]);
        // Everything else, verbatim (AdditionalFields parsed); absent values dropped.
        assert_eq!(e["unmapped"], json!({"ProcessTokenElevation": "TokenElevationTypeFull",
            "AdditionalFields": {"ProcessStartKey": 7}, "BrandNewColumn": [1, 2]}));
    }

    #[test]
    fn unknown_action_types_fall_back_to_other_with_their_name() {
        let e = map(&DEVICE_PROCESS_EVENTS, json!({"Timestamp": "2025-01-01T00:00:00Z", "DeviceId": "d", "ActionType": "ProcessHollowed", "ProcessId": 1, "InitiatingProcessId": 2}));
        assert_eq!((e["activity_id"].clone(), e["type_uid"].clone()), (json!(99), json!(100799)));
        assert_eq!(e["activity_name"], "ProcessHollowed");
        assert!(e.get("launch_type_id").is_none());
    }

    #[test]
    fn a_value_of_the_wrong_type_is_kept_not_dropped() {
        let e = map(&DEVICE_PROCESS_EVENTS, json!({"Timestamp": "2025-01-01T00:00:00Z", "DeviceId": "d", "ActionType": "ProcessCreated", "ProcessId": "not-a-pid", "ProcessUniqueId": "77", "InitiatingProcessId": 2}));
        assert_eq!(e["unmapped"]["ProcessId"], "not-a-pid");
        assert_eq!(e["process"]["uid"], "77");
    }

    #[test]
    fn a_row_without_a_timestamp_is_an_error_naming_its_key() {
        let ctx = Context::default();
        let row = json!({"DeviceId": "d1", "ReportId": 5, "ActionType": "ProcessCreated"});
        let err = map_row(&DEVICE_PROCESS_EVENTS, row.as_object().unwrap().clone(), &ctx).unwrap_err();
        assert_eq!(err.table, "DeviceProcessEvents");
        assert!(err.to_string().contains("DeviceId=d1") && err.to_string().contains("ReportId=5"), "{err}");
    }

    #[test]
    fn the_same_row_gets_the_same_uid_whatever_its_timestamp_precision() {
        let a = map(&DEVICE_PROCESS_EVENTS, json!({"Timestamp": "2025-01-01T00:00:00.5Z", "DeviceId": "d", "ReportId": 1, "ProcessId": 1}));
        let b = map(&DEVICE_PROCESS_EVENTS, json!({"Timestamp": "2025-01-01T00:00:00.5000000Z", "DeviceId": "d", "ReportId": 1, "ProcessId": 1}));
        let c = map(&DEVICE_PROCESS_EVENTS, json!({"Timestamp": "2025-01-01T00:00:00.5000000Z", "DeviceId": "d", "ReportId": 2, "ProcessId": 1}));
        assert_eq!(a["metadata"]["uid"], b["metadata"]["uid"]);
        assert_ne!(a["metadata"]["uid"], c["metadata"]["uid"]);
    }
}
