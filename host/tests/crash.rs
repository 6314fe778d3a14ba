//! Crash safety: `kill -9` at random moments (while fetching, mapping,
//! writing, saving), restart, repeat. The union of everything emitted holds
//! every row, and each kill repeats at most one batch.

use chrono::{Duration, Utc};
use defender_ocsf_replay::{Credentials, Dataset, ReplayServer};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

const ROWS: usize = 400;
const BATCH: usize = 10;
const KILLS: usize = 15;

fn credentials() -> Credentials {
    Credentials {
        tenant_id: "k-tenant".into(),
        client_id: "k-client".into(),
        client_secret: "k-secret".into(),
    }
}

#[test]
fn kill_9_at_random_points_loses_nothing_and_repeats_at_most_a_batch_per_kill() {
    let base = Utc::now() - Duration::minutes(50);
    let mut dataset = Dataset::default();
    let rows = (0..ROWS).map(|i| {
        let t = (base + Duration::milliseconds(i as i64 * 6_000)).to_rfc3339();
        json!({"Timestamp": t, "DeviceId": "d", "ReportId": i, "ProcessId": i, "InitiatingProcessId": 1})
            .as_object()
            .unwrap()
            .clone()
    });
    dataset.add("DeviceProcessEvents", rows).unwrap();
    let server = ReplayServer::start(dataset, credentials()).unwrap();
    server.set_delay(std::time::Duration::from_millis(15));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "tenant_id: k-tenant\nclient_id: k-client\nclient_secret: k-secret\nlogin_endpoint: {u}\ngraph_endpoint: {u}\n\
             tables: [DeviceProcessEvents]\nstart_time: {}\ndelay: 1m\nmax_rows_per_query: {BATCH}\nmax_window: 2m\nstate_dir: {}\nlog_level: warn\n",
            (base - Duration::minutes(1)).to_rfc3339(),
            dir.path().join("state").display(),
            u = server.url()
        ),
    )
    .unwrap();

    let seen: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let mut torn = 0usize;
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("kill schedule seed: {seed}");
    let mut kills = 0;
    for _ in 0..KILLS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_defender-ocsf"))
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let sink = seen.clone();
        let reader = std::thread::spawn(move || {
            let mut torn = 0;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Value>(&line) {
                    Ok(e) => sink
                        .lock()
                        .unwrap()
                        .push(e["metadata"]["original_event_uid"].as_str().unwrap().to_string()),
                    Err(_) => torn += 1, // the line being written when the process died
                }
            }
            torn
        });
        // A pseudo-random moment between 20 ms and 700 ms.
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let wait = 20 + (seed >> 33) % 680;
        std::thread::sleep(std::time::Duration::from_millis(wait));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        torn += reader.join().unwrap();
        kills += 1;
    }
    // A final run to completion.
    let out = Command::new(env!("CARGO_BIN_EXE_defender-ocsf"))
        .args(["run", "--once", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        seen.lock()
            .unwrap()
            .push(e["metadata"]["original_event_uid"].as_str().unwrap().to_string());
    }

    let seen = seen.lock().unwrap();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for id in seen.iter() {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    let missing: Vec<usize> = (0..ROWS).filter(|i| !counts.contains_key(i.to_string().as_str())).collect();
    assert!(missing.is_empty(), "rows lost after {kills} kills: {missing:?}");
    let repeats: usize = counts.values().map(|c| c - 1).sum();
    println!(
        "kills: {kills}, events seen: {}, repeats: {repeats}, torn lines: {torn}",
        seen.len()
    );
    assert!(
        repeats <= kills * BATCH,
        "{repeats} repeats for {kills} kills of batches of at most {BATCH}"
    );
    assert_eq!(counts.len(), ROWS, "nothing invented");
}
