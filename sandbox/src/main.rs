//! The `sandbox` command line: parses arguments and hands over to the library.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use sandbox::app::{self, AppError, RunOptions};
use sandbox::probe::ProbeKind;

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
    /// tcp-connect, tcp-rtt, netpoll, cpu, offcpu, runq).
    #[command(
        after_help = "Examples:\n  sudo sandbox probe tcp-retrans --target payments --duration 10s\n  sudo sandbox probe netpoll --target search\n  sudo sandbox probe cpu --target api --duration 5s --output api.svg\n  sudo sandbox probe tcp-drop --json"
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
    /// Take a lab down and check that nothing of it is left.
    #[command(after_help = "Examples:\n  sudo sandbox down\n  sudo sandbox down --all")]
    Down {
        /// Lab id; needed only when several labs run.
        lab: Option<String>,
        /// Every lab on this machine, including what crashed labs left behind.
        #[arg(long, conflicts_with = "lab")]
        all: bool,
    },
    /// Check this machine: root, tools, Go, kernel features; says how to fix what is missing.
    #[command(after_help = "Example:\n  sudo sandbox doctor")]
    Doctor {
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of scenario files, for editors.
    #[command(after_help = "Example:\n  sandbox schema > scenario.schema.json")]
    Schema,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let result: Result<(), AppError> = match cli.command {
        Cmd::List { json } => app::list(json),
        Cmd::Validate { scenarios } => app::validate(&scenarios, color),
        Cmd::Run {
            scenario,
            seed,
            detach,
            timeout,
        } => app::run(
            RunOptions {
                scenario,
                seed,
                detach,
                ready_timeout: timeout,
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
        Cmd::Down { lab, all } => app::down(lab.as_deref(), all, color),
        Cmd::Doctor { json } => app::doctor(json),
        Cmd::Schema => app::schema(),
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
