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
}

/// A window to query: `[start, end)`. Rows before `watermark` (when the
/// window starts before it) were looked for before: those emitted already
/// are dropped, the others are late arrivals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub table: usize,
    pub start: Ticks,
    pub end: Ticks,
    /// The table's watermark when the window was planned.
    pub watermark: Ticks,
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
}

const CHECKPOINT_VERSION: u32 = 1;

impl Planner {
    /// A planner for `tables`, resuming from `checkpoint` where given;
    /// tables without a saved watermark start at `start`.
    pub fn new(tables: &[&'static str], checkpoint: Option<&str>, start: Ticks, max_window: Ticks) -> Result<Planner> {
        let (mut saved, streams) = match checkpoint {
            None => (BTreeMap::new(), BTreeMap::new()),
            Some(text) => {
                let doc: CheckpointDoc =
                    serde_json::from_str(text).map_err(|e| Error::Fatal(format!("the saved checkpoint is not readable ({e})")))?;
                if doc.version != CHECKPOINT_VERSION {
                    return Err(Error::Fatal(format!(
                        "the saved checkpoint has version {}, this collector reads version {CHECKPOINT_VERSION}",
                        doc.version
                    )));
                }
                (doc.tables, doc.streams)
            }
        };
        let mut cursors = Vec::with_capacity(tables.len());
        for table in tables {
            let unreadable = |e: String| Error::Fatal(format!("the saved checkpoint of {table} is not readable: {e}"));
            let (watermark, floor, recent) = match saved.remove(*table) {
                Some(state) => {
                    let watermark = Ticks::parse(&state.watermark).map_err(unreadable)?;
                    let floor = match &state.floor {
                        Some(f) => Ticks::parse(f).map_err(unreadable)?,
                        None => watermark,
                    };
                    (watermark, floor, state.recent.into_iter().map(|(t, k)| (Ticks(t), k)).collect())
                }
                None => (start, start, Vec::new()),
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
                c.until = match c.period {
                    Some(p) => Ticks(end.0 - end.0.rem_euclid(p.0.max(1))).max(c.watermark),
                    None => end,
                };
                let from = c.watermark.saturating_sub(self.overlap).max(c.floor);
                let look = c.follows.is_none() && from < c.watermark;
                // An event table's look is its first window's first part; a
                // periodic table is swept apart, in the cycles that collect it.
                c.sweep_from = (look && c.period.is_none()).then_some(from);
                c.sweep_due = look && c.period.is_some() && c.watermark < c.until;
            }
            for c in &mut self.cursors {
                if c.unavailable_until.is_some_and(|t| t <= now) {
                    c.unavailable_until = None;
                }
            }
        }
        starts
    }

    /// The next table due for a late-row sweep of its own, and the range to
    /// sweep: `[max(watermark - overlap, floor), watermark)`.
    pub fn next_sweep(&mut self) -> Option<(usize, Ticks, Ticks)> {
        let overlap = self.overlap;
        for (i, c) in self.cursors.iter_mut().enumerate() {
            if !c.sweep_due || c.unavailable_until.is_some() {
                continue;
            }
            let from = c.watermark.saturating_sub(overlap).max(c.floor);
            if from >= c.watermark {
                c.sweep_due = false;
                continue;
            }
            return Some((i, from, c.watermark));
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
        }
    }

    /// The data time at which the next cycle has something to do: a poll
    /// interval past the furthest-behind event table, or a periodic table's
    /// next period boundary. Tables marked unavailable do not count (they
    /// are tried again with the first cycle after their hour): otherwise an
    /// unlicensed table, whose watermark never moves, would start a cycle
    /// every second.
    pub fn next_ready(&self, interval: Ticks) -> Option<Ticks> {
        self.cursors
            .iter()
            .filter(|c| c.follows.is_none() && c.unavailable_until.is_none())
            .map(|c| match c.period {
                Some(p) => Ticks(c.watermark.0 - c.watermark.0.rem_euclid(p.0.max(1))).saturating_add(p),
                None => c.watermark.saturating_add(interval),
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
            let horizon = c.watermark.saturating_sub(self.overlap);
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
        for &i in &indexes {
            let c = &mut self.cursors[i];
            c.watermark = start;
            c.floor = floor;
            c.recent = recent.clone();
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
    }

    /// Skips the table of `window` until `until`.
    pub fn mark_unavailable(&mut self, window: &Window, until: Ticks) {
        self.cursors[window.table].unavailable_until = Some(until);
    }

    /// The next window of the current cycle: the table furthest behind, from
    /// its watermark (or from where its late-row look stands), at most its
    /// span past the watermark. `None` ends the cycle.
    pub fn next_window(&mut self) -> Option<Window> {
        let end = self.cycle_end?;
        let next = self
            .cursors
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                (c.watermark < c.until.min(end) || c.sweep_from.is_some()) && c.unavailable_until.is_none() && c.follows.is_none()
            })
            .min_by_key(|(_, c)| c.watermark);
        match next {
            Some((i, c)) => Some(Window {
                table: i,
                start: c.sweep_from.unwrap_or(c.watermark),
                end: c.watermark.saturating_add(c.span).min(c.until.min(end)).max(c.watermark),
                watermark: c.watermark,
            }),
            None => {
                self.cycle_end = None;
                None
            }
        }
    }

    /// True when the current cycle has no window left.
    pub fn cycle_done(&self) -> bool {
        match self.cycle_end {
            None => true,
            Some(end) => self.cursors.iter().all(|c| {
                (c.watermark >= c.until.min(end) && c.sweep_from.is_none()) || c.unavailable_until.is_some() || c.follows.is_some()
            }),
        }
    }

    /// Records that `window` was collected completely; `fullness` is the
    /// share of the row limit it used, to size the next window. A window
    /// that ends before the watermark (a part of the late-row look) moves
    /// only the look.
    pub fn complete(&mut self, window: &Window, fullness: f64) {
        let c = &mut self.cursors[window.table];
        let max = c.period.map_or(self.max_window, |p| p.min(self.max_window));
        debug_assert_eq!(c.sweep_from.unwrap_or(c.watermark), window.start, "windows complete in order");
        if window.end < c.watermark {
            c.sweep_from = Some(window.end);
            return;
        }
        c.sweep_from = None;
        let used = Ticks(window.end.0 - window.start.max(c.watermark).0);
        c.watermark = window.end;
        for f in self.followers(window.table).into_iter().chain(self.union_members(window.table)) {
            self.cursors[f].watermark = window.end;
        }
        let c = &mut self.cursors[window.table];
        if used.0 == 0 {
            return;
        }
        c.span = if fullness > 0.5 {
            used
        } else if fullness < 0.125 {
            Ticks(used.0.saturating_mul(2)).min(max).max(c.span)
        } else {
            c.span
        };
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
                },
            );
        }
        let mut all_streams = self.streams.clone();
        for (name, state) in streams {
            all_streams.insert(name.to_string(), (*state).clone());
        }
        serde_json::to_string(&CheckpointDoc {
            version: CHECKPOINT_VERSION,
            tables,
            streams: all_streams,
        })
        .expect("a map of strings serialises")
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
        };
        assert_eq!(w.first_half().unwrap().end, Ticks(15));
        assert_eq!(
            Window {
                table: 0,
                start: Ticks(10),
                end: Ticks(11),
                watermark: Ticks(10),
            }
            .first_half(),
            None
        );

        let mut p = Planner::new(&["A"], None, Ticks(0), HOUR).unwrap();
        p.begin_cycle(Ticks(HOUR.0 * 10), Ticks(0));
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
}
