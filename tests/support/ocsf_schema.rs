//! Test support: finds `../shared` and validates events against the OCSF
//! 1.8.0 JSON Schemas kept there. Nothing from `shared/` is copied into the
//! project; tests read it at run time.
//!
//! Where `shared/` is absent the tests that need it print a loud SKIPPED line
//! and return, except under CI (`CI` set), where its absence is a failure.

#![allow(dead_code)]

use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The `shared/` directory beside the repository, if present.
pub fn shared_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("DEFENDER_OCSF_SHARED") {
        return Some(PathBuf::from(dir));
    }
    let mut dir: &Path = Path::new(env!("CARGO_MANIFEST_DIR"));
    loop {
        let candidate = dir.join("..").join("shared");
        if candidate.join("ocsf").join("schemas").is_dir() {
            return Some(candidate);
        }
        dir = dir.parent()?;
    }
}

/// `shared/`, or `None` after announcing that the calling test is skipped.
pub fn shared_or_skip(test: &str) -> Option<PathBuf> {
    match shared_dir() {
        Some(dir) => Some(dir),
        None if std::env::var_os("CI").is_some() => {
            panic!("{test}: ../shared is missing, and CI guarantees it; set DEFENDER_OCSF_SHARED")
        }
        None => {
            eprintln!("\n*** SKIPPED {test}: ../shared (OCSF schemas and samples) was not found beside the repository ***\n");
            None
        }
    }
}

/// Validators per class, compiled once each.
pub struct Schemas {
    dir: PathBuf,
    files: HashMap<u64, String>,
    compiled: HashMap<u64, jsonschema::Validator>,
    captions: Captions,
}

impl Schemas {
    pub fn load(shared: &Path) -> Schemas {
        let dir = shared.join("ocsf").join("schemas");
        let index: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap();
        let files = index
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["class_uid"].as_u64().unwrap(), e["file"].as_str().unwrap().to_string()))
            .collect();
        Schemas {
            dir,
            files,
            compiled: HashMap::new(),
            captions: Captions::load(shared),
        }
    }

    /// Every schema error of `event`, as "path: message" lines; empty when valid.
    /// Also checks what the schemas cannot: type_uid = class_uid × 100 + activity_id,
    /// an activity_name when activity_id is 99, and every caption ([`Captions`]).
    pub fn errors(&mut self, event: &Value) -> Vec<String> {
        let Some(class) = event["class_uid"].as_u64() else {
            return vec!["class_uid is missing".into()];
        };
        if !self.files.contains_key(&class) && !DERIVED.contains(&class) {
            return vec![format!("no schema for class {class}")];
        }
        let (dir, files) = (&self.dir, &self.files);
        let validator = self.compiled.entry(class).or_insert_with(|| {
            let read = |file: &str| -> Value { serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap() };
            let schema = match (files.get(&class), class) {
                (Some(file), _) => read(file),
                (None, 5003) => user_inventory_schema(read(&files[&5001])),
                (None, _) => cloud_resources_inventory_schema(read(&files[&5001]), read(&files[&6003])),
            };
            jsonschema::draft202012::new(&schema).unwrap()
        });
        let mut errors: Vec<String> = validator
            .iter_errors(event)
            .map(|e| format!("{}: {}", e.instance_path(), e))
            .collect();
        let activity = event["activity_id"].as_u64().unwrap_or(u64::MAX);
        if event["type_uid"].as_u64() != Some(class * 100 + activity) {
            errors.push(format!("type_uid {} is not class_uid*100+activity_id", event["type_uid"]));
        }
        if activity == 99 && event["activity_name"].as_str().is_none_or(str::is_empty) {
            errors.push("activity_id 99 without activity_name".into());
        }
        errors.extend(self.captions.errors(event));
        errors
    }
}

/// The captions of OCSF 1.8.0's enums, read from the compiled schema
/// (`ocsf/ocsf-1.8.0.compiled.json`). The JSON Schemas check that an `_id`
/// is in its enum but not that its caption sibling says the same: this does.
pub struct Captions {
    classes: HashMap<u64, Value>,
    objects: serde_json::Map<String, Value>,
}

impl Captions {
    pub fn load(shared: &Path) -> Captions {
        let path = shared.join("ocsf").join("ocsf-1.8.0.compiled.json");
        let mut compiled: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let classes = compiled["classes"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(|c| Some((c["uid"].as_u64()?, c["attributes"].clone())))
            .collect();
        let objects = std::mem::take(compiled["objects"].as_object_mut().unwrap());
        Captions { classes, objects }
    }

    /// Every `X_id` (at any depth, in arrays too) whose enum has a caption
    /// sibling `X`: unless the id is 99 Other, whose caption is the source's
    /// own word, `X` must be present and equal to the schema's caption.
    pub fn errors(&self, event: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        let class = event["class_uid"].as_u64().unwrap_or(0);
        match (self.classes.get(&class), event.as_object()) {
            (Some(attrs), Some(obj)) => self.walk(attrs, obj, "", &mut errors),
            _ => errors.push(format!("class {class} is not in the compiled schema")),
        }
        errors
    }

    fn walk(&self, attrs: &Value, obj: &serde_json::Map<String, Value>, path: &str, errors: &mut Vec<String>) {
        let Some(attrs) = attrs.as_object() else { return };
        for (name, attr) in attrs {
            let Some(value) = obj.get(name) else { continue };
            if let (Some(sibling), Some(id)) = (attr["sibling"].as_str(), value.as_i64())
                && let Some(names) = attr["enum"].as_object()
            {
                match names.get(&id.to_string()).and_then(|e| e["caption"].as_str()) {
                    // 99 Other, and a type_uid of activity 99 ("Class: <the source's word>").
                    _ if id == 99 || (name == "type_uid" && id % 100 == 99) => {}
                    Some(want) if obj.get(sibling).and_then(Value::as_str) == Some(want) => {}
                    Some(want) => errors.push(format!(
                        "{path}{name} {id}: {path}{sibling} is {}, the schema's caption is {want:?}",
                        obj.get(sibling).map_or("missing".to_string(), Value::to_string)
                    )),
                    None => errors.push(format!("{path}{name} {id} is not in its enum")),
                }
            }
            if let Some(object) = attr["object_type"].as_str().and_then(|t| self.objects.get(t)) {
                let items: Vec<&Value> = match value {
                    Value::Array(items) => items.iter().collect(),
                    v => vec![v],
                };
                for (i, item) in items.into_iter().enumerate() {
                    if let Some(inner) = item.as_object() {
                        let at = if value.is_array() {
                            format!("{path}{name}[{i}].")
                        } else {
                            format!("{path}{name}.")
                        };
                        self.walk(&object["attributes"], inner, &at, errors);
                    }
                }
            }
        }
    }
}

/// The classes whose JSON Schema is made here from the shared ones, as the
/// shared files lack it: 5003 and 5023.
const DERIVED: &[u64] = &[5003, 5023];

/// 5003 User Inventory Info, which has no file among the shared schemas
/// (IdentityInfo maps to it, guide §25): the compiled schema gives 5003 the
/// attributes of 5001 Device Inventory Info plus a required `user`, with
/// `device` optional, so its JSON Schema is 5001's with those changes. The
/// `user` object's definition is already among 5001's `$defs` (a device's
/// owner is a user), generated by the same tool with the same profiles.
fn user_inventory_schema(mut schema: Value) -> Value {
    assert!(schema["$defs"]["user"].is_object(), "5001's schema no longer defines `user`");
    schema["title"] = "User Inventory Info".into();
    schema["properties"]["class_uid"]["const"] = 5003.into();
    schema["properties"]["type_uid"]["enum"] = serde_json::json!([500300, 500399, 500301, 500302]);
    schema["properties"]["user"] = serde_json::json!({"title": "User", "$ref": "#/$defs/user"});
    let required = schema["required"].as_array_mut().unwrap();
    required.retain(|r| r != "device");
    required.push("user".into());
    schema
}

/// 5023 Cloud Resources Inventory Info, which has no file among the shared
/// schemas (OAuthAppInfo maps to it, guide §30): the compiled schema gives
/// 5023 the attributes of 5001 Device Inventory Info, `device` optional,
/// plus `region`, `resources` (`resource_details`), `idp`, `container`,
/// `database`, `databucket` and `table`, at least one of the last six (or
/// the `cloud` profile's `cloud`, a profile the shared schemas do not
/// apply). So its JSON Schema is 5001's with those changes. `resources` and
/// `container` take their definitions from 6003 API Activity's schema,
/// made by the same tool with the same profiles (a definition both files
/// hold is checked to be the same). `database`, `databucket` and `table`
/// have a definition in no shared schema: left out, an event holding one
/// fails (`additionalProperties` is false), which is as strict as it gets.
fn cloud_resources_inventory_schema(mut schema: Value, api: Value) -> Value {
    schema["title"] = "Cloud Resources Inventory Info".into();
    schema["properties"]["class_uid"]["const"] = 5023.into();
    schema["properties"]["type_uid"]["enum"] = serde_json::json!([502300, 502399, 502301, 502302]);
    let defs = schema["$defs"].as_object_mut().unwrap();
    for (name, def) in api["$defs"].as_object().unwrap() {
        match defs.get(name) {
            Some(ours) => assert_eq!(ours, def, "5001's and 6003's schemas define `{name}` differently"),
            None => {
                defs.insert(name.clone(), def.clone());
            }
        }
    }
    assert!(defs.contains_key("resource_details") && defs.contains_key("idp") && defs.contains_key("container"));
    let properties = schema["properties"].as_object_mut().unwrap();
    properties.insert("region".into(), serde_json::json!({"title": "Region", "type": "string"}));
    properties.insert(
        "resources".into(),
        serde_json::json!({"title": "Cloud Resources", "type": "array", "items": {"$ref": "#/$defs/resource_details"}}),
    );
    properties.insert(
        "idp".into(),
        serde_json::json!({"title": "Identity Provider", "$ref": "#/$defs/idp"}),
    );
    properties.insert(
        "container".into(),
        serde_json::json!({"title": "Container", "$ref": "#/$defs/container"}),
    );
    schema["required"].as_array_mut().unwrap().retain(|r| r != "device");
    schema["anyOf"] = serde_json::json!([{"required": ["container"]}, {"required": ["idp"]}, {"required": ["resources"]}]);
    schema
}

/// Asserts that every event validates against its class schema; says
/// SKIPPED (or fails under CI) when `../shared` is absent.
pub fn assert_all_valid(label: &str, events: &[Value]) {
    let Some(shared) = shared_or_skip(label) else { return };
    let mut schemas = Schemas::load(&shared);
    for e in events {
        let errors = schemas.errors(e);
        assert!(errors.is_empty(), "{label}: invalid event {e}: {errors:#?}");
    }
}
