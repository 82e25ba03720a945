// SPDX-License-Identifier: GPL-2.0
//
// Time goroutines spend blocked in the Go runtime's network poller, for the `netpoll` probe.
//
// Hooks: uprobes in the target's Go binary, attached by sandbox/src/probe/netpoll.rs at file
// offsets found by sandbox/src/probe/gosym.rs:
//   - sbx_np_entry on `internal/poll.runtime_pollWait`, at the conditional jump after the
//     stack-check CMP (entry+4), which the kernel emulates instead of single-stepping; at the
//     entry when the prologue differs;
//   - sbx_np_ret at EVERY RET instruction of that function. Never a uretprobe: it replaces
//     the return address on the goroutine stack, and Go's stack unwinder and stack copying
//     then crash the process (SIGILL at the trampoline page);
//   - sbx_np_write on `internal/poll.(*FD).Write`, likewise after its stack check: the time
//     of the last write per fd. A wait during which the service wrote on the same fd counts
//     from that write, so a pooled connection's idle time before a request is left out and a
//     client-side wait is the upstream's response time.
// Events of processes other than the targets (same binary, other labs) stay in the kernel.
//
// Go assumptions, checked for Go 1.19 to 1.27 on amd64:
//   - ABIInternal: arguments in RAX, RBX, …; result in RAX. runtime_pollWait(pd *pollDesc,
//     mode int) int takes pd in RAX and mode ('r' or 'w') in RBX, both unchanged at the
//     probe point, and returns 0 ok, 1 closing, 2 timeout, 3 not pollable.
//     (*FD).Write takes the *FD receiver in RAX.
//   - R14 holds the current g. A goroutine can resume on another thread, so the in-flight
//     key is (tgid, g), never the thread id.
//   - pollDesc.fd (uintptr) is at fd_off, 8 (after `link *pollDesc`); FD.Sysfd (int) at
//     sysfd_off, 16 (after `fdmu fdMutex`). Both set by the loader, so a future layout needs
//     no rebuild.

#include <linux/types.h>
#include <linux/bpf.h>
#include <asm/ptrace.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

const volatile __u64 fd_off = 8;
const volatile __u64 sysfd_off = 16;

struct np_key {
	__u64 tgid;
	__u64 g;
};

struct np_start {
	__u64 ts;
	__s64 fd;
	__u64 mode;
};

struct np_fd {
	__u64 tgid;
	__s64 fd;
};

// One finished wait; mirrored by `Event` in netpoll.rs.
struct np_event {
	__u64 lat_ns;
	// Part of lat_ns before the service's last write on the fd during the wait, else 0.
	__u64 idle_ns;
	__s64 fd;
	__s64 ret;
	__u32 tgid;
	__u32 mode;
};

// Processes to watch: tgid → 1.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u8);
} np_targets SEC(".maps");

// Waits in progress. LRU: a process that exits with parked goroutines leaves entries behind.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct np_key);
	__type(value, struct np_start);
} np_starts SEC(".maps");

// Time of the last write per (tgid, fd). LRU: closed fds are never removed.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct np_fd);
	__type(value, __u64);
} np_writes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} np_events SEC(".maps");

// [0] events lost to a full ring, [1] returns without a recorded entry (waits that began
// before the probe attached).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} np_stats SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&np_stats, &slot);
	if (v)
		*v += 1;
}

SEC("uprobe")
int sbx_np_entry(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!bpf_map_lookup_elem(&np_targets, &tgid))
		return 0;
	struct np_key k = {.tgid = tgid, .g = ctx->r14};
	struct np_start s = {.ts = bpf_ktime_get_ns(), .fd = -1, .mode = ctx->rbx};
	bpf_probe_read_user(&s.fd, sizeof(s.fd), (void *)(ctx->rax + fd_off));
	// BPF_ANY: the morestack path re-enters the function and fires this twice for one call.
	bpf_map_update_elem(&np_starts, &k, &s, BPF_ANY);
	return 0;
}

SEC("uprobe")
int sbx_np_ret(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!bpf_map_lookup_elem(&np_targets, &tgid))
		return 0;
	struct np_key k = {.tgid = tgid, .g = ctx->r14};
	struct np_start *s = bpf_map_lookup_elem(&np_starts, &k);
	if (!s) {
		count(1);
		return 0;
	}
	__u64 now = bpf_ktime_get_ns();
	struct np_fd f = {.tgid = tgid, .fd = s->fd};
	__u64 *w = bpf_map_lookup_elem(&np_writes, &f);
	__u64 wrote = w ? *w : 0;
	struct np_event *e = bpf_ringbuf_reserve(&np_events, sizeof(*e), 0);
	if (e) {
		e->lat_ns = now - s->ts;
		e->idle_ns = wrote > s->ts && wrote < now ? wrote - s->ts : 0;
		e->fd = s->fd;
		e->ret = ctx->rax;
		e->tgid = tgid;
		e->mode = s->mode;
		// No wakeup: user space drains on its own timer, which costs far less per event.
		bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	} else {
		count(0);
	}
	bpf_map_delete_elem(&np_starts, &k);
	return 0;
}

SEC("uprobe")
int sbx_np_write(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!bpf_map_lookup_elem(&np_targets, &tgid))
		return 0;
	struct np_fd f = {.tgid = tgid, .fd = -1};
	if (bpf_probe_read_user(&f.fd, sizeof(f.fd), (void *)(ctx->rax + sysfd_off)) < 0)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	bpf_map_update_elem(&np_writes, &f, &now, BPF_ANY);
	return 0;
}
