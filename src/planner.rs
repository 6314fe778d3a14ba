//! The collection planner: which table to query next, over which time window,
//! and the checkpoint that records how far each table got.
//!
//! Windows are half-open, `[start, end)` on `Timestamp`, and consecutive
//! windows of a table share a boundary. A row belongs to exactly one window,
//! so rows that share one timestamp are neither lost nor repeated, however
//! the windows are cut.
//!
//! Work is organised in cycles. A cycle fixes its end (`now - delay`) when it
//! begins, and each table is collected up to that end in windows of at most
//! `max_window`, the table furthest behind first. When every table has
//! reached the end the cycle is over and the collector waits `poll_interval`.
//!
//! Live data comes first. A table more than two live spans behind (a first
//! start from `start_time`, a restart after a long stop) does not walk up
//! from its watermark: the cycle first collects its recent edge, the last
//! [`LIVE_SPAN`] (or an entity table's last period), as a stretch *ahead*
//! of the watermark. History, from the watermark up to that stretch, is
//! collected in the windows that the live edges leave over: a cycle's live
//! windows come before any history window, and the collector begins the
//! next cycle as soon as it is due even while history remains. When the
//! watermark reaches a stretch collected ahead, it jumps past it. The
//! checkpoint keeps the stretches, so a restart neither repeats nor skips
//! them.
//!
//! Rows can reach advanced hunting after their window was queried. Each
//! cycle therefore looks again at the `overlap` before a table's watermark.
//! For an event table that look is folded into the cycle's first window,
//! which starts `overlap` before the watermark: one call, not two. Rows of
//! that stretch that were emitted before are recognised by their keys
//! (`recent`) and dropped. Entity tables, collected once a period, get a
//! sweep of their own (`next_sweep`).

use crate::error::{Error, Result};
use crate::time::{TICKS_PER_SECOND, Ticks};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One table's progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub table: &'static str,
    /// Every row with `Timestamp < watermark` has been collected.
    pub watermark: Ticks,
    /// The window length to try next; shrinks when windows are too full and
    /// grows back when they are sparse.
    pub span: Ticks,
    /// The table is not available in this tenant (not licensed); it is
    /// skipped until this time, then tried again.
    pub unavailable_until: Option<Ticks>,
    /// The table is collected together with this one (AlertEvidence with
    /// AlertInfo, or the first table of a union): it gets no windows of its
    /// own and moves with its leader.
    pub follows: Option<usize>,
    /// It follows as a member of its leader's union query, not with
    /// queries of its own.
    pub in_union: bool,
    /// Where collection of this table began.
    pub floor: Ticks,
    /// Keys of rows already emitted with a time in the overlap before the
    /// watermark, for deduplicating late-row sweeps.
    pub recent: Vec<(Ticks, String)>,
    /// A late-row sweep of its own is due in the current cycle (entity
    /// tables).
    pub sweep_due: bool,
    /// The late-row look of this cycle, folded into the table's windows,
    /// has got this far: the next window starts here instead of at the
    /// watermark. `None` once the watermark is reached.
    pub sweep_from: Option<Ticks>,
    /// Entity tables are collected once per period, up to its last boundary.
    pub period: Option<Ticks>,
    /// How far the current cycle takes this table: the cycle's end, or for
    /// a periodic table the last period boundary before it.
    pub until: Ticks,
    /// Stretches `[from, to)` above the watermark that are collected already
    /// (live data first), in time order and apart. The last one's end is the
    /// table's live edge; history fills the gap below the first.
    pub ahead: Vec<(Ticks, Ticks)>,
    /// The window length to try next for history (below the first stretch
    /// ahead), sized apart from the live edge's, whose windows are short.
    pub history_span: Ticks,
}

impl Cursor {
    /// Where the next live window starts: every row before it and at or
    /// after the watermark's gap is collected.
    pub fn edge(&self) -> Ticks {
        self.ahead.last().map_or(self.watermark, |s| s.1)
    }

    /// The data time still to collect up to `until`: the span from the
    /// watermark, less the stretches already collected ahead.
    pub fn behind(&self) -> Ticks {
        Ticks((self.until.0.max(self.edge().0) - self.watermark.0 - self.collected_ahead()).max(0))
    }

    /// The length of the stretches collected ahead.
    fn collected_ahead(&self) -> i64 {
        self.ahead.iter().map(|(from, to)| to.0 - from.0).sum()
    }

    /// The history still to collect: from the watermark to the last stretch
    /// collected ahead, less the stretches.
    pub fn history_left(&self) -> Ticks {
        match self.ahead.last() {
            None => Ticks(0),
            Some(last) => Ticks((last.1.0 - self.watermark.0 - self.collected_ahead()).max(0)),
        }
    }

    /// The earliest time a late-row look may reach back to: the floor, or
    /// the start of the stretch the live edge is in (below it lies history
    /// not collected yet, which a look must not take).
    fn look_floor(&self) -> Ticks {
        self.ahead.last().map_or(self.floor, |s| s.0.max(self.floor))
    }
}

/// Moves `watermark` past every stretch collected ahead that it has
/// reached, which are then behind it.
fn pass_reached(watermark: &mut Ticks, ahead: &mut Vec<(Ticks, Ticks)>) {
    while let Some(&(from, to)) = ahead.first() {
        if *watermark < from {
            break;
        }
        *watermark = (*watermark).max(to);
        ahead.remove(0);
    }
}

/// A table this far behind starts its live edge this far back, and its
/// history in windows apart. Twice this behind, the split is made.
pub const LIVE_SPAN: Ticks = Ticks(3600 * TICKS_PER_SECOND);

/// A window to query: `[start, end)`. Rows before `watermark` (when the
/// window starts before it) were looked for before: those emitted already
/// are dropped, the others are late arrivals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub table: usize,
    pub start: Ticks,
    pub end: Ticks,
    /// The table's watermark when the window was planned (its live edge,
    /// for a live window).
    pub watermark: Ticks,
    /// A window of history, below the first stretch collected ahead.
    pub history: bool,
}

impl Window {
    /// The first half of this window, or `None` when it is one tick long.
    pub fn first_half(&self) -> Option<Window> {
        let len = self.end.0 - self.start.0;
        (len > 1).then(|| Window {
            end: Ticks(self.start.0 + len / 2),
            ..*self
        })
    }
}

#[derive(Debug)]
pub struct Planner {
    cursors: Vec<Cursor>,
    /// Entries of the saved checkpoint for tables not collected now; kept so
    /// that re-enabling a table resumes where it stopped.
    dormant: BTreeMap<String, TableState>,
    max_window: Ticks,
    /// How far before the watermark each cycle looks again for late rows.
    overlap: Ticks,
    cycle_end: Option<Ticks>,
    /// Saved stream states, handed to the streams when they are created.
    streams: BTreeMap<String, StreamState>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointDoc {
    version: u32,
    tables: BTreeMap<String, TableState>,
    /// Security-API streams (incidents, alerts), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    streams: BTreeMap<String, StreamState>,
}

/// Where a security-API stream stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamState {
    /// Objects updated at or after this `lastUpdateDateTime` are read next.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Ids already emitted with exactly that time.
    #[serde(default)]
    pub seen: std::collections::BTreeSet<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct TableState {
    /// ISO 8601 with 7 fractional digits.
    watermark: String,
    /// Where collection of this table began; late-row sweeps never reach
    /// before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    floor: Option<String>,
    /// Keys of the rows already emitted within the overlap before the
    /// watermark: `[ticks, key]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    recent: Vec<(i64, String)>,
    /// Stretches above the watermark collected already (live data first):
    /// `[from, to]`, ISO 8601. Version 2 of the checkpoint; a collector that
    /// reads only version 1 refuses it rather than collect them again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ahead: Vec<(String, String)>,
}

/// The version written when no table has a stretch ahead, readable by every
/// earlier collector.
const CHECKPOINT_VERSION: u32 = 1;
/// The version written when a table has stretches ahead of its watermark.
const CHECKPOINT_VERSION_AHEAD: u32 = 2;

impl Planner {
    /// A planner for `tables`, resuming from `checkpoint` where given;
    /// tables without a saved watermark start at `start`.
    pub fn new(tables: &[&'static str], checkpoint: Option<&str>, start: Ticks, max_window: Ticks) -> Result<Planner> {
        let (mut saved, streams) = match checkpoint {
            None => (BTreeMap::new(), BTreeMap::new()),
            Some(text) => {
                let doc: CheckpointDoc =
                    serde_json::from_str(text).map_err(|e| Error::Fatal(format!("the saved checkpoint is not readable ({e})")))?;
                if doc.version != CHECKPOINT_VERSION && doc.version != CHECKPOINT_VERSION_AHEAD {
                    return Err(Error::Fatal(format!(
                        "the saved checkpoint has version {}, this collector reads versions {CHECKPOINT_VERSION} and {CHECKPOINT_VERSION_AHEAD}; it was written by a newer defender-ocsf",
                        doc.version
                    )));
                }
                (doc.tables, doc.streams)
            }
        };
        let mut cursors = Vec::with_capacity(tables.len());
        for table in tables {
            let unreadable = |e: String| Error::Fatal(format!("the saved checkpoint of {table} is not readable: {e}"));
            let (watermark, floor, recent, ahead) = match saved.remove(*table) {
                Some(state) => {
                    let watermark = Ticks::parse(&state.watermark).map_err(unreadable)?;
                    let floor = match &state.floor {
                        Some(f) => Ticks::parse(f).map_err(unreadable)?,
                        None => watermark,
                    };
                    let mut ahead = Vec::with_capacity(state.ahead.len());
                    let mut last = watermark;
                    for (from, to) in &state.ahead {
                        let (from, to) = (Ticks::parse(from).map_err(unreadable)?, Ticks::parse(to).map_err(unreadable)?);
                        if from < last || to < from {
                            return Err(unreadable(format!(
                                "its stretches ahead of the watermark are out of order at {}",
                                from.to_iso()
                            )));
                        }
                        ahead.push((from, to));
                        last = to;
                    }
                    let mut watermark = watermark;
                    pass_reached(&mut watermark, &mut ahead);
                    let recent = state.recent.into_iter().map(|(t, k)| (Ticks(t), k)).collect();
                    (watermark, floor, recent, ahead)
                }
                None => (start, start, Vec::new(), Vec::new()),
            };
            cursors.push(Cursor {
                table,
                watermark,
                span: max_window,
                unavailable_until: None,
                follows: None,
                in_union: false,
                floor,
                recent,
                sweep_due: false,
                sweep_from: None,
                period: None,
                until: watermark,
                ahead,
                history_span: max_window,
            });
        }
        Ok(Planner {
            cursors,
            dormant: saved,
            max_window,
            overlap: Ticks(0),
            cycle_end: None,
            streams,
        })
    }

    /// Sets how far before the watermark each cycle looks again for late
    /// rows (none by default).
    pub fn set_overlap(&mut self, overlap: Ticks) {
        self.overlap = overlap;
    }

    pub fn cursors(&self) -> &[Cursor] {
        &self.cursors
    }

    /// The end of the current cycle, if one is running.
    pub fn cycle_end(&self) -> Option<Ticks> {
        self.cycle_end
    }

    /// The saved state of the stream `name`.
    pub fn stream_state(&self, name: &str) -> StreamState {
        self.streams.get(name).cloned().unwrap_or_default()
    }

    /// Starts a cycle that collects up to `end`, unless one is running, and
    /// says whether it started one. Tables whose unavailability has expired
    /// are tried again.
    pub fn begin_cycle(&mut self, end: Ticks, now: Ticks) -> bool {
        let starts = self.cycle_end.is_none();
        if starts {
            self.cycle_end = Some(end);
            for c in &mut self.cursors {
                if c.unavailable_until.is_some_and(|t| t <= now) {
                    c.unavailable_until = None;
                }
            }
            for i in 0..self.cursors.len() {
                let c = &mut self.cursors[i];
                c.until = match c.period {
                    Some(p) => Ticks(end.0 - end.0.rem_euclid(p.0.max(1))).max(c.edge()),
                    None => end.max(c.edge()),
                };
                // Far behind: the recent edge first, as a stretch ahead. Not
                // for a table that does not answer: its edge stands still,
                // and it would gain an empty stretch every other hour.
                let live = c.period.unwrap_or(LIVE_SPAN);
                let live_from = c.until.saturating_sub(live);
                if c.follows.is_none() && c.unavailable_until.is_none() && live_from > c.edge().saturating_add(live) {
                    c.ahead.push((live_from, live_from));
                    c.sweep_from = None;
                    self.sync_followers(i);
                }
                let c = &mut self.cursors[i];
                let edge = c.edge();
                let from = edge.saturating_sub(self.overlap).max(c.look_floor());
                let look = c.follows.is_none() && from < edge;
                // An event table's look is its first window's first part; a
                // periodic table is swept apart, in the cycles that collect it.
                c.sweep_from = (look && c.period.is_none()).then_some(from);
                c.sweep_due = look && c.period.is_some() && edge < c.until;
            }
        }
        starts
    }

    /// Ends the current cycle where only history is left, so that the next
    /// one can collect the live edges again; false (and nothing changes)
    /// while a live window or sweep of this cycle is still to come.
    pub fn end_cycle_for_live(&mut self) -> bool {
        if self.cycle_end.is_none() || !self.live_done() {
            return false;
        }
        self.cycle_end = None;
        true
    }

    /// True when every table's live edge has reached the current cycle's
    /// end (history may remain).
    pub fn live_done(&self) -> bool {
        let Some(end) = self.cycle_end else {
            return true;
        };
        self.cursors.iter().all(|c| {
            (c.edge() >= c.until.min(end) && c.sweep_from.is_none() && !c.sweep_due) || c.unavailable_until.is_some() || c.follows.is_some()
        })
    }

    /// Makes the tables that follow table `index` stand where it stands.
    fn sync_followers(&mut self, index: usize) {
        let (watermark, ahead) = (self.cursors[index].watermark, self.cursors[index].ahead.clone());
        for f in self.followers(index).into_iter().chain(self.union_members(index)) {
            self.cursors[f].watermark = watermark;
            self.cursors[f].ahead.clone_from(&ahead);
        }
    }

    /// The next table due for a late-row sweep of its own, and the range to
    /// sweep: `[max(edge - overlap, floor), edge)`, never below the stretch
    /// the live edge is in.
    pub fn next_sweep(&mut self) -> Option<(usize, Ticks, Ticks)> {
        let overlap = self.overlap;
        for (i, c) in self.cursors.iter_mut().enumerate() {
            if !c.sweep_due || c.unavailable_until.is_some() {
                continue;
            }
            let edge = c.edge();
            let from = edge.saturating_sub(overlap).max(c.look_floor());
            if from >= edge {
                c.sweep_due = false;
                continue;
            }
            return Some((i, from, edge));
        }
        None
    }

    /// Makes `table` an entity table, collected once per `period`.
    pub fn set_period(&mut self, table: &str, period: Ticks) {
        if let Some(c) = self.cursors.iter_mut().find(|c| c.table == table) {
            c.period = Some(period);
            // One window per period at most: its rows merge into one state
            // per entity, which a longer window would blur.
            c.span = c.span.min(period);
            c.history_span = c.history_span.min(period);
        }
    }

    /// The data time at which the next cycle has something to do: a poll
    /// interval past the furthest-behind live edge, or a periodic table's
    /// next period boundary. Tables marked unavailable do not count (they
    /// are tried again with the first cycle after their hour): otherwise an
    /// unlicensed table, whose watermark never moves, would start a cycle
    /// every second.
    pub fn next_ready(&self, interval: Ticks) -> Option<Ticks> {
        self.cursors
            .iter()
            .filter(|c| c.follows.is_none() && c.unavailable_until.is_none())
            .map(|c| {
                let edge = c.edge();
                match c.period {
                    Some(p) => Ticks(edge.0 - edge.0.rem_euclid(p.0.max(1))).saturating_add(p),
                    None => edge.saturating_add(interval),
                }
            })
            .min()
    }

    /// Records a finished sweep of table `index`.
    pub fn sweep_done(&mut self, index: usize) {
        self.cursors[index].sweep_due = false;
    }

    /// Whether table `index` has already emitted the row with this key.
    pub fn seen(&self, index: usize, key: &str) -> bool {
        self.cursors[index].recent.iter().any(|(_, k)| k == key)
    }

    /// Remembers emitted row keys of table `index` and forgets those older
    /// than the overlap before its watermark. A union's keys (which name
    /// their table) are kept by each of its tables, so that each can go on
    /// alone.
    pub fn remember(&mut self, index: usize, keys: impl IntoIterator<Item = (Ticks, String)>) {
        let keys: Vec<(Ticks, String)> = keys.into_iter().collect();
        for i in std::iter::once(index).chain(self.union_members(index)) {
            let c = &mut self.cursors[i];
            let horizon = c.edge().saturating_sub(self.overlap);
            c.recent.extend(keys.iter().cloned());
            c.recent.retain(|(t, _)| *t >= horizon);
            c.recent.sort();
            c.recent.dedup();
        }
    }

    /// Makes `follower` move with `leader`. Both start from the earlier of
    /// their watermarks, so nothing is skipped (rows between the two may be
    /// collected again once).
    pub fn set_follower(&mut self, follower: &str, leader: &str) {
        let f = self.cursors.iter().position(|c| c.table == follower);
        let l = self.cursors.iter().position(|c| c.table == leader);
        if let (Some(f), Some(l)) = (f, l) {
            let start = self.cursors[f].watermark.min(self.cursors[l].watermark);
            self.cursors[f].watermark = start;
            self.cursors[l].watermark = start;
            self.cursors[f].follows = Some(l);
            if self.cursors[f].ahead != self.cursors[l].ahead {
                // Collected apart: only what both collected counts as done.
                self.cursors[f].ahead.clear();
                self.cursors[l].ahead.clear();
            }
        }
    }

    /// The tables that move with the table at `index` and are queried
    /// apart (joined tables).
    pub fn followers(&self, index: usize) -> Vec<usize> {
        (0..self.cursors.len())
            .filter(|i| self.cursors[*i].follows == Some(index) && !self.cursors[*i].in_union)
            .collect()
    }

    /// The other tables of the union query that table `index` leads.
    pub fn union_members(&self, index: usize) -> Vec<usize> {
        (0..self.cursors.len())
            .filter(|i| self.cursors[*i].follows == Some(index) && self.cursors[*i].in_union)
            .collect()
    }

    /// Makes `tables` share one query, led by the first. They start from
    /// the earliest of their watermarks, so nothing is skipped: a table
    /// that was further on may emit rows between the two again once, apart
    /// from those its saved keys recognise (as with [`Planner::set_follower`]).
    pub fn set_union(&mut self, tables: &[&str]) {
        let indexes: Vec<usize> = tables
            .iter()
            .filter_map(|t| self.cursors.iter().position(|c| c.table == *t))
            .collect();
        let [leader, ..] = indexes[..] else {
            return;
        };
        let start = indexes
            .iter()
            .map(|i| self.cursors[*i].watermark)
            .min()
            .unwrap_or(self.cursors[leader].watermark);
        let floor = indexes
            .iter()
            .map(|i| self.cursors[*i].floor)
            .min()
            .unwrap_or(self.cursors[leader].floor);
        let mut recent: Vec<(Ticks, String)> = indexes.iter().flat_map(|i| self.cursors[*i].recent.clone()).collect();
        recent.sort();
        recent.dedup();
        // Stretches ahead count only where every table of the union has them.
        let same = indexes.iter().all(|i| self.cursors[*i].ahead == self.cursors[leader].ahead);
        let ahead = if same { self.cursors[leader].ahead.clone() } else { Vec::new() };
        for &i in &indexes {
            let c = &mut self.cursors[i];
            c.watermark = start;
            c.floor = floor;
            c.recent = recent.clone();
            c.ahead.clone_from(&ahead);
            if i != leader {
                c.follows = Some(leader);
                c.in_union = true;
            }
        }
    }

    /// Ends the union that table `index` leads: each of its tables is
    /// queried on its own from where the union got.
    pub fn dissolve_union(&mut self, index: usize) {
        for i in self.union_members(index) {
            self.cursors[i].follows = None;
            self.cursors[i].in_union = false;
        }
    }

    /// Halves the window length of table `index` (after repeated server
    /// errors on a window, which a smaller one may avoid).
    pub fn halve_span(&mut self, index: usize) {
        let c = &mut self.cursors[index];
        c.span = Ticks((c.span.0 / 2).max(TICKS_PER_SECOND));
        c.history_span = Ticks((c.history_span.0 / 2).max(TICKS_PER_SECOND));
    }

    /// Skips the table of `window` until `until`.
    pub fn mark_unavailable(&mut self, window: &Window, until: Ticks) {
        self.cursors[window.table].unavailable_until = Some(until);
    }

    /// The next window of the current cycle. Live windows first: the table
    /// whose live edge is furthest behind, from that edge (or from where its
    /// late-row look stands), at most its span past the edge. Then history:
    /// the table whose watermark is furthest behind, up to its first stretch
    /// collected ahead. `None` ends the cycle.
    pub fn next_window(&mut self) -> Option<Window> {
        let end = self.cycle_end?;
        let eligible = |c: &&Cursor| c.unavailable_until.is_none() && c.follows.is_none();
        let live = self
            .cursors
            .iter()
            .enumerate()
            .filter(|(_, c)| eligible(c) && (c.edge() < c.until.min(end) || c.sweep_from.is_some()))
            .min_by_key(|(_, c)| c.edge());
        if let Some((i, c)) = live {
            let edge = c.edge();
            return Some(Window {
                table: i,
                start: c.sweep_from.unwrap_or(edge),
                end: edge.saturating_add(c.span).min(c.until.min(end)).max(edge),
                watermark: edge,
                history: false,
            });
        }
        let history = self
            .cursors
            .iter()
            .enumerate()
            .filter(|(_, c)| eligible(c) && !c.ahead.is_empty())
            .min_by_key(|(_, c)| c.watermark);
        match history {
            Some((i, c)) => Some(Window {
                table: i,
                start: c.watermark,
                end: c.watermark.saturating_add(c.history_span).min(c.ahead[0].0),
                watermark: c.watermark,
                history: true,
            }),
            None => {
                self.cycle_end = None;
                None
            }
        }
    }

    /// True when the current cycle has no window left, live or history.
    pub fn cycle_done(&self) -> bool {
        self.cycle_end.is_none()
            || (self.live_done()
                && self
                    .cursors
                    .iter()
                    .all(|c| c.ahead.is_empty() || c.unavailable_until.is_some() || c.follows.is_some()))
    }

    /// Records that `window` was collected completely; `fullness` is the
    /// share of the row limit it used, to size the next window. A window
    /// that ends before the live edge (a part of the late-row look) moves
    /// only the look. A history window that reaches a stretch collected
    /// ahead moves the watermark past it.
    pub fn complete(&mut self, window: &Window, fullness: f64) {
        let max = {
            let c = &self.cursors[window.table];
            c.period.map_or(self.max_window, |p| p.min(self.max_window))
        };
        let c = &mut self.cursors[window.table];
        if window.history {
            debug_assert_eq!(c.watermark, window.start, "history windows complete in order");
            let used = Ticks(window.end.0 - window.start.0);
            c.watermark = window.end;
            pass_reached(&mut c.watermark, &mut c.ahead);
            c.history_span = adapt(c.history_span, used, fullness, max);
            self.sync_followers(window.table);
            return;
        }
        let edge = c.edge();
        debug_assert_eq!(c.sweep_from.unwrap_or(edge), window.start, "windows complete in order");
        if window.end < edge {
            c.sweep_from = Some(window.end);
            return;
        }
        c.sweep_from = None;
        let used = Ticks(window.end.0 - window.start.max(edge).0);
        match c.ahead.last_mut() {
            Some(stretch) => stretch.1 = window.end,
            None => c.watermark = window.end,
        }
        if used.0 > 0 {
            c.span = adapt(c.span, used, fullness, max);
        }
        self.sync_followers(window.table);
    }

    /// The checkpoint text for the current progress of the tables and of
    /// the given streams (saved states of streams not given are kept).
    pub fn checkpoint(&self, streams: &[(&str, &StreamState)]) -> String {
        let mut tables = self.dormant.clone();
        for c in &self.cursors {
            tables.insert(
                c.table.to_string(),
                TableState {
                    watermark: c.watermark.to_iso(),
                    floor: Some(c.floor.to_iso()),
                    recent: c.recent.iter().map(|(t, k)| (t.0, k.clone())).collect(),
                    ahead: c.ahead.iter().map(|(from, to)| (from.to_iso(), to.to_iso())).collect(),
                },
            );
        }
        let mut all_streams = self.streams.clone();
        for (name, state) in streams {
            all_streams.insert(name.to_string(), (*state).clone());
        }
        let version = if tables.values().any(|t| !t.ahead.is_empty()) {
            CHECKPOINT_VERSION_AHEAD
        } else {
            CHECKPOINT_VERSION
        };
        serde_json::to_string(&CheckpointDoc {
            version,
            tables,
            streams: all_streams,
        })
        .expect("a map of strings serialises")
    }
}

/// The next window length after one of `used` data time that filled
/// `fullness` of the row limit: a full one's length, twice a sparse one's
/// (up to `max`), or the same.
fn adapt(span: Ticks, used: Ticks, fullness: f64, max: Ticks) -> Ticks {
    if used.0 == 0 {
        span
    } else if fullness > 0.5 {
        used
    } else if fullness < 0.125 {
        Ticks(used.0.saturating_mul(2)).min(max).max(span)
    } else {
        span
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Ticks {
        Ticks::parse(s).unwrap()
    }
    const HOUR: Ticks = Ticks(3600 * 10_000_000);

    #[test]
    fn windows_tile_the_range_and_pick_the_table_furthest_behind() {
        let mut p = Planner::new(&["A", "B"], None, t("2025-01-01T00:00:00Z"), HOUR).unwrap();
        assert!(p.begin_cycle(t("2025-01-01T01:30:00Z"), Ticks(0)));
        let w1 = p.next_window().unwrap();
        assert_eq!(
            (w1.table, w1.start, w1.end),
            (0, t("2025-01-01T00:00:00Z"), t("2025-01-01T01:00:00Z"))
        );
        p.complete(&w1, 0.3);
        let w2 = p.next_window().unwrap();
        assert_eq!(w2.table, 1, "B is now furthest behind");
        p.complete(&w2, 0.3);
        let w3 = p.next_window().unwrap();
        assert_eq!((w3.start, w3.end), (t("2025-01-01T01:00:00Z"), t("2025-01-01T01:30:00Z")));
        p.complete(&w3, 0.3);
        assert!(!p.cycle_done());
        let w4 = p.next_window().unwrap();
        p.complete(&w4, 0.3);
        assert!(p.cycle_done());
        assert_eq!(p.next_window(), None);
        assert_eq!(p.cycle_end(), None);
    }

    #[test]
    fn an_entity_table_is_collected_once_per_period_up_to_its_last_boundary() {
        let minute = Ticks(60 * 10_000_000);
        let mut p = Planner::new(&["Events", "Entity"], None, t("2025-01-01T00:00:00Z"), HOUR).unwrap();
        p.set_period("Entity", HOUR);
        p.set_overlap(Ticks(10 * minute.0));
        // 01:30: the event table goes to 01:30, the entity table to 01:00.
        p.begin_cycle(t("2025-01-01T01:30:00Z"), Ticks(0));
        let mut windows = Vec::new();
        while let Some(w) = p.next_window() {
            windows.push((w.table, w.start, w.end));
            p.complete(&w, 0.3);
        }
        assert!(
            windows.contains(&(1, t("2025-01-01T00:00:00Z"), t("2025-01-01T01:00:00Z"))),
            "{windows:?}"
        );
        assert!(
            !windows
                .iter()
                .any(|(table, _, end)| *table == 1 && *end > t("2025-01-01T01:00:00Z"))
        );
        assert_eq!(p.cursors()[0].watermark, t("2025-01-01T01:30:00Z"));
        // The next cycle is due a poll interval after the events' watermark;
        // the entity table's next boundary is later.
        assert_eq!(p.next_ready(minute), Some(t("2025-01-01T01:31:00Z")));
        // 01:31 .. 01:59: the entity table has nothing to do, and no sweep.
        p.begin_cycle(t("2025-01-01T01:45:00Z"), Ticks(0));
        assert!(!p.cursors()[1].sweep_due);
        let w = p.next_window().unwrap();
        assert_eq!(w.table, 0);
        p.complete(&w, 0.3);
        assert_eq!(p.next_window(), None);
        // Past 02:00 the entity table's hour is collected, with its sweep.
        p.begin_cycle(t("2025-01-01T02:01:00Z"), Ticks(0));
        assert!(p.cursors()[1].sweep_due);
        let mut entity = None;
        while let Some(w) = p.next_window() {
            if w.table == 1 {
                entity = Some((w.start, w.end));
            }
            p.complete(&w, 0.3);
        }
        assert_eq!(entity, Some((t("2025-01-01T01:00:00Z"), t("2025-01-01T02:00:00Z"))));
    }

    #[test]
    fn each_cycle_starts_an_event_table_overlap_before_its_watermark_in_one_window() {
        let minute = Ticks(60 * 10_000_000);
        let mut p = Planner::new(&["A"], None, t("2025-01-01T00:00:00Z"), HOUR).unwrap();
        p.set_overlap(Ticks(10 * minute.0));
        // The first cycle starts at the floor: nothing before it to look at.
        p.begin_cycle(t("2025-01-01T00:30:00Z"), Ticks(0));
        let w = p.next_window().unwrap();
        assert_eq!(
            (w.start, w.end, w.watermark),
            (t("2025-01-01T00:00:00Z"), t("2025-01-01T00:30:00Z"), w.start)
        );
        p.complete(&w, 0.1);
        assert!(p.cycle_done());
        assert_eq!(p.next_window(), None);

        // The next one looks again at the last 10 minutes in the same window.
        p.begin_cycle(t("2025-01-01T00:31:00Z"), Ticks(0));
        assert!(!p.cursors()[0].sweep_due, "no sweep of its own");
        let w = p.next_window().unwrap();
        let watermark = t("2025-01-01T00:30:00Z");
        assert_eq!(
            (w.start, w.end, w.watermark),
            (t("2025-01-01T00:20:00Z"), t("2025-01-01T00:31:00Z"), watermark)
        );
        // A part that ends inside the look moves the look, not the watermark.
        let part = Window {
            end: t("2025-01-01T00:25:00Z"),
            ..w
        };
        p.complete(&part, 0.9);
        assert_eq!(p.cursors()[0].watermark, watermark);
        assert!(!p.cycle_done());
        let rest = p.next_window().unwrap();
        assert_eq!((rest.start, rest.end), (t("2025-01-01T00:25:00Z"), t("2025-01-01T00:31:00Z")));
        assert_eq!(p.cursors()[0].span, HOUR, "a look-only part does not size the span");
        p.complete(&rest, 0.1);
        assert_eq!(p.cursors()[0].watermark, t("2025-01-01T00:31:00Z"));
        assert!(p.cycle_done());
        assert_eq!(p.next_window(), None);

        // A cycle with no new data still looks back.
        assert!(p.begin_cycle(t("2025-01-01T00:31:00Z"), Ticks(0)));
        let w = p.next_window().unwrap();
        assert_eq!((w.start, w.end), (t("2025-01-01T00:21:00Z"), t("2025-01-01T00:31:00Z")));
        p.complete(&w, 0.0);
        assert_eq!(p.next_window(), None);
    }

    #[test]
    fn an_unavailable_table_does_not_make_the_next_cycle_due_at_once() {
        let minute = Ticks(60 * 10_000_000);
        let mut p = Planner::new(&["Licensed", "Unlicensed"], None, t("2025-01-01T00:00:00Z"), HOUR).unwrap();
        p.begin_cycle(t("2025-01-01T00:30:00Z"), Ticks(0));
        while let Some(w) = p.next_window() {
            if w.table == 1 {
                p.mark_unavailable(&w, t("2025-01-01T01:30:00Z"));
            } else {
                p.complete(&w, 0.1);
            }
        }
        assert_eq!(p.cursors()[1].watermark, t("2025-01-01T00:00:00Z"), "it never moves");
        assert_eq!(p.next_ready(minute), Some(t("2025-01-01T00:31:00Z")));
    }

    #[test]
    fn checkpoints_round_trip_and_keep_dormant_tables() {
        let start = t("2025-01-01T00:00:00Z");
        let mut p = Planner::new(&["A", "B"], None, start, HOUR).unwrap();
        p.begin_cycle(t("2025-01-01T00:10:00.1234567Z"), Ticks(0));
        let w = p.next_window().unwrap();
        p.complete(&w, 0.0);
        let saved = p.checkpoint(&[]);
        assert!(saved.contains("2025-01-01T00:10:00.1234567Z"), "{saved}");

        let q = Planner::new(&["B"], Some(&saved), start, HOUR).unwrap();
        assert_eq!(q.cursors()[0].watermark, start);
        let again = q.checkpoint(&[]);
        assert!(again.contains("\"A\""), "a table no longer configured keeps its place: {again}");
        let r = Planner::new(&["A"], Some(&again), start, HOUR).unwrap();
        assert_eq!(r.cursors()[0].watermark, t("2025-01-01T00:10:00.1234567Z"));
    }

    #[test]
    fn unreadable_checkpoints_are_errors_not_restarts() {
        let e = Planner::new(&["A"], Some("{not json"), Ticks(0), HOUR).unwrap_err();
        assert!(matches!(e, Error::Fatal(ref m) if m.contains("not readable")), "{e}");
        let e = Planner::new(&["A"], Some(r#"{"version":9,"tables":{}}"#), Ticks(0), HOUR).unwrap_err();
        assert!(e.to_string().contains("version 9"));
    }

    #[test]
    fn an_unavailable_table_is_skipped_until_it_is_due_again() {
        let mut p = Planner::new(&["A", "B"], None, Ticks(0), HOUR).unwrap();
        p.begin_cycle(Ticks(HOUR.0), Ticks(0));
        let w = p.next_window().unwrap();
        assert_eq!(w.table, 0);
        p.mark_unavailable(&w, Ticks(100));
        let w = p.next_window().unwrap();
        assert_eq!(w.table, 1, "A is skipped");
        p.complete(&w, 0.0);
        assert!(p.cycle_done(), "an unavailable table does not hold the cycle open");
        assert_eq!(p.next_window(), None);
        p.begin_cycle(Ticks(HOUR.0 * 2), Ticks(99));
        assert_eq!(p.next_window().unwrap().table, 1, "not yet due");
        let mut p2 = p;
        p2.cycle_end = None;
        p2.begin_cycle(Ticks(HOUR.0 * 2), Ticks(100));
        assert_eq!(p2.next_window().unwrap().table, 0, "due again: A is furthest behind");
    }

    #[test]
    fn a_follower_moves_with_its_leader_from_the_earlier_watermark() {
        let saved = r#"{"version":1,"tables":{"Info":{"watermark":"1970-01-01T00:00:00.0000100Z"},"Evidence":{"watermark":"1970-01-01T00:00:00.0000050Z"}}}"#;
        let mut p = Planner::new(&["Info", "Evidence"], Some(saved), Ticks(0), HOUR).unwrap();
        p.set_follower("Evidence", "Info");
        assert_eq!(p.cursors()[0].watermark, Ticks(50));
        p.begin_cycle(Ticks(1000), Ticks(0));
        let w = p.next_window().unwrap();
        assert_eq!((w.table, w.start), (0, Ticks(50)), "the follower gets no windows of its own");
        p.complete(&w, 0.0);
        assert_eq!(p.cursors()[1].watermark, Ticks(1000));
        assert!(p.cycle_done());
    }

    #[test]
    fn a_union_moves_as_one_from_its_earliest_watermark_and_can_be_dissolved() {
        let saved = r#"{"version":1,"tables":{"A":{"watermark":"1970-01-01T00:00:00.0000100Z"},"B":{"watermark":"1970-01-01T00:00:00.0000050Z","recent":[[40,"kb"]]}}}"#;
        let mut p = Planner::new(&["A", "B", "C"], Some(saved), Ticks(0), HOUR).unwrap();
        p.set_overlap(Ticks(100));
        p.set_union(&["A", "B"]);
        assert_eq!(p.union_members(0), [1]);
        assert!(p.followers(0).is_empty(), "a union member is not queried apart");
        assert_eq!((p.cursors()[0].watermark, p.cursors()[1].watermark), (Ticks(50), Ticks(50)));
        assert!(p.seen(0, "kb"), "the leader knows the members' keys");
        p.begin_cycle(Ticks(1000), Ticks(0));
        let mut tables = Vec::new();
        while let Some(w) = p.next_window() {
            tables.push(w.table);
            p.complete(&w, 0.0);
            p.remember(w.table, [(Ticks(990), format!("k{}", w.table))]);
        }
        assert!(!tables.contains(&1), "{tables:?}");
        assert_eq!(p.cursors()[1].watermark, Ticks(1000));
        assert!(
            p.cursors()[1].recent.iter().any(|(_, k)| k == "k0"),
            "members keep the union's keys"
        );

        p.dissolve_union(0);
        p.begin_cycle(Ticks(2000), Ticks(0));
        let mut tables = BTreeMap::new();
        while let Some(w) = p.next_window() {
            *tables.entry(w.table).or_insert(0) += 1;
            p.complete(&w, 0.0);
        }
        assert_eq!(tables.keys().copied().collect::<Vec<_>>(), [0, 1, 2], "each table on its own");
    }

    /// An entity table's windows never outgrow its period, whatever
    /// `max_window` allows: each window's rows merge into one state per
    /// entity.
    #[test]
    fn an_entity_table_keeps_windows_of_its_period() {
        let day = Ticks(HOUR.0 * 24);
        let mut p = Planner::new(&["DeviceInfo", "DeviceEvents"], None, Ticks(0), day).unwrap();
        p.set_period("DeviceInfo", HOUR);
        p.begin_cycle(Ticks(HOUR.0 * 48), Ticks(0));
        let mut entity = Vec::new();
        while let Some(w) = p.next_window() {
            if w.table == 0 {
                entity.push(w.end.0 - w.start.0);
            }
            p.complete(&w, 0.0);
        }
        assert!(!entity.is_empty() && entity.iter().all(|len| *len <= HOUR.0), "{entity:?}");
        assert_eq!(p.cursors()[1].span, day, "an event table grows to max_window");
    }

    #[test]
    fn halves_and_adapts_the_span() {
        let w = Window {
            table: 0,
            start: Ticks(10),
            end: Ticks(21),
            watermark: Ticks(10),
            history: false,
        };
        assert_eq!(w.first_half().unwrap().end, Ticks(15));
        assert_eq!(
            Window {
                table: 0,
                start: Ticks(10),
                end: Ticks(11),
                watermark: Ticks(10),
                history: false,
            }
            .first_half(),
            None
        );

        let mut p = Planner::new(&["A"], None, Ticks(0), HOUR).unwrap();
        // Two hours: not far enough behind for a live edge ahead.
        p.begin_cycle(Ticks(HOUR.0 * 2), Ticks(0));
        let w = p.next_window().unwrap().first_half().unwrap();
        p.complete(&w, 0.9);
        assert_eq!(
            p.next_window().unwrap().end.0 - w.end.0,
            HOUR.0 / 2,
            "a full window keeps the smaller span"
        );
        let w = p.next_window().unwrap();
        p.complete(&w, 0.0);
        assert_eq!(p.next_window().unwrap().end.0 - w.end.0, HOUR.0, "a sparse window grows it back");
    }
    /// Far behind, a table's last hour comes first, then its history from
    /// the watermark; the watermark jumps over the hour when history
    /// reaches it, and a checkpoint taken in between resumes both.
    #[test]
    fn live_data_first_then_history_and_the_checkpoint_keeps_the_stretch() {
        let mut p = Planner::new(&["A"], None, t("2025-01-01T00:00:00Z"), Ticks(HOUR.0 * 24)).unwrap();
        p.begin_cycle(t("2025-01-02T00:00:00Z"), Ticks(0));
        let live = p.next_window().unwrap();
        assert_eq!(
            (live.start, live.end, live.history),
            (t("2025-01-01T23:00:00Z"), t("2025-01-02T00:00:00Z"), false)
        );
        p.complete(&live, 0.0);
        assert!(p.live_done() && !p.cycle_done(), "history is left");
        assert_eq!(p.cursors()[0].watermark, t("2025-01-01T00:00:00Z"));
        assert_eq!(p.cursors()[0].edge(), t("2025-01-02T00:00:00Z"));
        assert_eq!(p.cursors()[0].history_left(), Ticks(HOUR.0 * 23));

        let saved = p.checkpoint(&[]);
        assert!(saved.starts_with(r#"{"version":2,"#), "{saved}");
        let mut q = Planner::new(&["A"], Some(&saved), Ticks(0), Ticks(HOUR.0 * 24)).unwrap();
        assert_eq!(q.cursors()[0].ahead, p.cursors()[0].ahead);
        q.begin_cycle(t("2025-01-02T00:00:00Z"), Ticks(0));
        // The look before the edge stays within the stretch collected ahead.
        q.set_overlap(Ticks(HOUR.0 * 2));
        q.cycle_end = None;
        q.begin_cycle(t("2025-01-02T00:00:00Z"), Ticks(0));
        let look = q.next_window().unwrap();
        assert_eq!(
            (look.start, look.end, look.history),
            (t("2025-01-01T23:00:00Z"), t("2025-01-02T00:00:00Z"), false)
        );
        q.complete(&look, 0.0);
        let history = q.next_window().unwrap();
        assert_eq!(
            (history.start, history.end, history.history),
            (t("2025-01-01T00:00:00Z"), t("2025-01-01T23:00:00Z"), true)
        );
        q.complete(&history, 0.0);
        assert_eq!(q.cursors()[0].watermark, t("2025-01-02T00:00:00Z"), "past the stretch");
        assert!(q.cursors()[0].ahead.is_empty());
        assert!(q.cycle_done());
        assert!(
            q.checkpoint(&[]).starts_with(r#"{"version":1,"#),
            "readable by earlier versions again"
        );
    }

    /// A cycle ends for the next one only once its live windows are done;
    /// the next one collects the live edge again before more history.
    #[test]
    fn history_yields_to_the_next_cycles_live_edge() {
        let mut p = Planner::new(&["A", "B"], None, t("2025-01-01T00:00:00Z"), HOUR).unwrap();
        p.begin_cycle(t("2025-01-02T00:00:00Z"), Ticks(0));
        let first = p.next_window().unwrap();
        assert!(!p.end_cycle_for_live(), "B's live edge is not in yet");
        p.complete(&first, 0.0);
        let second = p.next_window().unwrap();
        assert_ne!(second.table, first.table);
        assert!(!second.history);
        p.complete(&second, 0.0);
        let history = p.next_window().unwrap();
        assert!(history.history);
        p.complete(&history, 0.0);
        assert!(p.end_cycle_for_live());
        p.begin_cycle(t("2025-01-02T00:01:00Z"), Ticks(0));
        let live = p.next_window().unwrap();
        assert_eq!(
            (live.start, live.end, live.history),
            (t("2025-01-02T00:00:00Z"), t("2025-01-02T00:01:00Z"), false)
        );
    }

    /// A restart days after a stop in the middle of a backfill collects a
    /// second stretch ahead; history fills both gaps in time order.
    #[test]
    fn a_second_gap_gets_a_stretch_of_its_own() {
        let saved = r#"{"version":2,"tables":{"A":{"watermark":"2025-01-01T00:00:00.0000000Z","ahead":[["2025-01-02T00:00:00.0000000Z","2025-01-02T01:00:00.0000000Z"]]}}}"#;
        let mut p = Planner::new(&["A"], Some(saved), Ticks(0), Ticks(HOUR.0 * 24)).unwrap();
        p.begin_cycle(t("2025-01-05T00:00:00Z"), Ticks(0));
        let mut windows = Vec::new();
        while let Some(w) = p.next_window() {
            windows.push((w.start, w.end, w.history));
            p.complete(&w, 0.0);
        }
        assert_eq!(
            windows,
            [
                (t("2025-01-04T23:00:00Z"), t("2025-01-05T00:00:00Z"), false),
                (t("2025-01-01T00:00:00Z"), t("2025-01-02T00:00:00Z"), true),
                (t("2025-01-02T01:00:00Z"), t("2025-01-03T01:00:00Z"), true),
                (t("2025-01-03T01:00:00Z"), t("2025-01-04T01:00:00Z"), true),
                (t("2025-01-04T01:00:00Z"), t("2025-01-04T23:00:00Z"), true),
            ]
        );
        assert_eq!(p.cursors()[0].watermark, t("2025-01-05T00:00:00Z"));
        let bad = saved.replace("2025-01-02T00:00:00.0000000Z", "2024-12-01T00:00:00.0000000Z");
        let e = Planner::new(&["A"], Some(&bad), Ticks(0), HOUR).unwrap_err();
        assert!(e.to_string().contains("out of order"), "{e}");
    }

    /// A table that does not answer gets no stretches while it does not:
    /// its checkpoint stays version 1 and does not grow.
    #[test]
    fn an_unavailable_table_gets_no_stretch_ahead() {
        let mut p = Planner::new(&["Unlicensed"], None, t("2025-01-01T00:00:00Z"), HOUR).unwrap();
        p.begin_cycle(t("2025-01-01T00:30:00Z"), Ticks(0));
        let w = p.next_window().unwrap();
        p.mark_unavailable(&w, t("2025-01-02T00:00:00Z"));
        assert_eq!(p.next_window(), None);
        for hour in 1..20 {
            let end = Ticks(t("2025-01-01T00:30:00Z").0 + HOUR.0 * hour);
            p.begin_cycle(end, end);
            while let Some(w) = p.next_window() {
                p.complete(&w, 0.0);
            }
        }
        assert!(p.cursors()[0].ahead.is_empty());
        assert!(p.checkpoint(&[]).starts_with(r#"{"version":1,"#));
        // Due again, and far behind: its current hour first.
        let end = t("2025-01-02T00:30:00Z");
        p.begin_cycle(end, end);
        let w = p.next_window().unwrap();
        assert_eq!((w.start, w.end, w.history), (t("2025-01-01T23:30:00Z"), end, false));
    }

    /// A saved stretch that the watermark has reached is merged on load.
    #[test]
    fn a_stretch_at_the_watermark_is_merged_on_load() {
        let saved = r#"{"version":2,"tables":{"A":{"watermark":"2025-01-02T00:00:00.0000000Z","ahead":[["2025-01-02T00:00:00.0000000Z","2025-01-02T01:00:00.0000000Z"]]}}}"#;
        let p = Planner::new(&["A"], Some(saved), Ticks(0), HOUR).unwrap();
        assert_eq!(p.cursors()[0].watermark, t("2025-01-02T01:00:00Z"));
        assert!(p.cursors()[0].ahead.is_empty());
    }

    /// A follower stands where its leader stands, stretches ahead included.
    #[test]
    fn a_follower_shares_its_leaders_stretch_ahead() {
        let mut p = Planner::new(&["Info", "Evidence"], None, t("2025-01-01T00:00:00Z"), HOUR).unwrap();
        p.set_follower("Evidence", "Info");
        p.begin_cycle(t("2025-01-02T00:00:00Z"), Ticks(0));
        assert_eq!(p.cursors()[1].ahead, p.cursors()[0].ahead);
        let w = p.next_window().unwrap();
        p.complete(&w, 0.0);
        assert_eq!(p.cursors()[1].edge(), t("2025-01-02T00:00:00Z"));
        while let Some(w) = p.next_window() {
            p.complete(&w, 0.0);
        }
        assert_eq!(p.cursors()[1].watermark, t("2025-01-02T00:00:00Z"));
        assert!(p.cursors()[1].ahead.is_empty());
    }

    proptest::proptest! {
        /// However cycles, row counts and cuts fall, the new data of the
        /// windows (each window less its late-row look) tiles the time from
        /// the start to the last cycle's end exactly once.
        #[test]
        fn windows_tile_time_exactly_once(
            steps in proptest::collection::vec((0u8..4, 0u32..100), 1..200),
            gaps in proptest::collection::vec(1i64..(80 * 3600), 1..8),
        ) {
            let start = t("2025-01-01T00:00:00Z");
            let mut p = Planner::new(&["A", "B"], None, start, Ticks(HOUR.0 * 24)).unwrap();
            p.set_overlap(Ticks(600 * TICKS_PER_SECOND));
            let mut end = start;
            let mut covered: Vec<(usize, Ticks, Ticks)> = Vec::new();
            let mut gaps = gaps.into_iter().cycle();
            for (kind, fill) in steps {
                if p.cycle_end().is_none() || (kind == 0 && p.end_cycle_for_live()) {
                    end = end.saturating_add(Ticks(gaps.next().unwrap() * TICKS_PER_SECOND));
                    p.begin_cycle(end, Ticks(0));
                }
                let Some(mut w) = p.next_window() else { continue };
                if kind == 1 {
                    // An answer cut short: the window ends earlier.
                    w = w.first_half().unwrap_or(w);
                }
                let new_from = w.start.max(w.watermark);
                if w.end > new_from {
                    covered.push((w.table, new_from, w.end));
                }
                p.complete(&w, f64::from(fill) / 100.0);
            }
            while p.cycle_end().is_some() {
                match p.next_window() {
                    Some(w) => {
                        let new_from = w.start.max(w.watermark);
                        if w.end > new_from {
                            covered.push((w.table, new_from, w.end));
                        }
                        // Sparse: the spans grow back, the drain is short.
                        p.complete(&w, 0.0);
                    }
                    None => break,
                }
            }
            for table in 0..2 {
                let mut spans: Vec<(Ticks, Ticks)> = covered.iter().filter(|c| c.0 == table).map(|c| (c.1, c.2)).collect();
                spans.sort();
                let mut at = start;
                for (from, to) in spans {
                    proptest::prop_assert_eq!(from, at, "table {} has a gap or overlap", table);
                    at = to;
                }
                proptest::prop_assert_eq!(at, end);
                proptest::prop_assert_eq!(p.cursors()[table].watermark, end);
            }
        }
    }
}
