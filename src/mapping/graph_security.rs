//! Graph's security API objects: incidents → 2005 Incident Finding and
//! alerts (alerts_v2) → 2004 Detection Finding (guide §1, §3; anchor TZ).
//! Every property not mapped is kept under `unmapped`.

use super::cells::{Cells, Columns};
use super::event::Event;
use super::field::{Context, MapError, is_absent};
use super::ocsf;
use super::value::V;
use crate::time::Ticks;
use serde_json::{Map, Value, json};

/// Which security API a stream reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Incidents,
    Alerts,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Incidents => "incidents",
            Kind::Alerts => "alerts",
        }
    }
    /// `metadata.log_name`: the security API collection the object came
    /// from, as Graph names it.
    pub fn log_name(self) -> &'static str {
        match self {
            Kind::Incidents => "incidents",
            Kind::Alerts => "alerts_v2",
        }
    }
}

fn take_str(obj: &mut Map<String, Value>, key: &str) -> Option<String> {
    match obj.remove(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        Some(v) if !is_absent(&v) => {
            obj.insert(key.to_string(), v);
            None
        }
        _ => None,
    }
}

fn time_ms(text: &str) -> Option<i64> {
    Ticks::parse(text).ok().map(Ticks::to_epoch_ms)
}

fn severity(e: &mut Event, obj: &mut Map<String, Value>) {
    let (id, name) = super::alert::severity_id(&take_str(obj, "severity").unwrap_or_default());
    e.set("severity_id", id);
    e.set("severity", name);
}

/// Graph status to OCSF finding status (TZ). `redirected` is an incident
/// status (2005's 5 Closed); 2004's 5 is Archived, which no alert status means.
fn status(e: &mut Event, obj: &mut Map<String, Value>, kind: Kind) -> u32 {
    let (id, name) = match obj.get("status").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
        Some("new" | "active") => (1, "New"),
        Some("inprogress") => (2, "In Progress"),
        Some("resolved") => (4, "Resolved"),
        Some("redirected") if kind == Kind::Incidents => (5, "Closed"),
        Some(_) => (99, "Other"),
        None => (0, "Unknown"),
    };
    if id != 99 {
        obj.remove("status");
    } else if let Some(Value::String(s)) = obj.get("status") {
        e.set("status", s.clone());
    }
    e.set("status_id", id);
    if id != 99 {
        e.set("status", name);
    }
    id
}

/// Graph classification/determination to `verdict_id` (guide §1).
fn verdict(e: &mut Event, obj: &mut Map<String, Value>) {
    let classification = obj.get("classification").and_then(Value::as_str).map(str::to_ascii_lowercase);
    let determination = obj.get("determination").and_then(Value::as_str).map(str::to_ascii_lowercase);
    let id = match (classification.as_deref(), determination.as_deref()) {
        (_, Some("securitytesting")) => Some(6),
        (_, Some("notenoughdatatovalidate")) => Some(7),
        (Some("truepositive"), _) => Some(2),
        (Some("falsepositive"), _) => Some(1),
        (Some("informationalexpectedactivity"), _) => Some(5),
        (Some("unknown"), _) => Some(0),
        _ => None,
    };
    if let Some(id) = id {
        obj.remove("classification");
        e.set("verdict_id", id);
    }
}

/// Create, Update or Close, from status and timestamps (TZ).
fn activity(e: &mut Event, class_uid: u32, status_id: u32, created: &Option<String>, updated: &Option<String>) {
    let activity_id = if matches!(status_id, 4 | 5) {
        3
    } else if created.is_some() && updated.is_some() && created != updated {
        2
    } else {
        1
    };
    e.set_class(class_uid, activity_id);
}

fn metadata(e: &mut Event, obj: &mut Map<String, Value>, kind: Kind, ctx: &Context, id: &str, updated: &Option<String>) {
    e.set("metadata.version", ocsf::VERSION);
    e.set("metadata.product.name", "Microsoft Defender XDR");
    e.set("metadata.product.vendor_name", "Microsoft");
    e.set("metadata.log_name", kind.log_name());
    e.set("metadata.original_event_uid", id.to_string());
    // One event per version of the object: the id and its update time.
    let uid = format!("{}:{id}:{}", kind.name(), updated.as_deref().unwrap_or(""));
    e.set("metadata.uid", uid);
    if let Some(u) = updated {
        e.set("metadata.original_time", u.clone());
    }
    if let Some(t) = take_str(obj, "tenantId").or_else(|| ctx.tenant_uid.clone()) {
        e.set("metadata.tenant_uid", t);
    }
    obj.remove("@odata.type");
}

fn error(kind: Kind, obj: &Map<String, Value>, reason: &str) -> MapError {
    MapError {
        table: kind.log_name().to_string(),
        key: format!("id={}", obj.get("id").map(Value::to_string).unwrap_or_else(|| "<missing>".into())),
        reason: reason.to_string(),
    }
}

/// The object's id, creation and update times, and the event time (the
/// update time, else the creation time). Without an id or a time the object
/// cannot be an event.
fn identify(kind: Kind, obj: &mut Map<String, Value>) -> Result<(String, Option<String>, Option<String>, i64), MapError> {
    let id = match obj.remove("id") {
        Some(Value::String(s)) if !s.is_empty() => s,
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(error(kind, obj, &format!("the {} object has no id", kind.name()))),
    };
    let created = take_str(obj, "createdDateTime");
    let updated = take_str(obj, "lastUpdateDateTime");
    match updated.as_deref().or(created.as_deref()).and_then(time_ms) {
        Some(time) => Ok((id, created, updated, time)),
        None => {
            obj.insert("id".into(), id.into());
            Err(error(kind, obj, "it has no valid lastUpdateDateTime"))
        }
    }
}

/// One Graph incident to a 2005 Incident Finding.
pub fn map_incident(mut obj: Map<String, Value>, ctx: &Context) -> Result<Value, MapError> {
    let kind = Kind::Incidents;
    let (id, created, updated, time) = identify(kind, &mut obj)?;
    let columns = Columns::default();
    let mut e = Event::new(Cells::empty(), &columns);
    let status_id = status(&mut e, &mut obj, kind);
    activity(&mut e, 2005, status_id, &created, &updated);
    e.set("time", time);
    if let Some(c) = created.as_deref().and_then(time_ms) {
        e.set("start_time", c);
    }
    severity(&mut e, &mut obj);
    verdict(&mut e, &mut obj);
    if let Some(t) = take_str(&mut obj, "displayName") {
        e.set("message", t);
    }
    if let Some(d) = take_str(&mut obj, "description") {
        e.set("desc", d);
    }
    if let Some(u) = take_str(&mut obj, "incidentWebUrl") {
        e.set("src_url", u);
    }
    if let Some(score) = obj.get("priorityScore").and_then(Value::as_i64) {
        obj.remove("priorityScore");
        e.set("risk_score", score);
        let (pid, pname) = if score > 85 {
            (4, "Critical")
        } else if score >= 15 {
            (2, "Medium")
        } else {
            (1, "Low")
        };
        e.set("priority_id", pid);
        e.set("priority", pname);
    }
    // 1.8.0 requires an assignee or an assignee group, also before anyone is assigned.
    match take_str(&mut obj, "assignedTo") {
        Some(who) => {
            e.set("assignee.name", who.clone());
            if super::field::is_email(&who) {
                e.set("assignee.email_addr", who);
            }
        }
        None => e.set("assignee_group.name", "Unassigned"),
    }
    // The alerts, when expanded; otherwise the incident's own id and title.
    let mut list = Vec::new();
    if let Some(Value::Array(alerts)) = obj.remove("alerts") {
        for a in &alerts {
            if let Some(uid) = a.get("id").and_then(Value::as_str) {
                let mut info = json!({"uid": uid});
                if let Some(t) = a.get("title").and_then(Value::as_str) {
                    info["title"] = t.into();
                }
                list.push(info);
            }
        }
        if alerts.len() != list.len() {
            e.set("unmapped.alerts", Value::Array(alerts));
        }
    }
    if list.is_empty() {
        let mut info = json!({"uid": id});
        if let Some(t) = e.get_str("message") {
            info["title"] = t.into();
        }
        list.push(info);
    }
    e.set("finding_info_list", Value::Array(list));
    for tags in ["customTags", "systemTags"] {
        if let Some(Value::Array(items)) = obj.get(tags)
            && items.iter().all(Value::is_string)
        {
            for t in items.clone() {
                e.push("metadata.labels", t);
            }
            obj.remove(tags);
        }
    }
    metadata(&mut e, &mut obj, kind, ctx, &id, &updated);
    finish_unmapped(e, obj)
}

/// One Graph alert (alerts_v2) to a 2004 Detection Finding.
pub fn map_alert(mut obj: Map<String, Value>, ctx: &Context) -> Result<Value, MapError> {
    let kind = Kind::Alerts;
    let (id, created, updated, time) = identify(kind, &mut obj)?;
    let columns = Columns::default();
    let mut e = Event::new(Cells::empty(), &columns);
    // `status_id` is a core attribute of 2004 Detection Finding.
    let status_id = status(&mut e, &mut obj, kind);
    activity(&mut e, 2004, status_id, &created, &updated);
    e.set("time", time);
    e.set("is_alert", true);
    severity(&mut e, &mut obj);
    verdict(&mut e, &mut obj);
    e.set("finding_info.uid", id.clone());
    if let Some(t) = take_str(&mut obj, "title") {
        e.set("finding_info.title", t);
    }
    if let Some(d) = take_str(&mut obj, "description") {
        e.set("finding_info.desc", d);
    }
    if let Some(c) = take_str(&mut obj, "category") {
        e.push("finding_info.types", c);
    }
    if let Some(u) = take_str(&mut obj, "alertWebUrl") {
        e.set("finding_info.src_url", u);
    }
    if let Some(c) = created.as_deref().and_then(time_ms) {
        e.set("finding_info.created_time", c);
    }
    if let Some(u) = updated.as_deref().and_then(time_ms) {
        e.set("finding_info.modified_time", u);
    }
    for (key, path) in [
        ("firstActivityDateTime", "finding_info.first_seen_time"),
        ("lastActivityDateTime", "finding_info.last_seen_time"),
    ] {
        if let Some(t) = obj.get(key).and_then(Value::as_str).and_then(time_ms) {
            obj.remove(key);
            e.set(path, t);
        }
    }
    if let Some(s) = take_str(&mut obj, "serviceSource") {
        e.set("finding_info.product.name", s);
        e.set("finding_info.product.vendor_name", "Microsoft");
        // The detecting feature of that product; without the product (a
        // product needs a name) it stays under `unmapped`.
        if let Some(d) = take_str(&mut obj, "detectionSource") {
            e.set("finding_info.product.feature.name", d);
        }
    }
    if let Some(Value::Array(techniques)) = obj.get("mitreTechniques") {
        let list: Vec<Value> = techniques
            .iter()
            .filter_map(Value::as_str)
            .map(|t| match t.split_once('.') {
                Some((parent, _)) => {
                    json!({"technique": {"uid": parent}, "sub_technique": {"uid": t}})
                }
                None => json!({"technique": {"uid": t}}),
            })
            .collect();
        if list.len() == techniques.len() {
            obj.remove("mitreTechniques");
            if !list.is_empty() {
                e.set("finding_info.attacks", Value::Array(list));
            }
        }
    }
    if let Some(name) = take_str(&mut obj, "threatDisplayName") {
        e.push("malware", json!({"name": name, "classification_ids": [0]}));
    }
    metadata(&mut e, &mut obj, kind, ctx, &id, &updated);
    finish_unmapped(e, obj)
}

fn finish_unmapped(mut e: Event, obj: Map<String, Value>) -> Result<Value, MapError> {
    super::event::set_captions(&mut e);
    super::event::set_profiles(&mut e);
    let rest: Map<String, Value> = obj.into_iter().filter(|(_, v)| !is_absent(v)).collect();
    if !rest.is_empty() {
        match e.root.get_mut("unmapped") {
            Some(V::Obj(u)) => {
                for (k, v) in rest {
                    u.insert(k, V::from(v));
                }
            }
            _ => e.set("unmapped", V::from(Value::Object(rest))),
        }
    }
    Ok(e.into_value())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn an_unassigned_active_incident() {
        let e = map_incident(
            obj(
                json!({"id": "2972395", "displayName": "Multi-stage incident", "createdDateTime": "2021-08-13T08:43:35.5533333Z",
                "lastUpdateDateTime": "2021-09-30T09:35:45.1133333Z", "assignedTo": null, "classification": "TruePositive",
                "determination": "MultiStagedAttack", "status": "Active", "severity": "Medium", "customTags": ["Demo"],
                "tenantId": "tid", "redirectIncidentId": null, "comments": [{"comment": "x"}]}),
            ),
            &Context::default(),
        )
        .unwrap();
        assert_eq!(e["class_uid"], 2005);
        assert_eq!((e["activity_id"].clone(), e["type_uid"].clone()), (json!(2), json!(200502)));
        assert_eq!(
            (e["activity_name"].clone(), e["type_name"].clone()),
            (json!("Update"), json!("Incident Finding: Update"))
        );
        assert_eq!(e["status_id"], 1);
        assert_eq!(e["severity_id"], 3);
        assert_eq!(e["verdict_id"], 2);
        assert_eq!(e["assignee_group"]["name"], "Unassigned");
        assert_eq!(e["finding_info_list"][0]["uid"], "2972395");
        assert_eq!(e["metadata"]["tenant_uid"], "tid");
        assert_eq!(e["metadata"]["labels"][0], "Demo");
        assert_eq!(e["unmapped"]["determination"], "MultiStagedAttack");
        assert_eq!(e["unmapped"]["comments"][0]["comment"], "x");
        assert_eq!(e["time"], 1632994545113i64);
    }

    #[test]
    fn a_resolved_assigned_incident_with_alerts() {
        let e = map_incident(
            obj(
                json!({"id": 7, "createdDateTime": "2021-08-13T08:43:35Z", "lastUpdateDateTime": "2021-08-14T08:43:35Z",
                "assignedTo": "KaiC@contoso.onmicrosoft.com", "status": "resolved", "priorityScore": 90,
                "alerts": [{"id": "da1", "title": "Alert one"}]}),
            ),
            &Context::default(),
        )
        .unwrap();
        assert_eq!(e["activity_id"], 3);
        assert_eq!(e["status_id"], 4);
        assert_eq!(e["assignee"]["email_addr"], "KaiC@contoso.onmicrosoft.com");
        assert_eq!(e["finding_info_list"], json!([{"uid": "da1", "title": "Alert one"}]));
        assert_eq!((e["risk_score"].clone(), e["priority_id"].clone()), (json!(90), json!(4)));
    }

    #[test]
    fn an_alert() {
        let e = map_alert(
            obj(json!({"id": "da6375", "status": "new", "severity": "low", "classification": "unknown", "serviceSource": "microsoftDefenderForEndpoint",
                "detectionSource": "antivirus", "title": "Hidden file", "category": "DefenseEvasion", "mitreTechniques": ["T1564.001"],
                "createdDateTime": "2021-04-27T12:19:27.7211305Z", "lastUpdateDateTime": "2021-04-27T12:19:27.7211305Z", "evidence": [{"x": 1}]})),
            &Context::default(),
        )
        .unwrap();
        assert_eq!((e["class_uid"].clone(), e["activity_id"].clone()), (json!(2004), json!(1)));
        assert_eq!(e["finding_info"]["uid"], "da6375");
        assert_eq!(e["finding_info"]["attacks"][0]["sub_technique"]["uid"], "T1564.001");
        assert_eq!(e["severity_id"], 2);
        assert_eq!(e["unmapped"]["evidence"][0]["x"], 1);
        // status_id is a core attribute of 2004, not kept aside.
        assert_eq!((e["status_id"].clone(), e["status"].clone()), (json!(1), json!("New")));
        assert!(
            e["unmapped"].get("status_id").is_none() && e["unmapped"].get("status").is_none(),
            "{e}"
        );
        // A verdict is an attribute of the incident profile.
        assert_eq!(e["metadata"]["profiles"], json!(["security_control", "incident"]));
        let resolved = map_alert(
            obj(json!({"id": "a2", "status": "resolved", "createdDateTime": "2021-04-27T12:19:27Z", "lastUpdateDateTime": "2021-04-28T12:19:27Z"})),
            &Context::default(),
        )
        .unwrap();
        assert_eq!(
            (resolved["status_id"].clone(), resolved["activity_id"].clone()),
            (json!(4), json!(3))
        );
    }

    #[test]
    fn objects_without_id_or_time_are_errors() {
        assert!(map_incident(obj(json!({"displayName": "x"})), &Context::default()).is_err());
        let err = map_alert(obj(json!({"id": "a1"})), &Context::default()).unwrap_err();
        assert!(err.to_string().contains("id=\"a1\""), "{err}");
    }
}
