#!/usr/bin/env bash
# Starts or stops a Docker daemon for the Docker and kind backends on a machine without systemd,
# with options that leave the host's firewall, forwarding and other bridges exactly as they were:
# no iptables rules (Docker's FORWARD DROP would cut every other bridge on the host), no
# ip_forward, no docker0. Containers on a lab's network reach each other and the host's bridge
# address, and nothing beyond the machine.
#
#   scripts/dockerd.sh start    start one unless a daemon already answers; prints "started" or "running"
#   scripts/dockerd.sh stop     stop the daemon this script started (never one it did not)
#   scripts/dockerd.sh status   exit 0 when a daemon answers
set -euo pipefail
sock=/var/run/docker.sock
run=/run/sandbox-dockerd
pidfile=$run/pid
log=$run/dockerd.log

answers() { docker -H "unix://$sock" version >/dev/null 2>&1; }

case "${1:-}" in
  start)
    if answers; then echo running; exit 0; fi
    command -v dockerd >/dev/null || { echo "dockerd not found: apt-get install docker.io" >&2; exit 3; }
    mkdir -p "$run"
    # dockerd writes these as it starts; keep what they were so stop can put them back.
    sysctl -n net.ipv4.ip_forward net.ipv4.conf.all.accept_redirects > "$run/sysctls"
    setsid dockerd -H "unix://$sock" --pidfile "$pidfile" \
      --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false --bridge=none \
      --userland-proxy=true > "$log" 2>&1 < /dev/null &
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
  status) answers ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
