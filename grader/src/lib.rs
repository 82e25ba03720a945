//! Scores a learner's findings against a scenario's expected findings.
//!
//! The crate owns the file formats a grade depends on — what a learner writes
//! ([`findings::Findings`]) and what a scenario author expects ([`expect::ExpectedFinding`]) —
//! the root-cause [`taxonomy`], and the scoring itself ([`score::grade`]). It reads no files
//! and runs no labs; callers hand it parsed values.

mod assign;
pub mod evidence;
pub mod expect;
pub mod findings;
pub mod score;
pub mod taxonomy;
pub mod value;
