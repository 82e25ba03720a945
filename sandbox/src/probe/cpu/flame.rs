//! A flame graph as a standalone SVG: stacks merged by common prefix, root at the bottom, each
//! frame as wide as its share of the samples. Hovering a frame shows its name and count.

use std::collections::BTreeMap;
use std::fmt::Write;

const WIDTH: f64 = 1200.0;
const PAD: f64 = 10.0;
const FRAME_H: f64 = 16.0;
const TOP: f64 = 36.0;
const FONT: f64 = 12.0;
/// Frames narrower than this many pixels are left out: unreadable, and they bloat the file.
const MIN_WIDTH: f64 = 0.1;

#[derive(Default)]
struct Node {
    count: u64,
    children: BTreeMap<String, Node>,
}

impl Node {
    fn depth(&self) -> usize {
        1 + self.children.values().map(Node::depth).max().unwrap_or(0)
    }
}

/// Renders `stacks` (frames root first, and a sample count) under `title`.
pub fn svg(title: &str, stacks: &[(Vec<String>, u64)]) -> String {
    let mut root = Node::default();
    for (frames, n) in stacks {
        root.count += n;
        let mut node = &mut root;
        for f in frames {
            node = node.children.entry(f.clone()).or_default();
            node.count += n;
        }
    }
    let depth = root.depth(); // includes the "all" frame
    let height = TOP + depth as f64 * FRAME_H + PAD * 2.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r##"<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<svg version="1.1" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="Verdana, sans-serif" font-size="{FONT}">
<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#f8f8f8"/>
<text x="{}" y="24" text-anchor="middle" font-size="17">{}</text>"##,
        WIDTH / 2.0,
        escape(title)
    );
    if root.count == 0 {
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">no samples</text>"#,
            WIDTH / 2.0,
            TOP + 20.0
        );
    } else {
        let scale = (WIDTH - 2.0 * PAD) / root.count as f64;
        let all = format!("all ({} samples)", root.count);
        draw(&mut out, &all, &root, root.count, PAD, height - PAD, scale);
    }
    out.push_str("</svg>\n");
    out
}

/// Draws `node` with its bottom edge at `bottom`, then its children above it.
fn draw(out: &mut String, name: &str, node: &Node, total: u64, x: f64, bottom: f64, scale: f64) {
    let w = node.count as f64 * scale;
    let y = bottom - FRAME_H;
    let pct = node.count as f64 * 100.0 / total as f64;
    let label = fit(name, w);
    let _ = writeln!(
        out,
        r#"<g><title>{} ({} samples, {pct:.2}%)</title><rect x="{x:.2}" y="{y:.1}" width="{:.2}" height="{}" rx="2" fill="{}"/>{}</g>"#,
        escape(name),
        node.count,
        (w - 0.5).max(0.1),
        FRAME_H - 1.0,
        color(name),
        if label.is_empty() {
            String::new()
        } else {
            format!(
                r#"<text x="{:.2}" y="{:.1}">{}</text>"#,
                x + 3.0,
                y + FRAME_H - 4.5,
                escape(&label)
            )
        }
    );
    let mut cx = x;
    for (child_name, child) in &node.children {
        let cw = child.count as f64 * scale;
        if cw >= MIN_WIDTH {
            draw(out, child_name, child, total, cx, y, scale);
        }
        cx += cw;
    }
}

/// As much of `name` as fits in `width` pixels, or nothing.
fn fit(name: &str, width: f64) -> String {
    let room = ((width - 6.0) / (FONT * 0.59)).floor();
    if room < 3.0 {
        return String::new();
    }
    let room = room as usize;
    if name.chars().count() <= room {
        name.to_string()
    } else {
        let mut s: String = name.chars().take(room - 2).collect();
        s.push_str("..");
        s
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Warm colours for user code, orange for the kernel, grey for the markers in brackets; the
/// shade comes from the name, so a function keeps its colour across graphs.
fn color(name: &str) -> String {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let v = |shift: u32| ((h >> shift) & 0xff) as f64 / 255.0;
    if name.starts_with('[') || name.starts_with("all (") {
        let g = 190 + (v(0) * 30.0) as u8;
        format!("rgb({g},{g},{g})")
    } else if name.ends_with("_[k]") {
        format!(
            "rgb({},{},{})",
            220 + (v(0) * 35.0) as u8,
            140 + (v(8) * 50.0) as u8,
            40 + (v(16) * 30.0) as u8
        )
    } else {
        format!(
            "rgb({},{},{})",
            205 + (v(0) * 50.0) as u8,
            (v(8) * 230.0) as u8,
            (v(16) * 55.0) as u8
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(frames: &str, n: u64) -> (Vec<String>, u64) {
        (frames.split(';').map(str::to_string).collect(), n)
    }

    #[test]
    fn frames_merge_by_prefix_and_widths_follow_counts() {
        let s = svg(
            "t <&>",
            &[
                stack("api-0;runtime.goexit;main.burnCPU", 3),
                stack("api-0;runtime.goexit;main.serve", 1),
            ],
        );
        assert!(s.contains("t &lt;&amp;&gt;"));
        assert_eq!(s.matches("<title>runtime.goexit (4 samples").count(), 1);
        assert!(s.contains("<title>main.burnCPU (3 samples, 75.00%)"));
        assert!(s.contains("<title>main.serve (1 samples, 25.00%)"));
        assert_eq!(s.matches("<g>").count(), s.matches("</g>").count());
    }

    #[test]
    fn no_samples_still_make_a_picture() {
        assert!(svg("t", &[]).contains("no samples"));
    }

    #[test]
    fn long_names_are_cut_to_fit() {
        assert_eq!(fit("main.burnCPU", 1000.0), "main.burnCPU");
        assert_eq!(fit("main.burnCPU", 10.0), "");
        assert!(fit("main.burnCPUxxxxxxxxxxxxxxxx", 60.0).ends_with(".."));
    }
}
