//! Text that came from a file (a scenario, findings, a bundle, a log) on its way to a terminal:
//! control characters and escape sequences in it could recolour, rewrite or hide what the
//! reader sees, so every one is shown as `?` instead.

use std::borrow::Cow;

/// Lets a closed standard output end the process quietly, as it ends `ls | head`, instead of
/// a failed print panicking (Rust ignores SIGPIPE). Only for commands that read and print:
/// one that makes something, or feeds another process through a pipe, must not end midway.
pub fn quit_on_closed_stdout() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: restores the default disposition before any thread starts; no handler runs.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

/// Whether `c` may reach a terminal as it is: not a C0 or C1 control (newline and tab aside),
/// not DEL, and not a bidirectional override that reorders what is shown.
fn harmless(c: char) -> bool {
    match c {
        '\n' | '\t' => true,
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' => false,
        c => !c.is_control(),
    }
}

/// `s` with each control character (escape sequences start with one) replaced by as many `?`
/// as it has bytes, so byte offsets into the text still point at the same places. A carriage
/// return right before a newline is kept: it only ends a Windows line.
pub fn safe(s: &str) -> Cow<'_, str> {
    let bad = |(i, c): (usize, char)| {
        let line_end = c == '\r' && s[i + 1..].starts_with('\n');
        !(harmless(c) || line_end)
    };
    if !s.char_indices().any(bad) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.char_indices() {
        if bad((i, c)) {
            out.extend(std::iter::repeat_n('?', c.len_utf8()));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// At most `max` characters of `s`, made safe, with `…` when cut.
pub fn short(s: &str, max: usize) -> String {
    let cut: String = s.chars().take(max).collect();
    let more = if cut.len() < s.len() { "…" } else { "" };
    format!("{}{more}", safe(&cut))
}

/// A parser's message with the values it quotes (`"…"`, text of the file) left out unless
/// each is one short word (`found "refused"`), and quoted names (`` `…` ``) kept short, so an
/// error never echoes a file's content (a key's line, a whole first line).
pub fn redact_quoted(msg: &str) -> String {
    let mut out = String::new();
    let mut rest = msg;
    while let Some(i) = rest.find(['"', '`']) {
        let q = rest[i..].chars().next().unwrap_or('"');
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let Some(j) = after.find(q) else {
            out.push_str(&rest[i..]);
            rest = "";
            break;
        };
        if q == '"' {
            let value = &after[..j];
            let word = value.len() <= 16
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            out.push('"');
            out.push_str(if word { value } else { "…" });
            out.push('"');
        } else {
            out.push('`');
            out.push_str(&short(&after[..j], 40));
            out.push('`');
        }
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    safe(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_controls_become_visible_and_keep_offsets() {
        let s = "ok\x1b[2J\x1b]0;title\x07 \u{9b}31m \u{202e}txt\r\nline\rover\tx";
        let out = safe(s);
        assert_eq!(out.len(), s.len(), "{out}");
        assert_eq!(
            out, "ok?[2J?]0;title? ??31m ???txt\r\nline?over\tx",
            "ESC, BEL, CSI (C1), RLO and a lone CR are shown as ?"
        );
        assert!(matches!(safe("plain\ntext"), Cow::Borrowed(_)));
    }

    #[test]
    fn quoted_values_are_left_out_and_names_kept_short() {
        assert_eq!(
            redact_quoted("invalid type: string \"AGE-SECRET-KEY-1XYZ\", expected u64"),
            "invalid type: string \"…\", expected u64"
        );
        assert_eq!(
            redact_quoted("string \"password=hunter2\", found \"refused\""),
            "string \"…\", found \"refused\""
        );
        let long = format!("unknown field `{}\x1b`, expected `a`", "x".repeat(80));
        let r = redact_quoted(&long);
        assert!(
            r.starts_with(&format!("unknown field `{}…`", "x".repeat(40))),
            "{r}"
        );
        assert!(r.ends_with("expected `a`") && !r.contains('\x1b'), "{r}");
    }
}
