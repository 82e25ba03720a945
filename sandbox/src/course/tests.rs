use super::*;

const GOOD: &str = "apiVersion: sandbox/v1
kind: Course
metadata:
  id: tiny
  title: Tiny
  summary: two modules
mode: practice
modules:
  - id: first
    scenario: packet-loss
  - id: second
    scenario: added-latency
    pass_mark: 80
    time_limit: 20m
    unlock: instructor
    opens_at: 2026-12-07T10:00:00+01:00
";

fn source(text: &str) -> Source {
    Source {
        name: "course.yaml".into(),
        text: text.into(),
    }
}

/// Every problem of a course as `line:column: path: message`.
fn problems(text: &str) -> Vec<String> {
    match load(source(text)) {
        Ok(_) => Vec::new(),
        Err(CourseError::Invalid { course, .. } | CourseError::File(course)) => match course {
            ScenarioError::Invalid { diagnostics, .. } => {
                diagnostics.iter().map(ToString::to_string).collect()
            }
            other => vec![other.to_string()],
        },
        Err(e) => vec![e.to_string()],
    }
}

#[test]
fn a_good_course_resolves_its_scenarios_and_defaults() {
    let c = load(source(GOOD)).unwrap();
    assert_eq!(*c.course.mode, Mode::Practice);
    let [first, second] = c.modules.as_slice() else {
        panic!("two modules: {:?}", c.modules.len())
    };
    assert_eq!(first.scenario.id(), "packet-loss");
    assert_eq!(first.source.name, "bundled:packet-loss");
    // Defaults are the scenario's own.
    assert_eq!(first.pass_mark(), *first.scenario.pass_mark);
    assert_eq!(
        first.time_limit(),
        first.scenario.metadata.time_limit.as_ref().map(|t| t.0)
    );
    assert_eq!(*first.module.unlock, Unlock::AfterPrevious);
    assert!(first.module.hints);
    assert_eq!(second.pass_mark(), 80);
    assert_eq!(second.time_limit(), Some(Duration::from_secs(20 * 60)));
    assert_eq!(*second.module.unlock, Unlock::Instructor);
    let at = second.module.opens_at.as_ref().unwrap();
    assert_eq!(
        at.to_string(),
        "2026-12-07T09:00:00Z",
        "kept as the moment, in UTC"
    );
    assert_eq!(at.unix_ms(), 1_796_634_000_000);
    assert_eq!(
        c.backends(),
        [BackendKind::Netns, BackendKind::Docker, BackendKind::Kube]
    );
}

#[test]
fn unknown_fields_and_bad_values_are_located() {
    let bad = GOOD.replace(
        "    pass_mark: 80\n",
        "    pass_mark: 80\n    passmark: 70\n",
    );
    assert_eq!(
        problems(&bad),
        [
            "14:5: modules[1].passmark: unknown field `passmark`, expected one of id, scenario, pass_mark, time_limit, unlock, opens_at, hints"
        ]
    );
    let bad = GOOD.replace("time_limit: 20m", "time_limit: soon");
    let p = problems(&bad);
    assert!(
        p.len() == 1 && p[0].starts_with("14:17: modules[1].time_limit: expected a duration"),
        "{p:?}"
    );
    let bad = GOOD.replace("2026-12-07T10:00:00+01:00", "2026-12-07 10:00");
    assert_eq!(
        problems(&bad),
        [format!("16:15: modules[1].opens_at: {}", Time::EXPECTED)]
    );
    let bad = GOOD.replace("unlock: instructor", "unlock: teacher");
    let p = problems(&bad);
    assert!(
        p.len() == 1
            && p[0].starts_with("15:13: modules[1].unlock: unknown variant")
            && p[0].contains("after-previous, instructor"),
        "{p:?}"
    );
    let bad = GOOD.replace("mode: practice\n", "");
    assert_eq!(problems(&bad), ["1:1: missing field `mode`"]);
}

#[test]
fn rules_of_the_course_itself() {
    let bad = GOOD
        .replace("apiVersion: sandbox/v1", "apiVersion: sandbox/v2")
        .replace("kind: Course", "kind: Scenario")
        .replace("id: tiny", "id: Tiny")
        .replace("id: second", "id: first")
        .replace("pass_mark: 80", "pass_mark: 101")
        .replace("time_limit: 20m", "time_limit: 0s")
        .replace("unlock: instructor", "unlock: after-previous");
    assert_eq!(
        problems(&bad),
        [
            "1:13: apiVersion: expected `sandbox/v1`, found `sandbox/v2`",
            "2:7: kind: expected `Course`, found `Scenario`",
            "4:7: metadata.id: expected lower-case letters, digits and dashes (at most 40), starting with a letter",
            "11:9: modules[1].id: module id `first` is already used by modules[0]; module ids are unique in a course",
            "13:16: modules[1].pass_mark: expected points out of 100, from 0 to 100",
            "14:17: modules[1].time_limit: expected a time limit above 0; leave it out for the scenario's own",
            "16:15: modules[1].opens_at: `opens_at` needs `unlock: instructor` (an `after-previous` module opens when the previous one is passed)",
        ]
    );
    let empty = "apiVersion: sandbox/v1\nkind: Course\nmetadata: {id: e, title: E, summary: s}\nmode: practice\nmodules: []\n";
    assert_eq!(
        problems(empty),
        ["5:10: modules: expected at least one module"]
    );
}

#[test]
fn scenarios_must_exist_and_validate() {
    let bad = GOOD.replace("scenario: added-latency", "scenario: added-latenzy");
    let p = problems(&bad);
    assert!(
        p.len() == 1
            && p[0].starts_with("12:15: modules[1].scenario: no bundled scenario `added-latenzy`; expected one of: added-latency,"),
        "{p:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let course = dir.path().join("course.yaml");
    std::fs::create_dir(dir.path().join("mine")).unwrap();
    let scenario = scenario::find_bundled("packet-loss")
        .unwrap()
        .text
        .replace("pass_mark: 70", "pass_mark: 170");
    std::fs::write(dir.path().join("mine/loss.yaml"), scenario).unwrap();
    let text = GOOD
        .replace("scenario: packet-loss", "scenario: mine/loss.yaml")
        .replace("scenario: added-latency", "scenario: mine/gone.yaml");
    std::fs::write(&course, &text).unwrap();
    let source = Source::read(&course, "course").unwrap();
    let Err(CourseError::Invalid { course, scenarios }) = load(source) else {
        panic!("invalid")
    };
    let ScenarioError::Invalid { diagnostics, .. } = course else {
        panic!("located")
    };
    let messages: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(
        messages[0],
        "10:15: modules[0].scenario: the scenario `mine/loss.yaml` does not validate; its problems follow"
    );
    assert!(
        messages[1].starts_with("12:15: modules[1].scenario: cannot read the scenario file `mine/gone.yaml` (relative to the course file): "),
        "{messages:?}"
    );
    // The scenario's own problem, located in the scenario's file.
    let [
        ScenarioError::Invalid {
            source_name,
            diagnostics,
            ..
        },
    ] = scenarios.as_slice()
    else {
        panic!("one scenario error: {scenarios:?}")
    };
    assert!(source_name.ends_with("mine/loss.yaml"), "{source_name}");
    assert_eq!(diagnostics[0].path, "pass_mark");
}

#[test]
fn a_path_reaches_a_scenario_beside_the_course() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("loss.yaml"),
        scenario::find_bundled("packet-loss").unwrap().text,
    )
    .unwrap();
    let course = dir.path().join("course.yaml");
    std::fs::write(
        &course,
        GOOD.replace("scenario: packet-loss", "scenario: loss.yaml"),
    )
    .unwrap();
    let c = load(Source::read(&course, "course").unwrap()).unwrap();
    assert_eq!(
        c.modules[0].source.name,
        dir.path().join("loss.yaml").display().to_string()
    );
    // A bundled course has no directory to resolve paths against.
    let bundled = Source {
        name: "bundled:tiny".into(),
        text: GOOD.replace("scenario: packet-loss", "scenario: loss.yaml"),
    };
    let Err(CourseError::Invalid { course, .. }) = load(bundled) else {
        panic!("invalid")
    };
    assert!(
        course.to_string().contains("names bundled scenarios by id"),
        "{course}"
    );
}

#[test]
fn certification_needs_gradable_timed_scenarios_and_costly_hints() {
    let dir = tempfile::tempdir().unwrap();
    let loss = scenario::find_bundled("packet-loss").unwrap().text;
    let untimed = loss.replace("  time_limit: 30m\n", "");
    let free_hint = loss.replacen("cost: 10", "cost: 0", 1);
    let docker_only = loss.replace("backends: [netns, docker, kube]", "backends: [docker]");
    for (name, text) in [
        ("untimed.yaml", &untimed),
        ("free.yaml", &free_hint),
        ("docker.yaml", &docker_only),
    ] {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let file = dir.path().join("course.yaml");
    let text = "apiVersion: sandbox/v1
kind: Course
metadata: {id: exam, title: Exam, summary: s}
mode: certification
modules:
  - {id: a, scenario: untimed.yaml}
  - {id: b, scenario: untimed.yaml, time_limit: 10m}
  - {id: c, scenario: free.yaml}
  - {id: d, scenario: free.yaml, hints: false}
  - {id: e, scenario: packet-loss}
  - {id: f, scenario: docker.yaml}
  - {id: g, scenario: node-disconnect}
";
    std::fs::write(&file, text).unwrap();
    let Err(CourseError::Invalid { course, .. }) = load(Source::read(&file, "course").unwrap())
    else {
        panic!("invalid")
    };
    let ScenarioError::Invalid { diagnostics, .. } = course else {
        panic!("located")
    };
    let messages: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "6:23: modules[0].scenario: a certification module needs a time limit, and `packet-loss` has no `metadata.time_limit`; set the module's `time_limit`",
            "8:23: modules[2].scenario: hint 1 of `packet-loss` costs no points, so certification could not tell help from skill; set `hints: false` for this module, or give the hint a cost",
            "12:23: modules[6].scenario: `node-disconnect` runs on kube only, and the modules before it share no such backend (they run on docker); a class runs every module on one backend",
        ]
    );
    // The same scenarios make a valid practice course once the backends agree.
    let practice = text
        .replace("mode: certification", "mode: practice")
        .replace("  - {id: g, scenario: node-disconnect}\n", "");
    std::fs::write(&file, practice).unwrap();
    let c = load(Source::read(&file, "course").unwrap()).unwrap();
    assert_eq!(c.modules[0].time_limit(), None);
    assert_eq!(c.modules[3].hint_points(), 0, "hints off");
    assert!(c.modules[2].hint_points() > 0);
    assert_eq!(
        c.backends(),
        [BackendKind::Docker],
        "where every module runs"
    );
}

#[test]
fn the_schema_describes_modules_and_their_rules() {
    let s = json_schema();
    assert_eq!(s["title"], "sandbox course (sandbox/v1)");
    let module = &s["$defs"]["Module"]["properties"];
    for field in [
        "id",
        "scenario",
        "pass_mark",
        "time_limit",
        "unlock",
        "opens_at",
        "hints",
    ] {
        assert!(module[field].is_object(), "{field}: {module}");
    }
    assert_eq!(
        s["required"],
        serde_json::json!(["apiVersion", "kind", "metadata", "mode", "modules"])
    );
}

#[test]
fn a_bad_scenario_named_twice_is_reported_at_both_modules_and_once_in_itself() {
    let dir = tempfile::tempdir().unwrap();
    let bad = scenario::find_bundled("packet-loss")
        .unwrap()
        .text
        .replace("pass_mark: 70", "pass_mark: 170");
    std::fs::write(dir.path().join("loss.yaml"), bad).unwrap();
    let file = dir.path().join("course.yaml");
    let text = GOOD
        .replace("scenario: packet-loss", "scenario: loss.yaml")
        .replace("scenario: added-latency", "scenario: ./loss.yaml");
    std::fs::write(&file, text).unwrap();
    let Err(CourseError::Invalid { course, scenarios }) =
        load(Source::read(&file, "course").unwrap())
    else {
        panic!("invalid")
    };
    let ScenarioError::Invalid { diagnostics, .. } = course else {
        panic!("located")
    };
    let lines: Vec<u32> = diagnostics.iter().map(|d| d.line).collect();
    assert_eq!(lines, [10, 12], "{diagnostics:?}");
    assert_eq!(scenarios.len(), 1, "its own problems once: {scenarios:?}");
    assert!(
        diagnostics.iter().all(|d| d
            .message
            .ends_with("does not validate; its problems follow")),
        "{diagnostics:?}"
    );
}
