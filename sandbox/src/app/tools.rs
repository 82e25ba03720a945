//! The commands that look at a running service from outside the probes: `pprof` and
//! `goroutines` (through the service's pprof endpoint), and `debug` (Delve attached to it).

use super::{AppError, instances_named, require_root_because};
use crate::lab;
use crate::profile::{self, Kind, ProfileError};

/// Why `pprof` and `goroutines` need root.
const INSIDE: &str = "the service's control plane is reachable only from inside the lab's network";

fn failed(e: ProfileError) -> AppError {
    match e {
        e @ ProfileError::NoControlPlane { .. } => AppError::Invalid(e.to_string()),
        e => AppError::Failed(e.to_string()),
    }
}

fn instance(
    lab_id: Option<&str>,
    name: &str,
) -> Result<(lab::State, lab::InstanceState), AppError> {
    let state = lab::find(lab_id)?;
    let inst = instances_named(&state, name, false)?.remove(0);
    let i = state
        .instances
        .iter()
        .find(|i| i.name == inst)
        .cloned()
        .ok_or_else(|| AppError::Failed(format!("{inst} vanished from the lab's state")))?;
    Ok((state, i))
}

/// `sandbox pprof`: saves a profile of an instance in the lab directory.
pub fn pprof(lab_id: Option<&str>, name: &str, kind: Kind, seconds: u64) -> Result<(), AppError> {
    require_root_because("pprof", INSIDE)?;
    let (state, inst) = instance(lab_id, name)?;
    if kind == Kind::Cpu {
        eprintln!("Sampling {}'s CPU for {seconds}s…", inst.name);
    }
    let saved = profile::take(&state, &inst, kind, seconds).map_err(failed)?;
    println!(
        "Saved the {} profile of {} ({} bytes, {:.1}s) to\n  {}",
        kind.name(),
        inst.name,
        saved.bytes,
        saved.took.as_secs_f64(),
        saved.path.display()
    );
    println!(
        "Open it with:\n  go tool pprof -http=:0 {}",
        saved.path.display()
    );
    if matches!(kind, Kind::Block | Kind::Mutex) {
        println!(
            "(The services sample {} events only where they set a profile rate; an empty profile means none were sampled.)",
            kind.name()
        );
    }
    Ok(())
}

/// `sandbox goroutines`: a goroutine dump grouped by stack, with states and wait times.
pub fn goroutines(lab_id: Option<&str>, name: &str, json: bool) -> Result<(), AppError> {
    require_root_because("goroutines", INSIDE)?;
    let (state, inst) = instance(lab_id, name)?;
    let (dump, path) = profile::goroutines(&state, &inst).map_err(failed)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&dump).unwrap_or_default()
        );
    } else {
        print!("{}", profile::render(&inst.name, &dump));
        println!("\nThe full dump (debug=2) is in {}", path.display());
    }
    Ok(())
}

/// Why `debug` needs root.
const TRACE: &str = "attaching a debugger traces another user's process inside the lab's network";

/// What `sandbox debug` does.
pub struct DebugOptions<'a> {
    pub lab: Option<&'a str>,
    pub instance: &'a str,
    pub listen: &'a str,
    /// Leave the debugger attached and return.
    pub background: bool,
    /// Detach the debugger attached to the instance.
    pub detach: bool,
}

fn debug_failed(e: crate::debug::DebugError) -> AppError {
    use crate::debug::DebugError as E;
    match e {
        e @ (E::Listen { .. } | E::Attached { .. } | E::NotAttached { .. }) => {
            AppError::Invalid(e.to_string())
        }
        e @ E::NoDelve => AppError::Missing(e.to_string()),
        e => AppError::Failed(e.to_string()),
    }
}

/// `sandbox debug`: attaches Delve to an instance as a headless server, in the foreground
/// until Ctrl-C (which detaches) or in the background until `--detach` or `down`.
pub fn debug(o: DebugOptions) -> Result<(), AppError> {
    require_root_because("debug", TRACE)?;
    let (state, inst) = instance(o.lab, o.instance)?;
    if o.detach {
        crate::debug::detach(&state.id, &inst.name).map_err(debug_failed)?;
        println!(
            "Detached the debugger from {}; it keeps running.",
            inst.name
        );
        return Ok(());
    }
    let listen = crate::debug::listen_addr(&inst, o.listen).map_err(debug_failed)?;
    if !o.background {
        crate::probe::catch_interrupt();
    }
    let a = crate::debug::attach(&state, &inst, listen).map_err(debug_failed)?;
    println!(
        "Delve (pid {}) is attached to {} (pid {}) and listens on {} inside its network namespace.",
        a.pid, inst.name, a.tracee, a.listen
    );
    println!(
        "Connect with:\n  sudo sandbox shell {} --lab {} -- dlv connect {}",
        inst.name, state.id, a.listen
    );
    println!(
        "In dlv: `goroutines -with startloc conn).serve -group userloc`, `goroutine <id> stack`; `quit -c` leaves the service running."
    );
    if o.background {
        println!(
            "It stays attached until `sandbox debug --detach {} --lab {}` or `sandbox down`.",
            inst.name, state.id
        );
        return Ok(());
    }
    println!("Ctrl-C here detaches it; the service keeps running.");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let attached = || {
        crate::lab::debuggers::running(&state.id)
            .iter()
            .any(|(p, _)| *p == a.pid)
    };
    while !crate::probe::interrupted() && attached() {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    match crate::debug::detach(&state.id, &inst.name) {
        Ok(()) => {
            println!("Detached from {}; it keeps running.", inst.name);
            Ok(())
        }
        Err(crate::debug::DebugError::NotAttached { .. }) => Err(AppError::Failed(format!(
            "the debugger ended on its own; its output is in {}",
            a.log.display()
        ))),
        Err(e) => Err(debug_failed(e)),
    }
}

/// `sandbox graph`: the lab's services and calls; with `reveal` (root), where the faults sit.
pub fn graph(
    lab_id: Option<&str>,
    format: crate::graph::Format,
    reveal: bool,
) -> Result<(), AppError> {
    let id = lab::find(lab_id)?.id;
    let Some(state) = super::state_for(&id, lab::View::revealed(reveal))? else {
        return Err(lab::FindError::NoSuchLab(id.to_string()).into());
    };
    print!("{}", crate::graph::render(&state, format));
    Ok(())
}

/// `sandbox events`: the lab's timeline; with `follow`, new events as they come until the lab
/// is gone.
pub fn events(
    lab_id: Option<&str>,
    follow: bool,
    json: bool,
    reveal: bool,
) -> Result<(), AppError> {
    let id = lab::find(lab_id)?.id;
    let dir = lab::LabDir::new(&id);
    let view = lab::View::revealed(reveal);
    let mut shown = std::collections::HashSet::new();
    loop {
        let Some(state) = super::state_for(&id, view)? else {
            return if shown.is_empty() {
                Err(lab::FindError::NoSuchLab(id.to_string()).into())
            } else {
                Ok(())
            };
        };
        for e in crate::timeline::timeline(&dir, &state) {
            let line = if json {
                format!("{}\n", serde_json::to_string(&e).unwrap_or_default())
            } else {
                crate::timeline::render(&state, &e)
            };
            if shown.insert(line.clone()) {
                print!("{line}");
            }
        }
        if !follow {
            return Ok(());
        }
        let _ = std::io::Write::flush(&mut std::io::stdout());
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}
