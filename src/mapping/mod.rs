//! Advanced-hunting rows to OCSF 1.8.0 events.
//!
//! Mappings are data: each table family's file lists, per table, which
//! column goes to which OCSF attribute and how the value is converted
//! ([`Field`]), how an ActionType picks the class and activity
//! ([`Activity`]), and the few derived attributes a list cannot express (a
//! `finish` function). The engine here applies them and keeps every column
//! that no field consumed under `unmapped`, so a new column is never dropped.
//!
//! Null and `""` cells mean "absent" and are left out everywhere.

pub mod common;
pub mod device;
pub mod engine;
pub mod ocsf;

pub use engine::{Context, MapError, map_row};

use engine::Field;

/// The product that reports a table family (`metadata.product.name`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Product {
    Endpoint,
    Identity,
    Office365,
    Xdr,
}

impl Product {
    pub fn name(self) -> &'static str {
        match self {
            Product::Endpoint => "Microsoft Defender for Endpoint",
            Product::Identity => "Microsoft Defender for Identity",
            Product::Office365 => "Microsoft Defender for Office 365",
            Product::Xdr => "Microsoft Defender XDR",
        }
    }
}

/// The class and activity an ActionType maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Activity {
    pub class_uid: u32,
    pub activity_id: u32,
    /// `status_id` for ActionTypes that report an outcome (1 Success, 2 Failure).
    pub status_id: Option<u32>,
}

impl Activity {
    pub const fn new(class_uid: u32, activity_id: u32) -> Activity {
        Activity { class_uid, activity_id, status_id: None }
    }
    pub const fn with_status(self, status_id: u32) -> Activity {
        Activity { status_id: Some(status_id), ..self }
    }
}

/// Everything the engine needs to know about one advanced-hunting table.
pub struct Table {
    /// The advanced-hunting table name, as used in KQL.
    pub name: &'static str,
    pub product: Product,
    /// Columns whose values identify a row (graph-api.md §1.6). They feed
    /// `metadata.uid`, a stable id downstream systems can deduplicate on.
    pub key: &'static [&'static str],
    /// ActionType (matched case-insensitively) to class and activity.
    pub activities: &'static [(&'static str, Activity)],
    /// The class and activity of an ActionType not in `activities`; its
    /// `activity_name` is the ActionType itself.
    pub fallback: Activity,
    /// Column-to-attribute lists, applied in order.
    pub fields: &'static [&'static [Field]],
    /// Derived attributes, applied after the fields.
    pub finish: fn(&mut engine::Event, &engine::Context),
}

impl Table {
    /// The activity for an ActionType, and whether it is the fallback.
    pub fn activity(&self, action_type: Option<&str>) -> (Activity, bool) {
        match action_type {
            Some(a) => self
                .activities
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(a))
                .map(|(_, act)| (*act, false))
                .unwrap_or((self.fallback, true)),
            None => (self.fallback, false),
        }
    }
}

/// Every table the collector maps, in default collection order.
pub static TABLES: &[&Table] = &[&device::DEVICE_PROCESS_EVENTS];

/// The table with this name, compared exactly (KQL table names are case-sensitive).
pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().copied().find(|t| t.name == name)
}
