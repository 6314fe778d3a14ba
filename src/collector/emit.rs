//! An answer's rows mapped to events: NDJSON written straight from the
//! answer, or trees for the tables whose events are joined. Each event is
//! counted as it goes out; a row that cannot be mapped is counted and
//! logged, and the rest go on.

use crate::answer::{self, HuntingResult};
use crate::mapping::cells::{Cells, Columns};
use crate::mapping::plan::Plan;
use crate::mapping::value::Obj;
use crate::mapping::{self, Context, Table};
use crate::telemetry;
use crate::time::Ticks;

/// What the mapping of one answer needs besides its rows.
pub struct Mapper<'a> {
    /// The collected tables: a union's rows name theirs.
    pub tables: &'a [&'static Table],
    /// Whether answers may come from the union of `union_tables`.
    pub union: bool,
    pub context: &'a Context,
}

impl Mapper<'_> {
    /// For a row of a union's answer, the table it came from (named in
    /// [`answer::SOURCE_COLUMN`], which is taken off the row).
    fn source_table(&self, row: &mut Cells, columns: &Columns) -> Option<&'static Table> {
        if !self.union {
            return None;
        }
        let (_, cell) = row.take(columns, answer::SOURCE_COLUMN)?;
        let name = cell.to_value();
        self.tables.iter().copied().find(|t| Some(t.name) == name.as_str())
    }

    /// The mapping of `answer`'s rows, compiled once: those of `table`,
    /// and of each table a union's rows may name.
    fn plan(&self, table: &'static Table, answer: &HuntingResult) -> Plan {
        let mut tables = vec![table];
        if self.union {
            tables.extend(self.tables.iter().copied().filter(|t| !std::ptr::eq(*t, table)));
        }
        Plan::new(&tables, answer.schema.iter().map(|(name, _)| name.as_str()))
    }

    /// Maps rows `range` of `answer` to NDJSON in `out`, one at a time; an
    /// event stays in `out` only if `keep`, shown its summary, says so.
    pub fn write(
        &self,
        table: &'static Table,
        answer: &HuntingResult,
        range: std::ops::Range<usize>,
        out: &mut Vec<u8>,
        mut keep: impl FnMut(&mapping::Written) -> bool,
    ) {
        let plan = self.plan(table, answer);
        for i in range {
            let start = out.len();
            match plan.write_row(answer.row_text(i), self.context, out, |row, columns| {
                self.source_table(row, columns)
            }) {
                Ok(written) if keep(&written) => {}
                Ok(_) => out.truncate(start),
                Err(e) => unmappable(table, &e),
            }
        }
    }

    /// Maps rows `range` of `answer` to events as trees, with their
    /// summaries, to be joined before they are written.
    pub fn trees<'t>(
        &'t self,
        table: &'static Table,
        answer: &'t HuntingResult,
        range: std::ops::Range<usize>,
    ) -> Vec<(Obj<'t>, mapping::Written)> {
        let plan = self.plan(table, answer);
        let mut events = Vec::with_capacity(range.len());
        for i in range {
            match plan.event_row(answer.row_text(i), self.context, |row, columns| self.source_table(row, columns)) {
                Ok(event) => events.push(event),
                Err(e) => unmappable(table, &e),
            }
        }
        events
    }
}

/// Counts and logs a row that could not be mapped, and why.
fn unmappable(table: &Table, e: &mapping::MapError) {
    telemetry::counter("rows_unmappable_total", &[("table", table.name)], 1);
    telemetry::error(&e.to_string(), &[("table", table.name), ("key", &e.key)]);
}

/// Counts an emitted event by table and class, from the summary it was
/// mapped with.
pub fn count_written(written: &mapping::Written) {
    telemetry::counter(
        "events_emitted_total",
        &[("table", written.table), ("class_uid", &written.class_uid.to_string())],
        1,
    );
}

/// An event's time and the short form of its `metadata.uid` (a hash of the
/// row's natural key), for recognising a row seen before.
pub fn written_key(written: &mapping::Written) -> (Ticks, String) {
    seen_key(written.time_ms, &written.uid)
}

fn seen_key(time_ms: i64, uid: &str) -> (Ticks, String) {
    (
        Ticks(time_ms.saturating_mul(crate::time::TICKS_PER_MS)),
        uid.chars().take(16).collect(),
    )
}

/// How many of the first `end` rows of `answer` (oldest first) lie before
/// `time`.
pub fn before(answer: &HuntingResult, end: usize, time: Ticks) -> usize {
    (0..end).find(|&i| answer.time(i).is_none_or(|t| t >= time)).unwrap_or(end)
}

/// Counts and logs rows that could not be read, each with its reason.
pub fn report_unreadable(table: &Table, reasons: &[String]) {
    for reason in reasons {
        telemetry::counter("rows_unmappable_total", &[("table", table.name)], 1);
        telemetry::error(reason, &[("table", table.name)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// Kusto's union gives a column its tables hold with different types
    /// one column per type (`ReportId_long`, `ReportId_string`), null in
    /// the other table's rows. Each row of such an answer is mapped as it
    /// is when its table is queried alone: same key, same event.
    #[test]
    fn a_union_answer_with_columns_renamed_for_their_types_maps_as_its_tables_do() {
        let device = json!({"Timestamp": "2025-01-01T00:00:01Z", "DeviceId": "d1", "DeviceName": "pc1", "ActionType": "DnsQueryResponse",
                            "ReportId": 42, "AdditionalFields": "{\"DnsQueryString\":\"example.com\"}", "InitiatingProcessId": 7});
        let identity = json!({"Timestamp": "2025-01-01T00:00:02Z", "ActionType": "LogonSuccess", "AccountUpn": "a@contoso.com",
                              "Application": "Active Directory", "ReportId": "r-9", "AdditionalFields": {"Spns": "krbtgt/CONTOSO"}});
        // As Kusto answers `union withsource=SourceTable DeviceEvents, IdentityLogonEvents`.
        let union_row = |row: &Value, table: &str, report_id: &str, additional: &str| {
            let mut out = serde_json::Map::new();
            for name in [
                "ReportId_long",
                "ReportId_string",
                "AdditionalFields_string",
                "AdditionalFields_dynamic",
            ] {
                out.insert(name.into(), Value::Null);
            }
            for (k, v) in row.as_object().unwrap() {
                match k.as_str() {
                    "ReportId" => _ = out.insert(format!("ReportId_{report_id}"), v.clone()),
                    "AdditionalFields" => _ = out.insert(format!("AdditionalFields_{additional}"), v.clone()),
                    _ => _ = out.insert(k.clone(), v.clone()),
                }
            }
            out.insert("SourceTable".into(), json!(table));
            Value::Object(out)
        };
        let rows = [
            union_row(&device, "DeviceEvents", "long", "string"),
            union_row(&identity, "IdentityLogonEvents", "string", "dynamic"),
        ];
        let mut schema: Vec<Value> = [
            "Timestamp",
            "SourceTable",
            "ReportId_long",
            "ReportId_string",
            "AdditionalFields_string",
            "AdditionalFields_dynamic",
        ]
        .iter()
        .map(|n| json!({"name": n, "type": "String"}))
        .collect();
        for name in [
            "DeviceId",
            "DeviceName",
            "ActionType",
            "InitiatingProcessId",
            "AccountUpn",
            "Application",
        ] {
            schema.push(json!({"name": name, "type": "String"}));
        }
        let body = json!({"schema": schema, "results": rows}).to_string();
        let answer = crate::answer::parse_response(body).unwrap();
        let tables = [
            mapping::table("DeviceEvents").unwrap(),
            mapping::table("IdentityLogonEvents").unwrap(),
        ];
        let context = Context {
            tenant_uid: Some("t".into()),
            ..Context::default()
        };
        let mapper = Mapper {
            tables: &tables,
            union: true,
            context: &context,
        };
        let mut out = Vec::new();
        mapper.write(tables[0], &answer, 0..answer.len(), &mut out, |_| true);
        let events: Vec<Value> = out
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(events.len(), 2);
        for ((event, row), table) in events.iter().zip([&device, &identity]).zip(tables) {
            let alone = mapping::map_row(table, serde_json::from_value(row.clone()).unwrap(), &context).unwrap();
            assert_eq!(event, &alone, "{}", table.name);
        }
        assert_eq!(events[0]["metadata"]["original_event_uid"], "42");
        assert_eq!(events[0]["query"]["hostname"], "example.com");
        assert_eq!(events[1]["metadata"]["original_event_uid"], "r-9");
    }
}
