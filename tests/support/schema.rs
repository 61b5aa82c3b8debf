//! Validates JSON against a component of MongoDB's OpenAPI definition (copied into
//! `tests/fixtures/atlas/`), translated from OpenAPI 3.0 to JSON Schema 2020-12.

use serde_json::{Map, Value, json};

const OPENAPI: &str = include_str!("../fixtures/atlas/restore-api.openapi.json");

/// A validator for `#/components/schemas/{component}`.
///
/// Two translations, both deliberate:
/// - OpenAPI 3.0 `nullable: true` becomes a JSON Schema type that admits `null`;
/// - `ApiBSONTimestampView.increment` loses its `minimum`: Atlas's real answers break it
///   (an oplog increment is a small counter), see `tests/fixtures/atlas/NOTES.md`.
pub fn component_validator(component: &str) -> jsonschema::Validator {
    let openapi: Value = serde_json::from_str(OPENAPI).expect("the OpenAPI fixture is JSON");
    let mut components = openapi["components"].clone();
    translate_nullable(&mut components);
    if let Some(increment) = components
        .pointer_mut("/schemas/ApiBSONTimestampView/properties/increment")
        .and_then(Value::as_object_mut)
    {
        increment.remove("minimum");
    }
    assert!(
        components["schemas"].get(component).is_some(),
        "no component {component} in the OpenAPI fixture"
    );
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": format!("#/components/schemas/{component}"),
        "components": components,
    });
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the translated OpenAPI component is a valid JSON Schema")
}

/// Every violation of `component` by `instance`, as readable lines (empty when valid).
pub fn violations(component: &str, instance: &Value) -> Vec<String> {
    let validator = component_validator(component);
    validator
        .iter_errors(instance)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect()
}

fn translate_nullable(node: &mut Value) {
    match node {
        Value::Object(map) => {
            if map.get("nullable") == Some(&Value::Bool(true)) {
                map.remove("nullable");
                admit_null(map);
            }
            for value in map.values_mut() {
                translate_nullable(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(translate_nullable),
        _ => {}
    }
}

fn admit_null(map: &mut Map<String, Value>) {
    if let Some(Value::String(kind)) = map.get("type").cloned() {
        map.insert("type".into(), json!([kind, "null"]));
    }
}
