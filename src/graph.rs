//! Microsoft Graph `POST /security/runHuntingQuery`: the request, the
//! response (whatever the casing of its keys), and what each error means.

use crate::answer::{HuntingResult, parse_response};
use crate::auth::TokenSource;
use crate::budget::Budget;
use crate::capabilities::Capabilities;
use crate::config::{ApiVersion, CollectorConfig};
use crate::error::Error;
use crate::http::{HttpClient, Method, Request, Response};
use crate::telemetry;
use crate::time::{TICKS_PER_SECOND, Ticks};
use serde::Deserialize;

/// Why a query failed.
#[derive(Debug)]
pub enum QueryError {
    /// The window holds more than one response may carry (row cap, 50 MB,
    /// timeout or resource limits): split it.
    TooLarge(String),
    /// The table does not resolve: not licensed, or not in this tenant.
    TableUnavailable(String),
    /// Anything else.
    Other(Error),
}

impl From<Error> for QueryError {
    fn from(e: Error) -> Self {
        QueryError::Other(e)
    }
}

/// Runs hunting queries with an app-only token.
pub struct GraphClient {
    url: String,
    tokens: TokenSource,
    budget: Budget,
    /// The host's monotonic clock, in milliseconds.
    monotonic_ms: fn() -> u64,
}

impl GraphClient {
    pub fn new(config: &CollectorConfig, host: Capabilities) -> GraphClient {
        GraphClient {
            url: query_url(&config.graph_endpoint, config.api_version),
            tokens: TokenSource::new(config, host.signer),
            budget: Budget::new(config.max_calls_per_minute, (host.monotonic_ms)()),
            monotonic_ms: host.monotonic_ms,
        }
    }

    /// Runs `query` over `timespan`.
    pub fn run(&mut self, http: &mut dyn HttpClient, now_secs: i64, query: &str, timespan: &str) -> Result<HuntingResult, QueryError> {
        let body = serde_json::to_vec(&serde_json::json!({ "Query": query, "Timespan": timespan }))
            .map_err(|e| Error::Fatal(format!("could not encode the query: {e}")))?;
        let url = self.url.clone();
        let response = self.send(http, now_secs, Method::Post, &url, body, HUNTING_PERMISSION)?;
        Ok(parse_response(response.body)?)
    }

    /// GETs a Graph URL (a security API collection or its next page).
    pub fn get(&mut self, http: &mut dyn HttpClient, now_secs: i64, url: &str, permission: &str) -> Result<Response, QueryError> {
        self.send(http, now_secs, Method::Get, url, Vec::new(), permission)
    }

    /// Sends with a bearer token. A 401 is answered by fetching a new token
    /// and trying once more.
    fn send(
        &mut self,
        http: &mut dyn HttpClient,
        now_secs: i64,
        method: Method,
        url: &str,
        body: Vec<u8>,
        permission: &str,
    ) -> Result<Response, QueryError> {
        for attempt in 0..2 {
            let token = self.tokens.token(http, now_secs)?;
            let wait = self.budget.take((self.monotonic_ms)());
            if !wait.is_zero() {
                telemetry::counter("budget_waits_total", &[], 1);
                telemetry::debug("call budget spent; waiting", &[("wait_ms", &wait.as_millis().to_string())]);
                std::thread::sleep(wait);
            }
            let mut headers = vec![
                ("authorization".to_string(), format!("Bearer {token}")),
                ("accept".to_string(), "application/json".to_string()),
            ];
            if method == Method::Post {
                headers.push(("content-type".into(), "application/json; charset=utf-8".into()));
            }
            let response = http
                .send(Request {
                    method,
                    url: url.to_string(),
                    headers,
                    body: body.clone(),
                })
                .map_err(|e| e.into_error("Graph request failed"))?;
            telemetry::counter("graph_requests_total", &[("status", &response.status.to_string())], 1);
            if response.status == 200 {
                return Ok(response);
            }
            if response.status == 401 && attempt == 0 && !is_permission_body(&response) {
                self.tokens.invalidate();
                continue;
            }
            return Err(classify_failure(&response, permission, Ticks(now_secs * TICKS_PER_SECOND)));
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// Gets a token (for `check`).
    pub fn check_token(&mut self, http: &mut dyn HttpClient, now_secs: i64) -> Result<(), Error> {
        self.tokens.token(http, now_secs).map(|_| ())
    }

    /// `{graph}/{version}` for building other URLs.
    pub fn base(&self) -> &str {
        self.url.trim_end_matches("/security/runHuntingQuery")
    }
}

/// The permission runHuntingQuery needs.
pub const HUNTING_PERMISSION: &str = "ThreatHunting.Read.All";

pub fn query_url(graph_endpoint: &str, version: ApiVersion) -> String {
    format!("{graph_endpoint}/{}/security/runHuntingQuery", version.path())
}

#[derive(Deserialize, Default)]
struct GraphErrorBody {
    #[serde(default)]
    error: GraphErrorInner,
}

#[derive(Deserialize, Default)]
struct GraphErrorInner {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

fn error_body(response: &Response) -> GraphErrorInner {
    serde_json::from_slice::<GraphErrorBody>(&response.body)
        .map(|b| b.error)
        .unwrap_or_default()
}

/// A 401 whose body says the token lacks the permission (not that it expired).
fn is_permission_body(response: &Response) -> bool {
    let e = error_body(response);
    e.code == "AF10001" || e.message.contains("does not include the expected permission")
}

fn permission_advice(permission: &str) -> String {
    format!(
        "grant the Microsoft Graph *Application* permission {permission} to the app registration (API permissions > Add a permission > Microsoft Graph > Application permissions), then click \"Grant admin consent\"; a Delegated permission does not work for this collector"
    )
}

/// Turns a non-200 Graph response into an error that says what to do.
pub fn classify_failure(response: &Response, permission: &str, now: Ticks) -> QueryError {
    let e = error_body(response);
    let message = if e.message.is_empty() { response.text() } else { e.message.clone() };
    let message: String = message.chars().take(500).collect();
    let lower = message.to_ascii_lowercase();
    if lower.contains("exceeded processing resources") {
        let retry_after_ms = cpu_quota_pause_ms(&message, now);
        return QueryError::Other(Error::Throttled {
            retry_after_ms,
            message: format!(
                "the tenant's advanced-hunting CPU quota is used up; collection pauses for {} s until the quota's next 15-minute cycle. The portal and custom detections share this quota; if it recurs, lower `max_calls_per_minute` or collect fewer tables. Graph said: {message}",
                retry_after_ms / 1000
            ),
        });
    }
    match response.status {
        // Refused as expired even though it was just refreshed: a clock
        // off by minutes, or a passing fault. Worth retrying, not a
        // permission problem.
        401 if lower.contains("expired") || lower.contains("lifetime validation") => QueryError::Other(Error::Transient(format!(
            "Graph refused a freshly issued token as expired ({}: {message}); it is fetched again. If this repeats, check that this machine's clock is right (NTP)",
            e.code
        ))),
        401 | 403 => QueryError::Other(Error::Permission(format!(
            "Graph refused the request (HTTP {}, {}: {message}). To fix: {}",
            response.status,
            e.code,
            permission_advice(permission)
        ))),
        429 => {
            let retry_after_ms = response
                .header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| s * 1000)
                .unwrap_or(60_000);
            QueryError::Other(Error::Throttled { retry_after_ms, message })
        }
        _ if lower.contains("failed to resolve table") => QueryError::TableUnavailable(format!(
            "advanced hunting does not know this table in this tenant ({message}); it needs its product's license (Defender for Office 365 for Email*, Defender for Identity for Identity*)"
        )),
        _ if lower.contains("result size limit")
            || lower.contains("exceeded the allowed result size")
            || lower.contains("query exceeded the timeout")
            || lower.contains("excessive resource consumption")
            || lower.contains("too many resources") =>
        {
            QueryError::TooLarge(message)
        }
        s if s >= 500 => QueryError::Other(Error::Transient(format!(
            "Graph answered HTTP {s} ({}: {message})",
            if e.code.is_empty() { "no code" } else { &e.code }
        ))),
        s => QueryError::Other(Error::Fatal(format!(
            "Graph refused the query with HTTP {s} ({}: {message})",
            if e.code.is_empty() { "no code" } else { &e.code }
        ))),
    }
}

/// How long to pause after the CPU-quota message: the duration it names
/// ("You can run queries again in 00:05:00"), or else until the next
/// 15-minute boundary.
pub fn cpu_quota_pause_ms(message: &str, now: crate::time::Ticks) -> u64 {
    let named = message.split(" in ").nth(1).and_then(|rest| {
        let text: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == ':').collect();
        let parts: Vec<u64> = text.split(':').filter_map(|p| p.parse().ok()).collect();
        match parts.as_slice() {
            [h, m, s] => Some((h * 3600 + m * 60 + s) * 1000),
            [m, s] => Some((m * 60 + s) * 1000),
            _ => None,
        }
    });
    named.filter(|ms| *ms > 0).unwrap_or_else(|| {
        let cycle_ms = 15 * 60 * 1000;
        let now_ms = now.to_epoch_ms().max(0) as u64;
        cycle_ms - now_ms % cycle_ms
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::fake::Scripted;
    use serde_json::Value;

    #[test]
    fn the_cpu_quota_pause_reads_the_message_or_waits_for_the_next_cycle() {
        let now = crate::time::Ticks::parse("2025-01-01T10:07:30Z").unwrap();
        assert_eq!(
            cpu_quota_pause_ms(
                "You have exceeded processing resources allocated to this tenant. You can run queries again in 00:05:00.",
                now
            ),
            300_000
        );
        assert_eq!(
            cpu_quota_pause_ms("You have exceeded processing resources allocated to this tenant.", now),
            450_000
        );
        let r = Response { status: 429, headers: vec![], body: br#"{"error":{"code":"TooManyRequests","message":"You have exceeded processing resources allocated to this tenant. You can run queries again in 00:00:03."}}"#.to_vec() };
        match classify_failure(&r, HUNTING_PERMISSION, now) {
            QueryError::Other(Error::Throttled { retry_after_ms, message }) => {
                assert_eq!(retry_after_ms, 3000);
                assert!(
                    message.contains("CPU quota") && message.contains("max_calls_per_minute"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    const TOKEN: &str = r#"{"token_type":"Bearer","expires_in":3599,"access_token":"tok"}"#;

    fn client() -> GraphClient {
        GraphClient::new(
            &CollectorConfig::from_json(
                r#"{"tenant_id":"t","client_id":"c","client_secret":"s","graph_endpoint":"http://127.0.0.1:9/","api_version":"beta"}"#,
            )
            .unwrap(),
            Capabilities::without_certificate(),
        )
    }

    #[test]
    fn sends_the_documented_request() {
        let mut http = Scripted::default().reply(200, TOKEN).reply(200, r#"{"schema":[],"results":[]}"#);
        client()
            .run(
                &mut http,
                0,
                "DeviceProcessEvents | take 1",
                "2025-01-01T00:00:00Z/2025-01-02T00:00:00Z",
            )
            .unwrap();
        let q = &http.sent[1];
        assert_eq!(q.url, "http://127.0.0.1:9/beta/security/runHuntingQuery");
        assert!(q.headers.contains(&("authorization".into(), "Bearer tok".into())));
        let body: Value = serde_json::from_slice(&q.body).unwrap();
        assert_eq!(body["Query"], "DeviceProcessEvents | take 1");
        assert_eq!(body["Timespan"], "2025-01-01T00:00:00Z/2025-01-02T00:00:00Z");
    }

    #[test]
    fn a_401_refreshes_the_token_once() {
        let mut http = Scripted::default()
            .reply(200, TOKEN)
            .reply(401, r#"{"error":{"code":"InvalidAuthenticationToken","message":"expired"}}"#)
            .reply(200, TOKEN)
            .reply(200, r#"{"schema":[],"results":[]}"#);
        client().run(&mut http, 0, "q", "t").unwrap();
        assert_eq!(http.sent.len(), 4);

        // Expired again right after the refresh: retried later, not a
        // missing permission (found by the fault property in windowing.rs).
        let expired = r#"{"error":{"code":"InvalidAuthenticationToken","message":"Lifetime validation failed, the token is expired."}}"#;
        let mut http = Scripted::default()
            .reply(200, TOKEN)
            .reply(401, expired)
            .reply(200, TOKEN)
            .reply(401, expired);
        let e = client().run(&mut http, 0, "q", "t").unwrap_err();
        assert!(
            matches!(e, QueryError::Other(Error::Transient(ref m)) if m.contains("clock")),
            "{e:?}"
        );
    }

    #[test]
    fn each_failure_is_classified() {
        let now = Ticks::parse("2025-01-01T10:07:30Z").unwrap();
        let r = |status: u16, body: &str| Response {
            status,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        };
        let af = r(
            401,
            r#"{"error":{"code":"AF10001","message":"The permission set () sent in the request does not include the expected permission."}}"#,
        );
        assert!(
            matches!(classify_failure(&af, HUNTING_PERMISSION, now), QueryError::Other(Error::Permission(m)) if m.contains("ThreatHunting.Read.All") && m.contains("admin consent"))
        );
        assert!(matches!(
            classify_failure(&r(403, "{}"), HUNTING_PERMISSION, now),
            QueryError::Other(Error::Permission(_))
        ));
        let throttled = Response {
            status: 429,
            headers: vec![("Retry-After".into(), "7".into())],
            body: vec![],
        };
        assert!(matches!(
            classify_failure(&throttled, HUNTING_PERMISSION, now),
            QueryError::Other(Error::Throttled { retry_after_ms: 7000, .. })
        ));
        assert!(matches!(
            classify_failure(
                &r(
                    400,
                    r#"{"error":{"code":"BadRequest","message":"'where' operator: Failed to resolve table or column expression named 'EmailEvents'"}}"#
                ),
                HUNTING_PERMISSION,
                now
            ),
            QueryError::TableUnavailable(_)
        ));
        assert!(matches!(
            classify_failure(
                &r(400, r#"{"error":{"code":"BadRequest","message":"Result size limit exceeded"}}"#),
                HUNTING_PERMISSION,
                now
            ),
            QueryError::TooLarge(_)
        ));
        assert!(matches!(
            classify_failure(
                &r(500, r#"{"error":{"code":"UnknownError","message":""}}"#),
                HUNTING_PERMISSION,
                now
            ),
            QueryError::Other(Error::Transient(_))
        ));
    }
}
