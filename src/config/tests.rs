//! The configuration's tests: defaults, clouds, and errors that name their key.

use super::*;

fn minimal() -> serde_json::Value {
    serde_json::json!({"tenant_id": "t-1", "client_id": "c-1", "client_secret": "s3cr3t"})
}

#[test]
fn defaults_fill_in() {
    let c = CollectorConfig::from_json(&minimal().to_string()).unwrap();
    assert_eq!(c.graph_endpoint, "https://graph.microsoft.com");
    assert_eq!(c.scope(), "https://graph.microsoft.com/.default");
    assert_eq!(c.delay, Duration::from_secs(300));
    assert_eq!(c.api_version, ApiVersion::V1);
    assert_eq!(c.tables, default_tables());
    assert_eq!(
        c.allowed_origins(),
        vec!["https://login.microsoftonline.com", "https://graph.microsoft.com"]
    );
}

#[test]
fn a_value_of_the_wrong_form_names_its_key_not_a_json_position() {
    let with = |extra: serde_json::Value| {
        let mut v = minimal();
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        CollectorConfig::from_json(&v.to_string()).unwrap_err().to_string()
    };
    let e = with(serde_json::json!({"delay": "soon"}));
    assert!(e.contains("`delay`: `soon` is not a duration"), "{e}");
    assert!(!e.contains("line 1"), "{e}");
    let e = with(serde_json::json!({"max_rows_per_query": "many"}));
    assert!(e.contains("`max_rows_per_query`: invalid type"), "{e}");
    let e = with(serde_json::json!({"ocsf": {"deprecated_classes": "yes"}}));
    assert!(e.contains("`ocsf.deprecated_classes`"), "{e}");
    let e = with(serde_json::json!({"tabels": []}));
    assert!(e.contains("unknown field `tabels`"), "{e}");
}

#[test]
fn a_cloud_sets_the_hosts_and_the_scope_and_explicit_endpoints_win() {
    let with = |extra: serde_json::Value| {
        let mut v = minimal();
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        CollectorConfig::from_json(&v.to_string())
    };
    let high = with(serde_json::json!({"cloud": "gcc-high"})).unwrap();
    assert_eq!(high.login_endpoint, "https://login.microsoftonline.us");
    assert_eq!(high.scope(), "https://graph.microsoft.us/.default");
    let dod = with(serde_json::json!({"cloud": "dod"})).unwrap();
    assert_eq!(
        dod.allowed_origins(),
        vec!["https://login.microsoftonline.us", "https://dod-graph.microsoft.us"]
    );
    let gcc = with(serde_json::json!({"cloud": "gcc"})).unwrap();
    assert_eq!(gcc.graph_endpoint, "https://graph.microsoft.com");
    let overridden = with(serde_json::json!({"cloud": "dod", "graph_endpoint": "http://127.0.0.1:9/"})).unwrap();
    assert_eq!(overridden.graph_endpoint, "http://127.0.0.1:9");
    assert_eq!(overridden.login_endpoint, "https://login.microsoftonline.us");
    for china in ["china", "21vianet"] {
        let e = with(serde_json::json!({"cloud": china})).unwrap_err().to_string();
        assert!(e.contains("runHuntingQuery is not offered"), "{e}");
    }
    let e = with(serde_json::json!({"cloud": "mars"})).unwrap_err().to_string();
    assert!(e.contains("unknown variant `mars`") && e.contains("gcc-high"), "{e}");
}

#[test]
fn unknown_keys_and_bad_values_name_the_key() {
    let mut v = minimal();
    v["tenant"] = "x".into();
    let e = CollectorConfig::from_json(&v.to_string()).unwrap_err().to_string();
    assert!(e.contains("unknown field `tenant`"), "{e}");

    let mut v = minimal();
    v["delay"] = "five minutes".into();
    let e = CollectorConfig::from_json(&v.to_string()).unwrap_err().to_string();
    assert!(e.contains("five minutes") && e.contains("5m"), "{e}");

    let mut v = minimal();
    v["tables"] = serde_json::json!(["DeviceProcessEvents", "NoSuchTable"]);
    let e = CollectorConfig::from_json(&v.to_string()).unwrap_err().to_string();
    assert!(e.contains("NoSuchTable"), "{e}");

    let mut v = minimal();
    v["tenant_id"] = "x' | evil".into();
    let e = CollectorConfig::from_json(&v.to_string()).unwrap_err().to_string();
    assert!(e.contains("tenant_id"), "{e}");
}

#[test]
fn union_tables_must_be_collected_event_tables_not_joined_ones() {
    use serde_json::json;
    let with = |tables: serde_json::Value, union: serde_json::Value| {
        let mut v = minimal();
        v["tables"] = tables;
        v["union_tables"] = union;
        CollectorConfig::from_json(&v.to_string()).map_err(|e| e.to_string())
    };
    let ok = with(
        json!(["UrlClickEvents", "IdentityLogonEvents", "DeviceProcessEvents"]),
        json!(["UrlClickEvents", "IdentityLogonEvents"]),
    );
    assert_eq!(ok.unwrap().union_tables, ["UrlClickEvents", "IdentityLogonEvents"]);
    for (tables, union, says) in [
        (json!(["UrlClickEvents"]), json!(["UrlClickEvents"]), "at least two"),
        (
            json!(["UrlClickEvents"]),
            json!(["UrlClickEvents", "IdentityLogonEvents"]),
            "`IdentityLogonEvents`, which is not collected",
        ),
        (
            json!(["UrlClickEvents", "DeviceInfo"]),
            json!(["UrlClickEvents", "DeviceInfo"]),
            "it is an entity table",
        ),
        (
            json!(["UrlClickEvents", "AlertInfo"]),
            json!(["UrlClickEvents", "AlertInfo"]),
            "joined with another table",
        ),
        (
            json!(["UrlClickEvents", "IdentityLogonEvents"]),
            json!(["UrlClickEvents", "UrlClickEvents"]),
            "twice",
        ),
    ] {
        let e = with(tables, union).unwrap_err();
        assert!(e.contains("union_tables") && e.contains(says), "{e}");
    }
}

/// A near-miss table name gets a suggestion; a name far from every
/// table gets none.
#[test]
fn a_misspelt_table_name_gets_a_suggestion() {
    for (given, near) in [
        ("DeviceProcesEvents", Some("DeviceProcessEvents")),
        ("deviceprocessevents", Some("DeviceProcessEvents")),
        ("EmailEvent", Some("EmailEvents")),
        ("SecurityEvent", None),
    ] {
        let mut v = minimal();
        v["tables"] = serde_json::json!([given]);
        let e = CollectorConfig::from_json(&v.to_string()).unwrap_err().to_string();
        match near {
            Some(near) => assert!(e.contains(&format!("(did you mean `{near}`?)")), "{given}: {e}"),
            None => assert!(!e.contains("did you mean"), "{given}: {e}"),
        }
    }
}

/// Only registry table names and timestamps the collector formats reach
/// KQL: a crafted value is refused before any query exists.
#[test]
fn a_crafted_value_cannot_change_the_query() {
    for crafted in [
        "DeviceProcessEvents | project AccountName",
        "DeviceProcessEvents; .drop table x",
        "union *",
        "DeviceProcessEvents\n| take 1",
        "deviceprocessevents",
    ] {
        let mut v = minimal();
        v["tables"] = serde_json::json!([crafted]);
        let e = CollectorConfig::from_json(&v.to_string()).unwrap_err().to_string();
        assert!(e.contains("does not map"), "{crafted}: {e}");
    }
    let mut v = minimal();
    v["start_time"] = "2025-01-01T00:00:00Z) | union (SecurityEvent".into();
    assert!(CollectorConfig::from_json(&v.to_string()).is_err());
    // What does reach a query is rebuilt from the parsed values.
    let q = crate::kql::window_query("DeviceProcessEvents", Ticks(0), Ticks(1), 5);
    assert!(!q.contains("union") && q.matches('|').count() == 3, "{q}");
}

#[test]
fn secret_never_prints() {
    let c = CollectorConfig::from_json(&minimal().to_string()).unwrap();
    assert!(!format!("{c:?}").contains("s3cr3t"));
}

#[test]
fn start_time_limits() {
    let now = Ticks::parse("2025-03-01T00:00:00Z").unwrap();
    let mut v = minimal();
    v["start_time"] = "2025-01-01T00:00:00Z".into();
    let c = CollectorConfig::from_json(&v.to_string()).unwrap();
    assert!(c.start_ticks(now).unwrap_err().to_string().contains("30 days"));
    let c = CollectorConfig::from_json(&minimal().to_string()).unwrap();
    assert_eq!(c.start_ticks(now).unwrap(), Ticks::parse("2025-02-28T00:00:00Z").unwrap());
}

#[test]
fn origin_strips_the_path() {
    assert_eq!(origin("http://127.0.0.1:8080/x/y"), "http://127.0.0.1:8080");
    assert_eq!(origin("https://graph.microsoft.us"), "https://graph.microsoft.us");
}
