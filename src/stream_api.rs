//! Defender's Streaming API messages (an Event Hub's, read over the Kafka
//! protocol by the host) to OCSF, with the same mapping as the Graph path:
//! `{"records": [{"time", "tenantId", "category": "AdvancedHunting-<Table>",
//! "properties": {<the row>}}]}` (graph-api.md §3). `properties.Timestamp`
//! is the event's time; the envelope's `time` (when the record was
//! published) is not. Each record is mapped on its own: joined tables
//! (AlertEvidence) stand alone, as evidence whose alert is elsewhere does.

use crate::answer::{self, NotAMessage};
use crate::mapping::plan::Plan;
use crate::mapping::{self, Context, Table};
use std::borrow::Cow;

/// What one message gave.
#[derive(Debug, Default)]
pub struct StreamMapped {
    /// NDJSON, one OCSF event per line.
    pub events: Vec<u8>,
    /// How many lines `events` holds.
    pub count: u32,
    /// One message per record that could not be mapped, naming it.
    pub rejected: Vec<String>,
    /// Per table: records mapped and records rejected.
    pub tables: Vec<TableCount>,
    /// Categories of records that are not a table this collector maps,
    /// with how many records each; those records are left out.
    pub unknown_categories: Vec<(String, u32)>,
}

/// Records of one table in a message.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TableCount {
    pub table: String,
    pub rows: u32,
    pub errors: u32,
}

/// Why a message of `bytes` bytes is not read.
fn too_large(bytes: usize) -> String {
    format!(
        "the message is {bytes} bytes, more than the 4 GiB this collector reads in one message; \
         Event Hubs sends far smaller ones, so it is not a Streaming API message"
    )
}

/// Maps one message. A message that is not such an envelope is an error
/// (the caller counts it and moves on); a record that is not one, or whose
/// row cannot be mapped, is named in `rejected` and the others are mapped.
/// `ctx.tenant_uid`, when set, wins over each record's `tenantId`.
pub fn map_message(message: &[u8], ctx: &Context) -> Result<StreamMapped, String> {
    let text = std::str::from_utf8(message).map_err(|e| format!("the message is not UTF-8 text: {e}"))?;
    // One scan of the message locates every record and its row's members:
    // nothing of it is read twice.
    let envelope = answer::stream_message(text).map_err(|e| {
        let (what, why) = match e {
            NotAMessage::NotJson(why) => ("is not JSON", why),
            NotAMessage::NoRecords(why) => ("has no `records` list", why),
            NotAMessage::TooLarge(bytes) => return too_large(bytes),
        };
        format!("the message {what} ({why}); a Streaming API message is {{\"records\": [...]}}")
    })?;
    let mut out = StreamMapped::default();
    // One compiled plan per table for the whole message.
    let mut plans: Vec<(&'static Table, Plan)> = Vec::new();
    let mut tenant_ctx: Option<(String, Context)> = None;
    for i in 0..envelope.len() {
        let record = envelope.record(i).map_err(str::to_string).and_then(|r| {
            let category = field_text(r.category, "category")?;
            Ok((category, field_text(r.tenant_id, "tenantId")?, r.properties))
        });
        let (category, tenant_id, properties) = match record {
            Ok(parts) => parts,
            Err(why) => {
                out.rejected.push(format!("record {i} is not a Streaming API record: {why}"));
                continue;
            }
        };
        let category = category.as_deref().unwrap_or_default();
        let table = category.strip_prefix("AdvancedHunting-").and_then(mapping::table);
        let Some(table) = table else {
            match out.unknown_categories.iter_mut().find(|(c, _)| c == category) {
                Some((_, n)) => *n += 1,
                None => out.unknown_categories.push((category.to_string(), 1)),
            }
            continue;
        };
        let count = match out.tables.iter().position(|t| t.table == table.name) {
            Some(p) => p,
            None => {
                out.tables.push(TableCount {
                    table: table.name.to_string(),
                    ..TableCount::default()
                });
                out.tables.len() - 1
            }
        };
        let Some(row) = properties else {
            out.tables[count].errors += 1;
            out.rejected
                .push(format!("{} record {i} has no `properties` object (the row)", table.name));
            continue;
        };
        // The record's tenant, unless the configuration names one.
        let ctx = match (&ctx.tenant_uid, tenant_id.as_deref()) {
            (None, Some(tenant)) => {
                if tenant_ctx.as_ref().is_none_or(|(t, _)| t != tenant) {
                    let with = Context {
                        tenant_uid: Some(tenant.to_string()),
                        ..ctx.clone()
                    };
                    tenant_ctx = Some((tenant.to_string(), with));
                }
                tenant_ctx.as_ref().map_or(ctx, |(_, c)| c)
            }
            _ => ctx,
        };
        let plan = match plans.iter().position(|(t, _)| std::ptr::eq(*t, table)) {
            Some(p) => &plans[p].1,
            None => {
                plans.push((table, Plan::new(&[table], [])));
                &plans[plans.len() - 1].1
            }
        };
        match plan.write_row(row, ctx, &mut out.events, |_, _| None) {
            Ok(_) => {
                out.count += 1;
                out.tables[count].rows += 1;
            }
            Err(e) => {
                out.tables[count].errors += 1;
                out.rejected.push(e.to_string());
            }
        }
    }
    Ok(out)
}

/// A record's string field (its JSON literal) as text, `None` when absent;
/// an escaped surrogate left unpaired is no text.
fn field_text<'a>(literal: Option<&'a str>, field: &str) -> Result<Option<Cow<'a, str>>, String> {
    match literal.map(serde_json::from_str::<Cow<str>>) {
        Some(Err(_)) => Err(format!("its `{field}` is not text")),
        Some(Ok(text)) => Ok(Some(text)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn ctx() -> Context {
        Context::default()
    }

    #[test]
    fn records_of_several_tables_map_with_the_api_paths_mapping_and_uid() {
        let row = json!({"Timestamp": "2025-01-01T00:00:01.0000000Z", "DeviceId": "d1", "DeviceName": "pc1", "ActionType": "ProcessCreated",
                         "ProcessId": 7, "ReportId": 12, "MachineGroup": "Tier0", "AdditionalFields": {"a": 1}});
        let message = json!({"records": [
            {"time": "2025-01-01T00:00:05.123Z", "tenantId": "t-1", "operationName": "Publish", "category": "AdvancedHunting-DeviceProcessEvents", "properties": row},
            {"time": "2025-01-01T00:00:05.123Z", "tenantId": "t-1", "category": "AdvancedHunting-IdentityLogonEvents",
             "properties": {"Timestamp": "2025-01-01T00:00:02Z", "ActionType": "LogonSuccess", "AccountUpn": "a@contoso.com", "Application": "Active Directory"}},
            {"time": "2025-01-01T00:00:05.123Z", "category": "AdvancedHunting-SomethingNew", "properties": {}},
            {"time": "2025-01-01T00:00:05.123Z", "category": "AdvancedHunting-SomethingNew", "properties": {}},
        ]});
        let out = map_message(message.to_string().as_bytes(), &ctx()).unwrap();
        assert_eq!(out.count, 2, "{:?}", out.rejected);
        let events: Vec<Value> = out
            .events
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(events[0]["class_uid"], 1007);
        assert_eq!(events[0]["time"], 1735689601000i64, "the row's Timestamp, not the envelope's time");
        assert_eq!(events[0]["metadata"]["tenant_uid"], "t-1");
        assert_eq!(events[0]["device"]["groups"], json!([{"name": "Tier0"}]));
        assert_eq!(events[1]["class_uid"], 3002);
        assert_eq!(out.unknown_categories, vec![("AdvancedHunting-SomethingNew".to_string(), 2)]);
        assert_eq!(
            out.tables.iter().map(|t| (t.table.as_str(), t.rows)).collect::<Vec<_>>(),
            [("DeviceProcessEvents", 1), ("IdentityLogonEvents", 1)]
        );
        // The same row through the API path has the same metadata.uid.
        let table = mapping::table("DeviceProcessEvents").unwrap();
        let mut api_row = row.as_object().unwrap().clone();
        api_row.remove("MachineGroup");
        api_row.insert("SHA1".into(), Value::Null);
        let via_api = mapping::map_row(table, api_row.into_iter().collect(), &ctx()).unwrap();
        assert_eq!(events[0]["metadata"]["uid"], via_api["metadata"]["uid"]);
    }

    /// What serde_json made of a record before the message was located by
    /// the answer's scan: the reference the scan is held to.
    #[derive(serde::Deserialize)]
    struct SerdeRecord<'a> {
        #[serde(borrow, default)]
        category: Option<Cow<'a, str>>,
        #[serde(borrow, default, rename = "tenantId")]
        tenant_id: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        properties: Option<&'a serde_json::value::RawValue>,
    }

    #[derive(serde::Deserialize)]
    struct SerdeEnvelope<'a> {
        #[serde(borrow)]
        records: Vec<&'a serde_json::value::RawValue>,
    }

    /// Each record as (category, tenant, the row's text), or `None` for one
    /// that is no record.
    type Split = Vec<Option<(Option<String>, Option<String>, Option<String>)>>;

    fn split_by_serde(text: &str) -> Split {
        let envelope: SerdeEnvelope = serde_json::from_str(text).unwrap();
        (envelope.records.iter())
            .map(|raw| {
                let r: SerdeRecord = serde_json::from_str(raw.get()).ok()?;
                let row = r.properties.map(|p| p.get().to_string()).filter(|p| p.starts_with('{'));
                Some((r.category.map(Cow::into_owned), r.tenant_id.map(Cow::into_owned), row))
            })
            .collect()
    }

    fn split_by_scan(text: &str) -> Split {
        let message = answer::stream_message(text).unwrap();
        (0..message.len())
            .map(|i| {
                let r = message.record(i).ok()?;
                let category = field_text(r.category, "category").ok()?.map(Cow::into_owned);
                let tenant = field_text(r.tenant_id, "tenantId").ok()?.map(Cow::into_owned);
                Some((category, tenant, r.properties.map(|p| p.text.to_string())))
            })
            .collect()
    }

    proptest::proptest! {
        /// The answer's scan splits a message into records as serde_json
        /// did: the same records, strings and rows, and the same entries
        /// that are no record, whatever the spacing and the escapes.
        #[test]
        fn records_are_split_as_serde_json_splits_them(
            picks in proptest::collection::vec(0..RECORDS.len(), 0..8),
            gap in proptest::sample::select(vec!["", " ", "\n  "]),
        ) {
            let records: Vec<String> = picks.iter().map(|&i| RECORDS[i].replace("ROW", ROW).replace("GAP", gap)).collect();
            let text = format!("{{{gap}\"records\":{gap}[{gap}{}{gap}]{gap}}}", records.join(&format!(",{gap}")));
            proptest::prop_assert_eq!(split_by_scan(&text), split_by_serde(&text), "{}", text);
        }
    }

    const ROW: &str =
        r#"{"Timestamp":GAP"2025-01-01T00:00:01Z", "DeviceId": "d1", "ProcessId": 7, "AdditionalFields": {"a": [1, {"b": "c\"d"}]}}"#;

    /// Records as a message may hold them (`ROW` and `GAP` are filled in).
    const RECORDS: &[&str] = &[
        r#"{"time": "2025-01-01T00:00:05Z", "tenantId": "t-1", "category": "AdvancedHunting-DeviceProcessEvents", "properties": ROW}"#,
        r#"{"category":GAP"AdvancedHunting-Device\u0050rocessEvents",GAP"tenantId":"t-\u00e9\n","properties":ROW}"#,
        r#"{"properties": ROW, "extra": {"a": [1, 2, {}]}, "category": "AdvancedHunting-IdentityLogonEvents"}"#,
        r#"{"category": "AdvancedHunting-SomethingNew", "properties": {}}"#,
        "7",
        r#"[{"category": "AdvancedHunting-DeviceProcessEvents"}]"#,
        r#"{"category": 5, "properties": ROW}"#,
        r#"{"category": "AdvancedHunting-DeviceProcessEvents"}"#,
        r#"{"category": "AdvancedHunting-DeviceProcessEvents", "properties": "a row"}"#,
        r#"{"category": null, "tenantId": null, "properties": null}"#,
        r#"{"category": "AdvancedHunting-DeviceProcessEvents", "tenantId": "\ud800", "properties": ROW}"#,
        r#"{"category": "x", "category": "y", "properties": ROW}"#,
        r#"{"tenantId": ["t"], "properties": ROW}"#,
        r#"{}"#,
    ];

    #[test]
    fn malformed_messages_and_records_are_clear_errors() {
        assert!(map_message(b"not json", &ctx()).unwrap_err().contains("is not JSON"));
        assert!(
            map_message(b"{\"value\": []}", &ctx())
                .unwrap_err()
                .contains("has no `records` list")
        );
        assert!(map_message(&[0xff, 0xfe], &ctx()).unwrap_err().contains("UTF-8"));
        assert_eq!(
            too_large(5 << 30),
            "the message is 5368709120 bytes, more than the 4 GiB this collector reads in one message; \
             Event Hubs sends far smaller ones, so it is not a Streaming API message"
        );
        let message = json!({"records": [
            7,
            {"category": "AdvancedHunting-DeviceProcessEvents"},
            {"category": "AdvancedHunting-DeviceProcessEvents", "properties": {"DeviceId": "d", "ProcessId": 1}},
            {"category": "AdvancedHunting-DeviceProcessEvents", "properties": {"Timestamp": "2025-01-01T00:00:00Z", "DeviceId": "d", "ProcessId": 1}},
        ]});
        let out = map_message(message.to_string().as_bytes(), &ctx()).unwrap();
        assert_eq!(out.count, 1);
        assert_eq!(out.rejected.len(), 3, "{:?}", out.rejected);
        assert!(out.rejected[2].contains("Timestamp"), "{:?}", out.rejected);
        assert_eq!(
            out.tables[0],
            TableCount {
                table: "DeviceProcessEvents".into(),
                rows: 1,
                errors: 2
            }
        );
    }
}
