//! `cpu`: where a service's threads spend CPU time. Every thread of the target's processes is
//! sampled at 99 Hz on every CPU (filtered in the kernel by process, ebpf/profile.bpf.c); the
//! samples' user and kernel stacks are symbolized here while the processes are alive, and
//! shown as a top-functions table, folded stacks and a flame graph (SVG).

mod flame;
mod symbols;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use serde_json::json;

use super::{Options, Probe, ProbeError, Report, Scope};
use crate::ebpf::{Object, Pod, objects};
use symbols::Symbolizer;

/// Not a multiple of common timer rates, so samples do not lock step with periodic work.
const HZ: u64 = 99;
const EFAULT: i32 = 14;
/// Where Go stacks start: goroutines at goexit, an M's g0 at mstart (rt0_go for the first
/// one), switches to g0 at mcall and morestack (systemstack links back to the goroutine's
/// frames). A walk that ends elsewhere lost frames to code that does not keep a frame pointer.
const ROOTS: [&str; 5] = [
    "runtime.goexit",
    "runtime.mstart",
    "runtime.mcall",
    "runtime.morestack",
    "runtime.rt0_go",
];
const BROKEN: &str = "[broken stack]";
const LOST: &str = "[lost stack]";
const TOP: usize = 15;

/// The kernel's `struct sample_key`.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct SampleKey {
    tgid: u32,
    tid: u32,
    ustack: i32,
    kstack: i32,
}

// SAFETY: four 4-byte integers, no padding.
unsafe impl Pod for SampleKey {}

/// One distinct stack, symbolized.
struct Stack {
    /// The instance, then `[lost stack]` or `[broken stack]` when the walk failed.
    prefix: Vec<String>,
    /// Functions, root first: user code, then kernel code (`name_[k]`).
    frames: Vec<String>,
    lost: bool,
    broken: bool,
}

impl Stack {
    fn leaf(&self) -> &str {
        self.frames
            .last()
            .or(self.prefix.last())
            .map_or("?", String::as_str)
    }
}

struct Cpu {
    obj: Object,
    instances: HashMap<u32, String>,
    target: String,
    svg: PathBuf,
    symbols: Symbolizer,
    stacks: HashMap<SampleKey, Rc<Stack>>,
    /// Sample counts as last read, to tell what each second added.
    seen: HashMap<SampleKey, u64>,
}

pub fn attach(scope: &Scope, o: &Options) -> Result<Box<dyn Probe>, ProbeError> {
    let instances: HashMap<u32, String> = scope
        .running()?
        .into_iter()
        .map(|(m, pid)| (pid, m.name.clone()))
        .collect();
    let target = scope.target.clone().unwrap_or_else(|| "lab".into());
    let svg = match &o.output {
        Some(p) => p.clone(),
        None => {
            let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
            let ts: String = now.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
            scope.lab_dir().path.join(format!("cpu-{target}-{ts}.svg"))
        }
    };
    // Fail now, not after the whole run, if the flame graph cannot be written there.
    std::fs::write(&svg, "").map_err(|source| ProbeError::Io {
        what: format!("writing {}", svg.display()),
        source,
    })?;
    let attached = (|| {
        let mut obj = Object::load(&objects::PROFILE, &[])?;
        for pid in instances.keys() {
            obj.hash_insert("target_tgids", *pid, 1u8)?;
        }
        obj.attach_cpu_clock("on_cpu_clock", HZ)?;
        Ok::<_, ProbeError>(obj)
    })();
    let obj = attached.inspect_err(|_| {
        let _ = std::fs::remove_file(&svg);
    })?;
    Ok(Box::new(Cpu {
        obj,
        instances,
        target,
        svg,
        symbols: Symbolizer::default(),
        stacks: HashMap::new(),
        seen: HashMap::new(),
    }))
}

impl Cpu {
    /// Every sample count so far, with its stack symbolized.
    fn read(&mut self) -> Vec<(Rc<Stack>, u64, u64)> {
        let counts: Vec<(SampleKey, u64)> = self.obj.hash_entries("samples").unwrap_or_default();
        let mut out = Vec::with_capacity(counts.len());
        for (key, n) in counts {
            let before = self.seen.insert(key, n).unwrap_or(0);
            let stack = match self.stacks.get(&key) {
                Some(s) => s.clone(),
                None => {
                    let s = Rc::new(self.symbolize(key));
                    self.stacks.insert(key, s.clone());
                    s
                }
            };
            out.push((stack, n, n.saturating_sub(before)));
        }
        out
    }

    fn symbolize(&mut self, key: SampleKey) -> Stack {
        let instance = self
            .instances
            .get(&key.tgid)
            .cloned()
            .unwrap_or_else(|| key.tgid.to_string());
        let mut prefix = vec![instance];
        let ustack = self.ips(key.ustack);
        let kstack = if key.kstack == -EFAULT {
            Some(Vec::new()) // sampled in user mode: no kernel part
        } else {
            self.ips(key.kstack)
        };
        let lost = ustack.is_none() || kstack.is_none();
        // Frames above the leaf are return addresses: the call is the byte before.
        let mut frames: Vec<String> = ustack
            .unwrap_or_default()
            .iter()
            .enumerate()
            .rev()
            .map(|(i, ip)| self.symbols.user(key.tgid, ip - u64::from(i > 0)))
            .collect();
        let broken = frames
            .first()
            .is_some_and(|root| !ROOTS.contains(&root.as_str()));
        for (i, ip) in kstack.unwrap_or_default().iter().enumerate().rev() {
            let name = self.symbols.kernel(ip - u64::from(i > 0));
            frames.push(format!("{name}_[k]"));
        }
        if lost {
            prefix.push(LOST.into());
        } else if broken {
            prefix.push(BROKEN.into());
        }
        Stack {
            prefix,
            frames,
            lost,
            broken,
        }
    }

    /// The instruction pointers of stack `id`, leaf first; `None` when the walk was lost.
    fn ips(&self, id: i32) -> Option<Vec<u64>> {
        let id = u32::try_from(id).ok()?;
        self.obj.stack("stacks", id).ok()
    }

    fn write_files(&self, folded: &str, title: &str, stacks: &[(Vec<String>, u64)]) -> String {
        let folded_path = self.svg.with_extension("folded");
        let written = std::fs::write(&folded_path, folded)
            .and_then(|_| std::fs::write(&self.svg, flame::svg(title, stacks)));
        match written {
            Ok(()) => format!(
                "Flame graph: {}\nFolded stacks: {}",
                self.svg.display(),
                folded_path.display()
            ),
            Err(e) => format!("could not write {}: {e}", self.svg.display()),
        }
    }
}

/// Self and inclusive samples of each function (a function counts once per sample however
/// often it recurs), hottest self first.
fn functions(samples: &[(Rc<Stack>, u64, u64)]) -> Vec<(String, u64, u64)> {
    let mut by_name: HashMap<&str, (u64, u64)> = HashMap::new();
    for (stack, n, _) in samples {
        if let Some(leaf) = stack.frames.last() {
            by_name.entry(leaf).or_default().0 += n;
        }
        let unique: HashSet<&str> = stack.frames.iter().map(String::as_str).collect();
        for f in unique {
            by_name.entry(f).or_default().1 += n;
        }
    }
    let mut v: Vec<(String, u64, u64)> = by_name
        .into_iter()
        .map(|(name, (own, incl))| (name.to_string(), own, incl))
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)));
    v
}

fn pct(n: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        n as f64 * 100.0 / total as f64
    }
}

impl Probe for Cpu {
    fn poll(&mut self) {}

    fn tick(&mut self, _second: u64) -> Option<(String, serde_json::Value)> {
        let samples = self.read();
        let mut leaves: HashMap<String, u64> = HashMap::new();
        let mut total = 0;
        for (stack, _, new) in &samples {
            if *new > 0 {
                total += new;
                *leaves.entry(stack.leaf().to_string()).or_default() += new;
            }
        }
        let (hot, n) = leaves
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))?;
        let share = pct(n, total);
        Some((
            format!("{total:>4} samples   hottest {hot} ({share:.0}%)"),
            json!({"samples": total, "hottest": hot, "hottest_pct": share}),
        ))
    }

    fn finish(mut self: Box<Self>, elapsed: Duration) -> Report {
        let samples = self.read();
        let total: u64 = samples.iter().map(|s| s.1).sum();
        let lost: u64 = samples.iter().filter(|s| s.0.lost).map(|s| s.1).sum();
        let broken: u64 = samples.iter().filter(|s| s.0.broken).map(|s| s.1).sum();
        let dropped = self.obj.percpu_sum("dropped", 0).unwrap_or(0);

        // Stacks that differ only in addresses within a function fold into one line.
        let mut merged: HashMap<Vec<String>, u64> = HashMap::new();
        for (stack, n, _) in &samples {
            let line: Vec<String> = stack.prefix.iter().chain(&stack.frames).cloned().collect();
            *merged.entry(line).or_default() += n;
        }
        let mut stacks: Vec<(Vec<String>, u64)> = merged.into_iter().collect();
        stacks.sort();
        let folded: String = stacks
            .iter()
            .map(|(f, n)| format!("{} {n}\n", f.join(";")))
            .collect();
        let secs = elapsed.as_secs_f64().max(0.001);
        let title = format!(
            "CPU of {} · {total} samples in {secs:.1} s at {HZ} Hz",
            self.target
        );
        let files = self.write_files(&folded, &title, &stacks);

        let funcs = functions(&samples);
        let top: Vec<&(String, u64, u64)> = funcs.iter().take(TOP).collect();
        let mut text = format!(
            "{total} samples in {secs:.1} s ({:.0}/s at {HZ} Hz per CPU); lost stacks {lost}, broken stacks {broken} ({:.1}%){}\n\n",
            total as f64 / secs,
            pct(broken, total),
            if dropped > 0 {
                format!(", {dropped} samples dropped (map full)")
            } else {
                String::new()
            }
        );
        if total == 0 {
            text.push_str("The target did not run on a CPU while sampled: it is idle or blocked (try the offcpu probe).\n");
        } else {
            let rows = top.iter().map(|(name, own, incl)| {
                vec![
                    format!("{:.1}%", pct(*own, total)),
                    format!("{:.1}%", pct(*incl, total)),
                    own.to_string(),
                    name.clone(),
                ]
            });
            text.push_str(&crate::report::grid(
                &["SELF", "TOTAL", "SAMPLES", "FUNCTION"],
                rows,
            ));
            text.push_str(
                "\n\nSELF: samples in the function itself; TOTAL: with the functions it called.\n",
            );
        }
        text.push('\n');
        text.push_str(&files);
        text.push('\n');

        let summary = json!({
            "samples": total,
            "samples_per_s": total as f64 / secs,
            "hz": HZ,
            "lost_stacks": lost,
            "broken_stacks": broken,
            "dropped": dropped,
            "top": top.iter().map(|(name, own, incl)| json!({
                "function": name,
                "self_pct": pct(*own, total),
                "inclusive_pct": pct(*incl, total),
                "self_samples": own,
                "inclusive_samples": incl,
            })).collect::<Vec<_>>(),
            "svg": self.svg.display().to_string(),
            "folded": self.svg.with_extension("folded").display().to_string(),
        });
        Report { text, summary }
    }
}
