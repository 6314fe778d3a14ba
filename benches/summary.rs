//! `cargo bench --bench summary`: every figure of docs/performance.md, one
//! `BENCH name=<name> value=<number> unit=<unit>` line each.
//!
//! 1. mapping throughput inside the component (wasmtime), per table;
//! 2. the same code compiled natively, in the same run, and beside it the
//!    copy floor of any design (copy-floor/: every cell of the answer copied
//!    to the output, nothing mapped), natively and in wasmtime; then every
//!    one of the 20 tables in the component (`per_table`);
//! 3. the DeviceProcessEvents → 1007 mapping as a VRL program (`vrl` crate,
//!    the 0.34 line that Vector 0.58 runs), with the system allocator and,
//!    in a process of its own, with jemalloc as Vector ships;
//! 4. peak RSS of a host process collecting a 100,000-row answer;
//! 5. time from process start to the first query, with a cached compiled
//!    component.
//!
//! Figures 4 and 5 need a process of their own: this program runs itself
//! again as that process (`DEFENDER_OCSF_BENCH_CHILD`), running the host's
//! `run --once` code (`app::run`, what the binary's `run` calls) against a
//! replay endpoint in the parent.

#[path = "copy-floor/src/lib.rs"]
mod copy_floor;
#[path = "../tests/support/golden_rows.rs"]
mod golden_rows;
mod workload;

use defender_ocsf_host::app::{self, RunOptions};
use defender_ocsf_host::config::RunConfig;
use defender_ocsf_host::output::Stdout;
use defender_ocsf_host::runtime::{DEFAULT_COMPONENT, Limits, Runtime};
use defender_ocsf_host::telemetry::Telemetry;
use defender_ocsf_replay::{Credentials, Dataset, ReplayServer};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHILD: &str = "DEFENDER_OCSF_BENCH_CHILD";
/// Set in the environment of the child that measures VRL with jemalloc.
const JEMALLOC: &std::ffi::CStr = c"DEFENDER_OCSF_BENCH_JEMALLOC";
/// Rows of each mapping workload.
const ROWS: usize = 20_000;

/// The allocator: the system's, except in the child that measures VRL as
/// Vector ships it, with jemalloc ([`JEMALLOC`] in its environment). The
/// choice is made at the first allocation and never changes (this program
/// never changes its own environment), so every block is freed by the
/// allocator that gave it.
struct Allocator;

/// 0: not chosen yet, 1: the system's, 2: jemalloc.
static CHOICE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

impl Allocator {
    #[inline]
    fn jemalloc() -> bool {
        match CHOICE.load(std::sync::atomic::Ordering::Relaxed) {
            1 => false,
            2 => true,
            _ => {
                // SAFETY: `getenv` reads the environment without allocating,
                // and nothing in this program writes the environment.
                let on = unsafe { !libc::getenv(JEMALLOC.as_ptr()).is_null() };
                CHOICE.store(if on { 2 } else { 1 }, std::sync::atomic::Ordering::Relaxed);
                on
            }
        }
    }
}

// SAFETY: each call goes to one of two allocators, the same one for the
// whole life of the process.
unsafe impl std::alloc::GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        match Self::jemalloc() {
            true => unsafe { tikv_jemallocator::Jemalloc.alloc(layout) },
            false => unsafe { std::alloc::System.alloc(layout) },
        }
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        match Self::jemalloc() {
            true => unsafe { tikv_jemallocator::Jemalloc.alloc_zeroed(layout) },
            false => unsafe { std::alloc::System.alloc_zeroed(layout) },
        }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        match Self::jemalloc() {
            true => unsafe { tikv_jemallocator::Jemalloc.dealloc(ptr, layout) },
            false => unsafe { std::alloc::System.dealloc(ptr, layout) },
        }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        match Self::jemalloc() {
            true => unsafe { tikv_jemallocator::Jemalloc.realloc(ptr, layout, new_size) },
            false => unsafe { std::alloc::System.realloc(ptr, layout, new_size) },
        }
    }
}

#[global_allocator]
static GLOBAL: Allocator = Allocator;
const OPTIONS: &str = r#"{"tenant_id":"00000000-0000-4000-8000-000000000001"}"#;

/// `BENCH_ONLY=<text>` runs only the figures whose name contains it (for
/// profiling one of them); by default everything runs.
fn wanted(name: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| name.contains(&only))
}

fn report(name: &str, value: f64, unit: &str) {
    println!("BENCH name={name} value={value:.3} unit={unit}");
}

/// Runs `f` (which handles `rows` rows) until at least `min` has passed and
/// three runs are done; returns the best rate in rows/s.
fn rows_per_second(rows: usize, min: Duration, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let started = Instant::now();
    let mut best = f64::MAX;
    let mut runs = 0;
    while runs < 3 || started.elapsed() < min {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
        runs += 1;
    }
    rows as f64 / best
}

fn main() {
    if let Ok(role) = std::env::var(CHILD) {
        match role.as_str() {
            "vrl" => vrl_child(),
            _ => child(&role),
        }
        return;
    }
    let min = Duration::from_secs(3);
    if let Ok(path) = std::env::var("BENCH_WRITE_ROWS") {
        write_rows(std::path::Path::new(&path));
        return;
    }
    if let Ok(files) = std::env::var("BENCH_COMPARE") {
        compare(&files.split(',').collect::<Vec<_>>());
        return;
    }
    if std::env::var("BENCH_EPOCH_COMPARE").is_ok() {
        epoch_compare(min);
        return;
    }
    let runtime = Runtime::new(DEFAULT_COMPONENT, None).expect("the embedded component compiles");
    let limits = mapping_limits();
    let mut instance = runtime.instantiate(&limits, Arc::new(Telemetry::default())).unwrap();

    for table in ["DeviceProcessEvents", "DeviceNetworkEvents", "DeviceEvents"] {
        let body = mapping_answer(table, ROWS);
        report(&format!("workload_bytes_per_row.{table}"), body.len() as f64 / ROWS as f64, "bytes");

        let native = defender_ocsf_collector::convert::convert(table, OPTIONS, body.as_slice()).unwrap();
        assert_eq!(native.count as usize, ROWS, "every row maps: {:?}", native.rejected.first());
        if std::env::var("BENCH_NATIVE_ONLY").is_err() {
            let in_component = instance.map_results(table, OPTIONS, &body).unwrap().unwrap();
            assert_eq!(in_component.events, native.events, "the component and native code map alike");
        }

        if !wanted(table) {
            continue;
        }
        let native_rate = rows_per_second(ROWS, min, || {
            std::hint::black_box(defender_ocsf_collector::convert::convert(table, OPTIONS, body.as_slice()).unwrap());
        });
        report(&format!("native_rows_per_s.{table}"), native_rate, "rows/s");
        let copy_floor = native_copy_floor(&body, ROWS, min);
        report(&format!("native_copy_floor_rows_per_s.{table}"), copy_floor, "rows/s");
        if std::env::var("BENCH_NATIVE_ONLY").is_ok() {
            continue;
        }
        let copy_floor = component_copy_floor(&body, ROWS, min);
        report(&format!("component_copy_floor_rows_per_s.{table}"), copy_floor, "rows/s");
        let component_rate = rows_per_second(ROWS, min, || {
            std::hint::black_box(instance.map_results(table, OPTIONS, &body).unwrap().unwrap());
        });
        report(&format!("component_rows_per_s.{table}"), component_rate, "rows/s");
        report(&format!("component_over_native.{table}"), component_rate / native_rate, "ratio");
        if table == "DeviceProcessEvents" {
            let vrl_rate = vrl_bench::rows_per_second(&body, &native.events, ROWS, min);
            report("vrl_rows_per_s.DeviceProcessEvents", vrl_rate, "rows/s");
            report("component_over_vrl.DeviceProcessEvents", component_rate / vrl_rate, "ratio");
            let codec = vrl_bench::codec_rows_per_second(&body, ROWS, min);
            report("vrl_codec_floor_rows_per_s.DeviceProcessEvents", codec, "rows/s");
            let jemalloc_rate = vrl_with_jemalloc();
            report("vrl_jemalloc_rows_per_s.DeviceProcessEvents", jemalloc_rate, "rows/s");
            report(
                "component_over_vrl_jemalloc.DeviceProcessEvents",
                component_rate / jemalloc_rate,
                "ratio",
            );
        }
    }
    per_table(&mut instance, min);
    drop(instance);

    if wanted("peak_rss") {
        peak_rss();
    }
    if wanted("startup") {
        startup();
    }
}

/// Rows per table in the per-table figures.
const PER_TABLE_ROWS: usize = 10_000;

/// `component_rows_per_s.per_table.<table>` for every table the collector
/// maps: the rows of [`per_table_rows`] (real public Defender records where
/// there are any), repeated to `PER_TABLE_ROWS` rows, through the component.
/// Each is checked first to map every row, as natively.
fn per_table(instance: &mut defender_ocsf_host::runtime::Instance, min: Duration) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/samples/normalized");
    if !dir.is_dir() {
        if std::env::var_os("CI").is_some() {
            panic!("{} is missing; the per-table figures need it", dir.display());
        }
        println!("SKIPPED per-table figures: {} is missing", dir.display());
        return;
    }
    let mut slowest = f64::MAX;
    for table in defender_ocsf_collector::mapping::TABLES {
        let name = format!("component_rows_per_s.per_table.{}", table.name);
        if !wanted(&name) {
            continue;
        }
        let (samples, from) = per_table_rows(&dir, table.name);
        assert!(!samples.is_empty(), "{}: no rows to map", table.name);
        println!("{name}: {} distinct rows, from {from}", samples.len());
        let rows: Vec<_> = samples.iter().cycle().take(PER_TABLE_ROWS).cloned().collect();
        let body = workload::answer(table.name, &rows);
        let native = defender_ocsf_collector::convert::convert(table.name, OPTIONS, body.as_slice()).unwrap();
        assert_eq!(
            native.count as usize,
            rows.len(),
            "{}: every row maps: {:?}",
            table.name,
            native.rejected.first()
        );
        if std::env::var("BENCH_NATIVE_ONLY").is_ok() {
            continue;
        }
        let in_component = instance.map_results(table.name, OPTIONS, &body).unwrap().unwrap();
        assert_eq!(
            in_component.events, native.events,
            "{}: the component and native code map alike",
            table.name
        );
        let rate = rows_per_second(rows.len(), min, || {
            std::hint::black_box(instance.map_results(table.name, OPTIONS, &body).unwrap().unwrap());
        });
        report(&name, rate, "rows/s");
        report(
            &format!("workload_bytes_per_row.per_table.{}", table.name),
            body.len() as f64 / rows.len() as f64,
            "bytes",
        );
        slowest = slowest.min(rate);
    }
    if slowest < f64::MAX {
        report("component_rows_per_s.per_table.slowest", slowest, "rows/s");
    }
}

/// The rows of `table` for its per-table figure, and where they come from:
/// the shared sample rows (`dir`) that have a `Timestamp` (a few have none,
/// which the collector rejects unless it knows when it collected them), or,
/// for a table of which no public record exists (BehaviorInfo, the Entra
/// sign-in tables, GraphApiAuditEvents), the rows of its golden cases
/// (`tests/golden`) but those written to be rejected.
fn per_table_rows(dir: &std::path::Path, table: &str) -> (Vec<serde_json::Map<String, serde_json::Value>>, String) {
    use serde_json::{Map, Value};
    let path = dir.join(format!("{table}.ndjson"));
    if path.is_file() {
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let rows = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
            .filter(|row: &Map<String, Value>| row.get("Timestamp").is_some_and(|t| t.as_str().is_some_and(|t| !t.is_empty())))
            .collect();
        return (rows, path.display().to_string());
    }
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden");
    let rows = golden_rows::golden_rows(&golden)
        .into_iter()
        .filter(|g| g.table == table && g.rejected().is_none())
        .map(|g| g.row)
        .collect();
    (rows, format!("its golden cases in {} (no public sample)", golden.display()))
}

/// The answer of `rows` workload rows of `table` that the mapping figures map.
/// `BENCH_WRITE_ROWS=<path>`: the DeviceProcessEvents workload's rows as
/// NDJSON at `path`, and the collector's events for them at
/// `<path>.expected`, for `benches/vector-remap.sh` (the VRL program in the
/// real Vector).
fn write_rows(path: &std::path::Path) {
    let table = "DeviceProcessEvents";
    let body = mapping_answer(table, ROWS);
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let mut out = Vec::with_capacity(body.len());
    for row in answer["results"].as_array().expect("an answer has results") {
        serde_json::to_writer(&mut out, row).unwrap();
        out.push(b'\n');
    }
    std::fs::write(path, out).unwrap();
    let native = defender_ocsf_collector::convert::convert(table, OPTIONS, body.as_slice()).unwrap();
    let mut expected = path.as_os_str().to_owned();
    expected.push(".expected");
    std::fs::write(expected, native.events).unwrap();
}

fn mapping_answer(table: &str, rows: usize) -> Vec<u8> {
    workload::answer(table, &workload::rows(table, rows, workload_start()))
}

/// The time of the mapping workloads' first row.
fn workload_start() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-11-01T08:00:00Z").unwrap().to_utc()
}

/// Room for a 20,000-row answer and its events in the component's memory.
fn mapping_limits() -> Limits {
    Limits {
        memory_bytes: 2 << 30,
        ..Limits::default()
    }
}

/// `BENCH_COMPARE=<a.wasm>,<b.wasm>,...`: the mapping rate of two or more
/// builds of the component, measured in one process. The shared machine moves
/// rates by ±20 % from one run to the next, so separate runs cannot show a
/// 10 % change; here the components' runs alternate, and each one's median of
/// 8 is reported. Every component must map each workload to the same events.
fn compare(files: &[&str]) {
    const ROWS: usize = 20_000;
    const RUNS: usize = 8;
    let limits = mapping_limits();
    let runtimes: Vec<Runtime> = files
        .iter()
        .map(|file| {
            let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("BENCH_COMPARE: cannot read {file}: {e}"));
            Runtime::new(&bytes, None).unwrap_or_else(|e| panic!("BENCH_COMPARE: {file} is not a collector component: {e}"))
        })
        .collect();
    let mut instances: Vec<_> = runtimes
        .iter()
        .map(|runtime| runtime.instantiate(&limits, Arc::new(Telemetry::default())).unwrap())
        .collect();
    let mut bodies: Vec<(String, Vec<u8>, usize)> = ["DeviceProcessEvents", "DeviceNetworkEvents", "DeviceEvents"]
        .into_iter()
        .filter(|table| wanted(table))
        .map(|table| (table.to_string(), mapping_answer(table, ROWS), ROWS))
        .collect();
    // And each table's own rows (`per_table`), for the tables `BENCH_ONLY`
    // names (`BENCH_ONLY=per_table` for all, and then no workload), as
    // `compare_rows_per_s.per_table.<table>.<index>`.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/samples/normalized");
    for table in defender_ocsf_collector::mapping::TABLES {
        let name = format!("per_table.{}", table.name);
        if std::env::var_os("BENCH_ONLY").is_some() && wanted(&name) && dir.is_dir() {
            let (samples, _) = per_table_rows(&dir, table.name);
            let rows: Vec<_> = samples.iter().cycle().take(PER_TABLE_ROWS).cloned().collect();
            bodies.push((name, workload::answer(table.name, &rows), rows.len()));
        }
    }
    for (label, body, rows) in &bodies {
        let table = label.strip_prefix("per_table.").unwrap_or(label);
        let outputs: Vec<Vec<u8>> = instances
            .iter_mut()
            .map(|instance| instance.map_results(table, OPTIONS, body).unwrap().unwrap().events)
            .collect();
        // The same events; their keys' order may differ between builds
        // (components from before #16 sorted them; the plans keep the
        // mapping's order, and since #16 a dynamic column's object keeps its own).
        for (i, pair) in outputs.windows(2).enumerate() {
            if pair[0] != pair[1] {
                assert_same_events(&format!("component {} on {label}", i + 1), &pair[1], &pair[0]);
            }
        }
        let mut rates = vec![Vec::with_capacity(RUNS); instances.len()];
        for _ in 0..RUNS {
            for (instance, rates) in instances.iter_mut().zip(&mut rates) {
                let started = Instant::now();
                std::hint::black_box(instance.map_results(table, OPTIONS, body).unwrap().unwrap());
                rates.push(*rows as f64 / started.elapsed().as_secs_f64());
            }
        }
        for (i, mut rates) in rates.into_iter().enumerate() {
            rates.sort_by(f64::total_cmp);
            report(&format!("compare_rows_per_s.{label}.{i}"), rates[RUNS / 2], "rows/s");
        }
    }
}

/// `BENCH_EPOCH_COMPARE=1`: what wasmtime's epoch checks, which let the host
/// bound a call into the component, cost the copy floor: its runs with epoch
/// interruption on and off, alternated, three rounds, the median printed as
/// `epoch_compare_rows_per_s.copy.<on|off>`.
fn epoch_compare(min: Duration) {
    const ROWS: usize = 20_000;
    const ROUNDS: usize = 3;
    let body = mapping_answer("DeviceProcessEvents", ROWS);
    let mut rates = [Vec::new(), Vec::new()];
    for _ in 0..ROUNDS {
        for (epoch, rates) in [true, false].into_iter().zip(&mut rates) {
            rates.push(run_copy_floor(&body, ROWS, min, epoch));
        }
    }
    for (name, mut rates) in ["on", "off"].into_iter().zip(rates) {
        rates.sort_by(f64::total_cmp);
        report(&format!("epoch_compare_rows_per_s.copy.{name}"), rates[ROUNDS / 2], "rows/s");
    }
}

/// The copy floor natively: every cell of the answer copied to the output
/// (`copy-floor/src/lib.rs`), the least any mapping does.
fn native_copy_floor(body: &[u8], rows: usize, min: Duration) -> f64 {
    let answer = std::str::from_utf8(body).unwrap();
    let mut out = Vec::with_capacity(body.len() + body.len() / 8);
    assert_eq!(copy_floor::copy_floor(answer, &mut out).unwrap(), rows);
    // It does copy every cell: each line is its row (compared row by row,
    // as the collector reads them, to hold one row at a time).
    let rows_in = defender_ocsf_collector::answer::parse_response(body).unwrap();
    let lines = serde_json::Deserializer::from_slice(&out).into_iter::<std::collections::BTreeMap<String, serde_json::Value>>();
    let mut copied = 0;
    for (i, line) in lines.enumerate() {
        let row: std::collections::BTreeMap<_, _> = rows_in.row(i).unwrap().into_iter().collect();
        assert_eq!(line.unwrap(), row, "the copy floor copies every cell of row {i}");
        copied += 1;
    }
    assert_eq!(copied, rows);
    rows_per_second(rows, min, || {
        out.clear();
        std::hint::black_box(copy_floor::copy_floor(answer, &mut out).unwrap());
    })
}

/// The copy floor inside a component: `copy-floor/` built for wasm32-wasip2
/// and compiled (once, into `target/copy-floor`) and run as a WASI command in wasmtime,
/// with epoch interruption on as in the host's runtime. It reads the answer
/// on stdin, times itself like [`rows_per_second`] and prints how many rows
/// it copied and its rate, which this returns.
fn component_copy_floor(body: &[u8], rows: usize, min: Duration) -> f64 {
    run_copy_floor(body, rows, min, true)
}

/// [`component_copy_floor`], with epoch interruption on or off.
fn run_copy_floor(body: &[u8], rows: usize, min: Duration, epoch: bool) -> f64 {
    use wasmtime::component::{Component, Linker, ResourceTable};
    use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
    use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

    struct Guest(WasiCtx, ResourceTable);
    impl WasiView for Guest {
        fn ctx(&mut self) -> WasiCtxView<'_> {
            WasiCtxView {
                ctx: &mut self.0,
                table: &mut self.1,
            }
        }
    }
    // Built and compiled once (for each setting of epoch interruption), for
    // every table's run.
    static COMPILED: [std::sync::OnceLock<(wasmtime::Engine, Component)>; 2] = [std::sync::OnceLock::new(), std::sync::OnceLock::new()];
    let (engine, component) = COMPILED[usize::from(epoch)].get_or_init(|| {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(epoch);
        let engine = wasmtime::Engine::new(&config).unwrap();
        let component = Component::from_file(&engine, build_copy_floor()).unwrap();
        (engine, component)
    });
    let mut linker = Linker::<Guest>::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
    let stdout = MemoryOutputPipe::new(1 << 10);
    let wasi = WasiCtx::builder()
        .stdin(MemoryInputPipe::new(body.to_vec()))
        .stdout(stdout.clone())
        .inherit_stderr()
        .args(&["copy-floor".to_string(), min.as_secs_f64().to_string()])
        .build();
    let mut store = wasmtime::Store::new(engine, Guest(wasi, ResourceTable::new()));
    if epoch {
        store.set_epoch_deadline(1); // the epoch never moves here: the checks cost, never trap
    }
    let command = wasmtime_wasi::p2::bindings::sync::Command::instantiate(&mut store, component, &linker).unwrap();
    command.wasi_cli_run().call_run(&mut store).unwrap().expect("the copy floor ran");
    let printed = String::from_utf8(stdout.contents().to_vec()).unwrap();
    let mut fields = printed.split_whitespace();
    let (copied, rate) = (|| Some((fields.next()?.parse::<usize>().ok()?, fields.next()?.parse::<f64>().ok()?)))()
        .unwrap_or_else(|| panic!("the copy floor printed {printed:?}"));
    assert_eq!(copied, rows, "the copy floor in the component reads every row");
    rate
}

/// Builds `copy-floor/` for wasm32-wasip2 and returns the component's path.
fn build_copy_floor() -> std::path::PathBuf {
    let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("copy-floor");
    let target_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/copy-floor");
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .args(["build", "--release", "--locked", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(crate_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    // The bench's own flags and profile settings are not the guest's.
    for (key, _) in std::env::vars() {
        if key.ends_with("RUSTFLAGS") || key.starts_with("CARGO_PROFILE_") || key == "CARGO_TARGET_DIR" || key == "CARGO_BUILD_TARGET" {
            cargo.env_remove(key);
        }
    }
    let status = cargo.status().expect("running cargo to build copy-floor");
    assert!(status.success(), "building benches/copy-floor for wasm32-wasip2 failed (see above)");
    target_dir.join("wasm32-wasip2/release/copy-floor.wasm")
}

/// Figure 4: a host process collects one 100,000-row answer of about 50 MB.
fn peak_rss() {
    const ROWS: usize = 100_000;
    // Rows of about 500 bytes: 100,000 of them make Graph's 50 MB answer.
    let rows: Vec<_> = workload::rows("DeviceProcessEvents", ROWS, recent())
        .into_iter()
        .map(|mut row| {
            row.retain(|k, _| {
                matches!(
                    k.as_str(),
                    "Timestamp"
                        | "DeviceId"
                        | "DeviceName"
                        | "ActionType"
                        | "FileName"
                        | "FolderPath"
                        | "SHA256"
                        | "ProcessId"
                        | "ProcessCommandLine"
                        | "AccountName"
                        | "InitiatingProcessId"
                        | "InitiatingProcessFileName"
                        | "ReportId"
                )
            });
            row
        })
        .collect();
    let size = workload::answer("DeviceProcessEvents", &rows).len();
    // The compiled component is cached, as on every start but the first
    // (compiling it is a one-off that costs more memory than collecting).
    let warm = warm_cache();
    let (server, dir) = replay(rows);
    link_cache(&warm, dir.path());
    let out = run_child("rss", &server, dir.path(), ROWS as u32 - 1);
    assert!(
        server.queries().len() <= 3,
        "one 100,000-row answer, the row after its cut, a late-row sweep: {:?}",
        server.queries()
    );
    report("answer_bytes.rss", size as f64, "bytes");
    report("peak_rss_100k_rows", out.max_rss_kib as f64 / 1024.0, "MiB");
}

/// Figure 5: from process start to the first runHuntingQuery, with the
/// compiled component already in the cache.
fn startup() {
    let rows = workload::rows("DeviceProcessEvents", 10, recent());
    let warm = warm_cache();
    let mut best = Duration::MAX;
    let mut baseline = 0;
    for _ in 0..5 {
        let (server, fresh) = replay(rows.clone());
        link_cache(&warm, fresh.path());
        let out = run_child("start", &server, fresh.path(), 1000);
        baseline = out.max_rss_kib;
        let first = server.first_query_at().expect("the child queried");
        best = best.min(first.saturating_duration_since(out.started));
    }
    report("startup_to_first_query", best.as_secs_f64() * 1000.0, "ms");
    report("peak_rss_10_rows", baseline as f64 / 1024.0, "MiB");
}

/// Rows for the child runs start here: inside one window, before `now - delay`.
fn recent() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() - chrono::Duration::minutes(20)
}

/// A state directory whose compiled-component cache is filled by one run.
fn warm_cache() -> tempfile_dir::TempDir {
    let (server, dir) = replay(workload::rows("DeviceProcessEvents", 10, recent()));
    run_child("warm-up", &server, dir.path(), 1000);
    dir
}

/// Shares the compiled-component cache of `warm` with the run in `dir`.
fn link_cache(warm: &tempfile_dir::TempDir, dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("state")).unwrap();
    std::os::unix::fs::symlink(warm.path().join("state/cache"), dir.join("state/cache")).unwrap();
}

fn credentials() -> Credentials {
    Credentials {
        tenant_id: "00000000-0000-4000-8000-000000000001".into(),
        client_id: "bench-client".into(),
        client_secret: "bench-secret".into(),
    }
}

fn replay(rows: Vec<serde_json::Map<String, serde_json::Value>>) -> (ReplayServer, tempfile_dir::TempDir) {
    let mut dataset = Dataset::default();
    dataset.add("DeviceProcessEvents", rows).unwrap();
    (ReplayServer::start(dataset, credentials()).unwrap(), tempfile_dir::TempDir::new())
}

struct ChildRun {
    started: Instant,
    max_rss_kib: i64,
}

fn run_child(role: &str, server: &ReplayServer, dir: &std::path::Path, max_rows: u32) -> ChildRun {
    let c = credentials();
    let config = serde_json::json!({
        "tenant_id": c.tenant_id, "client_id": c.client_id, "client_secret": c.client_secret,
        "login_endpoint": server.url(), "graph_endpoint": server.url(),
        "tables": ["DeviceProcessEvents"], "start_time": (recent() - chrono::Duration::minutes(5)).to_rfc3339(), "delay": "1m",
        "max_window": "1h", "max_rows_per_query": max_rows.min(99_999),
    });
    let started = Instant::now();
    let child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, role)
        .env("BENCH_CONFIG", config.to_string())
        .env("BENCH_STATE", dir.join("state"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the {role} child failed");
    // The child reports its own high-water mark (VmHWM, reset by exec):
    // rusage would count the bench's memory, inherited at the fork.
    let hwm = String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM_KIB=").map(|v| v.trim().parse::<i64>().unwrap()))
        .expect("the child reports its peak RSS");
    ChildRun { started, max_rss_kib: hwm }
}

/// The VRL figure with jemalloc, measured by a child process whose
/// allocator it is.
fn vrl_with_jemalloc() -> f64 {
    let out = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, "vrl")
        .env(JEMALLOC.to_str().unwrap(), "1")
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "the VRL child failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("VRL_ROWS_PER_S=").map(|v| v.trim().parse::<f64>().unwrap()))
        .expect("the VRL child reports its rate")
}

/// The VRL child: the same workload and check, with jemalloc.
fn vrl_child() {
    assert!(Allocator::jemalloc(), "the VRL child runs with jemalloc");
    let table = "DeviceProcessEvents";
    let body = mapping_answer(table, ROWS);
    let native = defender_ocsf_collector::convert::convert(table, OPTIONS, body.as_slice()).unwrap();
    let rate = vrl_bench::rows_per_second(&body, &native.events, ROWS, Duration::from_secs(3));
    println!("VRL_ROWS_PER_S={rate}");
}

/// The child: `defender-ocsf run --once` with stdout as the output.
fn child(role: &str) {
    let source: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&std::env::var("BENCH_CONFIG").unwrap()).unwrap();
    let config = RunConfig::for_source(std::env::var("BENCH_STATE").unwrap().into(), source);
    let options = RunOptions {
        once: true,
        ..RunOptions::default()
    };
    let mut sink = Stdout::new(std::io::stdout().lock());
    let summary = app::run(&config, &options, &mut sink, Arc::new(Telemetry::default())).unwrap_or_else(|e| panic!("{role}: {e}"));
    assert!(summary.events > 0, "{role}: no events");
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hwm = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).expect("Linux reports VmHWM");
    eprintln!("VmHWM_KIB={}", hwm.trim().trim_end_matches("kB").trim());
}

mod tempfile_dir {
    /// A directory removed on drop.
    pub struct TempDir(std::path::PathBuf);
    impl TempDir {
        pub fn new() -> TempDir {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let path = std::env::temp_dir().join(format!("defender-ocsf-bench-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

mod vrl_bench {
    //! The DeviceProcessEvents → 1007 mapping as a Vector user would write it:
    //! the answer decoded into VRL values, `device_process_events.vrl` run on
    //! each row, each event encoded as a JSON line.
    use std::time::Duration;
    use vrl::compiler::{Context, TargetValue, TimeZone, state::RuntimeState};
    use vrl::value::{Secrets, Value};

    #[derive(serde::Deserialize)]
    struct Answer {
        results: Vec<Value>,
    }

    pub fn rows_per_second(body: &[u8], expected: &[u8], rows: usize, min: Duration) -> f64 {
        let source = include_str!("device_process_events.vrl");
        let program = match vrl::compiler::compile(source, &vrl::stdlib::all()) {
            Ok(compiled) => compiled.program,
            Err(diagnostics) => panic!(
                "the VRL program does not compile: {}",
                vrl::diagnostic::Formatter::new(source, diagnostics)
            ),
        };
        let timezone = TimeZone::default();
        let map = |body: &[u8]| -> Vec<u8> {
            let answer: Answer = serde_json::from_slice(body).unwrap();
            let mut out = Vec::with_capacity(body.len() * 2);
            let mut state = RuntimeState::default();
            for row in answer.results {
                let mut target = TargetValue {
                    value: row,
                    metadata: Value::Object(Default::default()),
                    secrets: Secrets::default(),
                };
                let mut ctx = Context::new(&mut target, &mut state, &timezone);
                program.resolve(&mut ctx).expect("the VRL program runs");
                state.clear();
                serde_json::to_writer(&mut out, &target.value).unwrap();
                out.push(b'\n');
            }
            out
        };
        super::assert_same_events("the VRL program", &map(body), expected);
        super::rows_per_second(rows, min, || {
            std::hint::black_box(map(body));
        })
    }

    /// The harness alone: the answer decoded into VRL values and each row
    /// encoded again, with no program run. What the VRL figure spends
    /// outside the program.
    pub fn codec_rows_per_second(body: &[u8], rows: usize, min: Duration) -> f64 {
        super::rows_per_second(rows, min, || {
            let answer: Answer = serde_json::from_slice(body).unwrap();
            let mut out = Vec::with_capacity(body.len() * 2);
            for row in answer.results {
                serde_json::to_writer(&mut out, &row).unwrap();
                out.push(b'\n');
            }
            std::hint::black_box(out);
        })
    }
}

/// Checks that `theirs` (NDJSON from `who`) holds the collector's events
/// `ours`, row by row, compared as JSON values, and as many of them.
fn assert_same_events(who: &str, theirs: &[u8], ours: &[u8]) {
    let a: Vec<&[u8]> = theirs.split(|b| *b == b'\n').collect();
    let b: Vec<&[u8]> = ours.split(|b| *b == b'\n').collect();
    assert_eq!(a.len(), b.len(), "{who} emits as many events as the collector");
    for (i, (x, y)) in a.iter().zip(&b).enumerate().filter(|(_, (x, _))| !x.is_empty()) {
        let x: serde_json::Value = serde_json::from_slice(x).unwrap();
        let y: serde_json::Value = serde_json::from_slice(y).unwrap();
        if x != y {
            panic!("{who} is not an equivalent of the collector's mapping (event {i}):\n{who}: {x}\nours: {y}");
        }
    }
}
