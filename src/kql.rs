//! The KQL the collector sends. Only table names from the mapping registry and
//! timestamps the collector formats itself reach a query, so no user text is
//! ever spliced into KQL.

use crate::answer::SOURCE_COLUMN;
use crate::time::Ticks;

/// The rows of several tables as one: `union withsource=SourceTable A, B`.
pub fn union_source(tables: &[&str]) -> String {
    debug_assert!(tables.iter().all(|t| is_table_name(t)), "table names come from the registry");
    format!("union withsource={SOURCE_COLUMN} {}", tables.join(", "))
}

fn is_table_name(name: &str) -> bool {
    name.chars().all(|c| c.is_ascii_alphanumeric())
}

/// A registry table name or a [`union_source`] of them.
fn is_source(source: &str) -> bool {
    is_table_name(source) || source.starts_with("union withsource=")
}

/// Rows of `table` (a table name, or a [`union_source`]) with
/// `start <= Timestamp < end`, oldest first, at most `take`.
pub fn window_query(table: &str, start: Ticks, end: Ticks, take: u32) -> String {
    debug_assert!(is_source(table), "table names come from the registry");
    format!(
        "{table} | where Timestamp >= datetime({}) and Timestamp < datetime({}) | order by Timestamp asc | take {take}",
        start.to_iso(),
        end.to_iso()
    )
}

/// Rows of `table` at exactly `at` whose content falls in hash bucket
/// `bucket` of `buckets`, at most `take`. The buckets of one count split
/// the rows of that instant into disjoint parts, whatever the columns: how
/// more rows than one answer carries, all with one timestamp, are collected.
pub fn tick_bucket_query(table: &str, at: Ticks, bucket: u32, buckets: u32, take: u32) -> String {
    debug_assert!(is_source(table), "table names come from the registry");
    format!(
        "{table} | where Timestamp == datetime({}) | where hash(tostring(pack_all()), {buckets}) == {bucket} | take {take}",
        at.to_iso()
    )
}

/// The `Timespan` for a window: one second wider on each side than the
/// `where` clause, so that any rounding of the timespan by the service cannot
/// cut rows off; the `where` clause is the exact filter.
pub fn timespan(start: Ticks, end: Ticks) -> String {
    let second = Ticks::from_secs(1);
    format!("{}/{}", start.saturating_sub(second).to_iso(), end.saturating_add(second).to_iso())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_query_is_half_open_and_ordered() {
        let q = window_query(
            "DeviceProcessEvents",
            Ticks::parse("2025-01-01T00:00:00Z").unwrap(),
            Ticks::parse("2025-01-01T00:05:00.5Z").unwrap(),
            10001,
        );
        assert_eq!(
            q,
            "DeviceProcessEvents | where Timestamp >= datetime(2025-01-01T00:00:00.0000000Z) and Timestamp < datetime(2025-01-01T00:05:00.5000000Z) | order by Timestamp asc | take 10001"
        );
        assert_eq!(
            timespan(
                Ticks::parse("2025-01-01T00:00:00Z").unwrap(),
                Ticks::parse("2025-01-01T00:05:00Z").unwrap()
            ),
            "2024-12-31T23:59:59.0000000Z/2025-01-01T00:05:01.0000000Z"
        );
        assert_eq!(
            tick_bucket_query("DeviceEvents", Ticks::parse("2025-01-01T00:00:00.0000001Z").unwrap(), 3, 4, 100000),
            "DeviceEvents | where Timestamp == datetime(2025-01-01T00:00:00.0000001Z) | where hash(tostring(pack_all()), 4) == 3 | take 100000"
        );
        assert_eq!(
            window_query(
                &union_source(&["UrlClickEvents", "IdentityDirectoryEvents"]),
                Ticks::parse("2025-01-01T00:00:00Z").unwrap(),
                Ticks::parse("2025-01-01T00:01:00Z").unwrap(),
                11
            ),
            "union withsource=SourceTable UrlClickEvents, IdentityDirectoryEvents | where Timestamp >= datetime(2025-01-01T00:00:00.0000000Z) and Timestamp < datetime(2025-01-01T00:01:00.0000000Z) | order by Timestamp asc | take 11"
        );
    }
}
