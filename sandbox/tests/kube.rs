//! The Kubernetes backend on a real kind cluster (`SANDBOX_TEST_CLUSTER`, which scripts/test
//! makes): a scenario's lab is a namespace of pods that resolve each other through cluster
//! DNS; its faults act on the pods' packets; `down` (also after the supervisor was killed at
//! any step) leaves no namespace of the lab and nothing a user made is touched.

mod common;

use std::os::unix::fs::PermissionsExt;
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

/// Two services and no fault: a lab to be confined.
const QUIET: &str = r#"
apiVersion: sandbox/v1
kind: Scenario
metadata: {id: quiet-lab, title: t, summary: s, difficulty: beginner, backends: [kube]}
topology:
  services:
    - {name: front, program: gateway, calls: [db]}
    - {name: db, program: backend, calls: [cache]}
    - {name: cache, program: store}
workload: {target: front, rate: 5}
briefing: {title: t, body: b}
"#;

/// On a shared cluster a learner's kubeconfig reads their own lab's namespace and nothing
/// else: not another lab's pods, logs or Services (another class's, named by its own
/// `--namespace-prefix`), not the cluster's, and it changes nothing (no fault of theirs to
/// undo, no pod to delete, no shell through exec). And no pod in a lab's namespace may run
/// privileged, even for the cluster's admin.
#[test]
fn a_learners_kubeconfig_reads_their_own_lab_and_nothing_else() {
    if !backend_or_skip(
        "a_learners_kubeconfig_reads_their_own_lab_and_nothing_else",
        KUBE,
    ) {
        return;
    }
    let cluster = test_cluster().unwrap();
    let _g = serial();
    let mine = Lab::start_yaml_on("quiet-lab", QUIET, 1, KUBE);
    let theirs = Lab::start_yaml_with_args(
        "quiet-lab",
        QUIET,
        2,
        KUBE,
        &["--namespace-prefix", "class-b"],
    );
    let kubeconfig = sandbox::ids::state_root()
        .join("labs")
        .join(&mine.id)
        .join("kubeconfig");
    let mode = std::fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o600,
        "the learner's token is readable by its owner only"
    );
    let (my_ns, their_ns) = (format!("sbx-{}", mine.id), format!("class-b-{}", theirs.id));
    assert_eq!(
        lab_namespaces(&cluster, &theirs.id),
        vec![format!("namespace/{their_ns}")],
        "a lab given a prefix runs in a namespace named with it"
    );
    let tools = sandbox::cluster::tools().expect("kind tools are built");
    let learner = |args: &[&str]| {
        let out = std::process::Command::new(&tools.kubectl)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .output()
            .unwrap();
        (out.status.success(), text(&out))
    };
    // Their own lab, in the kubeconfig's namespace.
    let (ok, out) = learner(&["get", "pods", "-o", "name"]);
    assert!(
        ok && out.contains("pod/front-0") && out.contains("pod/cache-0"),
        "{out}"
    );
    for read in [
        vec!["get", "endpointslices"],
        vec!["get", "services", "db", "-o", "yaml"],
        vec!["logs", "db-0", "--tail", "1"],
        vec!["get", "events"],
    ] {
        let (ok, out) = learner(&read);
        assert!(ok, "the learner may {read:?} in their lab: {out}");
    }
    // Nothing outside it, and no change inside it.
    for denied in [
        vec!["get", "pods", "-n", &their_ns],
        vec!["logs", "db-0", "-n", &their_ns],
        vec!["get", "services", "-n", &their_ns],
        vec!["get", "pods", "-n", "kube-system"],
        vec!["get", "namespaces"],
        vec!["get", "nodes"],
        vec!["get", "secrets"],
        vec!["delete", "pod", "db-0"],
        vec![
            "patch",
            "service",
            "db",
            "-p",
            r#"{"spec":{"selector":{"x":"y"}}}"#,
        ],
        vec![
            "label",
            "pod",
            "db-0",
            "--overwrite",
            "app.kubernetes.io/version=2",
        ],
        vec!["exec", "db-0", "--", "/backend", "-h"],
        vec![
            "run",
            "probe",
            "--image",
            "sandbox.local/store:x",
            "--restart",
            "Never",
        ],
    ] {
        let (ok, out) = learner(&denied);
        assert!(
            !ok && out.contains("forbidden"),
            "the learner must not {denied:?}: {out}"
        );
    }
    // Pod Security `restricted` holds in the namespace, for the admin too.
    let out = std::process::Command::new(&tools.kubectl)
        .arg("--kubeconfig")
        .arg(sandbox::cluster::kubeconfig(
            &sandbox::cluster::cluster_name(&cluster).unwrap(),
        ))
        .args(["-n", &my_ns, "run", "privileged", "--restart", "Never"])
        .args(["--image", "sandbox.local/store:x", "--overrides"])
        .arg(r#"{"spec":{"containers":[{"name":"privileged","image":"sandbox.local/store:x","securityContext":{"privileged":true}}]}}"#)
        .output()
        .unwrap();
    assert!(
        !out.status.success() && text(&out).contains("violates PodSecurity"),
        "a privileged pod is refused in a lab's namespace: {}",
        text(&out)
    );
    // The token dies with the lab.
    let id = mine.id.clone();
    assert!(mine.down().status.success());
    assert_eq!(lab_namespaces(&cluster, &id), Vec::<String>::new());
    let (ok, out) = learner(&["get", "pods"]);
    assert!(!ok, "a lab's token outlives it: {out}");
    let id = theirs.id.clone();
    assert!(theirs.down().status.success());
    assert_eq!(lab_namespaces(&cluster, &id), Vec::<String>::new());
}

/// A fault that acts at a node (a dns delay on the pods' queries) leaves its rules in the
/// node's namespace, which outlives the lab: `down` after a killed supervisor finds and
/// removes them.
#[test]
fn down_after_a_killed_supervisor_removes_its_rules_from_the_nodes() {
    if !backend_or_skip(
        "down_after_a_killed_supervisor_removes_its_rules_from_the_nodes",
        KUBE,
    ) {
        return;
    }
    let cluster = test_cluster().unwrap();
    let _g = serial();
    let yaml = QUIET.replace(
        "briefing:",
        "faults:\n  - {id: slow, type: dns, target: {service: front, direction: egress}, params: {delay: 50ms}}\n  - {id: mute, type: dns, target: {service: db, direction: egress}, params: {answer: timeout, percent: 20}}\nbriefing:",
    );
    let lab = Lab::start_yaml_on("quiet-lab", &yaml, 3, KUBE);
    lab.wait_fault("slow", "active", Duration::from_secs(30));
    lab.wait_fault("mute", "active", Duration::from_secs(30));
    let rules = common::node_rules(&cluster, &lab.id);
    assert!(
        rules.iter().any(|r| r.contains("SBX-")) && rules.iter().any(|r| r.contains("sbx_")),
        "the faults act at the nodes: {rules:?}"
    );
    lab.kill_supervisor();
    let id = lab.id.clone();
    std::mem::forget(lab);
    let out = sandbox().args(["down", &id]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(common::node_rules(&cluster, &id), Vec::<String>::new());
    assert_eq!(common::leftovers(&id), Vec::<String>::new());
}

/// `unready` fails the pods' readiness probe: the pod turns NotReady, its endpoint not
/// ready, its name unresolvable, while its data port still takes connections; when the fault
/// ends it is Ready again.
#[test]
fn an_unready_fault_takes_a_serving_pod_out_of_its_service() {
    if !backend_or_skip(
        "an_unready_fault_takes_a_serving_pod_out_of_its_service",
        KUBE,
    ) {
        return;
    }
    let cluster = test_cluster().unwrap();
    let _g = serial();
    let yaml = NO_ENDPOINTS.replace("type: no-endpoints", "type: unready");
    let lab = Lab::start_yaml_on("no-endpoints-lab", &yaml, 1, KUBE);
    let ns = format!("sbx-{}", lab.id);
    let ready = || {
        kubectl(
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
        )
    };
    let endpoint = || {
        kubectl(
            &cluster,
            &[
                "-n",
                &ns,
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=db",
                "-o",
                "jsonpath={range .items[*].endpoints[*]}{.addresses[0]} {.conditions.ready}{end}",
            ],
        )
    };
    let shell = |args: &[&str]| {
        sandbox()
            .args(["shell", "--lab", &lab.id, "front-0", "--"])
            .args(args)
            .output()
            .unwrap()
            .status
            .success()
    };
    let db = lab.ip("db-0").to_string();
    lab.wait_fault("sel", "active", Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(15);
    while ready() != "False" || shell(&["getent", "ahostsv4", "db"]) {
        assert!(
            Instant::now() < deadline,
            "db-0 still Ready and resolvable: {}",
            ready()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(
        endpoint(),
        format!("{db} false"),
        "the endpoint stays, not ready"
    );
    let port = lab.status()["lab"]["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "db-0")
        .and_then(|i| i["ports"][0].as_u64())
        .unwrap();
    assert!(
        shell(&["bash", "-c", &format!("exec 3<>/dev/tcp/{db}/{port}")]),
        "db-0's data port still takes connections"
    );
    lab.wait_fault("sel", "ended", Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(15);
    while ready() != "True" || !shell(&["getent", "ahostsv4", "db"]) {
        assert!(
            Instant::now() < deadline,
            "db-0 not Ready and resolvable again"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(lab.down().status.success());
}
