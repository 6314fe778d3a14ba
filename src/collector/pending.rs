//! A window whose answer is handed out in parts, one batch per poll. Its
//! watermark moves only when the last part is out, so a restart in between
//! collects the whole window again: nothing is lost.

use super::emit::{Mapper, before, count_written, written_key};
use crate::answer::HuntingResult;
use crate::mapping::Table;
use crate::planner::Window;
use crate::time::Ticks;

/// Rows mapped between two checks of the batch's size.
const ROWS_PER_STEP: usize = 64;

pub struct Pending {
    pub window: Window,
    pub table: &'static Table,
    answer: HuntingResult,
    /// The next row to map, and the end of the rows that belong to the window.
    next: usize,
    pub end: usize,
    /// The first rows, up to this one, lie before the watermark: they are
    /// emitted only if not emitted before (late arrivals).
    late: usize,
    /// How many of those were late arrivals.
    pub late_emitted: usize,
    /// Keys of the events emitted so far, for the late-row sweeps.
    pub keys: Vec<(Ticks, String)>,
    /// For a one-tick window with more rows than an answer carries: the
    /// hash buckets (`bucket`, of `buckets`) still to query, one a poll.
    pub buckets: Vec<(u32, u32)>,
}

impl Pending {
    /// The first `end` rows of `answer`, which belong to `window`.
    pub fn answer(window: Window, table: &'static Table, answer: HuntingResult, end: usize) -> Pending {
        let late = before(&answer, end, window.watermark);
        Pending {
            window,
            table,
            answer,
            next: 0,
            end,
            late,
            late_emitted: 0,
            keys: Vec::new(),
            buckets: Vec::new(),
        }
    }

    /// A one-tick window whose rows come by hash buckets, `buckets` still to query.
    pub fn buckets(window: Window, table: &'static Table, buckets: Vec<(u32, u32)>) -> Pending {
        Pending {
            buckets,
            ..Pending::answer(window, table, HuntingResult::default(), 0)
        }
    }

    /// Whether every row loaded so far is out, so the next bucket is due.
    pub fn drained(&self) -> bool {
        self.next >= self.end
    }

    /// Whether the window is complete: every row out, every bucket queried.
    pub fn done(&self) -> bool {
        self.drained() && self.buckets.is_empty()
    }

    /// Takes the rows of the next bucket, all of which belong to the window.
    pub fn load(&mut self, answer: HuntingResult) {
        self.late = before(&answer, answer.len(), self.window.watermark);
        (self.next, self.end, self.answer) = (0, answer.len(), answer);
    }

    /// Maps the next part: rows until `max_bytes` of NDJSON are written.
    /// Of the rows before the watermark, only those `seen` does not know
    /// are emitted.
    pub fn write_part(&mut self, mapper: &Mapper, seen: impl Fn(&str) -> bool, max_bytes: usize) -> (Vec<u8>, u32) {
        let mut out = Vec::new();
        let mut count = 0;
        let mut i = self.next;
        while i < self.end && out.len() < max_bytes {
            let stop = (i + ROWS_PER_STEP).min(self.end);
            let late_stop = stop.min(self.late).max(i);
            let (keys, late_emitted) = (&mut self.keys, &mut self.late_emitted);
            mapper.write(self.table, &self.answer, i..late_stop, &mut out, |written| {
                let key = written_key(written);
                if seen(&key.1) {
                    return false;
                }
                *late_emitted += 1;
                keys.push(key);
                count_written(written);
                count += 1;
                true
            });
            mapper.write(self.table, &self.answer, late_stop..stop, &mut out, |written| {
                keys.push(written_key(written));
                count_written(written);
                count += 1;
                true
            });
            i = stop;
        }
        self.next = i;
        (out, count)
    }
}
