//! `check`: the credentials, then one tiny request (`take 0`) per table
//! and stream, without collecting anything.

use crate::error::Error;
use crate::graph::{GraphClient, QueryError};
use crate::http::HttpClient;
use crate::kql;
use crate::mapping::{self, Table};
use crate::streams::Stream;
use crate::time::{TICKS_PER_SECOND, Ticks};

/// One step of a configuration check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckStep {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// How a `check` step that passed with a warning begins its detail (the
/// WIT contract's convention).
pub const CHECK_WARNING: &str = "warning: ";

/// Tests the credentials and every configured table and stream with one
/// tiny request each (`take 0`), without collecting anything.
pub fn run(
    graph: &mut GraphClient,
    http: &mut dyn HttpClient,
    now: Ticks,
    login_endpoint: &str,
    tables: &[&'static Table],
    streams: &[Stream],
) -> Vec<CheckStep> {
    let mut steps = Vec::new();
    let now_secs = now.0 / TICKS_PER_SECOND;
    let token = graph.check_token(http, now_secs);
    let token_ok = token.is_ok();
    steps.push(CheckStep {
        name: format!("credentials: token from {}", login_endpoint),
        ok: token_ok,
        detail: match token {
            Ok(()) => "the app's credentials are accepted".into(),
            Err(e) => e.to_string(),
        },
    });
    if !token_ok {
        return steps;
    }
    let mut answered = Vec::new();
    let span = kql::timespan(now.saturating_sub(Ticks::from_secs(3600)), now);
    let mut probe = |graph: &mut GraphClient, table: &str| {
        let query = format!("{table} | take 0");
        let mut answer = graph.run(http, now_secs, &query, &span);
        // One throttling is no verdict on the table: wait as asked (up to
        // half a minute) and try once more.
        if let Err(QueryError::Other(Error::Throttled { retry_after_ms, .. })) = &answer {
            std::thread::sleep(std::time::Duration::from_millis((*retry_after_ms).min(30_000)));
            answer = graph.run(http, now_secs, &query, &span);
        }
        answer
    };
    for table in tables {
        let answer = probe(graph, table.name);
        let (ok, detail) = match answer {
            Ok(_) => {
                answered.push(table.name);
                (true, "runHuntingQuery works for this table".to_string())
            }
            // Not licensed here: the other tables are collected; a
            // warning, not a failure.
            Err(QueryError::TableUnavailable(m)) => (true, format!("{CHECK_WARNING}{m}; remove it from `tables`")),
            Err(QueryError::TooLarge(m)) => (false, m),
            Err(QueryError::Other(e)) => (false, e.to_string()),
        };
        steps.push(CheckStep {
            name: format!("advanced hunting: {}", table.name),
            ok,
            detail,
        });
    }
    // The tables that need a licence most tenants lack, and that are not
    // collected: whether this tenant has them (never a failure).
    let optional = mapping::TABLES
        .iter()
        .filter(|t| t.licence.is_some() && !tables.iter().any(|c| c.name == t.name));
    for table in optional {
        let licence = table.licence.unwrap_or_default();
        let detail = match probe(graph, table.name) {
            Ok(_) => "this tenant has it; add it to `tables` to collect it".to_string(),
            Err(QueryError::TableUnavailable(_)) => format!("not in this tenant (it needs {licence})"),
            Err(QueryError::TooLarge(m)) => format!("{CHECK_WARNING}could not tell: {m}"),
            Err(QueryError::Other(e)) => format!("{CHECK_WARNING}could not tell: {e}"),
        };
        steps.push(CheckStep {
            name: format!("optional table: {}", table.name),
            ok: true,
            detail,
        });
    }
    if answered.len() < tables.len() && !answered.is_empty() {
        steps.push(CheckStep {
            name: "tables that answered".into(),
            ok: true,
            detail: format!("tables: [{}]", answered.join(", ")),
        });
    }
    for stream in streams {
        let url = format!("{}/security/{}?$top=1", graph.base(), stream.path());
        let (ok, detail) = match graph.get(http, now_secs, &url, stream.permission()) {
            Ok(_) => (true, format!("{} works", stream.path())),
            Err(QueryError::Other(e)) => (false, e.to_string()),
            Err(QueryError::TableUnavailable(m)) | Err(QueryError::TooLarge(m)) => (false, m),
        };
        steps.push(CheckStep {
            name: format!("security API: {}", stream.path()),
            ok,
            detail,
        });
    }
    steps
}
