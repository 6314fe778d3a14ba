//! What folding one table's events into another's takes (evidence into its
//! alert, attachments and URLs into their message): finding each follower's
//! leaders by a key, and appending to the leaders' lists. The events are the
//! mapping's trees ([`Obj`]), folded before they are written.

use super::value::{Obj, V};
use std::borrow::Cow;
use std::collections::HashMap;

/// The positions of `leaders` by their value at `path`, as JSON text (equal
/// values match however they are held); leaders without one are left out.
/// A follower finds its leaders at once, however many a window holds.
pub fn index(leaders: &[Obj<'_>], path: &str) -> HashMap<String, Vec<usize>> {
    let mut index: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, leader) in leaders.iter().enumerate() {
        if let Some(key) = leader.at(path) {
            index.entry(key.json_key()).or_default().push(i);
        }
    }
    index
}

/// The leaders (positions, as [`index`] gives them) whose key is `key`.
pub fn leaders_of<'i>(index: &'i HashMap<String, Vec<usize>>, key: Option<&V<'_>>) -> &'i [usize] {
    key.and_then(|k| index.get(&k.json_key())).map_or(&[], Vec::as_slice)
}

/// Appends `items` to the list at `key` of `leader`, made if need be; a
/// value there that is not a list is left as it is.
pub fn append<'a>(leader: &mut Obj<'a>, key: &'static str, items: impl IntoIterator<Item = V<'a>>) {
    match leader.get_mut(key) {
        Some(V::Arr(list)) => list.extend(items),
        Some(_) => {}
        None => leader.insert(key, V::Arr(items.into_iter().collect())),
    }
}

/// The table an event was mapped from (`metadata.log_name`).
pub fn table_of(event: &Obj<'_>, default: &str) -> String {
    event
        .at("metadata.log_name")
        .and_then(V::as_str)
        .map_or_else(|| default.to_string(), Cow::into_owned)
}

/// Keeps what a folded event of `table` kept under `unmapped` in the list
/// `unmapped.<table>` of its leader.
pub fn keep_unmapped<'a>(leader: &mut Obj<'a>, table: String, kept: V<'a>) {
    if leader.get("unmapped").is_none() {
        leader.insert("unmapped", V::Obj(Obj::new()));
    }
    let Some(V::Obj(unmapped)) = leader.get_mut("unmapped") else {
        return;
    };
    match unmapped.get_mut(&table) {
        Some(V::Arr(list)) => list.push(kept),
        Some(_) => {}
        None => unmapped.insert(table, V::Arr(vec![kept])),
    }
}

/// A key for tests' events: absent, one of a few strings, or a number (the
/// string "7" must not match the number 7).
#[cfg(test)]
pub fn some_key() -> impl proptest::strategy::Strategy<Value = Option<serde_json::Value>> {
    use proptest::prelude::*;
    prop_oneof![
        Just(None),
        "[ab7]".prop_map(|s| Some(serde_json::json!(s))),
        (6..8u8).prop_map(|n| Some(serde_json::json!(n)))
    ]
}

/// Folds `followers` into `leaders` with `fold`, on trees as the collector
/// does, and with `reference`, on `serde_json` values: the events must be
/// the same, folded and alone.
#[cfg(test)]
pub fn folds_alike(
    fold: for<'a> fn(&mut [Obj<'a>], &mut [Obj<'a>]) -> Vec<usize>,
    reference: fn(&mut [serde_json::Value], Vec<serde_json::Value>) -> Vec<serde_json::Value>,
    leaders: Vec<serde_json::Value>,
    followers: Vec<serde_json::Value>,
) -> Result<(), proptest::test_runner::TestCaseError> {
    use super::value::obj;
    let mut expected = leaders.clone();
    let expected_alone = reference(&mut expected, followers.clone());
    let mut got: Vec<Obj> = leaders.into_iter().map(obj).collect();
    let mut folded: Vec<Obj> = followers.into_iter().map(obj).collect();
    let alone = fold(&mut got, &mut folded);
    proptest::prop_assert!(alone.is_sorted_by(|a, b| a < b), "positions out of order: {alone:?}");
    // Those left alone must be as they came: they are taken as the fold
    // left them.
    let alone: Vec<Obj> = alone.into_iter().map(|at| std::mem::replace(&mut folded[at], Obj::new())).collect();
    let values = |events: Vec<Obj>| events.into_iter().map(|e| V::Obj(e).to_value()).collect::<Vec<_>>();
    proptest::prop_assert_eq!(values(got), expected);
    proptest::prop_assert_eq!(values(alone), expected_alone);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::value::obj;
    use serde_json::json;

    #[test]
    fn leaders_are_found_by_equal_values_however_held() {
        let leaders = [
            obj(json!({"finding_info": {"uid": "a"}})),
            obj(json!({"finding_info": {"uid": 7}})),
            obj(json!({"finding_info": {}})),
            obj(json!({"finding_info": {"uid": "a"}})),
        ];
        let index = index(&leaders, "finding_info.uid");
        // A string held as the answer's cell matches one held as text.
        assert_eq!(leaders_of(&index, Some(&V::Cell("\"a\""))), [0, 3]);
        assert_eq!(leaders_of(&index, Some(&V::UInt(7))), [1]);
        // The string "7" is not the number 7.
        assert_eq!(leaders_of(&index, Some(&V::Str("7".into()))), [] as [usize; 0]);
        assert_eq!(leaders_of(&index, None), [] as [usize; 0]);
    }

    #[test]
    fn lists_and_unmapped_are_appended_to_or_made() {
        let mut leader = obj(json!({"evidences": [1], "unmapped": {"Column": "x"}}));
        append(&mut leader, "evidences", [V::Int(2)]);
        append(&mut leader, "resources", [V::Int(3)]);
        keep_unmapped(&mut leader, "AlertEvidence".into(), V::Int(4));
        keep_unmapped(&mut leader, "AlertEvidence".into(), V::Int(5));
        assert_eq!(
            V::Obj(leader).to_value(),
            json!({"evidences": [1, 2], "resources": [3], "unmapped": {"Column": "x", "AlertEvidence": [4, 5]}})
        );
        let mut leader = obj(json!({"metadata": {"log_name": "AlertInfo"}}));
        keep_unmapped(&mut leader, "EmailUrlInfo".into(), V::Int(1));
        assert_eq!(V::Obj(leader.clone()).to_value()["unmapped"], json!({"EmailUrlInfo": [1]}));
        assert_eq!(table_of(&leader, "x"), "AlertInfo");
        assert_eq!(table_of(&Obj::new(), "x"), "x");
    }
}
