//! The check that a row rejected for lacking an object its class requires
//! is told every column that could have given it, made from the other
//! side: a row that maps, with every column the message would name
//! emptied, no longer has the object.

use defender_ocsf_collector::mapping::{self, Context, Table};
use serde_json::{Map, Value};

/// As the mapping decides it: the object is there, with what makes it one.
fn present(event: &Value, object: &str) -> bool {
    match event.get(object) {
        Some(Value::Object(o)) => {
            let keys = mapping::ocsf::identity(object);
            keys.is_empty() || keys.iter().any(|k| o.contains_key(*k))
        }
        Some(_) => true,
        None => false,
    }
}

/// For `row` of `table`, if it maps: each object its class requires that
/// the row has and that is not made for every row (by the activity, or
/// `Shape::gives`' `ALWAYS`) is looked for again with the columns
/// `plan::columns_giving` names emptied. Returns how many objects were
/// checked, and a line for each one still there: a column that gives it
/// is not named.
pub fn unnamed_givers(table: &'static Table, row: &Map<String, Value>, ctx: &Context) -> (usize, Vec<String>) {
    let Ok(event) = mapping::map_row(table, row.clone().into_iter().collect(), ctx) else {
        return (0, Vec::new()); // the row's own test reports it
    };
    let class_uid = event["class_uid"].as_u64().and_then(|c| u32::try_from(c).ok()).unwrap_or_default();
    let action_type = row.get("ActionType").and_then(Value::as_str);
    let (mut activity, _) = table.activity(action_type);
    if let Some(next) = activity.successor
        && next.class_uid == class_uid
    {
        activity = next;
    }
    let shape = activity.shape.unwrap_or(table.shape);
    let mut checked = 0;
    let mut failures = Vec::new();
    let requires = mapping::ocsf::requires(class_uid);
    for any in requires {
        let set = |a: &&str| activity.sets.iter().any(|(p, _)| p == a);
        let always = |a: &&str| shape.gives.iter().any(|(o, columns)| o == a && columns.is_empty());
        if any.iter().any(set) {
            continue; // the activity sets it
        }
        if any.iter().any(always) {
            // Made for every row: still there with every other column
            // emptied but those that give the class's other objects.
            let mut keep: Vec<&str> = vec!["Timestamp", "ActionType"];
            for other in requires.iter().filter(|o| *o != any) {
                keep.extend(mapping::plan::columns_giving(shape, other));
            }
            let bare: Map<String, Value> = row
                .iter()
                .map(|(k, v)| (k.clone(), if keep.contains(&k.as_str()) { v.clone() } else { Value::Null }))
                .collect();
            checked += 1;
            match mapping::map_row(table, bare.into_iter().collect(), ctx) {
                Ok(e) if e["class_uid"] == class_uid && !any.iter().any(|a| present(&e, a)) => {
                    failures.push(format!("{} {action_type:?}: {any:?} is not made for every row", table.name))
                }
                Err(e) if any.iter().any(|a| e.reason.contains(&format!("`{a}`"))) => {
                    failures.push(format!("{} {action_type:?}: {any:?} is not made for every row: {e}", table.name))
                }
                _ => {}
            }
            continue;
        }
        if !any.iter().any(|a| present(&event, a)) {
            continue; // not there: another of its class's lists gives what it requires
        }
        let columns = mapping::plan::columns_giving(shape, any);
        let mut emptied = row.clone();
        for c in &columns {
            if emptied.contains_key(*c) {
                emptied.insert(c.to_string(), Value::Null);
            }
        }
        checked += 1;
        match mapping::map_row(table, emptied.into_iter().collect(), ctx) {
            // Rejected, or another class (a sign-in without a user is an API call).
            Err(_) => {}
            Ok(e) if e["class_uid"] != class_uid || !any.iter().any(|a| present(&e, a)) => {}
            Ok(e) => {
                let left: Vec<_> = any.iter().filter(|a| present(&e, a)).map(|a| format!("{a}: {}", e[*a])).collect();
                failures.push(format!(
                    "{} {action_type:?}: without {columns:?}, still {}",
                    table.name,
                    left.join(", ")
                ));
            }
        }
    }
    (checked, failures)
}
