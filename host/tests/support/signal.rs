//! Stopping a child process with SIGTERM, as Vector stops an `exec` source's
//! command on shutdown and as a service manager stops a service.
//!
//! Include it with `#[path = "support/signal.rs"] mod signal;`.

#![allow(dead_code)]

use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// Sends SIGTERM to `child` with `kill(1)`. True when the signal was sent.
pub fn sigterm(child: &Child) -> bool {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .is_ok_and(|status| status.success())
}

/// Sends SIGTERM and waits up to `within` for `child` to exit: its status,
/// or `None` if it still runs then (the caller decides what that means).
pub fn terminate_within(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    sigterm(child);
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
