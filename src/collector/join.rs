//! Joins: the events of a table that others follow, with their followers'
//! events folded in (evidence into its alert, attachments and URLs into
//! their message), written out together. The events are the mapping's
//! trees, folded before they are written.

use super::emit::count_event;
use crate::mapping::Table;
use crate::mapping::value::Obj;

/// Folds `joined`, the events of `follower`, into `events`, their leaders';
/// those whose leader is not among them are kept on their own.
pub fn fold<'a>(events: &mut Vec<Obj<'a>>, follower: &Table, joined: Vec<Obj<'a>>) {
    let alone = match &follower.join {
        Some(join) => (join.fold)(events, joined),
        None => joined,
    };
    events.extend(alone);
}

/// `events` as NDJSON, each counted as it goes out, and how many there are.
pub fn write(events: &[Obj<'_>]) -> (Vec<u8>, u32) {
    let mut out = Vec::new();
    for event in events {
        count_event(event);
        event.write(&mut out);
        out.push(b'\n');
    }
    (out, events.len() as u32)
}
