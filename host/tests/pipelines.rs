//! The example pipelines, run as written in the real Vector and Fluent Bit of
//! `../shared/tools`, with only their paths and ports moved into a test
//! directory and the replayed Graph as the source. Each test checks that
//! every replayed row reaches the pipeline's sink as valid OCSF exactly once,
//! and that a restart adds nothing.
//!
//! The Fluent Bit plugin's pipeline runs in the plugin crate's own tests
//! (`fluent-bit-plugin/tests/pipeline.rs`), which can find its library.

#[path = "../../tests/support/ocsf_schema.rs"]
mod ocsf_schema;
#[path = "support/pipelines.rs"]
mod pipelines;

use pipelines::*;
use serde_yaml_ng::Value as Yaml;
use std::path::Path;
use std::process::Command;

const ROWS: usize = 120;
const BINARY: &str = env!("CARGO_BIN_EXE_defender-ocsf");

/// `example-pipelines/defender.yaml` pointed at `server`, moved below `root`.
fn collector_config(root: &Path, server: &defender_ocsf_replay::ReplayServer, extra: &[(&str, Yaml)]) -> Yaml {
    let mut config = example("defender.yaml");
    localize(&mut config, root);
    let map = config.as_mapping_mut().unwrap();
    for (key, value) in replay_settings(server) {
        map.insert(key.into(), serde_yaml_ng::from_str(&value).unwrap());
    }
    for (key, value) in extra {
        map.insert((*key).into(), value.clone());
    }
    config
}

fn vector(file: &Path, root: &Path, name: &str, interpolate: bool) -> Running {
    let mut command = Command::new(tool_or_skip("vector", "vector").unwrap());
    command.arg("--config").arg(file).envs(environment());
    if interpolate {
        command.env("VECTOR_DANGEROUSLY_ALLOW_ENV_VAR_INTERPOLATION", "true");
    }
    Running::start(command, root.join(format!("{name}.log")))
}

/// exec.yaml's command with our binary and its `--config` file moved.
fn with_binary(doc: &mut Yaml) {
    let command = doc["sources"]["defender"]["command"].as_sequence_mut().unwrap();
    assert_eq!(
        command[0].as_str(),
        Some("defender-ocsf"),
        "the example runs defender-ocsf from PATH"
    );
    command[0] = BINARY.into();
}

/// Runs a Vector exec example until all rows are in its file sink, then
/// again to show that a restart adds nothing.
fn run_exec_example(doc: Yaml, root: &Path, server: &defender_ocsf_replay::ReplayServer, interpolate: bool) {
    let file = root.join("vector.yaml");
    write_yaml(&file, &doc);
    let sink_dir = root.join("var/log/ocsf");
    let logs = root.join("var/log/defender-ocsf/defender-ocsf.log");

    let output = run_then_restart(|name| vector(&file, root, name, interpolate), &sink_dir, server, ROWS);
    let collector_log = std::fs::read_to_string(&logs).unwrap_or_default();
    assert!(
        collector_log.contains("\"collecting\""),
        "the collector's logs reach log_file though Vector discards its stderr: {collector_log}"
    );
    assert!(!output.contains("pipeline-Secret") && !collector_log.contains("pipeline-Secret"));
}

#[test]
fn vector_exec_example() {
    if tool_or_skip("vector", "vector_exec_example").is_none() {
        return;
    }
    let server = replay(ROWS);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let config = collector_config(root, &server, &[]);
    let mut doc = example("vector/exec.yaml");
    with_binary(&mut doc);
    localize(&mut doc, root);
    write_yaml(Path::new(doc["sources"]["defender"]["command"][4].as_str().unwrap()), &config);
    run_exec_example(doc, root, &server, false);
}

/// The inline configuration, as Vector 0.58 passes it by default: `${VAR}`
/// unsubstituted, read by the collector from the inherited environment.
#[test]
fn vector_exec_inline_example() {
    if tool_or_skip("vector", "vector_exec_inline_example").is_none() {
        return;
    }
    run_exec_inline(false);
}

/// The same file when the user turned Vector's interpolation on: Vector
/// substitutes the same variables first.
#[test]
fn vector_exec_inline_example_with_interpolation() {
    if tool_or_skip("vector", "vector_exec_inline_example_with_interpolation").is_none() {
        return;
    }
    run_exec_inline(true);
}

fn run_exec_inline(interpolate: bool) {
    let server = replay(ROWS);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut doc = example("vector/exec-inline.yaml");
    with_binary(&mut doc);
    let inline = &mut doc["sources"]["defender"]["environment"]["DEFENDER_OCSF"];
    let text = inline.as_str().unwrap().to_string();
    assert!(text.contains("client_secret: ${DEFENDER_CLIENT_SECRET}"), "{text}");
    let mut config: Yaml = serde_yaml_ng::from_str(&text).unwrap();
    localize(&mut config, root);
    for (key, value) in replay_settings(&server) {
        config[key] = serde_yaml_ng::from_str(&value).unwrap();
    }
    *inline = serde_yaml_ng::to_string(&config).unwrap().into();
    localize(&mut doc, root);
    // The console sink alone would leave nothing to count: add a file sink.
    doc["sinks"]["ocsf_file"] = serde_yaml_ng::from_str(&format!(
        "{{type: file, inputs: [defender], path: {}/var/log/ocsf/defender.ndjson, encoding: {{codec: json}}}}",
        root.display()
    ))
    .unwrap();
    run_exec_example(doc, root, &server, interpolate);
}

/// http_server.yaml with end-to-end acknowledgements, and the collector as
/// its own service with the `output` its comments give.
#[test]
fn vector_http_server_example() {
    let Some(_) = tool_or_skip("vector", "vector_http_server_example") else {
        return;
    };
    let server = replay(ROWS);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port().to_string();
    let mut doc = example("vector/http_server.yaml");
    assert_eq!(doc["sources"]["defender"]["address"].as_str(), Some("127.0.0.1:8687"));
    replace_in_strings(&mut doc, "8687", &port);
    localize(&mut doc, root);
    let file = root.join("vector.yaml");
    write_yaml(&file, &doc);
    let output: Yaml = serde_yaml_ng::from_str(&format!("{{type: http, url: 'http://127.0.0.1:{port}/'}}")).unwrap();
    let config_path = root.join("defender.yaml");
    write_yaml(&config_path, &collector_config(root, &server, &[("output", output)]));
    let sink_dir = root.join("var/log/ocsf");

    let listening = || wait_until(30, || std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_ok());
    let vector = vector(&file, root, "vector", false);
    assert!(listening(), "{}", vector.output());
    let run = || {
        Command::new(BINARY)
            .args(["run", "--once", "--config"])
            .arg(&config_path)
            .envs(environment())
            .output()
            .unwrap()
    };
    let out = run();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Vector answered each batch once the file sink's disk buffer had it,
    // and the collector saved its checkpoint. Vector is restarted at once:
    // what it answered must survive on its disk (the example's promise), and
    // come out after the restart, each row once. The restart also releases
    // the records Vector's disk buffer can leave unread until the next
    // write or a restart (vectordotdev/vector#22946): without it, this test
    // saw an empty file after 60 s in about one run of 15.
    let status = vector.stop();
    assert!(status.success(), "vector: {status}");
    let vector = self::vector(&file, root, "vector-again", false);
    assert!(listening(), "{}", vector.output());
    wait_until(60, || events_in(&sink_dir).len() >= ROWS);
    assert_each_row_once(&events_in(&sink_dir), ROWS, "first run, then a restart of Vector");
    let out = run();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status = vector.stop();
    assert!(status.success(), "vector: {status}");
    let log = std::fs::read_to_string(root.join("var/log/defender-ocsf/defender-ocsf.log")).unwrap();
    assert_eq!(log.matches("\"stopped\"").count(), 2, "{log}");
    assert!(log.contains("\"events\":0"), "the second run delivers nothing: {log}");
    assert_each_row_once(&events_in(&sink_dir), ROWS, "after a second run");
}

/// forward.yaml with its shared key, and the collector as its own service
/// with the `output` its comments give.
#[test]
fn fluent_bit_forward_example() {
    let Some(fluent_bit) = tool_or_skip("fluent-bit", "fluent_bit_forward_example") else {
        return;
    };
    let server = replay(ROWS);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port().to_string();
    let mut doc = example("fluent-bit/forward.yaml");
    let input = &doc["pipeline"]["inputs"][0];
    assert_eq!(input["port"].as_u64(), Some(24224));
    assert_eq!(input["shared_key"].as_str(), Some("${FLUENT_SHARED_KEY}"));
    replace_in_strings(&mut doc, "24224", &port);
    localize(&mut doc, root);
    let file = root.join("fluent-bit.yaml");
    write_yaml(&file, &doc);
    let output: Yaml = serde_yaml_ng::from_str(&format!(
        "{{type: forward, address: '127.0.0.1:{port}', tag: ocsf.defender, shared_key: '${{FLUENT_SHARED_KEY}}'}}"
    ))
    .unwrap();
    let config_path = root.join("defender.yaml");
    write_yaml(&config_path, &collector_config(root, &server, &[("output", output)]));
    let sink_dir = root.join("var/log/ocsf");
    let key = ("FLUENT_SHARED_KEY", "fluent-Key~value.1");

    let mut command = Command::new(fluent_bit);
    command.arg("-c").arg(&file).env(key.0, key.1);
    let fluent_bit = Running::start(command, root.join("fluent-bit.log"));
    // Not a probe connection: in_forward logs a handshake error for each.
    assert!(
        wait_until(30, || fluent_bit.output().contains(&format!("listening on 127.0.0.1:{port}"))),
        "{}",
        fluent_bit.output()
    );
    let run = || {
        Command::new(BINARY)
            .args(["run", "--once", "--config"])
            .arg(&config_path)
            .envs(environment())
            .env(key.0, key.1)
            .output()
            .unwrap()
    };
    let collector_log = || std::fs::read_to_string(root.join("var/log/defender-ocsf/defender-ocsf.log")).unwrap_or_default();
    let out = run();
    assert!(
        out.status.success(),
        "{}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        collector_log(),
        fluent_bit.output()
    );
    // Acked once on Fluent Bit's disk; the file output follows within a flush.
    wait_until(30, || events_in(&sink_dir).len() >= ROWS);
    assert_each_row_once(&events_in(&sink_dir), ROWS, "first run");
    let out = run();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::thread::sleep(std::time::Duration::from_secs(2));
    let output = fluent_bit.output();
    let status = fluent_bit.stop();
    assert!(status.success(), "fluent-bit: {status}\n{output}");
    assert!(!output.contains("[error]") && !output.contains("[ warn]"), "{output}");
    assert!(
        collector_log().contains("\"events\":0"),
        "the second run delivers nothing: {}",
        collector_log()
    );
    assert_each_row_once(&events_in(&sink_dir), ROWS, "after a second run");
}

/// Each file of `example-pipelines/` is run by a test: a new example needs
/// its own test here (or in the plugin crate's) before it can be added.
#[test]
fn every_example_pipeline_is_run_by_a_test() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../example-pipelines");
    let mut found = Vec::new();
    for dir in [root.clone(), root.join("vector"), root.join("fluent-bit")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                found.push(path.strip_prefix(&root).unwrap().display().to_string());
            }
        }
    }
    found.sort();
    let tested = [
        // collector_config(): every test here that runs the collector as a program.
        "defender.yaml",
        // fluent-bit-plugin/tests/pipeline.rs
        "fluent-bit/fluent-bit.yaml",
        // fluent_bit_forward_example
        "fluent-bit/forward.yaml",
        // vector_exec_inline_example(_with_interpolation)
        "vector/exec-inline.yaml",
        // vector_exec_example
        "vector/exec.yaml",
        // vector_http_server_example
        "vector/http_server.yaml",
    ];
    assert_eq!(found, tested);
}
