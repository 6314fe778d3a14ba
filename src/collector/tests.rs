//! The collector's tests: a scripted Graph, whole polls.

use super::*;
use crate::http::fake::Scripted;
use serde_json::json;

const TOKEN: &str = r#"{"token_type":"Bearer","expires_in":3599,"access_token":"tok"}"#;

fn rows(times: &[&str]) -> String {
    let results: Vec<_> = times
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"Timestamp": t, "DeviceId": "d", "ActionType": "ProcessCreated", "ReportId": i, "ProcessId": i}))
        .collect();
    json!({"schema": [{"name": "Timestamp", "type": "DateTime"}], "results": results}).to_string()
}

/// A collector configuration for tests: fixed credentials, endpoints
/// nobody listens on, and the given settings.
fn test_config(settings: serde_json::Value) -> serde_json::Value {
    let mut config = json!({
        "tenant_id": "t", "client_id": "c", "client_secret": "s",
        "login_endpoint": "http://127.0.0.1:9", "graph_endpoint": "http://127.0.0.1:9",
    });
    for (key, value) in settings.as_object().expect("settings are an object") {
        config[key] = value.clone();
    }
    config
}

fn kql(request: &crate::http::Request) -> String {
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    body["Query"].as_str().unwrap().to_string()
}

/// Less than two hours after the test collector's `start_time`: no
/// live edge is collected ahead of history.
const NEAR: &str = "2025-01-01T02:00:00Z";

fn collector(max_rows: u32) -> Collector {
    let config = test_config(json!({
        "tables": ["DeviceProcessEvents"], "start_time": "2025-01-01T00:00:00Z",
        "max_rows_per_query": max_rows, "max_window": "1h",
    }));
    Collector::new(
        &config.to_string(),
        None,
        Ticks::parse("2025-01-02T00:00:00Z").unwrap(),
        Capabilities::without_certificate(),
    )
    .unwrap()
    .0
}

#[test]
fn an_entity_table_emits_one_merged_state_per_device_per_interval() {
    let config = test_config(json!({
        "tables": ["DeviceInfo"], "start_time": "2025-01-01T00:00:00Z", "overlap": "0s",
    }));
    let now = Ticks::parse("2025-01-01T02:30:00Z").unwrap();
    let mut c = Collector::new(&config.to_string(), None, now, Capabilities::without_certificate())
        .unwrap()
        .0;
    let first_hour = json!({"schema": [], "results": [
        {"Timestamp": "2025-01-01T00:10:00Z", "DeviceId": "a", "OSPlatform": "Windows11", "Model": "X1", "ReportId": 1},
        {"Timestamp": "2025-01-01T00:20:00Z", "DeviceId": "b", "OSPlatform": "Linux", "ReportId": 2},
        {"Timestamp": "2025-01-01T00:25:00Z", "DeviceId": "a", "OSPlatform": "Windows11", "Model": "", "ReportId": 3},
    ]});
    let mut http = Scripted::default()
        .reply(200, TOKEN)
        .reply(200, &first_hour.to_string())
        .reply(200, &rows(&[]));
    let batch = c.poll(&mut http, now).unwrap();
    assert_eq!(batch.count, 2, "one state per device");
    let events: Vec<serde_json::Value> = String::from_utf8(batch.events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let a = events.iter().find(|e| e["device"]["uid"] == "a").unwrap();
    assert_eq!(a["device"]["model"], "X1", "the partial row did not blank the model");
    let batch = c.poll(&mut http, now).unwrap();
    assert_eq!(batch.count, 0);
    // The second hour, and nothing of the half hour after 02:00.
    assert!(
        kql(&http.sent[2]).contains("Timestamp < datetime(2025-01-01T02:00:00.0000000Z)"),
        "{}",
        kql(&http.sent[2])
    );
    assert!(batch.next_poll_ms > 0, "the cycle is done");
    assert_eq!(http.sent.len(), 3);
}

/// `end_time` (the streaming source's backfill): windows stop there, and
/// the cycle that reaches it is complete however late `now` is.
#[test]
fn collection_stops_at_end_time() {
    let config = test_config(json!({
        "tables": ["DeviceProcessEvents"], "start_time": "2025-01-01T00:00:00Z", "end_time": "2025-01-01T00:40:00Z",
        "overlap": "0s", "max_window": "1h",
    }));
    let now = Ticks::parse("2025-01-01T03:00:00Z").unwrap();
    let mut c = Collector::new(&config.to_string(), None, now, Capabilities::without_certificate())
        .unwrap()
        .0;
    let mut http = Scripted::default().reply(200, TOKEN).reply(200, &rows(&["2025-01-01T00:10:00Z"]));
    let batch = c.poll(&mut http, now).unwrap();
    assert_eq!(batch.count, 1);
    assert!(
        kql(&http.sent[1]).contains("Timestamp < datetime(2025-01-01T00:40:00.0000000Z)"),
        "{}",
        kql(&http.sent[1])
    );
    let next = c.poll(&mut http, now).unwrap();
    assert!(next.next_poll_ms > 0 && next.count == 0, "the cycle ends at end_time");
    assert_eq!(http.sent.len(), 2, "nothing after end_time is asked for");
    let bad = test_config(json!({"start_time": "2025-01-01T00:00:00Z", "end_time": "2024-12-31T00:00:00Z"}));
    assert!(Collector::new(&bad.to_string(), None, now, Capabilities::without_certificate()).is_err());
}

#[test]
fn the_next_cycle_looks_again_at_the_overlap_in_its_one_query_and_emits_only_late_rows() {
    let config = test_config(json!({
        "tables": ["DeviceProcessEvents"], "start_time": "2025-01-01T00:00:00Z",
        "delay": "5m", "overlap": "10m",
    }));
    let row = |t: &str, id: u32| json!({"Timestamp": t, "DeviceId": "d", "ActionType": "ProcessCreated", "ReportId": id, "ProcessId": id});
    let answer = |rows: Vec<serde_json::Value>| json!({"schema": [], "results": rows}).to_string();
    let now = Ticks::parse("2025-01-01T00:30:00Z").unwrap();
    let mut c = Collector::new(&config.to_string(), None, now, Capabilities::without_certificate())
        .unwrap()
        .0;
    let mut http = Scripted::default()
        .reply(200, TOKEN)
        .reply(200, &answer(vec![row("2025-01-01T00:20:00Z", 1), row("2025-01-01T00:21:00Z", 2)]));
    assert_eq!(c.poll(&mut http, now).unwrap().count, 2);
    assert!(c.poll(&mut http, now).unwrap().next_poll_ms > 0, "the first cycle ends");

    // A minute later: the two rows again, one that arrived late, one new.
    let now = Ticks::parse("2025-01-01T00:31:00Z").unwrap();
    let mut http = Scripted::default().reply(
        200,
        &answer(vec![
            row("2025-01-01T00:20:00Z", 1),
            row("2025-01-01T00:21:00Z", 2),
            row("2025-01-01T00:22:00Z", 3),
            row("2025-01-01T00:25:30Z", 4),
        ]),
    );
    crate::telemetry::take_lines();
    let batch = c.poll(&mut http, now).unwrap();
    assert_eq!(http.sent.len(), 1, "one call for the look back and the new minute");
    assert!(
        kql(&http.sent[0])
            .contains("Timestamp >= datetime(2025-01-01T00:15:00.0000000Z) and Timestamp < datetime(2025-01-01T00:26:00.0000000Z)"),
        "{}",
        kql(&http.sent[0])
    );
    let ids: Vec<String> = String::from_utf8(batch.events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["metadata"]["original_event_uid"].to_string())
        .collect();
    assert_eq!(ids, ["\"3\"", "\"4\""], "the late row and the new one, nothing twice");
    assert!(batch.next_poll_ms > 0, "the cycle is done: no sweep call follows");
    let lines = crate::telemetry::take_lines();
    assert!(
        lines.iter().any(|(_, l)| l.starts_with("1 late rows of DeviceProcessEvents")),
        "{lines:?}"
    );
}

#[test]
fn a_cycle_a_day_behind_reports_backfill_progress_and_its_end() {
    let mut c = collector(100);
    let mut http = Scripted::default().reply(200, TOKEN);
    for _ in 0..40 {
        http = http.reply(200, &rows(&["2025-01-01T00:30:00Z"]));
    }
    crate::telemetry::take_lines();
    let mut now = Ticks::parse("2025-01-02T00:00:00Z").unwrap();
    let mut polls = 0;
    loop {
        let batch = c.poll(&mut http, now).unwrap();
        polls += 1;
        if batch.next_poll_ms > 0 {
            break;
        }
        now = now.saturating_add(Ticks::from_secs(3));
        assert!(polls < 40, "the cycle ends");
    }
    let lines: Vec<String> = crate::telemetry::take_lines().into_iter().map(|(_, l)| l).collect();
    let progress: Vec<&String> = lines.iter().filter(|l| l.starts_with("backfill")).collect();
    assert!(progress[0].starts_with("backfill: 23 h 55 min of data to collect"), "{progress:?}");
    assert!(
        progress
            .iter()
            .any(|l| l.contains("% of 23 h 55 min of data done") && l.contains("left")),
        "{progress:?}"
    );
    // 24 windows of an hour, and one more for the cycle that began
    // during the backfill (a minute had passed: 3 s a poll).
    assert!(
        progress.last().unwrap().starts_with("backfill complete: 25 windows"),
        "{progress:?}"
    );
    assert!(
        progress[1].ends_with("left; left: DeviceProcessEvents 12 h 55 min"),
        "per table: {progress:?}"
    );
    // Live data first: the last hour before `now - delay`, then history
    // from `start_time`.
    let queried: Vec<String> = http.sent[1..].iter().map(kql).collect();
    assert!(
        queried[0].contains("Timestamp >= datetime(2025-01-01T22:55:00.0000000Z)"),
        "{}",
        queried[0]
    );
    assert!(
        queried[0].contains("Timestamp < datetime(2025-01-01T23:55:00.0000000Z)"),
        "{}",
        queried[0]
    );
    assert!(
        queried[1].contains("Timestamp >= datetime(2025-01-01T00:00:00.0000000Z)"),
        "{}",
        queried[1]
    );
    // The cycle that began a minute in collected its live edge (with its
    // late-row look) before the rest of the history.
    let second_live = queried
        .iter()
        .position(|q| q.contains("Timestamp >= datetime(2025-01-01T23:45:00.0000000Z)"))
        .unwrap_or_else(|| panic!("{queried:#?}"));
    let last_history = queried
        .iter()
        .rposition(|q| q.contains("Timestamp < datetime(2025-01-01T22:55:00.0000000Z)"))
        .unwrap_or_else(|| panic!("{queried:#?}"));
    assert!(second_live < last_history, "{queried:#?}");

    // Caught up, the next cycle is not a backfill.
    let mut http = Scripted::default().reply(200, &rows(&[]));
    c.poll(&mut http, now.saturating_add(Ticks::from_secs(120))).unwrap();
    assert!(!crate::telemetry::take_lines().iter().any(|(_, l)| l.starts_with("backfill")));
}

#[test]
fn a_capped_answer_keeps_the_rows_before_its_last_time_and_goes_on_from_there() {
    let mut c = collector(2);
    // Three rows for `take 3`: the window holds more than two.
    let mut http = Scripted::default().reply(200, TOKEN).reply(
        200,
        &rows(&["2025-01-01T00:00:01Z", "2025-01-01T00:00:02Z", "2025-01-01T00:00:02Z"]),
    );
    let batch = c.poll(&mut http, Ticks::parse(NEAR).unwrap()).unwrap();
    assert_eq!(batch.count, 1, "only the row before the last time is complete");
    assert_eq!(http.sent.len(), 2, "no halving query");
    assert!(batch.checkpoint.contains("2025-01-01T00:00:02.0000000Z"), "{}", batch.checkpoint);

    // The next window starts at that time and gets both tied rows.
    http = Scripted::default().reply(200, &rows(&["2025-01-01T00:00:02Z", "2025-01-01T00:00:02Z"]));
    let batch = c.poll(&mut http, Ticks::parse(NEAR).unwrap()).unwrap();
    assert!(
        kql(&http.sent[0]).contains("Timestamp >= datetime(2025-01-01T00:00:02.0000000Z)"),
        "{}",
        kql(&http.sent[0])
    );
    assert_eq!(batch.count, 2);
}

#[test]
fn a_large_answer_is_handed_out_in_bounded_batches_and_the_watermark_moves_with_the_last() {
    let mut c = collector(50_000);
    c.batch_bytes = 1 << 20;
    let times: Vec<String> = (0..12_000)
        .map(|i| format!("2025-01-01T00:{:02}:{:02}.{:03}Z", i / 6000, (i / 100) % 60, i % 100))
        .collect();
    let times: Vec<&str> = times.iter().map(String::as_str).collect();
    let mut http = Scripted::default().reply(200, TOKEN).reply(200, &rows(&times));
    let now = Ticks::parse(NEAR).unwrap();
    let first = c.poll(&mut http, now).unwrap();
    assert!(
        first.count > 0 && (first.count as usize) < times.len(),
        "{} of {}",
        first.count,
        times.len()
    );
    assert!(first.events.len() <= c.batch_bytes + 64 * 2048, "{} bytes", first.events.len());
    assert_eq!(first.next_poll_ms, 0, "more is ready now");
    assert!(
        first.checkpoint.contains("2025-01-01T00:00:00.0000000Z"),
        "not advanced yet: {}",
        first.checkpoint
    );
    let (mut total, mut last) = (first.count, first);
    while !last.checkpoint.contains("2025-01-01T01:00:00.0000000Z") {
        last = c.poll(&mut http, now).unwrap();
        total += last.count;
        assert!(last.count > 0, "every part carries events");
    }
    assert_eq!(total as usize, times.len(), "every row once");
    assert_eq!(http.sent.len(), 2, "the parts come from the one answer");
}

/// A Graph stand-in for one-tick tests: it evaluates window and hash
/// bucket queries over rows per table; the bucket of a row among n is
/// its `ReportId` mod n. It never returns more than three rows.
struct TickGraph(std::collections::BTreeMap<&'static str, Vec<serde_json::Value>>, Vec<String>);

impl HttpClient for TickGraph {
    fn send(&mut self, request: crate::http::Request) -> Result<crate::http::Response, crate::http::TransportError> {
        let body = if request.url.contains("/token") {
            TOKEN.to_string()
        } else {
            let q = kql(&request);
            self.1.push(q.clone());
            let rows = &self.0[q.split(' ').next().unwrap()];
            let take: usize = q.rsplit("take ").next().unwrap().parse().unwrap();
            let rows: Vec<&serde_json::Value> = match q.split_once("hash(tostring(pack_all()), ") {
                Some((_, rest)) => {
                    let (n, i) = rest.split_once(") == ").unwrap();
                    let (n, i): (u64, u64) = (n.parse().unwrap(), i.split(' ').next().unwrap().parse().unwrap());
                    rows.iter().filter(|r| r["ReportId"].as_u64().unwrap() % n == i).collect()
                }
                None => {
                    let bound = |after: &str| Ticks::parse(q.split(after).nth(1).unwrap().split(')').next().unwrap()).unwrap();
                    let (start, end) = (bound(">= datetime("), bound("< datetime("));
                    rows.iter()
                        .filter(|r| (start..end).contains(&Ticks::parse(r["Timestamp"].as_str().unwrap()).unwrap()))
                        .collect()
                }
            };
            let rows: Vec<_> = rows.into_iter().take(take.min(3)).collect();
            json!({"schema": [], "results": rows}).to_string()
        };
        Ok(crate::http::Response {
            status: 200,
            headers: vec![],
            body: body.into_bytes(),
        })
    }
}

/// Polls until the cycle ends; the events.
fn collect_all(c: &mut Collector, graph: &mut TickGraph, now: Ticks) -> Vec<serde_json::Value> {
    let mut events = Vec::new();
    for _ in 0..200 {
        let batch = c.poll(graph, now).unwrap();
        for line in String::from_utf8(batch.events).unwrap().lines() {
            events.push(serde_json::from_str(line).unwrap());
        }
        if batch.next_poll_ms > 0 {
            return events;
        }
    }
    panic!("the cycle did not end; queries: {:#?}", graph.1);
}

fn one_tick_collector(tables: serde_json::Value) -> Collector {
    // Graph's limit set to three rows.
    let config = test_config(json!({
        "tables": tables, "start_time": "2025-01-01T00:00:00Z",
        "max_rows_per_query": 2, "graph_row_cap": 3, "max_window": "1s", "delay": "0s",
        "max_calls_per_minute": 1000,
    }));
    Collector::new(
        &config.to_string(),
        None,
        Ticks::parse("2025-01-01T00:00:01Z").unwrap(),
        Capabilities::without_certificate(),
    )
    .unwrap()
    .0
}

const TICK: &str = "2025-01-01T00:00:00.5000000Z";

#[test]
fn more_rows_at_one_instant_than_an_answer_carries_are_collected_by_hash_buckets() {
    let mut c = one_tick_collector(json!(["DeviceProcessEvents"]));
    let all: Vec<serde_json::Value> = (0..7)
        .map(|i| json!({"Timestamp": TICK, "DeviceId": "d", "ActionType": "ProcessCreated", "ReportId": i, "ProcessId": i}))
        .collect();
    let mut graph = TickGraph([("DeviceProcessEvents", all)].into(), Vec::new());
    let events = collect_all(&mut c, &mut graph, Ticks::parse("2025-01-01T00:00:01Z").unwrap());
    let mut ids: Vec<&str> = events
        .iter()
        .map(|e| e["metadata"]["original_event_uid"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["0", "1", "2", "3", "4", "5", "6"], "every row once; queries: {:#?}", graph.1);
    assert!(
        graph.1.iter().any(|q| q.contains("hash(tostring(pack_all()), 4) == 2")),
        "{:#?}",
        graph.1
    );
    assert!(
        c.planner.checkpoint(&[]).contains("2025-01-01T00:00:01.0000000Z"),
        "the watermark passed the instant"
    );
}

#[test]
fn entity_rows_at_one_overfull_instant_are_all_collected_as_states() {
    let config = test_config(json!({
        "tables": ["DeviceInfo"], "start_time": "2025-01-01T00:00:00Z", "entity_interval": "1m",
        "max_rows_per_query": 2, "graph_row_cap": 3, "max_window": "1s", "delay": "0s",
        "max_calls_per_minute": 1000,
    }));
    let now = Ticks::parse("2025-01-01T00:01:00Z").unwrap();
    let mut c = Collector::new(&config.to_string(), None, now, Capabilities::without_certificate())
        .unwrap()
        .0;
    let rows: Vec<serde_json::Value> = (0..5)
        .map(|i| json!({"Timestamp": TICK, "DeviceId": format!("d{i}"), "OSPlatform": "Windows11", "ReportId": i}))
        .collect();
    let mut graph = TickGraph([("DeviceInfo", rows)].into(), Vec::new());
    let events = collect_all(&mut c, &mut graph, now);
    let mut devices: Vec<&str> = events.iter().map(|e| e["device"]["uid"].as_str().unwrap()).collect();
    devices.sort();
    assert_eq!(devices, ["d0", "d1", "d2", "d3", "d4"], "queries: {:#?}", graph.1);
    assert!(graph.1.iter().any(|q| q.contains("hash(tostring(pack_all())")), "{:#?}", graph.1);
}

#[test]
fn alerts_and_their_evidence_at_one_overfull_instant_are_all_collected_and_joined() {
    let mut c = one_tick_collector(json!(["AlertInfo", "AlertEvidence"]));
    let alerts: Vec<serde_json::Value> = (0..5)
        .map(|i| json!({"Timestamp": TICK, "AlertId": format!("a{i}"), "Title": "t", "Severity": "High", "ReportId": i}))
        .collect();
    let evidence: Vec<serde_json::Value> = (0..5)
        .map(
            |i| json!({"Timestamp": TICK, "AlertId": format!("a{i}"), "EntityType": "Machine", "DeviceId": format!("d{i}"), "ReportId": i}),
        )
        .collect();
    let mut graph = TickGraph([("AlertInfo", alerts), ("AlertEvidence", evidence)].into(), Vec::new());
    let events = collect_all(&mut c, &mut graph, Ticks::parse("2025-01-01T00:00:01Z").unwrap());
    let mut joined: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["finding_info"]["uid"].as_str().unwrap().to_string(),
                e["evidences"][0]["device"]["uid"].as_str().unwrap_or("none").to_string(),
            )
        })
        .collect();
    joined.sort();
    let expected: Vec<(String, String)> = (0..5).map(|i| (format!("a{i}"), format!("d{i}"))).collect();
    assert_eq!(joined, expected, "each alert once, with its own evidence; queries: {:#?}", graph.1);
    assert!(
        graph.1.iter().any(|q| q.starts_with("AlertEvidence | where Timestamp == ")),
        "{:#?}",
        graph.1
    );
}

/// Joined events are counted as they go out, each by the table and class
/// it was mapped with: evidence folded into its alert is not an event of
/// its own, evidence whose alert is absent is.
#[test]
fn joined_events_are_counted_by_the_table_they_were_mapped_from() {
    let mut c = one_tick_collector(json!(["AlertInfo", "AlertEvidence"]));
    let alerts: Vec<serde_json::Value> = (0..4)
        .map(|i| json!({"Timestamp": TICK, "AlertId": format!("a{i}"), "Title": "t", "Severity": "High", "ReportId": i}))
        .collect();
    // Evidence for a0 and a1, and for an alert that is not there.
    let evidence: Vec<serde_json::Value> = ["a0", "a1", "a9"]
        .iter()
        .enumerate()
        .map(|(i, a)| json!({"Timestamp": TICK, "AlertId": a, "EntityType": "Machine", "DeviceId": format!("d{i}"), "ReportId": i}))
        .collect();
    let mut graph = TickGraph([("AlertInfo", alerts), ("AlertEvidence", evidence)].into(), Vec::new());
    crate::telemetry::keep_counters();
    let events = collect_all(&mut c, &mut graph, Ticks::parse("2025-01-01T00:00:01Z").unwrap());
    let mut by_table: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["metadata"]["log_name"].as_str().unwrap(),
                e["finding_info"]["uid"].as_str().unwrap(),
            )
        })
        .collect();
    by_table.sort();
    let expected = [
        ("AlertEvidence", "a9"),
        ("AlertInfo", "a0"),
        ("AlertInfo", "a1"),
        ("AlertInfo", "a2"),
        ("AlertInfo", "a3"),
    ];
    assert_eq!(by_table, expected, "queries: {:#?}", graph.1);
    let emitted: Vec<(Vec<(String, String)>, u64)> = crate::telemetry::take_counters()
        .into_iter()
        .filter(|((name, _), _)| name == "events_emitted_total")
        .map(|((_, labels), n)| (labels, n))
        .collect();
    let labels = |table: &str| {
        vec![
            ("table".to_string(), table.to_string()),
            ("class_uid".to_string(), "2004".to_string()),
        ]
    };
    assert_eq!(emitted, [(labels("AlertEvidence"), 1), (labels("AlertInfo"), 4)]);
}

#[test]
fn a_capped_answer_of_one_timestamp_or_out_of_order_is_halved() {
    for answer in [
        rows(&["2025-01-01T00:00:00Z", "2025-01-01T00:00:00Z", "2025-01-01T00:00:00Z"]),
        rows(&["2025-01-01T00:00:03Z", "2025-01-01T00:00:01Z", "2025-01-01T00:00:02Z"]),
    ] {
        let mut c = collector(2);
        let mut http = Scripted::default().reply(200, TOKEN).reply(200, &answer).reply(200, &rows(&[]));
        let batch = c.poll(&mut http, Ticks::parse(NEAR).unwrap()).unwrap();
        assert_eq!(batch.count, 0);
        assert_eq!(http.sent.len(), 3);
        assert!(
            kql(&http.sent[2]).contains("Timestamp < datetime(2025-01-01T00:30:00.0000000Z)"),
            "the window is halved: {}",
            kql(&http.sent[2])
        );
    }
}
