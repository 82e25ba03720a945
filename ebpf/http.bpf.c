// SPDX-License-Identifier: GPL-2.0
//
// Server-side latency of each HTTP request a Go `net/http` server handles, for the `http` probe.
//
// Hooks: uprobes in the target's Go binary, attached by sandbox/src/probe/http.rs at file
// offsets found by sandbox/src/probe/gosym.rs (by disassembly, like the netpoll probe):
//   - sbx_http_entry on `net/http.serverHandler.ServeHTTP`, after its stack check: the
//     request starts; its path and the *response it is answered through are recorded;
//   - sbx_http_status on `net/http.(*response).WriteHeader`, after its stack check: the
//     status code, for the request in flight on this goroutine with that *response;
//   - sbx_http_ret at EVERY RET of serverHandler.ServeHTTP: the handler returned. Never a
//     uretprobe, which crashes Go (it rewrites the return address on a goroutine stack that
//     the runtime walks and moves).
// Events of processes other than the targets (same binary, other labs) stay in the kernel.
//
// Go assumptions, checked for Go 1.19 and 1.26 on amd64 (the loader refuses others):
//   - ABIInternal: serverHandler.ServeHTTP(sh serverHandler, rw ResponseWriter, req *Request)
//     gets sh (one pointer) in RAX, rw's itab in RBX and data pointer in RCX, req in RDI.
//     (*response).WriteHeader(code int) gets the receiver in RAX, code in RBX.
//   - R14 holds the current g. The handler runs on the goroutine that called ServeHTTP,
//     so the in-flight key is (tgid, g); the thread may change underneath.
//   - Request.URL (*url.URL) is at url_off and url.URL.Path (string: pointer, length) at
//     path_off, set by the loader from the binary's DWARF or its Go version.

#include <linux/types.h>
#include <linux/bpf.h>
#include <asm/ptrace.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

const volatile __u64 url_off = 16;
const volatile __u64 path_off = 56;

// Bytes of the path kept; longer paths are cut (path_len says how long they were).
#define PATH_MAX_LEN 64

struct http_key {
	__u64 tgid;
	__u64 g;
};

struct http_start {
	__u64 ts;
	__u64 resp;
	__u32 status;
	__u32 path_len;
	char path[PATH_MAX_LEN];
};

// One finished request; mirrored by `Event` in http.rs.
struct http_event {
	__u64 start_ns;
	__u64 lat_ns;
	__u32 tgid;
	// 0 when the handler never called WriteHeader: net/http then answers 200.
	__u32 status;
	__u32 path_len;
	__u32 pad;
	char path[PATH_MAX_LEN];
};

// Processes to watch: tgid → 1.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u8);
} http_targets SEC(".maps");

// Requests in flight. LRU: a handler that panics unwinds without a RET and leaves its entry.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct http_key);
	__type(value, struct http_start);
} http_starts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} http_events SEC(".maps");

// [0] events lost to a full ring, [1] returns without a recorded entry (requests that began
// before the probe attached).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} http_stats SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&http_stats, &slot);
	if (v)
		*v += 1;
}

SEC("uprobe")
int sbx_http_entry(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!bpf_map_lookup_elem(&http_targets, &tgid))
		return 0;
	struct http_key k = {.tgid = tgid, .g = ctx->r14};
	struct http_start s = {.ts = bpf_ktime_get_ns(), .resp = ctx->rcx};
	__u64 url = 0, path[2] = {0, 0};
	if (bpf_probe_read_user(&url, sizeof(url), (void *)(ctx->rdi + url_off)) == 0 && url &&
	    bpf_probe_read_user(path, sizeof(path), (void *)(url + path_off)) == 0) {
		__u64 n = path[1] < PATH_MAX_LEN ? path[1] : PATH_MAX_LEN;
		s.path_len = path[1] > 0xffffffff ? 0xffffffff : path[1];
		bpf_probe_read_user(s.path, n, (void *)path[0]);
	}
	// BPF_ANY: the morestack path re-enters the function and fires this twice for one call.
	bpf_map_update_elem(&http_starts, &k, &s, BPF_ANY);
	return 0;
}

SEC("uprobe")
int sbx_http_status(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!bpf_map_lookup_elem(&http_targets, &tgid))
		return 0;
	struct http_key k = {.tgid = tgid, .g = ctx->r14};
	struct http_start *s = bpf_map_lookup_elem(&http_starts, &k);
	// Only the first final status counts, as in net/http (later calls are "superfluous");
	// 1xx are informational.
	if (s && s->resp == ctx->rax && s->status == 0 && ctx->rbx >= 200 && ctx->rbx <= 999)
		s->status = ctx->rbx;
	return 0;
}

SEC("uprobe")
int sbx_http_ret(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!bpf_map_lookup_elem(&http_targets, &tgid))
		return 0;
	struct http_key k = {.tgid = tgid, .g = ctx->r14};
	struct http_start *s = bpf_map_lookup_elem(&http_starts, &k);
	if (!s) {
		count(1);
		return 0;
	}
	struct http_event *e = bpf_ringbuf_reserve(&http_events, sizeof(*e), 0);
	if (e) {
		e->start_ns = s->ts;
		e->lat_ns = bpf_ktime_get_ns() - s->ts;
		e->tgid = tgid;
		e->status = s->status;
		e->path_len = s->path_len;
		e->pad = 0;
		__builtin_memcpy(e->path, s->path, PATH_MAX_LEN);
		// No wakeup: user space drains on its own timer, which costs far less per event.
		bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	} else {
		count(0);
	}
	bpf_map_delete_elem(&http_starts, &k);
	return 0;
}
