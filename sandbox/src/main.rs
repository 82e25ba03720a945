//! The `sandbox` command line: parses arguments and hands over to the library.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use sandbox::app::{self, AppError, RunOptions};
use sandbox::probe::ProbeKind;
use sandbox::scenario::BackendKind;

/// A fault-injection training sandbox: run a small system of Go services, break its network on
/// a schedule, and find out what went wrong with the bundled probes.
#[derive(Parser)]
#[command(name = "sandbox", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the bundled scenarios.
    #[command(after_help = "Example:\n  sandbox list")]
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Check scenario files without running them: syntax, names, and every value their
    /// parameters can draw.
    #[command(
        after_help = "Examples:\n  sandbox validate my-scenario.yaml\n  sandbox validate packet-loss added-latency"
    )]
    Validate {
        /// Scenario files, or ids of bundled scenarios.
        #[arg(required = true, value_name = "SCENARIO")]
        scenarios: Vec<String>,
    },
    /// Bring a scenario up, start load, and inject its faults on schedule.
    #[command(
        after_help = "Examples:\n  sudo sandbox run packet-loss\n  sudo sandbox run ./my-scenario.yaml --seed 7 --detach"
    )]
    Run {
        /// A scenario file, or the id of a bundled scenario (see `sandbox list`).
        scenario: String,
        /// Seed for the scenario's random parameters; the same seed gives the same lab.
        #[arg(long)]
        seed: Option<u64>,
        /// Return once the lab is ready instead of showing its status until Ctrl-C.
        #[arg(long, short)]
        detach: bool,
        /// How long to wait for every service to become healthy.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Certification: a lab for this candidate, its draw sealed to the instructor.
        #[arg(
            long,
            value_name = "CANDIDATE",
            requires = "instructor",
            conflicts_with = "seed"
        )]
        certify: Option<String>,
        /// The instructor's public key (`sandbox keys generate`), with --certify.
        #[arg(long, value_name = "FILE.pub")]
        instructor: Option<std::path::PathBuf>,
        /// Where the lab runs: network namespaces on this machine, Docker containers, or
        /// a Kubernetes cluster (`kube`).
        #[arg(long, default_value = "netns")]
        backend: BackendKind,
        /// With `--backend kube`: the cluster (`sandbox cluster list`); sandbox's only
        /// cluster when there is one.
        #[arg(long, value_name = "NAME")]
        cluster: Option<String>,
        /// With `--backend kube`: the lab's namespace is `<PREFIX>-<lab id>` instead of
        /// `sbx-<lab id>`, so a class's labs on a shared cluster are told apart by name.
        #[arg(long, value_name = "PREFIX", value_parser = sandbox::backend::kube::check_namespace_prefix)]
        namespace_prefix: Option<String>,
    },
    /// Show a lab's services, faults and live symptoms (rate, errors, latency).
    #[command(
        after_help = "Examples:\n  sandbox status\n  sandbox status k3f9q --json\n  sandbox status --reveal"
    )]
    Status {
        /// Lab id; needed only when several labs run.
        lab: Option<String>,
        #[arg(long)]
        json: bool,
        /// Redraw every second.
        #[arg(long, short, conflicts_with = "json")]
        watch: bool,
        /// Show what each fault is and where (for instructors and scenario authors).
        #[arg(long)]
        reveal: bool,
    },
    /// Print a service's log (all its replicas), an instance's, or `supervisor`.
    #[command(after_help = "Examples:\n  sandbox logs backend\n  sandbox logs api-1 -f")]
    Logs {
        /// A service, an instance such as `api-1`, `loadgen` or `supervisor`.
        service: String,
        #[arg(long)]
        lab: Option<String>,
        /// Keep printing new lines.
        #[arg(long, short)]
        follow: bool,
        /// Lines of history to print first.
        #[arg(long, short = 'n', default_value_t = 50)]
        lines: usize,
    },
    /// Open a shell (or run a command) inside a service's network namespace.
    #[command(
        after_help = "Examples:\n  sudo sandbox shell backend\n  sudo sandbox shell gateway -- ss -tni"
    )]
    Shell {
        /// A service (its first replica) or an instance such as `api-1`.
        service: String,
        #[arg(long)]
        lab: Option<String>,
        /// Command to run instead of an interactive shell.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Watch a service with one of the bundled eBPF probes (tcp-retrans, tcp-reset, tcp-drop,
    /// tcp-connect, tcp-rtt, netpoll, cpu, offcpu, runq, dns, http).
    #[command(
        after_help = "Examples:\n  sudo sandbox probe tcp-retrans --target payments --duration 10s\n  sudo sandbox probe netpoll --target search\n  sudo sandbox probe cpu --target api --duration 5s --output api.svg\n  sudo sandbox probe dns --target orders --duration 5s\n  sudo sandbox probe http --target payments --duration 10s\n  sudo sandbox probe tcp-drop --json"
    )]
    Probe {
        /// Which probe.
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(ProbeKind::ALL.map(ProbeKind::name)))]
        probe: String,
        /// A service (all its replicas) or an instance such as `api-1`; the whole lab when absent.
        #[arg(long, short)]
        target: Option<String>,
        #[arg(long)]
        lab: Option<String>,
        /// How long to watch; until Ctrl-C when absent (Ctrl-C prints the summary so far).
        #[arg(long, short, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        /// JSON lines (attached, one per second, summary) instead of tables.
        #[arg(long)]
        json: bool,
        /// Where to write a file the probe makes (the cpu probe's flame graph SVG).
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
    /// Save a profile of a Go service (goroutine, cpu, heap, block, mutex) from its pprof
    /// endpoint into the lab directory, to open with `go tool pprof`.
    #[command(
        after_help = "Examples:\n  sudo sandbox pprof api-0\n  sudo sandbox pprof search cpu --seconds 10"
    )]
    Pprof {
        /// A service (its first replica) or an instance such as `api-1`.
        instance: String,
        /// Which profile.
        #[arg(default_value = "goroutine", value_parser = clap::builder::PossibleValuesParser::new(sandbox::profile::Kind::ALL.map(sandbox::profile::Kind::name)))]
        kind: String,
        /// How long the cpu profile samples.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
        seconds: u64,
        #[arg(long)]
        lab: Option<String>,
    },
    /// Print a Go service's goroutines grouped by stack, with their states and how long they
    /// have waited.
    #[command(after_help = "Example:\n  sudo sandbox goroutines search-0")]
    Goroutines {
        /// A service (its first replica) or an instance such as `api-1`.
        instance: String,
        #[arg(long)]
        lab: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Attach Delve to a running Go service as a headless server (inside the instance's network
    /// namespace) that `dlv connect` reaches; Ctrl-C or `--detach` detaches it.
    #[command(
        after_help = "Examples:\n  sudo sandbox debug search-0\n  sudo sandbox debug api --background\n  sudo sandbox shell api -- dlv connect 127.0.0.1:2345\n  sudo sandbox debug --detach api"
    )]
    Debug {
        /// A service (its first replica) or an instance such as `api-1`.
        instance: String,
        #[arg(long)]
        lab: Option<String>,
        /// Where Delve's API listens, inside the instance's network namespace: its loopback
        /// or its own address.
        #[arg(long, default_value = sandbox::debug::DEFAULT_LISTEN)]
        listen: String,
        /// Leave the debugger attached and return (until `--detach` or `down`).
        #[arg(long, conflicts_with = "detach")]
        background: bool,
        /// Detach the debugger attached to the instance; the service keeps running.
        #[arg(long)]
        detach: bool,
    },
    /// Draw the lab: services, replicas and who calls whom (a tree, or Mermaid or Graphviz).
    #[command(
        after_help = "Examples:\n  sandbox graph\n  sandbox graph --mermaid > lab.mmd\n  sandbox graph --dot | dot -Tsvg > lab.svg\n  sudo sandbox graph --reveal"
    )]
    Graph {
        /// Lab id; needed only when several labs run.
        lab: Option<String>,
        /// A Mermaid flowchart.
        #[arg(long, conflicts_with = "dot")]
        mermaid: bool,
        /// A Graphviz digraph.
        #[arg(long)]
        dot: bool,
        /// Also draw where each fault sits (instructors; root only).
        #[arg(long)]
        reveal: bool,
    },
    /// The lab's timeline: ready, faults installed and removed (by number), restarts, probe
    /// runs, hints and submissions.
    #[command(
        after_help = "Examples:\n  sandbox events\n  sandbox events -f\n  sudo sandbox events --reveal --json"
    )]
    Events {
        /// Lab id; needed only when several labs run.
        lab: Option<String>,
        /// Keep printing new events until the lab is gone.
        #[arg(long, short)]
        follow: bool,
        /// One JSON object a line.
        #[arg(long)]
        json: bool,
        /// Name each fault and say what it is (instructors; root only).
        #[arg(long)]
        reveal: bool,
    },
    /// Show the next hint; its cost comes off your score. Hints take what you have run so far
    /// into account.
    #[command(after_help = "Example:\n  sandbox hint")]
    Hint {
        #[arg(long)]
        lab: Option<String>,
    },
    /// Findings: `sandbox findings template > findings.yaml` gives a file to fill in.
    #[command(after_help = "Example:\n  sandbox findings template > findings.yaml")]
    Findings {
        #[command(subcommand)]
        command: FindingsCmd,
    },
    /// Hand in your findings: graded against the lab (a table; --json, --junit), or, in a
    /// certification lab, written as a bundle for the instructor.
    #[command(
        after_help = "Examples:\n  sandbox submit findings.yaml\n  sandbox submit findings.yaml --junit > grade.xml"
    )]
    Submit {
        /// Your findings file (`sandbox findings template` starts one).
        file: std::path::PathBuf,
        #[arg(long)]
        lab: Option<String>,
        #[arg(long, conflicts_with = "junit")]
        json: bool,
        #[arg(long)]
        junit: bool,
        /// After grading, show what the faults were (practice labs only).
        #[arg(long)]
        reveal: bool,
        /// Where a certification bundle goes (default: submission-<candidate>-<lab>.json).
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
    /// Instructors: grade certification bundles with your key (signed results, a table, CSV),
    /// or check a signed result.
    #[command(
        after_help = "Examples:\n  sandbox grade submissions/*.json --key instructor.key --csv results.csv\n  sandbox grade --verify results/result-alice-k3f9q.json --public instructor.pub"
    )]
    Grade {
        /// Submission bundles.
        #[arg(required_unless_present = "verify")]
        bundles: Vec<std::path::PathBuf>,
        /// The instructor's secret key.
        #[arg(long, required_unless_present = "verify")]
        key: Option<std::path::PathBuf>,
        /// A scenario file a lab ran that is not a bundled one (edited, or your own); repeat
        /// for several. The rubric is always rebuilt from the scenario, never read from a bundle.
        #[arg(long, value_name = "FILE")]
        scenario: Vec<std::path::PathBuf>,
        /// Write a CSV of the grades (a new file; an existing one is not written over).
        #[arg(long)]
        csv: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
        /// Directory for the signed results.
        #[arg(long, default_value = "results")]
        out: std::path::PathBuf,
        /// Check a signed result instead of grading.
        #[arg(long, value_name = "RESULT", requires = "public", conflicts_with_all = ["bundles", "key", "scenario"])]
        verify: Option<std::path::PathBuf>,
        /// The instructor's public key, with --verify.
        #[arg(long)]
        public: Option<std::path::PathBuf>,
    },
    /// Instructors: make the key pair certification labs seal to and results are signed with.
    #[command(after_help = "Example:\n  sandbox keys generate instructor")]
    Keys {
        #[command(subcommand)]
        command: KeysCmd,
    },
    /// Prove scenarios solvable: bring each up, check its symptom appears only once the faults
    /// fire, run its reference solution's probes, and grade its reference and decoy findings.
    #[command(
        after_help = "Examples:\n  sudo sandbox verify packet-loss\n  sudo sandbox verify --all\n  sudo sandbox verify --all --corners"
    )]
    Verify {
        /// Scenario files or ids of bundled scenarios.
        #[arg(required_unless_present = "all")]
        scenarios: Vec<String>,
        /// Every bundled scenario.
        #[arg(long, conflicts_with = "scenarios")]
        all: bool,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Every corner of each scenario's parameters instead of one seed's draw: each
        /// parameter at its lowest and highest value (each value of a `one_of`), in every
        /// combination, a lab for each.
        #[arg(long, conflicts_with = "seed")]
        corners: bool,
        #[arg(long)]
        json: bool,
        /// Where the labs run; with --all, only the scenarios that list it are verified.
        #[arg(long, default_value = "netns")]
        backend: BackendKind,
        /// With `--backend kube`: the cluster the labs run on.
        #[arg(long, value_name = "NAME")]
        cluster: Option<String>,
    },
    /// Take a lab down and check that nothing of it is left.
    #[command(after_help = "Examples:\n  sudo sandbox down\n  sudo sandbox down --all")]
    Down {
        /// Lab id; needed only when several labs run.
        lab: Option<String>,
        /// Every lab on this machine, including what crashed labs left behind.
        #[arg(long, conflicts_with = "lab")]
        all: bool,
    },
    /// kind clusters for the Kubernetes backend, built and run without a container registry.
    #[command(
        subcommand,
        after_help = "Examples:\n  sudo sandbox cluster image\n  sudo sandbox cluster create --layout pair\n  sudo sandbox cluster list\n  sudo sandbox cluster delete --all"
    )]
    Cluster(ClusterCmd),
    /// Check this machine: root, tools, Go, kernel features; says how to fix what is missing.
    #[command(after_help = "Example:\n  sudo sandbox doctor")]
    Doctor {
        #[arg(long)]
        json: bool,
    },
    /// Courses: ordered modules of scenarios with pass marks, time limits and unlock rules,
    /// for practice workshops and certification exams.
    #[command(
        subcommand,
        after_help = "Examples:\n  sandbox course list\n  sandbox course check courses/network-debugging-workshop.yaml\n  sandbox course check my-course.yaml network-certification"
    )]
    Course(CourseCmd),
    /// Create and follow classes: a course taken by a roster of learners, served by
    /// `sandbox serve`.
    #[command(
        subcommand,
        after_help = "Examples:\n  sudo sandbox class create network-debugging-workshop --roster learners.csv --url https://lab.example.org\n  sandbox class status network-debugging-workshop-k3f9q --json"
    )]
    Class(ClassCmd),
    /// Run a class over HTTP: each learner works in their own labs from a browser; the
    /// instructor follows the class on a dashboard and Prometheus scrapes /metrics.
    #[command(
        after_help = "Examples:\n  sudo sandbox serve network-debugging-workshop-k3f9q\n  sudo sandbox serve my-class --listen 0.0.0.0:8080   # behind a TLS reverse proxy"
    )]
    Serve {
        /// The class (`sandbox class list`).
        class: String,
        /// The address to listen on. Keep it on loopback unless a TLS reverse proxy is in
        /// front: tokens travel in cookies and headers.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// How long a learner's lab may take to become healthy.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Take a learner's lab down after this long without a request from them (their
        /// page asks every 2 s while it is open); their progress stays. `0s` keeps labs up.
        #[arg(long, default_value = "20m", value_parser = humantime::parse_duration)]
        idle_stop: Duration,
        /// Serve HTTPS with this PEM certificate chain (with --tls-key).
        #[arg(long, value_name = "CERT.pem", requires = "tls_key")]
        tls_cert: Option<std::path::PathBuf>,
        /// The certificate's PEM private key.
        #[arg(long, value_name = "KEY.pem", requires = "tls_cert")]
        tls_key: Option<std::path::PathBuf>,
    },
    /// Print the JSON Schema of scenario files (or of course files), for editors.
    #[command(
        after_help = "Examples:\n  sandbox schema > scenario.schema.json\n  sandbox schema course > course.schema.json"
    )]
    Schema {
        /// Which file format.
        #[arg(value_enum, default_value = "scenario")]
        format: SchemaFormat,
    },
    /// Print shell completions.
    #[command(after_help = "Example:\n  sandbox completions bash > /etc/bash_completion.d/sandbox")]
    Completions { shell: clap_complete::Shell },
    /// Keeps a lab running (started by `run`; not for direct use).
    #[command(hide = true)]
    Supervise {
        #[arg(long)]
        lab: String,
    },
}

#[derive(Subcommand)]
enum FindingsCmd {
    /// Print a findings file to fill in.
    Template {
        #[arg(long)]
        lab: Option<String>,
    },
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Build the kind node image (and kind, kubectl) from Debian packages and Go modules,
    /// unless it is cached.
    Image,
    /// Create a cluster, wait until it is ready and load the Go services' images into it.
    Create {
        /// single, pair or pair-no-cni (kind-configs/).
        #[arg(long)]
        layout: String,
        /// Cluster name (prefixed with `sbx-`); the layout's name by default.
        #[arg(long)]
        name: Option<String>,
    },
    /// List the clusters sandbox made.
    List,
    /// Delete a cluster sandbox made (never one it did not).
    Delete {
        name: Option<String>,
        /// Every cluster sandbox made, including what a crash left.
        #[arg(long, conflicts_with = "name", required_unless_present = "name")]
        all: bool,
    },
}

#[derive(Subcommand)]
enum CourseCmd {
    /// Check course files without running them: the course's syntax and rules, and every
    /// scenario it names; shows each course's modules.
    #[command(
        after_help = "Examples:\n  sandbox course check courses/*.yaml\n  sandbox course check network-certification --json"
    )]
    Check {
        /// Course files, or ids of bundled courses.
        #[arg(required = true, value_name = "COURSE")]
        courses: Vec<String>,
        /// The valid courses as one JSON array, every module with the rules in force.
        #[arg(long)]
        json: bool,
    },
    /// List the bundled courses.
    #[command(after_help = "Example:\n  sandbox course list")]
    List,
}

#[derive(Subcommand)]
enum ClassCmd {
    /// Create a class of a course for the learners of a roster (CSV with a `name` column);
    /// prints each learner's access link, once.
    Create {
        /// A course file, or the id of a bundled course (`sandbox course list`).
        course: String,
        #[arg(long, value_name = "FILE.csv")]
        roster: std::path::PathBuf,
        /// The class's name; `<course id>-<random>` when absent.
        #[arg(long)]
        name: Option<String>,
        /// Where the class's labs run.
        #[arg(long, default_value = "netns")]
        backend: BackendKind,
        /// The address learners reach `sandbox serve` at, for their links.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Write the learners' links to this new CSV file instead of the terminal.
        #[arg(long, value_name = "FILE.csv")]
        links: Option<std::path::PathBuf>,
    },
    /// List the classes on this machine.
    List,
    /// Show a class: learners × modules (labs, hints, submissions, scores).
    Status {
        class: String,
        #[arg(long)]
        json: bool,
    },
    /// End a learner's access: their link stops working at once.
    Revoke { class: String, learner: String },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SchemaFormat {
    Scenario,
    Course,
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Write <prefix>.key (secret) and <prefix>.pub.
    Generate { prefix: std::path::PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands that only read and print; the others make or change something that an
    // abrupt end would leave half done.
    if matches!(
        cli.command,
        Cmd::List { .. }
            | Cmd::Validate { .. }
            | Cmd::Status { .. }
            | Cmd::Logs { .. }
            | Cmd::Probe { .. }
            | Cmd::Goroutines { .. }
            | Cmd::Graph { .. }
            | Cmd::Events { .. }
            | Cmd::Findings { .. }
            | Cmd::Course { .. }
            | Cmd::Class(ClassCmd::List | ClassCmd::Status { .. })
            | Cmd::Schema { .. }
            | Cmd::Completions { .. }
    ) {
        sandbox::term::quit_on_closed_stdout();
    }
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let result: Result<(), AppError> = match cli.command {
        Cmd::List { json } => app::list(json),
        Cmd::Validate { scenarios } => app::validate(&scenarios, color),
        Cmd::Run {
            scenario,
            seed,
            detach,
            timeout,
            certify,
            instructor,
            backend,
            cluster,
            namespace_prefix,
        } => app::run(
            RunOptions {
                scenario,
                seed,
                detach,
                ready_timeout: timeout,
                certify: certify.zip(instructor),
                backend,
                cluster,
                namespace_prefix,
            },
            color,
        ),
        Cmd::Status {
            lab,
            json,
            watch,
            reveal,
        } => app::status(
            lab.as_deref(),
            app::StatusOptions {
                json,
                watch,
                reveal,
            },
        ),
        Cmd::Logs {
            service,
            lab,
            follow,
            lines,
        } => app::logs(lab.as_deref(), &service, follow, lines),
        Cmd::Shell {
            service,
            lab,
            command,
        } => app::shell(lab.as_deref(), &service, &command),
        Cmd::Probe {
            probe,
            target,
            lab,
            duration,
            json,
            output,
        } => match ProbeKind::from_name(&probe) {
            Some(kind) => app::probe(app::ProbeOptions {
                kind,
                lab,
                target,
                duration,
                json,
                output,
            }),
            None => Err(AppError::Invalid(format!("no probe named `{probe}`"))),
        },
        Cmd::Pprof {
            instance,
            kind,
            seconds,
            lab,
        } => match sandbox::profile::Kind::from_name(&kind) {
            Some(kind) => app::pprof(lab.as_deref(), &instance, kind, seconds),
            None => Err(AppError::Invalid(format!("no profile named `{kind}`"))),
        },
        Cmd::Goroutines {
            instance,
            lab,
            json,
        } => app::goroutines(lab.as_deref(), &instance, json),
        Cmd::Debug {
            instance,
            lab,
            listen,
            background,
            detach,
        } => app::debug(app::DebugOptions {
            lab: lab.as_deref(),
            instance: &instance,
            listen: &listen,
            background,
            detach,
        }),
        Cmd::Graph {
            lab,
            mermaid,
            dot,
            reveal,
        } => {
            use sandbox::graph::Format;
            let format = match (mermaid, dot) {
                (true, _) => Format::Mermaid,
                (_, true) => Format::Dot,
                _ => Format::Text,
            };
            app::graph(lab.as_deref(), format, reveal)
        }
        Cmd::Events {
            lab,
            follow,
            json,
            reveal,
        } => app::events(lab.as_deref(), follow, json, reveal),
        Cmd::Hint { lab } => app::hint(lab.as_deref()),
        Cmd::Findings {
            command: FindingsCmd::Template { lab },
        } => app::findings_template(lab.as_deref()),
        Cmd::Submit {
            file,
            lab,
            json,
            junit,
            reveal,
            output,
        } => app::submit(app::SubmitOptions {
            lab,
            file,
            json,
            junit,
            reveal,
            out: output,
        }),
        Cmd::Grade {
            verify: Some(result),
            public: Some(public),
            ..
        } => app::verify_result(&result, &public),
        Cmd::Grade {
            bundles,
            key,
            scenario,
            csv,
            json,
            out,
            ..
        } => match key {
            Some(key) => app::grade(app::GradeOptions {
                bundles,
                key,
                scenarios: scenario,
                csv,
                json,
                out,
            }),
            None => Err(AppError::Invalid("--key is needed to grade".into())),
        },
        Cmd::Keys {
            command: KeysCmd::Generate { prefix },
        } => app::keys_generate(&prefix),
        Cmd::Verify {
            scenarios,
            all,
            seed,
            corners,
            json,
            backend,
            cluster,
        } => app::verify(
            &scenarios,
            all,
            if corners {
                app::Draws::Corners
            } else {
                app::Draws::Seed(seed)
            },
            json,
            backend,
            cluster.as_deref(),
        ),
        Cmd::Down { lab, all } => app::down(lab.as_deref(), all, color),
        Cmd::Doctor { json } => app::doctor(json),
        Cmd::Cluster(c) => match c {
            ClusterCmd::Image => app::cluster_image(),
            ClusterCmd::Create { layout, name } => app::cluster_create(&layout, name.as_deref()),
            ClusterCmd::List => app::cluster_list(),
            ClusterCmd::Delete { name, all } => app::cluster_delete(name.as_deref(), all),
        },
        Cmd::Course(CourseCmd::Check { courses, json }) => app::course_check(&courses, json, color),
        Cmd::Course(CourseCmd::List) => app::course_list(),
        Cmd::Class(ClassCmd::Create {
            course,
            roster,
            name,
            backend,
            url,
            links,
        }) => app::class_create(app::ClassCreateOptions {
            course,
            roster,
            name,
            backend,
            url,
            links,
        }),
        Cmd::Class(ClassCmd::List) => app::class_list(),
        Cmd::Class(ClassCmd::Status { class, json }) => app::class_status(&class, json),
        Cmd::Class(ClassCmd::Revoke { class, learner }) => app::class_revoke(&class, &learner),
        Cmd::Serve {
            class,
            listen,
            timeout,
            idle_stop,
            tls_cert,
            tls_key,
        } => app::serve(&class, listen, timeout, idle_stop, tls_cert.zip(tls_key)),
        Cmd::Schema { format } => app::schema(match format {
            SchemaFormat::Scenario => app::SchemaKind::Scenario,
            SchemaFormat::Course => app::SchemaKind::Course,
        }),
        Cmd::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "sandbox",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Cmd::Supervise { lab } => return ExitCode::from(app::supervise(&lab)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprint!("{}", e.render(color));
            ExitCode::from(e.exit_code())
        }
    }
}
