//! The one HTTP request at a time the lab needs: health checks and app-fault switches on the
//! services' control plane, and profiles from their pprof endpoints. Plain HTTP/1.1 with
//! `Connection: close` (HTTP/1.0 for downloads, so that Go never chunks them), blocking, with a
//! deadline.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{addr}: malformed response")]
    Malformed { addr: SocketAddr },
}

/// Sends one request and returns the status code and body.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> Result<(u16, String), HttpError> {
    let io = |source| HttpError::Io { addr, source };
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(io)?;
    let mut buf = Vec::new();
    s.take(1 << 20).read_to_end(&mut buf).map_err(io)?;
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or(HttpError::Malformed { addr })?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Downloads `path` as raw bytes (a pprof profile is gzipped protobuf) of at most `limit`
/// bytes. HTTP/1.0, so the body ends where the connection does, unchunked.
pub fn get_bytes(
    addr: SocketAddr,
    path: &str,
    limit: u64,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), HttpError> {
    let io = |source| HttpError::Io { addr, source };
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(io)?;
    let mut buf = Vec::new();
    s.take(limit).read_to_end(&mut buf).map_err(io)?;
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(HttpError::Malformed { addr })?;
    let status = String::from_utf8_lossy(&buf[..end])
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or(HttpError::Malformed { addr })?;
    Ok((status, buf.split_off(end + 4)))
}
