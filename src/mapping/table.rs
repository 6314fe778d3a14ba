//! What the mapping knows of one table: its product, the ActionTypes that
//! pick its class and activity, the shape of its events, and how its rows
//! are identified and joined.

use super::event::Event;
use super::field::{Context, Field};
use super::value::Obj;

/// The product that reports a table family (`metadata.product.name`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Product {
    Endpoint,
    Identity,
    Office365,
    Xdr,
    CloudApps,
    EntraId,
    Graph,
    /// Microsoft Defender for Cloud (its cloud workloads' tables).
    DefenderForCloud,
}

impl Product {
    pub fn name(self) -> &'static str {
        match self {
            Product::Endpoint => "Microsoft Defender for Endpoint",
            Product::Identity => "Microsoft Defender for Identity",
            Product::Office365 => "Microsoft Defender for Office 365",
            Product::Xdr => "Microsoft Defender XDR",
            Product::CloudApps => "Microsoft Defender for Cloud Apps",
            Product::EntraId => "Microsoft Entra ID",
            Product::Graph => "Microsoft Graph",
            Product::DefenderForCloud => "Microsoft Defender for Cloud",
        }
    }
}

/// The columns and derived attributes of one kind of event: what a row
/// becomes once its class is known.
pub struct Shape {
    /// Column-to-attribute lists, applied in order.
    pub fields: &'static [&'static [Field]],
    /// Derived attributes, applied after the fields.
    pub finish: fn(&mut Event, &Context),
    /// The objects a class requires that `finish` can make, each with the
    /// columns it reads to make one, so that a row rejected for lacking
    /// one is told every column that could have given it (the field lists'
    /// columns are found from the lists). [`ALWAYS`] for one it makes for
    /// every row. A test checks that no other column gives one.
    pub gives: &'static [(&'static str, &'static [&'static str])],
}

/// In [`Shape::gives`]: the finish step makes the object for every row,
/// from no column (a default actor), so no row is rejected for lacking it.
pub const ALWAYS: &[&str] = &[];

/// The class and activity an ActionType maps to, and what comes with them.
#[derive(Clone, Copy)]
pub struct Activity {
    pub class_uid: u32,
    pub activity_id: u32,
    /// `status_id` for ActionTypes that report an outcome (1 Success, 2 Failure).
    pub status_id: Option<u32>,
    /// Fixed attributes, such as `disposition_id` or `connection_info.direction_id`.
    pub sets: &'static [(&'static str, i64)],
    /// The shape for this activity, when it differs from the table's.
    pub shape: Option<&'static Shape>,
    /// What to emit instead when deprecated classes are turned off.
    pub successor: Option<&'static Activity>,
}

impl Activity {
    pub const fn new(class_uid: u32, activity_id: u32) -> Activity {
        Activity {
            class_uid,
            activity_id,
            status_id: None,
            sets: &[],
            shape: None,
            successor: None,
        }
    }
    pub const fn status(self, status_id: u32) -> Activity {
        Activity {
            status_id: Some(status_id),
            ..self
        }
    }
    pub const fn sets(self, sets: &'static [(&'static str, i64)]) -> Activity {
        Activity { sets, ..self }
    }
    pub const fn shape(self, shape: &'static Shape) -> Activity {
        Activity {
            shape: Some(shape),
            ..self
        }
    }
    pub const fn successor(self, successor: &'static Activity) -> Activity {
        Activity {
            successor: Some(successor),
            ..self
        }
    }
}

/// Everything the mapping needs to know about one advanced-hunting table.
pub struct Table {
    /// The advanced-hunting table name, as used in KQL.
    pub name: &'static str,
    pub product: Product,
    /// Columns whose values identify a row (graph-api.md §1.6). They feed
    /// `metadata.uid`, a stable id downstream systems can deduplicate on.
    pub key: &'static [&'static str],
    /// ActionType (matched case-insensitively) to class and activity.
    pub activities: &'static [(&'static str, Activity)],
    /// ActionType prefixes (case-insensitive), tried after `activities`.
    pub prefixes: &'static [(&'static str, Activity)],
    /// The activity of a row without an ActionType, or with one not listed;
    /// when it is 99 Other, its `activity_name` is the ActionType itself.
    pub fallback: Activity,
    /// The shape of every activity that does not name its own.
    pub shape: &'static Shape,
    /// Rows of this table that belong to another table's events, and are
    /// folded into them when both are collected (AlertEvidence into AlertInfo).
    pub join: Option<Join>,
    /// The licence or feature a tenant needs for this table to have rows,
    /// when most tenants lack it: such a table is collected only when
    /// `tables` names it, and `check` says whether the tenant has it.
    pub licence: Option<&'static str>,
}

/// How a table's events fold into the events of the table they belong to.
pub struct Join {
    /// The table whose windows this one follows.
    pub leader: &'static str,
    /// Only without deprecated classes (the deprecated classes stand alone).
    pub only_without_deprecated: bool,
    /// Folds `events` into `leaders`; returns the positions of those whose
    /// leader is absent, in ascending order (`fold::folds_alike` checks
    /// it), which it leaves as they were (the others are spent).
    pub fold: for<'a> fn(&mut [Obj<'a>], &mut [Obj<'a>]) -> Vec<usize>,
}

impl Table {
    /// The activity for an ActionType, and whether it is the fallback.
    pub fn activity(&self, action_type: Option<&str>) -> (&Activity, bool) {
        let Some(a) = action_type else {
            return (&self.fallback, false);
        };
        if let Some((_, act)) = self.activities.iter().find(|(name, _)| name.eq_ignore_ascii_case(a)) {
            return (act, false);
        }
        // Compared byte by byte in ASCII without regard to case (a prefix
        // need not end a character of `a`).
        let starts_with = |p: &str| {
            a.as_bytes()
                .get(..p.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(p.as_bytes()))
        };
        match self.prefixes.iter().find(|(p, _)| starts_with(p)) {
            Some((_, act)) => (act, false),
            None => (&self.fallback, true),
        }
    }

    /// Every activity this table can produce.
    pub fn all_activities(&self) -> impl Iterator<Item = &Activity> {
        self.activities
            .iter()
            .chain(self.prefixes.iter())
            .map(|(_, a)| a)
            .chain([&self.fallback])
            .flat_map(|a| [Some(a), a.successor].into_iter().flatten())
    }
}

/// What the collector needs to know of an event it holds only as NDJSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// `metadata.log_name`: the table of the row.
    pub table: &'static str,
    pub class_uid: u32,
    /// `time`, epoch milliseconds.
    pub time_ms: i64,
    /// `metadata.uid`, the hash of the row's key.
    pub uid: String,
}
