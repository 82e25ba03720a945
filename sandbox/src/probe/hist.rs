//! Power-of-two histograms, as the kernel side counts them, drawn as text.

use serde::Serialize;

/// Counts in buckets `[2^i, 2^(i+1))` of some unit (µs, ns).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Log2Hist {
    pub buckets: Vec<u64>,
}

impl Log2Hist {
    pub fn bucket_of(value: u64) -> usize {
        (64 - value.leading_zeros()).saturating_sub(1) as usize
    }

    pub fn add(&mut self, value: u64) {
        self.add_n(Self::bucket_of(value), 1);
    }

    pub fn add_n(&mut self, bucket: usize, n: u64) {
        if self.buckets.len() <= bucket {
            self.buckets.resize(bucket + 1, 0);
        }
        self.buckets[bucket] += n;
    }

    pub fn total(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The upper edge of the bucket holding the `q` quantile (0..1): a bound, not a value.
    pub fn quantile_bound(&self, q: f64) -> u64 {
        let total = self.total();
        if total == 0 {
            return 0;
        }
        let want = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= want {
                return 1u64 << (i + 1);
            }
        }
        1u64 << self.buckets.len()
    }

    /// Rows like `  256 -> 511   : 12   |*****     |`, with `unit` after the numbers.
    pub fn render(&self, unit: &str) -> String {
        let max = self.buckets.iter().copied().max().unwrap_or(0);
        if max == 0 {
            return "  (no samples)\n".into();
        }
        let first = self.buckets.iter().position(|n| *n > 0).unwrap_or(0);
        let last = self.buckets.iter().rposition(|n| *n > 0).unwrap_or(0);
        let mut out = String::new();
        for i in first..=last {
            let lo = if i == 0 { 0 } else { 1u64 << i };
            let hi = (1u64 << (i + 1)) - 1;
            let n = self.buckets[i];
            let bar = "█".repeat(((n as f64 / max as f64) * 40.0).round() as usize);
            out.push_str(&format!(
                "  {:>10} -> {:<10} {unit:<3} : {n:<8} |{bar:<40}|\n",
                human(lo),
                human(hi)
            ));
        }
        out
    }
}

fn human(v: u64) -> String {
    if v >= 10_000_000 {
        format!("{}M", v / 1_000_000)
    } else if v >= 10_000 {
        format!("{}K", v / 1000)
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two() {
        assert_eq!(Log2Hist::bucket_of(0), 0);
        assert_eq!(Log2Hist::bucket_of(1), 0);
        assert_eq!(Log2Hist::bucket_of(2), 1);
        assert_eq!(Log2Hist::bucket_of(3), 1);
        assert_eq!(Log2Hist::bucket_of(1024), 10);
    }

    #[test]
    fn quantiles_bound_from_above() {
        let mut h = Log2Hist::default();
        for v in [1, 2, 3, 100, 200, 300, 100_000] {
            h.add(v);
        }
        assert_eq!(h.total(), 7);
        assert_eq!(h.quantile_bound(0.5), 128);
        assert_eq!(h.quantile_bound(1.0), 131_072);
        assert!(h.render("us").contains("65K -> 131K"));
    }
}
