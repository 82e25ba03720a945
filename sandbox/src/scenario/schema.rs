//! JSON Schemas of the file formats, generated from the Rust types so that editors validate
//! files as they are written. `sandbox schema [scenario|course]` prints them;
//! `docs/scenario.schema.json` and `docs/course.schema.json` are copies a test keeps current.

use super::Scenario;

pub fn json_schema() -> serde_json::Value {
    json_schema_of::<Scenario>("sandbox scenario (sandbox/v1)")
}

/// The schema of any format type, under `title` (the course format uses it too, so schemars
/// stays behind this module and the derives).
pub fn json_schema_of<T: schemars::JsonSchema>(title: &str) -> serde_json::Value {
    let mut schema = schemars::schema_for!(T);
    schema.insert("title".into(), title.into());
    schema.to_value()
}
