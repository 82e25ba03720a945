//! Comparing what a learner wrote with what a scenario expects: names that may carry a
//! replica suffix, quantities with units (`100ms`, `0.1s`, `1mbit`, `12%`).

use serde_json::Value;

/// `payments` matches `payments`, `Payments` and the instance name `payments-0`.
pub fn names_match(expected: &str, got: &str) -> bool {
    let (e, g) = (
        expected.trim().to_ascii_lowercase(),
        got.trim().to_ascii_lowercase(),
    );
    if e == g {
        return true;
    }
    g.strip_prefix(&e)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// The service an instance name belongs to: `payments-0` → `payments`.
pub fn service_of(instance: &str) -> &str {
    match instance.rsplit_once('-') {
        Some((svc, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => svc,
        _ => instance,
    }
}

/// A number in its canonical unit: milliseconds for durations, bits per second for rates,
/// plain numbers (percentages) as they are.
pub fn quantity(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_quantity(s),
        _ => None,
    }
}

fn parse_quantity(s: &str) -> Option<f64> {
    let t = s.trim().to_ascii_lowercase().replace(' ', "");
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match unit {
        "" | "%" => 1.0,
        "ns" => 1e-6,
        "us" | "µs" => 1e-3,
        "ms" => 1.0,
        "s" | "sec" => 1e3,
        "m" | "min" => 60e3,
        "bit" | "bps" | "bit/s" => 1.0,
        "kbit" | "kbps" | "kbit/s" => 1e3,
        "mbit" | "mbps" | "mbit/s" => 1e6,
        "gbit" | "gbps" | "gbit/s" => 1e9,
        _ => return None,
    };
    Some(n * mult).filter(|x| x.is_finite())
}

/// Two values are the same answer: names (with the tolerance above), or quantities.
pub fn same(expected: &Value, got: &Value) -> bool {
    match (expected, got) {
        (Value::String(e), Value::String(g)) => {
            names_match(e, g)
                || matches!((parse_quantity(e), parse_quantity(g)), (Some(a), Some(b)) if a == b)
        }
        (Value::Number(_), _) | (_, Value::Number(_)) => {
            matches!((quantity(expected), quantity(got)), (Some(a), Some(b)) if (a - b).abs() < 1e-9)
        }
        (e, g) => e == g,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn instance_names_count_as_their_service() {
        assert!(names_match("payments", "payments-0"));
        assert!(names_match("payments", " Payments "));
        assert!(!names_match("payments", "payments-db"));
        assert!(!names_match("api", "api-x1"));
        assert_eq!(service_of("index-db-0"), "index-db");
        assert_eq!(service_of("loadgen"), "loadgen");
    }

    #[test]
    fn quantities_compare_across_units() {
        assert_eq!(quantity(&json!("100ms")), Some(100.0));
        assert_eq!(quantity(&json!("0.1s")), Some(100.0));
        assert_eq!(quantity(&json!("1mbit")), Some(1e6));
        assert_eq!(quantity(&json!("12%")), Some(12.0));
        assert_eq!(quantity(&json!(12)), Some(12.0));
        assert_eq!(quantity(&json!("fast")), None);
        assert!(same(&json!("100ms"), &json!("0.1s")));
        assert!(same(&json!(10), &json!("10%")));
    }
}
