//! Inside a component: reads one answer from stdin, copies it with
//! [`copy_floor::copy_floor`] (or, given `typed` as the second argument, maps
//! it with [`copy_floor::typed::map_device_process_events`]) until
//! `<min-seconds>` (the first argument) have passed and three runs are done
//! (a third argument is the tenant id `typed` writes),
//! and prints the number of rows it read, the best rate in rows/s and a
//! checksum of its output ([`copy_floor::checksum`]).

use std::io::Read;
use std::time::{Duration, Instant};

fn main() {
    let min = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs_f64)
        .expect("usage: copy-floor <min-seconds> [copy|typed [tenant-id]] < answer.json");
    let tenant = std::env::args().nth(3);
    let typed = match std::env::args().nth(2).as_deref() {
        None | Some("copy") => false,
        Some("typed") => true,
        Some(other) => panic!("unknown mode `{other}`: copy or typed"),
    };
    let mut answer = String::new();
    std::io::stdin()
        .read_to_string(&mut answer)
        .expect("the answer on stdin is UTF-8 text");
    let mut out = Vec::with_capacity(answer.len() + answer.len() / 2);
    let mut run = || {
        out.clear();
        let t = Instant::now();
        let rows = if typed {
            let (rows, rejected) =
                copy_floor::typed::map_device_process_events(&answer, tenant.as_deref(), &mut out).expect("a runHuntingQuery answer");
            assert_eq!(rejected, 0, "every row maps");
            rows
        } else {
            copy_floor::copy_floor(&answer, &mut out).expect("a runHuntingQuery answer")
        };
        (rows, t.elapsed())
    };
    run(); // warm-up
    let started = Instant::now();
    let (mut best, mut runs) = (f64::MAX, 0);
    let mut rows = 0;
    while runs < 3 || started.elapsed() < min {
        let (n, took) = run();
        rows = n;
        best = best.min(took.as_secs_f64());
        runs += 1;
    }
    println!("{rows} {} {:016x}", rows as f64 / best, copy_floor::checksum(&out));
}
