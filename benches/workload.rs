//! Realistic advanced-hunting rows, written here rather than copied: every
//! column of the table as defender-tables.md lists it, with values shaped like
//! real ones (hashes, paths, command lines, SIDs). Rows come out at 2.4 to
//! 3.6 KB, as real ones do: the shared sample rows average 3.9 KB
//! (DeviceProcessEvents), 1.8 KB (DeviceNetworkEvents) and 2.6 KB (DeviceEvents).

use serde_json::{Map, Value, json};

/// The columns of the three benchmarked tables, in the order advanced hunting
/// returns them.
pub const DEVICE_PROCESS_EVENTS: &[&str] = &[
    "Timestamp",
    "DeviceId",
    "DeviceName",
    "ActionType",
    "FileName",
    "FolderPath",
    "SHA1",
    "SHA256",
    "MD5",
    "FileSize",
    "ProcessVersionInfoCompanyName",
    "ProcessVersionInfoProductName",
    "ProcessVersionInfoProductVersion",
    "ProcessVersionInfoInternalFileName",
    "ProcessVersionInfoOriginalFileName",
    "ProcessVersionInfoFileDescription",
    "ProcessId",
    "ProcessCommandLine",
    "ProcessIntegrityLevel",
    "ProcessTokenElevation",
    "ProcessCreationTime",
    "AccountDomain",
    "AccountName",
    "AccountSid",
    "AccountUpn",
    "AccountObjectId",
    "LogonId",
    "InitiatingProcessAccountDomain",
    "InitiatingProcessAccountName",
    "InitiatingProcessAccountSid",
    "InitiatingProcessAccountUpn",
    "InitiatingProcessAccountObjectId",
    "InitiatingProcessLogonId",
    "InitiatingProcessIntegrityLevel",
    "InitiatingProcessTokenElevation",
    "InitiatingProcessSHA1",
    "InitiatingProcessSHA256",
    "InitiatingProcessMD5",
    "InitiatingProcessFileName",
    "InitiatingProcessFileSize",
    "InitiatingProcessFolderPath",
    "InitiatingProcessVersionInfoCompanyName",
    "InitiatingProcessVersionInfoProductName",
    "InitiatingProcessVersionInfoProductVersion",
    "InitiatingProcessVersionInfoInternalFileName",
    "InitiatingProcessVersionInfoOriginalFileName",
    "InitiatingProcessVersionInfoFileDescription",
    "InitiatingProcessId",
    "InitiatingProcessCommandLine",
    "InitiatingProcessCreationTime",
    "InitiatingProcessParentId",
    "InitiatingProcessParentFileName",
    "InitiatingProcessParentCreationTime",
    "InitiatingProcessSignerType",
    "InitiatingProcessSignatureStatus",
    "ReportId",
    "AppGuardContainerId",
    "AdditionalFields",
    "InitiatingProcessSessionId",
    "IsInitiatingProcessRemoteSession",
    "InitiatingProcessRemoteSessionDeviceName",
    "InitiatingProcessRemoteSessionIP",
    "CreatedProcessSessionId",
    "IsProcessRemoteSession",
    "ProcessRemoteSessionDeviceName",
    "ProcessRemoteSessionIP",
];

pub const DEVICE_NETWORK_EVENTS: &[&str] = &[
    "Timestamp",
    "DeviceId",
    "DeviceName",
    "ActionType",
    "RemoteIP",
    "RemotePort",
    "RemoteUrl",
    "LocalIP",
    "LocalPort",
    "Protocol",
    "LocalIPType",
    "RemoteIPType",
    "InitiatingProcessSHA1",
    "InitiatingProcessSHA256",
    "InitiatingProcessMD5",
    "InitiatingProcessFileName",
    "InitiatingProcessFileSize",
    "InitiatingProcessFolderPath",
    "InitiatingProcessVersionInfoCompanyName",
    "InitiatingProcessVersionInfoProductName",
    "InitiatingProcessVersionInfoProductVersion",
    "InitiatingProcessVersionInfoInternalFileName",
    "InitiatingProcessVersionInfoOriginalFileName",
    "InitiatingProcessVersionInfoFileDescription",
    "InitiatingProcessId",
    "InitiatingProcessCommandLine",
    "InitiatingProcessCreationTime",
    "InitiatingProcessParentId",
    "InitiatingProcessParentFileName",
    "InitiatingProcessParentCreationTime",
    "InitiatingProcessAccountDomain",
    "InitiatingProcessAccountName",
    "InitiatingProcessAccountSid",
    "InitiatingProcessAccountUpn",
    "InitiatingProcessAccountObjectId",
    "InitiatingProcessIntegrityLevel",
    "InitiatingProcessTokenElevation",
    "ReportId",
    "AppGuardContainerId",
    "AdditionalFields",
    "InitiatingProcessSessionId",
    "IsInitiatingProcessRemoteSession",
    "InitiatingProcessRemoteSessionDeviceName",
    "InitiatingProcessRemoteSessionIP",
];

pub const DEVICE_EVENTS: &[&str] = &[
    "Timestamp",
    "DeviceId",
    "DeviceName",
    "ActionType",
    "FileName",
    "FolderPath",
    "SHA1",
    "SHA256",
    "MD5",
    "FileSize",
    "AccountDomain",
    "AccountName",
    "AccountSid",
    "RemoteUrl",
    "RemoteDeviceName",
    "ProcessId",
    "ProcessCommandLine",
    "ProcessCreationTime",
    "ProcessTokenElevation",
    "LogonId",
    "RegistryKey",
    "RegistryValueName",
    "RegistryValueData",
    "RemoteIP",
    "RemotePort",
    "LocalIP",
    "LocalPort",
    "FileOriginUrl",
    "FileOriginIP",
    "InitiatingProcessSHA1",
    "InitiatingProcessSHA256",
    "InitiatingProcessMD5",
    "InitiatingProcessFileName",
    "InitiatingProcessFileSize",
    "InitiatingProcessFolderPath",
    "InitiatingProcessId",
    "InitiatingProcessCommandLine",
    "InitiatingProcessCreationTime",
    "InitiatingProcessAccountDomain",
    "InitiatingProcessAccountName",
    "InitiatingProcessAccountSid",
    "InitiatingProcessAccountUpn",
    "InitiatingProcessAccountObjectId",
    "InitiatingProcessVersionInfoCompanyName",
    "InitiatingProcessVersionInfoProductName",
    "InitiatingProcessVersionInfoProductVersion",
    "InitiatingProcessVersionInfoInternalFileName",
    "InitiatingProcessVersionInfoOriginalFileName",
    "InitiatingProcessVersionInfoFileDescription",
    "InitiatingProcessParentId",
    "InitiatingProcessParentFileName",
    "InitiatingProcessParentCreationTime",
    "InitiatingProcessLogonId",
    "ReportId",
    "AppGuardContainerId",
    "AdditionalFields",
    "InitiatingProcessSessionId",
    "IsInitiatingProcessRemoteSession",
    "InitiatingProcessRemoteSessionDeviceName",
    "InitiatingProcessRemoteSessionIP",
    "CreatedProcessSessionId",
    "IsProcessRemoteSession",
    "ProcessRemoteSessionDeviceName",
    "ProcessRemoteSessionIP",
];

/// A DeviceEvents mix: antivirus, exploit guard, USB, logon-related and
/// PowerShell rows, as a busy estate produces.
const DEVICE_EVENT_TYPES: &[&str] = &[
    "AntivirusDetection",
    "PowerShellCommand",
    "UsbDriveMounted",
    "ExploitGuardNetworkProtectionBlocked",
    "ProcessCreatedUsingWmiQuery",
    "ScheduledTaskCreated",
    "DnsQueryResponse",
    "NamedPipeEvent",
    "LdapSearch",
    "SmartScreenUrlWarning",
];

const PROCESS_TYPES: &[&str] = &["ProcessCreated", "ProcessCreated", "ProcessCreated", "OpenProcess"];
const NETWORK_TYPES: &[&str] = &[
    "ConnectionSuccess",
    "ConnectionSuccess",
    "InboundConnectionAccepted",
    "ConnectionFailed",
    "ListeningConnectionCreated",
];

/// A simple deterministic generator, so every run measures the same rows.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 11
    }
    fn hex(&mut self, len: usize) -> String {
        let mut s = String::with_capacity(len);
        while s.len() < len {
            s.push_str(&format!("{:016x}", self.next()));
        }
        s.truncate(len);
        s
    }
    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[(self.next() as usize) % list.len()]
    }
}

const EXES: &[(&str, &str, &str)] = &[
    (
        "powershell.exe",
        "C:\\Windows\\System32\\WindowsPowerShell\\v1.0",
        "Windows PowerShell",
    ),
    ("cmd.exe", "C:\\Windows\\System32", "Windows Command Processor"),
    ("chrome.exe", "C:\\Program Files\\Google\\Chrome\\Application", "Google Chrome"),
    ("svchost.exe", "C:\\Windows\\System32", "Host Process for Windows Services"),
    (
        "OUTLOOK.EXE",
        "C:\\Program Files\\Microsoft Office\\root\\Office16",
        "Microsoft Outlook",
    ),
];

fn value(column: &str, i: u64, rng: &mut Lcg, base: chrono::DateTime<chrono::Utc>, action: &str) -> Value {
    let ts = |offset_ms: i64| {
        (base + chrono::Duration::milliseconds(offset_ms))
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
            .replace("00Z", "Z")
    };
    // One program per process, as in a real row: its `FileName` is the
    // last part of its `FolderPath`, and its command line and version
    // information name it too (the shared samples' rows all do).
    let exe = EXES[i as usize % EXES.len()];
    let parent = EXES[(i as usize + 1) % EXES.len()];
    let initiating = column.starts_with("InitiatingProcessParent");
    let (file, folder, description) = if column.starts_with("InitiatingProcess") { parent } else { exe };
    match column {
        "Timestamp" => json!(ts(i as i64 * 7)),
        "ActionType" => json!(action),
        "DeviceId" => json!(format!("{:040x}", i % 500 + 0xfeed_0000)),
        "DeviceName" | "RemoteDeviceName" | "InitiatingProcessRemoteSessionDeviceName" | "ProcessRemoteSessionDeviceName" => {
            json!(format!("ws-{:04}.corp.contoso.com", i % 500))
        }
        "ReportId" => json!(1_000_000 + i),
        "AppGuardContainerId" | "FileOriginUrl" | "FileOriginIP" | "RegistryKey" | "RegistryValueName" | "RegistryValueData" => json!(""),
        // A scheduled task's row names its task there, as Defender's do.
        "AdditionalFields" if action == "ScheduledTaskCreated" => json!(format!(
            "{{\"TaskName\":\"\\\\Microsoft\\\\Windows\\\\UpdateOrchestrator\\\\Task{}\",\"SubjectUserName\":\"user{}\",\"SubjectDomainName\":\"contoso\"}}",
            i % 40,
            i % 300
        )),
        // And a USB drive's, the drive.
        "AdditionalFields" if action == "UsbDriveMounted" => json!(format!(
            "{{\"DriveLetter\":\"E:\",\"BusType\":7,\"ProductName\":\"SanDisk Ultra USB 3.0\",\"ProductRevision\":\"1.00\",\"Manufacturer\":\"SanDisk\",\"SerialNumber\":\"4C53{:012}\",\"Volume\":\"\\\\?\\\\Volume{{{}}}\"}}",
            i,
            rng.hex(8)
        )),
        "AdditionalFields" => json!(format!(
            "{{\"ProcessStartKey\":{},\"Command\":\"Invoke-WebRequest\",\"IsClearText\":false}}",
            844_424_930_131_968u64 + i
        )),
        "Protocol" => json!("Tcp"),
        "LocalIPType" => json!("Private"),
        "RemoteIPType" => json!("Public"),
        "RemoteUrl" => json!(format!("https://cdn{}.contoso-updates.com/path/{}", i % 17, rng.hex(12))),
        c if c.ends_with("SessionIP") || c == "LocalIP" => json!(format!("10.{}.{}.{}", i % 200, (i / 7) % 250, i % 250 + 1)),
        "RemoteIP" => json!(format!("52.{}.{}.{}", i % 200, (i / 3) % 250, i % 250 + 1)),
        "RemotePort" => json!(443),
        "LocalPort" => json!(49_152 + i % 16_000),
        c if c.starts_with("Is") => json!(false),
        c if c.ends_with("SHA1") => json!(rng.hex(40)),
        c if c.ends_with("SHA256") => json!(rng.hex(64)),
        c if c.ends_with("MD5") => json!(rng.hex(32)),
        c if c.ends_with("FileSize") => json!(100_000 + rng.next() % 5_000_000),
        c if c.ends_with("CreationTime") => json!(ts(i as i64 * 7 - 60_000 - (rng.next() % 3_600_000) as i64)),
        c if c.ends_with("ParentId") || c.ends_with("ProcessId") && !initiating => json!(1000 + rng.next() % 30_000),
        c if c.ends_with("LogonId") => json!(999 + i % 100),
        c if c.ends_with("SessionId") => json!(i % 4),
        c if c.ends_with("ParentFileName") => json!("explorer.exe"),
        c if c.ends_with("FileName") && !c.contains("VersionInfo") => json!(file),
        c if c.ends_with("FolderPath") => json!(format!("{folder}\\{file}")),
        c if c.ends_with("CommandLine") => json!(format!(
            "\"{file}\" -NoProfile -ExecutionPolicy Bypass -Command \"Get-ChildItem -Path C:\\Users\\user{}\\Documents -Recurse | Where-Object {{ $_.Length -gt {} }}\"",
            i % 300,
            rng.next() % 10_000
        )),
        c if c.ends_with("CompanyName") => json!("Microsoft Corporation"),
        c if c.ends_with("ProductName") => json!("Microsoft® Windows® Operating System"),
        c if c.ends_with("ProductVersion") => json!("10.0.22621.3527"),
        c if c.ends_with("InternalFileName") || c.ends_with("OriginalFileName") => json!(file.to_uppercase()),
        c if c.ends_with("FileDescription") => json!(description),
        c if c.ends_with("IntegrityLevel") => json!("Medium"),
        c if c.ends_with("TokenElevation") => json!("TokenElevationTypeLimited"),
        c if c.ends_with("AccountDomain") => json!("contoso"),
        c if c.ends_with("AccountName") => json!(format!("user{}", i % 300)),
        c if c.ends_with("AccountSid") => json!(format!("S-1-5-21-1004336348-1177238915-682003330-{}", 1000 + i % 300)),
        c if c.ends_with("AccountUpn") => json!(format!("user{}@contoso.com", i % 300)),
        c if c.ends_with("AccountObjectId") => json!(format!(
            "{}-{}-4{}-8{}-{}",
            rng.hex(8),
            rng.hex(4),
            rng.hex(3),
            rng.hex(3),
            rng.hex(12)
        )),
        c if c.ends_with("SignerType") => json!("OsVendor"),
        c if c.ends_with("SignatureStatus") => json!("Valid"),
        other => panic!("the workload has no value for column {other}"),
    }
}

/// `n` rows of `table`, as objects in column order, 7 ms apart from `base`.
pub fn rows(table: &str, n: usize, base: chrono::DateTime<chrono::Utc>) -> Vec<Map<String, Value>> {
    let (columns, actions): (&[&str], &[&str]) = match table {
        "DeviceProcessEvents" => (DEVICE_PROCESS_EVENTS, PROCESS_TYPES),
        "DeviceNetworkEvents" => (DEVICE_NETWORK_EVENTS, NETWORK_TYPES),
        "DeviceEvents" => (DEVICE_EVENTS, DEVICE_EVENT_TYPES),
        other => panic!("no workload for {other}"),
    };
    let mut rng = Lcg(0x5eed ^ table.len() as u64);
    (0..n as u64)
        .map(|i| {
            let action = rng.pick(actions);
            columns
                .iter()
                .map(|c| (c.to_string(), value(c, i, &mut rng, base, action)))
                .collect()
        })
        .collect()
}

/// A runHuntingQuery answer holding `rows`, shaped as Graph sends one: the
/// `schema` first, then each row with its columns in the schema's order.
/// The schema is the table's columns for the three workload tables, and the
/// rows' own columns, as they first come, for any other.
pub fn answer(table: &str, rows: &[Map<String, Value>]) -> Vec<u8> {
    let mut columns: Vec<&str> = match table {
        "DeviceProcessEvents" => DEVICE_PROCESS_EVENTS.to_vec(),
        "DeviceNetworkEvents" => DEVICE_NETWORK_EVENTS.to_vec(),
        "DeviceEvents" => DEVICE_EVENTS.to_vec(),
        _ => Vec::new(),
    };
    for row in rows {
        for name in row.keys() {
            if !columns.contains(&name.as_str()) {
                columns.push(name);
            }
        }
    }
    let schema: Vec<Value> = columns.iter().map(|c| json!({"name": c, "type": "String"})).collect();
    let mut out = br#"{"schema":"#.to_vec();
    serde_json::to_writer(&mut out, &schema).unwrap();
    out.extend_from_slice(br#","results":["#);
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        for (j, (name, value)) in columns.iter().filter_map(|c| row.get_key_value(*c)).enumerate() {
            if j > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, name).unwrap();
            out.push(b':');
            serde_json::to_writer(&mut out, value).unwrap();
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    out
}
