//! Running host tools with their failures turned into errors that show the command and what
//! it printed.

use std::io::Write;
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    #[error("`{cmd}` could not start: {source} (is it installed? `sandbox doctor` checks)")]
    Spawn { cmd: String, source: std::io::Error },
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Failed {
        cmd: String,
        status: String,
        stderr: String,
    },
}

fn describe(c: &Command) -> String {
    let mut s = c.get_program().to_string_lossy().into_owned();
    for a in c.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `c`, feeding `stdin` if given; returns its standard output.
pub fn run_with_input(c: &mut Command, stdin: Option<&str>) -> Result<String, CmdError> {
    let cmd = describe(c);
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|source| CmdError::Spawn {
        cmd: cmd.clone(),
        source,
    })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A tool that exits early closes the pipe; its exit status tells the real story.
        let _ = pipe.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().map_err(|source| CmdError::Spawn {
        cmd: cmd.clone(),
        source,
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let stderr = if stderr.is_empty() {
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        } else {
            stderr
        };
        Err(CmdError::Failed {
            cmd,
            status: out.status.to_string(),
            stderr,
        })
    }
}

pub fn run(c: &mut Command) -> Result<String, CmdError> {
    run_with_input(c, None)
}

/// `ip -n <ns> -batch -` with one command per line: one process for many changes.
pub fn ip_batch(netns: Option<&str>, lines: &[String]) -> Result<(), CmdError> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut c = Command::new("ip");
    if let Some(ns) = netns {
        c.args(["-n", ns]);
    }
    c.args(["-batch", "-"]);
    run_with_input(&mut c, Some(&(lines.join("\n") + "\n"))).map(|_| ())
}
