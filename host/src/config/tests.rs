//! The configuration's tests: interpolation, errors that point at the line, tenants, overrides.

use super::*;
use crate::runtime::Description;

/// A description like the Defender component's.
fn described() -> Description {
    Description {
        secret_keys: vec!["client_secret".into()],
        credential_keys: vec!["client_secret".into(), "client_assertion".into()],
        instance_key: Some("tenant_id".into()),
        host_signer: Some(("client_assertion".into(), "host".into())),
        convert_options: Vec::new(),
        metrics: Vec::new(),
    }
}

/// The description of a component that says nothing: no secrets,
/// credentials or instances (an older contract, or a source that needs none).
fn silent() -> Description {
    Description {
        secret_keys: Vec::new(),
        credential_keys: Vec::new(),
        instance_key: None,
        host_signer: None,
        convert_options: Vec::new(),
        metrics: Vec::new(),
    }
}
use crate::output::Compression;

fn env(name: &str) -> Option<String> {
    match name {
        "SECRET" => Some("p@ss: *word #1".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

#[test]
fn interpolates_after_parsing() {
    let c = RunConfig::from_yaml(
        "tenant_id: t\nclient_secret: ${SECRET}\nother: \"$$HOME ${MISSING:-dflt} ${EMPTY:-e}\"\nstate_dir: /tmp/s\n",
        &env,
    )
    .unwrap();
    assert_eq!(c.source["client_secret"], "p@ss: *word #1");
    assert_eq!(c.source["other"], "$HOME dflt e");
    assert_eq!(c.state_dir, PathBuf::from("/tmp/s"));
    assert!(!c.source.contains_key("state_dir"), "host keys are not passed on");
    assert_eq!(c.log_level, "info");
}

#[test]
fn a_component_message_points_at_the_line_and_suggests_the_key() {
    let text = "tenant_id: t\ndelay: 5\ntabels: [DeviceEvents]\nocsf:\n  deprecated_classes: maybe\n";
    let mut c = RunConfig::from_yaml(text, &env).unwrap();
    c.origin = Some(Origin {
        name: "/etc/defender-ocsf/defender.yaml".into(),
        text: text.into(),
    });
    assert_eq!(
        c.explain("`delay`: invalid type: integer `5`, expected a string"),
        "in /etc/defender-ocsf/defender.yaml, line 2 column 1: `delay`: invalid type: integer `5`, expected a string"
    );
    let unknown = c.explain("unknown field `tabels`, expected one of `tenant_id`, `tables`, `delay`");
    assert!(
        unknown.starts_with("in /etc/defender-ocsf/defender.yaml, line 3 column 1: unknown field `tabels`"),
        "{unknown}"
    );
    assert!(
        unknown.contains("did you mean `tables`?") && unknown.contains("`state_dir`"),
        "{unknown}"
    );
    let nested = c.explain("`ocsf.deprecated_classes`: invalid type: string \"maybe\", expected a boolean");
    assert!(
        nested.starts_with("in /etc/defender-ocsf/defender.yaml, line 5 column 3: "),
        "{nested}"
    );
    let host_key = c.explain("unknown field `stat_dir`, expected one of `tenant_id`");
    assert!(host_key.contains("did you mean `state_dir`?"), "{host_key}");
    assert!(!c.explain("unknown field `zzzzzz`, expected `tenant_id`").contains("did you mean"));
    c.origin = None;
    assert_eq!(c.explain("`delay`: bad"), "`delay`: bad");
}

#[test]
fn every_missing_variable_is_named_at_once() {
    let e = RunConfig::from_yaml(
        "tenant_id: ${NO_TENANT}\nclient_secret: ${NO_SECRET}\nclient_id: ${NO_ID:-fallback}\noutput: {type: http, url: '${NO_URL}'}\n",
        &env,
    )
    .unwrap_err();
    let text = format!("{e:#}");
    assert!(
        text.contains("NO_TENANT (in `tenant_id`)")
            && text.contains("NO_SECRET (in `client_secret`)")
            && text.contains("NO_URL (in `output`)"),
        "{text}"
    );
    assert!(!text.contains("NO_ID"), "a default covers it: {text}");
}

#[test]
fn missing_variables_are_named_and_values_never_shown() {
    let e = RunConfig::from_yaml("client_secret: ${NOPE}\n", &env).unwrap_err();
    let text = format!("{e:#}");
    assert!(text.contains("NOPE") && text.contains("client_secret"), "{text}");
    let e = RunConfig::from_yaml("log_level: loud\nclient_secret: ${SECRET}\n", &env).unwrap_err();
    assert!(!format!("{e:#}").contains("word"), "{e:#}");
}

#[test]
fn output_settings_parse_and_hide_header_values() {
    let c = RunConfig::from_yaml(
        "output:\n  type: http\n  url: http://127.0.0.1:9000/\n  compression: gzip\n  headers:\n    Authorization: Bearer ${SECRET}\n",
        &env,
    )
    .unwrap();
    let OutputConfig::Http(http) = &c.output else {
        panic!("{:?}", c.output)
    };
    assert_eq!(http.compression, Compression::Gzip);
    assert_eq!(http.timeout, std::time::Duration::from_secs(120));
    assert!(!format!("{c:?}").contains("word"), "{c:?}");
    let e = RunConfig::from_yaml("output:\n  type: kafka\n", &env).unwrap_err();
    assert!(format!("{e:#}").contains("stdout") && format!("{e:#}").contains("http"), "{e:#}");
    let e = RunConfig::from_yaml("output:\n  type: http\n  url: http://x\n  retries: 3\n", &env).unwrap_err();
    assert!(format!("{e:#}").contains("retries"), "{e:#}");
}

#[test]
fn sets_override_and_reach_into_sections() {
    let c = RunConfig::from_yaml_with_sets(
        "tenant_id: t\noutput:\n  type: http\n  url: http://a\n",
        &[
            "output.url=http://127.0.0.1:1/x".into(),
            "tables=[A, B]".into(),
            "client_secret=${SECRET}".into(),
            "incidents=true".into(),
        ],
        &env,
    )
    .unwrap();
    let OutputConfig::Http(h) = &c.output else { panic!() };
    assert_eq!(h.url, "http://127.0.0.1:1/x");
    assert_eq!(c.source["tables"], serde_json::json!(["A", "B"]));
    assert_eq!(c.source["client_secret"], "p@ss: *word #1");
    assert_eq!(c.source["incidents"], true);
    assert!(RunConfig::from_yaml_with_sets("a: 1\n", &["a.b=1".into()], &env).is_err());
    assert!(RunConfig::from_yaml_with_sets("", &["novalue".into()], &env).is_err());
}

#[test]
fn a_secret_file_is_read_by_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, "from-file\n").unwrap();
    let raw = RunConfig::from_yaml(&format!("client_secret_file: {}\n", file.display()), &env).unwrap();
    let c = &raw.instances(&described()).unwrap()[0];
    assert_eq!(c.source["client_secret"], "from-file");
    assert!(!c.source.contains_key("client_secret_file"));
    let e = RunConfig::from_yaml("client_secret_file: /nonexistent/x\n", &env)
        .unwrap()
        .instances(&described())
        .unwrap_err();
    assert!(format!("{e:#}").contains("/nonexistent/x"));
    // A component that names no secret gets the setting as written.
    let c = &raw.instances(&silent()).unwrap()[0];
    assert!(c.source.contains_key("client_secret_file") && !c.source.contains_key("client_secret"));
}

#[test]
fn tenants_inherit_the_top_level_and_replace_its_credential() {
    let c = RunConfig::from_yaml(
        "state_dir: /s\ntables: [DeviceEvents]\nclient_secret: shared\ntenants:\n  - {tenant_id: a, client_id: ca}\n  - {tenant_id: b, client_id: cb, client_secret: own, tables: [AlertInfo]}\n",
        &env,
    )
    .unwrap();
    let instances = c.instances(&described()).unwrap();
    assert_eq!(instances.len(), 2);
    assert_eq!(instances[1].instance_name(), "b");
    assert_eq!(instances[0].state_dir, PathBuf::from("/s/a"));
    assert_eq!(instances[0].source["client_secret"], "shared");
    assert_eq!(instances[0].source["tables"], serde_json::json!(["DeviceEvents"]));
    assert_eq!(instances[1].source["client_secret"], "own");
    assert_eq!(instances[1].source["tables"], serde_json::json!(["AlertInfo"]));
    assert!(!instances[1].source.contains_key("tenants"));

    for (yaml, message) in [
        ("tenants: [{tenant_id: a, state_dir: /x}]", "host setting"),
        ("tenants: []", "non-empty list"),
        ("shard: {index: 3, count: 3}", "index must be below count"),
        ("shard: {index: 0}", "missing field `count`"),
    ] {
        let e = format!("{:#}", RunConfig::from_yaml(yaml, &env).unwrap_err());
        assert!(e.contains(message), "{yaml}: {e}");
    }
    // What the component names as its instance is checked with its description.
    for (yaml, message) in [
        ("tenants: [{tenant_id: a}, {tenant_id: A}]", "twice"),
        ("tenants: [{client_id: c}]", "no `tenant_id`"),
        ("tenants: [{tenant_id: ../up}]", "names a directory"),
    ] {
        let e = format!(
            "{:#}",
            RunConfig::from_yaml(yaml, &env).unwrap().instances(&described()).unwrap_err()
        );
        assert!(e.contains(message), "{yaml}: {e}");
    }
}

#[test]
fn what_a_component_does_not_describe_is_refused_with_the_reason() {
    for (yaml, message) in [
        ("tenants: [{tenant_id: a}]", "names no setting for an instance"),
        ("tenant_id: a\nshard: {index: 0, count: 2}", "remove `shard`"),
        ("client_certificate_file: /c.pem", "cannot have the host sign for it"),
    ] {
        let e = format!("{:#}", RunConfig::from_yaml(yaml, &env).unwrap().instances(&silent()).unwrap_err());
        assert!(e.contains(message), "{yaml}: {e}");
    }
    // With the description, the certificate is the host's and the component is told to ask.
    let c = RunConfig::from_yaml("client_certificate_file: /c.pem\n", &env).unwrap();
    let one = &c.instances(&described()).unwrap()[0];
    assert_eq!(one.source["client_assertion"], "host");
    assert_eq!(one.client_certificate.as_ref().unwrap().certificate, PathBuf::from("/c.pem"));
    let both = RunConfig::from_yaml("client_certificate_file: /c.pem\nclient_secret: s\n", &env).unwrap();
    assert!(format!("{:#}", both.instances(&described()).unwrap_err()).contains("not both"));
}

#[test]
fn the_shard_of_a_tenant_never_changes() {
    // Pinned: a new hash would move tenants to pods without their state.
    let shards: Vec<u32> = ["contoso", "fabrikam", "northwind", "adatum", "litware"]
        .iter()
        .map(|t| Shard::of(t, 3))
        .collect();
    // Computed independently: Python's hashlib.sha256, first 8 bytes, big-endian, mod 3.
    assert_eq!(shards, [2, 2, 1, 2, 2]);
    assert_eq!(Shard::of("Contoso", 3), Shard::of("contoso", 3), "ids compare case-insensitively");
    let one = RunConfig::from_yaml("tenant_id: contoso\nshard: {index: 0, count: 3}", &env).unwrap();
    assert_eq!(
        one.instances(&described()).unwrap().len(),
        usize::from(Shard::of("contoso", 3) == 0)
    );
}

#[test]
fn overrides_are_final_and_sit_on_top_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yaml");
    std::fs::write(
        &file,
        "tenant_id: t\nclient_secret: ${SECRET}\ndelay: 5m\nocsf: {deprecated_classes: true}\n",
    )
    .unwrap();
    let c = RunConfig::from_file_and_overrides(
        Some(&file),
        vec![
            ("delay".into(), Value::String("1m".into())),
            ("client_id".into(), Value::String("$${NOT_EXPANDED}".into())),
            ("ocsf.deprecated_classes".into(), Value::Bool(false)),
            ("state_dir".into(), Value::String("/tmp/s".into())),
        ],
        &env,
    )
    .unwrap();
    assert_eq!(c.source["client_secret"], "p@ss: *word #1", "the file is interpolated");
    assert_eq!(c.source["client_id"], "$${NOT_EXPANDED}", "overrides are not");
    assert_eq!(c.source["delay"], "1m");
    assert_eq!(c.source["ocsf"], serde_json::json!({"deprecated_classes": false}));
    assert_eq!(c.state_dir, PathBuf::from("/tmp/s"));
    let none = RunConfig::from_file_and_overrides(None, vec![("tenant_id".into(), Value::String("t".into()))], &env).unwrap();
    assert_eq!(none.source["tenant_id"], "t");
    let e = RunConfig::from_file_and_overrides(Some(&dir.path().join("missing.yaml")), vec![], &env).unwrap_err();
    assert!(format!("{e:#}").contains("missing.yaml"), "{e:#}");
}

#[test]
fn rejects_non_mappings() {
    assert!(RunConfig::from_yaml("- a\n- b\n", &env).is_err());
    assert!(RunConfig::from_yaml("a: [\n", &env).is_err());
}

#[test]
fn convert_options_are_the_settings_the_component_names_under_their_last_segment() {
    let source = serde_json::json!({"tenant_id": "t", "client_secret": "s", "ocsf": {"deprecated_classes": false}, "x": {"y": 1}});
    let keys = [
        "tenant_id".to_string(),
        "ocsf.deprecated_classes".into(),
        "missing".into(),
        "x.z".into(),
    ];
    let options = Value::Object(convert_options(source.as_object().unwrap(), &keys)).to_string();
    assert_eq!(options, r#"{"deprecated_classes":false,"tenant_id":"t"}"#);
    assert!(
        convert_options(source.as_object().unwrap(), &[]).is_empty(),
        "nothing the component did not name"
    );
}
