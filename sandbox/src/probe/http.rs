//! `http`: the time a Go `net/http` server spends on each request, from the handler being
//! called to it returning, per route (the request's URL path) and per instance, with the
//! status classes and the slowest requests. It is the server's own view: a delay on the path
//! to the server shows in the caller, not here, and a slow upstream shows in the route that
//! calls it.
//!
//! Kernel side: ebpf/http.bpf.c, uprobes at the entry and every RET of
//! `net/http.serverHandler.ServeHTTP` and at the entry of `net/http.(*response).WriteHeader`,
//! found by [`super::gosym`] (also in stripped binaries). The path is read through the Go
//! structures `Request.URL` and `url.URL.Path`, at offsets chosen by the binary's Go version,
//! which `.go.buildinfo` holds in stripped binaries too.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use object::{Object as _, ObjectSection};
use serde_json::json;

use super::goproc::{Binaries, GoProcess};
use super::gosym::{self, GoFunc};
use super::{Probe, ProbeError, Report, Scope, human_us, monotonic_ns};
use crate::ebpf::{self, Global, Object, Ring, objects};
use crate::report::grid;

const SERVE: &str = "net/http.serverHandler.ServeHTTP";
const WRITE_HEADER: &str = "net/http.(*response).WriteHeader";
/// Bytes of a path the kernel side keeps (`PATH_MAX_LEN`).
const PATH_MAX_LEN: usize = 64;
/// Slots of the `http_stats` map.
const LOST: u32 = 0;
const UNMATCHED: u32 = 1;
/// Routes kept apart per instance; requests to further paths count under `(other paths)`, so
/// a scan of random URLs cannot grow the tables without bound.
const MAX_ROUTES: usize = 100;
/// Requests listed as the slowest.
const SLOWEST: usize = 10;

/// One finished request, laid out like `struct http_event`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Event {
    start_ns: u64,
    lat_ns: u64,
    tgid: u32,
    status: u32,
    path_len: u32,
    pad: u32,
    path: [u8; PATH_MAX_LEN],
}

// SAFETY: plain old data without padding, as the kernel side writes it.
unsafe impl ebpf::Pod for Event {}

/// Where `Request.URL` and `url.URL.Path` lie in a Go version's structures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub url_off: u64,
    pub path_off: u64,
}

/// Offsets by the oldest Go minor version they hold for. `Request` opens with `Method string`
/// then `URL *url.URL`; `url.URL` with Scheme, Opaque (strings), User (pointer), Host, then
/// Path. Checked against the DWARF of Go 1.19 and 1.26 builds; unchanged since Go 1.18, the
/// oldest version whose `.go.buildinfo` states its version inline.
const LAYOUTS: [(u32, Layout); 1] = [(
    18,
    Layout {
        url_off: 16,
        path_off: 56,
    },
)];

/// The Go version a binary was built with, from its `.go.buildinfo` (kept by `-s -w` and
/// strip(1), since `runtime/debug.ReadBuildInfo` needs it): a 16-byte header whose flags bit 2
/// says the version string follows inline at +32, length-prefixed (Go 1.18 and later).
pub fn go_version(data: &[u8]) -> Option<String> {
    const MAGIC: &[u8] = b"\xff Go buildinf:";
    // The section by name when the ELF has section headers; else a scan for the header.
    let section = object::File::parse(data).ok().and_then(|elf| {
        let (off, _) = elf.section_by_name(".go.buildinfo")?.file_range()?;
        usize::try_from(off).ok()
    });
    let at = section
        .filter(|at| data.get(*at..).is_some_and(|d| d.starts_with(MAGIC)))
        .or_else(|| data.windows(MAGIC.len()).position(|w| w == MAGIC))?;
    let head = data.get(at..at + 32)?;
    if head[15] & 2 == 0 {
        return None;
    }
    let (len, used) = uvarint(data.get(at + 32..)?)?;
    let start = at + 32 + used;
    let bytes = data.get(start..start.checked_add(usize::try_from(len).ok()?)?)?;
    String::from_utf8(bytes.to_vec()).ok()
}

/// A little-endian base-128 number and the bytes it took.
fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// The structure offsets for the Go version `version` (`go1.19.8`).
pub fn layout_for(version: &str) -> Option<Layout> {
    let minor: u32 = version
        .strip_prefix("go1.")?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    LAYOUTS
        .iter()
        .rev()
        .find(|(from, _)| minor >= *from)
        .map(|(_, l)| *l)
}

/// The probe points and structure offsets of one binary.
#[derive(Clone)]
struct Points {
    serve: GoFunc,
    write_header: GoFunc,
    version: String,
    layout: Layout,
}

fn points(data: &[u8], label: &str) -> Result<Points, ProbeError> {
    let version = go_version(data).ok_or_else(|| {
        ProbeError::Binary(format!(
            "{label}: no Go version in its .go.buildinfo; the http probe needs a Go 1.18 or \
             newer binary"
        ))
    })?;
    let layout = layout_for(&version).ok_or_else(|| {
        ProbeError::Binary(format!(
            "{label} was built by {version}; the http probe knows the net/http structures of \
             Go 1.18 and newer only"
        ))
    })?;
    Ok(Points {
        serve: gosym::locate(data, label, SERVE)?,
        write_header: gosym::locate(data, label, WRITE_HEADER)?,
        version,
        layout,
    })
}

/// What a request is counted under.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct RouteKey {
    instance: String,
    route: String,
}

/// Requests of one route (or one instance): exact durations, kept for exact percentiles.
#[derive(Debug, Default, Clone)]
struct Stats {
    lat_ns: Vec<u64>,
    /// 2xx (and the implicit 200), 3xx, 4xx, 5xx, anything else.
    classes: [u64; 5],
}

const CLASSES: [&str; 5] = ["2xx", "3xx", "4xx", "5xx", "other"];

fn class_of(status: u32) -> usize {
    match status {
        0 | 200..=299 => 0,
        300..=399 => 1,
        400..=499 => 2,
        500..=599 => 3,
        _ => 4,
    }
}

impl Stats {
    fn add(&mut self, lat_ns: u64, status: u32) {
        self.lat_ns.push(lat_ns);
        self.classes[class_of(status)] += 1;
    }

    fn merge(&mut self, other: &Stats) {
        self.lat_ns.extend_from_slice(&other.lat_ns);
        for (a, b) in self.classes.iter_mut().zip(other.classes) {
            *a += b;
        }
    }

    fn count(&self) -> u64 {
        self.lat_ns.len() as u64
    }

    /// Nearest-rank quantiles (`qs` in 0..1) of the durations, in µs.
    fn quantiles_us(&self, qs: &[f64]) -> Vec<f64> {
        let mut v = self.lat_ns.clone();
        v.sort_unstable();
        qs.iter()
            .map(|q| {
                if v.is_empty() {
                    return 0.0;
                }
                let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
                v[rank - 1] as f64 / 1000.0
            })
            .collect()
    }

    fn json(&self) -> serde_json::Value {
        let q = self.quantiles_us(&[0.5, 0.99, 1.0]);
        let classes: serde_json::Map<String, serde_json::Value> = CLASSES
            .iter()
            .zip(self.classes)
            .map(|(c, n)| (c.to_string(), json!(n)))
            .collect();
        json!({
            "count": self.count(),
            "p50_us": q[0].round(),
            "p99_us": q[1].round(),
            "max_us": q[2].round(),
            "status": classes,
        })
    }

    /// Cells: count, 2xx, 3xx, 4xx, 5xx, p50, p99, max.
    fn cells(&self) -> Vec<String> {
        let q = self.quantiles_us(&[0.5, 0.99, 1.0]);
        let mut r = vec![self.count().to_string()];
        r.extend(self.classes[..4].iter().map(|n| n.to_string()));
        r.extend(q.iter().map(|us| human_us(*us)));
        r
    }
}

/// One of the slowest requests.
#[derive(Debug, Clone, PartialEq)]
struct Slow {
    lat_ns: u64,
    /// Since the probe attached.
    at_ms: u64,
    instance: String,
    route: String,
    status: u32,
}

/// What the probe saw, apart from the kernel: everything the report is made of.
#[derive(Debug, Default)]
struct Seen {
    routes: HashMap<RouteKey, Stats>,
    /// Distinct routes per instance, for [`MAX_ROUTES`].
    route_count: HashMap<String, usize>,
    slowest: Vec<Slow>,
    /// Requests since the last tick, per route.
    this_second: HashMap<RouteKey, Stats>,
}

impl Seen {
    fn add(&mut self, instance: &str, route: String, lat_ns: u64, status: u32, at_ms: u64) {
        let mut key = RouteKey {
            instance: instance.to_string(),
            route,
        };
        if !self.routes.contains_key(&key) {
            let n = self.route_count.entry(key.instance.clone()).or_default();
            if *n >= MAX_ROUTES {
                key.route = "(other paths)".into();
            } else {
                *n += 1;
            }
        }
        self.this_second
            .entry(key.clone())
            .or_default()
            .add(lat_ns, status);
        let shortest = self.slowest.last().map_or(0, |s| s.lat_ns);
        if self.slowest.len() < SLOWEST || lat_ns > shortest {
            self.slowest.push(Slow {
                lat_ns,
                at_ms,
                instance: key.instance.clone(),
                route: key.route.clone(),
                status,
            });
            self.slowest.sort_by_key(|s| std::cmp::Reverse(s.lat_ns));
            self.slowest.truncate(SLOWEST);
        }
        self.routes.entry(key).or_default().add(lat_ns, status);
    }

    fn per_instance(&self) -> BTreeMap<String, Stats> {
        let mut out: BTreeMap<String, Stats> = BTreeMap::new();
        for (k, s) in &self.routes {
            out.entry(k.instance.clone()).or_default().merge(s);
        }
        out
    }

    fn total(&self) -> u64 {
        self.routes.values().map(Stats::count).sum()
    }

    /// The report a person reads, after `head` (how and where the probe attached).
    fn text(&self, head: &str) -> String {
        let mut out = head.to_string();
        if self.routes.is_empty() {
            out.push_str("\nNo request reached a probed server: is the service getting traffic?\n");
            return out;
        }
        let headers = [
            "INSTANCE", "ROUTE", "REQUESTS", "2XX", "3XX", "4XX", "5XX", "P50", "P99", "MAX",
        ];
        let mut rows: Vec<(&RouteKey, &Stats)> = self.routes.iter().collect();
        rows.sort_by(|a, b| a.0.cmp(b.0));
        out.push_str("\nPer route (the request's URL path), server side\n");
        out.push_str(&grid(
            &headers,
            rows.iter().map(|(k, s)| {
                let mut r = vec![k.instance.clone(), k.route.clone()];
                r.extend(s.cells());
                r
            }),
        ));
        out.push_str("\n\nPer instance\n");
        let mut h = headers.to_vec();
        h.remove(1);
        out.push_str(&grid(
            &h,
            self.per_instance().iter().map(|(i, s)| {
                let mut r = vec![i.clone()];
                r.extend(s.cells());
                r
            }),
        ));
        out.push_str("\n\nSlowest requests\n");
        out.push_str(&grid(
            &["AT", "INSTANCE", "ROUTE", "STATUS", "DURATION"],
            self.slowest.iter().map(|s| {
                vec![
                    format!("+{:.3} s", s.at_ms as f64 / 1000.0),
                    s.instance.clone(),
                    s.route.clone(),
                    status_name(s.status),
                    human_us(s.lat_ns as f64 / 1000.0),
                ]
            }),
        ));
        out.push_str(
            "\n\nA request's duration runs from net/http calling the handler to the handler \
             returning: time spent in the service and on its upstreams, not on the network \
             before it. A handler that wrote no status answered 200.\n",
        );
        out
    }
}

/// `200`, and `200` for a handler that set none (net/http's default).
fn status_name(status: u32) -> String {
    if status == 0 { 200 } else { status }.to_string()
}

/// The route of a request: its path as the kernel side read it, `…` marking a cut.
fn route_of(e: &Event) -> String {
    let n = (e.path_len as usize).min(PATH_MAX_LEN);
    let mut s = String::from_utf8_lossy(&e.path[..n]).into_owned();
    if e.path_len as usize > PATH_MAX_LEN {
        s.push('…');
    }
    if s.is_empty() { "(no path)".into() } else { s }
}

struct Http {
    object: Object,
    ring: Ring,
    /// tgid → instance.
    targets: HashMap<u32, String>,
    probed: Vec<GoProcess<Points>>,
    /// Skipped members and why (the load generator is no server).
    skipped: Vec<String>,
    seen: Seen,
    /// CLOCK_MONOTONIC at attach, which the kernel's timestamps share.
    t0_ns: u64,
}

pub fn attach(scope: &Scope) -> Result<Box<dyn Probe>, ProbeError> {
    let mut binaries = Binaries::default();
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    let mut first_err = None;
    for (m, pid) in scope.running()? {
        match binaries.process(&m.name, pid, points)? {
            Ok(p) => found.push(p),
            // Not every member serves HTTP (the load generator is a client only).
            Err(e) => {
                skipped.push(format!("{} ({e})", m.name));
                first_err.get_or_insert(e);
            }
        }
    }
    if found.is_empty() {
        return Err(first_err.unwrap_or_else(|| ProbeError::Target("nothing to probe".into())));
    }
    Ok(Box::new(load(found, skipped)?))
}

/// Loads the kernel side and attaches it to each of `found` (not empty).
fn load(found: Vec<GoProcess<Points>>, skipped: Vec<String>) -> Result<Http, ProbeError> {
    let layout = found[0].points.layout;
    if let Some(f) = found.iter().find(|f| f.points.layout != layout) {
        return Err(ProbeError::Target(format!(
            "{} runs {}, whose net/http layout differs from the other targets'; probe it on \
             its own with --target",
            f.instance, f.points.version
        )));
    }
    let globals = [
        Global::new("url_off", &layout.url_off),
        Global::new("path_off", &layout.path_off),
    ];
    let mut object = Object::load(&objects::HTTP, &globals)?;
    for f in &found {
        object.hash_insert("http_targets", f.pid, 1u8)?;
    }
    let mut targets = HashMap::new();
    for f in &found {
        let (serve, wh) = (&f.points.serve, &f.points.write_header);
        let pid = Some(f.pid);
        object.attach_uprobe("sbx_http_status", &f.exe, &[wh.entry_offset()], pid)?;
        object.attach_uprobe("sbx_http_entry", &f.exe, &[serve.entry_offset()], pid)?;
        object.attach_uprobe("sbx_http_ret", &f.exe, &serve.ret_offsets(), pid)?;
        targets.insert(f.pid, f.instance.clone());
    }
    let ring = object.ring("http_events")?;
    Ok(Http {
        object,
        ring,
        targets,
        probed: found,
        skipped,
        seen: Seen::default(),
        t0_ns: monotonic_ns(),
    })
}

impl Probe for Http {
    fn poll(&mut self) {
        let mut batch = Vec::new();
        self.ring
            .drain(|b| batch.extend(ebpf::read_event::<Event>(b)));
        for e in batch {
            let Some(instance) = self.targets.get(&e.tgid) else {
                continue;
            };
            let at_ms = e.start_ns.saturating_sub(self.t0_ns) / 1_000_000;
            self.seen
                .add(instance, route_of(&e), e.lat_ns, e.status, at_ms);
        }
    }

    fn tick(&mut self, _second: u64) -> Option<(String, serde_json::Value)> {
        let routes = std::mem::take(&mut self.seen.this_second);
        let mut s = Stats::default();
        for r in routes.values() {
            s.merge(r);
        }
        if s.count() == 0 {
            return None;
        }
        let q = s.quantiles_us(&[0.5, 0.99]);
        let line = format!(
            "{:>6} requests   p50 {}   p99 {}   5xx {}",
            s.count(),
            human_us(q[0]),
            human_us(q[1]),
            s.classes[3]
        );
        // Per-route p99 of each second, the statistic the load generator reports.
        let mut value = s.json();
        let mut rows: Vec<(&RouteKey, &Stats)> = routes.iter().collect();
        rows.sort_by(|a, b| a.0.cmp(b.0));
        value["routes"] = rows
            .iter()
            .map(|(k, r)| {
                let mut v = r.json();
                v["instance"] = json!(k.instance);
                v["route"] = json!(k.route);
                v
            })
            .collect();
        Some((line, value))
    }

    fn finish(self: Box<Self>, elapsed: Duration) -> Report {
        let lost = self.object.percpu_sum("http_stats", LOST).unwrap_or(0);
        let unmatched = self.object.percpu_sum("http_stats", UNMATCHED).unwrap_or(0);
        let secs = elapsed.as_secs_f64().max(1e-3);
        let total = self.seen.total();
        let mut head = format!(
            "{total} requests in {secs:.1} s ({:.0}/s); {lost} lost (ring full), {unmatched} \
             already in progress when the probe attached.\n",
            total as f64 / secs
        );
        for p in &self.probed {
            let s = &p.points.serve;
            head.push_str(&format!(
                "  {} (pid {}): {}, {}, {SERVE} at {:#x} (from {}, {} RETs probed)\n",
                p.instance,
                p.pid,
                p.binary,
                p.points.version,
                s.address,
                s.table.name(),
                s.rets.len()
            ));
        }
        for s in &self.skipped {
            head.push_str(&format!("  not probed: {s}\n"));
        }
        let text = self.seen.text(&head);
        let mut routes: Vec<(&RouteKey, &Stats)> = self.seen.routes.iter().collect();
        routes.sort_by(|a, b| a.0.cmp(b.0));
        let summary = json!({
            "requests": total,
            "requests_per_s": (total as f64 / secs * 10.0).round() / 10.0,
            "lost": lost,
            "unmatched": unmatched,
            "processes": self.probed.iter().map(|p| {
                let mut v = p.json(&p.points.serve);
                v["go"] = json!(p.points.version);
                v
            }).collect::<Vec<_>>(),
            "routes": routes.iter().map(|(k, s)| {
                let mut v = s.json();
                v["instance"] = json!(k.instance);
                v["route"] = json!(k.route);
                v
            }).collect::<Vec<_>>(),
            "instances": self.seen.per_instance().iter().map(|(i, s)| {
                let mut v = s.json();
                v["instance"] = json!(i);
                v
            }).collect::<Vec<_>>(),
            "slowest": self.seen.slowest.iter().map(|s| json!({
                "instance": s.instance,
                "route": s.route,
                "status": status_name(s.status).parse::<u32>().unwrap_or(200),
                "duration_us": s.lat_ns / 1000,
                "at_ms": s.at_ms,
            })).collect::<Vec<_>>(),
        });
        Report { text, summary }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(path: &str, path_len: u32) -> Event {
        let mut e = Event {
            start_ns: 0,
            lat_ns: 0,
            tgid: 1,
            status: 0,
            path_len,
            pad: 0,
            path: [0; PATH_MAX_LEN],
        };
        e.path[..path.len()].copy_from_slice(path.as_bytes());
        e
    }

    #[test]
    fn routes_mark_cut_paths() {
        assert_eq!(route_of(&event("/checkout", 9)), "/checkout");
        assert_eq!(route_of(&event("", 0)), "(no path)");
        let long = "/a".repeat(32);
        assert_eq!(route_of(&event(&long, 80)), format!("{long}…"));
    }

    #[test]
    fn buildinfo_versions_and_layouts() {
        let mut data = vec![0u8; 7];
        data.extend_from_slice(b"\xff Go buildinf:\x08\x02");
        data.extend_from_slice(&[0; 16]);
        data.push(8);
        data.extend_from_slice(b"go1.19.8junk");
        assert_eq!(go_version(&data).as_deref(), Some("go1.19.8"));
        // Go 1.17 and older kept the version behind a pointer: not read.
        data[7 + 15] = 0;
        assert_eq!(go_version(&data), None);
        assert_eq!(layout_for("go1.26.8").map(|l| l.path_off), Some(56));
        assert_eq!(layout_for("go1.19.8").map(|l| l.url_off), Some(16));
        assert_eq!(layout_for("go1.17.13"), None);
        assert_eq!(layout_for("devel"), None);
    }

    #[test]
    fn quantiles_are_exact_nearest_rank() {
        let mut s = Stats::default();
        for i in 1..=200u64 {
            s.add(i * 1_000_000, if i % 50 == 0 { 503 } else { 0 });
        }
        assert_eq!(
            s.quantiles_us(&[0.5, 0.99, 1.0]),
            [100_000.0, 198_000.0, 200_000.0]
        );
        assert_eq!(s.classes, [196, 0, 0, 4, 0]);
    }

    /// The report a learner reads: per route, per instance, slowest requests.
    #[test]
    fn report_table_snapshot() {
        let mut seen = Seen::default();
        for i in 0..100u64 {
            seen.add(
                "api-0",
                "/checkout".into(),
                (60 + i % 7) * 1_000_000,
                0,
                i * 10,
            );
            seen.add("api-0", "/health".into(), 40_000 + i * 100, 200, i * 10 + 1);
            seen.add(
                "api-1",
                "/checkout".into(),
                (61 + i % 5) * 1_000_000,
                0,
                i * 10 + 2,
            );
        }
        seen.add("api-1", "/checkout".into(), 2_400_000_000, 503, 555);
        seen.add("api-0", "/missing".into(), 90_000, 404, 777);
        let text = seen.text("head\n");
        insta::assert_snapshot!(text);
    }

    #[test]
    fn routes_beyond_the_cap_are_pooled() {
        let mut seen = Seen::default();
        for i in 0..MAX_ROUTES + 5 {
            seen.add("web-0", format!("/item/{i}"), 1000, 200, 0);
        }
        assert_eq!(seen.routes.len(), MAX_ROUTES + 1);
        let other = RouteKey {
            instance: "web-0".into(),
            route: "(other paths)".into(),
        };
        assert_eq!(seen.routes[&other].count(), 5);
    }
}

/// Needs root (eBPF) and a Go toolchain; talks to Go processes on loopback only.
#[cfg(test)]
mod kernel_tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::process::Command;

    use super::*;
    use crate::gobuild::{self, Toolchain};
    use crate::probe::goproc::testing::start;

    fn get(port: u16, path: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
            .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        reply
    }

    /// The admin server of a stripped `store` binary of every Go toolchain here: routes,
    /// statuses and the Go version come out right without a symbol table.
    #[test]
    fn stripped_binaries_of_each_go_are_probed() {
        if !crate::sys::is_root() {
            eprintln!("SKIPPED stripped_binaries_of_each_go_are_probed: needs root");
            return;
        }
        let tcs = Toolchain::all();
        assert!(!tcs.is_empty(), "no Go toolchain");
        for tc in tcs {
            let dir = tempfile::tempdir().unwrap();
            let bin = dir.path().join("store");
            let built = gobuild::build(&tc).unwrap().dir.join("store");
            let ok = Command::new("strip")
                .arg("-o")
                .arg(&bin)
                .arg(&built)
                .status()
                .unwrap();
            assert!(ok.success(), "strip(1) failed");
            let data = std::fs::read(&bin).unwrap();
            let points = points(&data, "store").unwrap();
            assert_eq!(points.serve.table, gosym::Table::Pclntab, "{}", tc.version);
            assert_eq!(points.version, tc.version);
            let svc = start(&bin);
            let found = GoProcess {
                instance: "store-0".into(),
                pid: svc.0.id(),
                exe: format!("/proc/{}/exe", svc.0.id()).into(),
                binary: bin.display().to_string(),
                points,
            };
            let mut probe = Box::new(load(vec![found], Vec::new()).unwrap());
            for _ in 0..30 {
                assert!(get(svc.1, "/health").starts_with("HTTP/1.0 200"));
            }
            for _ in 0..5 {
                assert!(get(svc.1, "/no/such/page").starts_with("HTTP/1.0 404"));
            }
            std::thread::sleep(Duration::from_millis(100));
            probe.poll();
            let report = probe.finish(Duration::from_secs(1));
            let routes = report.summary["routes"].as_array().unwrap();
            let route = |p: &str| {
                routes
                    .iter()
                    .find(|r| r["route"] == p)
                    .unwrap_or_else(|| panic!("{}: no route {p}: {:#}", tc.version, report.summary))
            };
            assert_eq!(route("/health")["count"], 30, "{}", tc.version);
            assert_eq!(route("/health")["status"]["2xx"], 30, "{}", tc.version);
            assert_eq!(route("/no/such/page")["status"]["4xx"], 5, "{}", tc.version);
            assert_eq!(routes.len(), 2, "{:#}", report.summary);
            assert!(
                get(svc.1, "/health").starts_with("HTTP/1.0 200"),
                "still serving"
            );
        }
    }
}
