//! One table's progress ([`Cursor`]) and a window to query ([`Window`]).

use crate::time::{TICKS_PER_SECOND, Ticks};

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
    pub(super) fn look_floor(&self) -> Ticks {
        self.ahead.last().map_or(self.floor, |s| s.0.max(self.floor))
    }
}

/// Moves `watermark` past every stretch collected ahead that it has
/// reached, which are then behind it.
pub(super) fn pass_reached(watermark: &mut Ticks, ahead: &mut Vec<(Ticks, Ticks)>) {
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
