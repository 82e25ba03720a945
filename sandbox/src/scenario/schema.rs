//! JSON Schema of the scenario format, generated from the Rust types so that editors validate
//! scenario files as they are written. `sandbox schema` prints it; `docs/scenario.schema.json`
//! is a copy a test keeps current.

use super::Scenario;

pub fn json_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(Scenario);
    schema.insert("title".into(), "sandbox scenario (sandbox/v1)".into());
    schema.to_value()
}
