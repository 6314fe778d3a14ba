//! The direct writers against the engine, their reference: on every row a
//! direct writer takes, both must emit the same event (compared as JSON
//! values) and the same summary; a row it declines must be one the engine
//! maps (or rejects) itself. The rows: a full row written here, the shared
//! sample rows, thousands of both with cells replaced at random, rows made
//! by proptest, and one row for each rare path.

#[path = "../../../tests/support/json_cells.rs"]
mod json_cells;
#[path = "../../../tests/support/ocsf_schema.rs"]
mod ocsf_schema;

use super::write;
use crate::graph::{HuntingResult, parse_response};
use crate::mapping::device::DEVICE_PROCESS_EVENTS;
use crate::mapping::{Context, Table, Written, map_row, write_row};
use crate::time::Ticks;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const DPE: &Table = &DEVICE_PROCESS_EVENTS;

fn ctx() -> Context {
    Context {
        tenant_uid: Some("tenant-1".into()),
        ..Context::default()
    }
}

fn answer(rows: &[Map<String, Value>]) -> HuntingResult {
    parse_response(json!({"schema": [], "results": rows}).to_string()).unwrap()
}

/// Maps every row of `answer` both ways and fails on any difference;
/// returns the events the direct writer wrote.
fn compare(what: &str, answer: &HuntingResult, ctx: &Context) -> Vec<Value> {
    let mut direct_events = Vec::new();
    for i in 0..answer.len() {
        let row = answer.raw(i);
        let mut out = b"previous line\n".to_vec();
        let Some(written) = write(DPE, row, ctx, &mut out) else {
            assert_eq!(out, b"previous line\n", "{what}: a declined row leaves the output as it was");
            continue;
        };
        let line = &out[b"previous line\n".len()..];
        let engine = answer
            .row(i)
            .and_then(|r| map_row(DPE, r, ctx).map_err(|e| e.to_string()))
            .unwrap_or_else(|e| panic!("{what}: the direct writer took a row the engine rejects ({e}):\n{row}"));
        assert!(
            line.ends_with(b"\n") && !line[..line.len() - 1].contains(&b'\n'),
            "{what}: one NDJSON line:\n{}",
            String::from_utf8_lossy(line)
        );
        assert_eq!(written, Written::of(DPE, &engine), "{what}: the summary");
        let direct: Value =
            serde_json::from_slice(line).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", String::from_utf8_lossy(line)));
        let engine = as_written(&engine);
        assert_eq!(
            direct, engine,
            "{what}: the direct writer and the engine differ on\n{row}\ndirect: {direct}\nengine: {engine}"
        );
        direct_events.push(direct);
    }
    direct_events
}

/// `event` as the engine writes it, read back: what the direct writer's
/// output is compared with. (serde_json reads floats with best-effort
/// precision, without its `float_roundtrip` feature, so a float does not
/// always read back as the value it was written from; the writers must
/// agree on what they write.)
fn as_written(event: &Value) -> Value {
    let mut out = Vec::new();
    crate::mapping::write_event(&mut out, event);
    serde_json::from_slice(&out).unwrap()
}

/// A full Windows ProcessCreated row, every column of the table.
fn full_row() -> Map<String, Value> {
    let row = json!({
        "Timestamp": "2025-02-03T04:05:06.1234567Z", "DeviceId": "aa11bb22", "DeviceName": "pc1.contoso.com",
        "ActionType": "ProcessCreated", "FileName": "powershell.exe",
        "FolderPath": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
        "SHA1": "a1b2", "SHA256": "c3d4", "MD5": "e5f6", "FileSize": 450560,
        "ProcessVersionInfoCompanyName": "Microsoft Corporation", "ProcessVersionInfoProductName": "Microsoft® Windows® Operating System",
        "ProcessVersionInfoProductVersion": "10.0.19041.1", "ProcessVersionInfoInternalFileName": "POWERSHELL",
        "ProcessVersionInfoOriginalFileName": "PowerShell.EXE", "ProcessVersionInfoFileDescription": "Windows PowerShell",
        "ProcessId": 7316, "ProcessCommandLine": "powershell.exe -enc \"SQBFAFgA\"", "ProcessIntegrityLevel": "High",
        "ProcessTokenElevation": "TokenElevationTypeFull", "ProcessCreationTime": "2025-02-03T04:05:06.1Z",
        "ProcessUniqueId": "1234567890123", "ProcessRemoteSessionDeviceName": null, "ProcessRemoteSessionIP": "",
        "IsProcessRemoteSession": false, "CreatedProcessSessionId": 2
    });
    // In parts: one `json!` of every column is too deep for the macro.
    let initiating = json!({
        "AccountDomain": "contoso", "AccountName": "alice", "AccountSid": "S-1-5-21-1-2-3-1001",
        "AccountUpn": "alice@contoso.com", "AccountObjectId": "0f1e2d3c", "LogonId": 999,
        "InitiatingProcessAccountDomain": "contoso", "InitiatingProcessAccountName": "bob",
        "InitiatingProcessAccountSid": "S-1-5-21-1-2-3-1002", "InitiatingProcessAccountUpn": "bob@contoso.com",
        "InitiatingProcessAccountObjectId": "9a8b", "InitiatingProcessLogonId": 1234,
        "InitiatingProcessIntegrityLevel": "Medium"
    });
    let initiating_file = json!({ "InitiatingProcessTokenElevation": "TokenElevationTypeDefault",
        "InitiatingProcessSHA1": "11", "InitiatingProcessSHA256": "22", "InitiatingProcessMD5": "33",
        "InitiatingProcessFileName": "explorer.exe", "InitiatingProcessFileSize": "5000000",
        "InitiatingProcessVersionInfoCompanyName": "Microsoft Corporation",
        "InitiatingProcessVersionInfoProductName": "Microsoft® Windows® Operating System",
        "InitiatingProcessVersionInfoProductVersion": "10.0.19041.1",
        "InitiatingProcessVersionInfoInternalFileName": "explorer", "InitiatingProcessVersionInfoOriginalFileName": "EXPLORER.EXE",
        "InitiatingProcessVersionInfoFileDescription": "Windows Explorer", "InitiatingProcessId": 4120,
        "InitiatingProcessCommandLine": "Explorer.EXE", "InitiatingProcessCreationTime": "2025-02-03T03:00:00Z",
        "InitiatingProcessUniqueId": "777", "InitiatingProcessFolderPath": "c:\\windows\\explorer.exe",
        "InitiatingProcessParentId": 980, "InitiatingProcessParentFileName": "userinit.exe",
        "InitiatingProcessParentCreationTime": "2025-02-03T02:59:59.5Z", "InitiatingProcessSignerType": "OsVendor",
        "InitiatingProcessSignatureStatus": "Valid", "InitiatingProcessSessionId": 2,
        "IsInitiatingProcessRemoteSession": "0", "InitiatingProcessRemoteSessionDeviceName": "",
        "InitiatingProcessRemoteSessionIP": null, "ReportId": 9007199254740993u64, "AppGuardContainerId": "",
        "MachineGroup": "Tier0", "AdditionalFields": "{\"ProcessStartKey\": 7,\n \"Names\": [\"é\"]}",
        "BrandNewColumn": [1, {"a": 2.50}]
    });
    let mut row = row.as_object().unwrap().clone();
    row.extend(initiating.as_object().unwrap().clone());
    row.extend(initiating_file.as_object().unwrap().clone());
    row
}

/// The shared sample rows of the table, if `../shared` is present.
fn sample_rows() -> Vec<Map<String, Value>> {
    let Some(shared) = ocsf_schema::shared_or_skip("direct writers on the shared sample rows") else {
        return Vec::new();
    };
    let text = std::fs::read_to_string(shared.join("samples/normalized/DeviceProcessEvents.ndjson")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn full_and_sample_rows_are_written_directly_as_the_engine_maps_them() {
    let mut rows = vec![full_row()];
    let mut linux = full_row();
    linux.insert("FolderPath".into(), json!("/usr/bin/"));
    linux.insert("FileName".into(), json!("curl"));
    linux.insert("ActionType".into(), json!("OpenProcess"));
    rows.push(linux);
    rows.extend(sample_rows());
    let events = compare("full and sample rows", &answer(&rows), &ctx());
    assert_eq!(events.len(), rows.len(), "every full row is written directly");
    ocsf_schema::assert_all_valid("direct writers, full and sample rows", &events);
    // The mapping the guide asks for, not only the engine's agreement.
    let e = &events[0];
    assert_eq!(e["process"]["parent_process"]["name"], "explorer.exe");
    assert_eq!(e["actor"]["process"]["parent_process"]["name"], "userinit.exe");
    assert_eq!(e["metadata"]["original_event_uid"], "9007199254740993");
    assert_eq!(e["unmapped"]["AdditionalFields"]["Names"][0], "é");
}

/// A xorshift generator with a fixed seed: the same rows on every run.
fn picker(mut seed: u64) -> impl FnMut(usize) -> usize {
    move |n| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    }
}

#[test]
fn rows_with_cells_replaced_at_random_are_written_as_the_engine_maps_them() {
    let replacements = [
        Value::Null,
        json!(""),
        json!(0),
        json!("0"),
        json!(" 42 "),
        json!(-7),
        json!(18446744073709551615u64),
        json!(1.5),
        json!(true),
        json!("TRUE"),
        json!("x"),
        json!({"a": 1}),
        json!([]),
        json!("C:\\Temp\\"),
        json!("/usr/bin/"),
        json!("\\\\server\\share\\a.exe"),
        json!("name.exe"),
        json!("NAME.EXE"),
        json!("not-a-time"),
        json!("2026-11-01T10:00:00"),
        json!("a@b"),
        json!("x@y.z"),
        json!("{\"k\": [1, \"\\u00e9\"]}"),
        json!("[1,\n2]"),
        json!("Ünïcödé \"quoted\""),
        json!("host."),
        json!(".domain"),
    ];
    let mut bases = vec![full_row()];
    bases.extend(sample_rows());
    let columns: Vec<String> = bases.iter().flat_map(|r| r.keys().cloned()).collect();
    let mut next = picker(0x2545_f491_4f6c_dd1d);
    let mut rows = Vec::new();
    for n in 0..3_000 {
        let mut row = bases[n % bases.len()].clone();
        for _ in 0..1 + next(12) {
            let column = &columns[next(columns.len())];
            row.insert(column.clone(), replacements[next(replacements.len())].clone());
        }
        rows.push(row);
    }
    let events = compare("rows with cells replaced", &answer(&rows), &ctx());
    // The comparison is worth something only if most rows take the direct
    // path; those declined are the rows without a usable Timestamp.
    let usable = rows
        .iter()
        .filter(|r| r.get("Timestamp").and_then(Value::as_str).is_some_and(|t| Ticks::parse(t).is_ok()))
        .count();
    assert_eq!(events.len(), usable, "every row with a usable Timestamp is written directly");
    assert!(usable > 2_500, "{usable}");
}

#[test]
fn each_rare_path_is_written_as_the_engine_maps_it() {
    let base = full_row();
    let only = |keep: &[&str], extra: Value| {
        let mut row: Map<String, Value> = base
            .iter()
            .filter(|(k, _)| keep.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        row.extend(extra.as_object().unwrap().clone());
        row
    };
    let core = ["Timestamp", "DeviceId", "ActionType", "ReportId"];
    let rows = vec![
        // Only pids: Defender's "no such process" (0) is dropped.
        only(&core, json!({"ProcessId": 5, "InitiatingProcessId": 0})),
        only(
            &core,
            json!({"ProcessId": 0, "InitiatingProcessAccountDomain": "d", "InitiatingProcessFolderPath": "nofolder"}),
        ),
        // A user without a name or uid, a version without a product, a
        // folder without a file name, a parent without a pid.
        only(
            &core,
            json!({"ProcessId": 5, "AccountDomain": "d", "ProcessVersionInfoProductVersion": "1.0", "FolderPath": "C:\\x\\"}),
        ),
        only(
            &core,
            json!({"ProcessId": 5, "InitiatingProcessId": 6, "InitiatingProcessParentFileName": "p.exe"}),
        ),
        only(
            &core,
            json!({"ProcessId": 5, "InitiatingProcessId": 6, "InitiatingProcessParentId": 0}),
        ),
        only(
            &core,
            json!({"InitiatingProcessAccountName": "n", "IsInitiatingProcessRemoteSession": "true"}),
        ),
        // No process at all, no device, no ActionType, an unknown one.
        only(&["Timestamp"], json!({})),
        only(&["Timestamp", "DeviceId"], json!({"ActionType": "ProcessHollowed"})),
        only(&["Timestamp", "DeviceId"], json!({"ActionType": {"odd": true}, "ReportId": "r-1"})),
        // A name that the path does not end with, in another case.
        only(
            &core,
            json!({"ProcessId": 1, "FileName": "CMD.EXE", "FolderPath": "c:\\windows\\system32\\cmd.exe"}),
        ),
        only(&core, json!({"ProcessId": 1, "FileName": "cmd.exe", "FolderPath": "c:\\windows"})),
        // A ReportId of each type, a host name with an empty part.
        only(&["Timestamp", "DeviceId"], json!({"ReportId": true, "DeviceName": "host."})),
        only(&["Timestamp", "DeviceId"], json!({"ReportId": -12, "DeviceName": 42})),
        only(&["Timestamp", "DeviceId"], json!({"ReportId": 1.5e3})),
    ];
    let events = compare("rare paths", &answer(&rows), &ctx());
    assert_eq!(events.len(), rows.len());
    // A row without DeviceId or DeviceName (Defender always sends DeviceId)
    // has no `device`, which OCSF requires; the others must be valid.
    let with_device: Vec<Value> = events.iter().filter(|e| e.get("device").is_some()).cloned().collect();
    assert_eq!(with_device.len(), events.len() - 1);
    ocsf_schema::assert_all_valid("direct writers, rare paths", &with_device);
    // Rules 12 and 13 of docs/mapping.md: no process, no actor.
    assert_eq!(events[6]["process"], json!({"pid": 0}));
    assert_eq!(events[6]["metadata"]["labels"], json!(["process-unknown"]));
    assert_eq!(events[0]["actor"], json!({"app_name": "Microsoft Defender for Endpoint"}));
}

/// Rows the direct writer leaves to the engine, and what the engine makes
/// of them through [`write_row`]: the same as mapping them alone.
#[test]
fn rows_it_declines_are_mapped_or_rejected_by_the_engine() {
    let declined = [
        // No Timestamp: an error, or the collection time with a label.
        r#"{"DeviceId":"d","ProcessId":1}"#.to_string(),
        r#"{"Timestamp":17,"DeviceId":"d"}"#.to_string(),
        r#"{"Timestamp":"yesterday","DeviceId":"d"}"#.to_string(),
        // A column twice (the engine keeps the last), mapped or not.
        r#"{"Timestamp":"2025-01-01T00:00:00Z","ProcessId":1,"ProcessId":2}"#.to_string(),
        r#"{"Timestamp":"2025-01-01T00:00:00Z","New":1,"New":2}"#.to_string(),
        // A union's rows name their table.
        r#"{"Timestamp":"2025-01-01T00:00:00Z","SourceTable":"DeviceProcessEvents","ProcessId":1}"#.to_string(),
        // An escaped surrogate: a pair the engine reads, a lone one it rejects.
        r#"{"Timestamp":"2025-01-01T00:00:00Z","ProcessCommandLine":"a \ud83d\ude00"}"#.to_string(),
        r#"{"Timestamp":"2025-01-01T00:00:00Z","ProcessCommandLine":"a \ud83d"}"#.to_string(),
        // A number serde_json will not read, in a mapped or an unmapped cell.
        r#"{"Timestamp":"2025-01-01T00:00:00Z","ProcessId":1e400}"#.to_string(),
        r#"{"Timestamp":"2025-01-01T00:00:00Z","New":[1e400]}"#.to_string(),
        // A column name with an escape.
        r#"{"Timestamp":"2025-01-01T00:00:00Z","N\u0065w":1}"#.to_string(),
        // A column named like an object the finish steps move to
        // `unmapped` (found by the fuzz target).
        r#"{"Timestamp":"2025-01-01T00:00:00Z","SHA1":"s","process":"x"}"#.to_string(),
    ];
    let with_collection_time = Context {
        collected_at: Some(Ticks::parse("2025-06-01T00:00:00Z").unwrap()),
        ..ctx()
    };
    for ctx in [ctx(), with_collection_time] {
        let body = format!(r#"{{"schema":[],"results":[{}]}}"#, declined.join(","));
        let answer = parse_response(body).unwrap();
        assert_eq!(answer.len(), declined.len());
        for i in 0..answer.len() {
            let mut out = Vec::new();
            assert!(write(DPE, answer.raw(i), &ctx, &mut out).is_none(), "declined: {}", answer.raw(i));
            assert!(out.is_empty());
            let expected = answer.row(i).and_then(|r| map_row(DPE, r, &ctx).map_err(|e| e.to_string()));
            let got = write_row(DPE, &answer, i, &ctx, &mut out, |_| None);
            match (expected, got) {
                (Ok(event), Ok(written)) => {
                    assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), as_written(&event));
                    assert_eq!(written, Written::of(DPE, &event));
                }
                (Err(expected), Err((message, _))) => assert_eq!(message, expected),
                (expected, got) => panic!("{}: the engine says {expected:?}, write_row {got:?}", answer.raw(i)),
            }
        }
    }
}

/// Numbers as the answer writes them, which a `Value` would rewrite:
/// `-0` (serde_json reads it as a float, found by the fuzz target), an
/// integer too long for 64 bits (read as a float), a fraction and an
/// exponent, in mapped integer and string columns and in unmapped ones.
#[test]
fn numbers_are_read_as_serde_json_reads_them() {
    let long = "999777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777779";
    let mut rows = Vec::new();
    for number in ["-0", long, "-5", "1.0", "1E3", "18446744073709551615", "-9223372036854775808"] {
        for column in ["InitiatingProcessId", "FileSize", "ReportId", "ProcessUniqueId", "LogonId", "New"] {
            rows.push(format!(
                r#"{{"Timestamp":"2025-01-01T00:00:00Z","DeviceId":"d","ProcessId":7,"{column}":{number}}}"#
            ));
        }
    }
    let answer = parse_response(format!(r#"{{"schema":[],"results":[{}]}}"#, rows.join(","))).unwrap();
    let events = compare("numbers", &answer, &ctx());
    assert_eq!(events.len(), rows.len(), "all written directly");
    // `-0` is not Defender's "no process" 0: the engine keeps it.
    assert_eq!(events[0]["unmapped"]["InitiatingProcessId"], json!(-0.0));
}

/// Whitespace an answer holds between the items of an object or array
/// cell must not reach the output: a newline would split the NDJSON line.
#[test]
fn cells_with_whitespace_inside_stay_on_one_line() {
    let body = "{\"schema\":[],\"results\":[{\"Timestamp\": \"2025-01-01T00:00:00Z\",\n  \"DeviceId\": \"d\", \"ProcessId\": 1,\n  \"New\": [1,\n 2.50, {\"a\" :\t\"b\"}],\n  \"AdditionalFields\": {\"k\":\r\n true}, \"ProcessCommandLine\": {\"x\": [ ]}\n}]}";
    let answer = parse_response(body.to_string()).unwrap();
    let events = compare("whitespace", &answer, &ctx());
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["unmapped"]["New"], json!([1, 2.5, {"a": "b"}]));
    assert_eq!(events[0]["unmapped"]["ProcessCommandLine"], json!({"x": []}));
}

#[test]
fn escaped_surrogates_are_found_and_escaped_backslashes_are_not_taken_for_them() {
    use super::has_surrogate_escape as found;
    assert!(found(r#"{"a":"x\uD83D\uDE00"}"#));
    assert!(found(r#"{"a":"\\\udc00"}"#), "an escaped backslash, then a surrogate");
    assert!(!found(r#"{"a":"\\ud800"}"#), "an escaped backslash, then the text ud800");
    assert!(!found(r#"{"a":"C:\\Users\\u1\u00e9\u0041"}"#));
    assert!(!found(r#"{"a":"no escapes"}"#));
}

#[test]
fn other_tables_are_left_to_the_engine() {
    let answer = answer(&[full_row()]);
    let network = crate::mapping::table("DeviceNetworkEvents").unwrap();
    assert!(write(network, answer.raw(0), &ctx(), &mut Vec::new()).is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_row_is_written_as_the_engine_maps_it(
        cells in prop::collection::btree_map(
            prop::sample::select(full_row().keys().cloned().chain(["Other".to_string()]).collect::<Vec<_>>()),
            json_cells::json_value(),
            0..40,
        ),
        valid_time in any::<bool>(),
    ) {
        let mut row: Map<String, Value> = cells.into_iter().collect();
        if valid_time {
            row.insert("Timestamp".into(), json!("2025-03-04T05:06:07.891Z"));
        }
        let events = compare("proptest", &answer(&[row]), &ctx());
        prop_assert!(!valid_time || events.len() == 1, "a row with a valid Timestamp is written directly");
    }
}
