#!/usr/bin/env bash
# Starts or stops a Docker daemon for the Docker and kind backends on a machine without systemd,
# with options that leave the host's firewall, forwarding and other bridges exactly as they were:
# no iptables rules (Docker's FORWARD DROP would cut every other bridge on the host), no
# ip_forward, no docker0. Containers on a lab's network reach each other and the host's bridge
# address, and nothing beyond the machine.
#
# Its default runtime is scripts/runc-caps (copied to /run/sandbox-dockerd), which removes from a
# privileged container's spec the capabilities this machine's bounding set lacks, so privileged
# containers (kind's nodes) start; on other containers it changes nothing.
#
#   scripts/dockerd.sh start    start one unless a daemon already answers; prints "started" or "running"
#   scripts/dockerd.sh stop     stop the daemon this script started (never one it did not)
#   scripts/dockerd.sh restart  stop, then start (picks up a changed runtime)
#   scripts/dockerd.sh status   exit 0 when a daemon answers
#   scripts/dockerd.sh runtime  exit 0 when the daemon's default runtime is the wrapper
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sock=/var/run/docker.sock
run=/run/sandbox-dockerd
pidfile=$run/pid
log=$run/dockerd.log
runtime=sandbox-runc

answers() { docker -H "unix://$sock" version >/dev/null 2>&1; }
has_runtime() { [ "$(docker -H "unix://$sock" info --format '{{.DefaultRuntime}}' 2>/dev/null)" = "$runtime" ]; }

case "${1:-}" in
  start)
    if answers; then
      has_runtime || echo "note: this daemon's default runtime is not $runtime; privileged containers (kind) fail until: $0 restart" >&2
      echo running; exit 0
    fi
    command -v dockerd >/dev/null || { echo "dockerd not found: apt-get install docker.io" >&2; exit 3; }
    mkdir -p "$run"
    # A copy, so the daemon does not depend on this checkout staying where it is.
    install -m 0755 "$here/runc-caps" "$run/runc-caps"
    # dockerd writes these as it starts; keep what they were so stop can put them back.
    sysctl -n net.ipv4.ip_forward net.ipv4.conf.all.accept_redirects > "$run/sysctls"
    setsid dockerd -H "unix://$sock" --pidfile "$pidfile" \
      --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false --bridge=none \
      --userland-proxy=true --add-runtime "$runtime=$run/runc-caps" --default-runtime "$runtime" \
      > "$log" 2>&1 < /dev/null &
    for _ in $(seq 1 200); do answers && { echo started; exit 0; }; sleep 0.05; done
    echo "dockerd did not answer within 10 s; its log is $log" >&2
    tail -20 "$log" >&2
    exit 1
    ;;
  stop)
    [ -f "$pidfile" ] || { echo "no daemon started by this script"; exit 0; }
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    rm -f "$pidfile"
    # What dockerd changes even with the options above: empty cgroup directories, and the
    # sysctls a kernel side effect of its start may flip.
    for d in /sys/fs/cgroup/*/docker; do [ -d "$d" ] && rmdir "$d" 2>/dev/null || true; done
    if [ -f "$run/sysctls" ]; then
      { read -r fwd; read -r redir; } < "$run/sysctls"
      sysctl -qw "net.ipv4.ip_forward=$fwd" "net.ipv4.conf.all.accept_redirects=$redir"
    fi
    mountpoint -q /var/lib/docker && umount /var/lib/docker || true
    echo stopped
    ;;
  restart) "$0" stop && "$0" start ;;
  status) answers ;;
  runtime) answers && has_runtime ;;
  *) echo "usage: $0 start|stop|restart|status|runtime" >&2; exit 2 ;;
esac
