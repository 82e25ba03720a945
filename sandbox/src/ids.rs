//! Lab identities and the prefix every kernel object, container and file of a lab carries,
//! shared by everything that names a lab's objects (backends, faults, probes, the lab itself).

use std::path::PathBuf;

use rand::RngExt;

/// Every kernel object and file of a lab carries this prefix followed by the lab id, so
/// `down --all` finds them even when the state directory is gone.
pub const PREFIX: &str = "sbx";

/// Five lower-case letters and digits, e.g. `k3f9q`.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct LabId(String);

impl LabId {
    pub fn random() -> LabId {
        const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
        let mut rng = rand::rng();
        let s: String = (0..5)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        LabId(s)
    }

    pub fn parse(s: &str) -> Option<LabId> {
        (s.len() == 5
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
        .then(|| LabId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for LabId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where labs keep their files. `/run` goes away at reboot, as the namespaces do.
pub fn state_root() -> PathBuf {
    std::env::var_os("SANDBOX_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/sandbox"))
}

/// Lab `id`'s directory.
pub fn lab_dir(id: &LabId) -> PathBuf {
    state_root().join("labs").join(id.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_and_parse_back() {
        for _ in 0..100 {
            let id = LabId::random();
            assert_eq!(LabId::parse(id.as_str()), Some(id.clone()));
        }
        assert!(LabId::parse("ABCDE").is_none());
        assert!(LabId::parse("abc").is_none());
    }
}
