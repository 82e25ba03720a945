//! Thin, checked access to the host: running the networking tools (iproute2, nftables,
//! iptables, tc) and acting inside network namespaces.

pub mod capped;
pub mod cmd;
pub mod netns;
pub mod procs;

/// Root is needed for namespaces, nftables, tc and eBPF.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
