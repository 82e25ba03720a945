//! Value types a scenario is written in: durations, bandwidths, and fields that may instead
//! hold a `{{ expression }}` over the run's drawn parameters.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize};

/// A value that can be written literally or as a template expression such as
/// `"{{ loss_pct }}"`, evaluated once the run's parameters are drawn.
#[derive(Debug, Clone, PartialEq)]
pub enum Tpl<T> {
    Lit(T),
    Expr(String),
}

/// How a scalar from YAML or from a template turns into a field's type.
pub trait Scalar: Sized + Clone {
    /// What a person should write, for error messages.
    const EXPECTED: &'static str;
    fn from_json(v: &serde_json::Value) -> Option<Self>;
}

impl Scalar for f64 {
    const EXPECTED: &'static str = "a number";
    fn from_json(v: &serde_json::Value) -> Option<Self> {
        match v {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

impl Scalar for u16 {
    const EXPECTED: &'static str = "a whole number from 0 to 65535";
    fn from_json(v: &serde_json::Value) -> Option<Self> {
        match v {
            serde_json::Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

impl Scalar for u32 {
    const EXPECTED: &'static str = "a whole number, 0 or more";
    fn from_json(v: &serde_json::Value) -> Option<Self> {
        match v {
            serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

impl Scalar for String {
    const EXPECTED: &'static str = "a string";
    fn from_json(v: &serde_json::Value) -> Option<Self> {
        match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

impl<T: Scalar> Tpl<T> {
    /// The literal value, if this field holds no template.
    pub fn literal(&self) -> Option<&T> {
        match self {
            Tpl::Lit(v) => Some(v),
            Tpl::Expr(_) => None,
        }
    }
}

/// True when a string holds a template rather than a literal value.
pub fn is_template(s: &str) -> bool {
    s.contains("{{")
}

/// True when the whole string is one `{{ expression }}`, whose value keeps its type.
pub fn is_expression(s: &str) -> bool {
    let t = s.trim();
    t.starts_with("{{") && t.ends_with("}}") && t[2..t.len() - 2].find("{{").is_none()
}

impl<'de, T: Scalar> Deserialize<'de> for Tpl<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = serde_json::Value::deserialize(d)?;
        if let serde_json::Value::String(s) = &raw
            && is_template(s)
        {
            return Ok(Tpl::Expr(s.clone()));
        }
        T::from_json(&raw).map(Tpl::Lit).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "expected {} or a template such as \"{{{{ name }}}}\", found {}",
                T::EXPECTED,
                describe(&raw)
            ))
        })
    }
}

impl<T: Serialize> Serialize for Tpl<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Tpl::Lit(v) => v.serialize(s),
            Tpl::Expr(e) => e.serialize(s),
        }
    }
}

impl<T: JsonSchema> JsonSchema for Tpl<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("Templated_{}", T::schema_name()).into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let inner = generator.subschema_for::<T>();
        json_schema!({
            "anyOf": [
                inner,
                { "type": "string", "pattern": "\\{\\{",
                  "description": "A template expression over the scenario's params" }
            ]
        })
    }
}

fn describe(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "nothing".into(),
        serde_json::Value::Bool(b) => format!("`{b}`"),
        serde_json::Value::Number(n) => format!("`{n}`"),
        serde_json::Value::String(s) => format!("\"{s}\""),
        serde_json::Value::Array(_) => "a list".into(),
        serde_json::Value::Object(_) => "a mapping".into(),
    }
}

/// A duration written the human way: `250ms`, `30s`, `1m30s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl Scalar for Dur {
    const EXPECTED: &'static str = "a duration such as 250ms, 30s or 2m";
    fn from_json(v: &serde_json::Value) -> Option<Self> {
        match v {
            serde_json::Value::String(s) => humantime::parse_duration(s.trim()).ok().map(Dur),
            serde_json::Value::Number(n) if n.as_u64() == Some(0) => Some(Dur(Duration::ZERO)),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = serde_json::Value::deserialize(d)?;
        Dur::from_json(&raw).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "expected {}, found {}",
                Dur::EXPECTED,
                describe(&raw)
            ))
        })
    }
}

impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl JsonSchema for Dur {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^([0-9]+(\\.[0-9]+)?\\s*(ns|us|µs|ms|s|sec|m|min|h)\\s*)+$",
            "description": "A duration such as 250ms, 30s or 1m30s"
        })
    }
}

/// A bandwidth in bits per second, written like tc does: `512kbit`, `1mbit`, `2gbit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rate {
    pub bits_per_sec: u64,
}

impl Rate {
    pub fn parse(s: &str) -> Option<Rate> {
        let s = s.trim().to_ascii_lowercase();
        let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (num, unit) = s.split_at(split);
        let n: f64 = num.parse().ok()?;
        let mult = match unit.trim() {
            "bit" | "bps" => 1.0,
            "kbit" | "kbps" => 1e3,
            "mbit" | "mbps" => 1e6,
            "gbit" | "gbps" => 1e9,
            _ => return None,
        };
        let bits = n * mult;
        (bits.is_finite() && bits >= 1.0).then(|| Rate {
            bits_per_sec: bits.round() as u64,
        })
    }
}

impl Scalar for Rate {
    const EXPECTED: &'static str = "a bandwidth such as 512kbit, 1mbit or 1gbit";
    fn from_json(v: &serde_json::Value) -> Option<Self> {
        match v {
            serde_json::Value::String(s) => Rate::parse(s),
            _ => None,
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.bits_per_sec;
        if b.is_multiple_of(1_000_000_000) {
            write!(f, "{}gbit", b / 1_000_000_000)
        } else if b.is_multiple_of(1_000_000) {
            write!(f, "{}mbit", b / 1_000_000)
        } else if b.is_multiple_of(1_000) {
            write!(f, "{}kbit", b / 1_000)
        } else {
            write!(f, "{b}bit")
        }
    }
}

impl Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl JsonSchema for Rate {
    fn schema_name() -> Cow<'static, str> {
        "Bandwidth".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[0-9]+(\\.[0-9]+)?\\s*([kmgKMG]?(bit|bps))$",
            "description": "Bits per second, such as 512kbit, 1mbit or 1gbit"
        })
    }
}

/// How the lab's name server answers a lookup a `dns` fault catches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DnsAnswer {
    /// "No such host": the name does not exist.
    Nxdomain,
    /// The server failed: resolvers report a temporary failure.
    Servfail,
    /// No answer at all: the resolver times out.
    Timeout,
}

impl DnsAnswer {
    const ALL: [DnsAnswer; 3] = [DnsAnswer::Nxdomain, DnsAnswer::Servfail, DnsAnswer::Timeout];

    pub fn name(self) -> &'static str {
        match self {
            DnsAnswer::Nxdomain => "nxdomain",
            DnsAnswer::Servfail => "servfail",
            DnsAnswer::Timeout => "timeout",
        }
    }
}

impl Scalar for DnsAnswer {
    const EXPECTED: &'static str = "one of nxdomain, servfail, timeout";
    fn from_json(v: &serde_json::Value) -> Option<Self> {
        let s = v.as_str()?.trim();
        DnsAnswer::ALL.into_iter().find(|a| a.name() == s)
    }
}

impl fmt::Display for DnsAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl JsonSchema for DnsAnswer {
    fn schema_name() -> Cow<'static, str> {
        "DnsAnswer".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "enum": ["nxdomain", "servfail", "timeout"],
            "description": "How a caught lookup is answered"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_like_tc() {
        assert_eq!(Rate::parse("1mbit").unwrap().bits_per_sec, 1_000_000);
        assert_eq!(Rate::parse("512kbit").unwrap().bits_per_sec, 512_000);
        assert_eq!(Rate::parse("1.5 Mbit").unwrap().bits_per_sec, 1_500_000);
        assert!(Rate::parse("fast").is_none());
        assert!(Rate::parse("10 furlongs").is_none());
        assert_eq!(Rate::parse("2000kbit").unwrap().to_string(), "2mbit");
    }

    #[test]
    fn templates_are_recognised_and_whole_expressions_keep_types() {
        assert!(is_expression("{{ loss }}"));
        assert!(is_expression("  {{ a * 2 }} "));
        assert!(!is_expression("{{ a }}ms"));
        assert!(!is_expression("{{ a }} and {{ b }}"));
        assert!(is_template("{{ a }}ms"));
        assert!(!is_template("100ms"));
    }

    #[test]
    fn durations_read_as_people_write_them() {
        let d = Dur::from_json(&serde_json::json!("1m30s")).unwrap();
        assert_eq!(d.0, Duration::from_secs(90));
        assert!(Dur::from_json(&serde_json::json!(30)).is_none());
    }

    #[test]
    fn dns_answers_read_by_name() {
        let a = DnsAnswer::from_json(&serde_json::json!("servfail"));
        assert_eq!(a, Some(DnsAnswer::Servfail));
        assert_eq!(DnsAnswer::from_json(&serde_json::json!("refused")), None);
    }
}
