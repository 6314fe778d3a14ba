//! Joins: the events of a table that others follow, with their followers'
//! events folded in (evidence into its alert, attachments and URLs into
//! their message), written out together.

use super::emit::count_event;
use crate::mapping::{self, Table};
use serde_json::Value;

/// Folds `joined`, the events of `follower`, into `events`, their leaders';
/// those whose leader is not among them are kept on their own.
pub fn fold(events: &mut Vec<Value>, follower: &Table, joined: Vec<Value>) {
    let alone = match &follower.join {
        Some(join) => (join.fold)(events, joined),
        None => joined,
    };
    events.extend(alone);
}

/// `events` as NDJSON, each counted as it goes out, and how many there are.
pub fn write(events: &[Value]) -> (Vec<u8>, u32) {
    let mut out = Vec::new();
    for event in events {
        count_event(event);
        mapping::write_event(&mut out, event);
    }
    (out, events.len() as u32)
}
