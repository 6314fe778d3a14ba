//! Mapping without collecting: a saved `runHuntingQuery` answer (or rows
//! one per line) in, OCSF NDJSON out. Behind `defender-ocsf map` and the benchmarks; it runs the
//! same parsing and mapping code as collection does.

use crate::answer;
use crate::error::{Error, Result};
use crate::mapping::{self, Context};
use crate::stream_api;
use crate::time::Ticks;
use serde::Deserialize;

/// The options of a conversion, a subset of the source's configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Set as `metadata.tenant_uid` on every event.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// As `ocsf.deprecated_classes` of the source (default true).
    #[serde(default)]
    pub deprecated_classes: Option<bool>,
    /// When the rows were collected (RFC 3339): a row without a `Timestamp`
    /// takes it, labelled `time-is-collection-time`, as in collection.
    /// Without it, such a row is rejected.
    #[serde(default)]
    pub collected_at: Option<String>,
}

/// The events of one answer, and the rows that could not be mapped.
#[derive(Debug, Default)]
pub struct Converted {
    /// NDJSON, one event per line.
    pub events: Vec<u8>,
    pub count: u32,
    /// One message per rejected row or entry.
    pub rejected: Vec<String>,
}

/// The options of a conversion, as JSON (empty: the defaults), and the
/// context of mapping they make.
fn context(options_json: &str) -> Result<Context> {
    let options: Options = if options_json.trim().is_empty() {
        Options::default()
    } else {
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(options_json)).map_err(|e| {
            let path = e.path().to_string();
            match path.as_str() {
                "." | "" => Error::Config(format!("conversion options: {}", e.inner())),
                _ => Error::Config(format!("conversion options: `{path}`: {}", e.inner())),
            }
        })?
    };
    let collected_at = match options.collected_at.as_deref().map(Ticks::parse) {
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            return Err(Error::Config(format!(
                "conversion options: `collected_at` is not an RFC 3339 time: {e}"
            )));
        }
        None => None,
    };
    Ok(Context {
        tenant_uid: options.tenant_id,
        no_deprecated_classes: !options.deprecated_classes.unwrap_or(true),
        collected_at,
    })
}

/// Maps one Streaming API message (`stream_api`). An unreadable message is
/// an error that says what is wrong with it.
/// An empty message maps to nothing: it checks the options (WIT 0.5.0).
pub fn convert_stream(options_json: &str, message: &[u8]) -> std::result::Result<stream_api::StreamMapped, String> {
    let context = context(options_json).map_err(|e| e.to_string())?;
    if message.is_empty() {
        return Ok(stream_api::StreamMapped::default());
    }
    stream_api::map_message(message, &context)
}

/// Maps the answer `body` of a query over `table`.
pub fn convert(table: &str, options_json: &str, body: impl Into<Vec<u8>>) -> Result<Converted> {
    let context = context(options_json)?;
    let table = mapping::table(table).ok_or_else(|| {
        Error::Config(format!(
            "`{table}` is not an advanced-hunting table this collector maps; the tables are: {}",
            mapping::TABLES.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
        ))
    })?;
    let body = body.into();
    let size = body.len();
    let result = read_answer(body).map_err(|e| {
        Error::Config(format!(
            "the input is neither a runHuntingQuery answer nor rows one JSON object per line: {e}"
        ))
    })?;
    let mut out = Converted {
        rejected: result.malformed.clone(),
        ..Converted::default()
    };
    // Events are about one and a half times their rows (keys the answer does
    // not hold), up to twice; growing a buffer of this size once more
    // copies all of it.
    out.events.reserve(size * 2);
    let plan = mapping::plan::Plan::new(&[table], columns_of(&result).iter().map(String::as_str));
    for i in 0..result.len() {
        match plan.write_row(result.row_text(i), &context, &mut out.events, |_, _| None) {
            Ok(_) => out.count += 1,
            Err(e) => out.rejected.push(e.to_string()),
        }
    }
    Ok(out)
}

/// The answer's columns: its schema's, or, for rows saved without one,
/// the first row's when they hold columns a union renamed for their types
/// (`ReportId_long`, `ReportId_string`: a union's rows carry every one of
/// its columns, null where their table has none), so that such rows are
/// read as their tables' (`cells::union_renamed`).
fn columns_of(result: &answer::HuntingResult) -> Vec<String> {
    if !result.schema.is_empty() || result.is_empty() {
        return result.schema.iter().map(|(name, _)| name.clone()).collect();
    }
    let mut names: Vec<String> = Vec::new();
    let _ = answer::object_members(result.raw(0), |name, _, _| names.extend(serde_json::from_str::<String>(name).ok()));
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    match mapping::cells::union_renamed(&refs).is_empty() {
        true => Vec::new(),
        false => names,
    }
}

/// The input as a runHuntingQuery answer: a JSON object with `results` is
/// taken as it is; anything else as one row per line (blank lines skipped),
/// as advanced-hunting rows are often saved; a file of one row is one line.
fn read_answer(input: Vec<u8>) -> Result<answer::HuntingResult> {
    // An answer is located in one scan; only what is not one is scanned again.
    let (not_answer, input) = match answer::parse_or_return(input) {
        Ok(answer) => return Ok(answer),
        Err(failed) => failed,
    };
    let lines = answer::from_lines(input)?;
    match lines.is_empty() && !lines.malformed.is_empty() {
        // Nothing in it is a row: say why it is not an answer either.
        true => Err(Error::Config(format!(
            "{not_answer}; and as rows one per line, {}",
            lines.malformed.join("; ")
        ))),
        false => Ok(lines),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_stream_message_checks_the_options_only() {
        let mapped = convert_stream(r#"{"tenant_id":"t","deprecated_classes":false}"#, b"").unwrap();
        assert_eq!(mapped.count, 0);
        let e = convert_stream(r#"{"deprecated_classes":"maybe"}"#, b"").unwrap_err();
        assert!(e.contains("conversion options") && e.contains("deprecated_classes"), "{e}");
    }

    #[test]
    fn saved_rows_are_an_answer_or_one_row_per_line() {
        let answer = br#"{"schema":[{"name":"a","type":"Int64"}],"Results":[{"a":1},{"a":2}]}"#.to_vec();
        let read = read_answer(answer).unwrap();
        assert_eq!((read.len(), read.schema.len()), (2, 1), "an answer is taken as it is");
        let read = read_answer(b"{\"a\":1}\n".to_vec()).unwrap();
        assert_eq!((read.len(), read.raw(0)), (1, "{\"a\":1}"), "one row");
        let read = read_answer(b"{\"a\":1}\n\n{\"a\":tru}\n{\"a\":2}".to_vec()).unwrap();
        assert_eq!(
            (read.len(), read.raw(1)),
            (2, "{\"a\":2}"),
            "a line that is not a row is left out alone"
        );
        assert!(read.malformed[0].contains("line 3 is not JSON"), "{:?}", read.malformed);
        let e = read_answer(br#"{"results":[{"a":tru}]}"#.to_vec()).unwrap_err().to_string();
        assert!(e.contains("not valid hunting results") && e.contains("line 1 is not JSON"), "{e}");
        let rows = b"{\"Timestamp\":\"2025-01-01T00:00:00Z\",\"DeviceId\":\"d\",\"ActionType\":\"ProcessCreated\",\"ProcessId\":1,\"FileName\":\"a.exe\",\"InitiatingProcessId\":2,\"InitiatingProcessFileName\":\"b.exe\",\"ReportId\":1}\n";
        let out = convert("DeviceProcessEvents", "", rows.to_vec()).unwrap();
        assert_eq!((out.count, out.rejected.len()), (1, 0), "{:?}", out.rejected);
    }

    /// Rows saved from a union (as an export of `union A, B` holds them)
    /// carry a column per type where the tables' types differ; `map` reads
    /// each row as its table's, with its ReportId and AdditionalFields.
    #[test]
    fn rows_saved_from_a_union_are_read_as_their_tables_rows() {
        let rows = concat!(
            r#"{"Timestamp":"2021-08-02T13:11:39Z","DeviceId":"d","DeviceName":"pc","ActionType":"LdapSearch","InitiatingProcessId":5692,"#,
            r#""InitiatingProcessFileName":"powershell.exe","ReportId_long":2047,"ReportId_string":null,"AdditionalFields_string":"{\"SearchFilter\":\"(objectClass=*)\"}","AdditionalFields_dynamic":null}"#,
            "\n",
        );
        let out = convert("DeviceEvents", "", rows.as_bytes().to_vec()).unwrap();
        assert_eq!((out.count, out.rejected.len()), (1, 0), "{:?}", out.rejected);
        let event: serde_json::Value = serde_json::from_slice(&out.events).unwrap();
        assert_eq!(event["metadata"]["original_event_uid"], "2047");
        let unmapped = event["unmapped"].as_object().unwrap();
        assert!(
            unmapped
                .keys()
                .all(|k| !k.ends_with("_long") && !k.ends_with("_string") && !k.ends_with("_dynamic")),
            "{event}"
        );
        let alone = br#"{"Timestamp":"2021-08-02T13:11:39Z","DeviceId":"d","DeviceName":"pc","ActionType":"LdapSearch","InitiatingProcessId":5692,"InitiatingProcessFileName":"powershell.exe","ReportId":2047,"AdditionalFields":"{\"SearchFilter\":\"(objectClass=*)\"}"}"#;
        let alone = convert("DeviceEvents", "", alone.to_vec()).unwrap();
        assert_eq!(event, serde_json::from_slice::<serde_json::Value>(&alone.events).unwrap());
    }

    #[test]
    fn maps_each_row_and_names_the_rejected_ones() {
        let body = br#"{"schema":[],"results":[
            {"Timestamp":"2025-03-01T10:00:00Z","DeviceId":"d","ActionType":"ProcessCreated","ReportId":9007199254740993,"ProcessId":4},
            {"DeviceId":"d","ActionType":"ProcessCreated","ReportId":2},
            7]}"#;
        let out = convert("DeviceProcessEvents", r#"{"tenant_id":"t"}"#, body).unwrap();
        assert_eq!(out.count, 1);
        let event: serde_json::Value = serde_json::from_slice(&out.events).unwrap();
        assert_eq!(event["class_uid"], 1007);
        assert_eq!(event["metadata"]["tenant_uid"], "t");
        assert!(
            String::from_utf8_lossy(&out.events).contains("9007199254740993"),
            "ReportId stays exact"
        );
        assert_eq!(out.rejected.len(), 2, "{:?}", out.rejected);
        assert!(out.rejected.iter().any(|r| r.contains("Timestamp")), "{:?}", out.rejected);
    }

    /// `map` agrees with collection (docs/mapping.md, decision 11): given
    /// the time of mapping, a row without a Timestamp takes it, labelled.
    #[test]
    fn a_row_without_a_timestamp_takes_the_collection_time_when_given() {
        let body = br#"{"schema":[],"results":[{"DeviceId":"d","ActionType":"ProcessCreated","ProcessId":4}]}"#;
        let out = convert("DeviceProcessEvents", r#"{"collected_at":"2026-12-03T10:00:00Z"}"#, body.as_slice()).unwrap();
        assert_eq!((out.count, out.rejected.len()), (1, 0), "{:?}", out.rejected);
        let event: serde_json::Value = serde_json::from_slice(&out.events).unwrap();
        assert_eq!(event["time"], 1796292000000i64);
        assert_eq!(event["metadata"]["labels"], serde_json::json!(["time-is-collection-time"]));
        let e = convert("DeviceProcessEvents", r#"{"collected_at":"yesterday"}"#, body.as_slice())
            .unwrap_err()
            .to_string();
        assert!(e.contains("collected_at"), "{e}");
    }

    #[test]
    fn bad_input_is_a_configuration_error_that_says_what_is_wrong() {
        let e = convert("NoSuchTable", "", b"{}").unwrap_err().to_string();
        assert!(e.contains("NoSuchTable") && e.contains("DeviceProcessEvents"), "{e}");
        let e = convert("DeviceEvents", "", b"not json").unwrap_err().to_string();
        assert!(e.contains("neither a runHuntingQuery answer nor rows"), "{e}");
        let e = convert("DeviceEvents", r#"{"tenant":"x"}"#, b"{}").unwrap_err().to_string();
        assert!(e.contains("unknown field `tenant`"), "{e}");
    }
}
