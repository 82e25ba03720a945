use std::io::Write;

use super::*;

fn roster(text: &str) -> Result<Vec<Learner>, RosterError> {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(text.as_bytes()).expect("write");
    read_roster(f.path())
}

#[test]
fn a_roster_is_read_by_its_name_column() {
    let l = roster("email,name\nann@example.org,ann\nbo@example.org, bo.k \n").expect("valid");
    let names: Vec<&str> = l.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["ann", "bo.k"]);
}

#[test]
fn roster_problems_name_the_line_and_field() {
    let e = roster("name\nann\nann\n").expect_err("duplicate");
    assert_eq!(e.line, 3, "{e}");
    assert!(e.message.contains("listed twice"), "{e}");
    let e = roster("name\nann\nbad name!\n").expect_err("bad name");
    assert_eq!(e.line, 3, "{e}");
    assert!(e.message.contains("field `name`"), "{e}");
    let e = roster("email\nann@example.org\n").expect_err("no name column");
    assert_eq!(e.line, 1);
    assert!(e.message.contains("no `name` column"), "{e}");
    let e = roster("name\n").expect_err("empty");
    assert!(e.message.contains("no learners"), "{e}");
}

fn class(mode: Mode) -> Class {
    Class {
        name: "c".into(),
        course: "network-debugging-workshop".into(),
        course_id: "network-debugging-workshop".into(),
        mode,
        backend: BackendKind::Netns,
        created_ms: 0,
        instructor_token_sha256: token_hash("teach"),
        learners: vec![LearnerRecord {
            name: "ann".into(),
            token_sha256: token_hash("ann-secret"),
            revoked_ms: None,
        }],
        opened: BTreeMap::new(),
    }
}

#[test]
fn tokens_are_checked_by_hash_and_revocation_ends_them() {
    let mut c = class(Mode::Practice);
    assert_eq!(
        c.learner_of("ann-secret").map(|l| l.name.as_str()),
        Some("ann")
    );
    assert!(c.learner_of("teach").is_none());
    assert!(c.is_instructor("teach") && !c.is_instructor("ann-secret"));
    c.revoke("ann").expect("known learner");
    assert!(c.learner_of("ann-secret").is_none());
    assert!(matches!(c.revoke("zed"), Err(ClassError::NoLearner(_))));
    let (a, ha) = new_token();
    let (b, _) = new_token();
    assert_ne!(a, b);
    assert!(a.len() >= 32);
    assert_eq!(token_hash(&a), ha);
}

#[test]
fn modules_open_after_the_previous_one_or_when_the_instructor_opens_them() {
    let course =
        crate::course::load(crate::course::resolve("network-debugging-workshop").expect("bundled"))
            .expect("valid");
    let mut c = class(Mode::Practice);
    let mut p = Progress::new();
    assert!(is_open(&c, &course, &p, 0, 0));
    assert!(!is_open(&c, &course, &p, 1, 0));
    let first = course.modules[0].module.id.to_string();
    p.insert(
        first.clone(),
        ModuleProgress {
            passed: Some(false),
            submitted_ms: Some(1),
            ..Default::default()
        },
    );
    assert!(
        !is_open(&c, &course, &p, 1, 0),
        "a failed module keeps the next closed"
    );
    c.mode = Mode::Certification;
    assert!(
        is_open(&c, &course, &p, 1, 0),
        "in certification a submission opens the next"
    );
    c.mode = Mode::Practice;
    p.insert(
        first,
        ModuleProgress {
            passed: Some(true),
            ..Default::default()
        },
    );
    assert!(is_open(&c, &course, &p, 1, 0));
    let by_instructor = course
        .modules
        .iter()
        .position(|m| *m.module.unlock == Unlock::Instructor)
        .expect("the workshop has instructor-opened modules");
    assert!(!is_open(&c, &course, &p, by_instructor, 0));
    c.opened
        .insert(course.modules[by_instructor].module.id.to_string(), 1);
    assert!(is_open(&c, &course, &p, by_instructor, 0));
    assert!(!is_open(&c, &course, &p, course.modules.len(), 0));
}
