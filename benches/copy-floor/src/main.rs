//! Inside a component: reads one answer from stdin, copies it with
//! [`copy_floor::copy_floor`] until `<min-seconds>` (the first argument)
//! have passed and three runs are done, and prints the number of rows it
//! copied and the best rate in rows/s.

use std::io::Read;
use std::time::{Duration, Instant};

fn main() {
    let min = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs_f64)
        .expect("usage: copy-floor <min-seconds> < answer.json");
    let mut answer = String::new();
    std::io::stdin()
        .read_to_string(&mut answer)
        .expect("the answer on stdin is UTF-8 text");
    let mut out = Vec::with_capacity(answer.len() + answer.len() / 8);
    let mut run = || {
        out.clear();
        let t = Instant::now();
        let rows = copy_floor::copy_floor(&answer, &mut out).expect("a runHuntingQuery answer");
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
    println!("{rows} {}", rows as f64 / best);
}
