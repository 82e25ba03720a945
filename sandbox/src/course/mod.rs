//! The course file format (v1): an ordered list of modules, each a scenario with its pass mark,
//! time limit and unlock rule, run in practice or certification mode. A course is read with
//! the scenario format's machinery (strict YAML with positions, diagnostics located in the
//! file) and checked against every scenario it names; `sandbox serve` runs classes from it.
//! `docs/course-format.md` describes the format.

mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use crate::scenario::{self, BackendKind, Diagnostic, Dur, Scenario, ScenarioError, Source};
use crate::yaml::Spanned;

pub const KIND: &str = "Course";
/// More modules than a day's workshop holds is a mistake, and bounds what a class tracks.
pub const MAX_MODULES: usize = 64;

/// A course file as written.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Course {
    /// Always `sandbox/v1` for this version of the format.
    #[serde(rename = "apiVersion")]
    pub api_version: Spanned<String>,
    /// Always `Course`.
    pub kind: Spanned<String>,
    pub metadata: Metadata,
    /// `practice`: learners see their score and per-check feedback on each submission.
    /// `certification`: submissions are graded by the instructor's key, never shown to the
    /// candidate, and every module must be gradable that way.
    pub mode: Spanned<Mode>,
    /// The modules in the order learners take them.
    #[schemars(length(min = 1, max = MAX_MODULES))]
    pub modules: Spanned<Vec<Module>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Lower-case letters, digits and dashes; how commands name the course.
    pub id: Spanned<String>,
    pub title: String,
    pub summary: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Practice,
    Certification,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Practice => "practice",
            Mode::Certification => "certification",
        })
    }
}

/// One step of a course: a scenario and the rules a learner takes it under.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Module {
    /// Lower-case letters, digits and dashes; unique in the course (results are kept by it).
    pub id: Spanned<String>,
    /// The id of a bundled scenario (`packet-loss`), or a scenario file's path relative to
    /// this course file (`scenarios/mine.yaml`): a value with a `/`, or ending in `.yaml` or
    /// `.yml`, is a path.
    pub scenario: Spanned<String>,
    /// Points out of 100 needed to pass; the scenario's `pass_mark` when absent.
    #[serde(default)]
    #[schemars(range(max = 100))]
    pub pass_mark: Option<Spanned<u32>>,
    /// How long a learner has, from the lab being ready to the submission; the scenario's
    /// `metadata.time_limit` when absent.
    #[serde(default)]
    pub time_limit: Option<Spanned<Dur>>,
    /// When the module opens: `after-previous` (the default: once the previous module is
    /// passed; the first module is open from the start) or `instructor` (when the instructor
    /// opens it, or at `opens_at`).
    #[serde(default)]
    pub unlock: Spanned<Unlock>,
    /// With `unlock: instructor`: the module also opens by itself at this time (RFC 3339,
    /// with an offset: `2026-12-07T09:00:00Z`, `2026-12-07T10:00:00+01:00`).
    #[serde(default)]
    pub opens_at: Option<Spanned<Time>>,
    /// Whether learners may ask for hints (each costs the scenario's points); true when
    /// absent.
    #[serde(default = "yes")]
    pub hints: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Unlock {
    #[default]
    AfterPrevious,
    Instructor,
}

/// A moment in time written in RFC 3339 with its offset, so a course means the same moment
/// wherever the server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time(jiff::Timestamp);

impl Time {
    pub const EXPECTED: &'static str =
        "expected an RFC 3339 time with an offset, such as 2026-12-07T09:00:00Z";

    pub fn parse(s: &str) -> Option<Time> {
        s.trim().parse().ok().map(Time)
    }

    /// Milliseconds since the Unix epoch, as lab and class times are kept.
    pub fn unix_ms(self) -> i64 {
        self.0.as_millisecond()
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Time::parse(&raw).ok_or_else(|| serde::de::Error::custom(Time::EXPECTED))
    }
}

impl Serialize for Time {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl JsonSchema for Time {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Time".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "format": "date-time",
            "description": "An RFC 3339 time with an offset, such as 2026-12-07T09:00:00Z"
        })
    }
}

/// Why a course could not be used; always says where.
#[derive(Debug, thiserror::Error)]
pub enum CourseError {
    /// The course file could not be read, or does not parse (located in it).
    #[error(transparent)]
    File(ScenarioError),
    #[error(
        "no course named `{0}`: not a file, and not a bundled course (see `sandbox course list`)"
    )]
    NotFound(String),
    /// The course's own problems (`course`, an `Invalid` error of the course file), and the
    /// problems of each scenario it names that does not validate.
    #[error("{}", invalid_text(.course, .scenarios))]
    Invalid {
        course: ScenarioError,
        scenarios: Vec<ScenarioError>,
    },
}

fn invalid_text(course: &ScenarioError, scenarios: &[ScenarioError]) -> String {
    std::iter::once(course)
        .chain(scenarios)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A course whose every module names a scenario that was found and validates.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub source: Source,
    pub course: Course,
    pub modules: Vec<Resolved>,
}

/// A module with its scenario.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub module: Module,
    /// The scenario file (`bundled:<id>` or the path it was read from).
    pub source: Source,
    pub scenario: Scenario,
}

impl Resolved {
    pub fn pass_mark(&self) -> u32 {
        self.module
            .pass_mark
            .as_ref()
            .map_or(*self.scenario.pass_mark, |p| **p)
    }

    pub fn time_limit(&self) -> Option<Duration> {
        self.module
            .time_limit
            .as_ref()
            .or(self.scenario.metadata.time_limit.as_ref())
            .map(|t| t.0)
    }

    /// Points the scenario's hints cost together; 0 when the module turns hints off.
    pub fn hint_points(&self) -> u32 {
        if self.module.hints {
            self.scenario.hints.iter().map(|h| *h.cost).sum()
        } else {
            0
        }
    }
}

impl Loaded {
    /// The backends every module's scenario runs on: where a class of this course can run.
    pub fn backends(&self) -> Vec<BackendKind> {
        BackendKind::ALL
            .into_iter()
            .filter(|b| {
                self.modules
                    .iter()
                    .all(|m| m.scenario.metadata.backends.contains(b))
            })
            .collect()
    }
}

/// The JSON Schema of course files, for editors (`sandbox schema course`).
pub fn json_schema() -> serde_json::Value {
    scenario::json_schema_of::<Course>("sandbox course (sandbox/v1)")
}

/// A course file path, or the id of a bundled course.
pub fn resolve(arg: &str) -> Result<Source, CourseError> {
    let path = Path::new(arg);
    if path.is_file() {
        return Source::read(path, "course").map_err(CourseError::File);
    }
    match scenario::find_bundled_course(arg) {
        Some(b) => Ok(Source {
            name: format!("bundled:{}", b.id),
            text: b.text.to_string(),
        }),
        None => Err(CourseError::NotFound(arg.to_string())),
    }
}

/// True when a module's `scenario` names a file rather than a bundled scenario.
pub fn is_path(reference: &str) -> bool {
    reference.contains('/') || reference.ends_with(".yaml") || reference.ends_with(".yml")
}

/// Parses and validates a course and every scenario it names; every problem found is
/// reported, each scenario's own problems in that scenario's file.
pub fn load(source: Source) -> Result<Loaded, CourseError> {
    let course: Course = source.parse(KIND).map_err(CourseError::File)?;
    let mut diagnostics = validate::check(&course);
    // A bundled course has no directory; its scenarios are bundled too.
    let base = (!source.name.starts_with("bundled:"))
        .then(|| Path::new(&source.name).parent().unwrap_or(Path::new("")));
    // Each scenario is checked once; a second module naming a bad one repeats its message.
    let mut found: BTreeMap<String, Result<(Source, Scenario), String>> = BTreeMap::new();
    let mut scenarios = Vec::new();
    let mut modules = Vec::new();
    for (i, m) in course.modules.iter().enumerate() {
        let at = |message: String| {
            Diagnostic::at(m.scenario.pos, &format!("modules[{i}].scenario"), message)
        };
        let found_at = match find_scenario(base, &m.scenario) {
            Ok(f) => f,
            Err(message) => {
                diagnostics.push(at(message));
                continue;
            }
        };
        let key = match &found_at {
            Found::Bundled(src) => src.name.clone(),
            // `a.yaml` and `./a.yaml` are one file.
            Found::File(path) => std::fs::canonicalize(path)
                .unwrap_or_else(|_| path.clone())
                .display()
                .to_string(),
        };
        let loaded = found
            .entry(key)
            .or_insert_with(|| {
                let result = match found_at {
                    Found::Bundled(src) => Ok(src),
                    Found::File(path) => Source::read(&path, "scenario"),
                }
                .and_then(|src| crate::plan::load_checked(&src).map(|s| (src, s)));
                match result {
                    Ok(pair) => Ok(pair),
                    Err(ScenarioError::Read { source, .. }) => Err(format!(
                        "cannot read the scenario file `{}` (relative to the course file): {source}",
                        *m.scenario
                    )),
                    Err(e) => {
                        scenarios.push(e);
                        Err(format!(
                            "the scenario `{}` does not validate; its problems follow",
                            *m.scenario
                        ))
                    }
                }
            })
            .clone();
        if let Err(message) = &loaded {
            diagnostics.push(at(message.clone()));
        }
        if let Ok((source, scenario)) = loaded {
            modules.push((
                i,
                Resolved {
                    module: m.clone(),
                    source,
                    scenario,
                },
            ));
        }
    }
    diagnostics.extend(validate::cross(&course, &modules));
    if diagnostics.is_empty() {
        return Ok(Loaded {
            source,
            course,
            modules: modules.into_iter().map(|(_, m)| m).collect(),
        });
    }
    Err(CourseError::Invalid {
        course: source.invalid(diagnostics),
        scenarios,
    })
}

/// Where a module's scenario is.
enum Found {
    Bundled(Source),
    File(std::path::PathBuf),
}

/// The scenario a module names: a file relative to the course's directory, or a bundled one.
fn find_scenario(base: Option<&Path>, reference: &str) -> Result<Found, String> {
    if is_path(reference) {
        return match base {
            Some(base) => Ok(Found::File(base.join(reference))),
            None => Err("a bundled course names bundled scenarios by id, not by path".to_string()),
        };
    }
    match scenario::find_bundled(reference) {
        Some(b) => Ok(Found::Bundled(Source {
            name: format!("bundled:{}", b.id),
            text: b.text.to_string(),
        })),
        None => Err(format!(
            "no bundled scenario `{reference}`; expected one of: {}, or a scenario file's path relative to the course (with a `/`, or ending in .yaml)",
            scenario::bundled()
                .iter()
                .map(|b| b.id)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests;
