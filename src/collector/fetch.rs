//! Fetching a table's rows from advanced hunting: one query, a window
//! shrunk until its answer fits, a range in as many queries as it takes,
//! and the rows of one overfull instant by hash buckets of their content.
//! Each returns the answers it got; what they mean for the plan is the
//! collector's to decide.

use crate::answer::HuntingResult;
use crate::error::{Error, Result};
use crate::graph::{GraphClient, QueryError};
use crate::http::HttpClient;
use crate::kql;
use crate::mapping::Table;
use crate::planner::Window;
use crate::telemetry;
use crate::time::{TICKS_PER_SECOND, Ticks};

/// The outcomes `queries_total` counts, each present from the start at 0.
pub const QUERY_OUTCOMES: &[&str] = &["ok", "too_large", "unavailable", "throttled", "error"];

/// A one-tick window is split into at most this many hash buckets: enough
/// for 100,000 × 2^16 rows at one instant. Only rows that are identical in
/// every column can end up in one bucket together beyond that.
const MAX_BUCKETS: u32 = 1 << 16;

/// The Graph client and the row limits of the queries it runs.
pub struct Fetcher {
    pub graph: GraphClient,
    /// The host's monotonic clock, in milliseconds (query durations).
    monotonic_ms: fn() -> u64,
    /// Rows a window query may return before the window is made smaller.
    max_rows_per_query: u32,
    /// The most rows one answer of Graph carries.
    graph_row_cap: u32,
    /// Server errors in a row.
    server_errors: u32,
}

/// What [`Fetcher::shrink`] found.
pub enum Shrunk {
    /// The answer for the window's largest first part that fits one query,
    /// and how many of its rows belong to that part.
    Rows(Window, HuntingResult, usize),
    /// The window is one tick long and holds more rows than an answer
    /// carries, for this reason.
    OneTick(Window, String),
    /// The table is not available in this tenant, as Graph said.
    Unavailable(String),
}

/// What one query brought back.
enum Fetch {
    /// Every row of the window: the answer, and how many rows it holds.
    Rows(HuntingResult, usize),
    /// The row limit was reached: the first `end` rows are every row before
    /// `cut`, which is later than the window's start; the rest of the
    /// window is still to query.
    Partial {
        rows: HuntingResult,
        end: usize,
        cut: Ticks,
        reason: String,
    },
    /// Nothing usable: the window must be made smaller.
    TooLarge(String),
    Unavailable(String),
}

impl Fetcher {
    pub fn new(graph: GraphClient, monotonic_ms: fn() -> u64, max_rows_per_query: u32, graph_row_cap: u32) -> Fetcher {
        Fetcher {
            graph,
            monotonic_ms,
            max_rows_per_query,
            graph_row_cap,
            server_errors: 0,
        }
    }

    /// Whether the last two queries both failed with a server error: a
    /// smaller window may get through (graph-api.md §1.5).
    pub fn server_errors_repeat(&self) -> bool {
        self.server_errors >= 2
    }

    /// One query of `source` (the table, or the union it leads) over
    /// `[start, end)`: its rows, or why they did not come.
    #[allow(clippy::too_many_arguments)]
    fn query(
        &mut self,
        http: &mut dyn HttpClient,
        now: Ticks,
        table: &'static Table,
        source: &str,
        start: Ticks,
        end: Ticks,
        take: u32,
    ) -> Result<Fetch> {
        let query = kql::window_query(source, start, end, take);
        let began = (self.monotonic_ms)();
        let answer = self.graph.run(http, now.0 / TICKS_PER_SECOND, &query, &kql::timespan(start, end));
        let (start_text, end_text) = (start.to_string(), end.to_string());
        let duration = (self.monotonic_ms)().saturating_sub(began).to_string();
        let rows = match &answer {
            Ok(result) => (result.len() + result.malformed.len()).to_string(),
            Err(_) => "error".to_string(),
        };
        telemetry::debug(
            "query",
            &[
                ("table", table.name),
                ("start", &start_text),
                ("end", &end_text),
                ("rows", &rows),
                ("duration_ms", &duration),
            ],
        );
        count_query(table, &answer);
        match answer {
            Ok(result) if ((result.len() + result.malformed.len()) as u64) < u64::from(take) => {
                report_malformed(table, &result, start);
                let end = result.len();
                Ok(Fetch::Rows(result, end))
            }
            Ok(result) => {
                let reason = format!("{} rows reached the limit of {take}", result.len() + result.malformed.len());
                // Rows come oldest first, so every row before the last one's
                // time is in this answer: keep them, and query on from there.
                match (result.malformed.is_empty(), cut_at_last_time(&result)) {
                    (true, Some((cut, end))) if cut > start => Ok(Fetch::Partial {
                        rows: result,
                        end,
                        cut,
                        reason,
                    }),
                    _ => Ok(Fetch::TooLarge(reason)),
                }
            }
            Err(QueryError::TooLarge(message)) => Ok(Fetch::TooLarge(message)),
            Err(QueryError::TableUnavailable(message)) => Ok(Fetch::Unavailable(message)),
            Err(QueryError::Other(e)) => Err(for_table(e, table)),
        }
    }

    /// The answer for the largest first part of `window` that fits one
    /// query, with how many of its rows belong to that part.
    pub fn shrink(
        &mut self,
        http: &mut dyn HttpClient,
        now: Ticks,
        table: &'static Table,
        source: &str,
        mut window: Window,
    ) -> Result<Shrunk> {
        let mut take = self.max_rows_per_query + 1;
        loop {
            let fetched = match self.query(http, now, table, source, window.start, window.end, take) {
                Err(Error::Transient(message)) => {
                    self.server_errors += 1;
                    return Err(Error::Transient(message));
                }
                other => other?,
            };
            self.server_errors = 0;
            let too_large = match fetched {
                Fetch::Rows(rows, end) => return Ok(Shrunk::Rows(window, rows, end)),
                Fetch::Partial { rows, end, cut, reason } => {
                    telemetry::counter("window_splits_total", &[("table", table.name)], 1);
                    telemetry::debug(
                        "window too large, ending it at the last row returned",
                        &[
                            ("table", table.name),
                            ("start", &window.start.to_iso()),
                            ("end", &cut.to_iso()),
                            ("reason", &reason),
                        ],
                    );
                    return Ok(Shrunk::Rows(Window { end: cut, ..window }, rows, end));
                }
                Fetch::TooLarge(reason) => reason,
                Fetch::Unavailable(message) => return Ok(Shrunk::Unavailable(message)),
            };
            telemetry::counter("window_splits_total", &[("table", table.name)], 1);
            match window.first_half() {
                Some(half) => {
                    telemetry::debug(
                        "window too large, halving it",
                        &[("table", table.name), ("start", &window.start.to_iso()), ("reason", &too_large)],
                    );
                    window = half;
                }
                // One 100 ns tick holds more rows than `take`: ask for all Graph allows.
                None if take < self.graph_row_cap => take = self.graph_row_cap,
                None => return Ok(Shrunk::OneTick(window, too_large)),
            }
        }
    }

    /// Every row of `table` in `[start, end)`, in as many queries as
    /// needed: the answers in time order, each with how many of its first
    /// rows belong to the range. A table that is not available yields the
    /// rows found before Graph said so.
    pub fn range(
        &mut self,
        http: &mut dyn HttpClient,
        now: Ticks,
        table: &'static Table,
        source: &str,
        start: Ticks,
        end: Ticks,
    ) -> Result<Vec<(HuntingResult, usize)>> {
        let mut answers = Vec::new();
        let mut pending = vec![(start, end, self.max_rows_per_query + 1)];
        while let Some((s, e, take)) = pending.pop() {
            match self.query(http, now, table, source, s, e, take)? {
                Fetch::Rows(rows, n) => answers.push((rows, n)),
                Fetch::Partial { rows, end: n, cut, .. } => {
                    answers.push((rows, n));
                    pending.push((cut, e, take));
                }
                Fetch::Unavailable(message) => {
                    telemetry::warn(&format!("{} is not available: {message}", table.name), &[("table", table.name)]);
                    return Ok(answers);
                }
                Fetch::TooLarge(reason) => {
                    let len = e.0 - s.0;
                    if len > 1 {
                        let mid = Ticks(s.0 + len / 2);
                        // Later half first on the stack, so rows come out in order.
                        pending.push((mid, e, take));
                        pending.push((s, mid, take));
                    } else if take < self.graph_row_cap {
                        pending.push((s, e, self.graph_row_cap));
                    } else {
                        one_tick_warning(table, s, &reason);
                        let tick = self.tick(http, now, table, source, s)?;
                        answers.extend(tick.into_iter().map(|a| {
                            let n = a.len();
                            (a, n)
                        }));
                    }
                }
            }
        }
        Ok(answers)
    }

    /// Every row of `table` at the single tick `at`, however many: one
    /// query per hash bucket of the rows' content, a full bucket split in
    /// two of twice the count.
    pub fn tick(
        &mut self,
        http: &mut dyn HttpClient,
        now: Ticks,
        table: &'static Table,
        source: &str,
        at: Ticks,
    ) -> Result<Vec<HuntingResult>> {
        let mut buckets = first_buckets();
        let mut answers = Vec::new();
        while !buckets.is_empty() {
            if let Some(result) = self.bucket(http, now, table, source, at, &mut buckets)? {
                answers.push(result);
            }
        }
        Ok(answers)
    }

    /// Queries the last of `buckets` (hash buckets of the rows of `table`
    /// at the tick `at`): its rows, taken off the list, or `None` when it
    /// held more than one answer and was split into two of twice the count.
    pub fn bucket(
        &mut self,
        http: &mut dyn HttpClient,
        now: Ticks,
        table: &'static Table,
        source: &str,
        at: Ticks,
        buckets: &mut Vec<(u32, u32)>,
    ) -> Result<Option<HuntingResult>> {
        let Some(&(bucket, count)) = buckets.last() else {
            return Ok(None);
        };
        let take = self.graph_row_cap;
        let query = kql::tick_bucket_query(source, at, bucket, count, take);
        let span = kql::timespan(at, at.saturating_add(Ticks(1)));
        let answer = self.graph.run(http, now.0 / TICKS_PER_SECOND, &query, &span);
        count_query(table, &answer);
        let too_large = match answer {
            Ok(result) if ((result.len() + result.malformed.len()) as u64) < u64::from(take) => {
                buckets.pop();
                report_malformed(table, &result, at);
                return Ok(Some(result));
            }
            Ok(result) => format!("{} rows reached the limit of {take}", result.len() + result.malformed.len()),
            Err(QueryError::TooLarge(message)) => message,
            Err(QueryError::TableUnavailable(message)) => return Err(Error::Transient(message)),
            Err(QueryError::Other(e)) => return Err(for_table(e, table)),
        };
        if count >= MAX_BUCKETS {
            return Err(single_tick_overflow(table, at, &too_large));
        }
        buckets.pop();
        buckets.push((bucket + count, count * 2));
        buckets.push((bucket, count * 2));
        telemetry::counter("window_splits_total", &[("table", table.name)], 1);
        Ok(None)
    }
}

/// The hash buckets an overfull instant starts with: two halves, the
/// first queried first.
pub fn first_buckets() -> Vec<(u32, u32)> {
    vec![(1, 2), (0, 2)]
}

/// Logs and counts the entries of `answer` that are not rows.
fn report_malformed(table: &Table, answer: &HuntingResult, start: Ticks) {
    for what in &answer.malformed {
        telemetry::counter("rows_unmappable_total", &[("table", table.name)], 1);
        telemetry::error(
            &format!("{} returned an entry that is not a row, skipped: {what}", table.name),
            &[("table", table.name), ("start", &start.to_iso())],
        );
    }
}

/// For a capped answer (rows oldest first): the time of its last row, and
/// how many rows come before that time, which are then complete. `None`
/// when a row has no readable time or the rows are not in order.
fn cut_at_last_time(answer: &HuntingResult) -> Option<(Ticks, usize)> {
    let mut last = None;
    let mut before = 0;
    for i in 0..answer.len() {
        let t = answer.time(i)?;
        match last {
            Some(l) if t < l => return None,
            Some(l) if t > l => before = i,
            None => before = i,
            _ => {}
        }
        last = Some(t);
    }
    last.map(|t| (t, before))
}

/// Says that the rows of one instant are collected by hash buckets.
pub fn one_tick_warning(table: &Table, at: Ticks, reason: &str) {
    telemetry::warn(
        &format!(
            "{} holds more rows at the single timestamp {} than one answer carries ({reason}); collecting them in parts by a hash of their content",
            table.name,
            at.to_iso()
        ),
        &[("table", table.name)],
    );
}

/// Counts one advanced-hunting query of `table` by its outcome.
fn count_query(table: &Table, answer: &std::result::Result<HuntingResult, QueryError>) {
    let outcome = match answer {
        Ok(_) => "ok",
        Err(QueryError::TooLarge(_)) => "too_large",
        Err(QueryError::TableUnavailable(_)) => "unavailable",
        Err(QueryError::Other(Error::Throttled { .. })) => "throttled",
        Err(QueryError::Other(_)) => "error",
    };
    telemetry::counter("queries_total", &[("table", table.name), ("outcome", outcome)], 1);
}

/// A throttling of the query for `table`, saying which table it was.
fn for_table(e: Error, table: &Table) -> Error {
    match e {
        Error::Throttled { retry_after_ms, message } => Error::Throttled {
            retry_after_ms,
            message: format!("{}: {message}", table.name),
        },
        other => other,
    }
}

fn single_tick_overflow(table: &Table, at: Ticks, reason: &str) -> Error {
    Error::Fatal(format!(
        "{} holds more rows at the single timestamp {} than this collector can split into answers ({reason}); these rows cannot be collected completely. Please report this with the table's name",
        table.name,
        at.to_iso()
    ))
}
