// SPDX-License-Identifier: GPL-2.0
//
// Scheduler latency for the `runq` and `offcpu` probes.
//
// Hooks: raw tracepoints sched_wakeup, sched_wakeup_new (runq only) and sched_switch, attached
// by sandbox/src/probe/sched.rs without tracefs. Raw tracepoint programs get the tracepoint's
// arguments as an array of u64 (`ctx[i]`); task fields are read with BPF_CORE_READ.
//
// Only threads whose process is in `target_tgids` are timed. Per thread, `since` holds when
// the interval being measured began, and the switch-in that ends it adds the interval to a
// log2 histogram (µs) and to the thread's totals:
//   runq:   from a wakeup, or from a switch-out that left the thread runnable (preempted, or
//           state TASK_RUNNING), to its next switch-in: time spent waiting for a CPU.
//   offcpu: from any switch-out to the next switch-in: time off CPU, blocked or waiting.
//
// Kernel assumptions: sched_switch's arguments are (bool preempt, struct task_struct *prev,
// struct task_struct *next, unsigned int prev_state), as since 5.18; sched_wakeup's and
// sched_wakeup_new's are (struct task_struct *p); task_struct has pid (thread) and tgid.

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "include/kernel.h"

char LICENSE[] SEC("license") = "GPL";

// Set before loading: 1 measures off-CPU time, 0 run-queue latency.
const volatile __u32 offcpu_mode = 0;

#define BUCKETS 32 // log2 of µs: the last bucket holds 2^31 µs (36 minutes) and more

struct thread_total {
	__u32 tgid;
	__u32 pad;
	__u64 count;
	__u64 total_ns;
	__u64 max_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u8);
} target_tgids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32); // tid
	__type(value, __u64); // ns
} since SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BUCKETS);
	__type(key, __u32);
	__type(value, __u64);
} hist_us SEC(".maps");

// [0] intervals, [1] their sum in ns, [2] intervals whose thread found `threads` full.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} totals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32); // tid
	__type(value, struct thread_total);
} threads SEC(".maps");

// Branches, not a loop: an unrolled loop inlined per call site overflows the BPF stack.
static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0;
	if (v >> 32) {
		v >>= 32;
		r += 32;
	}
	if (v >> 16) {
		v >>= 16;
		r += 16;
	}
	if (v >> 8) {
		v >>= 8;
		r += 8;
	}
	if (v >> 4) {
		v >>= 4;
		r += 4;
	}
	if (v >> 2) {
		v >>= 2;
		r += 2;
	}
	if (v >> 1)
		r += 1;
	return r;
}

static __always_inline int is_target(struct task_struct *t, __u32 *tid, __u32 *tgid)
{
	*tgid = BPF_CORE_READ(t, tgid);
	if (!bpf_map_lookup_elem(&target_tgids, tgid))
		return 0;
	*tid = BPF_CORE_READ(t, pid);
	return 1;
}

static __always_inline void add(__u32 index, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&totals, &index);
	if (v)
		*v += n;
}

static __always_inline void record(__u32 tid, __u32 tgid, __u64 ns)
{
	__u32 bucket = log2_u64(ns / 1000);
	if (bucket >= BUCKETS)
		bucket = BUCKETS - 1;
	__u64 *n = bpf_map_lookup_elem(&hist_us, &bucket);
	if (n)
		*n += 1;
	add(0, 1);
	add(1, ns);

	struct thread_total *t = bpf_map_lookup_elem(&threads, &tid);
	if (!t) {
		struct thread_total fresh = {};
		fresh.tgid = tgid;
		bpf_map_update_elem(&threads, &tid, &fresh, BPF_NOEXIST);
		t = bpf_map_lookup_elem(&threads, &tid);
		if (!t) {
			add(2, 1);
			return;
		}
	}
	__sync_fetch_and_add(&t->count, 1);
	__sync_fetch_and_add(&t->total_ns, ns);
	if (ns > t->max_ns)
		t->max_ns = ns; // racy between CPUs, but one thread switches in on one CPU at a time
}

static __always_inline int woken(struct task_struct *p)
{
	__u32 tid, tgid;
	if (!is_target(p, &tid, &tgid))
		return 0;
	__u64 now = bpf_ktime_get_ns();
	bpf_map_update_elem(&since, &tid, &now, BPF_ANY);
	return 0;
}

SEC("raw_tp")
int on_wakeup(__u64 *ctx)
{
	return woken((struct task_struct *)ctx[0]);
}

SEC("raw_tp")
int on_wakeup_new(__u64 *ctx)
{
	return woken((struct task_struct *)ctx[0]);
}

SEC("raw_tp")
int on_switch(__u64 *ctx)
{
	int preempt = (__u8)ctx[0];
	struct task_struct *prev = (struct task_struct *)ctx[1];
	struct task_struct *next = (struct task_struct *)ctx[2];
	__u32 prev_state = (__u32)ctx[3];
	__u32 tid, tgid;
	__u64 now = bpf_ktime_get_ns();

	if (is_target(prev, &tid, &tgid)) {
		if (offcpu_mode || preempt || prev_state == 0)
			bpf_map_update_elem(&since, &tid, &now, BPF_ANY);
		else
			// Blocking: a wakeup starts the wait; drop one left by a wakeup while running.
			bpf_map_delete_elem(&since, &tid);
	}
	if (is_target(next, &tid, &tgid)) {
		__u64 *ts = bpf_map_lookup_elem(&since, &tid);
		if (ts) {
			if (now > *ts)
				record(tid, tgid, now - *ts);
			bpf_map_delete_elem(&since, &tid);
		}
	}
	return 0;
}
