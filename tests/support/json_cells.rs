//! Test support: JSON values of every type, as advanced-hunting cells may
//! hold them, for property tests of the mappings.

use proptest::prelude::*;
use serde_json::{Value, json};

/// A JSON value: scalars of each type (any text, text shaped like paths,
/// and cell values the mappings convert) and arrays and objects of them,
/// up to three levels deep.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        "[a-zA-Z0-9 ._\\\\/:-]{0,24}".prop_map(Value::String),
        Just(json!("2025-01-01T00:00:00.1234567Z")),
        Just(json!("{\"a\":[1,2,{\"b\":null}]}")),
        Just(json!("10.0.0.1")),
        Just(json!("ProcessCreated")),
        Just(json!("0")),
        Just(json!("High")),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
