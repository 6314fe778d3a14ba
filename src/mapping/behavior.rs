//! BehaviorInfo and BehaviorEntities → 2004 Detection Finding (guide §28):
//! a behavior is a finding below the alert threshold; its entity rows fold
//! into it as `evidences[]`, as AlertEvidence folds into AlertInfo.

use super::alert::{EVIDENCE, attacks, evidence_entry, fold_evidence};
use super::event::Event;
use super::field::{Context, Conv::*, Field, f};
use super::table::{Activity, Join, Product, Shape, Table};
use super::value::V;
use serde_json::{Value, json};

const BEHAVIOR: &[Field] = &[
    f("BehaviorId", "finding_info.uid", Str),
    f("Title", "finding_info.title", Str),
    f("Description", "finding_info.desc", Str),
    f("ServiceSource", "finding_info.product.name", Str),
    f("DetectionSource", "finding_info.product.feature.name", Str),
    f("StartTime", "finding_info.first_seen_time", Time),
    f("EndTime", "finding_info.last_seen_time", Time),
];

/// The behavior's own account, an evidence of the finding.
const ACCOUNT: &[Field] = &[
    f("DeviceId", "device.uid", Str),
    f("AccountUpn", "evidence.user.email_addr", Email),
    f("AccountObjectId", "evidence.user.uid_alt", Str),
];

static INFO_SHAPE: Shape = Shape {
    fields: &[BEHAVIOR, ACCOUNT],
    finish: finish_info,
    gives: &[],
};
static ENTITY_SHAPE: Shape = Shape {
    fields: &[BEHAVIOR, EVIDENCE],
    finish: finish_entity,
    gives: &[],
};

const LICENCE: &str = "Microsoft Defender for Cloud Apps or Sentinel UEBA behaviors";

pub static BEHAVIOR_INFO: Table = Table {
    name: "BehaviorInfo",
    product: Product::CloudApps,
    key: &["BehaviorId", "Timestamp"],
    activities: &[],
    prefixes: &[],
    fallback: Activity::new(2004, 1),
    shape: &INFO_SHAPE,
    join: None,
    licence: Some(LICENCE),
};

pub static BEHAVIOR_ENTITIES: Table = Table {
    name: "BehaviorEntities",
    product: Product::CloudApps,
    key: &[
        "BehaviorId",
        "Timestamp",
        "EntityType",
        "EntityRole",
        "DetailedEntityRole",
        "AccountObjectId",
        "AccountSid",
        "DeviceId",
        "FileName",
        "SHA1",
        "RemoteIP",
        "RemoteUrl",
        "NetworkMessageId",
        "ApplicationId",
        "OAuthApplicationId",
        "CloudResourceId",
    ],
    activities: &[],
    prefixes: &[],
    fallback: Activity::new(2004, 2),
    shape: &ENTITY_SHAPE,
    join: Some(Join {
        leader: "BehaviorInfo",
        only_without_deprecated: false,
        fold: fold_evidence,
    }),
    licence: Some(LICENCE),
};

/// What a behavior and its entity rows share: the finding's lists, the
/// product that saw it, and that it is not an alert.
fn finish_behavior(e: &mut Event) {
    if let Some(Value::Array(items)) = e.column("AttackTechniques", Json)
        && let Some(list) = attacks(&items)
    {
        e.drop_column("AttackTechniques");
        if !list.is_empty() {
            e.set("finding_info.attacks", Value::Array(list));
        }
    }
    for (column, path) in [("Categories", "finding_info.types"), ("DataSources", "finding_info.data_sources")] {
        if let Some(Value::Array(items)) = e.column(column, Json)
            && items.iter().all(|i| i.as_str().is_some_and(|s| !s.is_empty()))
        {
            e.drop_column(column);
            e.set_owned(path, Value::Array(items));
        }
    }
    // A product is one by its name (a detection source alone is a feature
    // of a product not named).
    super::common::require_any(e, "finding_info.product", &["name", "uid"]);
    if let Some(source) = e.get_str("finding_info.product.name").map(|s| s.into_owned()) {
        e.set("finding_info.product.vendor_name", "Microsoft");
        e.set("metadata.product.name", source);
    }
    if let Some(action) = e.get_str("metadata.event_code").map(|s| s.into_owned()) {
        e.set("finding_info.analytic.name", action.clone());
        e.set("finding_info.analytic.type_id", 2);
        e.set("finding_info.analytic.type", "Behavioral");
        e.set_default("finding_info.title", action);
    }
    if let Some(t) = e.get("time").cloned() {
        e.set("finding_info.created_time", t);
    }
    // Behaviors sit below the alert threshold (guide §28).
    e.set("is_alert", false);
}

fn finish_info(e: &mut Event, _ctx: &Context) {
    finish_behavior(e);
    if e.get("evidence.user").is_some() {
        super::cloud::entra_account(e, "evidence.user");
        e.set("evidence.name", "User");
        if let Some(V::Obj(evidence)) = e.root.remove("evidence") {
            e.push("evidences", V::Obj(evidence));
        }
    }
    if e.get("device").is_some() {
        super::common::finish_device(e);
    }
}

fn finish_entity(e: &mut Event, _ctx: &Context) {
    finish_behavior(e);
    cloud_resource(e);
    if e.get("evidence.user.uid_alt").is_some() {
        super::cloud::entra_account(e, "evidence.user");
    }
    // A behavior's IP entity is the client's address (guide §28).
    let ip_entity = e.get_str("evidence.name").is_some_and(|n| n.eq_ignore_ascii_case("Ip"));
    if ip_entity
        && e.get("evidence.src_endpoint").is_none()
        && let Some(end) = e.remove("evidence.dst_endpoint")
    {
        e.set("evidence.src_endpoint", end);
    }
    evidence_entry(e);
}

/// A cloud resource entity is a top-level `resources[]` entry (an
/// evidence needs an entity member; guide §28).
fn cloud_resource(e: &mut Event) {
    let Some(id) = e.take_string("CloudResourceId") else {
        return;
    };
    let mut resource = json!({"uid": id});
    if let Some(t) = e.take_string("CloudResourceType") {
        resource["type"] = t.into();
    }
    let mut data = serde_json::Map::new();
    for column in ["CloudPlatform", "CloudSubscriptionId"] {
        if let Some(v) = e.take_column(column) {
            data.insert(column.to_string(), v);
        }
    }
    if !data.is_empty() {
        resource["data"] = Value::Object(data);
    }
    match e.column_text("EntityRole").as_deref() {
        Some("Impacted") => resource["role_id"] = 3.into(),
        Some("Related") => resource["role_id"] = 4.into(),
        _ => {}
    }
    if let Some(id) = resource.get("role_id").and_then(Value::as_i64) {
        resource["role"] = if id == 3 { "Affected" } else { "Related" }.into();
    }
    e.push("resources", V::from(resource));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::map_json as map;

    #[test]
    fn a_behavior_and_its_entities_fold_into_one_finding() {
        let info = vec![map(
            &BEHAVIOR_INFO,
            json!({"Timestamp": "2026-01-01T00:00:00Z", "BehaviorId": "b1", "ActionType": "ImpossibleTravelActivity", "Description": "Travel",
                   "Categories": "[\"InitialAccess\"]", "AttackTechniques": "[\"Valid Accounts (T1078)\"]", "ServiceSource": "Microsoft Cloud App Security",
                   "DataSources": "[\"Microsoft 365\"]", "AccountUpn": "a@contoso.com", "StartTime": "2025-12-31T23:00:00Z"}),
        )];
        let e = &info[0];
        assert_eq!(
            (e["class_uid"].clone(), e["activity_id"].clone(), e["is_alert"].clone()),
            (json!(2004), json!(1), json!(false))
        );
        assert_eq!(
            e["finding_info"]["analytic"],
            json!({"name": "ImpossibleTravelActivity", "type_id": 2, "type": "Behavioral"})
        );
        assert_eq!(e["finding_info"]["title"], "ImpossibleTravelActivity");
        assert_eq!(e["finding_info"]["attacks"][0]["technique"]["uid"], "T1078");
        assert_eq!(e["metadata"]["product"]["name"], "Microsoft Cloud App Security");
        assert_eq!(e["evidences"][0]["user"]["email_addr"], "a@contoso.com");
        let entities = vec![
            map(
                &BEHAVIOR_ENTITIES,
                json!({"Timestamp": "2026-01-01T00:00:00Z", "BehaviorId": "b1", "EntityType": "Ip", "RemoteIP": "198.51.100.7", "EntityRole": "Related"}),
            ),
            map(
                &BEHAVIOR_ENTITIES,
                json!({"Timestamp": "2026-01-01T00:00:00Z", "BehaviorId": "b1", "EntityType": "CloudResource", "CloudResourceId": "/subscriptions/s/vm1", "CloudPlatform": "Azure", "EntityRole": "Impacted"}),
            ),
            map(
                &BEHAVIOR_ENTITIES,
                json!({"Timestamp": "2026-01-01T00:00:00Z", "BehaviorId": "other", "EntityType": "Ip", "RemoteIP": "198.51.100.8"}),
            ),
        ];
        assert_eq!(entities[2]["activity_id"], 2, "an entity alone is an Update of its behavior");
        // Folded as the collector folds them: as the mapping's trees.
        let tree = crate::mapping::value::obj;
        let mut info: Vec<_> = info.into_iter().map(tree).collect();
        let mut entities: Vec<_> = entities.into_iter().map(tree).collect();
        let alone = fold_evidence(&mut info, &mut entities);
        assert_eq!(alone, [2]);
        assert_eq!(
            V::Obj(entities.remove(2)).to_value(),
            map(
                &BEHAVIOR_ENTITIES,
                json!({"Timestamp": "2026-01-01T00:00:00Z", "BehaviorId": "other", "EntityType": "Ip", "RemoteIP": "198.51.100.8"}),
            )
        );
        let e = &V::Obj(info.remove(0)).to_value();
        assert_eq!(e["evidences"][1]["src_endpoint"]["ip"], "198.51.100.7");
        assert_eq!(
            e["resources"][0],
            json!({"uid": "/subscriptions/s/vm1", "data": {"CloudPlatform": "Azure"}, "role_id": 3, "role": "Affected"})
        );
        assert_eq!(e["unmapped"]["BehaviorEntities"].as_array().map(Vec::len), Some(2));
    }
}
