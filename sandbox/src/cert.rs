//! Certification: what a candidate's lab drew is sealed (age, X25519) to the instructor's
//! public key, so the answer is not in the lab's files in readable form; the candidate's
//! submission is a bundle the instructor grades with the private key; graded results are signed
//! (Ed25519) so an edited result fails verification.
//!
//! Trust model: the seal gives secrecy, not authorship: anyone holding the public key can seal
//! facts of their choosing. So grading never trusts a rubric from a submission: it rebuilds the
//! expected findings from the scenario (bundled, or a file the instructor names, matched by the
//! content hash the lab recorded) and the sealed seed, and refuses a draw that seed does not
//! give. What only the candidate's machine knows (hints shown, the evidence journal, times) is
//! used as reported and marked so in the signed result. A candidate who is root on the lab's
//! machine can read the kernel's state and forge all of that; exams that must resist this run
//! the lab on a machine the candidate does not administer (docs/instructors-guide.md).

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
use grader::score::{Grade, HintUse};

use crate::plan::Plan;
use crate::scenario::{Scenario, Source};
use crate::sys::capped;

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
    #[error("{path}:{line}:{column}: not a sandbox {what}: {field}{message}")]
    Json {
        path: String,
        line: usize,
        column: usize,
        what: &'static str,
        field: String,
        message: String,
    },
    #[error("sealing: {0}")]
    Seal(String),
    #[error("this submission was not sealed to this key, or it was altered: {0}")]
    Unseal(String),
    #[error("{0}: INVALID: the result was changed after it was signed, or another key signed it")]
    BadSignature(String),
    #[error(
        "{0}: already exists (or is a symbolic link); keys are never written over or through links"
    )]
    Exists(String),
    #[error(
        "`{0}` is not a file name prefix: give one such as keys/instructor (it writes keys/instructor.key and keys/instructor.pub)"
    )]
    Prefix(String),
    #[error("{0}")]
    Scenario(String),
    #[error("{path}: refused: {why}")]
    Refused { path: String, why: String },
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

/// At most `cap` bytes of `path`, whatever size the file claims, never waiting on a FIFO
/// ([`capped::read_named`]).
fn read_capped(path: &Path, what: &'static str, cap: u64) -> Result<Vec<u8>, CertError> {
    use std::io::ErrorKind;
    capped::read_named(path, cap).map_err(|e| match e.kind() {
        ErrorKind::IsADirectory => format_err(path, what, "it is a directory"),
        ErrorKind::FileTooLarge => format_err(path, what, format!("larger than {cap} bytes")),
        _ => io(path)(e),
    })
}

fn read_text(path: &Path, what: &'static str, cap: u64) -> Result<String, CertError> {
    String::from_utf8(read_capped(path, what, cap)?).map_err(|e| {
        format_err(
            path,
            what,
            format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

/// Parses JSON into `T`, naming the line, column and field of a problem but never quoting the
/// file's text (it may be anything: a key, escape sequences).
fn from_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &'static str,
    text: &str,
) -> Result<T, CertError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let fail = |field: String, e: &serde_json::Error| CertError::Json {
        path: path.display().to_string(),
        line: e.line(),
        column: e.column(),
        what,
        field: if field.is_empty() || field == "." {
            String::new()
        } else {
            format!("{field}: ")
        },
        message: json_message(e),
    };
    let value: T = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| fail(e.path().to_string(), e.inner()))?;
    de.end().map_err(|e| fail(String::new(), &e))?;
    Ok(value)
}

/// serde_json's message without the position (shown separately) and without quoted values.
fn json_message(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax => "not valid JSON".into(),
        Category::Eof => "the file ends in the middle of a value".into(),
        Category::Io => "could not be read".into(),
        Category::Data => {
            let raw = e.to_string();
            let raw = raw.rsplit_once(" at line ").map(|(m, _)| m).unwrap_or(&raw);
            crate::term::redact_quoted(raw)
        }
    }
}

/// SHA-256 as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The two lines of a key file: the age key (the line starting `age_prefix`) and the 32 bytes
/// of the signing key (base64 after `sign_prefix`).
fn read_key_file(
    path: &Path,
    what: &'static str,
    age_prefix: &str,
    sign_prefix: &str,
) -> Result<(String, [u8; 32]), CertError> {
    let text = read_text(path, what, capped::KEY)?;
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

/// Writes `<prefix>.key` (mode 0600) and `<prefix>.pub`, exactly there: each is created new
/// (never over an existing file, never through a symbolic link), and on any failure neither is
/// left behind. Returns their paths.
pub fn generate(prefix: &Path) -> Result<(PathBuf, PathBuf), CertError> {
    use std::os::unix::ffi::OsStrExt;
    let raw = prefix.as_os_str().as_bytes();
    if raw.is_empty() || raw.ends_with(b"/") || prefix.is_dir() || prefix.file_name().is_none() {
        return Err(CertError::Prefix(prefix.display().to_string()));
    }
    let with = |ext: &str| {
        let mut p = prefix.as_os_str().to_os_string();
        p.push(ext);
        PathBuf::from(p)
    };
    let (key_path, pub_path) = (with(".key"), with(".pub"));
    let key = InstructorKey::generate();
    let mut key_file = create_new(&key_path, 0o600)?;
    let written = create_new(&pub_path, 0o644).and_then(|mut pub_file| {
        key_file
            .write_all(key.to_text().as_bytes())
            .map_err(io(&key_path))?;
        pub_file
            .write_all(key.public().to_text().as_bytes())
            .map_err(io(&pub_path))
    });
    if let Err(e) = written {
        // Only what this call created is removed: a file that existed made create_new fail.
        let _ = std::fs::remove_file(&key_path);
        if !matches!(e, CertError::Exists(_)) {
            let _ = std::fs::remove_file(&pub_path);
        }
        return Err(e);
    }
    Ok((key_path, pub_path))
}

/// Creates `path` exclusively (O_EXCL), refusing a symbolic link in its place (O_NOFOLLOW).
fn create_new(path: &Path, mode: u32) -> Result<std::fs::File, CertError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => CertError::Exists(path.display().to_string()),
            _ => CertError::Io {
                path: path.display().to_string(),
                source: e,
            },
        })
}

/// What a certification lab drew, readable only by the instructor. Anyone with the public key
/// can seal such facts, so grading checks them against the scenario (see [`Catalog::rubric`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SealedFacts {
    pub candidate: String,
    pub scenario_id: String,
    pub lab_id: String,
    /// SHA-256 of the scenario file the lab ran.
    pub scenario_sha256: String,
    pub seed: u64,
    pub params: BTreeMap<String, serde_json::Value>,
    /// Each fault as `status --reveal` would show it.
    pub faults: Vec<String>,
    /// When the lab was ready, by the candidate's machine's clock.
    pub ready_ms: u64,
}

pub fn seal(to: &InstructorPublic, facts: &SealedFacts) -> Result<String, CertError> {
    seal_json(to, facts)
}

/// Seals any JSON: what a lab does with its facts, and what anyone holding the public key can
/// do with facts of their own making.
pub fn seal_json<T: Serialize>(to: &InstructorPublic, value: &T) -> Result<String, CertError> {
    let json = serde_json::to_vec(value).map_err(|e| CertError::Seal(e.to_string()))?;
    age::encrypt_and_armor(&to.recipient, &json).map_err(|e| CertError::Seal(e.to_string()))
}

pub fn unseal(key: &InstructorKey, armored: &str) -> Result<SealedFacts, CertError> {
    let plain = age::decrypt(&key.identity, armored.as_bytes())
        .map_err(|e| CertError::Unseal(crate::term::redact_quoted(&e.to_string())))?;
    let text = std::str::from_utf8(&plain)
        .map_err(|_| CertError::Unseal("the sealed facts are not UTF-8".into()))?;
    from_json(Path::new("sealed facts"), "lab's sealed facts", text).map_err(|e| match e {
        CertError::Json { field, message, .. } => CertError::Unseal(format!(
            "the sealed facts are not a lab's: {field}{message}"
        )),
        e => e,
    })
}

pub const BUNDLE_FORMAT: &str = "sandbox-submission/2";
pub const RESULT_FORMAT: &str = "sandbox-result/2";

/// What a candidate hands in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub format: String,
    pub candidate: String,
    pub scenario_id: String,
    pub lab_id: String,
    /// SHA-256 of the scenario file the lab ran (also sealed).
    pub scenario_sha256: String,
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
    /// Reads a bundle and the SHA-256 of its bytes as submitted (which ties a result to it).
    pub fn read(path: &Path) -> Result<(Bundle, String), CertError> {
        let what = "submission";
        let bytes = read_capped(path, what, capped::BUNDLE)?;
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            format_err(
                path,
                what,
                format!("not UTF-8 text (byte {})", e.valid_up_to()),
            )
        })?;
        let b: Bundle = from_json(path, what, text)?;
        if b.format != BUNDLE_FORMAT {
            return Err(format_err(
                path,
                what,
                format!("its format is not {BUNDLE_FORMAT}"),
            ));
        }
        Ok((b, sha256_hex(&bytes)))
    }
}

/// What only the candidate's machine can report. Grading used it as reported; a candidate
/// who controls that machine can have changed it (see the instructor's guide).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SelfReported {
    /// Hints the lab recorded as shown (costs are the scenario's).
    pub hints: Vec<usize>,
    /// Probe runs in the lab's evidence journal, which evidence points rest on.
    pub evidence_runs: usize,
    /// When the lab was ready and when the candidate submitted, by their machine's clock; the
    /// time taken and lateness rest on them.
    pub lab_ready_ms: u64,
    pub submitted_ms: u64,
}

/// A graded submission, signed by the instructor over every other field.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SignedResult {
    pub format: String,
    pub candidate: String,
    pub scenario_id: String,
    pub lab_id: String,
    /// The scenario the rubric was rebuilt from.
    pub scenario_sha256: String,
    pub bundle_sha256: String,
    pub graded_ms: u64,
    pub grade: Grade,
    pub self_reported: SelfReported,
    /// Base64 Ed25519 signature over the canonical JSON of the document without this field.
    pub signature: String,
}

/// Domain separation: these bytes are never a valid signature of anything else.
const SIGNED_PREFIX: &[u8] = b"sandbox signed result v2\n";

/// JSON with object keys sorted and no whitespace, so the same document always gives the same
/// bytes whatever order or spacing the file has.
fn canonical(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut entries: Vec<_> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The bytes a signature covers: the whole document but its `signature`.
fn signed_message(doc: &serde_json::Map<String, serde_json::Value>) -> Vec<u8> {
    let mut unsigned = doc.clone();
    unsigned.remove("signature");
    let mut text = String::new();
    canonical(&serde_json::Value::Object(unsigned), &mut text);
    [SIGNED_PREFIX, text.as_bytes()].concat()
}

pub fn sign(key: &InstructorKey, mut r: SignedResult) -> SignedResult {
    r.signature = String::new();
    let message = match serde_json::to_value(&r) {
        Ok(serde_json::Value::Object(doc)) => signed_message(&doc),
        _ => Vec::new(),
    };
    let sig: Signature = key.signing.sign(&message);
    r.signature = B64.encode(sig.to_bytes());
    r
}

/// Reads a signed result and checks it is exactly as the holder of `public`'s key signed it:
/// any field added, removed or changed anywhere makes it invalid.
pub fn verify_file(public: &InstructorPublic, path: &Path) -> Result<SignedResult, CertError> {
    let what = "signed result";
    let text = read_text(path, what, capped::SIGNED_RESULT)?;
    let doc: serde_json::Value = from_json(path, what, &text)?;
    let serde_json::Value::Object(doc) = doc else {
        return Err(format_err(path, what, "it is not a JSON object"));
    };
    let sig = doc
        .get("signature")
        .and_then(|s| s.as_str())
        .and_then(|s| B64.decode(s).ok())
        .and_then(|v| <[u8; 64]>::try_from(v).ok())
        .ok_or_else(|| CertError::BadSignature(path.display().to_string()))?;
    public
        .verifying
        .verify_strict(&signed_message(&doc), &Signature::from_bytes(&sig))
        .map_err(|_| CertError::BadSignature(path.display().to_string()))?;
    let r: SignedResult = serde_path_to_error::deserialize(serde_json::Value::Object(doc))
        .map_err(|e| {
            format_err(
                path,
                what,
                format!("{}: {}", e.path(), json_message(e.inner())),
            )
        })?;
    if r.format != RESULT_FORMAT {
        return Err(format_err(
            path,
            what,
            format!("its format is not {RESULT_FORMAT}"),
        ));
    }
    Ok(r)
}

/// The scenarios a grader rebuilds rubrics from, known by the SHA-256 of their text: files the
/// instructor names, then the bundled catalog.
pub struct Catalog {
    sources: Vec<(String, Source)>,
    /// Each scenario parsed and validated once per batch, by content hash.
    loaded: std::cell::RefCell<BTreeMap<String, Result<Scenario, String>>>,
}

impl Catalog {
    pub fn new(named: &[PathBuf]) -> Result<Catalog, CertError> {
        let mut sources = Vec::new();
        for path in named {
            let source = Source::from_path(path).map_err(|e| CertError::Scenario(e.to_string()))?;
            sources.push((sha256_hex(source.text.as_bytes()), source));
        }
        for b in crate::scenario::bundled() {
            sources.push((
                sha256_hex(b.text.as_bytes()),
                Source {
                    name: format!("bundled:{}", b.id),
                    text: b.text.to_string(),
                },
            ));
        }
        Ok(Catalog {
            sources,
            loaded: Default::default(),
        })
    }

    /// The rubric a bundle is graded against, rebuilt from the scenario the lab ran (found by
    /// its content hash) and the sealed seed; refused when the sealed draw is not what that
    /// seed draws. Returns the plan and the scenario's name.
    pub fn rubric(&self, bundle: &Path, facts: &SealedFacts) -> Result<(Plan, String), CertError> {
        let refuse = |why: String| CertError::Refused {
            path: bundle.display().to_string(),
            why,
        };
        let Some((sha, source)) = self
            .sources
            .iter()
            .find(|(sha, _)| *sha == facts.scenario_sha256)
        else {
            let hint = match crate::scenario::find_bundled(&facts.scenario_id) {
                Some(b) => format!(
                    "; the bundled `{}` is a different file (edited, or from another version)",
                    b.id
                ),
                None => String::new(),
            };
            return Err(refuse(format!(
                "the lab ran a scenario (content hash {}) that is not bundled nor named with --scenario{hint}; name the scenario file it ran with --scenario FILE",
                crate::term::short(&facts.scenario_sha256, 16)
            )));
        };
        let scenario = self
            .loaded
            .borrow_mut()
            .entry(sha.clone())
            .or_insert_with(|| source.load().map_err(|e| e.to_string()))
            .clone()
            .map_err(|e| {
                refuse(format!(
                    "the scenario {} is invalid: {}",
                    source.name,
                    crate::term::safe(&e)
                ))
            })?;
        if scenario.id() != facts.scenario_id {
            return Err(refuse(format!(
                "the sealed facts name scenario `{}`, but the scenario with their content hash is `{}`",
                crate::term::short(&facts.scenario_id, 64),
                scenario.id()
            )));
        }
        let plan = Plan::build(&scenario, facts.seed).map_err(|_| {
            refuse(format!(
                "{} cannot be run with the sealed seed",
                source.name
            ))
        })?;
        let drawn: BTreeMap<String, serde_json::Value> = plan
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect();
        if drawn != facts.params {
            return Err(refuse(format!(
                "the sealed draw is not one {} can produce with its seed: the facts were not sealed by a sandbox lab",
                source.name
            )));
        }
        Ok((plan, source.name.clone()))
    }
}

/// Refuses a bundle whose sealed facts belong to another candidate, lab or scenario, or that
/// was submitted before its lab was ready.
pub fn check_facts(bundle: &Bundle, facts: &SealedFacts, path: &Path) -> Result<(), CertError> {
    let refuse = |why: &str| CertError::Refused {
        path: path.display().to_string(),
        why: why.to_string(),
    };
    if facts.candidate != bundle.candidate
        || facts.lab_id != bundle.lab_id
        || facts.scenario_id != bundle.scenario_id
        || facts.scenario_sha256 != bundle.scenario_sha256
    {
        return Err(refuse(
            "the submission's candidate, lab or scenario differ from what its lab sealed",
        ));
    }
    if bundle.submitted_ms < facts.ready_ms {
        return Err(refuse("it was submitted before its lab was ready"));
    }
    Ok(())
}

/// Grades a bundle (checked with [`check_facts`]) against the rubric rebuilt from its
/// scenario: the findings, the evidence and hints as reported (hint costs from the scenario,
/// not the bundle), and the time from the lab being ready to the submission.
pub fn grade_bundle(
    bundle: &Bundle,
    facts: &SealedFacts,
    plan: &Plan,
    path: &Path,
) -> Result<(Grade, SelfReported), CertError> {
    let refuse = |why: String| CertError::Refused {
        path: path.display().to_string(),
        why,
    };
    let mut hints = Vec::new();
    for h in &bundle.hints {
        let Some(hint) = plan.hints.get(h.index) else {
            return Err(refuse(format!(
                "it lists hint {} but the scenario has {}",
                h.index + 1,
                plan.hints.len()
            )));
        };
        if hints.iter().any(|u: &HintUse| u.index == h.index) {
            return Err(refuse(format!("it lists hint {} twice", h.index + 1)));
        }
        hints.push(HintUse {
            index: h.index,
            cost: hint.cost,
        });
    }
    let findings_ok = grader::score::lint(&bundle.findings).is_empty();
    let sub = grader::score::Submission {
        findings: if findings_ok {
            bundle.findings.clone()
        } else {
            Findings::default()
        },
        evidence: bundle.evidence.clone(),
        hints: hints.clone(),
        time_taken: Some(std::time::Duration::from_millis(
            bundle.submitted_ms.saturating_sub(facts.ready_ms),
        )),
    };
    let grade = grader::score::grade(&plan.exercise, &sub);
    Ok((
        grade,
        SelfReported {
            hints: hints.iter().map(|h| h.index).collect(),
            evidence_runs: bundle.evidence.len(),
            lab_ready_ms: facts.ready_ms,
            submitted_ms: bundle.submitted_ms,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> SealedFacts {
        SealedFacts {
            candidate: "alice".into(),
            scenario_id: "packet-loss".into(),
            lab_id: "k3f9q".into(),
            scenario_sha256: "00".into(),
            seed: 99,
            params: BTreeMap::from([("loss_pct".to_string(), serde_json::json!(13))]),
            faults: vec!["13% packet loss on payments ↔ ledger".into()],
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
        let (k, p) = generate(&dir.path().join("instructor.v2")).unwrap();
        assert_eq!(
            k,
            dir.path().join("instructor.v2.key"),
            "exactly the prefix given"
        );
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
            matches!(
                generate(&dir.path().join("instructor.v2")),
                Err(CertError::Exists(_))
            ),
            "an existing key is never overwritten"
        );
    }

    #[test]
    fn key_generation_never_follows_links_nor_leaves_half_a_pair() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("a.key")).unwrap();
        assert!(matches!(
            generate(&dir.path().join("a")),
            Err(CertError::Exists(_))
        ));
        std::os::unix::fs::symlink(dir.path().join("nowhere"), dir.path().join("b.key")).unwrap();
        assert!(
            generate(&dir.path().join("b")).is_err(),
            "a dangling link too"
        );
        assert!(!dir.path().join("nowhere").exists());
        std::os::unix::fs::symlink(&victim, dir.path().join("c.pub")).unwrap();
        assert!(matches!(
            generate(&dir.path().join("c")),
            Err(CertError::Exists(_))
        ));
        assert!(
            !dir.path().join("c.key").exists(),
            "no key without its public half"
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        let sub = dir.path().join("keys");
        std::fs::create_dir(&sub).unwrap();
        for prefix in [sub.clone(), PathBuf::from(format!("{}/", sub.display()))] {
            assert!(
                matches!(generate(&prefix), Err(CertError::Prefix(_))),
                "{prefix:?}"
            );
        }
        assert!(
            !dir.path().join("keys.key").exists(),
            "nothing outside the directory"
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
    fn special_files_are_read_with_a_cap_and_never_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let e = InstructorPublic::load(&fifo).err().unwrap().to_string();
        assert!(e.contains("needs a line starting age1"), "{e}");
        let e = InstructorKey::load(Path::new("/dev/zero"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("larger than 16384 bytes"), "{e}");
    }

    fn signed(key: &InstructorKey) -> SignedResult {
        let grade = grader::score::grade(
            &grader::score::Exercise {
                expected: vec![],
                pass_mark: 70,
                extra_finding_penalty: 10,
                time_limit: None,
            },
            &grader::score::Submission {
                findings: Findings::default(),
                evidence: vec![],
                hints: vec![],
                time_taken: None,
            },
        );
        sign(
            key,
            SignedResult {
                format: RESULT_FORMAT.into(),
                candidate: "alice".into(),
                scenario_id: "packet-loss".into(),
                lab_id: "k3f9q".into(),
                scenario_sha256: "11".into(),
                bundle_sha256: "00".into(),
                graded_ms: 5,
                grade,
                self_reported: SelfReported {
                    hints: vec![0],
                    evidence_runs: 2,
                    lab_ready_ms: 1,
                    submitted_ms: 2,
                },
                signature: String::new(),
            },
        )
    }

    /// Writes `doc` and verifies it with `public`.
    fn check(
        public: &InstructorPublic,
        doc: &serde_json::Value,
    ) -> Result<SignedResult, CertError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        std::fs::write(&path, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
        verify_file(public, &path)
    }

    #[test]
    fn a_result_is_valid_only_exactly_as_signed() {
        let key = InstructorKey::generate();
        let r = signed(&key);
        let doc = serde_json::to_value(&r).unwrap();
        assert_eq!(check(&key.public(), &doc).unwrap(), r);

        let invalid = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut d = doc.clone();
            edit(&mut d);
            assert!(
                matches!(check(&key.public(), &d), Err(CertError::BadSignature(_))),
                "{d}"
            );
        };
        invalid(&|d| d["grade"]["passed"] = true.into());
        invalid(&|d| d["candidate"] = "mallory".into());
        invalid(&|d| d["self_reported"]["hints"] = serde_json::json!([]));
        invalid(&|d| d["note"] = "added".into());
        invalid(&|d| d["grade"]["extra"] = 1.into());
        invalid(&|d| {
            d.as_object_mut().unwrap().remove("self_reported");
        });
        invalid(&|d| {
            d["grade"].as_object_mut().unwrap().remove("late");
        });
        invalid(&|d| d["signature"] = "".into());
        assert!(
            matches!(
                check(&InstructorKey::generate().public(), &doc),
                Err(CertError::BadSignature(_))
            ),
            "another key's signature does not count"
        );
    }
}
