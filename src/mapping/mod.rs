//! Advanced-hunting rows to OCSF 1.8.0 events.
//!
//! Mappings are data: each table family's file lists, per table, which
//! column goes to which OCSF attribute and how the value is converted
//! ([`Field`](field::Field)), how an ActionType picks the class and activity
//! ([`Activity`]), and the few derived attributes a list cannot express (a
//! `finish` function). [`plan`] compiles them once per answer and maps each
//! row from its borrowed cells ([`cells`]) into an event tree ([`event`])
//! written straight to NDJSON; every column that no field consumed is kept
//! under `unmapped`, so a new column is never dropped.
//!
//! Null and `""` cells mean "absent" and are left out everywhere.

// Which of these may import which is checked by tests/architecture.rs
// (`COMPONENT_LAYERS`), not by their order here.
pub mod alert;
pub mod behavior;
pub mod captions;
pub mod cells;
pub mod cloud;
pub mod cloud_apps;
pub mod cloud_workloads;
pub mod common;
pub mod conv;
pub mod device;
pub mod device_events;
pub mod doc;
pub mod email;
pub mod entra;
pub mod event;
pub mod field;
pub mod fold;
pub mod graph_security;
pub mod identity;
pub mod inventory;
pub mod logon;
pub mod ocsf;
pub mod plan;
pub mod table;
pub mod value;

pub use field::{Context, MapError};
pub use plan::map_row;
pub use table::{Activity, Join, Product, Shape, Table, Written};

/// Every table the collector maps, in default collection order.
pub static TABLES: &[&Table] = &[
    &alert::ALERT_INFO,
    &alert::ALERT_EVIDENCE,
    &device::DEVICE_PROCESS_EVENTS,
    &device::DEVICE_NETWORK_EVENTS,
    &device::DEVICE_FILE_EVENTS,
    &device::DEVICE_REGISTRY_EVENTS,
    &logon::DEVICE_LOGON_EVENTS,
    &device::DEVICE_IMAGE_LOAD_EVENTS,
    &inventory::DEVICE_INFO,
    &inventory::DEVICE_NETWORK_INFO,
    &inventory::DEVICE_FILE_CERTIFICATE_INFO,
    &device_events::DEVICE_EVENTS,
    &identity::IDENTITY_LOGON_EVENTS,
    &identity::IDENTITY_QUERY_EVENTS,
    &identity::IDENTITY_DIRECTORY_EVENTS,
    &identity::IDENTITY_INFO,
    &cloud_apps::CLOUD_APP_EVENTS,
    &behavior::BEHAVIOR_INFO,
    &behavior::BEHAVIOR_ENTITIES,
    &email::EMAIL_EVENTS,
    &email::EMAIL_ATTACHMENT_INFO,
    &email::EMAIL_URL_INFO,
    &email::EMAIL_POST_DELIVERY_EVENTS,
    &email::URL_CLICK_EVENTS,
    &entra::ENTRA_ID_SIGN_IN_EVENTS,
    &entra::AAD_SIGN_IN_EVENTS_BETA,
    &entra::ENTRA_ID_SPN_SIGN_IN_EVENTS,
    &entra::AAD_SPN_SIGN_IN_EVENTS_BETA,
    &entra::GRAPH_API_AUDIT_EVENTS,
    &cloud_workloads::CLOUD_AUDIT_EVENTS,
    &cloud_workloads::CLOUD_PROCESS_EVENTS,
    &cloud_apps::OAUTH_APP_INFO,
];

/// The table with this name, compared exactly (KQL table names are case-sensitive).
pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().copied().find(|t| t.name == name)
}

/// The entity (state) tables, and the columns that identify one entity:
/// the collector keeps the latest row per key and interval.
pub static ENTITY_KEYS: &[(&str, &[&str])] = &[
    ("DeviceInfo", &["DeviceId"]),
    ("DeviceNetworkInfo", &["DeviceId", "NetworkAdapterName"]),
    ("DeviceFileCertificateInfo", &["DeviceId", "SHA1"]),
    ("IdentityInfo", &["AccountObjectId"]),
    ("OAuthAppInfo", &["OAuthAppId", "ServicePrincipalId"]),
];

/// The columns that identify one entity of an entity table (DeviceInfo,
/// DeviceNetworkInfo, DeviceFileCertificateInfo, IdentityInfo, OAuthAppInfo); `None` for
/// event tables.
pub fn entity_key(name: &str) -> Option<&'static [&'static str]> {
    ENTITY_KEYS.iter().find(|(t, _)| *t == name).map(|(_, key)| *key)
}

/// Maps one row given as JSON with the default context: the tests' shorthand.
#[cfg(test)]
pub(crate) fn map_json(table: &'static Table, row: serde_json::Value) -> serde_json::Value {
    map_row(
        table,
        serde_json::from_value(row).expect("a row is a JSON object"),
        &Context::default(),
    )
    .expect("the row maps")
}
