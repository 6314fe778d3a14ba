//! The input's properties: the keys of defender-ocsf's configuration file,
//! flat, as Fluent Bit passes them (strings, `${VAR}` already replaced by
//! Fluent Bit), plus `config_file` for what does not fit flat properties,
//! such as `tenants:`.
//!
//! Fluent Bit is given this list as the plugin's config map, so it refuses
//! a misspelled property itself, and `fluent-bit -i defender_ocsf -h` lists
//! them.

use crate::abi::{CONFIG_MAP_STR, ConfigMapEntry};
use anyhow::{Result, bail};
use serde_json::Value;
use std::ffi::{CString, c_char};
use std::path::PathBuf;

/// How a property's text becomes a configuration value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Taken as it is.
    Text,
    /// `A, B` or `[A, B]`: a list of names.
    List,
    /// A whole number.
    Integer,
    /// `on`/`off`, `true`/`false` or `yes`/`no`, as Fluent Bit's own.
    Bool,
}

/// The property that names a defender-ocsf YAML file to read first; the
/// other properties override its keys.
pub const CONFIG_FILE: &str = "config_file";

/// Every property: name, kind, description.
pub const PROPERTIES: &[(&str, Kind, &str)] = &[
    (
        CONFIG_FILE,
        Kind::Text,
        "a defender-ocsf YAML configuration read first (for tenants: and the like); the properties below override its keys",
    ),
    ("tenant_id", Kind::Text, "Directory (tenant) ID, a GUID or verified domain"),
    ("client_id", Kind::Text, "Application (client) ID"),
    ("client_secret", Kind::Text, "the client secret's Value; use ${ENV_VAR}"),
    ("client_secret_file", Kind::Text, "a file holding the client secret"),
    (
        "client_certificate_file",
        Kind::Text,
        "the PEM certificate of the app registration, instead of a secret",
    ),
    (
        "client_private_key_file",
        Kind::Text,
        "the certificate's private key, if not in the certificate file",
    ),
    ("cloud", Kind::Text, "global, gcc, gcc-high or dod"),
    ("login_endpoint", Kind::Text, "identity platform base URL, overriding the cloud's"),
    ("graph_endpoint", Kind::Text, "Microsoft Graph base URL, overriding the cloud's"),
    ("api_version", Kind::Text, "v1.0 or beta"),
    ("tables", Kind::List, "advanced-hunting tables to collect, comma-separated"),
    ("start_time", Kind::Text, "where a table without a checkpoint starts (RFC 3339)"),
    ("delay", Kind::Text, "how far behind real time collection stays, such as 5m"),
    (
        "overlap",
        Kind::Text,
        "how far behind the watermark each cycle looks again for late rows",
    ),
    ("entity_interval", Kind::Text, "how often the entity tables are collected"),
    ("poll_interval", Kind::Text, "the wait between collection cycles once caught up"),
    ("max_window", Kind::Text, "the longest time window one query covers"),
    ("max_rows_per_query", Kind::Integer, "rows per query"),
    ("graph_row_cap", Kind::Integer, "Graph's row limit per answer"),
    ("max_calls_per_minute", Kind::Integer, "the call budget per minute"),
    (
        "union_tables",
        Kind::List,
        "low-volume tables that share one query per window, comma-separated",
    ),
    (
        "ocsf.deprecated_classes",
        Kind::Bool,
        "emit the classes OCSF 1.8.0 deprecates, as other Defender feeds do",
    ),
    ("incidents", Kind::Bool, "also read Graph security incidents"),
    ("alerts", Kind::Bool, "also read Graph security alerts"),
    (
        "state_dir",
        Kind::Text,
        "where the checkpoint and the compiled-component cache live",
    ),
    ("log_level", Kind::Text, "error, warn, info, debug or trace"),
    (
        "log_file",
        Kind::Text,
        "write the collector's logs to this file instead of Fluent Bit's log",
    ),
    ("metrics_address", Kind::Text, "serve Prometheus metrics at http://ADDRESS/metrics"),
    ("proxy", Kind::Text, "the HTTP proxy for every request to Microsoft"),
    (
        "ca_file",
        Kind::Text,
        "extra trusted certificates for the Microsoft endpoints (PEM)",
    ),
];

/// Properties set, by their configuration names, as configuration values.
pub type Properties = Vec<(String, Value)>;

/// The configuration file to read, if any, and the other properties that
/// are set, as configuration values. `get` reads one property.
pub fn read(get: impl Fn(&str) -> Option<String>) -> Result<(Option<PathBuf>, Properties)> {
    let mut file = None;
    let mut values = Vec::new();
    for (name, kind, _) in PROPERTIES {
        let Some(text) = get(name) else { continue };
        if *name == CONFIG_FILE {
            file = Some(PathBuf::from(text));
            continue;
        }
        values.push((name.to_string(), convert(name, *kind, &text)?));
    }
    Ok((file, values))
}

fn convert(name: &str, kind: Kind, text: &str) -> Result<Value> {
    Ok(match kind {
        Kind::Text => Value::String(text.to_string()),
        Kind::List => {
            let inner = text.trim();
            let inner = inner.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(inner);
            Value::Array(
                inner
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(|t| Value::String(t.to_string()))
                    .collect(),
            )
        }
        Kind::Integer => match text.trim().parse::<u64>() {
            Ok(n) => Value::from(n),
            Err(_) => bail!("the property `{name}` must be a whole number, got `{text}`"),
        },
        Kind::Bool => match text.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "yes" => Value::Bool(true),
            "off" | "false" | "no" => Value::Bool(false),
            _ => bail!("the property `{name}` must be on or off (true/false, yes/no), got `{text}`"),
        },
    })
}

/// The config map handed to Fluent Bit at registration: every property as
/// a string, with no default and nothing written into a context. It lives
/// as long as the process.
pub fn config_map() -> *mut ConfigMapEntry {
    let leak = |s: &str| CString::new(s).expect("no NUL in a property").into_raw() as *const c_char;
    let mut entries: Vec<ConfigMapEntry> = PROPERTIES
        .iter()
        .map(|(name, _, desc)| ConfigMapEntry {
            kind: CONFIG_MAP_STR,
            name: leak(name),
            def_value: std::ptr::null(),
            flags: 0,
            set_property: 0,
            offset: 0,
            desc: leak(desc),
            private: [0; 7],
        })
        .collect();
    entries.push(ConfigMapEntry {
        kind: 0,
        name: std::ptr::null(),
        def_value: std::ptr::null(),
        flags: 0,
        set_property: 0,
        offset: 0,
        desc: std::ptr::null(),
        private: [0; 7],
    });
    Box::leak(entries.into_boxed_slice()).as_mut_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(props: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |key| props.iter().find(|(k, _)| *k == key).map(|(_, v)| v.to_string())
    }

    #[test]
    fn properties_become_typed_configuration_values() {
        let (file, values) = read(get(&[
            ("config_file", "/etc/defender-ocsf/tenants.yaml"),
            ("tables", "[DeviceProcessEvents, DeviceNetworkEvents]"),
            ("union_tables", "IdentityLogonEvents,UrlClickEvents"),
            ("max_rows_per_query", "5000"),
            ("ocsf.deprecated_classes", "Off"),
            ("incidents", "yes"),
            ("client_secret", "a$$b${not}~1"),
        ]))
        .unwrap();
        assert_eq!(file, Some(PathBuf::from("/etc/defender-ocsf/tenants.yaml")));
        let values: serde_json::Map<String, Value> = values.into_iter().collect();
        assert_eq!(values["tables"], serde_json::json!(["DeviceProcessEvents", "DeviceNetworkEvents"]));
        assert_eq!(values["union_tables"], serde_json::json!(["IdentityLogonEvents", "UrlClickEvents"]));
        assert_eq!(values["max_rows_per_query"], 5000);
        assert_eq!(values["ocsf.deprecated_classes"], false);
        assert_eq!(values["incidents"], true);
        assert_eq!(values["client_secret"], "a$$b${not}~1", "Fluent Bit interpolated it already");
        assert!(!values.contains_key("config_file"));
        assert!(!values.contains_key("tenant_id"), "unset properties are left to the defaults");
    }

    #[test]
    fn a_wrong_value_names_the_property() {
        let e = read(get(&[("max_rows_per_query", "lots")])).unwrap_err();
        assert!(e.to_string().contains("`max_rows_per_query` must be a whole number"), "{e}");
        let e = read(get(&[("alerts", "maybe")])).unwrap_err();
        assert!(e.to_string().contains("`alerts` must be on or off"), "{e}");
    }

    /// Every key of the README's configuration reference is a property,
    /// but for the ones Fluent Bit itself replaces (`output`) and those
    /// that need `config_file` (`tenants`, `shard`).
    #[test]
    fn every_configuration_key_is_a_property() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
        let section = readme.split("### Configuration reference").nth(1).unwrap();
        let keys: Vec<&str> = section
            .lines()
            .skip_while(|l| !l.starts_with("| key"))
            .skip(2)
            .take_while(|l| l.starts_with("| `"))
            .map(|l| l.trim_start_matches("| `").split('`').next().unwrap())
            .collect();
        assert!(keys.len() > 25, "{keys:?}");
        for key in keys {
            // Sections, given through `config_file`.
            if ["output", "tenants", "shard", "source"].contains(&key) {
                continue;
            }
            assert!(PROPERTIES.iter().any(|(name, ..)| *name == key), "`{key}` is not a property");
        }
    }

    #[test]
    fn the_config_map_ends_with_a_null_name() {
        let map = config_map();
        let entries = unsafe { std::slice::from_raw_parts(map, PROPERTIES.len() + 1) };
        for (entry, (name, ..)) in entries.iter().zip(PROPERTIES) {
            let text = unsafe { std::ffi::CStr::from_ptr(entry.name) }.to_str().unwrap();
            assert_eq!(text, *name);
        }
        assert!(entries[PROPERTIES.len()].name.is_null());
    }
}
