//! The collector: one `poll` runs the next planned query, maps its rows and
//! returns them as a batch with the checkpoint that covers them.

use crate::answer::HuntingResult;
use crate::capabilities::Capabilities;
use crate::config::CollectorConfig;
use crate::error::{Error, Result};
use crate::graph::{GraphClient, QueryError};
use crate::http::HttpClient;
use crate::kql;
use crate::mapping::cells::{Cells, Columns};
use crate::mapping::graph_security::Kind;
use crate::mapping::plan::Plan;
use crate::mapping::{self, Context, Table};
use crate::planner::{Planner, Window};
use crate::progress::Backfill;
use crate::streams::Stream;
use crate::telemetry;
use crate::time::{TICKS_PER_MS, TICKS_PER_SECOND, Ticks};

/// What the host needs to know after `init`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceInfo {
    pub name: String,
    pub version: String,
    pub allowed_origins: Vec<String>,
}

/// One step of a configuration check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckStep {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// The result of one poll.
#[derive(Debug, Default)]
pub struct Batch {
    /// NDJSON: one OCSF event per line.
    pub events: Vec<u8>,
    pub count: u32,
    pub checkpoint: String,
    /// 0 when more work is ready now; otherwise the wait until the next cycle.
    pub next_poll_ms: u64,
}

pub struct Collector {
    config: CollectorConfig,
    tables: Vec<&'static Table>,
    graph: GraphClient,
    /// The host's monotonic clock, in milliseconds (query durations).
    monotonic_ms: fn() -> u64,
    planner: Planner,
    streams: Vec<Stream>,
    context: Context,
    /// Where tables and streams without a checkpoint start.
    start: Ticks,
    /// Server errors in a row; from the second on, windows are halved.
    server_errors: u32,
    /// A window whose answer is being handed out in several batches.
    pending: Option<Pending>,
    /// The size above which a batch is closed ([`MAX_BATCH_BYTES`]).
    batch_bytes: usize,
    /// The progress of the current cycle, when it started far behind.
    backfill: Option<Backfill>,
    /// The table that leads the union of `union_tables`, while it lasts.
    union: Option<usize>,
}

/// The largest batch of events one poll returns. A 100,000-row answer maps
/// to well over 100 MB of OCSF; handing it out in parts keeps the memory of
/// the component and the host bounded, whatever the answer's size.
pub const MAX_BATCH_BYTES: usize = 8 << 20;

/// A window whose rows are mapped part by part, one batch per poll. Its
/// watermark moves only when the last part is out, so a restart in between
/// collects the whole window again: nothing is lost.
struct Pending {
    window: Window,
    table: &'static Table,
    answer: HuntingResult,
    /// The next row to map, and the end of the rows that belong to the window.
    next: usize,
    end: usize,
    /// The first rows, up to this one, lie before the watermark: they are
    /// emitted only if not emitted before (late arrivals).
    late: usize,
    /// How many of those were late arrivals.
    late_emitted: usize,
    /// Keys of the events emitted so far, for the late-row sweeps.
    keys: Vec<(Ticks, String)>,
    /// For a one-tick window with more rows than an answer carries: the
    /// hash buckets (`bucket`, of `buckets`) still to query, one a poll.
    buckets: Vec<(u32, u32)>,
}

/// A one-tick window is split into at most this many hash buckets: enough
/// for 100,000 × 2^16 rows at one instant. Only rows that are identical in
/// every column can end up in one bucket together beyond that.
const MAX_BUCKETS: u32 = 1 << 16;

impl Collector {
    /// Configures a collector from the host's JSON and the last checkpoint.
    pub fn new(config_json: &str, checkpoint: Option<&str>, now: Ticks, host: Capabilities) -> Result<(Collector, SourceInfo)> {
        let config = CollectorConfig::from_json(config_json)?;
        let tables: Vec<&'static Table> = config
            .tables
            .iter()
            .map(|name| mapping::table(name).expect("validated by CollectorConfig"))
            .collect();
        let names: Vec<&'static str> = tables.iter().map(|t| t.name).collect();
        let start = config.start_ticks(now)?;
        let mut planner = Planner::new(&names, checkpoint, start, config.max_window.into())?;
        planner.set_overlap(config.overlap.into());
        // Rows that belong to another table's events follow its windows and
        // are folded into them (evidence into alerts, guide §2; without
        // deprecated classes, attachments and URLs into their message).
        for table in &tables {
            if let Some(join) = &table.join {
                if !join.only_without_deprecated || !config.ocsf.deprecated_classes {
                    planner.set_follower(table.name, join.leader);
                }
            }
        }
        for table in &tables {
            if mapping::entity_key(table.name).is_some() {
                planner.set_period(table.name, config.entity_interval.into());
            }
        }
        let members: Vec<&str> = config.union_tables.iter().map(String::as_str).collect();
        planner.set_union(&members);
        let union = members.first().and_then(|first| names.iter().position(|n| n == first));
        let streams = [(config.incidents, Kind::Incidents), (config.alerts, Kind::Alerts)]
            .into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, kind)| Stream::new(kind, planner.stream_state(kind.name())))
            .collect();
        // Each table's series, present from the start at 0.
        for table in &tables {
            telemetry::counter("rows_fetched_total", &[("table", table.name)], 0);
            for outcome in QUERY_OUTCOMES {
                telemetry::counter("queries_total", &[("table", table.name), ("outcome", outcome)], 0);
            }
        }
        let info = SourceInfo {
            name: "defender-xdr".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            allowed_origins: config.allowed_origins(),
        };
        let collector = Collector {
            monotonic_ms: host.monotonic_ms,
            graph: GraphClient::new(&config, host),
            context: Context {
                tenant_uid: Some(config.tenant_id.clone()),
                no_deprecated_classes: !config.ocsf.deprecated_classes,
                collected_at: None,
            },
            tables,
            planner,
            streams,
            start,
            server_errors: 0,
            pending: None,
            batch_bytes: MAX_BATCH_BYTES,
            backfill: None,
            union,
            config,
        };
        Ok((collector, info))
    }

    /// Tests the credentials and every configured table and stream with one
    /// tiny request each (`take 0`), without collecting anything.
    pub fn check(&mut self, http: &mut dyn HttpClient, now: Ticks) -> Vec<CheckStep> {
        let mut steps = Vec::new();
        let now_secs = now.0 / TICKS_PER_SECOND;
        let token = self.graph.check_token(http, now_secs);
        let token_ok = token.is_ok();
        steps.push(CheckStep {
            name: format!("credentials: token from {}", self.config.login_endpoint),
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
        for table in self.tables.clone() {
            let answer = probe(&mut self.graph, table.name);
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
            .filter(|t| t.licence.is_some() && !self.tables.iter().any(|c| c.name == t.name));
        for table in optional {
            let licence = table.licence.unwrap_or_default();
            let detail = match probe(&mut self.graph, table.name) {
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
        if answered.len() < self.tables.len() && !answered.is_empty() {
            steps.push(CheckStep {
                name: "tables that answered".into(),
                ok: true,
                detail: format!("tables: [{}]", answered.join(", ")),
            });
        }
        for stream in &self.streams {
            let url = format!("{}/security/{}?$top=1", self.graph.base(), stream.path());
            let (ok, detail) = match self.graph.get(http, now_secs, &url, stream.permission()) {
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

    /// Runs the next query of the current cycle, starting a cycle if none is
    /// running. A batch whose `next_poll_ms` is above zero ends a cycle.
    pub fn poll(&mut self, http: &mut dyn HttpClient, now: Ticks) -> Result<Batch> {
        let batch = self.poll_once(http, now)?;
        if batch.next_poll_ms > 0
            && let Some(backfill) = self.backfill.take()
        {
            telemetry::info(&backfill.finished(now), &[]);
        }
        Ok(batch)
    }

    fn poll_once(&mut self, http: &mut dyn HttpClient, now: Ticks) -> Result<Batch> {
        // The live edge, or `end_time` when collection stops there.
        let mut end = now.saturating_sub(self.config.delay.into());
        if let Some(stop) = self.config.end_ticks() {
            end = end.min(stop);
        }
        // Live data first: once this cycle's live edges are in and the next
        // cycle is due, it begins, even while history is left; history
        // windows take only the calls that live collection leaves over.
        let interval: Ticks = self.config.poll_interval.into();
        if self.pending.is_none()
            && !self.streams.iter().any(|s| s.due)
            && self.planner.next_ready(interval).is_some_and(|ready| ready <= end)
        {
            self.planner.end_cycle_for_live();
        }
        if self.planner.begin_cycle(end, now) {
            for stream in &mut self.streams {
                stream.due = true;
            }
            let behind = Ticks(
                self.planner
                    .cursors()
                    .iter()
                    .filter(|c| c.follows.is_none() && c.unavailable_until.is_none())
                    .map(|c| c.behind().0)
                    .sum(),
            );
            match &mut self.backfill {
                Some(backfill) => backfill.restate(behind),
                None => {
                    self.backfill = Backfill::start(behind, now);
                    if let Some(backfill) = &self.backfill {
                        telemetry::info(&backfill.begun(), &[]);
                    }
                }
            }
        }
        self.context.collected_at = Some(now);
        if self.pending.as_ref().is_some_and(|p| p.next >= p.end) {
            self.next_bucket(http, now)?;
        }
        if self.pending.is_some() {
            let (events, count) = self.continue_pending(now);
            return Ok(self.batch(events, count, now));
        }
        if let Some(stream) = self.streams.iter_mut().find(|s| s.due) {
            let (events, count) = stream.poll_page(http, &mut self.graph, &self.context, now, self.start)?;
            return Ok(self.batch(events, count, now));
        }
        if let Some((index, from, to)) = self.planner.next_sweep() {
            let (events, count) = self.sweep(http, now, index, from, to)?;
            return Ok(self.batch(events, count, now));
        }
        let Some(window) = self.planner.next_window() else {
            return Ok(self.batch(Vec::new(), 0, now));
        };
        let table = self.tables[window.table];
        let (events, count) = self.collect_window(http, now, window, table)?;
        Ok(self.batch(events, count, now))
    }

    fn batch(&self, events: Vec<u8>, count: u32, now: Ticks) -> Batch {
        let sweeping = self.planner.cursors().iter().any(|c| c.sweep_due);
        let busy = sweeping || self.pending.is_some() || self.streams.iter().any(|s| s.due);
        let next_poll_ms = if self.planner.cycle_done() && !busy {
            // The next cycle is worth starting once a poll interval of new data exists.
            let interval: Ticks = self.config.poll_interval.into();
            let ready = self.planner.next_ready(interval).unwrap_or(now);
            let ready_at = ready.saturating_add(self.config.delay.into());
            (ready_at.0.saturating_sub(now.0) / TICKS_PER_MS).clamp(1000, interval.0 / TICKS_PER_MS) as u64
        } else {
            0
        };
        let streams: Vec<(&str, &crate::planner::StreamState)> = self.streams.iter().map(|s| (s.kind.name(), &s.state)).collect();
        Batch {
            events,
            count,
            checkpoint: self.planner.checkpoint(&streams),
            next_poll_ms,
        }
    }

    /// Queries `window`, shrinking it while it holds more rows than one
    /// query may return. A table that others follow is mapped at once, with
    /// its followers; any other is handed out in batches of at most
    /// [`MAX_BATCH_BYTES`] from the answer as it came.
    fn collect_window(&mut self, http: &mut dyn HttpClient, now: Ticks, window: Window, table: &'static Table) -> Result<(Vec<u8>, u32)> {
        let (window, answer, end) = match self.fetch_shrinking(http, now, window, table)? {
            Shrunk::Rows(window, answer, end) => (window, answer, end),
            Shrunk::Unavailable => return Ok((Vec::new(), 0)),
            // More rows at one instant than an answer carries: they are
            // collected by hash buckets of their content; all buckets at
            // once for an entity table or a table others follow, otherwise
            // a bucket a poll (`next_bucket`).
            Shrunk::OneTick(window, reason) => {
                one_tick_warning(table, window.start, &reason);
                if let Some(key) = mapping::entity_key(table.name) {
                    // Each bucket merged on its own: an entity whose rows
                    // fall in two buckets gets two states, none is lost.
                    let (mut events, mut failed) = (Vec::new(), None);
                    self.fetch_tick(http, now, table, window.start, &mut |c, t, answer, rows| {
                        telemetry::counter("rows_fetched_total", &[("table", t.name)], rows as u64);
                        match crate::snapshot::merge(answer, rows, key, t.name) {
                            Ok(merged) => {
                                report_unreadable(t, &merged.unreadable);
                                c.map_answer(t, &merged.answer, 0..merged.len, |event| events.push(event))
                            }
                            Err(e) => failed = Some(e),
                        }
                    })?;
                    if let Some(e) = failed {
                        return Err(e);
                    }
                    return self.join_followers(http, now, table, window, Vec::new(), events);
                }
                if !self.planner.followers(window.table).is_empty() {
                    // Joined with its followers: all the tick's rows at once.
                    let mut events = Vec::new();
                    self.fetch_tick(http, now, table, window.start, &mut |c, t, answer, rows| {
                        telemetry::counter("rows_fetched_total", &[("table", t.name)], rows as u64);
                        c.map_answer(t, answer, 0..rows, |event| events.push(event))
                    })?;
                    return match window.start < window.watermark {
                        true => self.join_followers(http, now, table, window, events, Vec::new()),
                        false => self.join_followers(http, now, table, window, Vec::new(), events),
                    };
                }
                self.pending = Some(Pending {
                    window,
                    table,
                    answer: HuntingResult::default(),
                    next: 0,
                    end: 0,
                    late: 0,
                    late_emitted: 0,
                    keys: Vec::new(),
                    buckets: vec![(1, 2), (0, 2)],
                });
                return Ok((Vec::new(), 0));
            }
        };
        telemetry::counter("rows_fetched_total", &[("table", table.name)], end as u64);
        // An entity table's window becomes one state per entity.
        let (answer, end) = match mapping::entity_key(table.name) {
            Some(key) => {
                let merged = crate::snapshot::merge(&answer, end, key, table.name)?;
                report_unreadable(table, &merged.unreadable);
                (merged.answer, merged.len)
            }
            None => (answer, end),
        };
        let late = before(&answer, end, window.watermark);
        let followers = self.planner.followers(window.table);
        if followers.is_empty() {
            self.pending = Some(Pending {
                window,
                table,
                answer,
                next: 0,
                end,
                late,
                late_emitted: 0,
                keys: Vec::new(),
                buckets: Vec::new(),
            });
            return Ok(self.continue_pending(now));
        }
        let (mut before_watermark, mut events) = (Vec::new(), Vec::with_capacity(end));
        self.map_answer(table, &answer, 0..late, |event| before_watermark.push(event));
        self.map_answer(table, &answer, late..end, |event| events.push(event));
        drop(answer);
        self.join_followers(http, now, table, window, before_watermark, events)
    }

    /// Completes a window of a table that others follow: drops those of
    /// its events from before the watermark that went out before, folds in
    /// the followers' rows of the window's new part, and advances the
    /// watermark.
    fn join_followers(
        &mut self,
        http: &mut dyn HttpClient,
        now: Ticks,
        table: &'static Table,
        window: Window,
        before_watermark: Vec<serde_json::Value>,
        new: Vec<serde_json::Value>,
    ) -> Result<(Vec<u8>, u32)> {
        let rows = before_watermark.len() + new.len();
        let mut events: Vec<serde_json::Value> = before_watermark.into_iter().filter(|e| self.is_new(window.table, e)).collect();
        self.late_rows(table, events.len(), &window);
        events.extend(new);
        let followers = self.planner.followers(window.table);
        let keys: Vec<(Ticks, String)> = events.iter().filter_map(row_key).collect();
        // Followers are looked for in the new part only: their rows of the
        // stretch before the watermark went out with their leaders' then.
        let (from, to) = (window.start.max(window.watermark), window.end);
        for follower in followers.into_iter().filter(|_| from < to) {
            let follower_table = self.tables[follower];
            let mut joined = Vec::new();
            self.fetch_range(http, now, follower_table, from, to, &mut |c, t, answer, rows| {
                telemetry::counter("rows_fetched_total", &[("table", t.name)], rows as u64);
                c.map_answer(t, answer, 0..rows, |event| joined.push(event))
            })?;
            let alone = match &follower_table.join {
                Some(join) => (join.fold)(&mut events, joined),
                None => joined,
            };
            events.extend(alone);
        }
        let mut out = Vec::new();
        let count = events.len() as u32;
        for event in &events {
            count_event(event);
            mapping::write_event(&mut out, event);
        }
        self.finish_window(now, table, &window, rows, keys);
        Ok((out, count))
    }

    /// Every row of `table` at the single tick `at`, however many: one
    /// query per hash bucket of the rows' content, a full bucket split in
    /// two of twice the count; each answer is handed to `each`.
    fn fetch_tick(
        &mut self,
        http: &mut dyn HttpClient,
        now: Ticks,
        table: &'static Table,
        at: Ticks,
        each: &mut dyn FnMut(&mut Self, &'static Table, &HuntingResult, usize),
    ) -> Result<()> {
        let mut buckets = vec![(1u32, 2u32), (0, 2)];
        while !buckets.is_empty() {
            if let Some(result) = self.bucket_step(http, now, table, at, &mut buckets)? {
                each(self, table, &result, result.len());
            }
        }
        Ok(())
    }

    /// Maps the next part of the pending window; when it was the last part,
    /// advances the watermark.
    fn continue_pending(&mut self, now: Ticks) -> (Vec<u8>, u32) {
        let Some(mut p) = self.pending.take() else {
            return (Vec::new(), 0);
        };
        let mut out = Vec::new();
        let mut count = 0;
        let mut i = p.next;
        while i < p.end && out.len() < self.batch_bytes {
            let stop = (i + 64).min(p.end);
            let late_stop = stop.min(p.late).max(i);
            self.write_answer(p.table, &p.answer, i..late_stop, &mut out, |written| {
                let key = written_key(written);
                if self.planner.seen(p.window.table, &key.1) {
                    return false;
                }
                p.late_emitted += 1;
                p.keys.push(key);
                count_written(written);
                count += 1;
                true
            });
            self.write_answer(p.table, &p.answer, late_stop..stop, &mut out, |written| {
                p.keys.push(written_key(written));
                count_written(written);
                count += 1;
                true
            });
            i = stop;
        }
        if i < p.end || !p.buckets.is_empty() {
            p.next = i;
            self.pending = Some(p);
        } else {
            self.late_rows(p.table, p.late_emitted, &p.window);
            let keys = std::mem::take(&mut p.keys);
            self.finish_window(now, p.table, &p.window, p.end, keys);
        }
        (out, count)
    }

    /// Loads the rows of the pending one-tick window's next hash bucket, or
    /// splits that bucket in two when it holds more rows than one answer.
    fn next_bucket(&mut self, http: &mut dyn HttpClient, now: Ticks) -> Result<()> {
        let Some(mut p) = self.pending.take() else {
            return Ok(());
        };
        // An error leaves the bucket in place: it is tried again on the
        // next poll, after the host's backoff.
        let step = self.bucket_step(http, now, p.table, p.window.start, &mut p.buckets);
        let step = match step {
            Ok(Some(result)) => {
                telemetry::counter("rows_fetched_total", &[("table", p.table.name)], result.len() as u64);
                p.late = before(&result, result.len(), p.window.watermark);
                (p.next, p.end, p.answer) = (0, result.len(), result);
                Ok(())
            }
            other => other.map(|_| ()),
        };
        self.pending = Some(p);
        step
    }

    /// Queries the last of `buckets` (hash buckets of the rows of `table`
    /// at the tick `at`): its rows, taken off the list, or `None` when it
    /// held more than one answer and was split into two of twice the count.
    fn bucket_step(
        &mut self,
        http: &mut dyn HttpClient,
        now: Ticks,
        table: &'static Table,
        at: Ticks,
        buckets: &mut Vec<(u32, u32)>,
    ) -> Result<Option<HuntingResult>> {
        let Some(&(bucket, count)) = buckets.last() else {
            return Ok(None);
        };
        let take = self.config.graph_row_cap;
        let query = kql::tick_bucket_query(&self.source(table), at, bucket, count, take);
        let span = kql::timespan(at, at.saturating_add(Ticks(1)));
        let answer = self.graph.run(http, now.0 / TICKS_PER_SECOND, &query, &span);
        count_query(table, &answer);
        let too_large = match answer {
            Ok(result) if ((result.len() + result.malformed.len()) as u64) < u64::from(take) => {
                buckets.pop();
                self.report_malformed(table, &result, at);
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

    /// Logs and counts the entries of `answer` that are not rows.
    fn report_malformed(&self, table: &Table, answer: &HuntingResult, start: Ticks) {
        for what in &answer.malformed {
            telemetry::counter("rows_unmappable_total", &[("table", table.name)], 1);
            telemetry::error(
                &format!("{} returned an entry that is not a row, skipped: {what}", table.name),
                &[("table", table.name), ("start", &start.to_iso())],
            );
        }
    }

    /// Advances the watermark past a window whose every event was handed out.
    fn finish_window(&mut self, now: Ticks, table: &'static Table, window: &Window, rows: usize, keys: Vec<(Ticks, String)>) {
        self.planner
            .complete(window, rows as f64 / f64::from(self.config.max_rows_per_query));
        self.planner.remember(window.table, keys);
        let new_data = Ticks(window.end.0.saturating_sub(window.start.max(window.watermark).0).max(0));
        if let Some(backfill) = self.backfill.as_mut() {
            let left: Vec<(&str, Ticks)> = self
                .planner
                .cursors()
                .iter()
                .filter(|c| c.follows.is_none() && c.unavailable_until.is_none())
                .map(|c| (c.table, c.behind()))
                .collect();
            if let Some(line) = backfill.window_done(new_data, rows, now, &left) {
                telemetry::info(&line, &[]);
            }
        }
        let cursor = &self.planner.cursors()[window.table];
        let history_s = cursor.history_left().0 as f64 / TICKS_PER_SECOND as f64;
        telemetry::gauge("history_left_seconds", &[("table", table.name)], history_s);
        if !window.history {
            let lag_s = (now.0 - window.end.0) as f64 / TICKS_PER_SECOND as f64;
            telemetry::gauge("lag_seconds", &[("table", table.name)], lag_s);
        }
    }

    /// Looks again at `[from, to)`, just before the watermark, for rows that
    /// reached advanced hunting after their window was queried, and emits
    /// those not emitted before.
    fn sweep(&mut self, http: &mut dyn HttpClient, now: Ticks, index: usize, from: Ticks, to: Ticks) -> Result<(Vec<u8>, u32)> {
        let table = self.tables[index];
        let (mut out, mut keys) = (Vec::new(), Vec::new());
        self.fetch_range(http, now, table, from, to, &mut |c, t, answer, rows| {
            c.write_answer(t, answer, 0..rows, &mut out, |written| {
                let key = written_key(written);
                if c.planner.seen(index, &key.1) {
                    return false;
                }
                keys.push(key);
                count_written(written);
                true
            })
        })?;
        let swept = Window {
            table: index,
            start: from,
            end: to,
            watermark: to,
            history: false,
        };
        let count = keys.len();
        self.late_rows(table, count, &swept);
        self.planner.remember(index, keys);
        self.planner.sweep_done(index);
        Ok((out, count as u32))
    }

    /// What a query of `table` asks: the table, or the union it leads.
    fn source(&self, table: &Table) -> String {
        match self.union {
            Some(leader) if self.tables[leader].name == table.name => {
                let names: Vec<&str> = std::iter::once(leader)
                    .chain(self.planner.union_members(leader))
                    .map(|i| self.tables[i].name)
                    .collect();
                kql::union_source(&names)
            }
            _ => table.name.to_string(),
        }
    }

    /// Whether `event`, of a row before the watermark of table `index`, was
    /// not emitted before: a late arrival.
    fn is_new(&self, index: usize, event: &serde_json::Value) -> bool {
        row_key(event).is_some_and(|(_, k)| !self.planner.seen(index, &k))
    }

    /// Says that `count` rows of `table` before the watermark of `window`
    /// arrived after their own window had been collected.
    fn late_rows(&self, table: &Table, count: usize, window: &Window) {
        if count == 0 {
            return;
        }
        telemetry::info(
            &format!(
                "{count} late rows of {} arrived after their window was collected; emitting them now",
                table.name
            ),
            &[
                ("table", table.name),
                ("from", &window.start.to_iso()),
                ("to", &window.watermark.to_iso()),
            ],
        );
        telemetry::counter("late_rows_total", &[("table", table.name)], count as u64);
    }

    /// One query over `[start, end)`: its rows, or why they did not come.
    fn query(
        &mut self,
        http: &mut dyn HttpClient,
        now: Ticks,
        table: &'static Table,
        start: Ticks,
        end: Ticks,
        take: u32,
    ) -> Result<Fetch> {
        let query = kql::window_query(&self.source(table), start, end, take);
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
                self.report_malformed(table, &result, start);
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
    fn fetch_shrinking(&mut self, http: &mut dyn HttpClient, now: Ticks, mut window: Window, table: &'static Table) -> Result<Shrunk> {
        let mut take = self.config.max_rows_per_query + 1;
        loop {
            let fetched = match self.query(http, now, table, window.start, window.end, take) {
                Err(Error::Transient(message)) => {
                    // 5xx and resets: the host backs off; if they repeat, a
                    // smaller window may get through (graph-api.md §1.5).
                    self.server_errors += 1;
                    if self.server_errors >= 2 {
                        self.planner.halve_span(window.table);
                    }
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
                Fetch::Unavailable(message) if self.union == Some(window.table) => {
                    // A union fails as a whole when one of its tables is not
                    // available: its tables go on with queries of their own.
                    telemetry::warn(
                        &format!(
                            "the union of `union_tables` failed: {message}. Its tables are collected with a query each from now on; remove the unavailable one from `union_tables` and `tables`"
                        ),
                        &[("table", table.name)],
                    );
                    self.planner.dissolve_union(window.table);
                    self.union = None;
                    return Ok(Shrunk::Unavailable);
                }
                Fetch::Unavailable(message) => {
                    // Not licensed or not in this tenant: say so once, try again
                    // in an hour, keep collecting the other tables.
                    telemetry::error(
                        &format!(
                            "{} is not available: {message}. Collection of the other tables continues; {} is tried again in an hour. Remove it from `tables` to silence this.",
                            table.name, table.name
                        ),
                        &[("table", table.name)],
                    );
                    telemetry::counter("tables_unavailable_total", &[("table", table.name)], 1);
                    if let (Some(backfill), Some(cursor)) = (self.backfill.as_mut(), self.planner.cursors().get(window.table)) {
                        backfill.drop_table(cursor.behind());
                    }
                    self.planner.mark_unavailable(&window, now.saturating_add(Ticks::from_secs(3600)));
                    return Ok(Shrunk::Unavailable);
                }
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
                None if take < self.config.graph_row_cap => take = self.config.graph_row_cap,
                None => return Ok(Shrunk::OneTick(window, too_large)),
            }
        }
    }

    /// Every row of `table` in `[start, end)`, in as many queries as needed,
    /// each answer handed to `each` in time order with how many of its first
    /// rows belong to the range. A table that is not available yields no
    /// rows (its alert rows still do).
    fn fetch_range(
        &mut self,
        http: &mut dyn HttpClient,
        now: Ticks,
        table: &'static Table,
        start: Ticks,
        end: Ticks,
        each: &mut dyn FnMut(&mut Self, &'static Table, &HuntingResult, usize),
    ) -> Result<()> {
        let mut pending = vec![(start, end, self.config.max_rows_per_query + 1)];
        while let Some((s, e, take)) = pending.pop() {
            match self.query(http, now, table, s, e, take)? {
                Fetch::Rows(rows, n) => each(self, table, &rows, n),
                Fetch::Partial { rows, end: n, cut, .. } => {
                    each(self, table, &rows, n);
                    pending.push((cut, e, take));
                }
                Fetch::Unavailable(message) => {
                    telemetry::warn(&format!("{} is not available: {message}", table.name), &[("table", table.name)]);
                    return Ok(());
                }
                Fetch::TooLarge(reason) => {
                    let len = e.0 - s.0;
                    if len > 1 {
                        let mid = Ticks(s.0 + len / 2);
                        // Later half first on the stack, so rows come out in order.
                        pending.push((mid, e, take));
                        pending.push((s, mid, take));
                    } else if take < self.config.graph_row_cap {
                        pending.push((s, e, self.config.graph_row_cap));
                    } else {
                        one_tick_warning(table, s, &reason);
                        self.fetch_tick(http, now, table, s, each)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// For a row of a union's answer, the table it came from (named in
    /// [`kql::SOURCE_COLUMN`], which is taken off the row).
    fn source_table(&self, row: &mut Cells, columns: &Columns) -> Option<&'static Table> {
        self.union?;
        let (_, cell) = row.take(columns, kql::SOURCE_COLUMN)?;
        let name = cell.to_value();
        self.tables.iter().copied().find(|t| Some(t.name) == name.as_str())
    }

    /// The mapping of `answer`'s rows, compiled once: those of `table`,
    /// and of each table a union's rows may name.
    fn plan(&self, table: &'static Table, answer: &HuntingResult) -> Plan {
        let mut tables = vec![table];
        if self.union.is_some() {
            tables.extend(self.tables.iter().copied().filter(|t| !std::ptr::eq(*t, table)));
        }
        Plan::new(&tables, answer.schema.iter().map(|(name, _)| name.as_str()))
    }

    /// Maps rows `range` of `answer` to NDJSON in `out`, one at a time; an
    /// event stays in `out` only if `keep`, shown its summary, says so. A
    /// row that cannot be mapped is counted and logged.
    fn write_answer(
        &self,
        table: &'static Table,
        answer: &HuntingResult,
        range: std::ops::Range<usize>,
        out: &mut Vec<u8>,
        mut keep: impl FnMut(&mapping::Written) -> bool,
    ) {
        let plan = self.plan(table, answer);
        for i in range {
            let start = out.len();
            match plan.write_row(answer.raw(i), &self.context, out, |row, columns| self.source_table(row, columns)) {
                Ok(written) if keep(&written) => {}
                Ok(_) => out.truncate(start),
                Err(e) => {
                    telemetry::counter("rows_unmappable_total", &[("table", table.name)], 1);
                    telemetry::error(&e.to_string(), &[("table", table.name), ("key", &e.key)]);
                }
            }
        }
    }

    /// Maps rows `range` of `answer`, one at a time, handing each event to
    /// `emit` as a value; a row that cannot be mapped is counted and logged.
    fn map_answer(
        &self,
        table: &'static Table,
        answer: &HuntingResult,
        range: std::ops::Range<usize>,
        mut emit: impl FnMut(serde_json::Value),
    ) {
        let mut line = Vec::new();
        self.write_answer(table, answer, range, &mut line, |_| true);
        // The plan wrote each line as JSON; every one reads back.
        for event in serde_json::Deserializer::from_slice(&line)
            .into_iter::<serde_json::Value>()
            .flatten()
        {
            emit(event);
        }
    }
}

/// Counts an emitted event by table and class.
fn count_event(event: &serde_json::Value) {
    let table = event.pointer("/metadata/log_name").and_then(|v| v.as_str()).unwrap_or("");
    count_emitted(table, event["class_uid"].as_u64().unwrap_or(0));
}

/// Counts an event written straight to NDJSON by table and class.
fn count_written(written: &mapping::Written) {
    count_emitted(written.table, u64::from(written.class_uid));
}

fn count_emitted(table: &str, class_uid: u64) {
    telemetry::counter(
        "events_emitted_total",
        &[("table", table), ("class_uid", &class_uid.to_string())],
        1,
    );
}

/// An event's time and the short form of its `metadata.uid` (a hash of the
/// row's natural key), for recognising a row seen before.
fn row_key(event: &serde_json::Value) -> Option<(Ticks, String)> {
    let uid = event.pointer("/metadata/uid")?.as_str()?;
    let ms = event.get("time")?.as_i64()?;
    Some(seen_key(ms, uid))
}

/// [`row_key`] of an event written straight to NDJSON.
fn written_key(written: &mapping::Written) -> (Ticks, String) {
    seen_key(written.time_ms, &written.uid)
}

fn seen_key(time_ms: i64, uid: &str) -> (Ticks, String) {
    (
        Ticks(time_ms.saturating_mul(crate::time::TICKS_PER_MS)),
        uid.chars().take(16).collect(),
    )
}

/// What [`Collector::fetch_shrinking`] found.
enum Shrunk {
    /// The answer for the window's largest first part that fits one query,
    /// and how many of its rows belong to that part.
    Rows(Window, HuntingResult, usize),
    /// The window is one tick long and holds more rows than an answer
    /// carries, for this reason.
    OneTick(Window, String),
    /// The table is not available in this tenant.
    Unavailable,
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

/// How many of the first `end` rows of `answer` (oldest first) lie before
/// `time`.
fn before(answer: &HuntingResult, end: usize, time: Ticks) -> usize {
    (0..end).find(|&i| answer.time(i).is_none_or(|t| t >= time)).unwrap_or(end)
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
fn one_tick_warning(table: &Table, at: Ticks, reason: &str) {
    telemetry::warn(
        &format!(
            "{} holds more rows at the single timestamp {} than one answer carries ({reason}); collecting them in parts by a hash of their content",
            table.name,
            at.to_iso()
        ),
        &[("table", table.name)],
    );
}

/// How a `check` step that passed with a warning begins its detail (the
/// WIT contract's convention).
pub const CHECK_WARNING: &str = "warning: ";

/// The outcomes `queries_total` counts, each present from the start at 0.
pub const QUERY_OUTCOMES: &[&str] = &["ok", "too_large", "unavailable", "throttled", "error"];

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

/// Counts and logs rows that could not be read, each with its reason.
fn report_unreadable(table: &Table, reasons: &[String]) {
    for reason in reasons {
        telemetry::counter("rows_unmappable_total", &[("table", table.name)], 1);
        telemetry::error(reason, &[("table", table.name)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::fake::Scripted;
    use serde_json::json;

    const TOKEN: &str = r#"{"token_type":"Bearer","expires_in":3599,"access_token":"tok"}"#;

    fn rows(times: &[&str]) -> String {
        let results: Vec<_> = times
            .iter()
            .enumerate()
            .map(|(i, t)| json!({"Timestamp": t, "DeviceId": "d", "ActionType": "ProcessCreated", "ReportId": i, "ProcessId": i}))
            .collect();
        json!({"schema": [{"name": "Timestamp", "type": "DateTime"}], "results": results}).to_string()
    }

    /// A collector configuration for tests: fixed credentials, endpoints
    /// nobody listens on, and the given settings.
    fn test_config(settings: serde_json::Value) -> serde_json::Value {
        let mut config = json!({
            "tenant_id": "t", "client_id": "c", "client_secret": "s",
            "login_endpoint": "http://127.0.0.1:9", "graph_endpoint": "http://127.0.0.1:9",
        });
        for (key, value) in settings.as_object().expect("settings are an object") {
            config[key] = value.clone();
        }
        config
    }

    fn kql(request: &crate::http::Request) -> String {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        body["Query"].as_str().unwrap().to_string()
    }

    /// Less than two hours after the test collector's `start_time`: no
    /// live edge is collected ahead of history.
    const NEAR: &str = "2025-01-01T02:00:00Z";

    fn collector(max_rows: u32) -> Collector {
        let config = test_config(json!({
            "tables": ["DeviceProcessEvents"], "start_time": "2025-01-01T00:00:00Z",
            "max_rows_per_query": max_rows, "max_window": "1h",
        }));
        Collector::new(
            &config.to_string(),
            None,
            Ticks::parse("2025-01-02T00:00:00Z").unwrap(),
            Capabilities::without_certificate(),
        )
        .unwrap()
        .0
    }

    #[test]
    fn an_entity_table_emits_one_merged_state_per_device_per_interval() {
        let config = test_config(json!({
            "tables": ["DeviceInfo"], "start_time": "2025-01-01T00:00:00Z", "overlap": "0s",
        }));
        let now = Ticks::parse("2025-01-01T02:30:00Z").unwrap();
        let mut c = Collector::new(&config.to_string(), None, now, Capabilities::without_certificate())
            .unwrap()
            .0;
        let first_hour = json!({"schema": [], "results": [
            {"Timestamp": "2025-01-01T00:10:00Z", "DeviceId": "a", "OSPlatform": "Windows11", "Model": "X1", "ReportId": 1},
            {"Timestamp": "2025-01-01T00:20:00Z", "DeviceId": "b", "OSPlatform": "Linux", "ReportId": 2},
            {"Timestamp": "2025-01-01T00:25:00Z", "DeviceId": "a", "OSPlatform": "Windows11", "Model": "", "ReportId": 3},
        ]});
        let mut http = Scripted::default()
            .reply(200, TOKEN)
            .reply(200, &first_hour.to_string())
            .reply(200, &rows(&[]));
        let batch = c.poll(&mut http, now).unwrap();
        assert_eq!(batch.count, 2, "one state per device");
        let events: Vec<serde_json::Value> = String::from_utf8(batch.events)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let a = events.iter().find(|e| e["device"]["uid"] == "a").unwrap();
        assert_eq!(a["device"]["model"], "X1", "the partial row did not blank the model");
        let batch = c.poll(&mut http, now).unwrap();
        assert_eq!(batch.count, 0);
        // The second hour, and nothing of the half hour after 02:00.
        assert!(
            kql(&http.sent[2]).contains("Timestamp < datetime(2025-01-01T02:00:00.0000000Z)"),
            "{}",
            kql(&http.sent[2])
        );
        assert!(batch.next_poll_ms > 0, "the cycle is done");
        assert_eq!(http.sent.len(), 3);
    }

    /// `end_time` (the streaming source's backfill): windows stop there, and
    /// the cycle that reaches it is complete however late `now` is.
    #[test]
    fn collection_stops_at_end_time() {
        let config = test_config(json!({
            "tables": ["DeviceProcessEvents"], "start_time": "2025-01-01T00:00:00Z", "end_time": "2025-01-01T00:40:00Z",
            "overlap": "0s", "max_window": "1h",
        }));
        let now = Ticks::parse("2025-01-01T03:00:00Z").unwrap();
        let mut c = Collector::new(&config.to_string(), None, now, Capabilities::without_certificate())
            .unwrap()
            .0;
        let mut http = Scripted::default().reply(200, TOKEN).reply(200, &rows(&["2025-01-01T00:10:00Z"]));
        let batch = c.poll(&mut http, now).unwrap();
        assert_eq!(batch.count, 1);
        assert!(
            kql(&http.sent[1]).contains("Timestamp < datetime(2025-01-01T00:40:00.0000000Z)"),
            "{}",
            kql(&http.sent[1])
        );
        let next = c.poll(&mut http, now).unwrap();
        assert!(next.next_poll_ms > 0 && next.count == 0, "the cycle ends at end_time");
        assert_eq!(http.sent.len(), 2, "nothing after end_time is asked for");
        let bad = test_config(json!({"start_time": "2025-01-01T00:00:00Z", "end_time": "2024-12-31T00:00:00Z"}));
        assert!(Collector::new(&bad.to_string(), None, now, Capabilities::without_certificate()).is_err());
    }

    #[test]
    fn the_next_cycle_looks_again_at_the_overlap_in_its_one_query_and_emits_only_late_rows() {
        let config = test_config(json!({
            "tables": ["DeviceProcessEvents"], "start_time": "2025-01-01T00:00:00Z",
            "delay": "5m", "overlap": "10m",
        }));
        let row =
            |t: &str, id: u32| json!({"Timestamp": t, "DeviceId": "d", "ActionType": "ProcessCreated", "ReportId": id, "ProcessId": id});
        let answer = |rows: Vec<serde_json::Value>| json!({"schema": [], "results": rows}).to_string();
        let now = Ticks::parse("2025-01-01T00:30:00Z").unwrap();
        let mut c = Collector::new(&config.to_string(), None, now, Capabilities::without_certificate())
            .unwrap()
            .0;
        let mut http = Scripted::default()
            .reply(200, TOKEN)
            .reply(200, &answer(vec![row("2025-01-01T00:20:00Z", 1), row("2025-01-01T00:21:00Z", 2)]));
        assert_eq!(c.poll(&mut http, now).unwrap().count, 2);
        assert!(c.poll(&mut http, now).unwrap().next_poll_ms > 0, "the first cycle ends");

        // A minute later: the two rows again, one that arrived late, one new.
        let now = Ticks::parse("2025-01-01T00:31:00Z").unwrap();
        let mut http = Scripted::default().reply(
            200,
            &answer(vec![
                row("2025-01-01T00:20:00Z", 1),
                row("2025-01-01T00:21:00Z", 2),
                row("2025-01-01T00:22:00Z", 3),
                row("2025-01-01T00:25:30Z", 4),
            ]),
        );
        crate::telemetry::take_lines();
        let batch = c.poll(&mut http, now).unwrap();
        assert_eq!(http.sent.len(), 1, "one call for the look back and the new minute");
        assert!(
            kql(&http.sent[0])
                .contains("Timestamp >= datetime(2025-01-01T00:15:00.0000000Z) and Timestamp < datetime(2025-01-01T00:26:00.0000000Z)"),
            "{}",
            kql(&http.sent[0])
        );
        let ids: Vec<String> = String::from_utf8(batch.events)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["metadata"]["original_event_uid"].to_string())
            .collect();
        assert_eq!(ids, ["\"3\"", "\"4\""], "the late row and the new one, nothing twice");
        assert!(batch.next_poll_ms > 0, "the cycle is done: no sweep call follows");
        let lines = crate::telemetry::take_lines();
        assert!(
            lines.iter().any(|(_, l)| l.starts_with("1 late rows of DeviceProcessEvents")),
            "{lines:?}"
        );
    }

    #[test]
    fn a_cycle_a_day_behind_reports_backfill_progress_and_its_end() {
        let mut c = collector(100);
        let mut http = Scripted::default().reply(200, TOKEN);
        for _ in 0..40 {
            http = http.reply(200, &rows(&["2025-01-01T00:30:00Z"]));
        }
        crate::telemetry::take_lines();
        let mut now = Ticks::parse("2025-01-02T00:00:00Z").unwrap();
        let mut polls = 0;
        loop {
            let batch = c.poll(&mut http, now).unwrap();
            polls += 1;
            if batch.next_poll_ms > 0 {
                break;
            }
            now = now.saturating_add(Ticks::from_secs(3));
            assert!(polls < 40, "the cycle ends");
        }
        let lines: Vec<String> = crate::telemetry::take_lines().into_iter().map(|(_, l)| l).collect();
        let progress: Vec<&String> = lines.iter().filter(|l| l.starts_with("backfill")).collect();
        assert!(progress[0].starts_with("backfill: 23 h 55 min of data to collect"), "{progress:?}");
        assert!(
            progress
                .iter()
                .any(|l| l.contains("% of 23 h 55 min of data done") && l.contains("left")),
            "{progress:?}"
        );
        // 24 windows of an hour, and one more for the cycle that began
        // during the backfill (a minute had passed: 3 s a poll).
        assert!(
            progress.last().unwrap().starts_with("backfill complete: 25 windows"),
            "{progress:?}"
        );
        assert!(
            progress[1].ends_with("left; left: DeviceProcessEvents 12 h 55 min"),
            "per table: {progress:?}"
        );
        // Live data first: the last hour before `now - delay`, then history
        // from `start_time`.
        let queried: Vec<String> = http.sent[1..].iter().map(kql).collect();
        assert!(
            queried[0].contains("Timestamp >= datetime(2025-01-01T22:55:00.0000000Z)"),
            "{}",
            queried[0]
        );
        assert!(
            queried[0].contains("Timestamp < datetime(2025-01-01T23:55:00.0000000Z)"),
            "{}",
            queried[0]
        );
        assert!(
            queried[1].contains("Timestamp >= datetime(2025-01-01T00:00:00.0000000Z)"),
            "{}",
            queried[1]
        );
        // The cycle that began a minute in collected its live edge (with its
        // late-row look) before the rest of the history.
        let second_live = queried
            .iter()
            .position(|q| q.contains("Timestamp >= datetime(2025-01-01T23:45:00.0000000Z)"))
            .unwrap_or_else(|| panic!("{queried:#?}"));
        let last_history = queried
            .iter()
            .rposition(|q| q.contains("Timestamp < datetime(2025-01-01T22:55:00.0000000Z)"))
            .unwrap_or_else(|| panic!("{queried:#?}"));
        assert!(second_live < last_history, "{queried:#?}");

        // Caught up, the next cycle is not a backfill.
        let mut http = Scripted::default().reply(200, &rows(&[]));
        c.poll(&mut http, now.saturating_add(Ticks::from_secs(120))).unwrap();
        assert!(!crate::telemetry::take_lines().iter().any(|(_, l)| l.starts_with("backfill")));
    }

    #[test]
    fn a_capped_answer_keeps_the_rows_before_its_last_time_and_goes_on_from_there() {
        let mut c = collector(2);
        // Three rows for `take 3`: the window holds more than two.
        let mut http = Scripted::default().reply(200, TOKEN).reply(
            200,
            &rows(&["2025-01-01T00:00:01Z", "2025-01-01T00:00:02Z", "2025-01-01T00:00:02Z"]),
        );
        let batch = c.poll(&mut http, Ticks::parse(NEAR).unwrap()).unwrap();
        assert_eq!(batch.count, 1, "only the row before the last time is complete");
        assert_eq!(http.sent.len(), 2, "no halving query");
        assert!(batch.checkpoint.contains("2025-01-01T00:00:02.0000000Z"), "{}", batch.checkpoint);

        // The next window starts at that time and gets both tied rows.
        http = Scripted::default().reply(200, &rows(&["2025-01-01T00:00:02Z", "2025-01-01T00:00:02Z"]));
        let batch = c.poll(&mut http, Ticks::parse(NEAR).unwrap()).unwrap();
        assert!(
            kql(&http.sent[0]).contains("Timestamp >= datetime(2025-01-01T00:00:02.0000000Z)"),
            "{}",
            kql(&http.sent[0])
        );
        assert_eq!(batch.count, 2);
    }

    #[test]
    fn a_large_answer_is_handed_out_in_bounded_batches_and_the_watermark_moves_with_the_last() {
        let mut c = collector(50_000);
        c.batch_bytes = 1 << 20;
        let times: Vec<String> = (0..12_000)
            .map(|i| format!("2025-01-01T00:{:02}:{:02}.{:03}Z", i / 6000, (i / 100) % 60, i % 100))
            .collect();
        let times: Vec<&str> = times.iter().map(String::as_str).collect();
        let mut http = Scripted::default().reply(200, TOKEN).reply(200, &rows(&times));
        let now = Ticks::parse(NEAR).unwrap();
        let first = c.poll(&mut http, now).unwrap();
        assert!(
            first.count > 0 && (first.count as usize) < times.len(),
            "{} of {}",
            first.count,
            times.len()
        );
        assert!(first.events.len() <= c.batch_bytes + 64 * 2048, "{} bytes", first.events.len());
        assert_eq!(first.next_poll_ms, 0, "more is ready now");
        assert!(
            first.checkpoint.contains("2025-01-01T00:00:00.0000000Z"),
            "not advanced yet: {}",
            first.checkpoint
        );
        let (mut total, mut last) = (first.count, first);
        while !last.checkpoint.contains("2025-01-01T01:00:00.0000000Z") {
            last = c.poll(&mut http, now).unwrap();
            total += last.count;
            assert!(last.count > 0, "every part carries events");
        }
        assert_eq!(total as usize, times.len(), "every row once");
        assert_eq!(http.sent.len(), 2, "the parts come from the one answer");
    }

    /// A Graph stand-in for one-tick tests: it evaluates window and hash
    /// bucket queries over rows per table; the bucket of a row among n is
    /// its `ReportId` mod n. It never returns more than three rows.
    struct TickGraph(std::collections::BTreeMap<&'static str, Vec<serde_json::Value>>, Vec<String>);

    impl HttpClient for TickGraph {
        fn send(&mut self, request: crate::http::Request) -> Result<crate::http::Response, crate::http::TransportError> {
            let body = if request.url.contains("/token") {
                TOKEN.to_string()
            } else {
                let q = kql(&request);
                self.1.push(q.clone());
                let rows = &self.0[q.split(' ').next().unwrap()];
                let take: usize = q.rsplit("take ").next().unwrap().parse().unwrap();
                let rows: Vec<&serde_json::Value> = match q.split_once("hash(tostring(pack_all()), ") {
                    Some((_, rest)) => {
                        let (n, i) = rest.split_once(") == ").unwrap();
                        let (n, i): (u64, u64) = (n.parse().unwrap(), i.split(' ').next().unwrap().parse().unwrap());
                        rows.iter().filter(|r| r["ReportId"].as_u64().unwrap() % n == i).collect()
                    }
                    None => {
                        let bound = |after: &str| Ticks::parse(q.split(after).nth(1).unwrap().split(')').next().unwrap()).unwrap();
                        let (start, end) = (bound(">= datetime("), bound("< datetime("));
                        rows.iter()
                            .filter(|r| (start..end).contains(&Ticks::parse(r["Timestamp"].as_str().unwrap()).unwrap()))
                            .collect()
                    }
                };
                let rows: Vec<_> = rows.into_iter().take(take.min(3)).collect();
                json!({"schema": [], "results": rows}).to_string()
            };
            Ok(crate::http::Response {
                status: 200,
                headers: vec![],
                body: body.into_bytes(),
            })
        }
    }

    /// Polls until the cycle ends; the events.
    fn collect_all(c: &mut Collector, graph: &mut TickGraph, now: Ticks) -> Vec<serde_json::Value> {
        let mut events = Vec::new();
        for _ in 0..200 {
            let batch = c.poll(graph, now).unwrap();
            for line in String::from_utf8(batch.events).unwrap().lines() {
                events.push(serde_json::from_str(line).unwrap());
            }
            if batch.next_poll_ms > 0 {
                return events;
            }
        }
        panic!("the cycle did not end; queries: {:#?}", graph.1);
    }

    fn one_tick_collector(tables: serde_json::Value) -> Collector {
        // Graph's limit set to three rows.
        let config = test_config(json!({
            "tables": tables, "start_time": "2025-01-01T00:00:00Z",
            "max_rows_per_query": 2, "graph_row_cap": 3, "max_window": "1s", "delay": "0s",
            "max_calls_per_minute": 1000,
        }));
        Collector::new(
            &config.to_string(),
            None,
            Ticks::parse("2025-01-01T00:00:01Z").unwrap(),
            Capabilities::without_certificate(),
        )
        .unwrap()
        .0
    }

    const TICK: &str = "2025-01-01T00:00:00.5000000Z";

    #[test]
    fn more_rows_at_one_instant_than_an_answer_carries_are_collected_by_hash_buckets() {
        let mut c = one_tick_collector(json!(["DeviceProcessEvents"]));
        let all: Vec<serde_json::Value> = (0..7)
            .map(|i| json!({"Timestamp": TICK, "DeviceId": "d", "ActionType": "ProcessCreated", "ReportId": i, "ProcessId": i}))
            .collect();
        let mut graph = TickGraph([("DeviceProcessEvents", all)].into(), Vec::new());
        let events = collect_all(&mut c, &mut graph, Ticks::parse("2025-01-01T00:00:01Z").unwrap());
        let mut ids: Vec<&str> = events
            .iter()
            .map(|e| e["metadata"]["original_event_uid"].as_str().unwrap())
            .collect();
        ids.sort();
        assert_eq!(ids, ["0", "1", "2", "3", "4", "5", "6"], "every row once; queries: {:#?}", graph.1);
        assert!(
            graph.1.iter().any(|q| q.contains("hash(tostring(pack_all()), 4) == 2")),
            "{:#?}",
            graph.1
        );
        assert!(
            c.planner.checkpoint(&[]).contains("2025-01-01T00:00:01.0000000Z"),
            "the watermark passed the instant"
        );
    }

    #[test]
    fn entity_rows_at_one_overfull_instant_are_all_collected_as_states() {
        let config = test_config(json!({
            "tables": ["DeviceInfo"], "start_time": "2025-01-01T00:00:00Z", "entity_interval": "1m",
            "max_rows_per_query": 2, "graph_row_cap": 3, "max_window": "1s", "delay": "0s",
            "max_calls_per_minute": 1000,
        }));
        let now = Ticks::parse("2025-01-01T00:01:00Z").unwrap();
        let mut c = Collector::new(&config.to_string(), None, now, Capabilities::without_certificate())
            .unwrap()
            .0;
        let rows: Vec<serde_json::Value> = (0..5)
            .map(|i| json!({"Timestamp": TICK, "DeviceId": format!("d{i}"), "OSPlatform": "Windows11", "ReportId": i}))
            .collect();
        let mut graph = TickGraph([("DeviceInfo", rows)].into(), Vec::new());
        let events = collect_all(&mut c, &mut graph, now);
        let mut devices: Vec<&str> = events.iter().map(|e| e["device"]["uid"].as_str().unwrap()).collect();
        devices.sort();
        assert_eq!(devices, ["d0", "d1", "d2", "d3", "d4"], "queries: {:#?}", graph.1);
        assert!(graph.1.iter().any(|q| q.contains("hash(tostring(pack_all())")), "{:#?}", graph.1);
    }

    #[test]
    fn alerts_and_their_evidence_at_one_overfull_instant_are_all_collected_and_joined() {
        let mut c = one_tick_collector(json!(["AlertInfo", "AlertEvidence"]));
        let alerts: Vec<serde_json::Value> = (0..5)
            .map(|i| json!({"Timestamp": TICK, "AlertId": format!("a{i}"), "Title": "t", "Severity": "High", "ReportId": i}))
            .collect();
        let evidence: Vec<serde_json::Value> = (0..5)
            .map(|i| json!({"Timestamp": TICK, "AlertId": format!("a{i}"), "EntityType": "Machine", "DeviceId": format!("d{i}"), "ReportId": i}))
            .collect();
        let mut graph = TickGraph([("AlertInfo", alerts), ("AlertEvidence", evidence)].into(), Vec::new());
        let events = collect_all(&mut c, &mut graph, Ticks::parse("2025-01-01T00:00:01Z").unwrap());
        let mut joined: Vec<(String, String)> = events
            .iter()
            .map(|e| {
                (
                    e["finding_info"]["uid"].as_str().unwrap().to_string(),
                    e["evidences"][0]["device"]["uid"].as_str().unwrap_or("none").to_string(),
                )
            })
            .collect();
        joined.sort();
        let expected: Vec<(String, String)> = (0..5).map(|i| (format!("a{i}"), format!("d{i}"))).collect();
        assert_eq!(joined, expected, "each alert once, with its own evidence; queries: {:#?}", graph.1);
        assert!(
            graph.1.iter().any(|q| q.starts_with("AlertEvidence | where Timestamp == ")),
            "{:#?}",
            graph.1
        );
    }

    #[test]
    fn a_capped_answer_of_one_timestamp_or_out_of_order_is_halved() {
        for answer in [
            rows(&["2025-01-01T00:00:00Z", "2025-01-01T00:00:00Z", "2025-01-01T00:00:00Z"]),
            rows(&["2025-01-01T00:00:03Z", "2025-01-01T00:00:01Z", "2025-01-01T00:00:02Z"]),
        ] {
            let mut c = collector(2);
            let mut http = Scripted::default().reply(200, TOKEN).reply(200, &answer).reply(200, &rows(&[]));
            let batch = c.poll(&mut http, Ticks::parse(NEAR).unwrap()).unwrap();
            assert_eq!(batch.count, 0);
            assert_eq!(http.sent.len(), 3);
            assert!(
                kql(&http.sent[2]).contains("Timestamp < datetime(2025-01-01T00:30:00.0000000Z)"),
                "the window is halved: {}",
                kql(&http.sent[2])
            );
        }
    }
}
