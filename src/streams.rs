//! The optional security-API streams: Graph incidents and alerts, read with
//! a `lastUpdateDateTime` cursor so that every update is emitted.
//!
//! A pass asks for everything updated at or after the cursor and follows
//! `@odata.nextLink` page by page (one page per poll). Graph does not promise
//! an order, so the cursor moves only when the pass is complete: to the
//! newest `lastUpdateDateTime` seen, remembering the ids seen at exactly that
//! time, because the next pass (`ge`) returns them again and they must not be
//! emitted twice. An object updated again has a newer time and is emitted as
//! an update.

use crate::error::Result;
use crate::graph::{GraphClient, QueryError};
use crate::http::HttpClient;
use crate::mapping::Context;
use crate::mapping::graph_security::{Kind, map_alert, map_incident};
use crate::planner::StreamState;
use crate::telemetry;
use crate::time::Ticks;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// Objects per page; small pages keep Graph's `$expand=alerts` reliable.
const PAGE_SIZE: u32 = 50;

pub struct Stream {
    pub kind: Kind,
    /// The committed position: saved in the checkpoint.
    pub state: StreamState,
    /// A pass that has started but not finished.
    pass: Option<Pass>,
    /// Whether this stream still has to run in the current cycle.
    pub due: bool,
}

struct Pass {
    next: String,
    newest: Option<(Ticks, String)>,
    at_newest: BTreeSet<String>,
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    value: Vec<Map<String, Value>>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
}

/// `%`-encodes a query value (OData `$filter` has spaces and colons).
fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl Stream {
    /// The collection's path under `/{version}/security/`.
    pub fn path(&self) -> &'static str {
        match self.kind {
            Kind::Incidents => "incidents",
            Kind::Alerts => "alerts_v2",
        }
    }

    /// The application permission the collection needs.
    pub fn permission(&self) -> &'static str {
        match self.kind {
            Kind::Incidents => "SecurityIncident.Read.All",
            Kind::Alerts => "SecurityAlert.Read.All",
        }
    }

    pub fn new(kind: Kind, state: StreamState) -> Stream {
        Stream {
            kind,
            state,
            pass: None,
            due: false,
        }
    }

    fn first_url(&self, base: &str, start: Ticks) -> String {
        let since = self.state.cursor.clone().unwrap_or_else(|| start.to_iso());
        let mut url = format!(
            "{base}/security/{}?$filter={}&$top={PAGE_SIZE}",
            self.path(),
            encode(&format!("lastUpdateDateTime ge {since}"))
        );
        if self.kind == Kind::Incidents {
            url.push_str("&$expand=alerts");
        }
        url
    }

    /// Fetches the next page and returns its events as NDJSON with their count.
    /// Marks the stream done for this cycle when the pass is complete.
    pub fn poll_page(
        &mut self,
        http: &mut dyn HttpClient,
        graph: &mut GraphClient,
        ctx: &Context,
        now: Ticks,
        start: Ticks,
    ) -> Result<(Vec<u8>, u32)> {
        let url = match &self.pass {
            Some(p) => p.next.clone(),
            None => self.first_url(graph.base(), start),
        };
        let response = match graph.get(http, now.0 / crate::time::TICKS_PER_SECOND, &url, self.permission()) {
            Ok(r) => r,
            Err(QueryError::Other(e)) => return Err(e),
            Err(QueryError::TooLarge(m)) | Err(QueryError::TableUnavailable(m)) => {
                return Err(crate::error::Error::Transient(format!("Graph {}: {m}", self.path())));
            }
        };
        let page: Page = serde_json::from_slice(&response.body)
            .map_err(|e| crate::error::Error::Transient(format!("Graph returned a {} page that is not valid JSON ({e})", self.path())))?;
        let mut pass = self.pass.take().unwrap_or(Pass {
            next: String::new(),
            newest: None,
            at_newest: BTreeSet::new(),
        });
        let mut events = Vec::new();
        let mut count = 0u32;
        for obj in page.value {
            let id = obj
                .get("id")
                .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
                .unwrap_or_default();
            let updated_text = obj.get("lastUpdateDateTime").and_then(Value::as_str).unwrap_or("").to_string();
            let updated = Ticks::parse(&updated_text).ok();
            let cursor = self.state.cursor.as_deref().and_then(|c| Ticks::parse(c).ok());
            if updated.is_some() && updated == cursor && self.state.seen.contains(&id) {
                continue; // emitted by the previous pass, unchanged since
            }
            if let Some(t) = updated {
                match &pass.newest {
                    Some((n, _)) if t < *n => {}
                    Some((n, _)) if t == *n => {
                        pass.at_newest.insert(id.clone());
                    }
                    _ => {
                        pass.newest = Some((t, updated_text.clone()));
                        pass.at_newest = BTreeSet::from([id.clone()]);
                    }
                }
            }
            let mapped = match self.kind {
                Kind::Incidents => map_incident(obj, ctx),
                Kind::Alerts => map_alert(obj, ctx),
            };
            match mapped {
                Ok(event) => {
                    serde_json::to_writer(&mut events, &event).expect("a JSON value serialises");
                    events.push(b'\n');
                    count += 1;
                }
                Err(e) => {
                    telemetry::counter("rows_unmappable_total", &[("table", self.path())], 1);
                    telemetry::error(&e.to_string(), &[("table", self.path())]);
                }
            }
        }
        let class = if self.kind == Kind::Incidents { "2005" } else { "2004" };
        telemetry::counter(
            "events_emitted_total",
            &[("table", self.path()), ("class_uid", class)],
            u64::from(count),
        );
        match page.next_link {
            Some(next) => {
                pass.next = next;
                self.pass = Some(pass);
            }
            None => {
                // The pass is complete: commit the newest time and its ids.
                if let Some((t, text)) = pass.newest {
                    let old = self.state.cursor.as_deref().and_then(|c| Ticks::parse(c).ok());
                    if old == Some(t) {
                        self.state.seen.extend(pass.at_newest);
                    } else {
                        self.state.cursor = Some(text);
                        self.state.seen = pass.at_newest;
                    }
                }
                self.due = false;
            }
        }
        Ok((events, count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CollectorConfig;
    use crate::http::fake::Scripted;

    const TOKEN: &str = r#"{"token_type":"Bearer","expires_in":3599,"access_token":"t"}"#;

    fn graph() -> GraphClient {
        GraphClient::new(
            &CollectorConfig::from_json(r#"{"tenant_id":"t","client_id":"c","client_secret":"s","graph_endpoint":"http://127.0.0.1:9"}"#)
                .unwrap(),
            crate::capabilities::Capabilities::without_certificate(),
        )
    }

    #[test]
    fn pages_then_commits_the_cursor_and_skips_what_it_saw() {
        let mut http = Scripted::default()
            .reply(200, TOKEN)
            .reply(200, r#"{"value":[{"id":"1","lastUpdateDateTime":"2025-01-01T00:00:01Z","createdDateTime":"2025-01-01T00:00:00Z"}],"@odata.nextLink":"http://127.0.0.1:9/v1.0/security/incidents?$skiptoken=1"}"#)
            .reply(200, r#"{"value":[{"id":"2","lastUpdateDateTime":"2025-01-01T00:00:02Z"},{"id":"3","lastUpdateDateTime":"2025-01-01T00:00:02Z"}]}"#)
            .reply(200, r#"{"value":[{"id":"2","lastUpdateDateTime":"2025-01-01T00:00:02Z"},{"id":"3","lastUpdateDateTime":"2025-01-01T00:00:02Z"},{"id":"1","lastUpdateDateTime":"2025-01-01T00:00:05Z"}]}"#);
        let mut graph = graph();
        let mut s = Stream::new(Kind::Incidents, StreamState::default());
        s.due = true;
        let ctx = Context::default();
        let start = Ticks::parse("2025-01-01T00:00:00Z").unwrap();
        let (_, n) = s.poll_page(&mut http, &mut graph, &ctx, start, start).unwrap();
        assert_eq!(n, 1);
        assert!(s.due && s.state.cursor.is_none(), "the cursor moves only when the pass ends");
        let (_, n) = s.poll_page(&mut http, &mut graph, &ctx, start, start).unwrap();
        assert_eq!(n, 2);
        assert!(!s.due);
        assert_eq!(s.state.cursor.as_deref(), Some("2025-01-01T00:00:02Z"));
        assert_eq!(s.state.seen, BTreeSet::from(["2".to_string(), "3".to_string()]));
        let first = &http.sent[1].url;
        assert!(
            first.contains("$filter=lastUpdateDateTime%20ge%202025-01-01T00%3A00%3A00.0000000Z") && first.contains("$expand=alerts"),
            "{first}"
        );
        assert_eq!(http.sent[2].url, "http://127.0.0.1:9/v1.0/security/incidents?$skiptoken=1");

        // The next pass returns 2 and 3 again (ge) and an update of 1.
        s.due = true;
        let (events, n) = s.poll_page(&mut http, &mut graph, &ctx, start, start).unwrap();
        assert_eq!(n, 1, "only the update is new");
        assert!(String::from_utf8(events).unwrap().contains("\"original_event_uid\":\"1\""));
        assert_eq!(s.state.cursor.as_deref(), Some("2025-01-01T00:00:05Z"));
    }
}
