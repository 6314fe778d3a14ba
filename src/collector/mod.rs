//! The collector: one `poll` runs the next planned query, maps its rows and
//! returns them as a batch with the checkpoint that covers them.
//!
//! Its parts (private modules), along the flow:
//! - `fetch`: queries, windows shrunk until their answer fits, ranges and
//!   overfull instants;
//! - `pending`: an answer handed out in bounded batches;
//! - `emit`: rows mapped to events, and counted;
//! - `join`: followers' events folded into their leaders';
//! - `check`: the `check` command's requests;
//! - this file: the poll loop, which picks the next piece of work and
//!   turns what the parts return into a batch and a checkpoint.

mod check;
mod emit;
mod fetch;
mod join;
mod pending;

pub use check::{CHECK_WARNING, CheckStep};
pub use fetch::QUERY_OUTCOMES;

use crate::capabilities::Capabilities;
use crate::config::CollectorConfig;
use crate::error::{Error, Result};
use crate::graph::GraphClient;
use crate::http::HttpClient;
use crate::kql;
use crate::mapping::graph_security::Kind;
use crate::mapping::{self, Context, Table};
use crate::planner::{Planner, Window};
use crate::progress::Backfill;
use crate::streams::Stream;
use crate::telemetry;
use crate::time::{TICKS_PER_MS, TICKS_PER_SECOND, Ticks};
use emit::{Mapper, before, report_unreadable, written_key};
use fetch::{Fetcher, Shrunk, first_buckets, one_tick_warning};
use pending::Pending;

/// Rows of a table that others follow, from one answer: rows
/// `..before_watermark` lie before the window's watermark (they went out
/// before unless they came late), rows `before_watermark..end` are new.
struct Leaders {
    answer: crate::answer::HuntingResult,
    before_watermark: usize,
    end: usize,
}

/// What the host needs to know after `init`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceInfo {
    pub name: String,
    pub version: String,
    pub allowed_origins: Vec<String>,
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
    fetcher: Fetcher,
    planner: Planner,
    streams: Vec<Stream>,
    context: Context,
    /// Where tables and streams without a checkpoint start.
    start: Ticks,
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
            if let Some(join) = &table.join
                && (!join.only_without_deprecated || !config.ocsf.deprecated_classes)
            {
                planner.set_follower(table.name, join.leader);
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
        let monotonic_ms = host.monotonic_ms;
        let collector = Collector {
            fetcher: Fetcher::new(
                GraphClient::new(&config, host),
                monotonic_ms,
                config.max_rows_per_query,
                config.graph_row_cap,
            ),
            context: Context {
                tenant_uid: Some(config.tenant_id.clone()),
                no_deprecated_classes: !config.ocsf.deprecated_classes,
                collected_at: None,
            },
            tables,
            planner,
            streams,
            start,
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
        let login = self.config.login_endpoint.clone();
        check::run(&mut self.fetcher.graph, http, now, &login, &self.tables, &self.streams)
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
        if self.pending.as_ref().is_some_and(Pending::drained) {
            self.next_bucket(http, now)?;
        }
        if self.pending.is_some() {
            let (events, count) = self.continue_pending(now);
            return Ok(self.batch(events, count, now));
        }
        if let Some(stream) = self.streams.iter_mut().find(|s| s.due) {
            let (events, count) = stream.poll_page(http, &mut self.fetcher.graph, &self.context, now, self.start)?;
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

    /// How the collected tables' rows are mapped.
    fn mapper(&self) -> Mapper<'_> {
        Mapper {
            tables: &self.tables,
            union: self.union.is_some(),
            context: &self.context,
        }
    }

    /// Queries `window`, shrinking it while it holds more rows than one
    /// query may return. A table that others follow is mapped at once, with
    /// its followers; any other is handed out in batches of at most
    /// [`MAX_BATCH_BYTES`] from the answer as it came.
    fn collect_window(&mut self, http: &mut dyn HttpClient, now: Ticks, window: Window, table: &'static Table) -> Result<(Vec<u8>, u32)> {
        let source = self.source(table);
        let shrunk = match self.fetcher.shrink(http, now, table, &source, window) {
            Err(Error::Transient(message)) => {
                // 5xx and resets: the host backs off; if they repeat, a
                // smaller window may get through (graph-api.md §1.5).
                if self.fetcher.server_errors_repeat() {
                    self.planner.halve_span(window.table);
                }
                return Err(Error::Transient(message));
            }
            other => other?,
        };
        let (window, answer, end) = match shrunk {
            Shrunk::Rows(window, answer, end) => (window, answer, end),
            Shrunk::Unavailable(message) => {
                self.unavailable(now, table, &window, &message);
                return Ok((Vec::new(), 0));
            }
            // More rows at one instant than an answer carries: they are
            // collected by hash buckets of their content; all buckets at
            // once for an entity table or a table others follow, otherwise
            // a bucket a poll (`next_bucket`).
            Shrunk::OneTick(window, reason) => {
                one_tick_warning(table, window.start, &reason);
                let entity = mapping::entity_key(table.name);
                if entity.is_none() && self.planner.followers(window.table).is_empty() {
                    self.pending = Some(Pending::buckets(window, table, first_buckets()));
                    return Ok((Vec::new(), 0));
                }
                // Joined with its followers: all the tick's rows at once.
                let all_before = entity.is_none() && window.start < window.watermark;
                let mut leaders = Vec::new();
                for answer in self.fetcher.tick(http, now, table, &source, window.start)? {
                    telemetry::counter("rows_fetched_total", &[("table", table.name)], answer.len() as u64);
                    let (answer, len) = match entity {
                        // Each bucket merged on its own: an entity whose rows
                        // fall in two buckets gets two states, none is lost.
                        Some(key) => {
                            let merged = crate::snapshot::merge(&answer, answer.len(), key, table.name)?;
                            report_unreadable(table, &merged.unreadable);
                            (merged.answer, merged.len)
                        }
                        None => {
                            let len = answer.len();
                            (answer, len)
                        }
                    };
                    let before_watermark = if all_before { len } else { 0 };
                    leaders.push(Leaders {
                        answer,
                        before_watermark,
                        end: len,
                    });
                }
                return self.join_followers(http, now, table, window, leaders);
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
        if self.planner.followers(window.table).is_empty() {
            self.pending = Some(Pending::answer(window, table, answer, end));
            return Ok(self.continue_pending(now));
        }
        let before_watermark = before(&answer, end, window.watermark);
        let leaders = Leaders {
            answer,
            before_watermark,
            end,
        };
        self.join_followers(http, now, table, window, vec![leaders])
    }

    /// A table Graph says is not in this tenant: a union falls apart into
    /// its tables; a table is tried again in an hour while the others go on.
    fn unavailable(&mut self, now: Ticks, table: &Table, window: &Window, message: &str) {
        if self.union == Some(window.table) {
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
            return;
        }
        // Not licensed or not in this tenant: say so once, try again in an
        // hour, keep collecting the other tables.
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
        self.planner.mark_unavailable(window, now.saturating_add(Ticks::from_secs(3600)));
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
        leaders: Vec<Leaders>,
    ) -> Result<(Vec<u8>, u32)> {
        let rows = leaders.iter().map(|l| l.end).sum();
        // Followers are looked for in the new part only: their rows of the
        // stretch before the watermark went out with their leaders' then.
        // Their answers are all fetched first: the events are trees that
        // borrow from every answer until they are written.
        let (from, to) = (window.start.max(window.watermark), window.end);
        let mut followers = Vec::new();
        for follower in self.planner.followers(window.table).into_iter().filter(|_| from < to) {
            let follower_table = self.tables[follower];
            let source = self.source(follower_table);
            let answers = self.fetcher.range(http, now, follower_table, &source, from, to)?;
            for (_, rows) in &answers {
                telemetry::counter("rows_fetched_total", &[("table", follower_table.name)], *rows as u64);
            }
            followers.push((follower_table, answers));
        }
        let mut keys = Vec::new();
        let (out, count) = {
            let mapper = self.mapper();
            let mut events = join::Joined::default();
            let mut late = 0;
            for part in &leaders {
                for (event, written) in mapper.trees(table, &part.answer, 0..part.before_watermark) {
                    let key = written_key(&written);
                    if !self.planner.seen(window.table, &key.1) {
                        late += 1;
                        keys.push(key);
                        events.push(event, written);
                    }
                }
            }
            late_rows(table, late, &window);
            for part in &leaders {
                for (event, written) in mapper.trees(table, &part.answer, part.before_watermark..part.end) {
                    keys.push(written_key(&written));
                    events.push(event, written);
                }
            }
            for (follower_table, answers) in &followers {
                let mut joined = Vec::new();
                for (answer, rows) in answers {
                    joined.extend(mapper.trees(follower_table, answer, 0..*rows));
                }
                events.fold(follower_table, joined);
            }
            events.write()
        };
        self.finish_window(now, table, &window, rows, keys);
        Ok((out, count))
    }

    /// Maps the next part of the pending window; when it was the last part,
    /// advances the watermark.
    fn continue_pending(&mut self, now: Ticks) -> (Vec<u8>, u32) {
        let Some(mut p) = self.pending.take() else {
            return (Vec::new(), 0);
        };
        let index = p.window.table;
        let (out, count) = p.write_part(&self.mapper(), |key| self.planner.seen(index, key), self.batch_bytes);
        if !p.done() {
            self.pending = Some(p);
        } else {
            late_rows(p.table, p.late_emitted, &p.window);
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
        let source = self.source(p.table);
        let step = match self.fetcher.bucket(http, now, p.table, &source, p.window.start, &mut p.buckets) {
            Ok(Some(result)) => {
                telemetry::counter("rows_fetched_total", &[("table", p.table.name)], result.len() as u64);
                p.load(result);
                Ok(())
            }
            other => other.map(|_| ()),
        };
        self.pending = Some(p);
        step
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
        let source = self.source(table);
        let answers = self.fetcher.range(http, now, table, &source, from, to)?;
        let (mut out, mut keys) = (Vec::new(), Vec::new());
        for (answer, rows) in &answers {
            self.mapper().write(table, answer, 0..*rows, &mut out, |written| {
                let key = written_key(written);
                if self.planner.seen(index, &key.1) {
                    return false;
                }
                keys.push(key);
                emit::count_written(written);
                true
            });
        }
        let swept = Window {
            table: index,
            start: from,
            end: to,
            watermark: to,
            history: false,
        };
        let count = keys.len();
        late_rows(table, count, &swept);
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
}

/// Says that `count` rows of `table` before the watermark of `window`
/// arrived after their own window had been collected.
fn late_rows(table: &Table, count: usize, window: &Window) {
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

#[cfg(test)]
mod tests;
