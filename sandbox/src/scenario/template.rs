//! Templates over a run's drawn parameters (minijinja): whole-field expressions such as
//! `"{{ loss_pct }}"` that become typed values, and text such as a briefing that mentions them.
//!
//! A scenario may come from anyone, and `validate` renders it, so rendering is bounded: a
//! template is expressions only (no `{% … %}` statements, so no loops), holds no string or
//! list literals and no `~`, repeats no text parameter with `*`, runs on a fixed amount of
//! fuel and may produce at most [`MAX_OUTPUT`] bytes. Together these keep every value it can
//! build proportional to its own size.

use minijinja::{Environment, UndefinedBehavior, Value};

use super::params::{ParamValue, Params};
use super::value::{Scalar, Tpl};

/// Renders templates against one set of drawn parameters. Unknown names are errors, so a typo
/// in a scenario is found by `validate` rather than rendered as an empty string.
pub struct Renderer {
    env: Environment<'static>,
    ctx: Value,
    /// Names of parameters whose value is text: `*` on them would repeat it.
    text_params: Vec<String>,
}

/// The most a single template may render to.
pub const MAX_OUTPUT: usize = 64 * 1024;
/// The longest template accepted.
pub const MAX_SOURCE: usize = 16 * 1024;
/// Instructions one render may run; far more than any expression over params needs.
const FUEL: u64 = 20_000;

impl Renderer {
    pub fn new(params: &Params) -> Renderer {
        let mut env = Environment::empty();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL));
        env.add_filter("round", minijinja::filters::round);
        env.add_filter("int", minijinja::filters::int);
        env.add_filter("float", minijinja::filters::float);
        env.add_filter("abs", minijinja::filters::abs);
        let map: std::collections::BTreeMap<String, serde_json::Value> = params
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect();
        Renderer {
            env,
            ctx: Value::from(minijinja::value::Serde(&map)),
            text_params: params
                .iter()
                .filter(|(_, v)| matches!(v, ParamValue::Str(_)))
                .map(|(k, _)| k.clone())
                .collect(),
        }
    }

    /// Renders free text (briefings, hints, expected answers).
    pub fn text(&self, template: &str) -> Result<String, String> {
        if !template.contains("{{") && !template.contains("{%") && !template.contains("{#") {
            return Ok(template.to_string());
        }
        self.check(template)?;
        let out = self.env.render_str(template, &self.ctx).map_err(describe)?;
        if out.len() > MAX_OUTPUT {
            return Err(format!(
                "template error: renders to {} bytes; at most {MAX_OUTPUT} are allowed",
                out.len()
            ));
        }
        Ok(out)
    }

    /// Refuses what could make rendering costly, before anything runs.
    fn check(&self, template: &str) -> Result<(), String> {
        if template.len() > MAX_SOURCE {
            return Err(format!(
                "template error: the template is {} bytes; at most {MAX_SOURCE} are allowed",
                template.len()
            ));
        }
        let mut rest = template;
        while let Some(at) = rest.find('{') {
            let after = &rest[at + 1..];
            if after.starts_with('%') {
                return Err("template error: `{% … %}` statements are not supported; a template is `{{ expression }}` over params".into());
            }
            if let Some(comment) = after.strip_prefix('#') {
                rest = comment.find("#}").map_or("", |end| &comment[end + 2..]);
                continue;
            }
            let Some(inner) = after.strip_prefix('{') else {
                rest = after;
                continue;
            };
            let end = inner.find("}}").unwrap_or(inner.len());
            self.check_expression(&inner[..end])?;
            rest = inner.get(end + 2..).unwrap_or("");
        }
        Ok(())
    }

    fn check_expression(&self, expr: &str) -> Result<(), String> {
        if let Some(c) = expr.chars().find(|c| matches!(c, '"' | '\'' | '~' | '[')) {
            let what = match c {
                '~' => "`~` (text concatenation)",
                '[' => "lists",
                _ => "string literals",
            };
            return Err(format!(
                "template error: {what} are not supported in a template; use params"
            ));
        }
        if expr.contains('*') {
            let idents = expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
            if let Some(name) = idents
                .into_iter()
                .find(|w| self.text_params.iter().any(|p| p == w))
            {
                return Err(format!(
                    "template error: `{name}` is text; `*` cannot repeat it"
                ));
            }
        }
        Ok(())
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
                self.check_expression(inner)?;
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
                    self.check_expression(inner)?;
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

/// The error's own words, and the line within the template when it is not the first (the
/// field's position says where the template starts).
fn describe(e: minijinja::Error) -> String {
    let what = match e.detail() {
        Some(detail) => format!("template error: {detail}"),
        None => format!("template error: {}", e.kind()),
    };
    match e.line() {
        Some(line) if line > 1 => format!("{what} (line {line} of the template)"),
        _ => what,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn errors_deep_in_a_template_say_which_line() {
        let e = renderer().text("one\ntwo\n{{ nope }}\n").unwrap_err();
        assert!(e.ends_with("(line 3 of the template)"), "{e}");
    }

    #[test]
    fn wrong_type_is_reported() {
        let r = renderer();
        let e = r
            .value::<f64>(&Tpl::Expr("{{ victim }}".into()))
            .unwrap_err();
        assert!(e.contains("expected a number"), "{e}");
    }

    #[test]
    fn costly_templates_are_refused_before_they_run() {
        let r = renderer();
        let start = std::time::Instant::now();
        for bomb in [
            "{% for a in range(99999) %}{% for b in range(99999) %}x{% endfor %}{% endfor %}",
            "{{ 'x' * 100000000 }}",
            "{{ victim * 100000000 }}",
            "{{ loss ~ loss ~ loss }}",
            "{{ [1, 2] * 100000000 }}",
            "{{ \"a\" }}",
        ] {
            let e = r.text(bomb).unwrap_err();
            assert!(e.starts_with("template error:"), "{bomb}: {e}");
        }
        let e = r
            .value::<f64>(&Tpl::Expr("{{ victim * 99999999 }}".into()))
            .unwrap_err();
        assert!(e.contains("cannot repeat"), "{e}");
        assert!(r.text(&"{{ loss }}".repeat(MAX_SOURCE)).is_err());
        assert!(start.elapsed() < std::time::Duration::from_millis(500));
    }

    #[test]
    fn arithmetic_and_comments_still_render() {
        let r = renderer();
        assert_eq!(r.text("{# why #}{{ (loss * 3) | round }}").unwrap(), "36");
        assert_eq!(
            r.text("{ not a tag } {{ loss }}").unwrap(),
            "{ not a tag } 12"
        );
    }

    #[test]
    fn output_is_bounded() {
        let mut p = Params::new();
        p.insert("v".into(), ParamValue::Str("x".repeat(256)));
        let r = Renderer::new(&p);
        let e = r.text(&"{{ v + v + v + v }}".repeat(100)).unwrap_err();
        assert!(e.contains("renders to"), "{e}");
    }
}
