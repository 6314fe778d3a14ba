//! The benchmark workloads (`benches/workload.rs`) are only worth measuring
//! if every row of them maps: `cargo bench` refuses a workload with a
//! rejected row, but CI only builds the benchmarks, so this checks it here.

#[path = "../benches/workload.rs"]
#[allow(dead_code)]
mod workload;

use defender_ocsf_collector::convert;

#[test]
fn every_row_of_every_benchmark_workload_maps() {
    let base = chrono::DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap().to_utc();
    for table in ["DeviceProcessEvents", "DeviceNetworkEvents", "DeviceEvents"] {
        let rows = workload::rows(table, 500, base);
        let out = convert::convert(table, "", workload::answer(table, &rows)).unwrap();
        assert_eq!(out.rejected, Vec::<String>::new(), "{table}: every row maps");
        assert_eq!(out.count, 500, "{table}");
    }
}
