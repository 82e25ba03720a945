//! The Kubernetes backend on a real kind cluster (`SANDBOX_TEST_CLUSTER`, which scripts/test
//! makes): a scenario's lab is a namespace of pods that resolve each other through cluster
//! DNS; its faults act on the pods' packets; `down` (also after the supervisor was killed at
//! any step) leaves no namespace of the lab and nothing a user made is touched.

mod common;

use std::time::{Duration, Instant};

use sandbox::backend::BackendKind;

use common::{Lab, backend_or_skip, kubectl, lab_namespaces, sandbox, serial, test_cluster, text};

const KUBE: BackendKind = BackendKind::Kube;

#[test]
fn a_scenario_runs_as_pods_that_find_each_other_through_cluster_dns() {
    if !backend_or_skip(
        "a_scenario_runs_as_pods_that_find_each_other_through_cluster_dns",
        KUBE,
    ) {
        return;
    }
    let cluster = test_cluster().unwrap();
    let _g = serial();
    let lab = Lab::start_on("packet-loss", 1, KUBE);
    let status = lab.status();
    assert_eq!(status["lab"]["backend"], "kube", "{status}");
    assert_eq!(
        lab_namespaces(&cluster, &lab.id),
        vec![format!("namespace/sbx-{}", lab.id)]
    );
    // Every instance is a running pod, with the address the lab publishes.
    let pods = kubectl(
        &cluster,
        &[
            "-n",
            &format!("sbx-{}", lab.id),
            "get",
            "pods",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.status.podIP} {.status.phase}{\"\\n\"}{end}",
        ],
    );
    for inst in ["edge-0", "checkout-0", "payments-0", "ledger-0", "loadgen"] {
        let ip = lab.ip(inst).to_string();
        assert!(
            pods.lines().any(|l| l == format!("{inst} {ip} Running")),
            "{inst} at {ip} is a running pod:\n{pods}"
        );
    }
    // A learner's shell in a pod resolves a service's name to its pod through cluster DNS.
    let out = sandbox()
        .args(["shell", "--lab", &lab.id, "payments-0", "--"])
        .args(["getent", "ahostsv4", "ledger"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let ledger = lab.ip("ledger-0").to_string();
    assert!(
        text(&out).lines().any(|l| l.starts_with(&ledger)),
        "ledger resolves to its pod {ledger}: {}",
        text(&out)
    );
    // The fault (15% loss between payments and ledger) shows in the edge's p99.
    lab.wait_fault("lossy-ledger", "active", Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = lab.status();
        let p99 = s["symptoms"]["recent"]["p99_ms"].as_f64().unwrap_or(0.0);
        if p99 > 150.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no symptom on the cluster: p99 {p99} ms"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let id = lab.id.clone();
    let out = lab.down();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(lab_namespaces(&cluster, &id), Vec::<String>::new());
    assert_eq!(common::leftovers(&id), Vec::<String>::new());
}

/// The supervisor killed while the lab's pods are being made, and once the lab is up: `down`
/// finds the lab's namespace by its label and removes it; a namespace a user made stays.
#[test]
fn down_after_a_killed_supervisor_leaves_no_namespace_and_spares_the_users() {
    if !backend_or_skip(
        "down_after_a_killed_supervisor_leaves_no_namespace_and_spares_the_users",
        KUBE,
    ) {
        return;
    }
    let cluster = test_cluster().unwrap();
    let _g = serial();
    kubectl(&cluster, &["create", "namespace", "user-made"]);
    for step in ["creating", "ready"] {
        let mut run = sandbox();
        run.args(["run", "packet-loss", "--detach", "--seed", "2"])
            .args(["--backend", "kube", "--cluster", &cluster]);
        let id = if step == "creating" {
            let mut child = run
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            // Kill the supervisor as soon as the lab's namespace exists.
            let deadline = Instant::now() + Duration::from_secs(60);
            let id = loop {
                let ids = common::lab_ids();
                if let Some(id) = ids
                    .iter()
                    .find(|id| !lab_namespaces(&cluster, id).is_empty())
                {
                    break id.clone();
                }
                assert!(Instant::now() < deadline, "no lab namespace appeared");
                std::thread::sleep(Duration::from_millis(50));
            };
            // The `run` that waits for the lab goes first: it would take a failed lab down.
            let _ = child.kill();
            let _ = child.wait();
            let lab = Lab::adopt(&id);
            lab.kill_supervisor();
            // Dropping a `Lab` takes it down; this test does that itself.
            std::mem::forget(lab);
            id
        } else {
            let lab = Lab::start_on("packet-loss", 2, KUBE);
            lab.kill_supervisor();
            let id = lab.id.clone();
            std::mem::forget(lab);
            id
        };
        assert!(
            !lab_namespaces(&cluster, &id).is_empty(),
            "{step}: the killed lab's namespace is still there before down"
        );
        let out = sandbox().args(["down", &id]).output().unwrap();
        assert!(out.status.success(), "{step}: {}", text(&out));
        assert_eq!(
            lab_namespaces(&cluster, &id),
            Vec::<String>::new(),
            "{step}"
        );
        assert_eq!(common::leftovers(&id), Vec::<String>::new(), "{step}");
    }
    let user = kubectl(&cluster, &["get", "ns", "user-made", "-o", "name"]);
    assert_eq!(
        user.trim(),
        "namespace/user-made",
        "the user's namespace was touched"
    );
    kubectl(
        &cluster,
        &["delete", "namespace", "user-made", "--wait=false"],
    );
}
