//! `example-pipelines/fluent-bit/fluent-bit.yaml`, the plugin's pipeline, run
//! as written in the real Fluent Bit of `../shared/tools`, with its paths
//! moved into a test directory, this build's library as the plugin, and the
//! replayed Graph as the source: every row reaches the file output as valid
//! OCSF exactly once, and a restart adds nothing.

#[path = "../../host/tests/support/broker.rs"]
mod broker;
#[path = "../../tests/support/ocsf_schema.rs"]
mod ocsf_schema;
#[path = "../../host/tests/support/pipelines.rs"]
mod pipelines;

use pipelines::*;
use serde_yaml_ng::Value as Yaml;
use std::path::{Path, PathBuf};
use std::process::Command;

const ROWS: usize = 120;

/// The library `cargo test` built beside this test binary.
fn plugin_library() -> PathBuf {
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let name = "libdefender_ocsf_fluent_bit.so";
    [deps.join(name), deps.parent().unwrap().join(name)]
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} was not built beside {}", deps.display()))
}

/// The example, runnable here: paths moved below `root`, this build's
/// library, the replayed Graph. Returns the file to run.
fn prepare(root: &Path, server: &defender_ocsf_replay::ReplayServer, edit: impl FnOnce(&mut Yaml)) -> PathBuf {
    let mut doc = example("fluent-bit/fluent-bit.yaml");
    let plugins = doc["plugins"].as_sequence_mut().unwrap();
    assert_eq!(plugins.len(), 1);
    assert!(plugins[0].as_str().unwrap().ends_with("/libdefender_ocsf_fluent_bit.so"));
    plugins[0] = plugin_library().display().to_string().into();
    localize(&mut doc, root);
    let input = &mut doc["pipeline"]["inputs"][0];
    assert_eq!(input["name"].as_str(), Some("defender_ocsf"));
    assert_eq!(input["storage.type"].as_str(), Some("filesystem"));
    for (key, value) in replay_settings(server) {
        input[key] = value.trim_start_matches('[').trim_end_matches(']').into();
    }
    edit(&mut doc);
    let file = root.join("fluent-bit.yaml");
    write_yaml(&file, &doc);
    file
}

fn fluent_bit(binary: &Path, file: &Path, log: PathBuf) -> Running {
    let mut command = Command::new(binary);
    command.arg("-c").arg(file).envs(environment());
    Running::start(command, log)
}

#[test]
fn fluent_bit_plugin_example() {
    let Some(binary) = tool_or_skip("fluent-bit", "fluent_bit_plugin_example") else {
        return;
    };
    let server = replay(ROWS);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let file = prepare(root, &server, |_| {});
    let sink_dir = root.join("var/log/ocsf");

    let output = run_then_restart(
        |name| fluent_bit(&binary, &file, root.join(format!("fluent-bit-{name}.log"))),
        &sink_dir,
        &server,
        ROWS,
    );
    assert!(
        output.contains("[defender_ocsf] {"),
        "our JSON logs are in Fluent Bit's log: {output}"
    );
    assert!(!output.contains("[error]"), "{output}");
    assert!(!output.contains("pipeline-Secret"), "{output}");
}

/// Two inputs, two tenants' worth of state, in one Fluent Bit: each collects
/// on its own; a third sharing a state directory is refused at start.
#[test]
fn two_inputs_run_side_by_side_and_may_not_share_state() {
    let Some(binary) = tool_or_skip("fluent-bit", "two_inputs_run_side_by_side_and_may_not_share_state") else {
        return;
    };
    let server = replay(ROWS);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let second_state = root.join("var/lib/defender-ocsf-second");
    let file = prepare(root, &server, |doc| {
        let mut second = doc["pipeline"]["inputs"][0].clone();
        second["tag"] = "ocsf.second".into();
        second["state_dir"] = second_state.display().to_string().into();
        doc["pipeline"]["inputs"].as_sequence_mut().unwrap().push(second);
    });
    let sink_dir = root.join("var/log/ocsf");
    let running = fluent_bit(&binary, &file, root.join("fluent-bit.log"));
    let arrived = wait_until(120, || events_in(&sink_dir).len() >= 2 * ROWS);
    let output = running.output();
    assert!(arrived, "{output}");
    assert!(running.stop().success());
    let events = events_in(&sink_dir);
    let mut per_row = std::collections::BTreeMap::<String, usize>::new();
    for event in &events {
        *per_row.entry(event["metadata"]["original_event_uid"].to_string()).or_default() += 1;
    }
    assert_eq!(per_row.len(), ROWS, "{output}");
    assert!(per_row.values().all(|n| *n == 2), "each input delivers every row once: {per_row:?}");
    ocsf_schema::assert_all_valid("two inputs", &events);
    assert!(second_state.join("checkpoint.json").is_file());
    assert!(root.join("var/lib/defender-ocsf/checkpoint.json").is_file());

    // The same state directory twice: Fluent Bit does not start.
    let file = prepare(root, &server, |doc| {
        let twin = doc["pipeline"]["inputs"][0].clone();
        doc["pipeline"]["inputs"].as_sequence_mut().unwrap().push(twin);
    });
    let mut running = fluent_bit(&binary, &file, root.join("fluent-bit-twin.log"));
    assert!(wait_until(60, || running.exited().is_some()), "{}", running.output());
    let output = running.output();
    assert!(!running.exited().unwrap().success());
    assert!(output.contains("already uses the state directory"), "{output}");
}

/// A configuration the collector refuses stops Fluent Bit's start, with the
/// collector's message in Fluent Bit's log; a misspelled property is
/// refused by Fluent Bit itself, from the plugin's config map.
#[test]
fn a_bad_configuration_fails_the_start_with_what_to_fix() {
    let Some(binary) = tool_or_skip("fluent-bit", "a_bad_configuration_fails_the_start_with_what_to_fix") else {
        return;
    };
    let server = replay(1);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (key, value, expected) in [
        ("max_rows_per_query", "lots", "`max_rows_per_query` must be a whole number"),
        ("delay", "soon", "delay"),
        ("tables", "DeviceProcesEvents", "DeviceProcesEvents"),
        ("state_dir", "/dev/null/state", "cannot be written"),
        ("tabels", "DeviceProcessEvents", "unknown configuration property 'tabels'"),
    ] {
        let file = prepare(root, &server, |doc| doc["pipeline"]["inputs"][0][key] = value.into());
        let mut running = fluent_bit(&binary, &file, root.join(format!("fluent-bit-{key}.log")));
        assert!(wait_until(60, || running.exited().is_some()), "{key}: {}", running.output());
        let output = running.output();
        assert!(!running.exited().unwrap().success(), "{key}: {output}");
        assert!(output.contains(expected), "{key}: {output}");
        assert!(!output.contains("pipeline-Secret"), "{output}");
    }
}

/// Fluent Bit's hot reload (SIGHUP with `hot_reload: on`) stops the input
/// and starts it again in the same process: collection resumes from the
/// checkpoint, and nothing is delivered twice.
#[test]
fn hot_reload_resumes_from_the_checkpoint() {
    let Some(binary) = tool_or_skip("fluent-bit", "hot_reload_resumes_from_the_checkpoint") else {
        return;
    };
    let server = replay(ROWS);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    let file = prepare(root, &server, |doc| {
        doc["service"]["hot_reload"] = "on".into();
        doc["pipeline"]["inputs"][0]["metrics_address"] = format!("127.0.0.1:{port}").into();
    });
    let sink_dir = root.join("var/log/ocsf");
    let mut running = fluent_bit(&binary, &file, root.join("fluent-bit.log"));
    assert!(wait_until(120, || events_in(&sink_dir).len() >= ROWS), "{}", running.output());
    assert!(
        Command::new("kill")
            .args(["-HUP", &running.pid().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        wait_until(60, || running.output().contains("successful reload")),
        "{}",
        running.output()
    );
    let queries = server.query_count();
    assert!(
        wait_until(60, || server.query_count() > queries + 1),
        "collection resumes: {}",
        running.output()
    );
    assert!(running.exited().is_none(), "{}", running.output());
    let output = running.output();
    assert!(output.contains("\"resumed\":true"), "{output}");
    // The metrics server outlives the reload and serves the new input.
    let mut metrics = String::new();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(&mut stream, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    std::io::Read::read_to_string(&mut stream, &mut metrics).unwrap();
    assert!(
        metrics.contains("defender_ocsf_queries_total{outcome=\"ok\",table=\"DeviceProcessEvents\"}"),
        "{metrics}"
    );
    assert!(running.stop().success());
    assert_each_row_once(&events_in(&sink_dir), ROWS, "after a hot reload");
}

/// `config_file` carries what flat properties cannot, such as `tenants:`:
/// one input collects two tenants, each with its own checkpoint.
#[test]
fn config_file_collects_several_tenants_in_one_input() {
    let Some(binary) = tool_or_skip("fluent-bit", "config_file_collects_several_tenants_in_one_input") else {
        return;
    };
    let contoso = replay(ROWS);
    let fabrikam_credentials = defender_ocsf_replay::Credentials {
        tenant_id: "fabrikam.example".into(),
        client_id: "f-client".into(),
        client_secret: "f-Secret~2".into(),
    };
    let fabrikam = replay_for(ROWS, fabrikam_credentials.clone());
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let tenants = root.join("etc/defender-ocsf/tenants.yaml");
    std::fs::create_dir_all(tenants.parent().unwrap()).unwrap();
    let c = credentials();
    std::fs::write(
        &tenants,
        format!(
            "tenants:\n  - {{tenant_id: {}, client_id: {}, client_secret: '${{DEFENDER_CLIENT_SECRET}}'}}\n  \
             - {{tenant_id: {}, client_id: {}, client_secret: '${{FABRIKAM_SECRET}}', login_endpoint: '{u}', graph_endpoint: '{u}'}}\n",
            c.tenant_id,
            c.client_id,
            fabrikam_credentials.tenant_id,
            fabrikam_credentials.client_id,
            u = fabrikam.url()
        ),
    )
    .unwrap();
    let file = prepare(root, &contoso, |doc| {
        let input = doc["pipeline"]["inputs"][0].as_mapping_mut().unwrap();
        for key in ["tenant_id", "client_id", "client_secret"] {
            input.remove(key);
        }
        input.insert("config_file".into(), tenants.display().to_string().into());
    });
    let sink_dir = root.join("var/log/ocsf");
    let mut command = Command::new(binary);
    command
        .arg("-c")
        .arg(&file)
        .envs(environment())
        .env("FABRIKAM_SECRET", &fabrikam_credentials.client_secret);
    let running = Running::start(command, root.join("fluent-bit.log"));
    let arrived = wait_until(120, || events_in(&sink_dir).len() >= 2 * ROWS);
    let output = running.output();
    assert!(arrived, "{output}");
    assert!(running.stop().success());
    let events = events_in(&sink_dir);
    for (tenant, expected) in [(c.tenant_id.as_str(), ROWS), (fabrikam_credentials.tenant_id.as_str(), ROWS)] {
        let own: Vec<serde_json::Value> = events.iter().filter(|e| e["metadata"]["tenant_uid"] == tenant).cloned().collect();
        assert_each_row_once(&own, expected, tenant);
        assert!(root.join("var/lib/defender-ocsf").join(tenant).join("checkpoint.json").is_file());
    }
    assert!(!output.contains("f-Secret"), "{output}");
}

/// The plugin with a stream source (`source:` through `config_file`): the
/// records reach Fluent Bit's output, the offsets are committed only after
/// Fluent Bit took the batch, so a restart adds nothing, and what arrives
/// later is read then.
#[test]
fn a_stream_source_delivers_into_fluent_bit_and_commits_after_the_append() {
    let Some(binary) = tool_or_skip("fluent-bit", "the plugin with a stream source") else {
        return;
    };
    let Some(kafka) = broker::Broker::start("the plugin with a stream source") else {
        return;
    };
    kafka.create_topic("defender", 2);
    let ids: Vec<u32> = (1..=30).collect();
    let messages: Vec<(i32, Vec<u8>)> = ids
        .chunks(3)
        .enumerate()
        .map(|(i, c)| ((i % 2) as i32, broker::message(c)))
        .collect();
    kafka.produce("defender", &messages);
    let server = replay(1);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let stream = root.join("etc/defender-ocsf/stream.yaml");
    std::fs::create_dir_all(stream.parent().unwrap()).unwrap();
    std::fs::write(
        &stream,
        format!(
            "source:\n  type: kafka\n  brokers: {}\n  topics: [defender]\n  group_id: fluent-bit\n  batch_wait: 200ms\n",
            kafka.address
        ),
    )
    .unwrap();
    let file = prepare(root, &server, |doc| {
        let input = doc["pipeline"]["inputs"][0].as_mapping_mut().unwrap();
        for key in [
            "tenant_id",
            "client_id",
            "client_secret",
            "login_endpoint",
            "graph_endpoint",
            "tables",
            "start_time",
            "delay",
        ] {
            input.remove(key);
        }
        input.insert("config_file".into(), stream.display().to_string().into());
    });
    let sink_dir = root.join("var/log/ocsf");
    let report_ids = |events: &[serde_json::Value]| {
        let mut ids: Vec<u64> = events
            .iter()
            .filter_map(|e| e["metadata"]["original_event_uid"].as_str()?.parse().ok())
            .collect();
        ids.sort_unstable();
        ids
    };
    let running = fluent_bit(&binary, &file, root.join("fluent-bit-1.log"));
    let arrived = wait_until(120, || events_in(&sink_dir).len() >= ids.len());
    let output = running.output();
    assert!(arrived, "{output}");
    assert!(running.stop().success());
    assert_eq!(
        report_ids(&events_in(&sink_dir)),
        ids.iter().map(|i| u64::from(*i)).collect::<Vec<_>>(),
        "each record once"
    );
    ocsf_schema::assert_all_valid("stream through the plugin", &events_in(&sink_dir));

    // Committed after the append: a restart reads only what is new.
    kafka.produce("defender", &[(1, broker::message(&[100]))]);
    let running = fluent_bit(&binary, &file, root.join("fluent-bit-2.log"));
    let arrived = wait_until(120, || events_in(&sink_dir).len() > ids.len());
    let output = running.output();
    assert!(arrived, "{output}");
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(running.stop().success());
    let mut want: Vec<u64> = ids.iter().map(|i| u64::from(*i)).collect();
    want.push(100);
    assert_eq!(report_ids(&events_in(&sink_dir)), want, "nothing twice: {output}");
}
