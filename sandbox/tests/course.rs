//! Courses through the real binary: every bundled course checks, shows its modules, and runs
//! on the default backend; the documented example is a valid course; a course's problems and
//! its scenarios' are located in their files.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every file in `courses/`.
fn course_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("courses"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

#[test]
fn every_file_in_courses_is_a_valid_course_and_the_default_backend_has_both_modes() {
    let files = course_files();
    assert!(files.len() >= 2, "the bundled courses: {files:?}");
    let mut on_netns = Vec::new();
    for file in &files {
        assert_eq!(
            file.extension().and_then(|e| e.to_str()),
            Some("yaml"),
            "courses/ holds course files only: {}",
            file.display()
        );
        let out = sandbox()
            .args(["course", "check"])
            .arg(file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}: {}", file.display(), text(&out));
        let source = sandbox::scenario::Source::read(file, "course").unwrap();
        let c = sandbox::course::load(source).unwrap();
        let stem = file.file_stem().unwrap().to_str().unwrap();
        assert_eq!(
            c.course.metadata.id.as_str(),
            stem,
            "file name and metadata.id agree"
        );
        assert!(!c.backends().is_empty(), "{stem} runs on some backend");
        if c.backends()
            .contains(&sandbox::scenario::BackendKind::Netns)
        {
            on_netns.push(*c.course.mode);
        }
    }
    // A class on one machine, without Docker or a cluster, has a workshop and an exam.
    use sandbox::course::Mode;
    assert!(
        on_netns.contains(&Mode::Practice) && on_netns.contains(&Mode::Certification),
        "{on_netns:?}"
    );
}

#[test]
fn bundled_courses_are_listed_and_checked_by_id_from_anywhere() {
    let elsewhere = tempfile::tempdir().unwrap();
    let out = sandbox()
        .args(["course", "list"])
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let listed = text(&out);
    for file in course_files() {
        let id = file.file_stem().unwrap().to_str().unwrap().to_string();
        assert!(listed.contains(&id), "`course list` shows {id}:\n{listed}");
        assert!(!listed.contains("invalid"), "{listed}");
        let out = sandbox()
            .args(["course", "check", &id])
            .current_dir(elsewhere.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{id}: {}", text(&out));
        assert!(
            text(&out).starts_with(&format!("ok  bundled:{id}: ")),
            "{}",
            text(&out)
        );
    }
}

#[test]
fn course_check_shows_the_modules_as_a_table() {
    let out = sandbox()
        .args(["course", "check", "network-debugging-workshop"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout));
}

#[test]
fn a_bad_course_and_its_bad_scenario_are_both_located() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = std::fs::read_to_string(repo().join("scenarios/packet-loss.yaml"))
        .unwrap()
        .replace("pass_mark: 70", "pass_mark: 700");
    std::fs::write(dir.path().join("loss.yaml"), scenario).unwrap();
    let course = dir.path().join("course.yaml");
    std::fs::write(
        &course,
        "apiVersion: sandbox/v1
kind: Course
metadata: {id: broken, title: Broken, summary: s}
mode: practice
modules:
  - id: one
    scenario: loss.yaml
  - id: two
    scenario: packet-loss
    pass_mark: 101
",
    )
    .unwrap();
    let good = repo().join("courses/network-certification.yaml");
    let out = sandbox()
        .args(["course", "check"])
        .arg(&course)
        .arg(&good)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let c = course.display();
    let s = dir.path().join("loss.yaml");
    for expected in [
        format!(
            "error: {c}:7:15: modules[0].scenario: the scenario `loss.yaml` does not validate; its problems follow"
        ),
        format!(
            "error: {c}:10:16: modules[1].pass_mark: expected points out of 100, from 0 to 100"
        ),
        format!("2 problems in {c}"),
        format!(
            "error: {}:75:12: pass_mark: expected points out of 100",
            s.display()
        ),
        format!("1 problem in {}", s.display()),
        "error: 1 of 2 course files are invalid".to_string(),
    ] {
        assert!(
            stderr.contains(&expected),
            "expected `{expected}` in:\n{stderr}"
        );
    }
    // The good course given beside it is still checked and shown.
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ok  ") && text(&out).contains("red-herring"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_documented_example_is_a_valid_course() {
    let doc = std::fs::read_to_string(repo().join("docs/course-format.md")).unwrap();
    let start = doc
        .find("```yaml\napiVersion")
        .expect("an example in docs/course-format.md")
        + "```yaml\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let file = write_temp("documented-course.yaml", &doc[start..end]);
    let out = sandbox()
        .args(["course", "check", file.as_str()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the example in docs/course-format.md must check:\n{}",
        text(&out)
    );
}

#[test]
fn the_instructors_guide_shows_what_course_check_prints() {
    let guide = std::fs::read_to_string(repo().join("docs/instructors-guide.md")).unwrap();
    let out = sandbox()
        .args(["course", "check", "network-certification"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        guide.contains(&format!(
            "$ sandbox course check network-certification\n{printed}```"
        )),
        "docs/instructors-guide.md, \"Courses\", shows this output:\n{printed}"
    );
}

#[test]
fn course_check_json_gives_every_module_the_rules_in_force() {
    let out = sandbox()
        .args(["course", "check", "--json", "network-certification"])
        .arg(repo().join("courses/network-debugging-workshop.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let courses: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let [exam, workshop] = courses.as_slice() else {
        panic!("two courses: {courses:?}")
    };
    assert_eq!(exam["mode"], "certification");
    assert_eq!(
        exam["backends"],
        serde_json::json!(["netns", "docker", "kube"])
    );
    let module = |c: &serde_json::Value, id: &str| {
        c["modules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap_or_else(|| panic!("module {id} in {c}"))
            .clone()
    };
    // Set by the module.
    let resets = module(exam, "resets");
    assert_eq!(
        (
            resets["pass_mark"].as_u64(),
            resets["time_limit_s"].as_u64()
        ),
        (Some(80), Some(1500))
    );
    // The scenario's own (slow-lookups: pass_mark 70, time_limit 30m).
    let lookups = module(exam, "lookups");
    assert_eq!(
        (
            lookups["pass_mark"].as_u64(),
            lookups["time_limit_s"].as_u64()
        ),
        (Some(70), Some(1800))
    );
    assert_eq!(lookups["scenario_source"], "bundled:slow-lookups");
    let last = module(exam, "red-herring");
    assert_eq!(
        (last["hints"].as_bool(), last["hint_points"].as_u64()),
        (Some(false), Some(0))
    );
    assert_eq!(workshop["mode"], "practice");
    assert_eq!(module(workshop, "lossy-hop")["unlock"], "after-previous");
    assert_eq!(module(workshop, "flipped-bits")["unlock"], "instructor");
}
