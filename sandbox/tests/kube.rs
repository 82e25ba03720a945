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

/// A Service whose selector is changed to select no pod, for a while.
const NO_ENDPOINTS: &str = r#"
apiVersion: sandbox/v1
kind: Scenario
metadata: {id: no-endpoints-lab, title: t, summary: s, difficulty: beginner, backends: [kube]}
topology:
  services:
    - {name: front, program: gateway, calls: [db]}
    - {name: db, program: backend, calls: [cache]}
    - {name: cache, program: store}
workload: {target: front, rate: 20}
faults:
  - {id: sel, type: no-endpoints, target: {service: db}, start_after: 1s, duration: 12s}
briefing: {title: t, body: b}
"#;

/// `no-endpoints` empties the Service's EndpointSlice, so its name stops resolving, while its
/// pod stays Ready and the other Services keep theirs; when it ends, the endpoint is back.
#[test]
fn a_no_endpoints_fault_empties_a_service_and_gives_it_back() {
    if !backend_or_skip(
        "a_no_endpoints_fault_empties_a_service_and_gives_it_back",
        KUBE,
    ) {
        return;
    }
    let cluster = test_cluster().unwrap();
    let _g = serial();
    let lab = Lab::start_yaml_on("no-endpoints-lab", NO_ENDPOINTS, 1, KUBE);
    let ns = format!("sbx-{}", lab.id);
    let endpoints = |service: &str| {
        kubectl(
            &cluster,
            &[
                "-n",
                &ns,
                "get",
                "endpointslices",
                "-l",
                &format!("kubernetes.io/service-name={service}"),
                "-o",
                "jsonpath={range .items[*].endpoints[*]}{.addresses[0]} {.conditions.ready}{\"\\n\"}{end}",
            ],
        )
    };
    let resolves = |name: &str| {
        let out = sandbox()
            .args(["shell", "--lab", &lab.id, "front-0", "--"])
            .args(["getent", "ahostsv4", name])
            .output()
            .unwrap();
        out.status.success()
    };
    let (db, cache) = (lab.ip("db-0").to_string(), lab.ip("cache-0").to_string());
    lab.wait_fault("sel", "active", Duration::from_secs(30));
    assert_eq!(endpoints("db"), "", "db's Service selects no pod");
    assert_eq!(endpoints("cache"), format!("{cache} true\n"));
    let ready = kubectl(
        &cluster,
        &[
            "-n",
            &ns,
            "get",
            "pod",
            "db-0",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ],
    );
    assert_eq!(ready, "True", "db's pod itself stays Ready");
    // Cluster DNS answers from its own cache for up to the records' 5 s TTL.
    let deadline = Instant::now() + Duration::from_secs(10);
    while resolves("db") {
        assert!(
            Instant::now() < deadline,
            "db still resolves 10 s after its Service lost its endpoints"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        resolves("cache"),
        "another Service of the lab still resolves"
    );
    lab.wait_fault("sel", "ended", Duration::from_secs(30));
    assert_eq!(
        endpoints("db"),
        format!("{db} true\n"),
        "the Service selects its pod again"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while !resolves("db") {
        assert!(
            Instant::now() < deadline,
            "db does not resolve again 15 s after the fault ended"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let id = lab.id.clone();
    let out = lab.down();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(lab_namespaces(&cluster, &id), Vec::<String>::new());
}
