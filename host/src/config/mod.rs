//! The user's YAML configuration. The host owns a few keys (`state_dir`,
//! `log_level`); every other key belongs to the source component, which
//! receives them as a JSON object and rejects keys it does not know.
//!
//! `${VAR}` and `${VAR:-default}` in any string value are replaced with
//! environment variables, in Vector's syntax; `$$` is a literal `$`. Values are
//! replaced after parsing, so a secret with YAML-special characters is safe.

mod interpolate;

pub use interpolate::interpolate;

use crate::runtime::Description;
use anyhow::{Context, Result, anyhow, bail};
use interpolate::interpolate_map;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Keys the host reads itself.
pub const HOST_KEYS: &[&str] = &[
    "source",
    "tenants",
    "shard",
    "state_dir",
    "log_level",
    "log_file",
    "output",
    "metrics_address",
    "proxy",
    "ca_file",
    "client_certificate_file",
    "client_private_key_file",
];

/// The host's own credential settings: the client certificate it holds
/// and signs with for the component (`credentials`).
const CERTIFICATE_KEYS: &[&str] = &["client_certificate_file", "client_private_key_file"];

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
    /// Append logs to this file instead of writing them to stderr.
    pub log_file: Option<PathBuf>,
    /// How the component's requests reach Microsoft: `proxy` and `ca_file`.
    pub egress: crate::egress::EgressConfig,
    /// The client certificate and its key (`client_certificate_file`,
    /// `client_private_key_file`), read by the host, which signs for the
    /// component. Set by [`RunConfig::instances`].
    pub client_certificate: Option<CertificateFiles>,
    /// Everything else: the source component's configuration. Until
    /// [`RunConfig::instances`] applies the component's description, it
    /// holds the settings as written (`<secret>_file`, the certificate).
    pub source: Map<String, Value>,
    /// Several instances of the source (tenants), each with its own
    /// settings on top of the top level's, its checkpoint and its call
    /// budget, as written; empty for one instance configured at the top level.
    pub tenants: Vec<Map<String, Value>>,
    /// The name of this instance: the value of the setting the component
    /// names as its instance key. Set by [`RunConfig::instances`].
    pub instance: Option<String>,
    /// This instance's share of the tenants, when several instances split
    /// them.
    pub shard: Option<Shard>,
    /// Where the configuration was read from, to point errors at the line.
    pub origin: Option<Origin>,
    /// `source:`: read a stream (Event Hubs, Kafka) instead of polling
    /// Graph; the component maps each message.
    pub stream: Option<crate::kafka::settings::Settings>,
}

/// A configuration's text and where it came from (a file's path, or the
/// environment variable of `--config-env`).
#[derive(Clone)]
pub struct Origin {
    pub name: String,
    pub text: String,
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The text may hold a secret written inline.
        f.debug_struct("Origin").field("name", &self.name).finish_non_exhaustive()
    }
}

/// `shard: {index, count}`: this instance collects the tenants whose stable
/// hash modulo `count` is `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shard {
    /// This instance, from 0 (a StatefulSet pod's ordinal).
    pub index: u32,
    /// How many instances share the tenants.
    pub count: u32,
}

impl Shard {
    /// The shard that collects the instance (tenant) named `name`, out of
    /// `count`: the first eight bytes of the SHA-256 of the lower-cased
    /// name, modulo `count`. It depends on nothing but the name and the count.
    pub fn of(name: &str, count: u32) -> u32 {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(name.to_ascii_lowercase().as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        (u64::from_be_bytes(first) % u64::from(count.max(1))) as u32
    }

    pub fn takes(&self, name: &str) -> bool {
        Shard::of(name, self.count) == self.index
    }
}

pub fn default_state_dir() -> PathBuf {
    PathBuf::from("defender-ocsf-state")
}

pub fn default_log_level() -> String {
    "info".into()
}

/// Where the client certificate and its key are.
#[derive(Clone, Debug)]
pub struct CertificateFiles {
    pub certificate: PathBuf,
    /// `None`: the key is in the certificate file.
    pub key: Option<PathBuf>,
}

impl CertificateFiles {
    /// Reads and checks them.
    pub fn load(&self) -> Result<std::sync::Arc<crate::credentials::ClientCertificate>> {
        crate::credentials::ClientCertificate::load(&self.certificate, self.key.as_deref()).map(std::sync::Arc::new)
    }
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
    Http(crate::output::HttpOutput),
    /// The Forward protocol to Fluent Bit's or Fluentd's `in_forward`; the
    /// checkpoint advances only on the receiver's ack.
    Forward(crate::forward::ForwardOutput),
}

impl RunConfig {
    /// Reads the configuration from where the command line says: a file
    /// (`--config`), or an environment variable holding the whole YAML
    /// (`--config-env`, for pipeline files that set a child's environment),
    /// then applies `--set key=value` overrides (dotted keys reach into
    /// sections: `output.url=...`).
    pub fn load(file: Option<&Path>, env_var: Option<&str>, sets: &[String]) -> Result<RunConfig> {
        let env = |name: &str| std::env::var(name).ok();
        let (text, origin) = match (file, env_var) {
            (Some(path), None) => (
                std::fs::read_to_string(path).with_context(|| format!("reading the configuration file {}", path.display()))?,
                path.display().to_string(),
            ),
            (None, Some(var)) => (
                std::env::var(var).map_err(|_| anyhow!("--config-env {var}: the environment variable {var} is not set"))?,
                format!("the environment variable {var}"),
            ),
            (None, None) if !sets.is_empty() => (String::from("{}"), "--set".to_string()),
            (None, None) => bail!("say where the configuration is: --config FILE, --config-env VAR, or --set key=value"),
            (Some(_), Some(_)) => bail!("use either --config or --config-env, not both"),
        };
        let mut config = RunConfig::from_yaml_with_sets(&text, sets, &env).with_context(|| format!("in {origin}"))?;
        config.origin = Some(Origin { name: origin, text });
        Ok(config)
    }

    /// A message of the source component about its settings, made easier to
    /// act on: where the key it names stands in the configuration (line and
    /// column), and for an unknown key the nearest known one and the keys the
    /// host itself reads.
    pub fn explain(&self, message: &str) -> String {
        let mut out = String::new();
        let key = first_quoted(message);
        if let (Some(origin), Some(key)) = (&self.origin, key) {
            match locate(&origin.text, key) {
                Some((line, column)) => out.push_str(&format!("in {}, line {line} column {column}: ", origin.name)),
                None => out.push_str(&format!("in {}: ", origin.name)),
            }
        }
        out.push_str(message);
        if let (true, Some(key)) = (message.contains("unknown field `"), key) {
            let expected: Vec<&str> = message
                .split_once("expected")
                .map(|(_, list)| list.split('`').skip(1).step_by(2).collect())
                .unwrap_or_default();
            let known = expected.iter().copied().chain(HOST_KEYS.iter().copied());
            if let Some(near) = nearest(key, known) {
                out.push_str(&format!("; did you mean `{near}`?"));
            }
            out.push_str(&format!("; defender-ocsf itself also reads `{}`", HOST_KEYS.join("`, `")));
        }
        out
    }

    /// Parses YAML text, looking environment variables up with `env`.
    pub fn from_yaml(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<RunConfig> {
        RunConfig::from_yaml_with_sets(text, &[], env)
    }

    /// Parses YAML text with `key=value` overrides.
    pub fn from_yaml_with_sets(text: &str, sets: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<RunConfig> {
        let mut value = parse_yaml(text)?;
        for set in sets {
            apply_set(&mut value, set)?;
        }
        let Value::Object(mut map) = value else {
            bail!("the configuration must be a YAML mapping of keys to values");
        };
        interpolate_map(&mut map, env)?;
        RunConfig::from_map(map)
    }

    /// The configuration of a file (if any), with `overrides` on top: keys
    /// whose values are already final, such as a Fluent Bit input's
    /// properties, which Fluent Bit has interpolated itself. A dotted key
    /// (`ocsf.deprecated_classes`) reaches into a section. Only the file's
    /// text is interpolated, with `env`.
    pub fn from_file_and_overrides(
        file: Option<&Path>,
        overrides: Vec<(String, Value)>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<RunConfig> {
        let mut map = match file {
            None => Map::new(),
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading the configuration file {}", path.display()))?;
                let Value::Object(mut map) = parse_yaml(&text).with_context(|| format!("in {}", path.display()))? else {
                    bail!("{}: the configuration must be a YAML mapping of keys to values", path.display());
                };
                interpolate_map(&mut map, env).with_context(|| format!("in {}", path.display()))?;
                map
            }
        };
        for (key, value) in overrides {
            let mut parts: Vec<&str> = key.split('.').collect();
            let last = parts.pop().unwrap_or_default();
            let mut node = &mut map;
            for part in parts {
                let entry = node.entry(part.to_string()).or_insert_with(|| Value::Object(Map::new()));
                node = match entry {
                    Value::Object(m) => m,
                    _ => bail!("`{key}`: `{part}` is not a section"),
                };
            }
            node.insert(last.to_string(), value);
        }
        RunConfig::from_map(map)
    }

    fn from_map(mut map: Map<String, Value>) -> Result<RunConfig> {
        let stream = map.remove("source").map(crate::kafka::settings::Settings::from_value).transpose()?;
        if stream.is_some() && map.contains_key("tenants") {
            bail!("`source` reads one stream, and `tenants` is for polling Graph tenant by tenant: use one or the other");
        }
        let tenants = match map.remove("tenants") {
            None => Vec::new(),
            Some(Value::Array(list)) if !list.is_empty() => list,
            Some(_) => bail!("`tenants` must be a non-empty list of mappings, one per tenant, each with its own settings"),
        };
        let shard = match map.remove("shard") {
            None => None,
            Some(v) => {
                let shard: Shard = serde_json::from_value(v).map_err(|e| anyhow!("`shard`: {e}; write it as {{index: 0, count: 3}}"))?;
                if shard.count == 0 || shard.index >= shard.count {
                    bail!(
                        "`shard`: index must be below count (0 to {}), got index {} of {}",
                        shard.count.saturating_sub(1),
                        shard.index,
                        shard.count
                    );
                }
                Some(shard)
            }
        };
        let state_dir = match map.remove("state_dir") {
            None => default_state_dir(),
            Some(Value::String(s)) if !s.is_empty() => PathBuf::from(s),
            Some(other) => bail!("`state_dir` must be a path, got {other}"),
        };
        let log_level = match map.remove("log_level") {
            None => default_log_level(),
            Some(Value::String(s)) if ["error", "warn", "info", "debug", "trace"].contains(&s.as_str()) => s,
            Some(other) => {
                bail!("`log_level` must be one of error, warn, info, debug, trace; got {other}")
            }
        };
        let output = match map.remove("output") {
            None => OutputConfig::Stdout,
            Some(v) => serde_json::from_value(v).map_err(|e| {
                anyhow!("`output`: {e}; the types are `stdout`, `http` (with `url`, and optionally `headers`, `compression`, `ca_file`, `timeout`) and `forward` (with `address`, and optionally `tag`, `shared_key`, `self_hostname`, `timeout`)")
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
        let log_file = match map.remove("log_file") {
            None => None,
            Some(Value::String(s)) if !s.is_empty() => Some(PathBuf::from(s)),
            Some(other) => bail!("`log_file` must be a path, got {other}"),
        };
        let proxy = match map.remove("proxy") {
            None => None,
            Some(Value::String(s)) if s.starts_with("http://") || s.starts_with("https://") => Some(s),
            Some(Value::String(s)) => bail!(
                "`proxy` must be an http:// or https:// URL such as http://proxy.example:3128, got `{}`",
                crate::egress::redact_userinfo(&s)
            ),
            Some(_) => bail!("`proxy` must be a URL such as http://proxy.example:3128"),
        };
        let ca_file = match map.remove("ca_file") {
            None => None,
            Some(Value::String(s)) if !s.is_empty() => Some(PathBuf::from(s)),
            Some(other) => bail!("`ca_file` must be the path of a PEM certificate bundle, got {other}"),
        };
        let tenants = tenants
            .into_iter()
            .enumerate()
            .map(|(i, entry)| {
                let Value::Object(own) = entry else {
                    bail!("`tenants[{i}]` must be a mapping of the tenant's own settings");
                };
                if let Some(key) = own
                    .keys()
                    .find(|k| HOST_KEYS.contains(&k.as_str()) && !CERTIFICATE_KEYS.contains(&k.as_str()))
                {
                    bail!("`tenants[{i}].{key}` is a host setting, shared by all tenants: set it at the top level");
                }
                Ok(own)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RunConfig {
            tenants,
            instance: None,
            shard,
            state_dir,
            log_level,
            output,
            metrics_address,
            log_file,
            egress: crate::egress::EgressConfig { proxy, ca_file },
            client_certificate: None,
            source: map,
            origin: None,
            stream,
        })
    }

    /// A configuration built in code (the demo, benchmarks): stdout output,
    /// `warn` logs, the given state directory and component settings, and
    /// the defaults for everything else.
    pub fn for_source(state_dir: PathBuf, source: Map<String, Value>) -> RunConfig {
        RunConfig {
            state_dir,
            log_level: "warn".into(),
            output: OutputConfig::Stdout,
            metrics_address: None,
            log_file: None,
            egress: crate::egress::EgressConfig::default(),
            client_certificate: None,
            tenants: Vec::new(),
            instance: None,
            shard: None,
            source,
            origin: None,
            stream: None,
        }
    }

    /// One configuration per instance of the source this process collects,
    /// with the component's `description` applied: secrets read from their
    /// files, the host's certificate taken and the component told to ask
    /// for signatures. With a `tenants:` list, one per entry (its settings
    /// on top of the top level's, its state under `state_dir/<instance>`),
    /// less those another shard takes.
    pub fn instances(&self, description: &Description) -> Result<Vec<RunConfig>> {
        let instance_key = description.instance_key.as_deref();
        let name_of = |source: &Map<String, Value>| instance_key.and_then(|k| source.get(k)).and_then(Value::as_str).map(str::to_string);
        if self.tenants.is_empty() {
            let mut one = self.clone();
            one.client_certificate = take_credentials(&mut one.source, description)?;
            one.instance = name_of(&one.source);
            if let Some(shard) = self.shard {
                if instance_key.is_none() {
                    bail!("`shard` splits the instances of a source, and this component names no setting for an instance: remove `shard`");
                }
                if !shard.takes(one.instance.as_deref().unwrap_or("")) {
                    return Ok(Vec::new());
                }
            }
            return Ok(vec![one]);
        }
        let Some(key) = instance_key else {
            bail!(
                "`tenants` lists instances of the source, and this component names no setting for an instance (its contract or its description has none): configure one at the top level"
            );
        };
        // A tenant that sets any part of a credential replaces the top
        // level's whole credential.
        let credential: Vec<String> = description
            .credential_keys
            .iter()
            .cloned()
            .chain(description.secret_keys.iter().map(|k| format!("{k}_file")))
            .chain(CERTIFICATE_KEYS.iter().map(|k| k.to_string()))
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        let mut instances = Vec::new();
        for (i, own) in self.tenants.iter().enumerate() {
            let mut source = self.source.clone();
            if own.keys().any(|k| credential.contains(k)) {
                for k in &credential {
                    source.remove(k);
                }
            }
            source.extend(own.clone());
            let client_certificate = take_credentials(&mut source, description).with_context(|| format!("in `tenants[{i}]`"))?;
            let id = match source.get(key) {
                Some(Value::String(id)) if is_path_safe(id) => id.clone(),
                Some(Value::String(id)) => {
                    bail!("`tenants[{i}].{key}` `{id}` names a directory, so it must be letters, digits, `-`, `.` or `_`")
                }
                _ => bail!("`tenants[{i}]` has no `{key}`"),
            };
            if !seen.insert(id.to_ascii_lowercase()) {
                bail!("`tenants` lists the tenant `{id}` twice");
            }
            if self.shard.is_some_and(|s| !s.takes(&id)) {
                continue;
            }
            instances.push(RunConfig {
                state_dir: self.state_dir.join(&id),
                source,
                client_certificate,
                instance: Some(id),
                tenants: Vec::new(),
                shard: None,
                ..self.clone()
            });
        }
        Ok(instances)
    }

    /// The instance this configuration collects (a tenant), for logs and
    /// labels; empty when the component has none.
    pub fn instance_name(&self) -> &str {
        self.instance.as_deref().unwrap_or("")
    }

    /// The component's part, as the JSON text `init` takes.
    pub fn source_json(&self) -> String {
        Value::Object(self.source.clone()).to_string()
    }
}

/// The options the component's `convert` takes from `source`: the settings
/// its description names in `convert-options` (dotted paths), each under its
/// last segment, as they are written.
pub fn convert_options(source: &Map<String, Value>, keys: &[String]) -> Map<String, Value> {
    let mut options = Map::new();
    for key in keys {
        let (first, rest) = key.split_once('.').unwrap_or((key, ""));
        let mut value = source.get(first);
        for part in rest.split('.').filter(|p| !p.is_empty()) {
            value = value.and_then(|v| v.get(part));
        }
        if let Some(value) = value {
            let name = key.rsplit('.').next().unwrap_or(key);
            options.insert(name.to_string(), value.clone());
        }
    }
    options
}

/// Reads each secret's `<key>_file` into `<key>`, and turns
/// `client_certificate_file` into the files the host signs with (the
/// component is told so by the setting its description names).
fn take_credentials(map: &mut Map<String, Value>, description: &Description) -> Result<Option<CertificateFiles>> {
    // A secret in a file (a mounted Kubernetes secret, say): the host
    // reads it, so the component never needs file access.
    for key in &description.secret_keys {
        let file = format!("{key}_file");
        if let Some(v) = map.remove(&file) {
            let Value::String(path) = v else { bail!("`{file}` must be a path") };
            if map.contains_key(key) {
                bail!("set either `{key}` or `{file}`, not both");
            }
            let secret = std::fs::read_to_string(&path).map_err(|e| anyhow!("`{file}`: cannot read {path}: {e}"))?;
            map.insert(key.clone(), Value::String(secret.trim_end_matches(['\r', '\n']).to_string()));
        }
    }
    // A client certificate: the host keeps the key and signs for the
    // component, which is only told to ask.
    let path_of = |map: &mut Map<String, Value>, key: &str| -> Result<Option<PathBuf>> {
        match map.remove(key) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(PathBuf::from(s))),
            Some(_) => bail!("`{key}` must be the path of a PEM file"),
        }
    };
    let certificate = path_of(map, "client_certificate_file")?;
    let key = path_of(map, "client_private_key_file")?;
    let client_certificate = match (certificate, key) {
        (None, None) => None,
        (None, Some(_)) => bail!("`client_private_key_file` needs `client_certificate_file`, the certificate it belongs to"),
        (Some(certificate), key) => {
            let Some((setting, value)) = &description.host_signer else {
                bail!(
                    "`client_certificate_file`: this component cannot have the host sign for it (it names no setting for that); use the credential it takes"
                );
            };
            if let Some(secret) = description.secret_keys.iter().find(|k| map.contains_key(*k)) {
                bail!("set either `{secret}` (or `{secret}_file`) or `client_certificate_file`, not both");
            }
            if map.contains_key(setting) {
                bail!("`{setting}` is set by the host; remove it and keep `client_certificate_file`");
            }
            map.insert(setting.clone(), Value::String(value.clone()));
            Some(CertificateFiles { certificate, key })
        }
    };
    Ok(client_certificate)
}

fn is_path_safe(id: &str) -> bool {
    !id.is_empty() && id != "." && id != ".." && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

/// The first word between backticks in `message`.
fn first_quoted(message: &str) -> Option<&str> {
    message.split('`').nth(1).filter(|k| !k.is_empty() && !k.contains(' '))
}

/// Line and column (from 1) of `key` in YAML `text`: a top-level key at the
/// start of a line, or the last part of a dotted key inside its section.
fn locate(text: &str, key: &str) -> Option<(usize, usize)> {
    let mut parts = key.split('.');
    let top = parts.next()?;
    let lines: Vec<&str> = text.lines().collect();
    let mut at = lines.iter().position(|l| l.starts_with(&format!("{top}:")))?;
    let mut column = 1;
    for part in parts {
        let inner = lines[at + 1..]
            .iter()
            .take_while(|l| l.starts_with(' ') || l.trim().is_empty())
            .position(|l| l.trim_start().starts_with(&format!("{part}:")));
        match inner {
            Some(offset) => {
                at += 1 + offset;
                column = lines[at].len() - lines[at].trim_start().len() + 1;
            }
            None => {
                // `ocsf: {deprecated_classes: x}`: the section's line.
                column = lines[at].find(part).map_or(column, |c| c + 1);
            }
        }
    }
    Some((at + 1, column))
}

/// The known key nearest to `key` by edit distance, if it is near enough to
/// be a typo.
fn nearest<'a>(key: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    known
        .map(|k| (strsim::levenshtein(key, k), k))
        .filter(|(d, k)| *d > 0 && *d <= (k.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// YAML text as a JSON value; an empty document is an empty mapping.
fn parse_yaml(text: &str) -> Result<Value> {
    let value: Value = serde_yaml_ng::from_str(text).map_err(|e| anyhow!("the configuration is not valid YAML: {e}"))?;
    Ok(match value {
        Value::Null => Value::Object(Map::new()),
        other => other,
    })
}

/// Applies one `key=value` (dotted keys for sections; the value is read as
/// YAML, so `tables=[A, B]` and `incidents=true` work).
fn apply_set(config: &mut Value, set: &str) -> Result<()> {
    let (key, raw) = set.split_once('=').ok_or_else(|| anyhow!("--set `{set}`: write it as key=value"))?;
    let value: Value = serde_yaml_ng::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
    let mut node = config;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            bail!("--set `{set}`: empty key");
        }
        let map = match node {
            Value::Object(m) => m,
            _ => bail!("--set `{set}`: `{}` is not a section", parts[..i].join(".")),
        };
        if i + 1 == parts.len() {
            map.insert(part.to_string(), value);
            return Ok(());
        }
        node = map.entry(part.to_string()).or_insert_with(|| Value::Object(Map::new()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
