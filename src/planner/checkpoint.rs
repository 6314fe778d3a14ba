//! The checkpoint: how far each table and stream got, as the JSON the host
//! saves after delivery. Version 1 is readable by every collector; version
//! 2 adds the stretches collected ahead of a watermark.

use super::cursor::{Cursor, pass_reached};
use crate::error::{Error, Result};
use crate::time::Ticks;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointDoc {
    version: u32,
    tables: BTreeMap<String, TableState>,
    /// Security-API streams (incidents, alerts), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    streams: BTreeMap<String, StreamState>,
}

/// Where a security-API stream stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamState {
    /// Objects updated at or after this `lastUpdateDateTime` are read next.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Ids already emitted with exactly that time.
    #[serde(default)]
    pub seen: std::collections::BTreeSet<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TableState {
    /// ISO 8601 with 7 fractional digits.
    watermark: String,
    /// Where collection of this table began; late-row sweeps never reach
    /// before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    floor: Option<String>,
    /// Keys of the rows already emitted within the overlap before the
    /// watermark: `[ticks, key]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    recent: Vec<(i64, String)>,
    /// Stretches above the watermark collected already (live data first):
    /// `[from, to]`, ISO 8601. Version 2 of the checkpoint; a collector that
    /// reads only version 1 refuses it rather than collect them again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ahead: Vec<(String, String)>,
}

/// The version written when no table has a stretch ahead, readable by every
/// earlier collector.
const CHECKPOINT_VERSION: u32 = 1;
/// The version written when a table has stretches ahead of its watermark.
const CHECKPOINT_VERSION_AHEAD: u32 = 2;

/// A table's saved progress: watermark, floor, recent keys, stretches ahead.
pub type Resumed = (Ticks, Ticks, Vec<(Ticks, String)>, Vec<(Ticks, Ticks)>);

/// The saved tables and streams of `checkpoint`, or none.
pub fn read(checkpoint: Option<&str>) -> Result<(BTreeMap<String, TableState>, BTreeMap<String, StreamState>)> {
    let Some(text) = checkpoint else {
        return Ok((BTreeMap::new(), BTreeMap::new()));
    };
    let doc: CheckpointDoc = serde_json::from_str(text).map_err(|e| Error::Fatal(format!("the saved checkpoint is not readable ({e})")))?;
    if doc.version != CHECKPOINT_VERSION && doc.version != CHECKPOINT_VERSION_AHEAD {
        return Err(Error::Fatal(format!(
            "the saved checkpoint has version {}, this collector reads versions {CHECKPOINT_VERSION} and {CHECKPOINT_VERSION_AHEAD}; it was written by a newer defender-ocsf",
            doc.version
        )));
    }
    Ok((doc.tables, doc.streams))
}

/// The checkpoint text of `tables` and `streams`: version 2 only when a
/// table has stretches ahead.
pub fn write(tables: BTreeMap<String, TableState>, streams: BTreeMap<String, StreamState>) -> String {
    let version = if tables.values().any(|t| !t.ahead.is_empty()) {
        CHECKPOINT_VERSION_AHEAD
    } else {
        CHECKPOINT_VERSION
    };
    serde_json::to_string(&CheckpointDoc { version, tables, streams }).expect("a map of strings serialises")
}

impl TableState {
    /// The state of `c` to save.
    pub fn of(c: &Cursor) -> TableState {
        TableState {
            watermark: c.watermark.to_iso(),
            floor: Some(c.floor.to_iso()),
            recent: c.recent.iter().map(|(t, k)| (t.0, k.clone())).collect(),
            ahead: c.ahead.iter().map(|(from, to)| (from.to_iso(), to.to_iso())).collect(),
        }
    }

    /// Where `table` resumes: the saved state read and checked, with the
    /// watermark past the stretches ahead it has reached.
    pub fn resume(self, table: &str) -> Result<Resumed> {
        let unreadable = |e: String| Error::Fatal(format!("the saved checkpoint of {table} is not readable: {e}"));
        let watermark = Ticks::parse(&self.watermark).map_err(unreadable)?;
        let floor = match &self.floor {
            Some(f) => Ticks::parse(f).map_err(unreadable)?,
            None => watermark,
        };
        let mut ahead = Vec::with_capacity(self.ahead.len());
        let mut last = watermark;
        for (from, to) in &self.ahead {
            let (from, to) = (Ticks::parse(from).map_err(unreadable)?, Ticks::parse(to).map_err(unreadable)?);
            if from < last || to < from {
                return Err(unreadable(format!(
                    "its stretches ahead of the watermark are out of order at {}",
                    from.to_iso()
                )));
            }
            ahead.push((from, to));
            last = to;
        }
        let mut watermark = watermark;
        pass_reached(&mut watermark, &mut ahead);
        let recent = self.recent.into_iter().map(|(t, k)| (Ticks(t), k)).collect();
        Ok((watermark, floor, recent, ahead))
    }
}
