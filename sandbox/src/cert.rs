//! Certification: what a candidate's lab drew is sealed (age, X25519) to the instructor's
//! public key, so the answer is not in the lab's files in readable form; the candidate's
//! submission is a bundle the instructor grades with the private key; graded results are signed
//! (Ed25519) so an edited result fails verification.
//!
//! Trust model: a candidate who is root on the lab's machine can still read the kernel's state
//! (nftables rules, qdiscs) and the supervisor's memory. The seal keeps the answer out of the
//! lab's files; exams that must resist a root candidate run the lab on a machine the candidate
//! does not administer.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use grader::evidence::ProbeRun;
use grader::findings::Findings;
use grader::score::{Exercise, Grade, HintUse};

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a sandbox {what} ({why})")]
    Format {
        path: String,
        what: &'static str,
        why: String,
    },
    #[error("sealing: {0}")]
    Seal(String),
    #[error("this submission was not sealed to this key, or it was altered: {0}")]
    Unseal(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CertError + '_ {
    move |source| CertError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn format_err(path: &Path, what: &'static str, why: impl std::fmt::Display) -> CertError {
    CertError::Format {
        path: path.display().to_string(),
        what,
        why: why.to_string(),
    }
}

/// The two lines of a key file: the age key (the line starting `age_prefix`) and the 32 bytes
/// of the signing key (base64 after `sign_prefix`).
fn read_key_file(
    path: &Path,
    what: &'static str,
    age_prefix: &str,
    sign_prefix: &str,
) -> Result<(String, [u8; 32]), CertError> {
    let text =
        crate::sys::capped::read_to_string(path, crate::sys::capped::KEY).map_err(io(path))?;
    let mut age_line = None;
    let mut sign = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with(age_prefix) {
            age_line = Some(line.to_string());
        } else if let Some(b) = line.strip_prefix(sign_prefix) {
            let bytes: [u8; 32] = B64
                .decode(b)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| format_err(path, what, "the signing line is not a 32-byte key"))?;
            sign = Some(bytes);
        }
    }
    match (age_line, sign) {
        (Some(a), Some(s)) => Ok((a, s)),
        _ => Err(format_err(
            path,
            what,
            format!(
                "it needs a line starting {age_prefix} and one starting {}",
                sign_prefix.trim_end()
            ),
        )),
    }
}

/// The instructor's secret key: decrypts sealed facts and signs graded results.
pub struct InstructorKey {
    identity: age::x25519::Identity,
    signing: SigningKey,
}

/// The instructor's public key: labs seal to it, anyone verifies results with it.
#[derive(Clone)]
pub struct InstructorPublic {
    recipient: age::x25519::Recipient,
    verifying: VerifyingKey,
}

const SIGN_SECRET: &str = "SANDBOX-SIGNING-SECRET ";
const SIGN_PUBLIC: &str = "SANDBOX-SIGNING-PUBLIC ";

impl InstructorKey {
    pub fn generate() -> InstructorKey {
        let secret: [u8; 32] = rand::random();
        InstructorKey {
            identity: age::x25519::Identity::generate(),
            signing: SigningKey::from_bytes(&secret),
        }
    }

    pub fn public(&self) -> InstructorPublic {
        InstructorPublic {
            recipient: self.identity.to_public(),
            verifying: self.signing.verifying_key(),
        }
    }

    fn to_text(&self) -> String {
        use age::secrecy::ExposeSecret;
        format!(
            "# sandbox instructor key: decrypts candidates' sealed labs and signs grades. Keep it secret.\n{}\n{SIGN_SECRET}{}\n",
            self.identity.to_string().expose_secret(),
            B64.encode(self.signing.to_bytes())
        )
    }

    pub fn load(path: &Path) -> Result<InstructorKey, CertError> {
        let what = "instructor key";
        let (age_line, signing) = read_key_file(path, what, "AGE-SECRET-KEY-", SIGN_SECRET)?;
        Ok(InstructorKey {
            identity: age::x25519::Identity::from_str(&age_line)
                .map_err(|e| format_err(path, what, e))?,
            signing: SigningKey::from_bytes(&signing),
        })
    }
}

impl InstructorPublic {
    fn to_text(&self) -> String {
        format!(
            "# sandbox instructor public key: give it to candidates' labs (run --certify) and to verifiers.\n{}\n{SIGN_PUBLIC}{}\n",
            self.recipient,
            B64.encode(self.verifying.to_bytes())
        )
    }

    pub fn load(path: &Path) -> Result<InstructorPublic, CertError> {
        let what = "public key";
        let (age_line, verifying) = read_key_file(path, what, "age1", SIGN_PUBLIC)?;
        Ok(InstructorPublic {
            recipient: age::x25519::Recipient::from_str(&age_line)
                .map_err(|e| format_err(path, what, e))?,
            verifying: VerifyingKey::from_bytes(&verifying)
                .map_err(|e| format_err(path, what, e))?,
        })
    }
}

/// Writes `<prefix>.key` (mode 0600) and `<prefix>.pub`; returns their paths.
pub fn generate(prefix: &Path) -> Result<(PathBuf, PathBuf), CertError> {
    let key = InstructorKey::generate();
    let (key_path, pub_path) = (prefix.with_extension("key"), prefix.with_extension("pub"));
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_path)
        .map_err(io(&key_path))?;
    f.write_all(key.to_text().as_bytes())
        .map_err(io(&key_path))?;
    std::fs::write(&pub_path, key.public().to_text()).map_err(io(&pub_path))?;
    Ok((key_path, pub_path))
}

/// What a certification lab drew, readable only by the instructor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SealedFacts {
    pub candidate: String,
    pub scenario_id: String,
    pub lab_id: String,
    pub seed: u64,
    pub params: BTreeMap<String, serde_json::Value>,
    /// Each fault as `status --reveal` would show it.
    pub faults: Vec<String>,
    pub exercise: Exercise,
    pub ready_ms: u64,
}

pub fn seal(to: &InstructorPublic, facts: &SealedFacts) -> Result<String, CertError> {
    let json = serde_json::to_vec(facts).map_err(|e| CertError::Seal(e.to_string()))?;
    age::encrypt_and_armor(&to.recipient, &json).map_err(|e| CertError::Seal(e.to_string()))
}

pub fn unseal(key: &InstructorKey, armored: &str) -> Result<SealedFacts, CertError> {
    let plain = age::decrypt(&key.identity, armored.as_bytes())
        .map_err(|e| CertError::Unseal(e.to_string()))?;
    serde_json::from_slice(&plain).map_err(|e| CertError::Unseal(e.to_string()))
}

pub const BUNDLE_FORMAT: &str = "sandbox-submission/1";
pub const RESULT_FORMAT: &str = "sandbox-result/1";

/// What a candidate hands in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Bundle {
    pub format: String,
    pub candidate: String,
    pub scenario_id: String,
    pub lab_id: String,
    pub submitted_ms: u64,
    pub findings: Findings,
    pub evidence: Vec<ProbeRun>,
    pub hints: Vec<HintUse>,
    /// Attached files by name, base64.
    pub attachments: BTreeMap<String, String>,
    /// The lab's sealed facts, as the lab wrote them.
    pub sealed: String,
}

impl Bundle {
    pub fn read(path: &Path) -> Result<Bundle, CertError> {
        let text = crate::sys::capped::read_to_string(path, crate::sys::capped::BUNDLE)
            .map_err(io(path))?;
        let b: Bundle =
            serde_json::from_str(&text).map_err(|e| format_err(path, "submission", e))?;
        if b.format != BUNDLE_FORMAT {
            return Err(format_err(
                path,
                "submission",
                format!("format `{}`", b.format),
            ));
        }
        Ok(b)
    }

    /// SHA-256 of the bundle as submitted, tying a result to it.
    pub fn digest(path: &Path) -> Result<String, CertError> {
        let bytes = crate::sys::capped::read(path, crate::sys::capped::BUNDLE).map_err(io(path))?;
        Ok(Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }
}

/// A graded submission, signed by the instructor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SignedResult {
    pub format: String,
    pub candidate: String,
    pub scenario_id: String,
    pub lab_id: String,
    pub bundle_sha256: String,
    pub graded_ms: u64,
    pub grade: Grade,
    /// Base64 Ed25519 signature over this result's JSON without the signature.
    pub signature: String,
}

fn signed_bytes(r: &SignedResult) -> Vec<u8> {
    let mut unsigned = r.clone();
    unsigned.signature = String::new();
    serde_json::to_vec(&unsigned).unwrap_or_default()
}

pub fn sign(key: &InstructorKey, mut r: SignedResult) -> SignedResult {
    r.signature = String::new();
    let sig: Signature = key.signing.sign(&signed_bytes(&r));
    r.signature = B64.encode(sig.to_bytes());
    r
}

/// Whether a result is exactly as the holder of `public`'s key signed it.
pub fn verify(public: &InstructorPublic, r: &SignedResult) -> bool {
    let Some(sig) = B64
        .decode(&r.signature)
        .ok()
        .and_then(|v| <[u8; 64]>::try_from(v).ok())
    else {
        return false;
    };
    public
        .verifying
        .verify_strict(&signed_bytes(r), &Signature::from_bytes(&sig))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> SealedFacts {
        SealedFacts {
            candidate: "alice".into(),
            scenario_id: "packet-loss".into(),
            lab_id: "k3f9q".into(),
            seed: 99,
            params: BTreeMap::from([("loss_pct".to_string(), serde_json::json!(13))]),
            faults: vec!["13% packet loss on payments ↔ ledger".into()],
            exercise: Exercise {
                expected: vec![],
                pass_mark: 70,
                extra_finding_penalty: 10,
                time_limit: None,
            },
            ready_ms: 1,
        }
    }

    #[test]
    fn sealed_facts_open_only_with_the_instructor_key() {
        let key = InstructorKey::generate();
        let sealed = seal(&key.public(), &facts()).unwrap();
        assert!(sealed.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
        assert!(!sealed.contains("ledger") && !sealed.contains("loss_pct"));
        assert_eq!(unseal(&key, &sealed).unwrap(), facts());
        assert!(unseal(&InstructorKey::generate(), &sealed).is_err());
    }

    #[test]
    fn keys_round_trip_through_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let (k, p) = generate(&dir.path().join("instructor")).unwrap();
        let key = InstructorKey::load(&k).unwrap();
        let public = InstructorPublic::load(&p).unwrap();
        let sealed = seal(&public, &facts()).unwrap();
        assert_eq!(unseal(&key, &sealed).unwrap().seed, 99);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&k).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(
            generate(&dir.path().join("instructor")).is_err(),
            "an existing key is never overwritten"
        );
    }

    #[test]
    fn a_damaged_key_file_says_which_line_it_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let (k, p) = generate(&dir.path().join("instructor")).unwrap();
        let public = std::fs::read_to_string(&p).unwrap();
        let without_signing: String = public
            .lines()
            .filter(|l| !l.starts_with(SIGN_PUBLIC))
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&p, without_signing).unwrap();
        let e = InstructorPublic::load(&p).err().unwrap().to_string();
        assert!(e.contains("SANDBOX-SIGNING-PUBLIC"), "{e}");
        assert!(e.contains(&p.display().to_string()), "{e}");

        let secret = std::fs::read_to_string(&k).unwrap();
        std::fs::write(&k, format!("{secret}{SIGN_SECRET}not-base64\n")).unwrap();
        let e = InstructorKey::load(&k).err().unwrap().to_string();
        assert!(e.contains("not a 32-byte key"), "{e}");
    }

    #[test]
    fn an_edited_result_fails_verification() {
        let key = InstructorKey::generate();
        let grade = grader::score::grade(
            &facts().exercise,
            &grader::score::Submission {
                findings: Findings::default(),
                evidence: vec![],
                hints: vec![],
                time_taken: None,
            },
        );
        let r = sign(
            &key,
            SignedResult {
                format: RESULT_FORMAT.into(),
                candidate: "alice".into(),
                scenario_id: "packet-loss".into(),
                lab_id: "k3f9q".into(),
                bundle_sha256: "00".into(),
                graded_ms: 5,
                grade,
                signature: String::new(),
            },
        );
        assert!(verify(&key.public(), &r));
        let mut edited = r.clone();
        edited.grade.passed = true;
        assert!(!verify(&key.public(), &edited));
        let mut edited = r.clone();
        edited.candidate = "mallory".into();
        assert!(!verify(&key.public(), &edited));
        assert!(
            !verify(&InstructorKey::generate().public(), &r),
            "another key's signature does not count"
        );
    }
}
