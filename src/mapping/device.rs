//! The Device* tables of Defender for Endpoint (guide §4–§8, §21).

use super::common::{self, DEVICE, INITIATING_PROCESS};
use super::engine::{Context, Conv::*, Event, Field, f};
use super::{Activity, Product, Table};

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
        ("ProcessCreated", Activity::new(1007, 1).with_status(1)),
        // Not in the guide's table; OCSF has a precise activity for it.
        ("OpenProcess", Activity::new(1007, 3)),
    ],
    fallback: Activity::new(1007, 99),
    fields: &[DEVICE, NEW_PROCESS, INITIATING_PROCESS],
    finish: finish_process_events,
};

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
        e.set("launch_type", "Spawn".into());
    }
}
