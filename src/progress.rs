//! Backfill progress: when a cycle starts far behind (a first start from
//! `start_time`, or a restart after a long stop), how much of the way is
//! done, how fast, about how long the rest will take, and what each table
//! still has to collect. The collector logs it at most every
//! [`REPORT_EVERY`] and once more at the end; the host writes those logs on
//! stderr. Only tables that answer count: one found unavailable leaves the
//! estimate ([`Backfill::drop_table`]).

use crate::time::{TICKS_PER_SECOND, Ticks};

/// A cycle this far behind real time (summed over tables) is a backfill.
pub const BACKFILL_FROM: Ticks = Ticks(2 * 3600 * TICKS_PER_SECOND);
/// The least time between two progress lines (guest time).
pub const REPORT_EVERY: Ticks = Ticks(30 * TICKS_PER_SECOND);

/// The progress of one backfill.
#[derive(Clone, Debug)]
pub struct Backfill {
    /// Data time to cover, summed over tables, when it started.
    total: Ticks,
    /// Data time covered so far.
    covered: Ticks,
    windows: u64,
    rows: u64,
    started: Ticks,
    last_report: Ticks,
}

impl Backfill {
    /// A backfill of `behind` (data time summed over tables), if that is
    /// enough to be one.
    pub fn start(behind: Ticks, now: Ticks) -> Option<Backfill> {
        (behind >= BACKFILL_FROM).then_some(Backfill {
            total: behind,
            covered: Ticks(0),
            windows: 0,
            rows: 0,
            started: now,
            last_report: now,
        })
    }

    /// The opening line.
    pub fn begun(&self) -> String {
        format!(
            "backfill: {} of data to collect (summed over tables); progress follows every 30 s",
            duration(self.total.0)
        )
    }

    /// Counts a completed window; returns a progress line when one is due,
    /// naming what each table has `left` (tables with nothing left are
    /// left out).
    pub fn window_done(&mut self, span: Ticks, rows: usize, now: Ticks, left: &[(&str, Ticks)]) -> Option<String> {
        self.covered = Ticks(self.covered.0.saturating_add(span.0));
        self.windows += 1;
        self.rows += rows as u64;
        if now.0 - self.last_report.0 < REPORT_EVERY.0 {
            return None;
        }
        self.last_report = now;
        Some(self.line(now, left))
    }

    /// A new cycle began while the backfill goes on: `behind` is what is
    /// left to collect now, with the new cycle's live data.
    pub fn restate(&mut self, behind: Ticks) {
        self.total = Ticks(self.covered.0.saturating_add(behind.0.max(0)));
    }

    /// A table turned out not to answer (no license): the `remaining` data
    /// time it had is no longer to collect, so it leaves the share and the
    /// estimate.
    pub fn drop_table(&mut self, remaining: Ticks) {
        self.total = Ticks(self.total.0.saturating_sub(remaining.0.max(0)).max(self.covered.0));
    }

    /// The closing line.
    pub fn finished(&self, now: Ticks) -> String {
        format!(
            "backfill complete: {} windows, {} rows in {}",
            self.windows,
            self.rows,
            duration(now.0 - self.started.0)
        )
    }

    fn line(&self, now: Ticks, per_table: &[(&str, Ticks)]) -> String {
        let elapsed = (now.0 - self.started.0).max(1);
        let share = (self.covered.0 as f64 / self.total.0.max(1) as f64).min(1.0);
        let rate = self.rows as f64 * TICKS_PER_SECOND as f64 / elapsed as f64;
        let left = if share > 0.0 {
            format!("about {} left", duration(((1.0 - share) / share * elapsed as f64) as i64))
        } else {
            "no estimate yet".to_string()
        };
        let mut tables: Vec<&(&str, Ticks)> = per_table.iter().filter(|(_, t)| t.0 > 0).collect();
        tables.sort_by_key(|(name, t)| (std::cmp::Reverse(*t), *name));
        let mut per_table: Vec<String> = tables.iter().take(5).map(|(name, t)| format!("{name} {}", duration(t.0))).collect();
        if tables.len() > 5 {
            per_table.push(format!("{} more", tables.len() - 5));
        }
        let per_table = match per_table.is_empty() {
            true => String::new(),
            false => format!("; left: {}", per_table.join(", ")),
        };
        format!(
            "backfill: {:.0}% of {} of data done, {} windows, {} rows, {rate:.0} rows/s, {left}{per_table}",
            share * 100.0,
            duration(self.total.0),
            self.windows,
            self.rows
        )
    }
}

/// `3 d 4 h`, `12 min`, `40 s`: the two largest units.
fn duration(ticks: i64) -> String {
    let s = (ticks / TICKS_PER_SECOND).max(0);
    let (d, h, m) = (s / 86_400, s / 3600 % 24, s / 60 % 60);
    match (d, h, m) {
        (d, h, _) if d > 0 => format!("{d} d {h} h"),
        (_, h, m) if h > 0 => format!("{h} h {m} min"),
        (_, _, m) if m > 0 => format!("{m} min {} s", s % 60),
        _ => format!("{s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: i64) -> Ticks {
        Ticks(s * TICKS_PER_SECOND)
    }

    #[test]
    fn a_short_gap_is_not_a_backfill() {
        assert!(Backfill::start(secs(600), secs(0)).is_none());
        let b = Backfill::start(secs(3 * 86_400 + 7200), secs(0)).unwrap();
        assert!(b.begun().contains("3 d 2 h of data"), "{}", b.begun());
    }

    #[test]
    fn reports_share_rate_and_what_is_left_at_most_every_30_seconds() {
        let mut b = Backfill::start(secs(4 * 86_400), secs(1_000)).unwrap();
        // A day of data in 10 windows over 20 s: no line yet.
        for i in 1..=10 {
            assert_eq!(b.window_done(secs(8_640), 1_000, secs(1_000 + 2 * i), &[]), None);
        }
        // The next window at 40 s: a quarter done in 40 s, so 120 s left.
        let left = [("B", secs(86_400)), ("Done", Ticks(0)), ("A", secs(2 * 86_400))];
        let line = b.window_done(Ticks(0), 2_000, secs(1_040), &left).unwrap();
        assert_eq!(
            line,
            "backfill: 25% of 4 d 0 h of data done, 11 windows, 12000 rows, 300 rows/s, about 2 min 0 s left; left: A 2 d 0 h, B 1 d 0 h"
        );
        assert_eq!(b.window_done(secs(1), 0, secs(1_050), &left), None, "not again within 30 s");
        assert_eq!(b.finished(secs(1_160)), "backfill complete: 12 windows, 12000 rows in 2 min 40 s");
    }

    /// A table that does not answer leaves the estimate: 54 % done was
    /// really all but done when the rest was an unlicensed table's.
    #[test]
    fn a_table_that_does_not_answer_leaves_the_estimate() {
        let mut b = Backfill::start(secs(4 * 86_400), secs(0)).unwrap();
        assert_eq!(b.window_done(secs(2 * 86_400), 100, secs(1), &[]), None);
        // Half done by data time; the other half was an unlicensed table's.
        b.drop_table(secs(2 * 86_400 - 3_600));
        let line = b.window_done(Ticks(0), 0, secs(40), &[]).unwrap();
        assert!(line.starts_with("backfill: 98% of 2 d 1 h of data done"), "{line}");
        assert!(line.ends_with("about 0 s left"), "{line}");
        // Never below what is already covered.
        b.drop_table(secs(10 * 86_400));
        let line = b.window_done(Ticks(0), 0, secs(80), &[]).unwrap();
        assert!(line.starts_with("backfill: 100% of 2 d 0 h"), "{line}");
        // Without the drop the same point read 50 %.
        let mut kept = Backfill::start(secs(4 * 86_400), secs(0)).unwrap();
        assert_eq!(kept.window_done(secs(2 * 86_400), 100, secs(1), &[]), None);
        assert!(kept.window_done(Ticks(0), 0, secs(40), &[]).unwrap().starts_with("backfill: 50%"));
    }

    /// A cycle that begins during a backfill adds its live data to the
    /// total, keeping what is covered: the share goes on from where it was
    /// instead of starting over or passing 100 %.
    #[test]
    fn a_new_cycle_restates_what_is_left() {
        let mut b = Backfill::start(secs(4 * 86_400), secs(0)).unwrap();
        assert_eq!(b.window_done(secs(86_400), 10, secs(1), &[]), None);
        b.restate(secs(3 * 86_400 + 3_600));
        let line = b.window_done(Ticks(0), 0, secs(40), &[]).unwrap();
        assert!(line.starts_with("backfill: 25% of 4 d 1 h of data done"), "{line}");
    }

    #[test]
    fn names_at_most_five_tables_most_behind_first() {
        let mut b = Backfill::start(secs(4 * 86_400), secs(0)).unwrap();
        let left: Vec<(String, Ticks)> = (1..=7).map(|i| (format!("T{i}"), secs(i * 3_600))).collect();
        let left: Vec<(&str, Ticks)> = left.iter().map(|(n, t)| (n.as_str(), *t)).collect();
        let line = b.window_done(secs(3_600), 10, secs(40), &left).unwrap();
        assert!(
            line.ends_with("; left: T7 7 h 0 min, T6 6 h 0 min, T5 5 h 0 min, T4 4 h 0 min, T3 3 h 0 min, 2 more"),
            "{line}"
        );
    }
}
