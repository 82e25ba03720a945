//! Scores a learner's findings against a scenario's expected findings.
//!
//! The crate owns both file formats a grade depends on: what a learner writes
//! ([`findings::Findings`]) and what a scenario author expects ([`expect::ExpectedFinding`]).
//! It reads no files and runs no labs; callers hand it parsed values.

pub mod expect;
pub mod findings;
