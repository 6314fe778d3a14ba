//! `cargo bench --bench soak`: a time-compressed soak. Several simulated
//! days of polling against the replay Graph, with faults injected all along,
//! in a few real minutes. Not run in CI; its figures are in
//! docs/reliability.md. Prints `SOAK name=<name> value=<number> unit=<unit>`
//! lines and fails if a row is lost or repeated.
//!
//! The collector runs in a child process (this program again, with
//! `DEFENDER_OCSF_SOAK_CHILD`): the host's `run` loop (`app::run`, what the
//! binary's `run` calls) on a compressed clock (`host/src/clock.rs`), which
//! the component also reads. Every wait (the poll interval, a Retry-After, a
//! CPU-quota pause, a backoff) moves the clock forward instead of sleeping;
//! every query is still made. The parent serves the rows, injects a fault
//! every few dozen queries, samples the child's resident memory, and checks
//! that the events emitted are exactly the rows served, each once.
//!
//! `SOAK_DAYS` (default 3; or `SOAK_HOURS`) and `SOAK_ROWS_PER_HOUR` per
//! table (default 360) size the run. `SOAK_TABLES=all` collects all twenty
//! tables (the seventeen without workload rows answer empty), and
//! `SOAK_DELAY` (default `5m`) sets `delay`: with `SOAK_TABLES=all
//! SOAK_DELAY=1m` the run measures the calls per minute and the lag behind
//! real time that keeping every table current costs. The component's call
//! budget (`max_calls_per_minute`) waits in real time, which a compressed
//! clock cannot shorten: `SOAK_MAX_CALLS=1000` lifts it for that measurement.
//! `SOAK_UNION=A,B,...` sets `union_tables`.
//!
//! `SOAK_BACKFILL_DAYS=7` measures a backfill instead: the rows lie in the
//! past days, `start_time` is that far back, and the collector runs one
//! cycle (`--once`) up to now. It reports the calls and the wall time that
//! took; `SOAK_MAX_WINDOW` (default the collector's) sets `max_window`, so
//! that `SOAK_MAX_WINDOW=1h` gives the figure of the former default. The
//! call budget is lifted for it (unless `SOAK_MAX_CALLS` says otherwise);
//! `backfill_minutes_at_budget` is what the calls take at the default 40 a
//! minute, and `first_event_age` how old the first event emitted was (live
//! data comes first).

mod workload;

use defender_ocsf_host::app::{self, RunOptions};
use defender_ocsf_host::clock::Clock;
use defender_ocsf_host::config::RunConfig;
use defender_ocsf_host::output::Stdout;
use defender_ocsf_host::telemetry::Telemetry;
use defender_ocsf_replay::{Credentials, Dataset, Fault, ReplayServer};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CHILD: &str = "DEFENDER_OCSF_SOAK_CHILD";
const TENANT: &str = "00000000-0000-4000-8000-000000000001";
const TABLES: &[&str] = &["DeviceProcessEvents", "DeviceNetworkEvents", "DeviceEvents"];
/// Every this many queries, the next one gets a fault (`SOAK_FAULT_EVERY`;
/// 0: none, to measure calls and lag undisturbed).
const FAULT_EVERY: usize = 40;

fn report(name: &str, value: f64, unit: &str) {
    println!("SOAK name={name} value={value:.2} unit={unit}");
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{name} must be a whole number")))
}

fn main() {
    if std::env::var_os(CHILD).is_some() {
        child();
        return;
    }
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let backfill_days = env_number("SOAK_BACKFILL_DAYS", 0);
    let hours = match backfill_days {
        0 => env_number("SOAK_HOURS", env_number("SOAK_DAYS", 3) * 24),
        days => days * 24,
    };
    let per_hour = env_number("SOAK_ROWS_PER_HOUR", 360);
    let delay = std::env::var("SOAK_DELAY").unwrap_or_else(|_| "5m".into());
    let all_tables = std::env::var("SOAK_TABLES").is_ok_and(|v| v == "all");
    let fault_every = env_number("SOAK_FAULT_EVERY", FAULT_EVERY as u64) as usize;
    let span = chrono::Duration::hours(hours as i64);
    // A backfill: the rows lie in the past, before `now - delay`.
    let start = match backfill_days {
        0 => chrono::Utc::now() - chrono::Duration::minutes(30),
        _ => chrono::Utc::now() - span - chrono::Duration::minutes(30),
    };
    let per_table = (hours * per_hour) as usize;
    let step = span / per_table as i32;

    let mut dataset = Dataset::default();
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    for table in TABLES {
        let mut rows = workload::rows(table, per_table, start);
        for (i, row) in rows.iter_mut().enumerate() {
            let t = start + step * i as i32;
            row.insert(
                "Timestamp".into(),
                Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)),
            );
        }
        let answer = workload::answer(table, &rows);
        let native = defender_ocsf_collector::convert::convert(table, &format!(r#"{{"tenant_id":"{TENANT}"}}"#), answer)
            .expect("the served rows map natively");
        assert!(native.rejected.is_empty(), "{:?}", native.rejected);
        for line in native.events.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            *expected.entry(uid(line)).or_default() += 1;
        }
        dataset.add(table, rows).unwrap();
    }
    let mut collected: Vec<&str> = TABLES.to_vec();
    if all_tables {
        for table in defender_ocsf_collector::mapping::TABLES {
            if !TABLES.contains(&table.name) {
                dataset.add(table.name, []).unwrap();
                collected.push(table.name);
            }
        }
    }
    let served = per_table * TABLES.len();
    assert_eq!(expected.len(), served, "every served row has a uid of its own");
    let credentials = Credentials {
        tenant_id: TENANT.into(),
        client_id: "soak-client".into(),
        client_secret: "soak-secret".into(),
    };
    let server = ReplayServer::start(dataset, credentials.clone()).unwrap();
    let dir = std::env::temp_dir().join(format!("defender-ocsf-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = serde_json::json!({
        "tenant_id": credentials.tenant_id, "client_id": credentials.client_id, "client_secret": credentials.client_secret,
        "login_endpoint": server.url(), "graph_endpoint": server.url(),
        "tables": collected, "start_time": start.to_rfc3339(), "delay": delay, "poll_interval": "1m",
    });
    // The component's call budget waits in real time inside a poll; a
    // measurement of the calls the collector needs lifts it.
    let mut config = config;
    match std::env::var("SOAK_MAX_CALLS") {
        Ok(calls) => config["max_calls_per_minute"] = calls.parse::<u32>().expect("SOAK_MAX_CALLS is a number").into(),
        Err(_) if backfill_days > 0 => config["max_calls_per_minute"] = 1000.into(),
        Err(_) => {}
    }
    if let Ok(union) = std::env::var("SOAK_UNION") {
        config["union_tables"] = union.split(',').map(str::trim).collect::<Vec<_>>().into();
    }
    if let Ok(window) = std::env::var("SOAK_MAX_WINDOW") {
        config["max_window"] = window.into();
    }
    // The child stops once its clock is past the last row plus the delay;
    // a backfill's once it has caught up (`--once`).
    let stop_at = match backfill_days {
        0 => start + span + chrono::Duration::minutes(10),
        _ => chrono::Utc::now() + chrono::Duration::days(1),
    };

    eprintln!(
        "soak: {hours} simulated hours, {served} rows in {} of {} tables; faults every {fault_every} queries (0: none)",
        TABLES.len(),
        collected.len()
    );
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, "1")
        .env("SOAK_CONFIG", config.to_string())
        .env("SOAK_STATE", dir.join("state"))
        .env("SOAK_STOP_AT", stop_at.to_rfc3339())
        .env("SOAK_ONCE", if backfill_days > 0 { "1" } else { "" })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();

    // Faults, all along: throttling, a CPU-quota pause, 500s.
    let done = Arc::new(AtomicBool::new(false));
    let faults_injected = Arc::new(AtomicUsize::new(0));
    let lag_max: Mutex<Option<f64>> = Mutex::new(None);
    let first_event_age: Mutex<Option<f64>> = Mutex::new(None);
    let (emitted, rss) = std::thread::scope(|scope| {
        let server = &server;
        let (done2, injected) = (done.clone(), faults_injected.clone());
        scope.spawn(move || {
            let done = done2;
            let kinds = [
                Fault::throttled(30),
                Fault::unknown_error(),
                Fault::cpu_quota("15 minutes"),
                Fault::unknown_error(),
            ];
            let mut next = if fault_every == 0 { usize::MAX } else { fault_every };
            while !done.load(Ordering::SeqCst) {
                if server.query_count() >= next {
                    let n = injected.fetch_add(1, Ordering::SeqCst);
                    server.fail_next([kinds[n % kinds.len()].clone()]);
                    next += fault_every;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        // Resident memory, sampled with the number of events so far.
        let seen = Arc::new(AtomicUsize::new(0));
        let samples = Arc::new(Mutex::new(Vec::<(usize, u64)>::new()));
        {
            let (done, seen, samples) = (done.clone(), seen.clone(), samples.clone());
            scope.spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    if let Some(kib) = vm_rss_kib(pid) {
                        samples.lock().unwrap().push((seen.load(Ordering::SeqCst), kib));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
        let stderr = child.stderr.take().unwrap();
        let lag_max = &lag_max;
        let first_event_age = &first_event_age;
        let log = scope.spawn(move || {
            let mut errors = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(lag) = line.strip_prefix("LAG_MAX_S=") {
                    *lag_max.lock().unwrap() = lag.trim().parse().ok();
                } else if line.contains("\"level\":\"ERROR\"") || !line.starts_with('{') {
                    errors.push(line);
                }
            }
            errors
        });
        let mut emitted: BTreeMap<String, usize> = BTreeMap::new();
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            if emitted.is_empty() {
                let event: Value = serde_json::from_str(&line).expect("each line is one JSON event");
                let time = event["time"].as_i64().expect("every event has a time");
                *first_event_age.lock().unwrap() = Some((chrono::Utc::now().timestamp_millis() - time) as f64 / 3_600_000.0);
            }
            *emitted.entry(uid(line.as_bytes())).or_default() += 1;
            let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
            if n.is_multiple_of((served / 10).max(1)) {
                eprintln!("soak: {n} of {served} rows after {:.0} s", started.elapsed().as_secs_f64());
            }
        }
        let status = child.wait().unwrap();
        done.store(true, Ordering::SeqCst);
        let errors = log.join().unwrap();
        assert!(status.success(), "the collector failed:\n{}", errors.join("\n"));
        let samples = samples.lock().unwrap().clone();
        (emitted, samples)
    });
    let elapsed = started.elapsed();
    let _ = std::fs::remove_dir_all(&dir);

    let missing = expected.keys().filter(|k| !emitted.contains_key(*k)).count();
    let repeated: usize = emitted.values().map(|n| n.saturating_sub(1)).sum();
    let invented = emitted.keys().filter(|k| !expected.contains_key(*k)).count();
    let queries = server.query_count();
    if backfill_days > 0 {
        report("backfill_days", backfill_days as f64, "days");
        report("backfill_calls", queries as f64, "queries");
        report("backfill_wall_time", elapsed.as_secs_f64(), "s");
        report("backfill_minutes_at_budget", queries as f64 / 40.0, "min");
        if let Some(age) = *first_event_age.lock().unwrap() {
            report("first_event_age", age, "hours");
        }
    }
    report("simulated_hours", hours as f64, "hours");
    report("tables", collected.len() as f64, "tables");
    report("calls_per_minute", queries as f64 / (hours as f64 * 60.0), "calls/min");
    if let Some(lag) = *lag_max.lock().unwrap() {
        report("lag_max", lag, "s");
    }
    report("real_time", elapsed.as_secs_f64(), "s");
    report("rows_served", served as f64, "rows");
    report("events_emitted", emitted.values().sum::<usize>() as f64, "events");
    report("rows_missing", missing as f64, "rows");
    report("rows_repeated", repeated as f64, "rows");
    report("events_invented", invented as f64, "events");
    report("queries", queries as f64, "queries");
    report("token_requests", server.token_requests() as f64, "requests");
    report("faults_injected", faults_injected.load(Ordering::SeqCst) as f64, "faults");
    // Memory: after the first tenth of the run (start-up and the compiled
    // component are in by then), and the last tenth.
    let tenth = served / 10;
    let early: Vec<u64> = rss.iter().filter(|(n, _)| *n >= tenth && *n < 2 * tenth).map(|s| s.1).collect();
    let late: Vec<u64> = rss.iter().filter(|(n, _)| *n >= served - tenth).map(|s| s.1).collect();
    let mib = |v: &[u64]| v.iter().copied().max().unwrap_or(0) as f64 / 1024.0;
    report("rss_early_max", mib(&early), "MiB");
    report("rss_late_max", mib(&late), "MiB");
    report("rss_max", mib(&rss.iter().map(|s| s.1).collect::<Vec<_>>()), "MiB");
    report("rss_samples", rss.len() as f64, "samples");
    assert_eq!(
        (missing, repeated, invented),
        (0, 0, 0),
        "the events emitted must be exactly the rows served"
    );
}

/// `metadata.uid` of one NDJSON event.
fn uid(line: &[u8]) -> String {
    let event: Value = serde_json::from_slice(line).expect("each line is one JSON event");
    event["metadata"]["uid"].as_str().expect("every event has metadata.uid").to_string()
}

fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The child: the host's `run` loop on a compressed clock, NDJSON to stdout,
/// until the clock passes `SOAK_STOP_AT`.
fn child() {
    let source: serde_json::Map<String, Value> = serde_json::from_str(&std::env::var("SOAK_CONFIG").unwrap()).unwrap();
    let stop_at: chrono::DateTime<chrono::Utc> = std::env::var("SOAK_STOP_AT").unwrap().parse().unwrap();
    let config = RunConfig::for_source(std::env::var("SOAK_STATE").unwrap().into(), source);
    let clock = Clock::compressed();
    let options = RunOptions {
        clock: clock.clone(),
        // A backfill: one cycle, up to now.
        once: std::env::var("SOAK_ONCE").is_ok_and(|v| v == "1"),
        ..RunOptions::default()
    };
    let shutdown = options.shutdown.clone();
    let finished = options.shutdown.clone();
    let telemetry = Arc::new(Telemetry::default());
    let metrics = telemetry.clone();
    // The lag the collector reports (`lag_seconds`: how far behind real time
    // a window's end is when it completes), at its worst once the first
    // two simulated hours (the backfill) are behind.
    let warm = clock.now() + Duration::from_secs(2 * 3600);
    let watcher = std::thread::spawn(move || {
        let mut worst: f64 = 0.0;
        loop {
            let now = clock.now();
            if now >= warm {
                worst = worst.max(metrics.gauge_max("lag_seconds").unwrap_or(0.0));
            }
            if chrono::DateTime::<chrono::Utc>::from(now) >= stop_at {
                shutdown.store(true, Ordering::SeqCst);
                return worst;
            }
            // A backfill (`--once`) ends on its own, long before `stop_at`.
            if shutdown.load(Ordering::SeqCst) {
                return worst;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let mut sink = Stdout::new(std::io::stdout().lock());
    app::run(&config, &options, &mut sink, telemetry).unwrap_or_else(|e| panic!("soak child: {e}"));
    finished.store(true, Ordering::SeqCst);
    eprintln!("LAG_MAX_S={:.1}", watcher.join().unwrap());
}
