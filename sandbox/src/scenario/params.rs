//! A scenario's parameters and how a run's seed draws them.
//!
//! Each parameter is drawn from its own stream, keyed by the seed and its name, so adding a
//! parameter to a scenario does not change what the others draw for the same seed.

use std::collections::BTreeMap;
use std::fmt;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ParamSpec;

/// A drawn or listed parameter value.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) => write!(f, "{x}"),
            ParamValue::Str(s) => f.write_str(s),
        }
    }
}

impl ParamValue {
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            ParamValue::Bool(b) => serde_json::Value::Bool(*b),
            ParamValue::Int(i) => serde_json::Value::from(*i),
            ParamValue::Float(x) => serde_json::Value::from(*x),
            ParamValue::Str(s) => serde_json::Value::String(s.clone()),
        }
    }
}

/// The values of all parameters for one run.
pub type Params = BTreeMap<String, ParamValue>;

impl ParamSpec {
    /// The step a range is drawn in.
    pub fn effective_step(&self) -> f64 {
        match (self.step, self.range) {
            (Some(s), _) => s,
            (None, Some([lo, hi])) if lo.fract() == 0.0 && hi.fract() == 0.0 => 1.0,
            _ => 0.1,
        }
    }

    /// How many values a draw can give, or `None` when the spec is not drawable or the count
    /// does not fit a u64 (checked, never wrapped or saturated).
    pub fn size(&self) -> Option<u64> {
        if let Some(list) = &self.one_of {
            return u64::try_from(list.len()).ok().filter(|n| *n > 0);
        }
        let [lo, hi] = self.range?;
        let steps = ((hi - lo) / self.effective_step()).floor();
        // 2^53: beyond it f64 no longer counts whole steps exactly.
        (steps.is_finite() && (0.0..9.007_199_254_740_992e15).contains(&steps))
            .then(|| steps as u64 + 1)
    }

    /// Every value a draw can give is one of these or lies between two of them; validation
    /// renders the scenario with each of them.
    pub fn corners(&self) -> Vec<ParamValue> {
        if let Some(list) = &self.one_of {
            return list.clone();
        }
        match self.range {
            Some([lo, hi]) => {
                let step = self.effective_step();
                let top = lo + ((hi - lo) / step).floor() * step;
                vec![self.number(lo), self.number(top)]
            }
            None => Vec::new(),
        }
    }

    fn number(&self, x: f64) -> ParamValue {
        let step = self.effective_step();
        if step.fract() == 0.0 && x.fract() == 0.0 {
            ParamValue::Int(x as i64)
        } else {
            let decimals = decimals(step);
            let scale = 10f64.powi(decimals);
            ParamValue::Float((x * scale).round() / scale)
        }
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> Option<ParamValue> {
        if let Some(list) = &self.one_of {
            if list.is_empty() {
                return None;
            }
            return Some(list[rng.random_range(0..list.len())].clone());
        }
        let [lo, hi] = self.range?;
        let step = self.effective_step();
        let steps = ((hi - lo) / step).floor() as u64;
        let k = rng.random_range(0..=steps);
        Some(self.number(lo + k as f64 * step))
    }
}

fn decimals(step: f64) -> i32 {
    let mut d = 0;
    let mut s = step;
    while s.fract().abs() > 1e-9 && d < 6 {
        s *= 10.0;
        d += 1;
    }
    d
}

/// Draws every parameter for `seed`. Specs are assumed valid (see `validate`); a spec with
/// nothing to draw from is left out, and validation reports it.
pub fn draw<'a>(specs: impl IntoIterator<Item = (&'a String, &'a ParamSpec)>, seed: u64) -> Params {
    specs
        .into_iter()
        .filter_map(|(name, spec)| {
            let mut h = Sha256::new();
            h.update(seed.to_le_bytes());
            h.update(name.as_bytes());
            let digest: [u8; 32] = h.finalize().into();
            let mut rng = ChaCha8Rng::from_seed(digest);
            spec.draw(&mut rng).map(|v| (name.clone(), v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(lo: f64, hi: f64, step: Option<f64>) -> ParamSpec {
        ParamSpec {
            one_of: None,
            range: Some([lo, hi]),
            step,
        }
    }

    #[test]
    fn same_seed_same_draw_and_names_are_independent() {
        let a = range(5.0, 15.0, None);
        let b = ParamSpec {
            one_of: Some(vec![
                ParamValue::Str("api".into()),
                ParamValue::Str("backend".into()),
            ]),
            range: None,
            step: None,
        };
        let (na, nb) = ("loss".to_string(), "victim".to_string());
        let one = draw([(&na, &a), (&nb, &b)], 7);
        let two = draw([(&na, &a), (&nb, &b)], 7);
        assert_eq!(one, two);
        let alone = draw([(&na, &a)], 7);
        assert_eq!(one["loss"], alone["loss"]);
    }

    #[test]
    fn integer_ranges_draw_integers_within_bounds() {
        let spec = range(5.0, 15.0, None);
        let name = "p".to_string();
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..500 {
            match &draw([(&name, &spec)], seed)["p"] {
                ParamValue::Int(v) => {
                    assert!((5..=15).contains(v));
                    seen.insert(*v);
                }
                other => panic!("expected an integer, got {other:?}"),
            }
        }
        assert_eq!(seen.len(), 11, "every value in the range is reachable");
    }

    #[test]
    fn fractional_steps_round_cleanly() {
        let spec = range(0.5, 2.0, Some(0.5));
        let name = "p".to_string();
        for seed in 0..100 {
            let ParamValue::Float(v) = draw([(&name, &spec)], seed)["p"] else {
                panic!("float expected")
            };
            assert!([0.5, 1.0, 1.5, 2.0].contains(&v), "{v}");
        }
        assert_eq!(
            spec.corners(),
            vec![ParamValue::Float(0.5), ParamValue::Float(2.0)]
        );
    }

    #[test]
    fn seeds_differ() {
        let spec = range(0.0, 1000.0, None);
        let name = "p".to_string();
        let values: std::collections::BTreeSet<String> = (0..20)
            .map(|s| draw([(&name, &spec)], s)["p"].to_string())
            .collect();
        assert!(values.len() > 15);
    }
}
