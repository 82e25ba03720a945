//! The workshop host in a real headless Chromium: a learner opens their link, reads the
//! briefing, starts their lab, takes a hint, writes findings in the form and sees the score
//! with per-check feedback; a second learner's page shows none of it; the instructor's
//! dashboard follows within 2 s and agrees with the CSV export. With `SANDBOX_SCREENSHOTS`
//! set to a directory, the pages are saved there (the learner's guide shows them).

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::class::*;
use common::*;
use fantoccini::{Client as Browser, ClientBuilder, Locator};

const COURSE: &str = "apiVersion: sandbox/v1
kind: Course
metadata:
  id: browser-test
  title: Debugging Go services on a real network
  summary: The browser test's course.
mode: practice
modules:
  - id: lossy-hop
    scenario: loss.yaml
    pass_mark: 50
  - id: slow-dependency
    scenario: added-latency
";

/// chromedriver, stopped when dropped.
struct Driver(Child, u16);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromedriver() -> Option<Driver> {
    let Ok(program) = which("chromedriver") else {
        assert!(
            std::env::var("CI").is_err(),
            "CI installs Chromium and chromedriver (scripts/setup.sh --test)"
        );
        eprintln!(
            "SKIPPED the browser test: no chromedriver (apt install chromium chromium-driver)"
        );
        return None;
    };
    let port = free_port();
    let child = std::process::Command::new(program)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(Driver(child, port))
}

async fn browser(driver: &Driver) -> Browser {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            // Root runs Chromium only without its sandbox; the pages are this test's own.
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.1))
        .await
        .expect("a Chromium session")
}

/// Waits until the element's text satisfies `ok`; returns the text.
async fn text_until(b: &Browser, css: &str, within: Duration, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(e) = b.find(Locator::Css(css)).await
            && let Ok(t) = e.text().await
        {
            if ok(&t) {
                return t;
            }
            last = t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("`{css}` never showed what was expected; last: {last:?}");
}

async fn screenshot(b: &Browser, name: &str) {
    if let Some(dir) = std::env::var_os("SANDBOX_SCREENSHOTS") {
        let png = b.screenshot().await.expect("a screenshot");
        std::fs::write(std::path::Path::new(&dir).join(name), png).expect("saving it");
    }
}

#[test]
fn a_learner_works_a_module_in_the_browser_and_the_dashboard_follows() {
    if !root_or_skip("a_learner_works_a_module_in_the_browser_and_the_dashboard_follows") {
        return;
    }
    let Some(driver) = chromedriver() else {
        return;
    };
    let _g = serial();
    let t = TestClass::create("browser-test", COURSE);
    let env = t.env();
    let _server = Server::start("browser-test", t.port, &[(env[0].0, env[0].1.as_str())]);
    let base = format!("http://127.0.0.1:{}", t.port);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ann = browser(&driver).await;
        let bob = browser(&driver).await;
        let teacher = browser(&driver).await;

        // The link signs in and lands on the course page; the second module is locked.
        ann.goto(&format!("{base}/l/{}", t.token_of("ann"))).await.unwrap();
        assert_eq!(ann.current_url().await.unwrap().path(), "/");
        text_until(&ann, "header", Duration::from_secs(10), |t| t.contains("ann")).await;
        let locked = ann
            .find(Locator::Css("nav button[data-module=slow-dependency]"))
            .await
            .unwrap();
        assert_eq!(locked.prop("disabled").await.unwrap().as_deref(), Some("true"));
        ann.find(Locator::Css("nav button[data-module=lossy-hop]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        ann.wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::XPath("//button[text()='Start the lab']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();

        // The briefing and live figures.
        let briefing = text_until(&ann, "#module pre", Duration::from_secs(90), |t| !t.is_empty()).await;
        assert!(briefing.len() > 40, "{briefing}");
        text_until(&ann, "#figures", Duration::from_secs(20), |t| t.contains("req/s")).await;
        screenshot(&ann, "learner-briefing.png").await;
        let lab_id = serde_json::from_str::<serde_json::Value>(
            &http(t.port, "GET", "/api/modules/lossy-hop", &[("Authorization", &format!("Bearer {}", t.token_of("ann")))], "").body,
        )
        .unwrap()["lab"]["id"]
            .as_str()
            .expect("ann's lab")
            .to_string();
        let lab = Lab::adopt(&lab_id);

        // The terminal: a shell in the lab, as ann's own unprivileged user.
        let private = sandbox::ids::lab_dir(&sandbox::ids::LabId::parse(&lab_id).unwrap()).join("private");
        text_until(&ann, ".xterm-rows", Duration::from_secs(20), |t| t.contains("ann@")).await;
        let keys = ann.find(Locator::Css(".xterm-helper-textarea")).await.unwrap();
        for command in [
            "ss -tni".to_string(),
            "id -u".into(),
            "nft list ruleset".into(),
            format!("ls {}", private.display()),
        ] {
            keys.send_keys(&format!("{command}\u{E007}")).await.unwrap();
        }
        let screen = text_until(&ann, ".xterm-rows", Duration::from_secs(20), |t| {
            t.contains("ESTAB") && t.contains("61000") && t.contains("Operation not permitted") && t.contains("Permission denied")
        })
        .await;
        assert!(screen.contains("rtt:"), "ss -tni shows TCP internals: {screen}");
        screenshot(&ann, "learner-terminal.png").await;

        // Bob's page shows his own module, with no lab: nothing of ann's.
        bob.goto(&format!("{base}/l/{}", t.token_of("bob"))).await.unwrap();
        bob.wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("nav button[data-module=lossy-hop]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        bob.wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::XPath("//button[text()='Start the lab']"))
            .await
            .unwrap();
        assert!(!bob.source().await.unwrap().contains(&lab_id), "bob's page names ann's lab");

        // A hint, evidence from a probe, and the findings form.
        ann.find(Locator::XPath("//button[text()='Take a hint']")).await.unwrap().click().await.unwrap();
        text_until(&ann, "#messages", Duration::from_secs(10), |t| t.starts_with("Hint 1")).await;
        lab.wait_fault("lossy-ledger", "active", Duration::from_secs(15));
        // A probe from the terminal: `sandbox probe` there asks the server.
        let keys = ann.find(Locator::Css(".xterm-helper-textarea")).await.unwrap();
        keys.send_keys("sandbox probe tcp-retrans --target payments --duration 3s\u{E007}").await.unwrap();
        text_until(&ann, ".xterm-rows", Duration::from_secs(30), |t| {
            t.contains("tcp-retrans on") && t.trim_end().ends_with("$")
        })
        .await;
        screenshot(&ann, "learner-probe.png").await;
        // Reopening the module opens a new terminal whose `sandbox probe` still reaches the
        // server: the old session's ending does not take the new one's socket.
        ann.find(Locator::Css("nav button[data-module=lossy-hop]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        text_until(&ann, ".xterm-rows", Duration::from_secs(20), |t| t.contains("ann@")).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        ann.find(Locator::Css(".xterm-helper-textarea"))
            .await
            .unwrap()
            .send_keys("sandbox probe tcp-connect --duration 1s\u{E007}")
            .await
            .unwrap();
        text_until(&ann, ".xterm-rows", Duration::from_secs(30), |t| t.contains("tcp-connect on")).await;
        let revealed = sandbox().args(["status", &lab_id, "--json", "--reveal"]).output().unwrap();
        let revealed: serde_json::Value = serde_json::from_slice(&revealed.stdout).unwrap();
        let percent = revealed["lab"]["faults"][0]["description"]
            .as_str()
            .and_then(|d| d.split_once('%'))
            .map(|(n, _)| n.to_string())
            .expect("the drawn loss");
        let form = ann.find(Locator::Css("#findings")).await.unwrap();
        let template = form.prop("value").await.unwrap().unwrap_or_default();
        assert!(template.contains("root_cause"), "the form starts from the template: {template}");
        form.clear().await.unwrap();
        form.send_keys(&format!(
            "findings:\n  - root_cause: packet-loss\n    where:\n      link: {{from: payments, to: ledger}}\n    magnitude: {{percent: {percent}}}\n"
        ))
        .await
        .unwrap();
        teacher.goto(&format!("{base}/i/{}", t.instructor)).await.unwrap();
        assert_eq!(teacher.current_url().await.unwrap().path(), "/instructor");
        text_until(&teacher, "#rows", Duration::from_secs(10), |t| t.contains("1 hint(s)")).await;
        ann.find(Locator::XPath("//button[text()='Submit findings']")).await.unwrap().click().await.unwrap();
        let submitted = Instant::now();
        let verdict = text_until(&ann, "#messages", Duration::from_secs(20), |t| t.starts_with("Score")).await;
        assert!(verdict.contains("passed") && !verdict.contains("not passed"), "{verdict}");
        let checks = ann.find(Locator::Css("#checks")).await.unwrap().text().await.unwrap();
        assert!(checks.contains("root_cause"), "per-check feedback: {checks}");
        assert!(
            checks.contains("evidence: tcp-retrans: 15/15"),
            "the terminal's probe run is the lab's evidence: {checks}"
        );
        screenshot(&ann, "learner-score.png").await;

        // The dashboard shows the submission within 2 s; the CSV export agrees with it.
        let row = text_until(&teacher, "#rows", Duration::from_secs(10), |t| t.contains("1 submitted")).await;
        let lag = submitted.elapsed();
        assert!(lag <= Duration::from_secs(2), "the dashboard took {lag:?}");
        screenshot(&teacher, "instructor-dashboard.png").await;
        let csv = http(t.port, "GET", "/api/class.csv", &[("Authorization", &format!("Bearer {}", t.instructor))], "").body;
        let line = csv.lines().find(|l| l.starts_with("ann,false,lossy-hop,")).expect("ann's row");
        let fields: Vec<&str> = line.split(',').collect();
        let (score, max) = (fields[7], fields[8]);
        assert!(row.contains(&format!("{score}/{max}")), "dashboard {row:?} vs CSV {line}");
        assert_eq!(fields[9], "true", "{line}");
        // The next module opened for ann, and not for bob.
        ann.refresh().await.unwrap();
        let next = ann.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("nav button[data-module=slow-dependency]")).await.unwrap();
        assert_eq!(next.prop("disabled").await.unwrap().as_deref(), Some("false"));
        let recordings = t.dir("browser-test").join("recordings");
        let cast: String = std::fs::read_dir(&recordings)
            .unwrap()
            .flatten()
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect();
        assert!(cast.starts_with("{\"") && cast.contains("\"version\":2"), "an asciicast v2 header: {cast:.200}");
        assert!(cast.contains("ESTAB"), "the session is recorded");
        for b in [ann, bob, teacher] {
            let _ = b.close().await;
        }
        drop(lab);
    });
}
