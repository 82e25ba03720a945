// SPDX-License-Identifier: GPL-2.0
//
// On-CPU sampling for the `cpu` probe.
//
// Hook: a perf_event program on the software cpu-clock, opened once per online CPU for all
// processes (sandbox/src/ebpf.rs attach_cpu_clock). Loaded by sandbox/src/probe/cpu.rs.
//
// Each sample of a thread whose process is in `target_tgids` is counted under its user and
// kernel stack ids; everything else returns at once, so filtering happens here, not in user
// space. perf_event_open's pid selects one thread, not a process, which is why the program
// runs on every CPU and checks the tgid itself.
//
// Assumptions: user code keeps frame pointers (Go does by default), since bpf_get_stackid
// walks them; a stack id is negative when the walk fails: -EFAULT for the kernel stack of a
// sample taken in user mode (normal), -EEXIST when another stack already holds the bucket
// (a lost stack, counted by user space). No kernel structs are read, so no CO-RE.

#include <linux/bpf.h>
#include <linux/bpf_perf_event.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define MAX_DEPTH 127 // kernel.perf_event_max_stack's default

struct sample_key {
	__u32 tgid;
	__u32 tid;
	__s32 ustack; // stack id, or -errno
	__s32 kstack;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u8);
} target_tgids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 16384);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, MAX_DEPTH * sizeof(__u64));
} stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct sample_key);
	__type(value, __u64);
} samples SEC(".maps");

// [0] samples that found `samples` full and were dropped.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} dropped SEC(".maps");

SEC("perf_event")
int on_cpu_clock(struct bpf_perf_event_data *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	if (!bpf_map_lookup_elem(&target_tgids, &tgid))
		return 0;

	struct sample_key key = {};
	key.tgid = tgid;
	key.tid = (__u32)id;
	key.ustack = bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK);
	key.kstack = bpf_get_stackid(ctx, &stacks, 0);

	__u64 *n = bpf_map_lookup_elem(&samples, &key);
	if (n) {
		__sync_fetch_and_add(n, 1);
		return 0;
	}
	__u64 one = 1;
	if (bpf_map_update_elem(&samples, &key, &one, BPF_NOEXIST) == 0)
		return 0;
	// Another CPU may have inserted the key meanwhile; only a full map loses the sample.
	n = bpf_map_lookup_elem(&samples, &key);
	if (n) {
		__sync_fetch_and_add(n, 1);
		return 0;
	}
	__u32 zero = 0;
	__u64 *d = bpf_map_lookup_elem(&dropped, &zero);
	if (d)
		*d += 1;
	return 0;
}
