//! A class made for a test and `sandbox serve` running it, reached over plain HTTP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::{sandbox, text};

/// One HTTP/1.1 exchange: status, headers (lower-case names) and body.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("the server accepts");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let _ = s.write_all(body.as_bytes());
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {raw:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

/// A learner or instructor as the server knows them: by the token of their link.
pub struct Client {
    pub port: u16,
    pub auth: String,
}

impl Client {
    pub fn get(&self, path: &str) -> Reply {
        http(self.port, "GET", path, &[("Authorization", &self.auth)], "")
    }
    pub fn post_json(&self, path: &str, body: &str) -> Reply {
        http(
            self.port,
            "POST",
            path,
            &[
                ("Authorization", &self.auth),
                ("Content-Type", "application/json"),
            ],
            body,
        )
    }
    pub fn post(&self, path: &str, body: &str) -> Reply {
        http(
            self.port,
            "POST",
            path,
            &[("Authorization", &self.auth)],
            body,
        )
    }
}

/// `sandbox serve`, killed when dropped.
pub struct Server(Child);

impl Server {
    pub fn start(class: &str, port: u16, env: &[(&str, &str)]) -> Server {
        Server::start_with(class, port, env, &[])
    }

    pub fn start_with(class: &str, port: u16, env: &[(&str, &str)], args: &[&str]) -> Server {
        let child = sandbox()
            .args(["serve", class, "--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "serve did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Server(child)
    }
    pub fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A class made for a test, in its own class directory, with the packet-loss scenario's
/// fault firing after a second (`loss.yaml` beside the course).
pub struct TestClass {
    pub home: tempfile::TempDir,
    pub port: u16,
    pub instructor: String,
}

impl TestClass {
    pub fn create(name: &str, course: &str) -> TestClass {
        let home = tempfile::tempdir().unwrap();
        let loss = sandbox::scenario::find_bundled("packet-loss")
            .unwrap()
            .text
            .replace("start_after: 20s", "start_after: 1s");
        std::fs::write(home.path().join("loss.yaml"), loss).unwrap();
        std::fs::write(home.path().join("course.yaml"), course).unwrap();
        std::fs::write(
            home.path().join("roster.csv"),
            "name,email\nann,a@example.org\nbob,b@example.org\n",
        )
        .unwrap();
        let port = free_port();
        let links = home.path().join("links.csv");
        let out = sandbox()
            .args(["class", "create"])
            .arg(home.path().join("course.yaml"))
            .arg("--roster")
            .arg(home.path().join("roster.csv"))
            .args([
                "--name",
                name,
                "--url",
                &format!("http://127.0.0.1:{port}"),
                "--links",
            ])
            .arg(&links)
            .env("SANDBOX_CLASS_DIR", home.path().join("classes"))
            .output()
            .unwrap();
        let all = text(&out);
        assert!(out.status.success(), "{all}");
        let instructor = all
            .lines()
            .find_map(|l| l.trim().split_once("/i/").map(|(_, t)| t.to_string()))
            .unwrap_or_else(|| panic!("no instructor link in:\n{all}"));
        TestClass {
            home,
            port,
            instructor,
        }
    }

    pub fn env(&self) -> [(&'static str, String); 1] {
        [(
            "SANDBOX_CLASS_DIR",
            self.home.path().join("classes").display().to_string(),
        )]
    }

    pub fn dir(&self, class: &str) -> std::path::PathBuf {
        self.home.path().join("classes").join(class)
    }

    /// The token of `name`'s link.
    pub fn token_of(&self, name: &str) -> String {
        std::fs::read_to_string(self.home.path().join("links.csv"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name},")).map(str::to_string))
            .and_then(|link| link.split_once("/l/").map(|(_, t)| t.to_string()))
            .unwrap_or_else(|| panic!("no link for {name}"))
    }
}

/// A program on `PATH`.
pub fn which(program: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .ok_or(())
}
