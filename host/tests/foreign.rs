//! The host runs any `collector` component, not only the embedded Defender
//! one: a fixture that knows nothing of Defender (`host/tests/echo`, which
//! emits one event made of its own setting) is run, checked and checkpointed
//! by the same binary, with a configuration that names no Defender key.

#[path = "support/guest.rs"]
mod guest;

use std::process::Command;

fn host(args: &[&str], config: &std::path::Path, contract: Option<&str>) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_defender-ocsf"))
        .args(args)
        .arg("--config")
        .arg(config)
        .arg("--component")
        .arg(guest::build_with("defender-ocsf-test-echo", contract))
        .output()
        .unwrap()
}

#[test]
fn a_component_that_is_not_defender_runs_is_checked_and_checkpointed() {
    runs_is_checked_and_checkpointed(None, defender_ocsf_host::runtime::CONTRACT);
}

/// The same component built against the previous contract runs as well.
#[test]
fn a_component_of_the_previous_contract_runs_too() {
    runs_is_checked_and_checkpointed(Some("contract-0-4"), "0.4.0");
}

fn runs_is_checked_and_checkpointed(feature: Option<&str>, contract: &str) {
    let host = |args: &[&str], config: &std::path::Path| host(args, config, feature);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, format!("state_dir: {}\nmessage: hello from elsewhere\n", state.display())).unwrap();

    let run = host(&["run", "--once"], &config);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "{\"message\":\"hello from elsewhere\"}\n",
        "{stderr}"
    );
    assert!(
        stderr.contains("\"source\":\"echo\""),
        "the host names the component's source: {stderr}"
    );
    assert!(stderr.contains(&format!("\"contract\":\"{contract}\"")), "{stderr}");
    let checkpoint = std::fs::read_to_string(state.join("checkpoint.json")).unwrap();
    assert!(
        checkpoint.contains("\"echoed\":1"),
        "the component's checkpoint is saved as it gave it: {checkpoint}"
    );

    let check = host(&["check"], &config);
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{out}{}", String::from_utf8_lossy(&check.stderr));
    assert!(out.lines().any(|l| l.starts_with("PASS") && l.contains("echo")), "{out}");

    // Its own configuration errors reach the user as they are.
    std::fs::write(&config, format!("state_dir: {}\n", state.display())).unwrap();
    let refused = host(&["run", "--once"], &config);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("`message` is required"));
}
