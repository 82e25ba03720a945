//! Templates over a run's drawn parameters (minijinja): whole-field expressions such as
//! `"{{ loss_pct }}"` that become typed values, and text such as a briefing that mentions them.

use minijinja::{Environment, UndefinedBehavior, Value};

use super::params::Params;
use super::value::{Scalar, Tpl};

/// Renders templates against one set of drawn parameters. Unknown names are errors, so a typo
/// in a scenario is found by `validate` rather than rendered as an empty string.
pub struct Renderer {
    env: Environment<'static>,
    ctx: Value,
}

impl Renderer {
    pub fn new(params: &Params) -> Renderer {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        let map: std::collections::BTreeMap<String, serde_json::Value> = params
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect();
        Renderer {
            env,
            ctx: Value::from(minijinja::value::Serde(&map)),
        }
    }

    /// Renders free text (briefings, hints, expected answers).
    pub fn text(&self, template: &str) -> Result<String, String> {
        if !template.contains("{{") && !template.contains("{%") {
            return Ok(template.to_string());
        }
        self.env.render_str(template, &self.ctx).map_err(describe)
    }

    /// The value of a field that may be a template expression.
    pub fn value<T: Scalar>(&self, field: &Tpl<T>) -> Result<T, String> {
        match field {
            Tpl::Lit(v) => Ok(v.clone()),
            Tpl::Expr(src) if !super::value::is_expression(src) => {
                let text = self.text(src)?;
                T::from_json(&serde_json::Value::String(text.clone())).ok_or_else(|| {
                    format!("`{}` gave \"{text}\", expected {}", src.trim(), T::EXPECTED)
                })
            }
            Tpl::Expr(src) => {
                let inner = src.trim().trim_start_matches("{{").trim_end_matches("}}");
                let expr = self.env.compile_expression(inner).map_err(describe)?;
                let out = expr.eval(&self.ctx).map_err(describe)?;
                if out.is_undefined() {
                    return Err(format!(
                        "`{}` names something that is not a param",
                        src.trim()
                    ));
                }
                let json = serde_json::to_value(&out).map_err(|e| e.to_string())?;
                T::from_json(&json).ok_or_else(|| {
                    format!("`{}` gave {json}, expected {}", src.trim(), T::EXPECTED)
                })
            }
        }
    }

    /// Renders every string inside a JSON value (expected answers can be templated).
    pub fn json(&self, v: &serde_json::Value) -> Result<serde_json::Value, String> {
        Ok(match v {
            serde_json::Value::String(s) => {
                if super::value::is_expression(s) {
                    let inner = s.trim().trim_start_matches("{{").trim_end_matches("}}");
                    let expr = self.env.compile_expression(inner).map_err(describe)?;
                    let out = expr.eval(&self.ctx).map_err(describe)?;
                    if out.is_undefined() {
                        return Err(format!(
                            "`{}` names something that is not a param",
                            s.trim()
                        ));
                    }
                    serde_json::to_value(out).map_err(|e| e.to_string())?
                } else {
                    serde_json::Value::String(self.text(s)?)
                }
            }
            serde_json::Value::Array(items) => serde_json::Value::Array(
                items
                    .iter()
                    .map(|i| self.json(i))
                    .collect::<Result<_, _>>()?,
            ),
            serde_json::Value::Object(map) => serde_json::Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.json(v)?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => other.clone(),
        })
    }
}

/// Renders a whole template file (kind cluster layouts) against named values; like scenario
/// templates, a name the values lack is an error rather than an empty string.
pub fn render_document(
    source: &str,
    values: &std::collections::BTreeMap<&str, String>,
) -> Result<String, String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let mut text = env.render_str(source, values).map_err(describe)?;
    // minijinja drops the template's final newline; a YAML file keeps one.
    text.push('\n');
    Ok(text)
}

fn describe(e: minijinja::Error) -> String {
    match e.detail() {
        Some(detail) => format!("template error: {detail}"),
        None => format!("template error: {}", e.kind()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::params::ParamValue;

    fn renderer() -> Renderer {
        let mut p = Params::new();
        p.insert("loss".into(), ParamValue::Int(12));
        p.insert("victim".into(), ParamValue::Str("backend".into()));
        Renderer::new(&p)
    }

    #[test]
    fn expressions_become_typed_values() {
        let r = renderer();
        assert_eq!(
            r.value::<f64>(&Tpl::Expr("{{ loss }}".into())).unwrap(),
            12.0
        );
        assert_eq!(
            r.value::<f64>(&Tpl::Expr("{{ loss / 2 }}".into())).unwrap(),
            6.0
        );
        assert_eq!(
            r.value::<String>(&Tpl::Expr("{{ victim }}".into()))
                .unwrap(),
            "backend"
        );
        let d = r
            .value::<crate::scenario::Dur>(&Tpl::Expr("{{ loss * 10 }}ms".into()))
            .unwrap();
        assert_eq!(d.0, std::time::Duration::from_millis(120));
    }

    #[test]
    fn unknown_names_are_errors_not_blanks() {
        let r = renderer();
        let e = r.value::<f64>(&Tpl::Expr("{{ los }}".into())).unwrap_err();
        assert!(e.contains("not a param"), "{e}");
        assert!(r.text("lost {{ nope }} packets").is_err());
    }

    #[test]
    fn text_and_json_render() {
        let r = renderer();
        assert_eq!(
            r.text("{{ loss }}% on {{ victim }}").unwrap(),
            "12% on backend"
        );
        let v = r
            .json(&serde_json::json!({"approx": "{{ loss }}", "who": ["{{ victim }}"]}))
            .unwrap();
        assert_eq!(v, serde_json::json!({"approx": 12, "who": ["backend"]}));
    }

    #[test]
    fn wrong_type_is_reported() {
        let r = renderer();
        let e = r
            .value::<f64>(&Tpl::Expr("{{ victim }}".into()))
            .unwrap_err();
        assert!(e.contains("expected a number"), "{e}");
    }
}
