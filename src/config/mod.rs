//! The collector's configuration: the part of the user's YAML that the host
//! does not own, handed over as a JSON object in `init`.
//!
//! Every field has a doc comment and every default a named function, so that
//! the README's reference can be checked against this file.

mod cloud;

pub use cloud::{ApiVersion, Cloud, origin};

use crate::error::{Error, Result};
use crate::mapping;
use crate::time::Ticks;
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// Settings of the Defender XDR source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// Directory (tenant) ID of the Entra ID tenant, a GUID or a verified
    /// domain name.
    pub tenant_id: String,

    /// Application (client) ID of the app registration.
    pub client_id: String,

    /// The client secret's **value** (not its ID). Usually given as
    /// `${ENV_VAR}` in the YAML file. Either this or `client_assertion`.
    #[serde(default)]
    pub client_secret: Option<Secret>,

    /// `host`: authenticate with a client certificate that the host holds
    /// and signs with (the host sets this when its `client_certificate_file`
    /// is configured); the component never sees the key.
    #[serde(default)]
    pub client_assertion: Option<AssertionSigner>,

    /// The Microsoft cloud the tenant lives in: `global` (also for GCC),
    /// `gcc`, `gcc-high` or `dod`. It sets the login host, the Graph host and
    /// the token scope. China (21Vianet) is refused: runHuntingQuery is not
    /// offered there.
    #[serde(default = "default_cloud")]
    pub cloud: Cloud,

    /// The identity platform's base URL. Default: the cloud's.
    #[serde(default)]
    pub login_endpoint: String,

    /// Microsoft Graph's base URL. The token scope is `{graph_endpoint}/.default`.
    /// Default: the cloud's.
    #[serde(default)]
    pub graph_endpoint: String,

    /// Graph API version: `v1.0` or `beta`.
    #[serde(default = "default_api_version")]
    pub api_version: ApiVersion,

    /// Advanced-hunting tables to collect. Default: every table the collector
    /// maps, except those that need a licence most tenants lack (the Entra
    /// ID sign-in tables, CloudAppEvents, BehaviorInfo/BehaviorEntities,
    /// GraphApiAuditEvents, OAuthAppInfo, CloudAuditEvents/CloudProcessEvents): name them
    /// to collect them; `check` says which ones the tenant has.
    #[serde(default = "default_tables")]
    pub tables: Vec<String>,

    /// Where collection starts for a table that has no checkpoint yet
    /// (RFC 3339). Default: 24 hours before the first start.
    #[serde(default)]
    pub start_time: Option<String>,

    /// Collect only up to this time (RFC 3339): each table's windows stop
    /// there, and a cycle that reaches it is complete. The streaming source
    /// sets it for its Graph backfill, to the moment the stream began.
    /// Default: no end.
    #[serde(default)]
    pub end_time: Option<String>,

    /// How far behind real time collection stays, so that late rows have
    /// arrived in advanced hunting before their window is queried.
    #[serde(default = "default_delay", with = "humantime_serde")]
    pub delay: Duration,

    /// How far back each cycle looks again for rows that reached advanced
    /// hunting later than `delay`. Rows already emitted are recognised by
    /// their natural key and not repeated. `0s` turns the sweep off.
    #[serde(default = "default_overlap", with = "humantime_serde")]
    pub overlap: Duration,

    /// How often the entity tables (DeviceInfo, DeviceNetworkInfo,
    /// DeviceFileCertificateInfo) are collected. They are snapshots that
    /// Defender reports in partial rows about every 15 minutes; each
    /// collection covers one interval and emits the latest state of each
    /// device, adapter or file certificate in it.
    #[serde(default = "default_entity_interval", with = "humantime_serde")]
    pub entity_interval: Duration,

    /// How long to wait between collection cycles once caught up.
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,

    /// The largest time window one query covers. Smaller windows are used
    /// automatically when a window holds too many rows: windows are bounded
    /// by `max_rows_per_query`, and this caps how long a quiet table's
    /// window may grow (an entity table's stays within `entity_interval`).
    #[serde(default = "default_max_window", with = "humantime_serde")]
    pub max_window: Duration,

    /// The most rows one query may return (`take`). A window with more rows
    /// is split. Graph itself never returns more than 100,000.
    #[serde(default = "default_max_rows_per_query")]
    pub max_rows_per_query: u32,

    /// Graph's own limit on the rows of one answer, beyond which it
    /// truncates without saying so (100,000, documented). An answer that
    /// reaches it is treated as cut off. Lower it only to test, or if
    /// Microsoft documents a lower limit.
    #[serde(default = "default_graph_row_cap")]
    pub graph_row_cap: u32,

    /// Low-volume event tables that share one query per window, `union
    /// withsource=SourceTable A, B, ...`, to save calls. Each must also be
    /// in `tables`; entity tables and the alert and email tables that are
    /// joined with others cannot take part. Empty (the default): every
    /// table has its own query.
    #[serde(default)]
    pub union_tables: Vec<String>,

    /// Graph calls per minute for this tenant, shared by every table and
    /// stream. Graph allows about 45; the portal and custom detections use
    /// the same allowance.
    #[serde(default = "default_max_calls_per_minute")]
    pub max_calls_per_minute: u32,

    /// OCSF output options.
    #[serde(default)]
    pub ocsf: OcsfOptions,

    /// Also collect Graph security incidents (`GET /security/incidents`)
    /// as 2005 Incident Findings. Needs `SecurityIncident.Read.All`.
    #[serde(default)]
    pub incidents: bool,

    /// Also collect Graph security alerts (`GET /security/alerts_v2`) as
    /// 2004 Detection Findings. Needs `SecurityAlert.Read.All`.
    #[serde(default)]
    pub alerts: bool,
}

/// OCSF output options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OcsfOptions {
    /// Emit the classes OCSF 1.8.0 deprecates (4011, 4012, 5014), as other
    /// OCSF feeds of Defender do. `false` emits their successors (4009 with
    /// `email.files[]`/`email.urls[]`, 1010), and 201004 Windows Service
    /// Activity and 1008 Event Log Activity for service installs and
    /// cleared Security logs (docs/mapping.md, decision 8).
    #[serde(default = "default_deprecated_classes")]
    pub deprecated_classes: bool,
}

impl Default for OcsfOptions {
    fn default() -> Self {
        OcsfOptions {
            deprecated_classes: default_deprecated_classes(),
        }
    }
}

pub fn default_deprecated_classes() -> bool {
    true
}

pub fn default_cloud() -> Cloud {
    Cloud::Global
}
pub fn default_login_endpoint() -> String {
    Cloud::Global.login_endpoint().into()
}
pub fn default_graph_endpoint() -> String {
    Cloud::Global.graph_endpoint().into()
}
pub fn default_api_version() -> ApiVersion {
    ApiVersion::V1
}
/// Every table except those that need a licence most tenants lack
/// (`mapping::Table::licence`): those are collected when named.
pub fn default_tables() -> Vec<String> {
    mapping::TABLES
        .iter()
        .filter(|t| t.licence.is_none())
        .map(|t| t.name.to_string())
        .collect()
}
pub fn default_delay() -> Duration {
    Duration::from_secs(5 * 60)
}
pub fn default_max_calls_per_minute() -> u32 {
    40
}
pub fn default_overlap() -> Duration {
    Duration::from_secs(10 * 60)
}
pub fn default_entity_interval() -> Duration {
    Duration::from_secs(60 * 60)
}
pub fn default_poll_interval() -> Duration {
    Duration::from_secs(60)
}
/// A day: a quiet table costs one call a day; a busy one's windows are
/// bounded by `max_rows_per_query`, not by this.
pub fn default_max_window() -> Duration {
    Duration::from_secs(24 * 60 * 60)
}
pub fn default_max_rows_per_query() -> u32 {
    10_000
}
pub fn default_graph_row_cap() -> u32 {
    GRAPH_ROW_CAP
}
/// The documented ceiling of one runHuntingQuery response.
pub const GRAPH_ROW_CAP: u32 = 100_000;
/// Advanced hunting keeps 30 days of data.
pub const MAX_LOOKBACK: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Who signs client assertions.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AssertionSigner {
    /// The host, through the `credentials` interface.
    Host,
}

/// A secret that never prints.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

mod humantime_serde {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a duration ({e}); write it like `30s`, `5m` or `1h`")))
    }
}

impl CollectorConfig {
    /// Parses and checks the JSON the host hands over. Every message names
    /// the key to fix.
    pub fn from_json(json: &str) -> Result<CollectorConfig> {
        let mut deserializer = serde_json::Deserializer::from_str(json);
        let mut config: CollectorConfig = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            // The position in the host's JSON means nothing to the user; the
            // key does.
            let inner = e.inner().to_string();
            let message = inner.rsplit_once(" at line ").map_or(inner.as_str(), |(m, _)| m);
            match e.path().to_string().as_str() {
                "." => Error::Config(message.to_string()),
                path => Error::Config(format!("`{path}`: {message}")),
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&mut self) -> Result<()> {
        for (key, value) in [("tenant_id", &self.tenant_id), ("client_id", &self.client_id)] {
            if value.trim().is_empty() {
                return Err(Error::Config(format!(
                    "`{key}` is empty; copy it from the app registration's Overview page"
                )));
            }
            if !value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')) {
                return Err(Error::Config(format!(
                    "`{key}` must be a GUID (or, for tenant_id, a verified domain); it contains other characters"
                )));
            }
        }
        match (&self.client_secret, &self.client_assertion) {
            (Some(_), Some(_)) => {
                return Err(Error::Config(
                    "set either `client_secret` (or `client_secret_file`) or `client_certificate_file`, not both".into(),
                ));
            }
            (None, None) => {
                return Err(Error::Config(
                    "no credential: set `client_secret` (or `client_secret_file`), or `client_certificate_file` and \
                     `client_private_key_file` for a certificate"
                        .into(),
                ));
            }
            (Some(secret), None) if secret.0.trim().is_empty() => {
                return Err(Error::Config(
                    "`client_secret` is empty; if it comes from an environment variable, check that the variable is set".into(),
                ));
            }
            _ => {}
        }
        if self.cloud == Cloud::China {
            return Err(Error::Config(
                "`cloud: china` (21Vianet) is not supported: Microsoft Graph's runHuntingQuery is not offered in \
                 that cloud. Use Defender's streaming API there, if your tenant has it"
                    .into(),
            ));
        }
        if self.login_endpoint.trim().is_empty() {
            self.login_endpoint = self.cloud.login_endpoint().into();
        }
        if self.graph_endpoint.trim().is_empty() {
            self.graph_endpoint = self.cloud.graph_endpoint().into();
        }
        for (key, value) in [
            ("login_endpoint", &mut self.login_endpoint),
            ("graph_endpoint", &mut self.graph_endpoint),
        ] {
            while value.ends_with('/') {
                value.pop();
            }
            if !(value.starts_with("https://") || value.starts_with("http://")) {
                return Err(Error::Config(format!("`{key}` must be an https:// URL, got `{value}`")));
            }
        }
        if self.tables.is_empty() {
            return Err(Error::Config("`tables` is empty; leave it out to collect every table".into()));
        }
        for table in &self.tables {
            if mapping::table(table).is_none() {
                let known: Vec<&str> = mapping::TABLES.iter().map(|t| t.name).collect();
                let hint = nearest(table, &known).map_or(String::new(), |near| format!(" (did you mean `{near}`?)"));
                return Err(Error::Config(format!(
                    "`tables` names `{table}`, which this collector does not map{hint}; known tables: {}",
                    known.join(", ")
                )));
            }
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = self.tables.iter().find(|t| !seen.insert(t.as_str())) {
            return Err(Error::Config(format!("`tables` lists `{dup}` twice")));
        }
        self.validate_union()?;
        if self.graph_row_cap < 2 || self.graph_row_cap > GRAPH_ROW_CAP {
            return Err(Error::Config(format!(
                "`graph_row_cap` must be between 2 and {GRAPH_ROW_CAP}, got {}; leave it out to use Graph's documented limit",
                self.graph_row_cap
            )));
        }
        if self.max_rows_per_query == 0 || self.max_rows_per_query >= self.graph_row_cap {
            return Err(Error::Config(format!(
                "`max_rows_per_query` must be between 1 and {}, got {}",
                self.graph_row_cap - 1,
                self.max_rows_per_query
            )));
        }
        if self.max_window < Duration::from_secs(1) {
            return Err(Error::Config("`max_window` must be at least 1s".into()));
        }
        if self.max_calls_per_minute == 0 || self.max_calls_per_minute > 1000 {
            return Err(Error::Config(format!(
                "`max_calls_per_minute` must be between 1 and 1000, got {}",
                self.max_calls_per_minute
            )));
        }
        if self.overlap > Duration::from_secs(24 * 60 * 60) {
            return Err(Error::Config("`overlap` must be at most 24h".into()));
        }
        if self.entity_interval < Duration::from_secs(60) || self.entity_interval > Duration::from_secs(24 * 60 * 60) {
            return Err(Error::Config("`entity_interval` must be between 1m and 24h".into()));
        }
        if self.poll_interval < Duration::from_secs(1) {
            return Err(Error::Config("`poll_interval` must be at least 1s".into()));
        }
        if let Some(start) = &self.start_time {
            Ticks::parse(start).map_err(|e| Error::Config(format!("`start_time`: {e}; use RFC 3339, such as 2025-01-31T00:00:00Z")))?;
        }
        if let Some(end) = &self.end_time {
            let end =
                Ticks::parse(end).map_err(|e| Error::Config(format!("`end_time`: {e}; use RFC 3339, such as 2025-01-31T00:00:00Z")))?;
            if let Some(start) = self.start_time.as_deref().and_then(|s| Ticks::parse(s).ok())
                && start >= end
            {
                return Err(Error::Config("`end_time` must be after `start_time`".into()));
            }
        }
        Ok(())
    }

    /// `end_time`, if set (checked by `validate`).
    pub fn end_ticks(&self) -> Option<Ticks> {
        self.end_time.as_deref().and_then(|e| Ticks::parse(e).ok())
    }

    /// Where a table without a checkpoint starts, given the time of the
    /// first poll. Never more than 30 days back: advanced hunting keeps no more.
    pub fn start_ticks(&self, now: Ticks) -> Result<Ticks> {
        let oldest = now.saturating_sub(MAX_LOOKBACK.into());
        match &self.start_time {
            None => Ok(now.saturating_sub(Duration::from_secs(24 * 60 * 60).into())),
            Some(s) => {
                let t = Ticks::parse(s).map_err(Error::Config)?;
                if t < oldest {
                    return Err(Error::Config(format!(
                        "`start_time` {s} is more than 30 days back; advanced hunting keeps 30 days, so start at {} or later",
                        oldest.to_iso()
                    )));
                }
                Ok(t)
            }
        }
    }

    /// The token scope for the configured Graph host.
    pub fn scope(&self) -> String {
        format!("{}/.default", self.graph_endpoint)
    }

    /// `union_tables`: at least two distinct event tables, each collected,
    /// none joined with another table.
    fn validate_union(&self) -> Result<()> {
        if self.union_tables.is_empty() {
            return Ok(());
        }
        if self.union_tables.len() < 2 {
            return Err(Error::Config(format!(
                "`union_tables` needs at least two tables to share a query, got only `{}`; leave it out instead",
                self.union_tables[0]
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for name in &self.union_tables {
            if !seen.insert(name.as_str()) {
                return Err(Error::Config(format!("`union_tables` lists `{name}` twice")));
            }
            if !self.tables.contains(name) {
                return Err(Error::Config(format!(
                    "`union_tables` lists `{name}`, which is not collected: add it to `tables` or remove it here"
                )));
            }
            let joined = mapping::TABLES
                .iter()
                .any(|t| t.join.as_ref().is_some_and(|j| t.name == name || j.leader == name));
            if mapping::entity_key(name).is_some() || joined {
                return Err(Error::Config(format!(
                    "`union_tables` cannot include `{name}`: {}",
                    if joined {
                        "its rows are joined with another table's, which needs queries of its own"
                    } else {
                        "it is an entity table, collected once per `entity_interval`"
                    }
                )));
            }
        }
        Ok(())
    }

    /// The origins the component needs, for the host's allow-list.
    pub fn allowed_origins(&self) -> Vec<String> {
        let mut origins = vec![origin(&self.login_endpoint), origin(&self.graph_endpoint)];
        origins.dedup();
        origins
    }
}

/// The name in `known` nearest to `name`, ignoring case, if it is near
/// enough to be a typo.
fn nearest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (strsim::levenshtein(&name, &k.to_ascii_lowercase()), *k))
        .filter(|(d, k)| *d <= (k.len() / 4).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests;
