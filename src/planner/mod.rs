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

mod checkpoint;
mod cursor;

pub use checkpoint::StreamState;
pub use cursor::{Cursor, LIVE_SPAN, Window};

use crate::error::Result;
use crate::time::{TICKS_PER_SECOND, Ticks};
use checkpoint::TableState;
use cursor::pass_reached;
use std::collections::BTreeMap;

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

impl Planner {
    /// A planner for `tables`, resuming from `checkpoint` where given;
    /// tables without a saved watermark start at `start`.
    pub fn new(tables: &[&'static str], checkpoint: Option<&str>, start: Ticks, max_window: Ticks) -> Result<Planner> {
        let (mut saved, streams) = checkpoint::read(checkpoint)?;
        let mut cursors = Vec::with_capacity(tables.len());
        for table in tables {
            let (watermark, floor, recent, ahead) = match saved.remove(*table) {
                Some(state) => state.resume(table)?,
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
            tables.insert(c.table.to_string(), TableState::of(c));
        }
        let mut all_streams = self.streams.clone();
        for (name, state) in streams {
            all_streams.insert(name.to_string(), (*state).clone());
        }
        checkpoint::write(tables, all_streams)
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
mod tests;
