//! The user's YAML configuration. The host owns a few keys (`state_dir`,
//! `log_level`); every other key belongs to the source component, which
//! receives them as a JSON object and rejects keys it does not know.
//!
//! `${VAR}` and `${VAR:-default}` in any string value are replaced with
//! environment variables, as in Vector; `$$` is a literal `$`. Values are
//! replaced after parsing, so a secret with YAML-special characters is safe.

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Keys the host reads itself.
pub const HOST_KEYS: &[&str] = &["state_dir", "log_level", "output", "metrics_address"];

/// A parsed configuration.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Directory for the checkpoint and the compiled-component cache.
    pub state_dir: PathBuf,
    /// Log level on stderr: error, warn, info, debug or trace.
    pub log_level: String,
    /// Where events are delivered.
    pub output: OutputConfig,
    /// Where to serve Prometheus metrics (`GET /metrics`), if anywhere.
    pub metrics_address: Option<String>,
    /// Everything else: the source component's configuration.
    pub source: Map<String, Value>,
}

pub fn default_state_dir() -> PathBuf {
    PathBuf::from("defender-ocsf-state")
}

pub fn default_log_level() -> String {
    "info".into()
}

/// Where events go.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum OutputConfig {
    /// NDJSON on stdout, for Vector's `exec` source.
    #[default]
    Stdout,
    /// NDJSON batches POSTed to Vector's `http_server` source (or Fluent
    /// Bit's `http` input); the checkpoint advances only on a 2xx answer.
    Http(HttpOutput),
}

/// Settings of the `http` output.
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpOutput {
    /// The receiver's URL, such as `http://127.0.0.1:8080/` for a Vector
    /// `http_server` source with acknowledgements.
    pub url: String,
    /// Extra request headers, such as `Authorization: Bearer ${TOKEN}`.
    /// Their values are never logged.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// `gzip` compresses each request body; `none` (the default) does not.
    #[serde(default)]
    pub compression: Compression,
    /// A PEM file of CA certificates to trust as well as the public roots
    /// (a private CA, or a TLS-inspecting proxy).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// How long to wait for an answer; Vector answers only once the batch
    /// is delivered, so allow for its sinks.
    #[serde(default = "default_http_timeout", with = "humantime_serde")]
    pub timeout: std::time::Duration,
}

impl std::fmt::Debug for HttpOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOutput")
            .field("url", &self.url)
            .field("headers", &self.headers.keys().map(|k| (k, "<redacted>")).collect::<Vec<_>>())
            .field("compression", &self.compression)
            .field("ca_file", &self.ca_file)
            .field("timeout", &self.timeout)
            .finish()
    }
}

pub fn default_http_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(120)
}

/// Request body compression.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    None,
    Gzip,
}

mod humantime_serde {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a duration ({e}); write it like `30s` or `2m`")))
    }
}

impl RunConfig {
    /// Reads a YAML file.
    pub fn from_file(path: &Path) -> Result<RunConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the configuration file {}", path.display()))?;
        RunConfig::from_yaml(&text, &|name| std::env::var(name).ok())
            .with_context(|| format!("in {}", path.display()))
    }

    /// Parses YAML text, looking environment variables up with `env`.
    pub fn from_yaml(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<RunConfig> {
        let value: Value = serde_yaml_ng::from_str(text).map_err(|e| anyhow!("the configuration is not valid YAML: {e}"))?;
        let Value::Object(mut map) = value else {
            bail!("the configuration must be a YAML mapping of keys to values");
        };
        for (key, value) in map.iter_mut() {
            interpolate_value(value, env).with_context(|| format!("in `{key}`"))?;
        }
        let state_dir = match map.remove("state_dir") {
            None => default_state_dir(),
            Some(Value::String(s)) if !s.is_empty() => PathBuf::from(s),
            Some(other) => bail!("`state_dir` must be a path, got {other}"),
        };
        let log_level = match map.remove("log_level") {
            None => default_log_level(),
            Some(Value::String(s)) if ["error", "warn", "info", "debug", "trace"].contains(&s.as_str()) => s,
            Some(other) => bail!("`log_level` must be one of error, warn, info, debug, trace; got {other}"),
        };
        let output = match map.remove("output") {
            None => OutputConfig::Stdout,
            Some(v) => serde_json::from_value(v).map_err(|e| {
                anyhow!("`output`: {e}; the types are `stdout` and `http` (with `url`, and optionally `headers`, `compression`, `ca_file`, `timeout`)")
            })?,
        };
        if let OutputConfig::Http(http) = &output {
            let scheme_ok = http.url.starts_with("https://") || http.url.starts_with("http://");
            if !scheme_ok {
                bail!("`output.url` must be an http:// or https:// URL, got `{}`", http.url);
            }
        }
        let metrics_address = match map.remove("metrics_address") {
            None => None,
            Some(Value::String(s)) if s.parse::<std::net::SocketAddr>().is_ok() => Some(s),
            Some(other) => bail!("`metrics_address` must be an address and port such as 127.0.0.1:9598, got {other}"),
        };
        Ok(RunConfig { state_dir, log_level, output, metrics_address, source: map })
    }

    /// The component's part, as the JSON text `init` takes.
    pub fn source_json(&self) -> String {
        Value::Object(self.source.clone()).to_string()
    }
}

fn interpolate_value(value: &mut Value, env: &dyn Fn(&str) -> Option<String>) -> Result<()> {
    match value {
        Value::String(s) => *s = interpolate(s, env)?,
        Value::Array(items) => items.iter_mut().try_for_each(|v| interpolate_value(v, env))?,
        Value::Object(map) => map.values_mut().try_for_each(|v| interpolate_value(v, env))?,
        _ => {}
    }
    Ok(())
}

/// Replaces `${VAR}`, `${VAR:-default}` and `$$` in `text`. A missing variable
/// without a default is an error that names the variable (never its value).
pub fn interpolate(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            let end = inner.find('}').ok_or_else(|| anyhow!("`${{` without a closing `}}`"))?;
            let (name, default) = match inner[..end].split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (&inner[..end], None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                bail!("`${{{name}}}` is not a valid environment variable reference");
            }
            match (env(name), default) {
                (Some(v), _) if !v.is_empty() || default.is_none() => out.push_str(&v),
                (_, Some(d)) => out.push_str(d),
                (None, None) => bail!("the environment variable {name} is not set"),
                (Some(_), None) => unreachable!("handled by the first arm"),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let OutputConfig::Http(http) = &c.output else { panic!("{:?}", c.output) };
        assert_eq!(http.compression, Compression::Gzip);
        assert_eq!(http.timeout, std::time::Duration::from_secs(120));
        assert!(!format!("{c:?}").contains("word"), "{c:?}");
        let e = RunConfig::from_yaml("output:\n  type: kafka\n", &env).unwrap_err();
        assert!(format!("{e:#}").contains("stdout") && format!("{e:#}").contains("http"), "{e:#}");
        let e = RunConfig::from_yaml("output:\n  type: http\n  url: http://x\n  retries: 3\n", &env).unwrap_err();
        assert!(format!("{e:#}").contains("retries"), "{e:#}");
    }

    #[test]
    fn rejects_non_mappings() {
        assert!(RunConfig::from_yaml("- a\n- b\n", &env).is_err());
        assert!(RunConfig::from_yaml("a: [\n", &env).is_err());
    }
}
