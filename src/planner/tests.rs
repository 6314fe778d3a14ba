//! The planner's tests: windows, cycles, stretches ahead and checkpoints.

use super::*;
use crate::error::Error;

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
