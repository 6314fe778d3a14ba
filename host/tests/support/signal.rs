//! Stopping a child process with SIGTERM, as Vector stops an `exec` source's
//! command on shutdown and as a service manager stops a service.
//!
//! Include it with `#[path = "support/signal.rs"] mod signal;`.

use std::process::{Child, Command};

/// Sends SIGTERM to `child` with `kill(1)`. True when the signal was sent.
pub fn sigterm(child: &Child) -> bool {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .is_ok_and(|status| status.success())
}
