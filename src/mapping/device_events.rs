//! DeviceEvents: Defender for Endpoint's miscellaneous events, fanned out by
//! ActionType to a dozen OCSF classes (guide §21). Each class has its shape
//! here; the ActionType table below picks one.

use super::common::{self, DEVICE, INITIATING_PROCESS, malware};
use super::device::{DEVICE_KEY, ENDPOINTS, FILE, MODULE_FILE};
use super::event::Event;
use super::field::{Context, Conv::*, Field, f};
use super::table::{ALWAYS, Activity, Product, Shape, Table};
use super::value::V;
use serde_json::Value;
use std::borrow::Cow;

const PRODUCT: &str = "Microsoft Defender for Endpoint";

/// The process an API call or memory operation targets, and its account.
const TARGET_PROCESS: &[Field] = &[
    f("ProcessId", "process.pid", Int),
    f("FileName", "process.file.name", Str),
    f("FolderPath", "process.file.path", Str),
    f("ProcessCommandLine", "process.cmd_line", Str),
    f("ProcessCreationTime", "process.created_time", Time),
    f("MD5", "process.file.hashes", Hash(1)),
    f("SHA1", "process.file.hashes", Hash(2)),
    f("SHA256", "process.file.hashes", Hash(3)),
    f("FileSize", "process.file.size", Int),
    f("AccountName", "process.user.name", Str),
    f("AccountDomain", "process.user.domain", Str),
    f("AccountSid", "process.user.uid", Str),
    f("LogonId", "process.session.uid", Str),
];

/// The account an account or group ActionType is about.
const TARGET_USER: &[Field] = &[
    f("AccountName", "user.name", Str),
    f("AccountDomain", "user.domain", Str),
    f("AccountSid", "user.uid", Str),
];

/// What a detection is about, as its evidence.
const EVIDENCE: &[Field] = &[
    f("FileName", "evidence.file.name", Str),
    f("FolderPath", "evidence.file.path", Str),
    f("MD5", "evidence.file.hashes", Hash(1)),
    f("SHA1", "evidence.file.hashes", Hash(2)),
    f("SHA256", "evidence.file.hashes", Hash(3)),
    f("FileSize", "evidence.file.size", Int),
    f("ProcessId", "evidence.process.pid", Int),
    f("ProcessCommandLine", "evidence.process.cmd_line", Str),
    f("RemoteUrl", "evidence.url.url_string", Str),
];

const DEVICE_ENDPOINTS: &[Field] = &[f("RemoteDeviceName", "dst_endpoint.hostname", Str)];

static PROCESS: Shape = Shape {
    fields: &[DEVICE, TARGET_PROCESS, INITIATING_PROCESS],
    finish: finish_process,
    gives: &[("actor", ALWAYS), ("process", ALWAYS)],
};
static MEMORY: Shape = Shape {
    fields: &[DEVICE, TARGET_PROCESS, INITIATING_PROCESS],
    finish: finish_memory,
    gives: &[("actor", ALWAYS), ("process", ALWAYS)],
};
static FILE_SHAPE: Shape = Shape {
    fields: &[DEVICE, FILE, INITIATING_PROCESS],
    finish: finish_file,
    gives: &[("actor", ALWAYS), ("file", &["FolderPath"])],
};
static MODULE: Shape = Shape {
    fields: &[DEVICE, MODULE_FILE, INITIATING_PROCESS],
    finish: finish_driver,
    gives: &[("actor", ALWAYS), ("module", ALWAYS)],
};
static JOB: Shape = Shape {
    fields: &[DEVICE, TARGET_USER, INITIATING_PROCESS],
    finish: finish_job,
    gives: &[("job", &["AdditionalFields"])],
};
static NETWORK: Shape = Shape {
    fields: &[DEVICE, ENDPOINTS, DEVICE_ENDPOINTS, INITIATING_PROCESS],
    finish: finish_network,
    gives: &[("dst_endpoint", &["RemoteUrl"]), ("src_endpoint", &["DeviceId", "DeviceName"])],
};
static DETECTION: Shape = Shape {
    fields: &[DEVICE, EVIDENCE, INITIATING_PROCESS],
    finish: finish_detection,
    gives: &[("finding_info", ALWAYS)],
};
static ACCOUNT: Shape = Shape {
    fields: &[DEVICE, TARGET_USER, INITIATING_PROCESS],
    finish: finish_account,
    gives: &[],
};
static GROUP: Shape = Shape {
    fields: &[DEVICE, TARGET_USER, INITIATING_PROCESS],
    finish: finish_group,
    gives: &[("group", &["AdditionalFields"])],
};
/// Firewall and Application Guard rows: the ActionType names the app.
static APP: Shape = Shape {
    fields: &[DEVICE, INITIATING_PROCESS],
    finish: finish_app,
    gives: &[("app", ALWAYS)],
};
/// ServiceInstalled as 6002: the app is the service `AdditionalFields` names.
static INSTALLED_APP: Shape = Shape {
    fields: &[DEVICE, INITIATING_PROCESS],
    finish: finish_app,
    gives: &[("app", &["AdditionalFields"])],
};
static SCAN: Shape = Shape {
    fields: &[DEVICE, INITIATING_PROCESS],
    finish: finish_scan,
    gives: &[("scan", &["AdditionalFields"])],
};
static PERIPHERAL: Shape = Shape {
    fields: &[DEVICE, INITIATING_PROCESS],
    finish: finish_peripheral,
    gives: &[("actor", ALWAYS), ("peripheral_device", &["AdditionalFields"])],
};
static CONFIG: Shape = Shape {
    fields: &[DEVICE, INITIATING_PROCESS],
    finish: finish_config,
    gives: &[],
};
static SERVICE: Shape = Shape {
    fields: &[DEVICE, INITIATING_PROCESS],
    finish: finish_service,
    gives: &[
        ("actor", ALWAYS),
        ("win_service", &["AdditionalFields"]),
        ("app", &["AdditionalFields"]),
    ],
};
static EVENT_LOG: Shape = Shape {
    fields: &[DEVICE, INITIATING_PROCESS],
    finish: finish_event_log,
    gives: &[
        ("actor", ALWAYS),
        ("log_file", ALWAYS),
        ("log_name", ALWAYS),
        ("log_provider", ALWAYS),
        ("log_type", ALWAYS),
        ("log_type_id", ALWAYS),
    ],
};

const fn detection(disposition_id: i64) -> Activity {
    Activity::new(2004, 1)
        .sets(match disposition_id {
            2 => &[("disposition_id", 2), ("action_id", 2)],
            13 => &[("disposition_id", 13)],
            // Detected, unless the antivirus says what it did
            // (`finish_detection`, `antivirus_outcome`).
            _ => &[],
        })
        .shape(&DETECTION)
}

const PNP_CONNECT: Activity = Activity::new(1010, 1).shape(&PERIPHERAL);
const PNP_DISCONNECT: Activity = Activity::new(1010, 2).shape(&PERIPHERAL);
/// Without deprecated classes, the classes the guide names for these
/// (outside the agreed set the default keeps; docs/mapping.md says why).
const SERVICE_CREATE: Activity = Activity::new(201004, 1).shape(&SERVICE);
const LOG_CLEAR: Activity = Activity::new(1008, 1).shape(&EVENT_LOG);

pub static DEVICE_EVENTS: Table = Table {
    name: "DeviceEvents",
    product: Product::Endpoint,
    key: DEVICE_KEY,
    activities: &[
        // Process Activity: injections, opens, WMI launches, reflexive API calls.
        (
            "CreateRemoteThreadApiCall",
            Activity::new(1007, 4).sets(&[("injection_type_id", 1)]),
        ),
        (
            "QueueUserApcRemoteApiCall",
            Activity::new(1007, 4).sets(&[("injection_type_id", 3)]),
        ),
        (
            "SetThreadContextRemoteApiCall",
            Activity::new(1007, 4).sets(&[("injection_type_id", 99)]),
        ),
        ("OpenProcessApiCall", Activity::new(1007, 3)),
        ("ProcessCreatedUsingWmiQuery", Activity::new(1007, 1)),
        ("ProcessPrimaryTokenModified", Activity::new(1007, 99)),
        ("GetAsyncKeyStateApiCall", Activity::new(1007, 99)),
        ("GetClipboardData", Activity::new(1007, 99)),
        ("ScreenshotTaken", Activity::new(1007, 99)),
        ("PowerShellCommand", Activity::new(1007, 99)),
        // Memory Activity.
        ("NtAllocateVirtualMemoryApiCall", Activity::new(1004, 1).shape(&MEMORY)),
        ("NtAllocateVirtualMemoryRemoteApiCall", Activity::new(1004, 1).shape(&MEMORY)),
        ("NtProtectVirtualMemoryApiCall", Activity::new(1004, 2).shape(&MEMORY)),
        ("MemoryRemoteProtect", Activity::new(1004, 2).shape(&MEMORY)),
        ("NtMapViewOfSectionRemoteApiCall", Activity::new(1004, 9).shape(&MEMORY)),
        ("ReadProcessMemoryApiCall", Activity::new(1004, 7).shape(&MEMORY)),
        ("WriteProcessMemoryApiCall", Activity::new(1004, 8).shape(&MEMORY)),
        ("WriteToLsassProcessMemory", Activity::new(1004, 8).shape(&MEMORY)),
        // Module Activity.
        ("DriverLoad", Activity::new(1005, 1).shape(&MODULE)),
        // Scheduled Job Activity.
        ("ScheduledTaskCreated", Activity::new(1006, 1).shape(&JOB)),
        ("ScheduledTaskUpdated", Activity::new(1006, 2).shape(&JOB)),
        ("ScheduledTaskDeleted", Activity::new(1006, 3).shape(&JOB)),
        ("ScheduledTaskEnabled", Activity::new(1006, 4).shape(&JOB)),
        ("ScheduledTaskDisabled", Activity::new(1006, 5).shape(&JOB)),
        // DNS and Network Activity.
        ("DnsQueryResponse", Activity::new(4003, 2).shape(&NETWORK)),
        (
            "FirewallInboundConnectionBlocked",
            Activity::new(4001, 5)
                .sets(&[("disposition_id", 2), ("action_id", 2), ("connection_info.direction_id", 1)])
                .shape(&NETWORK),
        ),
        (
            "FirewallInboundConnectionToAppBlocked",
            Activity::new(4001, 5)
                .sets(&[("disposition_id", 2), ("action_id", 2), ("connection_info.direction_id", 1)])
                .shape(&NETWORK),
        ),
        (
            "FirewallOutboundConnectionBlocked",
            Activity::new(4001, 5)
                .sets(&[("disposition_id", 2), ("action_id", 2), ("connection_info.direction_id", 2)])
                .shape(&NETWORK),
        ),
        (
            "NetworkProtectionUserBypassEvent",
            Activity::new(4001, 99)
                .sets(&[("disposition_id", 1), ("action_id", 1)])
                .shape(&NETWORK),
        ),
        ("RemoteDesktopConnection", Activity::new(4001, 1).shape(&NETWORK)),
        ("UntrustedWifiConnection", Activity::new(4001, 1).shape(&NETWORK)),
        ("LdapSearch", Activity::new(4001, 99).shape(&NETWORK)),
        // Detection Finding.
        ("AntivirusDetection", detection(15)),
        ("AntivirusReport", detection(15)),
        ("TamperingAttempt", detection(15)),
        ("OtherAlertRelatedActivity", detection(15)),
        ("AntivirusMalwareBlocked", detection(2)),
        ("AntivirusMalwareActionFailed", detection(13)),
        (
            "SmartScreenUserOverride",
            Activity::new(2004, 1)
                .sets(&[("disposition_id", 1), ("action_id", 1)])
                .shape(&DETECTION),
        ),
        // Scan Activity.
        ("AntivirusScanCompleted", Activity::new(6007, 2).status(1).shape(&SCAN)),
        ("AntivirusScanCancelled", Activity::new(6007, 3).shape(&SCAN)),
        ("AntivirusScanFailed", Activity::new(6007, 6).status(2).shape(&SCAN)),
        // Device Config State Change: protection content updates (decision, docs/mapping.md).
        ("AntivirusDefinitionsUpdated", Activity::new(5019, 1).status(1).shape(&CONFIG)),
        ("AntivirusDefinitionsUpdateFailed", Activity::new(5019, 1).status(2).shape(&CONFIG)),
        (
            "AntivirusEmergencyUpdatesInstalled",
            Activity::new(5019, 1).status(1).shape(&CONFIG),
        ),
        // Boot attestation: Device Config State Change, Collect (guide §21).
        ("DeviceBootAttestationInfo", Activity::new(5019, 2).shape(&CONFIG)),
        // Application Lifecycle.
        ("FirewallServiceStopped", Activity::new(6002, 4).shape(&APP)),
        ("AppGuardCreateContainer", Activity::new(6002, 3).shape(&APP)),
        ("AppGuardResumeContainer", Activity::new(6002, 3).shape(&APP)),
        ("AppGuardStopContainer", Activity::new(6002, 4).shape(&APP)),
        ("AppGuardSuspendContainer", Activity::new(6002, 99).shape(&APP)),
        (
            "ServiceInstalled",
            Activity::new(6002, 1).shape(&INSTALLED_APP).successor(&SERVICE_CREATE),
        ),
        ("SecurityLogCleared", Activity::new(1007, 99).successor(&LOG_CLEAR)),
        // Peripheral Device Query (deprecated); 1010 Peripheral Activity without deprecated classes.
        (
            "PnpDeviceConnected",
            Activity::new(5014, 1)
                .sets(&[("query_result_id", 1)])
                .shape(&PERIPHERAL)
                .successor(&PNP_CONNECT),
        ),
        (
            "UsbDriveMounted",
            Activity::new(5014, 1)
                .sets(&[("query_result_id", 1)])
                .shape(&PERIPHERAL)
                .successor(&PNP_CONNECT),
        ),
        (
            "UsbDriveUnmounted",
            Activity::new(5014, 1)
                .sets(&[("query_result_id", 3)])
                .shape(&PERIPHERAL)
                .successor(&PNP_DISCONNECT),
        ),
        // Account Change and Group Management.
        ("UserAccountCreated", Activity::new(3001, 1).shape(&ACCOUNT)),
        ("UserAccountDeleted", Activity::new(3001, 6).shape(&ACCOUNT)),
        ("UserAccountModified", Activity::new(3001, 99).shape(&ACCOUNT)),
        ("PasswordChangeAttempt", Activity::new(3001, 3).shape(&ACCOUNT)),
        ("AccountCheckedForBlankPassword", Activity::new(3001, 99).shape(&ACCOUNT)),
        ("UserAccountAddedToLocalGroup", Activity::new(3006, 3).shape(&GROUP)),
        ("UserAccountRemovedFromLocalGroup", Activity::new(3006, 4).shape(&GROUP)),
        ("SecurityGroupCreated", Activity::new(3006, 6).shape(&GROUP)),
        ("SecurityGroupDeleted", Activity::new(3006, 5).shape(&GROUP)),
        ("LogonRightsSettingEnabled", Activity::new(3006, 1).shape(&GROUP)),
        // File System Activity.
        ("SensitiveFileRead", Activity::new(1001, 2).shape(&FILE_SHAPE)),
        ("ShellLinkCreateFileEvent", Activity::new(1001, 1).shape(&FILE_SHAPE)),
    ],
    // Families of protection events: all Detection Findings; the disposition
    // comes from the suffix (Blocked, Audited, ...) in `finish_detection`.
    prefixes: &[
        ("Asr", Activity::new(2004, 1).shape(&DETECTION)),
        ("ExploitGuard", Activity::new(2004, 1).shape(&DETECTION)),
        ("ControlledFolderAccessViolation", Activity::new(2004, 1).shape(&DETECTION)),
        ("AppControl", Activity::new(2004, 1).shape(&DETECTION)),
        ("AppLocker", Activity::new(2004, 1).shape(&DETECTION)),
        ("SmartScreen", Activity::new(2004, 1).shape(&DETECTION)),
    ],
    // Everything else: Process Activity "Other", named by its ActionType.
    fallback: Activity::new(1007, 99),
    shape: &PROCESS,
    join: None,
    licence: None,
};

/// Process Activity: the target process, or the acting process itself for
/// reflexive ActionTypes (a screenshot, a token change) and rows that name
/// no target.
fn finish_process(e: &mut Event, _ctx: &Context) {
    common::map_additional(e, &[("DesiredAccess", "requested_permissions", Int)]);
    common::finish_device(e);
    common::finish_process(e, "process");
    common::finish_actor(e);
    if e.get("process").is_none() {
        e.copy("actor.process", "process");
    }
    if e.get("process").is_none() {
        // The only process known may be an id in AdditionalFields.
        common::map_additional(e, &[("CallerProcessID", "process.pid", Int), ("ProcessId", "process.pid", Int)]);
    }
    if common::is_unset(e, "process") {
        // Defender reports some process ActionTypes (a WMI-created process)
        // with no process at all. OCSF requires one: Defender's own "no
        // process" id, 0, stands in, labelled so that no reader takes it for
        // a real pid. (DeviceProcessEvents, whose rows always carry the
        // process, rejects a row without one instead: that is a projection.)
        e.set("process.pid", 0);
        e.push("metadata.labels", "process-unknown");
    }
    common::actor_or_sensor(e, PRODUCT);
}

fn finish_memory(e: &mut Event, ctx: &Context) {
    common::map_additional(
        e,
        &[
            ("BaseAddress", "base_address", Str),
            ("RegionSize", "size", Int),
            ("ProtectionMask", "requested_permissions", Int),
        ],
    );
    finish_process(e, ctx);
}

fn finish_file(e: &mut Event, _ctx: &Context) {
    common::finish_device(e);
    common::finish_file(e, "file");
    common::finish_actor(e);
    common::actor_or_sensor(e, PRODUCT);
}

fn finish_driver(e: &mut Event, ctx: &Context) {
    super::device::finish_module(e, ctx);
    common::actor_or_sensor(e, PRODUCT);
}

fn finish_job(e: &mut Event, _ctx: &Context) {
    common::map_additional(e, &[("TaskName", "job.name", Str)]);
    // Account* here is the account the task runs as.
    if let Some(user) = e.root.remove("user") {
        if e.get("job").is_some() {
            e.set("job.user", user);
        } else {
            common::merge(e, "unmapped.user", user);
        }
    }
    // Without Account*, the task's user is AdditionalFields' SubjectUserName;
    // with them, that key stays under `unmapped` (never overwritten).
    if e.get("job").is_some() && e.get("job.user").is_none() {
        common::map_additional(e, &[("SubjectUserName", "job.user.name", Str)]);
    }
    common::require_any(e, "job.user", &["name", "uid", "account"]);
    common::finish_device(e);
    common::finish_actor(e);
}

fn finish_network(e: &mut Event, _ctx: &Context) {
    common::remote_url(e, "dst_endpoint.hostname");
    if e.get("class_uid").and_then(V::as_i64) == Some(4003) {
        common::dns(e);
        common::move_to_unmapped(e, "url");
    }
    if e.get("connection_info").is_some() {
        e.set_default("connection_info.direction_id", 0);
    }
    common::finish_endpoints(e);
    if e.get("src_endpoint").is_none() && e.get("dst_endpoint").is_none() {
        e.copy("device.uid", "src_endpoint.uid");
        e.copy("device.hostname", "src_endpoint.hostname");
    }
    common::finish_device(e);
    common::finish_actor(e);
}

fn finish_detection<'a>(e: &mut Event<'a, '_>, ctx: &Context) {
    // The ActionType as the row gave it (borrowed from the answer when it
    // holds no escape).
    let action: Cow<'a, str> = match e.get("metadata.event_code") {
        Some(V::Str(a)) => a.clone(),
        other => Cow::Owned(other.and_then(V::as_str).unwrap_or_default().into_owned()),
    };
    antivirus_outcome(e);
    if e.get("disposition_id").is_none() {
        // AppLockerBlock* (AppLockerBlockExecutable, ...) name the block first.
        let blocked = action.ends_with("Blocked") || action.ends_with("Enforced") || action.starts_with("AppLockerBlock");
        let (disposition, action_id) = if blocked { (2, Some(2)) } else { (15, None) };
        e.set("disposition_id", disposition);
        if let Some(a) = action_id {
            e.set("action_id", a);
        }
    }
    let uid = common_uid(e);
    common::map_additional(e, &[("RuleId", "finding_info.uid", Str), ("ThreatName", "finding_info.title", Str)]);
    e.set_default("finding_info.uid", uid);
    e.set_default("finding_info.title", action);
    e.set("finding_info.product.name", PRODUCT);
    e.set("finding_info.product.vendor_name", "Microsoft");
    e.set("is_alert", true);
    if e.get_str("finding_info.title") != e.get_str("metadata.event_code") {
        let threat = e.get("finding_info.title").cloned().unwrap_or(V::Null);
        e.push("malware", malware(threat));
    }
    // The file, process or URL the detection names is its evidence.
    common::finish_file(e, "evidence.file");
    common::require_any(e, "evidence.process", &["pid", "uid", "cpid"]);
    if let Some(V::Obj(evidence)) = e.root.remove("evidence")
        && !evidence.is_empty()
    {
        e.push("evidences", V::Obj(evidence));
    }
    common::finish_device(e);
    common::finish_actor(e);
    let _ = ctx;
}

/// What Defender Antivirus reports in `AdditionalFields` of its detections:
/// the threat's `Severity`, the `Action` taken and `WasRemediated` (guide
/// §21, the disposition table of event 1117). The outcome overrides the
/// ActionType's default disposition.
fn antivirus_outcome(e: &mut Event) {
    if !common::additional_may_hold(e, &["Severity", "Action", "WasRemediated"]) {
        return;
    }
    let Some(Value::Object(mut fields)) = e.column("AdditionalFields", Json) else {
        return;
    };
    let text = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .map(|s| s.trim().to_ascii_lowercase().replace([' ', '_'], ""))
    };
    let severity = match text(fields.get("Severity")).as_deref() {
        Some("low") => Some((2, "Low")),
        Some("moderate" | "medium") => Some((3, "Medium")),
        Some("high") => Some((4, "High")),
        Some("severe" | "critical") => Some((5, "Critical")),
        _ => None,
    };
    if let Some((id, name)) = severity {
        e.set("severity_id", id);
        e.set("severity", name);
        fields.remove("Severity");
    }
    let outcome = match text(fields.get("Action")).as_deref() {
        Some("quarantine" | "quarantined") => Some((3, Some(2))),
        Some("remove" | "removed") => Some((5, Some(2))),
        Some("block" | "blocked") => Some((2, Some(2))),
        Some("clean" | "cleaned") => Some((11, Some(2))),
        Some("allow" | "allowed") => Some((1, Some(1))),
        Some("noaction") => Some((16, None)),
        _ => None,
    };
    let remediated = fields.get("WasRemediated").and_then(super::field::parse_bool);
    match (outcome, remediated) {
        (Some((disposition, action_id)), _) => {
            e.set("disposition_id", disposition);
            if let Some(a) = action_id {
                e.set("action_id", a);
            }
            fields.remove("Action");
        }
        (None, Some(true)) => {
            e.set("disposition_id", 11);
            fields.remove("WasRemediated");
        }
        _ => {}
    }
    if severity.is_some() || outcome.is_some() || remediated == Some(true) {
        e.put_column("AdditionalFields", Value::Object(fields));
    }
}

/// The event's own `metadata.uid`, the finding id when the row has no rule id.
fn common_uid(e: &Event) -> String {
    e.get_str("metadata.uid").unwrap_or_default().to_string()
}

fn finish_account(e: &mut Event, _ctx: &Context) {
    common::require_any(e, "user", &["name", "uid", "account"]);
    common::finish_device(e);
    common::finish_actor(e);
}

fn finish_group(e: &mut Event, _ctx: &Context) {
    common::map_additional(
        e,
        &[
            ("GroupName", "group.name", Str),
            ("GroupDomainName", "group.domain", Str),
            ("GroupSid", "group.uid", Str),
        ],
    );
    common::require_any(e, "user", &["name", "uid", "account"]);
    common::finish_device(e);
    common::finish_actor(e);
}

fn finish_app(e: &mut Event, _ctx: &Context) {
    let action = e.get_str("metadata.event_code").as_deref().unwrap_or("").to_string();
    let app = if action.starts_with("Firewall") {
        "Windows Defender Firewall"
    } else if action.starts_with("AppGuard") {
        "Microsoft Defender Application Guard"
    } else {
        ""
    };
    if app.is_empty() {
        // ServiceInstalled: the service is the application installed, its
        // path the service binary (FolderPath joined with FileName).
        common::map_additional(e, &[("ServiceName", "app.name", Str)]);
        if let Some(path) = service_binary(e) {
            e.set("app.path", path);
        }
    } else {
        e.set("app.name", app);
        e.set("app.vendor_name", "Microsoft");
    }
    common::finish_device(e);
    common::finish_actor(e);
}

/// The service binary's full path from `FolderPath` and `FileName`, which
/// are taken; `None` (and both left) when there is no folder.
fn service_binary(e: &mut Event) -> Option<String> {
    let Some(Value::String(folder)) = e.column("FolderPath", Str) else {
        return None;
    };
    e.drop_column("FolderPath");
    let path = match e.take_string("FileName") {
        Some(name) if !folder.ends_with(name.as_str()) => {
            let sep = if folder.contains('/') && !folder.contains('\\') {
                '/'
            } else {
                '\\'
            };
            format!("{}{sep}{name}", folder.trim_end_matches(['\\', '/']))
        }
        _ => folder,
    };
    Some(path)
}

/// ServiceInstalled as 201004 Windows Service Activity, Create: the service
/// from `AdditionalFields` (name, account, start and service types), its
/// binary as `service_file`. A service with a name and nothing OCSF counts
/// as its detail is 6002 Application Lifecycle, Install, instead.
fn finish_service(e: &mut Event, _ctx: &Context) {
    common::map_additional(
        e,
        &[
            ("ServiceName", "win_service.name", Str),
            ("ServiceAccount", "win_service.service_start_name", Str),
        ],
    );
    if let Some(Value::Object(mut fields)) = e.column("AdditionalFields", Json) {
        let number = |k: &str| fields.get(k).and_then(|v| super::field::convert(v, Int)).and_then(|v| v.as_i64());
        // Windows' Start value 0..4 (Boot, System, Automatic, Manual, Disabled) is OCSF's id minus one.
        let start = number("ServiceStartType").filter(|n| (0..=4).contains(n)).map(|n| n + 1);
        let kind = number("ServiceType").map(|n| match n {
            1 => (1, None),
            2 => (2, None),
            16 => (3, None),
            32 => (4, None),
            other => (99, Some(other)),
        });
        if e.get("win_service.name").is_some() {
            if let Some(id) = start {
                e.set("win_service.service_start_type_id", id);
                fields.remove("ServiceStartType");
            }
            if let Some((id, raw)) = kind {
                e.set("win_service.service_type_id", id);
                if let Some(raw) = raw {
                    e.set("win_service.service_type", format!("0x{raw:x}"));
                }
                fields.remove("ServiceType");
            }
            e.put_column("AdditionalFields", Value::Object(fields));
        }
    }
    if e.get("win_service.name").is_some()
        && let Some(path) = service_binary(e)
    {
        e.set("win_service.service_file.path", path);
        common::finish_file(e, "win_service.service_file");
    }
    // OCSF's Windows service needs one of these beside its name (its binary
    // is not one). A service the row names without any is the install of
    // an application, as by default (rule 8): the row is not lost.
    const SERVICE_DETAIL: &[&str] = &[
        "cmd_line",
        "service_category_id",
        "service_dependencies",
        "service_error_control_id",
        "service_start_name",
        "service_start_type_id",
        "service_type_id",
    ];
    if e.get("win_service.name").is_some() && !common::has_any(e.get("win_service"), SERVICE_DETAIL) {
        if let Some(name) = e.remove("win_service.name") {
            e.set("app.name", name);
        }
        if let Some(path) = e.remove("win_service.service_file.path") {
            e.set("app.path", path);
        }
        e.root.remove("win_service");
        e.set_class(6002, 1);
        common::finish_device(e);
        common::finish_actor(e);
        return;
    }
    common::require_any(e, "win_service", SERVICE_DETAIL);
    common::windows_extension(e);
    common::finish_device(e);
    common::finish_actor(e);
    common::actor_or_sensor(e, PRODUCT);
}

/// SecurityLogCleared as 1008 Event Log Activity, Clear: the Windows
/// Security log (event 1102), an operating-system log.
fn finish_event_log(e: &mut Event, _ctx: &Context) {
    e.set("log_name", "Security");
    e.set("log_type_id", 1);
    e.set("log_type", "OS");
    common::finish_device(e);
    common::finish_actor(e);
    common::actor_or_sensor(e, PRODUCT);
}

fn finish_scan(e: &mut Event, _ctx: &Context) {
    common::map_additional(e, &[("ScanId", "scan.uid", Str), ("ScanTypeIndex", "scan.name", Str)]);
    e.set("scan.type_id", 0);
    e.set("scan.type", "Unknown");
    common::finish_device(e);
    common::finish_actor(e);
}

fn finish_peripheral(e: &mut Event, _ctx: &Context) {
    common::map_additional(
        e,
        &[
            ("ClassName", "peripheral_device.class", Str),
            ("DeviceDescription", "peripheral_device.name", Str),
            ("ProductName", "peripheral_device.name", Str),
            ("DeviceId", "peripheral_device.uid", Str),
            ("Manufacturer", "peripheral_device.vendor_name", Str),
            ("SerialNumber", "peripheral_device.serial_number", Str),
            ("ProductRevision", "peripheral_device.model", Str),
        ],
    );
    if common::additional_may_hold(e, &["VendorIds"])
        && let Some(Value::Object(mut fields)) = e.column("AdditionalFields", Json)
        && let Some(Value::Array(ids)) = fields.get("VendorIds").map(super::field::parse_dynamic)
        && ids.iter().all(Value::is_string)
    {
        e.set("peripheral_device.vendor_id_list", V::from(Value::Array(ids)));
        fields.remove("VendorIds");
        e.put_column("AdditionalFields", Value::Object(fields));
    }
    if e.get_str("metadata.event_code").is_some_and(|a| a.starts_with("UsbDrive")) {
        e.set("peripheral_device.type_id", 1);
        e.set("peripheral_device.type", "External Storage");
    }
    if e.get("peripheral_device").is_some() && e.get("peripheral_device.name").is_none() {
        e.copy("peripheral_device.class", "peripheral_device.name");
    }
    common::require_any(e, "peripheral_device", &["name"]);
    common::finish_device(e);
    common::finish_actor(e);
    common::actor_or_sensor(e, PRODUCT);
}

fn finish_config(e: &mut Event, _ctx: &Context) {
    common::finish_device(e);
    common::finish_actor(e);
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// An ActionType is found in a family by its prefix without regard
        /// to case, as lower-case copies of both found it, and the
        /// ActionTypes the table lists come first.
        #[test]
        fn a_family_is_found_by_its_prefix_in_any_case(
            a in "(asr|ASR|Asr|exploitGUARD|AppLoc|applocker|SMARTSCREEN|appcontrol|smartscreenUrlWarning|x|é|K)[A-Za-zé]{0,6}",
        ) {
            let lower = a.to_ascii_lowercase();
            let listed = DEVICE_EVENTS.activities.iter().find(|(name, _)| name.eq_ignore_ascii_case(&a));
            let expected = listed
                .or_else(|| DEVICE_EVENTS.prefixes.iter().find(|(p, _)| lower.starts_with(&p.to_ascii_lowercase())))
                .map(|(_, activity)| activity);
            let (got, fallback) = DEVICE_EVENTS.activity(Some(&a));
            proptest::prop_assert_eq!(fallback, expected.is_none(), "{}", a);
            proptest::prop_assert!(std::ptr::eq(got, expected.unwrap_or(&DEVICE_EVENTS.fallback)), "{}", a);
        }
    }
}
