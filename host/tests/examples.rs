//! The example pipelines and the code cannot drift apart: every example file
//! parses, and every collector option it uses is accepted by the host and by
//! the embedded component.

use defender_ocsf_host::config::{OutputConfig, RunConfig};
use defender_ocsf_host::runtime::{Limits, Runtime};
use defender_ocsf_host::telemetry::Telemetry;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../example-pipelines")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

/// Every `${VAR}` is given a harmless value.
fn env(_: &str) -> Option<String> {
    Some("00000000-0000-0000-0000-000000000001".into())
}

/// Checks a collector configuration as `run` would: host keys by the host,
/// the rest by the component's `init` (which needs no network).
fn accept(text: &str, origin: &str) -> RunConfig {
    let config = RunConfig::from_yaml(text, &env).unwrap_or_else(|e| panic!("{origin}: {e:#}"));
    let runtime = Runtime::new(defender_ocsf_host::runtime::DEFAULT_COMPONENT, None).unwrap();
    let mut instance = runtime.instantiate(&Limits::default(), Arc::new(Telemetry::default())).unwrap();
    match instance.init(&config.source_json(), None).unwrap() {
        Ok(_) => config,
        Err(e) => panic!("{origin}: the component refuses the example: {e:?}"),
    }
}

#[test]
fn every_example_parses_and_uses_only_options_that_exist() {
    let mut files = Vec::new();
    yaml_files(&examples(), &mut files);
    assert!(files.len() >= 3, "{files:?}");
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let _: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }

    // The collector configuration the pipelines point at.
    let defender = std::fs::read_to_string(examples().join("defender.yaml")).unwrap();
    accept(&defender, "defender.yaml");

    // Configuration snippets inside the examples' comments (`#   key: value`).
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let snippet: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.trim_start_matches('#').trim_start().starts_with("output:"))
            .take_while(|l| l.starts_with("#   "))
            .map(|l| &l[4..])
            .collect();
        if snippet.is_empty() {
            continue;
        }
        let config = accept(&format!("{defender}\n{}\n", snippet.join("\n")), &file.display().to_string());
        assert!(
            matches!(config.output, OutputConfig::Http(_) | OutputConfig::Forward(_)),
            "{}: the snippet configures a delivery output",
            file.display()
        );
    }
}

/// The configuration inside a Vector file's exec `environment`, as it reaches
/// the collector: Vector 0.57 and later leave it unchanged by default, so it
/// must hold no `$$` (Vector would pass both on, and the collector would read
/// `$${VAR}` as the literal text `${VAR}`).
#[test]
fn the_inline_example_is_a_valid_collector_configuration() {
    let vector: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(examples().join("vector/exec-inline.yaml")).unwrap()).unwrap();
    let source = &vector["sources"]["defender"];
    let command: Vec<&str> = source["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(command, ["defender-ocsf", "run", "--stay-up", "--config-env", "DEFENDER_OCSF"]);
    let inline = source["environment"]["DEFENDER_OCSF"].as_str().unwrap();
    assert!(!inline.contains("$$"), "{inline}");
    accept(inline, "exec-inline.yaml");
}

#[test]
fn the_fluent_bit_example_matches_the_forward_output() {
    let fb: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(examples().join("fluent-bit/forward.yaml")).unwrap()).unwrap();
    let input = &fb["pipeline"]["inputs"][0];
    assert_eq!(input["name"].as_str(), Some("forward"));
    assert_eq!(
        input["storage.type"].as_str(),
        Some("filesystem"),
        "acks mean 'on disk' only with filesystem storage"
    );
    assert_eq!(input["port"].as_u64(), Some(24224));
    assert!(input["shared_key"].as_str().is_some());
    let text = std::fs::read_to_string(examples().join("fluent-bit/forward.yaml")).unwrap();
    assert!(text.contains("#     type: forward") && text.contains("#     address: 127.0.0.1:24224"));
    for output in fb["pipeline"]["outputs"].as_sequence().unwrap() {
        assert_eq!(output["match"].as_str(), Some("ocsf.*"), "outputs match the tag the snippet sets");
        assert_eq!(
            output["retry_limit"].as_str(),
            Some("no_limits"),
            "Fluent Bit's default of one retry drops a chunk we checkpointed on its ack"
        );
    }
}

#[test]
fn the_vector_examples_wire_the_collector_as_documented() {
    let exec: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(examples().join("vector/exec.yaml")).unwrap()).unwrap();
    let source = &exec["sources"]["defender"];
    assert_eq!(source["type"].as_str(), Some("exec"));
    assert_eq!(source["mode"].as_str(), Some("streaming"));
    assert_eq!(source["include_stderr"].as_bool(), Some(false), "logs must not become events");
    assert_eq!(source["log_namespace"].as_bool(), Some(true));
    let command: Vec<&str> = source["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        &command[..4],
        ["defender-ocsf", "run", "--stay-up", "--config"],
        "a credential error must not become a respawn loop"
    );

    let http: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(examples().join("vector/http_server.yaml")).unwrap()).unwrap();
    assert_eq!(
        http["acknowledgements"]["enabled"].as_bool(),
        Some(true),
        "delivery acks are what the http output relies on"
    );
    assert_eq!(http["sources"]["defender"]["framing"]["method"].as_str(), Some("newline_delimited"));
}
