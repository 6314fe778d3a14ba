//! Joins: the events of a table that others follow, with their followers'
//! events folded in (evidence into its alert, attachments and URLs into
//! their message), written out together. The events are the mapping's
//! trees, folded before they are written; each keeps the summary it was
//! mapped with, by which it is counted as it goes out.

use super::emit::count_written;
use crate::mapping::value::Obj;
use crate::mapping::{Table, Written};

/// Events to be written together, and the summary of each.
#[derive(Default)]
pub struct Joined<'a> {
    events: Vec<Obj<'a>>,
    summaries: Vec<Written>,
}

impl<'a> Joined<'a> {
    /// Adds an event of a leading table.
    pub fn push(&mut self, event: Obj<'a>, written: Written) {
        self.events.push(event);
        self.summaries.push(written);
    }

    /// Folds `joined`, the events of `follower`, into the events held;
    /// those whose leader is not among them are kept on their own.
    pub fn fold(&mut self, follower: &Table, joined: Vec<(Obj<'a>, Written)>) {
        let (mut followers, summaries): (Vec<_>, Vec<_>) = joined.into_iter().unzip();
        let alone = match &follower.join {
            Some(join) => (join.fold)(&mut self.events, &mut followers),
            None => (0..followers.len()).collect(),
        };
        // The positions come in ascending order (`Join::fold`).
        let mut alone = alone.into_iter().peekable();
        for (at, (event, written)) in followers.into_iter().zip(summaries).enumerate() {
            if alone.next_if_eq(&at).is_some() {
                self.push(event, written);
            }
        }
    }

    /// The events as NDJSON, each counted as it goes out, and how many there are.
    pub fn write(&self) -> (Vec<u8>, u32) {
        let mut out = Vec::new();
        for (event, written) in self.events.iter().zip(&self.summaries) {
            count_written(written);
            event.write(&mut out);
            out.push(b'\n');
        }
        (out, self.events.len() as u32)
    }
}
