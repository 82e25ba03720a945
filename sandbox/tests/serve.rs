//! `sandbox serve` with the real binary: a class of two learners, each working in their own
//! real lab through the HTTP API, confined to it; the instructor's table, CSV and metrics;
//! revocation; a server killed and restarted; nothing left after `down --all`.

mod common;

use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::class::*;
use common::*;

const COURSE: &str = "apiVersion: sandbox/v1
kind: Course
metadata:
  id: serve-test
  title: Serve test
  summary: Two modules.
mode: practice
modules:
  - id: lossy
    scenario: loss.yaml
    pass_mark: 50
  - id: second
    scenario: added-latency
";

#[test]
fn a_class_is_served_and_each_learner_reaches_only_their_own_lab() {
    if !root_or_skip("a_class_is_served_and_each_learner_reaches_only_their_own_lab") {
        return;
    }
    let _g = serial();
    let t = TestClass::create("serve-test", COURSE);
    let (port, env) = (t.port, t.env());
    let env = [(env[0].0, env[0].1.as_str())];
    let (ann_token, bob_token, instructor_token) =
        (t.token_of("ann"), t.token_of("bob"), t.instructor.clone());
    let server = Server::start("serve-test", port, &env);
    let ann = Client {
        port,
        auth: format!("Bearer {ann_token}"),
    };
    let bob = Client {
        port,
        auth: format!("Bearer {bob_token}"),
    };
    let teacher = Client {
        port,
        auth: format!("Bearer {instructor_token}"),
    };

    // The link signs the browser in with a cookie the API accepts.
    let link = http(port, "GET", &format!("/l/{ann_token}"), &[], "");
    assert_eq!(link.status, 303);
    let cookie = link.header("set-cookie").expect("a cookie").to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let me = http(port, "GET", "/api/me", &[("Cookie", &pair)], "");
    assert_eq!(me.status, 200, "{}", me.body);
    let me = me.json();
    assert_eq!(me["learner"], "ann");
    assert_eq!(me["modules"][0]["open"], true);
    assert_eq!(
        me["modules"][1]["open"], false,
        "opens after the first is passed"
    );
    assert_eq!(http(port, "GET", "/l/not-a-token", &[], "").status, 404);
    assert!(
        http(port, "GET", "/", &[], "").body.contains("/api/me"),
        "the page is served"
    );

    // Locked modules do not start; the first one starts a real lab.
    assert_eq!(ann.post("/api/modules/second/start", "").status, 403);
    let started = ann.post("/api/modules/lossy/start", "");
    assert_eq!(started.status, 200, "{}", started.body);
    let lab_id = started.json()["lab"]["id"]
        .as_str()
        .expect("a lab")
        .to_string();
    let lab = Lab::adopt(&lab_id);
    let m = ann.get("/api/modules/lossy").json();
    assert_eq!(m["lab"]["id"], lab_id.as_str());
    assert!(
        m["lab"]["briefing"].as_str().is_some_and(|b| !b.is_empty()),
        "{m}"
    );
    assert!(
        m["lab"]["faults"][0].get("effect").is_none(),
        "the learner's view hides the fault: {m}"
    );

    // Bob reaches none of it: his module has no lab, and everything needing one says so.
    let b = bob.get("/api/modules/lossy").json();
    assert!(b["lab"].is_null(), "bob sees no lab of ann's: {b}");
    assert_eq!(bob.post("/api/modules/lossy/hint", "").status, 409);
    assert_eq!(
        bob.post("/api/modules/lossy/submit", "findings: []").status,
        409
    );
    assert_eq!(bob.get("/api/modules/lossy/findings-template").status, 409);
    assert_eq!(bob.post("/api/modules/lossy/stop", "").status, 200);
    assert!(
        ann.get("/api/modules/lossy").json()["lab"]["id"] == lab_id.as_str(),
        "bob's stop left ann's lab alone"
    );
    for path in ["/api/class", "/api/class.csv", "/metrics"] {
        assert_eq!(bob.get(path).status, 403, "{path} is the instructor's");
        assert_eq!(
            http(port, "GET", path, &[], "").status,
            401,
            "{path} needs a token"
        );
    }
    assert_eq!(bob.post("/api/class/learners/ann/revoke", "").status, 403);
    assert_eq!(bob.post("/api/class/modules/second/open", "").status, 403);
    assert_eq!(
        http(
            port,
            "GET",
            "/api/me",
            &[("Authorization", "Bearer forged")],
            ""
        )
        .status,
        401
    );

    // Another site cannot act with a learner's cookie; bodies are bounded.
    let foreign = http(
        port,
        "POST",
        "/api/modules/lossy/hint",
        &[("Cookie", &pair), ("Origin", "http://evil.example")],
        "",
    );
    assert_eq!(foreign.status, 403, "{}", foreign.body);
    let huge = "x".repeat(300 * 1024);
    assert_eq!(ann.post("/api/modules/lossy/submit", &huge).status, 413);
    let bad = ann.post(
        "/api/modules/lossy/submit",
        "findings:\n  - root_cause: gremlins\n",
    );
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(
        bad.json()["error"].as_str().unwrap().contains("findings:"),
        "{}",
        bad.body
    );

    // Ann takes a hint, gathers evidence, and submits the right answer.
    let hint = ann.post("/api/modules/lossy/hint", "");
    assert_eq!(hint.status, 200, "{}", hint.body);
    assert_eq!(hint.json()["number"], 1);
    lab.wait_fault("lossy-ledger", "active", Duration::from_secs(15));
    // Probes run on the server, scoped to the learner's lab, and bounded.
    let probe = ann.post_json(
        "/api/modules/lossy/probe",
        r#"{"probe": "tcp-retrans", "target": "payments", "seconds": 3}"#,
    );
    assert_eq!(probe.status, 200, "{}", probe.body);
    let run = probe.json();
    assert_eq!(run["ok"], true, "{run}");
    assert!(
        run["output"].as_str().unwrap().contains("tcp-retrans on"),
        "{run}"
    );
    let bad = ann.post_json(
        "/api/modules/lossy/probe",
        r#"{"probe": "tcp-retrans", "seconds": 999}"#,
    );
    assert_eq!(bad.status, 422, "{}", bad.body);
    let bad = ann.post_json("/api/modules/lossy/probe", r#"{"probe": "rm -rf"}"#);
    assert_eq!(bad.status, 422, "{}", bad.body);
    let bad = ann.post_json(
        "/api/modules/lossy/probe",
        r#"{"probe": "tcp-retrans", "target": "../x"}"#,
    );
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(
        bob.post_json("/api/modules/lossy/probe", r#"{"probe": "tcp-retrans"}"#)
            .status,
        409
    );
    let template = ann.get("/api/modules/lossy/findings-template");
    assert_eq!(template.status, 200);
    assert!(template.body.contains("packet-loss"), "{}", template.body);
    let revealed = sandbox()
        .args(["status", &lab_id, "--json", "--reveal"])
        .output()
        .unwrap();
    let revealed: serde_json::Value = serde_json::from_slice(&revealed.stdout).unwrap();
    let fault = &revealed["lab"]["faults"][0];
    let percent: f64 = fault["description"]
        .as_str()
        .and_then(|d| d.split_once('%'))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("the drawn loss in {fault}"));
    let right = format!(
        "findings:\n  - root_cause: packet-loss\n    where:\n      link: {{from: payments, to: ledger}}\n    magnitude: {{percent: {percent}}}\n"
    );
    let graded = ann.post("/api/modules/lossy/submit", &right);
    assert_eq!(graded.status, 200, "{}", graded.body);
    let g = graded.json();
    assert_eq!(g["module_passed"], true, "{g}");
    assert_eq!(g["hint_cost"], 10, "{g}");
    assert!(
        g["items"].as_array().is_some_and(|i| !i.is_empty()),
        "per-check feedback: {g}"
    );
    let me = ann.get("/api/me").json();
    assert_eq!(
        me["modules"][1]["open"], true,
        "passing opens the next module: {me}"
    );

    // The instructor's table, CSV, metrics and `class status` agree.
    let class = teacher.get("/api/class").json();
    let row = |c: &serde_json::Value, who: &str| {
        c["learners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["learner"] == who)
            .cloned()
            .unwrap()
    };
    let ann_row = row(&class, "ann");
    assert_eq!(ann_row["modules"][0]["submissions"], 1);
    assert_eq!(ann_row["modules"][0]["hints"], 1);
    assert_eq!(
        ann_row["modules"][0]["probes"], 1,
        "refused requests are not runs"
    );
    assert_eq!(ann_row["modules"][0]["passed"], true);
    assert_eq!(ann_row["modules"][0]["score"], g["score"]);
    assert_eq!(row(&class, "bob")["modules"][0]["starts"], 0);
    let cli = sandbox()
        .args(["class", "status", "serve-test", "--json"])
        .envs(env)
        .output()
        .unwrap();
    let cli: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(
        cli["learners"], class["learners"],
        "the dashboard and `class status` agree"
    );
    let csv = teacher.get("/api/class.csv").body;
    let score = g["score"].as_u64().unwrap();
    let max = g["max"].as_u64().unwrap();
    assert!(
        csv.contains(&format!("ann,false,lossy,true,1,1,1,{score},{max},true")),
        "{csv}"
    );
    let metrics = teacher.get("/metrics").body;
    assert!(metrics.contains("sandbox_module_submissions_total{class=\"serve-test\",learner=\"ann\",module=\"lossy\"} 1"), "{metrics}");
    assert!(metrics.contains(&format!("sandbox_lab_requests_per_second{{class=\"serve-test\",learner=\"ann\",module=\"lossy\",lab=\"{lab_id}\"}}")), "{metrics}");

    scraped_by_prometheus(port, &instructor_token, &lab_id);

    // Revoking ends a link at once; a killed server comes back with the class intact.
    let revoke = sandbox()
        .args(["class", "revoke", "serve-test", "bob"])
        .envs(env)
        .output()
        .unwrap();
    assert!(revoke.status.success(), "{}", text(&revoke));
    assert_eq!(bob.get("/api/me").status, 401);
    server.kill();
    let _server = Server::start("serve-test", port, &env);
    let me = ann.get("/api/me").json();
    assert_eq!(me["modules"][0]["progress"]["passed"], true, "{me}");
    assert_eq!(
        me["modules"][0]["lab"]["id"],
        lab_id.as_str(),
        "the lab outlived the server"
    );
    assert_eq!(bob.get("/api/me").status, 401, "revocation is kept");

    let down = sandbox().args(["down", "--all"]).output().unwrap();
    assert!(down.status.success(), "{}", text(&down));
    assert!(leftovers(&lab_id).is_empty(), "{:?}", leftovers(&lab_id));
    assert!(ann.get("/api/modules/lossy").json()["lab"].is_null());
}

/// A real Prometheus scrapes `/metrics` with the instructor's token; the values are read
/// back through Prometheus' own HTTP API.
fn scraped_by_prometheus(port: u16, token: &str, lab_id: &str) {
    let Ok(prometheus) = which("prometheus") else {
        assert!(
            std::env::var("CI").is_err(),
            "CI installs Prometheus (scripts/setup.sh --test)"
        );
        eprintln!("SKIPPED the Prometheus scrape: no `prometheus` (apt install prometheus)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: sandbox\n    authorization: {{type: Bearer, credentials: {token}}}\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
        ),
    )
    .unwrap();
    let web = free_port();
    let mut child = std::process::Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let query = |q: &str| {
        let r = http(web, "GET", &format!("/api/v1/query?query={q}"), &[], "");
        (r.status == 200)
            .then(|| serde_json::from_str::<serde_json::Value>(&r.body).ok())
            .flatten()
            .and_then(|v| v["data"]["result"].as_array().cloned())
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let (submissions, rate) = loop {
        let up = TcpStream::connect(("127.0.0.1", web)).is_ok();
        let s = if up {
            query("sandbox_module_submissions_total")
        } else {
            vec![]
        };
        let r = if up {
            query("sandbox_lab_requests_per_second")
        } else {
            vec![]
        };
        if !s.is_empty() && !r.is_empty() {
            break (s, r);
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus scraped nothing in 30 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let _ = child.kill();
    let _ = child.wait();
    let ann = submissions
        .iter()
        .find(|s| s["metric"]["learner"] == "ann" && s["metric"]["module"] == "lossy")
        .unwrap_or_else(|| panic!("{submissions:?}"));
    assert_eq!(ann["value"][1], "1", "{ann}");
    assert_eq!(ann["metric"]["job"], "sandbox");
    let lab = &rate[0];
    assert_eq!(lab["metric"]["lab"], lab_id, "{lab}");
    let rps: f64 = lab["value"][1].as_str().unwrap().parse().unwrap();
    assert!(rps > 10.0, "the lab's load as Prometheus read it: {lab}");
}

#[test]
fn a_bad_roster_is_located_and_leaves_no_class() {
    let home = tempfile::tempdir().unwrap();
    let classes = home.path().join("classes");
    let roster = home.path().join("roster.csv");
    std::fs::write(&roster, "name\nann\nann\n").unwrap();
    let out = sandbox()
        .args(["class", "create", "network-debugging-workshop", "--roster"])
        .arg(&roster)
        .args(["--name", "bad-roster"])
        .env("SANDBOX_CLASS_DIR", &classes)
        .output()
        .unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(
        all.contains(&format!(
            "{}:3: field `name`: `ann` is listed twice",
            roster.display()
        )),
        "{all}"
    );
    assert!(!classes.join("bad-roster").exists(), "nothing half-created");
    std::fs::write(&roster, "name\nann\n").unwrap();
    let out = sandbox()
        .args(["class", "create", "kubernetes-networking", "--roster"])
        .arg(&roster)
        .args(["--name", "wrong-backend"])
        .env("SANDBOX_CLASS_DIR", &classes)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("cannot run on netns"), "{}", text(&out));
    let out = sandbox()
        .args(["class", "status", "no-such-class"])
        .env("SANDBOX_CLASS_DIR", &classes)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("no class named `no-such-class`"),
        "{}",
        text(&out)
    );
}

const CERTIFICATION: &str = "apiVersion: sandbox/v1
kind: Course
metadata:
  id: serve-exam
  title: Serve exam
  summary: One graded incident, one that runs out of time.
mode: certification
modules:
  - id: lossy
    scenario: loss.yaml
    unlock: instructor
    time_limit: 10m
  - id: hurried
    scenario: loss.yaml
    unlock: instructor
    time_limit: 1s
";

#[test]
fn a_certification_class_grades_on_the_server_and_signs_results_the_candidate_cannot_see() {
    if !root_or_skip(
        "a_certification_class_grades_on_the_server_and_signs_results_the_candidate_cannot_see",
    ) {
        return;
    }
    let _g = serial();
    let t = TestClass::create("serve-exam", CERTIFICATION);
    let env = t.env();
    let env = [(env[0].0, env[0].1.as_str())];
    let _server = Server::start("serve-exam", t.port, &env);
    let ann = Client {
        port: t.port,
        auth: format!("Bearer {}", t.token_of("ann")),
    };
    let proctor = Client {
        port: t.port,
        auth: format!("Bearer {}", t.instructor),
    };

    assert_eq!(
        ann.post("/api/modules/lossy/start", "").status,
        403,
        "the proctor opens modules"
    );
    assert_eq!(
        proctor.post("/api/class/modules/lossy/open", "").status,
        200
    );
    let started = ann.post("/api/modules/lossy/start", "");
    assert_eq!(started.status, 200, "{}", started.body);
    let lab_id = started.json()["lab"]["id"].as_str().unwrap().to_string();
    let lab = Lab::adopt(&lab_id);
    let learner_view = sandbox()
        .args(["status", &lab_id, "--json"])
        .output()
        .unwrap();
    let learner_view: serde_json::Value = serde_json::from_slice(&learner_view.stdout).unwrap();
    assert!(
        learner_view["lab"]["seed"].is_null(),
        "the draw is sealed: {learner_view}"
    );
    assert_eq!(learner_view["lab"]["candidate"], "ann");

    let answer = "findings:\n  - root_cause: packet-loss\n    where:\n      link: {from: payments, to: ledger}\n";
    let submitted = ann.post("/api/modules/lossy/submit", answer);
    assert_eq!(submitted.status, 200, "{}", submitted.body);
    let s = submitted.json();
    assert_eq!(s["submitted"], true);
    assert!(
        s.get("score").is_none() && s.get("items").is_none(),
        "no score for the candidate: {s}"
    );
    let me = ann.get("/api/me").json();
    let p = &me["modules"][0]["progress"];
    assert_eq!(p["submissions"], 1);
    assert!(p["score"].is_null() && p["passed"].is_null(), "{me}");

    // The proctor sees the grade; the signed result verifies with the class's public key,
    // and any change to it does not.
    let class = proctor.get("/api/class").json();
    let cell = &class["learners"][0]["modules"][0];
    assert!(cell["score"].as_u64().is_some(), "{class}");
    let results: Vec<_> = std::fs::read_dir(t.dir("serve-exam").join("results"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(results.len(), 1, "{results:?}");
    let public = t.dir("serve-exam").join("instructor.pub");
    let verify = |path: &std::path::Path| {
        sandbox()
            .args(["grade", "--verify"])
            .arg(path)
            .arg("--public")
            .arg(&public)
            .output()
            .unwrap()
    };
    let ok = verify(&results[0]);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(
        text(&ok).contains(&format!("scored {}/", cell["score"])),
        "{}",
        text(&ok)
    );
    let mut forged: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&results[0]).unwrap()).unwrap();
    forged["grade"]["score"] = serde_json::json!(100);
    let forged_path = t.home.path().join("forged.json");
    std::fs::write(&forged_path, serde_json::to_vec(&forged).unwrap()).unwrap();
    let refused = verify(&forged_path);
    assert!(
        !refused.status.success(),
        "a changed score must not verify: {}",
        text(&refused)
    );

    // The server enforces the time limit: past it, submissions are closed.
    assert_eq!(
        proctor.post("/api/class/modules/hurried/open", "").status,
        200
    );
    let hurried = ann.post("/api/modules/hurried/start", "");
    assert_eq!(hurried.status, 200, "{}", hurried.body);
    let hurried_lab = Lab::adopt(hurried.json()["lab"]["id"].as_str().unwrap());
    assert!(
        ann.get("/api/modules/lossy").json()["lab"].is_null(),
        "one lab at a time"
    );
    std::thread::sleep(Duration::from_secs(2));
    let late = ann.post("/api/modules/hurried/submit", answer);
    assert_eq!(late.status, 403, "{}", late.body);
    assert!(late.body.contains("is up"), "{}", late.body);
    drop(hurried_lab);
    drop(lab);
    assert!(leftovers(&lab_id).is_empty());
}

#[test]
fn a_quiet_learners_lab_is_taken_down_and_their_progress_kept() {
    if !root_or_skip("a_quiet_learners_lab_is_taken_down_and_their_progress_kept") {
        return;
    }
    let _g = serial();
    let t = TestClass::create("serve-idle", COURSE);
    let env = t.env();
    let _server = Server::start_with(
        "serve-idle",
        t.port,
        &[(env[0].0, env[0].1.as_str())],
        &["--idle-stop", "3s"],
    );
    let ann = Client {
        port: t.port,
        auth: format!("Bearer {}", t.token_of("ann")),
    };
    let started = ann.post("/api/modules/lossy/start", "");
    assert_eq!(started.status, 200, "{}", started.body);
    let lab_id = started.json()["lab"]["id"].as_str().unwrap().to_string();
    let _lab = Lab::adopt(&lab_id);
    // While the learner's page asks, the lab stays up.
    for _ in 0..5 {
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(
            ann.get("/api/modules/lossy").json()["lab"]["id"],
            lab_id.as_str()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while !leftovers(&lab_id).is_empty() {
        assert!(Instant::now() < deadline, "a quiet learner's lab stayed up");
        std::thread::sleep(Duration::from_millis(500));
    }
    let me = ann.get("/api/me").json();
    let p = &me["modules"][0]["progress"];
    assert_eq!(p["starts"], 1, "{me}");
    assert_eq!(p["idle_stops"], 1, "{me}");
    assert!(me["modules"][0]["lab"].is_null());
    let again = ann.post("/api/modules/lossy/start", "");
    assert_eq!(
        again.status, 200,
        "opening the module again starts a lab: {}",
        again.body
    );
    let _again = Lab::adopt(again.json()["lab"]["id"].as_str().unwrap());
}

#[test]
fn a_class_is_served_over_https_with_a_secure_cookie() {
    if !root_or_skip("a_class_is_served_over_https_with_a_secure_cookie") {
        return;
    }
    let t = TestClass::create("serve-tls", COURSE);
    let (cert, key) = (
        t.home.path().join("cert.pem"),
        t.home.path().join("key.pem"),
    );
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let env = t.env();
    let _server = Server::start_with(
        "serve-tls",
        t.port,
        &[(env[0].0, env[0].1.as_str())],
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let url = format!("https://127.0.0.1:{}/l/{}", t.port, t.token_of("ann"));
    let curl = |extra: &[&str]| {
        std::process::Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-D", "-", "--max-time", "10"])
            .args(extra)
            .arg(&url)
            .output()
            .unwrap()
    };
    let trusted = curl(&["--cacert", cert.to_str().unwrap()]);
    let head = text(&trusted);
    assert!(trusted.status.success(), "{head}");
    assert!(head.starts_with("HTTP/1.1 303"), "{head}");
    assert!(
        head.contains("HttpOnly; SameSite=Strict; Path=/; Secure"),
        "{head}"
    );
    let untrusted = curl(&[]);
    assert!(
        !untrusted.status.success(),
        "a client that does not trust the certificate refuses it"
    );
    let mut plain = TcpStream::connect(("127.0.0.1", t.port)).unwrap();
    use std::io::{Read, Write};
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !answer.starts_with(b"HTTP/"),
        "no plain HTTP on an HTTPS port"
    );
}
