#!/usr/bin/env bash
# Builds a kind node image without any container registry, from Debian packages and Go modules
# only, the way kind's own images/base Dockerfile and `kind build node-image` assemble one:
#
#   base     debootstrap bookworm with systemd, containerd, runc, CNI plugins and kind's base
#            files (entrypoint, units, containerd config; they ship inside the kind Go module)
#   binaries kubeadm, kubelet, kubectl and the control-plane commands (k8s.io/kubernetes through a
#            wrapper module), etcd, CoreDNS, crictl, kind, pause (C, from the kubernetes module)
#            and sandbox-cni (kind-configs/cni: kind's kindnetd is not a published Go module)
#   images   every image kubeadm and kind run, FROM scratch (`docker import`), saved as one tar
#   node     the base image with the Kubernetes binaries, /kind/version, the CNI manifest and the
#            images imported into containerd's k8s.io namespace, pinned; committed as the image
#
# The node image's tag is a hash of every input (versions, this script, kind-configs/cni), so
# a second run finds it and returns at once. Built binaries and the base root filesystem are
# kept in the cache directory; Go's own build and module caches are reused.
#
#   kind-configs/build-node-image.sh            build if absent; the last line is the image name
#   kind-configs/build-node-image.sh --paths    print what it builds (image, kind, kubectl, cni
#                                               image) as name=value lines, build nothing
#   kind-configs/build-node-image.sh --kind     build only the kind binary; print its path
#   kind-configs/build-node-image.sh --rebuild  build the node image even if it is present
#                                               (from whatever the cache holds)
#
# Environment: SANDBOX_KIND_CACHE (default /var/cache/sandbox/kind), GO (default: the newest of
# /usr/local/go/bin/go and go on PATH).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${SANDBOX_KIND_CACHE:-/var/cache/sandbox/kind}

K8S=v1.34.4
K8S_STAGING=v0.34.4
KIND=v0.30.0
ETCD=v3.6.5
COREDNS=v1.12.1
CRICTL=v1.34.0
PAUSE=3.10.1
SUITE=bookworm
MIRROR=${SANDBOX_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What kind's base Dockerfile installs, plus containerd, runc and the CNI plugins, which kind
# builds from source and Debian packages.
PACKAGES=systemd,dbus,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,fuse-overlayfs,bash,ca-certificates,jq,procps,containerd,runc,containernetworking-plugins

go=${GO:-}
if [ -z "$go" ]; then
  for g in /usr/local/go/bin/go "$(command -v go || true)"; do
    [ -x "$g" ] || continue
    case "$(GOTOOLCHAIN=local "$g" env GOVERSION)" in go1.2[4-9]*|go1.[3-9]*) go=$g; break ;; esac
  done
fi
[ -n "$go" ] || { echo "build-node-image: needs Go 1.24 or newer (Kubernetes 1.34 does); set GO=/path/to/go" >&2; exit 3; }
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

inputs() {
  echo "$K8S $K8S_STAGING $KIND $ETCD $COREDNS $CRICTL $PAUSE $SUITE $PACKAGES"
  GOTOOLCHAIN=local "$go" env GOVERSION
  cat "$0" "$here"/cni/go.mod "$here"/cni/*.go "$here"/cni/manifest.yaml
}
tag=$(inputs | sha256sum | cut -c1-16)
node_image=sandbox-kind-node:$tag
base_image=sandbox-kind-base:$tag
label=sandbox.owner=kind-image

bin=$cache/bin
kind_bin=$bin/kind-$KIND
if [ "${1:-}" = --paths ]; then
  printf 'image=%s\nkind=%s\nkubectl=%s\ncni_image=%s\n' "$node_image" "$kind_bin" \
    "$bin/kubernetes-$K8S/kubectl" "sandbox.local/cni:$tag"
  exit 0
fi

total_start=$(date +%s.%N)
n=0
step() { # step <what> <command...>: runs it, saying what and how long it took
  n=$((n + 1))
  local what=$1; shift
  local t0; t0=$(date +%s.%N)
  echo "[$n] $what ..."
  "$@"
  echo "[$n] $what: $(since "$t0") s"
}
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
cached() { echo "    cached: $1"; }

build_kind() {
  if [ -x "$kind_bin" ]; then cached "$kind_bin"; return; fi
  mkdir -p "$bin/.kind"
  GOBIN=$bin/.kind CGO_ENABLED=0 "$go" install "sigs.k8s.io/kind@$KIND"
  mv "$bin/.kind/kind" "$kind_bin"
}
step "kind $KIND (go install sigs.k8s.io/kind)" build_kind
if [ "${1:-}" = --kind ]; then echo "$kind_bin"; exit 0; fi

if [ "${1:-}" != --rebuild ] && docker image inspect "$node_image" >/dev/null 2>&1; then
  echo "node image $node_image is present (inputs unchanged)"
  echo "$node_image"
  exit 0
fi
docker version >/dev/null 2>&1 || { echo "build-node-image: no Docker daemon answers; start one: bash scripts/dockerd.sh start" >&2; exit 3; }
command -v debootstrap >/dev/null || { echo "build-node-image: needs debootstrap: apt-get install -y debootstrap" >&2; exit 3; }
command -v gcc >/dev/null || { echo "build-node-image: needs gcc (the pause binary is C): apt-get install -y gcc libc6-dev" >&2; exit 3; }

moddir() { "$go" mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'; }

# A module that requires $1 at $2 and replaces each of its own local replaces (the
# staging or sibling modules that `go install` refuses) with the released version $3.
wrapper() { # wrapper <dir> <module> <version> <replace-version>
  local dir=$1 mod=$2 ver=$3 rver=$4 src
  mkdir -p "$dir"
  src=$(moddir "$mod@$ver")
  {
    printf 'module sandbox.local/build/%s\n\ngo 1.24.0\n\nrequire %s %s\n\nreplace (\n' "$(basename "$dir")" "$mod" "$ver"
    sed -n 's#^\t\([a-z0-9./-]*\) => \.\./*[a-z0-9/.-]*$#\t\1 => \1 '"$rver"'#p; s#^replace \([a-z0-9./-]*\) => \.\./*[a-z0-9/.-]*$#\t\1 => \1 '"$rver"'#p; s#^\t\(k8s.io/[a-z0-9-]*\) => \./staging/.*#\t\1 => \1 '"$rver"'#p' "$src/go.mod"
    printf ')\n'
  } > "$dir/go.mod"
  printf 'package build\n' > "$dir/doc.go"
}

k8s_cmds="kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy"
build_kubernetes() {
  local out=$bin/kubernetes-$K8S c ok=1
  for c in $k8s_cmds; do [ -x "$out/$c" ] || ok=0; done
  if [ $ok = 1 ]; then cached "$out"; return; fi
  local w=$cache/src/kubernetes-$K8S
  wrapper "$w" k8s.io/kubernetes "$K8S" "$K8S_STAGING"
  local minor=${K8S#v1.} ld="-s -w" p
  minor=${minor%%.*}
  # The version ldflags hack/lib/version.sh sets; kubeadm reads them to pick its defaults.
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$K8S -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$w" && "$go" get $(for c in $k8s_cmds; do echo "k8s.io/kubernetes/cmd/$c@$K8S"; done) &&
    mkdir -p "$out.tmp" &&
    CGO_ENABLED=0 "$go" build -ldflags="$ld" -o "$out.tmp/" $(for c in $k8s_cmds; do echo "k8s.io/kubernetes/cmd/$c"; done))
  rm -rf "$out"; mv "$out.tmp" "$out"
}

build_etcd() {
  local out=$bin/etcd-$ETCD
  if [ -x "$out" ]; then cached "$out"; return; fi
  local w=$cache/src/etcd-$ETCD
  wrapper "$w" go.etcd.io/etcd/server/v3 "$ETCD" "$ETCD"
  (cd "$w" && "$go" get "go.etcd.io/etcd/server/v3@$ETCD" &&
    CGO_ENABLED=0 "$go" build -trimpath -ldflags="-s -w" -o "$out.tmp" go.etcd.io/etcd/server/v3)
  mv "$out.tmp" "$out"
}

go_install() { # go_install <out> <package@version>
  local out=$1
  if [ -x "$out" ]; then cached "$out"; return; fi
  rm -rf "$out.d"; mkdir -p "$out.d"
  GOBIN=$out.d CGO_ENABLED=0 "$go" install -trimpath -ldflags="-s -w" "$2"
  mv "$out.d"/* "$out"; rmdir "$out.d"
}

build_pause() {
  local out=$bin/pause-$PAUSE
  if [ -x "$out" ]; then cached "$out"; return; fi
  local src; src=$(moddir "k8s.io/kubernetes@$K8S")/build/pause/linux/pause.c
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE-sandbox" -o "$out.tmp" "$src"
  strip "$out.tmp"; mv "$out.tmp" "$out"
}

build_cni() {
  local out=$bin/sandbox-cni-$tag
  if [ -x "$out" ]; then cached "$out"; return; fi
  (cd "$here/cni" && CGO_ENABLED=0 "$go" build -trimpath -ldflags="-s -w" -o "$out.tmp" .)
  mv "$out.tmp" "$out"
}

# debootstrap's output alone, keyed by what it installs, so other changes reuse it.
bootstrap=$cache/rootfs/debootstrap-$SUITE-$(echo "$SUITE $PACKAGES" | sha256sum | cut -c1-16)
build_debootstrap() {
  if [ -f "$bootstrap/.done" ]; then cached "$bootstrap"; return; fi
  rm -rf "$bootstrap"; mkdir -p "$(dirname "$bootstrap")"
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$bootstrap" "$MIRROR" > "$bootstrap.log" 2>&1 ||
    { tail -20 "$bootstrap.log" >&2; exit 1; }
  rm -rf "$bootstrap"/var/cache/apt/archives/*.deb "$bootstrap"/var/lib/apt/lists/*
  touch "$bootstrap/.done"
}

rootfs=$cache/rootfs/node-$tag
build_rootfs() {
  if [ -f "$rootfs/.done" ]; then cached "$rootfs"; return; fi
  rm -rf "$rootfs"
  cp -a "$bootstrap" "$rootfs"
  rm -f "$rootfs/.done"
  local kind_src; kind_src=$(moddir "sigs.k8s.io/kind@$KIND")/images/base/files
  # kind's base files, with the modes its Dockerfile gives them.
  cp -r "$kind_src"/. "$rootfs"/
  chmod -R u+w "$rootfs"/etc "$rootfs"/kind "$rootfs"/usr/local/bin "$rootfs"/LICENSES
  chmod 0755 "$rootfs"/usr/local/bin/* "$rootfs"/kind/bin/*
  # kind's units and scripts expect its own build's paths.
  ln -sf /usr/bin/containerd "$rootfs"/usr/local/bin/containerd
  ln -sf /usr/bin/ctr "$rootfs"/usr/local/bin/ctr
  ln -sf /usr/bin/containerd-shim-runc-v2 "$rootfs"/usr/local/bin/containerd-shim-runc-v2
  mkdir -p "$rootfs"/opt/cni/bin
  for p in host-local loopback ptp portmap bridge; do ln -sf /usr/lib/cni/$p "$rootfs"/opt/cni/bin/$p; done
  install -m 0755 "$bin/crictl-$CRICTL" "$rootfs"/usr/local/bin/crictl
  # This machine's processes lack CAP_SYS_RESOURCE, so containerd may not raise oom_score_adj;
  # the pause image is the one kubeadm 1.34 names.
  sed -i -e 's/^\(\s*restrict_oom_score_adj\s*=\s*\).*/\1true/' \
    -e "s#^\(\s*sandbox_image\s*=\s*\).*#\1\"registry.k8s.io/pause:$PAUSE\"#" "$rootfs"/etc/containerd/config.toml
  # As kind's Dockerfile does: trim systemd to what a node needs, keep journald off kmsg.
  find "$rootfs"/lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete
  rm -f "$rootfs"/lib/systemd/system/multi-user.target.wants/* "$rootfs"/etc/systemd/system/*.wants/* \
    "$rootfs"/lib/systemd/system/local-fs.target.wants/* "$rootfs"/lib/systemd/system/sockets.target.wants/*udev* \
    "$rootfs"/lib/systemd/system/sockets.target.wants/*initctl* "$rootfs"/lib/systemd/system/basic.target.wants/*
  echo "ReadKMsg=no" >> "$rootfs"/etc/systemd/journald.conf
  ln -sf /lib/systemd/systemd "$rootfs"/sbin/init
  chroot "$rootfs" systemctl enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
  # systemd-sysctl would write the host's global sysctls from a privileged node.
  chroot "$rootfs" systemctl mask systemd-binfmt.service systemd-sysctl.service >/dev/null 2>&1
  mkdir -p "$rootfs"/etc/kubernetes/manifests
  # The OCI spec containerd starts from, as kind derives it.
  chroot "$rootfs" ctr oci spec | jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' |
    jq 'del(.process.rlimits)' > "$rootfs"/etc/containerd/cri-base.json
  touch "$rootfs/.done"
}

build_base() {
  if docker image inspect "$base_image" >/dev/null 2>&1; then cached "$base_image"; return; fi
  tar -C "$rootfs" --exclude=./.done -c . | docker import --change 'ENV container=docker' \
    --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' - "$base_image" >/dev/null
}

# Copies binaries from the base root filesystem with the libraries they load, for the images
# whose programs run iptables, nft, conntrack or ip.
with_libs() { # with_libs <dest> <path-in-rootfs...>
  local dest=$1 p l; shift
  for p in "$@"; do
    # Dereferenced inside the root filesystem: Debian's alternatives links are absolute.
    mkdir -p "$dest$(dirname "$p")"; cp "$rootfs$(chroot "$rootfs" readlink -f "$p")" "$dest$p"
    chroot "$rootfs" ldd "$p" 2>/dev/null | grep -o '/[^ ]*' | while read -r l; do
      mkdir -p "$dest$(dirname "$l")"; cp "$rootfs$(chroot "$rootfs" readlink -f "$l")" "$dest$l"
    done
  done
}

images_tar=$cache/images-$tag.tar
k8s_images=()
build_images() {
  if [ -f "$images_tar" ]; then cached "$images_tar"; return; fi
  local work=$cache/work-$tag kb=$bin/kubernetes-$K8S
  rm -rf "$work"; mkdir -p "$work"
  local etcd_tag; etcd_tag=$("$kb/kubeadm" config images list --kubernetes-version "$K8S" | grep /etcd: | sed 's/.*://')
  local imp=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin')
  mk() { # mk <image> <dir> [docker import --change...]
    local name=$1 dir=$2; shift 2
    tar -C "$dir" -c . | docker import "${imp[@]}" "$@" - "$name" >/dev/null
    k8s_images+=("$name")
  }
  local c
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    mkdir -p "$work/$c/usr/local/bin"; cp "$kb/$c" "$work/$c/usr/local/bin/"
    mk "registry.k8s.io/$c:$K8S" "$work/$c"
  done
  mkdir -p "$work/kube-proxy/usr/local/bin" "$work/kube-proxy/usr/lib/x86_64-linux-gnu" "$work/kube-proxy/run" "$work/kube-proxy/tmp"
  cp "$kb/kube-proxy" "$work/kube-proxy/usr/local/bin/"
  with_libs "$work/kube-proxy" /usr/sbin/nft /usr/sbin/conntrack /usr/sbin/xtables-nft-multi \
    /usr/sbin/iptables /usr/sbin/iptables-save /usr/sbin/iptables-restore /usr/sbin/ip6tables \
    /usr/sbin/ip6tables-save /usr/sbin/ip6tables-restore
  cp -a "$rootfs"/usr/lib/x86_64-linux-gnu/xtables "$work/kube-proxy/usr/lib/x86_64-linux-gnu/"
  mk "registry.k8s.io/kube-proxy:$K8S" "$work/kube-proxy"
  mkdir -p "$work/etcd/usr/local/bin" "$work/etcd/var/lib/etcd" "$work/etcd/tmp"
  cp "$bin/etcd-$ETCD" "$work/etcd/usr/local/bin/etcd"
  mk "registry.k8s.io/etcd:$etcd_tag" "$work/etcd"
  mkdir -p "$work/coredns/etc"; cp "$bin/coredns-$COREDNS" "$work/coredns/coredns"
  mk "registry.k8s.io/coredns/coredns:$COREDNS" "$work/coredns" --change 'ENTRYPOINT ["/coredns"]'
  mkdir -p "$work/pause"; cp "$bin/pause-$PAUSE" "$work/pause/pause"
  mk "registry.k8s.io/pause:$PAUSE" "$work/pause" --change 'ENTRYPOINT ["/pause"]'
  mkdir -p "$work/cni/tmp"; cp "$bin/sandbox-cni-$tag" "$work/cni/sandbox-cni"
  with_libs "$work/cni" /usr/bin/ip
  mk "sandbox.local/cni:$tag" "$work/cni"
  docker save -o "$images_tar.tmp" "${k8s_images[@]}"
  docker rmi "${k8s_images[@]}" >/dev/null
  mv "$images_tar.tmp" "$images_tar"
  rm -rf "$work"
}

build_node() {
  local name=sandbox-kind-build-$tag kb=$bin/kubernetes-$K8S
  docker rm -f "$name" >/dev/null 2>&1 || true
  # containerd alone, not systemd: only its content store is needed to import the images.
  docker run -d --name "$name" --privileged --label "$label" --network none \
    -v "$images_tar:/images.tar:ro" --entrypoint /usr/bin/containerd "$base_image" >/dev/null
  trap 'docker rm -f "$name" >/dev/null 2>&1 || true' EXIT
  local i
  for i in $(seq 1 100); do docker exec "$name" ctr version >/dev/null 2>&1 && break; sleep 0.1; done
  docker exec "$name" ctr -n k8s.io images import --all-platforms --no-unpack --digests /images.tar >/dev/null
  # Pinned, so the kubelet's image garbage collection never removes them.
  docker exec "$name" sh -c 'ctr -n k8s.io images ls -q | xargs -r -I{} ctr -n k8s.io images label {} io.cri-containerd.pinned=pinned' >/dev/null
  for i in kubeadm kubelet kubectl; do docker cp "$kb/$i" "$name:/usr/bin/$i"; done
  docker exec "$name" mkdir -p /kind/manifests
  echo "$K8S" | docker exec -i "$name" sh -c 'cat > /kind/version'
  sed "s#CNI_IMAGE#sandbox.local/cni:$tag#" "$here/cni/manifest.yaml" |
    docker exec -i "$name" sh -c 'cat > /kind/manifests/default-cni.yaml'
  docker stop -t 5 "$name" >/dev/null
  docker commit --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
    --change 'CMD []' --change 'ENV container=docker' "$name" "$name:committed" >/dev/null
  docker rm -f "$name" >/dev/null
  # What `docker commit` cannot set: systemd's stop signal, and the label.
  local err
  err=$(printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\nLABEL %s\n' "$name:committed" "$label" |
    docker build -q -t "$node_image" - 2>&1 >/dev/null) || { echo "$err" >&2; exit 1; }
  docker rmi "$name:committed" >/dev/null
  trap - EXIT
  # The base image is an intermediate; its root filesystem stays in the cache.
  docker rmi "$base_image" >/dev/null 2>&1 || true
}

# What builds for other inputs left: intermediate files named by an older tag, and older node
# images no container uses (docker refuses to remove those).
prune() {
  local f
  for f in "$cache"/images-*.tar "$cache"/rootfs/node-* "$bin"/sandbox-cni-*; do
    case "$f" in *"$tag"*) ;; *) [ -e "$f" ] && rm -rf "$f" ;; esac
  done
  docker images --filter "label=$label" --format '{{.Repository}}:{{.Tag}}' |
    grep '^sandbox-kind-node:' | grep -v ":$tag\$" | xargs -r docker rmi >/dev/null 2>&1 || true
}

echo "building node image $node_image (Kubernetes $K8S) in $cache"
mkdir -p "$bin"
step "Kubernetes $K8S binaries (kubeadm, kubelet, kubectl, control plane)" build_kubernetes
step "etcd $ETCD" build_etcd
step "CoreDNS $COREDNS" go_install "$bin/coredns-$COREDNS" "github.com/coredns/coredns@$COREDNS"
step "crictl $CRICTL" go_install "$bin/crictl-$CRICTL" "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL"
step "pause $PAUSE (C, from the kubernetes module)" build_pause
step "sandbox-cni (kind-configs/cni)" build_cni
step "Debian $SUITE root filesystem (debootstrap)" build_debootstrap
step "base root filesystem (kind's base files, containerd configuration)" build_rootfs
step "base image $base_image" build_base
step "component images (FROM scratch)" build_images
step "node image $node_image" build_node
step "removing what older builds left" prune
echo "node image built in $(since "$total_start") s"
echo "$node_image"
