//! Microsoft Graph `POST /security/runHuntingQuery`: the request, the
//! response (whatever the casing of its keys), and what each error means.

use crate::auth::TokenSource;
use crate::config::{ApiVersion, CollectorConfig};
use crate::error::Error;
use crate::http::{HttpClient, Method, Request, Response};
use crate::telemetry;
use crate::time::Ticks;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::HashMap;

/// One result row: column name to JSON value, as Graph sent it.
///
/// A hash map rather than a B-tree: mapping looks up and takes every column
/// by name, and column names share long prefixes (`InitiatingProcessVersionInfo…`),
/// which a B-tree compares over and over. In the component, where a byte
/// comparison costs more than natively, this made mapping faster by up to a
/// fifth (docs/performance.md); natively it is a wash. Its order is no one's
/// concern: what is left of a row lands under `unmapped`, an ordered map.
pub type Row = HashMap<String, Value, foldhash::fast::RandomState>;

/// A parsed `huntingQueryResults`. The answer's bytes are kept as they came
/// and each row is parsed only when it is mapped, so that a 50 MB answer is
/// held once, not also as a tree of values.
#[derive(Debug, Default)]
pub struct HuntingResult {
    /// Column names and their declared types (`DateTime`, `String`, `Int64`, ...).
    pub schema: Vec<(String, String)>,
    /// Checked to be UTF-8 once, so that parsing a row does not check its
    /// strings again.
    body: String,
    /// Where each row (a JSON object) lies in `body`.
    rows: Vec<(u32, u32)>,
    /// Entries of `results` that are not rows (not JSON objects), described
    /// by position; the rows around them are kept.
    pub malformed: Vec<String>,
}

impl HuntingResult {
    /// How many rows the answer holds (entries that are not rows aside).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Row `i` as the answer holds it: the JSON text of one object.
    pub fn raw(&self, i: usize) -> &str {
        let (start, end) = self.rows[i];
        &self.body[start as usize..end as usize]
    }

    /// Row `i`, parsed.
    pub fn row(&self, i: usize) -> Result<Row, String> {
        // Room for every declared column, so that the map never grows while
        // it is filled (within reason: the schema is the server's word).
        let columns = self.schema.len().clamp(8, 512);
        let mut de = serde_json::Deserializer::from_str(self.raw(i));
        serde::de::DeserializeSeed::deserialize(RowSeed(columns), &mut de)
            .and_then(|row| de.end().map(|()| row))
            .map_err(|e| format!("row {i} could not be read: {e}"))
    }

    /// Every row, parsed (for small answers and tests).
    pub fn parse_rows(&self) -> Vec<Row> {
        (0..self.len()).filter_map(|i| self.row(i).ok()).collect()
    }

    /// The `Timestamp` of row `i`, reading nothing else of it.
    pub fn time(&self, i: usize) -> Option<Ticks> {
        #[derive(Deserialize)]
        struct TimeOnly<'a> {
            #[serde(rename = "Timestamp", borrow, default)]
            timestamp: Option<std::borrow::Cow<'a, str>>,
        }
        let t: TimeOnly = serde_json::from_str(self.raw(i)).ok()?;
        Ticks::parse(&t.timestamp?).ok()
    }
}

/// Reads a row (a JSON object) into a [`Row`] made with room for `.0`
/// columns. A column that appears twice keeps its last value.
struct RowSeed(usize);

impl<'de> serde::de::DeserializeSeed<'de> for RowSeed {
    type Value = Row;
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Row, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for RowSeed {
    type Value = Row;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a row (a JSON object)")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Row, A::Error> {
        let mut row = Row::with_capacity_and_hasher(self.0, Default::default());
        while let Some((column, value)) = map.next_entry::<String, Value>()? {
            row.insert(column, value);
        }
        Ok(row)
    }
}

#[derive(Deserialize)]
struct RawResult<'a> {
    #[serde(default, alias = "Schema")]
    schema: Vec<RawColumn>,
    #[serde(default, borrow, alias = "Results")]
    results: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct RawColumn {
    #[serde(alias = "Name")]
    name: String,
    #[serde(default, alias = "Type")]
    r#type: String,
}

/// Parses a runHuntingQuery response body. Keys may be `schema`/`results`
/// (Graph) or `Schema`/`Results` (legacy APIs), and columns `name`/`type` or
/// `Name`/`Type`.
pub fn parse_response(body: impl Into<Vec<u8>>) -> Result<HuntingResult, Error> {
    let body = body.into();
    if body.len() > u32::MAX as usize {
        return Err(Error::Transient(format!(
            "Graph returned {} bytes, more than this collector reads at once",
            body.len()
        )));
    }
    let not_results = |body: &[u8], why: &dyn std::fmt::Display| {
        let start = String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
        Error::Transient(format!(
            "Graph returned a response that is not valid hunting results ({why}); it starts with: {start:?}"
        ))
    };
    let body = String::from_utf8(body).map_err(|e| {
        let why = format!("it is not UTF-8 text: {}", e.utf8_error());
        not_results(e.as_bytes(), &why)
    })?;
    let raw: RawResult = serde_json::from_str(&body).map_err(|e| not_results(body.as_bytes(), &e))?;
    let results = raw
        .results
        .ok_or_else(|| Error::Transient("Graph returned a response without `results`; a proxy may have answered".into()))?;
    let base = body.as_ptr() as usize;
    let mut rows = Vec::with_capacity(results.len());
    let mut malformed = Vec::new();
    for (i, value) in results.into_iter().enumerate() {
        let text = value.get();
        if text.starts_with('{') {
            let start = text.as_ptr() as usize - base;
            rows.push((start as u32, (start + text.len()) as u32));
        } else {
            let text: String = text.chars().take(80).collect();
            malformed.push(format!("result {i} is not a row but {text}"));
        }
    }
    let schema = raw.schema.into_iter().map(|c| (c.name, c.r#type)).collect();
    Ok(HuntingResult {
        schema,
        body,
        rows,
        malformed,
    })
}

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
    budget: crate::budget::Budget,
}

impl GraphClient {
    pub fn new(config: &CollectorConfig) -> GraphClient {
        GraphClient {
            url: query_url(&config.graph_endpoint, config.api_version),
            tokens: TokenSource::new(config),
            budget: crate::budget::Budget::new(config.max_calls_per_minute, crate::budget::monotonic_ms()),
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
            let wait = self.budget.take(crate::budget::monotonic_ms());
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
            return Err(classify_failure(&response, permission));
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
pub fn classify_failure(response: &Response, permission: &str) -> QueryError {
    let e = error_body(response);
    let message = if e.message.is_empty() { response.text() } else { e.message.clone() };
    let message: String = message.chars().take(500).collect();
    let lower = message.to_ascii_lowercase();
    if lower.contains("exceeded processing resources") {
        let retry_after_ms = cpu_quota_pause_ms(&message, crate::time::Ticks::now());
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
        match classify_failure(&r, HUNTING_PERMISSION) {
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
        )
    }

    #[test]
    fn parses_both_casings_and_keeps_big_integers_exact() {
        let lower = br#"{"schema":[{"name":"ReportId","type":"Int64"}],"results":[{"ReportId":18446744073709551615}]}"#;
        let upper = br#"{"Schema":[{"Name":"ReportId","Type":"Int64"}],"Results":[{"ReportId":9007199254740993}]}"#;
        let a = parse_response(lower).unwrap();
        assert_eq!(a.schema, vec![("ReportId".to_string(), "Int64".to_string())]);
        assert_eq!(a.row(0).unwrap()["ReportId"].to_string(), "18446744073709551615");
        let b = parse_response(upper).unwrap();
        assert_eq!(b.row(0).unwrap()["ReportId"].to_string(), "9007199254740993");
    }

    #[test]
    fn a_malformed_entry_is_reported_and_the_rows_around_it_kept() {
        let r = parse_response(br#"{"schema":[],"results":[{"a":1},7,"x",{"a":2}]}"#).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r.malformed.len(), 2);
        assert!(r.malformed[0].contains("result 1"), "{:?}", r.malformed);
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let e = parse_response(b"<html>502 Bad Gateway</html>").unwrap_err().to_string();
        assert!(e.contains("<html>502"), "{e}");
        let e = parse_response(br#"{"schema":[]}"#).unwrap_err().to_string();
        assert!(e.contains("without `results`"), "{e}");
        // Latin-1 where UTF-8 belongs: named, with the position, and the start shown.
        let e = parse_response(&b"{\"schema\":[],\"results\":[{\"a\":\"caf\xe9\"}]}"[..])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not UTF-8") && e.contains("index 33") && e.contains("results"), "{e}");
    }

    #[test]
    fn rows_keep_their_escapes_and_unicode() {
        let body = r#"{"schema":[],"results":[{"Path":"C:\\Windows\\\u00e9\"x\"","Name":"Ωmega ✓"}]}"#;
        let row = parse_response(body).unwrap().row(0).unwrap();
        assert_eq!(row["Path"], "C:\\Windows\\é\"x\"");
        assert_eq!(row["Name"], "Ωmega ✓");
        // A column sent twice keeps its last value, as a JSON object's reader would.
        let twice = parse_response(r#"{"schema":[],"results":[{"A":1,"A":2}]}"#)
            .unwrap()
            .row(0)
            .unwrap();
        assert_eq!((twice.len(), &twice["A"]), (1, &serde_json::json!(2)));
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
            matches!(classify_failure(&af, HUNTING_PERMISSION), QueryError::Other(Error::Permission(m)) if m.contains("ThreatHunting.Read.All") && m.contains("admin consent"))
        );
        assert!(matches!(
            classify_failure(&r(403, "{}"), HUNTING_PERMISSION),
            QueryError::Other(Error::Permission(_))
        ));
        let throttled = Response {
            status: 429,
            headers: vec![("Retry-After".into(), "7".into())],
            body: vec![],
        };
        assert!(matches!(
            classify_failure(&throttled, HUNTING_PERMISSION),
            QueryError::Other(Error::Throttled { retry_after_ms: 7000, .. })
        ));
        assert!(matches!(
            classify_failure(
                &r(
                    400,
                    r#"{"error":{"code":"BadRequest","message":"'where' operator: Failed to resolve table or column expression named 'EmailEvents'"}}"#
                ),
                HUNTING_PERMISSION
            ),
            QueryError::TableUnavailable(_)
        ));
        assert!(matches!(
            classify_failure(
                &r(400, r#"{"error":{"code":"BadRequest","message":"Result size limit exceeded"}}"#),
                HUNTING_PERMISSION
            ),
            QueryError::TooLarge(_)
        ));
        assert!(matches!(
            classify_failure(&r(500, r#"{"error":{"code":"UnknownError","message":""}}"#), HUNTING_PERMISSION),
            QueryError::Other(Error::Transient(_))
        ));
    }
}
