//! `sandbox`: bring up a small system of Go services from a scenario file, inject network and
//! application faults on a schedule, and let a learner find them with bundled probes.
//!
//! Data flows one way: [`scenario`] (the file) → [`plan`] (one concrete run) → [`backend`]
//! (the lab's network and processes, driven by [`lab`]'s supervisor) → [`fault`] (what breaks
//! it) → [`symptoms`] (what its users feel).

pub mod app;
pub mod backend;
pub mod cert;
pub mod class;
pub mod cluster;
pub mod course;
pub mod debug;
pub mod doctor;
pub mod ebpf;
pub mod exercise;
pub mod fault;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod gobuild;
pub mod graph;
pub mod http;
pub mod ids;
pub mod lab;
pub mod names;
pub mod plan;
pub mod probe;
pub mod profile;
pub mod report;
pub mod scenario;
pub mod symptoms;
pub mod sys;
pub mod term;
pub mod timeline;
pub mod topology;
pub mod verify;
pub mod yaml;
