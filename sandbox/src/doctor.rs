//! `sandbox doctor`: what this machine has and lacks for running labs, each gap with the
//! command that fixes it. Kernel features are tried for real in a throw-away namespace rather
//! than guessed from config files.

use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;

use serde::Serialize;

use crate::ebpf::{EbpfError, Object, objects};
use crate::sys::netns::NsPath;
use crate::sys::{self, cmd};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// Labs run, but something a learner may want is missing.
    Warn,
    /// Labs cannot run until this is fixed.
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

fn check(name: &str, status: Status, detail: impl Into<String>, fix: Option<&str>) -> Check {
    Check {
        name: name.into(),
        status,
        detail: detail.into(),
        fix: fix.map(str::to_string),
    }
}

fn tool_version(program: &str, args: &[&str]) -> Option<String> {
    let out = cmd::run(Command::new(program).args(args)).ok()?;
    out.lines().next().map(|l| l.trim().to_string())
}

/// Every check, in the order a person would fix them.
pub fn run() -> Vec<Check> {
    let mut out = Vec::new();
    let root = sys::is_root();
    out.push(if root {
        check("root", Status::Ok, "running as root", None)
    } else {
        check(
            "root",
            Status::Fail,
            "labs create network namespaces and load eBPF programs, which needs root",
            Some("sudo sandbox doctor"),
        )
    });
    let tools: [(&str, &[&str], &str, &str); 5] = [
        ("ip", &["-V"], "iproute2", "apt-get install -y iproute2"),
        (
            "tc",
            &["-V"],
            "iproute2 (tc)",
            "apt-get install -y iproute2",
        ),
        (
            "nft",
            &["--version"],
            "nftables",
            "apt-get install -y nftables",
        ),
        (
            "iptables",
            &["--version"],
            "iptables (NFQUEUE for delay)",
            "apt-get install -y iptables",
        ),
        (
            "ethtool",
            &["--version"],
            "ethtool (checksum offload for corruption)",
            "apt-get install -y ethtool",
        ),
    ];
    for (program, args, what, fix) in tools {
        out.push(match tool_version(program, args) {
            Some(v) => check(what, Status::Ok, v, None),
            None => check(
                what,
                Status::Fail,
                format!("`{program}` not found"),
                Some(fix),
            ),
        });
    }
    // Only `sandbox debug` needs Delve: a warning, not a failure.
    let delve = cmd::run(Command::new("dlv").arg("version"))
        .ok()
        .and_then(|v| {
            v.lines()
                .find_map(|l| l.strip_prefix("Version: "))
                .map(|v| format!("dlv {}", v.trim()))
        });
    out.push(match delve {
        Some(v) => check("Delve (sandbox debug)", Status::Ok, v, None),
        None => check(
            "Delve (sandbox debug)",
            Status::Warn,
            "`dlv` not found: `sandbox debug` cannot attach a debugger",
            Some("apt-get install -y delve"),
        ),
    });
    out.push(match crate::gobuild::find() {
        Ok(tc) => check(
            "Go toolchain",
            Status::Ok,
            format!("{} ({})", tc.version, tc.go.display()),
            None,
        ),
        Err(e) => check(
            "Go toolchain",
            Status::Fail,
            e.to_string(),
            Some("apt-get install -y golang-go"),
        ),
    });
    out.push(if Path::new("/sys/kernel/btf/vmlinux").exists() {
        check("kernel BTF", Status::Ok, "/sys/kernel/btf/vmlinux", None)
    } else {
        check(
            "kernel BTF",
            Status::Warn,
            "no /sys/kernel/btf/vmlinux: the probes need a kernel built with BTF",
            None,
        )
    });
    out.push(mount_check(
        "bpffs",
        "/sys/fs/bpf",
        "bpf",
        "mount -t bpf bpf /sys/fs/bpf",
    ));
    out.push(mount_check(
        "tracefs",
        "/sys/kernel/tracing",
        "tracefs",
        "mount -t tracefs tracefs /sys/kernel/tracing",
    ));
    out.push(docker_check());
    // kind clusters are optional (the Kubernetes backend): what they lack is a warning.
    out.extend(
        crate::cluster::prerequisites()
            .into_iter()
            .map(|(name, ok, detail, fix)| {
                let status = if ok { Status::Ok } else { Status::Warn };
                check(name, status, detail, (!ok).then_some(fix))
            }),
    );
    if root {
        out.extend(kernel_checks());
    }
    out
}

/// The Docker backend's daemon: optional (labs run on netns without it), so gaps warn.
fn docker_check() -> Check {
    const FIX: &str =
        "sudo scripts/dockerd.sh start   (installs nothing: apt-get install -y docker.io first)";
    match crate::backend::docker::daemon() {
        Err(e) => check(
            "Docker (--backend docker)",
            Status::Warn,
            e.to_string(),
            Some(FIX),
        ),
        Ok(d) => {
            let api_ok = d
                .api
                .split_once('.')
                .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
                .is_some_and(|v| v >= (1, 41));
            let driver_ok = matches!(d.storage_driver.as_str(), "overlay2" | "overlayfs");
            let detail = format!(
                "Docker {} (API {}), storage driver {}",
                d.version, d.api, d.storage_driver
            );
            if !api_ok {
                check(
                    "Docker (--backend docker)",
                    Status::Warn,
                    format!("{detail}: API 1.41 (Docker 20.10) or newer is needed"),
                    Some("apt-get install -y docker.io"),
                )
            } else if !driver_ok {
                check(
                    "Docker (--backend docker)",
                    Status::Warn,
                    format!("{detail}: overlay2 keeps labs fast; other drivers copy each layer"),
                    Some("dockerd --storage-driver overlay2"),
                )
            } else {
                check("Docker (--backend docker)", Status::Ok, detail, None)
            }
        }
    }
}

fn mount_check(name: &str, path: &str, fstype: &str, fix: &str) -> Check {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    if mounts.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 2 && f[1] == path && f[2] == fstype
    }) {
        check(name, Status::Ok, format!("mounted at {path}"), None)
    } else {
        check(
            name,
            Status::Warn,
            format!("not mounted at {path}; some probes need it"),
            Some(fix),
        )
    }
}

/// Tries each kernel feature a lab uses inside a temporary namespace.
fn kernel_checks() -> Vec<Check> {
    let ns = format!("sbx-doctor-{}", std::process::id());
    let mut out = Vec::new();
    if let Err(e) = cmd::run(Command::new("ip").args(["netns", "add", &ns])) {
        out.push(check(
            "network namespaces",
            Status::Fail,
            e.to_string(),
            None,
        ));
        return out;
    }
    out.push(check("network namespaces", Status::Ok, "created one", None));
    let in_ns = |program: &str, args: &[&str]| -> Result<String, String> {
        let mut c = NsPath::named(&ns)
            .command(program)
            .map_err(|e| e.to_string())?;
        c.args(args);
        cmd::run(&mut c).map_err(|e| e.to_string())
    };
    let mut feature =
        |name: &str, fail: Status, fix: Option<&str>, r: Result<String, String>, ok: &str| {
            out.push(match r {
                Ok(_) => check(name, Status::Ok, ok, None),
                Err(e) => check(name, fail, e, fix),
            });
        };
    let veth = in_ns(
        "ip",
        &["link", "add", "d0", "type", "veth", "peer", "name", "d1"],
    )
    .and_then(|_| in_ns("ip", &["link", "add", "dbr", "type", "bridge"]))
    .and_then(|_| in_ns("ip", &["link", "set", "d0", "master", "dbr", "up"]));
    feature(
        "veth and bridge",
        Status::Fail,
        None,
        veth,
        "veth pair joined to a bridge",
    );
    let brnf = NsPath::named(&ns).run(|| {
        std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables")
            .map_err(|_| "br_netfilter is not loaded".to_string())
    });
    feature(
        "br_netfilter",
        Status::Fail,
        Some("modprobe br_netfilter"),
        brnf,
        "bridged traffic reaches netfilter",
    );
    let nft = in_ns(
        "nft",
        &[
            "add table inet sbxdoctor; add chain inet sbxdoctor f { type filter hook forward priority -10; }; add rule inet sbxdoctor f numgen random mod 100 < 10 drop; add rule inet sbxdoctor f tcp dport 1 reject with tcp reset",
        ],
    );
    feature(
        "nftables (loss, reset, partition)",
        Status::Fail,
        Some("apt-get install -y nftables"),
        nft,
        "numgen, reject",
    );
    let nfq = in_ns(
        "iptables",
        &[
            "-w",
            "-A",
            "FORWARD",
            "-j",
            "NFQUEUE",
            "--queue-num",
            "1",
            "--queue-bypass",
        ],
    );
    feature(
        "NFQUEUE (delay)",
        Status::Fail,
        Some("modprobe nfnetlink_queue xt_NFQUEUE"),
        nfq,
        "iptables NFQUEUE target",
    );
    let htb = in_ns(
        "tc",
        &["qdisc", "add", "dev", "d0", "root", "handle", "1:", "htb"],
    )
    .and_then(|_| in_ns("ip", &["link", "add", "difb", "type", "ifb"]));
    feature(
        "htb and ifb (bandwidth)",
        Status::Fail,
        Some("modprobe sch_htb ifb"),
        htb,
        "htb qdisc, ifb device",
    );
    let netem = in_ns(
        "tc",
        &["qdisc", "add", "dev", "d1", "root", "netem", "delay", "1ms"],
    );
    out.push(match netem {
        Ok(_) => check(
            "netem",
            Status::Ok,
            "available (not needed: sandbox works without it)",
            None,
        ),
        Err(_) => check(
            "netem",
            Status::Ok,
            "not in this kernel; not needed, delay uses NFQUEUE",
            None,
        ),
    });
    out.extend(ebpf_checks(&ns));
    let _ = cmd::run(Command::new("ip").args(["netns", "del", &ns]));
    out
}

/// Loads and attaches each bundled eBPF object the way the probes and the corruption fault do;
/// everything is detached again when the objects drop.
fn ebpf_checks(ns: &str) -> Vec<Check> {
    let fix = "use Linux 6.x built with BTF, tracepoints, uprobes and perf events";
    let result = |name: &str, r: Result<(), EbpfError>, ok: &str| match r {
        Ok(()) => check(name, Status::Ok, ok, None),
        Err(e) => check(name, Status::Warn, e.to_string(), Some(fix)),
    };
    let tcp = Object::load(&objects::TCP, &[])
        .and_then(|mut o| o.attach_raw_tracepoint("tcp_retransmit", "tcp_retransmit_skb"));
    let sched = Object::load(&objects::SCHED, &[])
        .and_then(|mut o| o.attach_raw_tracepoint("on_switch", "sched_switch"));
    let cpu = Object::load(&objects::PROFILE, &[])
        .and_then(|mut o| o.attach_cpu_clock("on_cpu_clock", 99));
    let tc = Object::load(&objects::CORRUPT, &[]).and_then(|mut o| {
        o.attach_tc("sbx_corrupt", &NsPath::named(ns), &["d1".to_string()], true)
    });
    let filter = std::net::UdpSocket::bind("127.0.0.1:0")
        .map_err(|e| EbpfError::Attach {
            object: objects::DNS.name,
            program: "dns_only".into(),
            point: "socket".into(),
            reason: e.to_string(),
        })
        .and_then(|socket| {
            let mut o = Object::load(&objects::DNS, &[])?;
            o.attach_socket_filter("dns_only", socket.as_fd())
        });
    let uprobe = Path::new("/sys/bus/event_source/devices/uprobe").exists();
    vec![
        result("eBPF TCP probes", tcp, "tcp tracepoints attach"),
        result("eBPF scheduler probes", sched, "sched tracepoints attach"),
        result("eBPF CPU profiler", cpu, "software cpu-clock perf events"),
        result(
            "eBPF tc (corruption)",
            tc,
            "TCX classifier attaches in a namespace",
        ),
        result(
            "eBPF socket filter (dns probe)",
            filter,
            "socket filter attaches",
        ),
        if uprobe {
            check(
                "uprobes (netpoll probe)",
                Status::Ok,
                "uprobe PMU present",
                None,
            )
        } else {
            check(
                "uprobes (netpoll probe)",
                Status::Warn,
                "no /sys/bus/event_source/devices/uprobe: the kernel lacks CONFIG_UPROBE_EVENTS",
                Some(fix),
            )
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tools_say_how_to_install_them() {
        assert!(tool_version("sandbox-no-such-tool", &["--version"]).is_none());
        let c = mount_check("x", "/no/such/mount", "none", "mount it");
        assert_eq!(c.status, Status::Warn);
        assert_eq!(c.fix.as_deref(), Some("mount it"));
    }
}
