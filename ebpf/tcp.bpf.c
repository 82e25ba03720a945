// SPDX-License-Identifier: GPL-2.0
//
// The TCP probes: tcp-retrans, tcp-reset, tcp-drop, tcp-connect, tcp-rtt.
// Loaded by sandbox/src/probe/tcp.rs, which attaches only the programs a probe needs.
//
// Hooks: raw tracepoints (no tracefs needed, no kprobes), with the argument order of Linux
// 6.x, which the comments give per program. Kernel structs are read with CO-RE through
// include/kernel.h.
//
// Scoping happens here, before anything is copied out: an event is kept only if it happened
// in one of the lab's network namespaces (netns_allow, by inode) and, when a service is
// targeted, one of the flow's addresses is the service's (ip_allow). Events of other labs and
// of the host never reach user space.
//
// IPv4 only. Go's listeners are dual-stack, so server-side sockets are AF_INET6 with
// IPv4-mapped peers; their skc_daddr/skc_rcv_saddr still hold the IPv4 addresses, so sockets
// are accepted by address, not by family.

#include <linux/bpf.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "include/kernel.h"

char LICENSE[] SEC("license") = "GPL";

#define ETH_P_IP 0x0800
#define PROTO_TCP 6
#define PROTO_UDP 17
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_CLOSE 7

enum event_kind {
	EV_RETRANS = 1,
	EV_SEND_RST = 2,
	EV_RECV_RST = 3,
	EV_CONNECT = 4,
	EV_DROP = 5,
	EV_RTT = 6,
};

// Read by sandbox/src/probe/tcp.rs as `Event`; keep the two in step.
struct event {
	__u64 ts_ns;
	__u32 netns;
	__u32 saddr; // network byte order
	__u32 daddr;
	__u16 sport; // host byte order
	__u16 dport;
	__u32 value; // retrans: segments; drop: reason; rtt: srtt µs; connect: latency µs
	__s32 err;   // retrans: error of the attempt; connect: sk_err when it failed
	__u8 kind;
	__u8 proto;
	__u8 state; // socket state when a reset arrived
	__u8 pad;
};

const volatile __u8 filter_ips = 0;
// At most one RTT sample per socket per this many nanoseconds: tcp_probe fires per segment.
const volatile __u64 rtt_every_ns = 10000000;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 512);
	__type(key, __u32);
	__type(value, __u8);
} netns_allow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u8);
} ip_allow SEC(".maps");

// Socket → when it entered SYN_SENT.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} connect_start SEC(".maps");

// Socket → last RTT sample sent.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} rtt_last SEC(".maps");

// [0] events lost because the ring buffer was full.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

static __always_inline int netns_ok(__u32 inum)
{
	return bpf_map_lookup_elem(&netns_allow, &inum) != 0;
}

static __always_inline int ips_ok(__u32 a, __u32 b)
{
	if (!filter_ips)
		return 1;
	return bpf_map_lookup_elem(&ip_allow, &a) || bpf_map_lookup_elem(&ip_allow, &b);
}

static __always_inline struct event *reserve(void)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__u32 zero = 0;
		__u64 *n = bpf_map_lookup_elem(&lost, &zero);
		if (n)
			*n += 1;
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	e->proto = PROTO_TCP;
	return e;
}

// Fills the flow from a socket, as seen by it: s = local, d = remote. Returns 0 when the
// socket is outside the scope.
static __always_inline int sock_flow(const struct sock *sk, __u32 *netns, __u32 *s, __u32 *d, __u16 *sp, __u16 *dp)
{
	*netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	if (!netns_ok(*netns))
		return 0;
	*s = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
	*d = BPF_CORE_READ(sk, __sk_common.skc_daddr);
	if (!*s || !*d || !ips_ok(*s, *d))
		return 0;
	*sp = BPF_CORE_READ(sk, __sk_common.skc_num);
	*dp = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	return 1;
}

static __always_inline int emit_sock(const struct sock *sk, __u8 kind, __u32 value, __s32 err)
{
	__u32 netns, s, d;
	__u16 sp, dp;
	if (!sock_flow(sk, &netns, &s, &d, &sp, &dp))
		return 0;
	struct event *e = reserve();
	if (!e)
		return 0;
	e->kind = kind;
	e->netns = netns;
	e->saddr = s;
	e->daddr = d;
	e->sport = sp;
	e->dport = dp;
	e->value = value;
	e->err = err;
	e->state = BPF_CORE_READ(sk, __sk_common.skc_state);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

// Network namespace of a packet: its device's, else its socket's.
static __always_inline __u32 skb_netns(const struct sk_buff *skb)
{
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	if (dev)
		return BPF_CORE_READ(dev, nd_net.net, ns.inum);
	struct sock *sk = BPF_CORE_READ(skb, sk);
	if (sk)
		return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	return 0;
}

struct ipv4 {
	__u8 ver_ihl;
	__u8 tos;
	__u16 tot_len;
	__u16 id;
	__u16 frag;
	__u8 ttl;
	__u8 proto;
	__u16 check;
	__u32 saddr;
	__u32 daddr;
};

// Parses the IPv4 and L4 headers of a packet into `e`. Returns 0 for other packets.
static __always_inline int skb_flow(const struct sk_buff *skb, struct event *e)
{
	if (BPF_CORE_READ(skb, protocol) != bpf_htons(ETH_P_IP))
		return 0;
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	struct ipv4 ip;
	if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh) < 0 || (ip.ver_ihl >> 4) != 4)
		return 0;
	e->saddr = ip.saddr;
	e->daddr = ip.daddr;
	e->proto = ip.proto;
	if (ip.proto == PROTO_TCP || ip.proto == PROTO_UDP) {
		__u16 ports[2];
		if (bpf_probe_read_kernel(ports, sizeof(ports), head + nh + (ip.ver_ihl & 0xf) * 4) == 0) {
			e->sport = bpf_ntohs(ports[0]);
			e->dport = bpf_ntohs(ports[1]);
		}
	}
	return 1;
}

// tcp:tcp_retransmit_skb(const struct sock *sk, const struct sk_buff *skb, int err)
// `err` is the 6.x signature; the value counts the skb's segments (TSO/GSO), which is what
// the kernel's TcpRetransSegs counter adds up for successful attempts.
SEC("raw_tp/tcp_retransmit_skb")
int tcp_retransmit(__u64 *ctx)
{
	const struct sock *sk = (const struct sock *)ctx[0];
	const struct sk_buff *skb = (const struct sk_buff *)ctx[1];
	int err = (int)ctx[2];
	const struct tcp_skb_cb *cb = (const void *)skb + bpf_core_field_offset(struct sk_buff, cb);
	__u32 segs = BPF_CORE_READ(cb, tcp_gso_segs);
	return emit_sock(sk, EV_RETRANS, segs ? segs : 1, err);
}

// tcp:tcp_send_reset(const struct sock *sk, const struct sk_buff *skb, enum sk_rst_reason)
// `sk` is NULL when the reset answers a packet no socket wanted (a refused connection); the
// flow then comes from that packet, and the reset goes back to its sender.
SEC("raw_tp/tcp_send_reset")
int tcp_send_reset(__u64 *ctx)
{
	const struct sock *sk = (const struct sock *)ctx[0];
	const struct sk_buff *skb = (const struct sk_buff *)ctx[1];
	if (sk)
		return emit_sock(sk, EV_SEND_RST, 0, 0);
	if (!skb)
		return 0;
	__u32 netns = skb_netns(skb);
	if (!netns_ok(netns))
		return 0;
	struct event *e = reserve();
	if (!e)
		return 0;
	struct event in = {};
	if (!skb_flow(skb, &in) || !ips_ok(in.saddr, in.daddr)) {
		bpf_ringbuf_discard(e, 0);
		return 0;
	}
	e->kind = EV_SEND_RST;
	e->netns = netns;
	e->saddr = in.daddr;
	e->daddr = in.saddr;
	e->sport = in.dport;
	e->dport = in.sport;
	e->state = TCP_CLOSE;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

// tcp:tcp_receive_reset(struct sock *sk): a reset arrived for this socket.
SEC("raw_tp/tcp_receive_reset")
int tcp_receive_reset(__u64 *ctx)
{
	return emit_sock((const struct sock *)ctx[0], EV_RECV_RST, 0, 0);
}

// sock:inet_sock_set_state(const struct sock *sk, int oldstate, int newstate)
// Connects: SYN_SENT → ESTABLISHED succeeded (value = latency µs); SYN_SENT → CLOSE failed,
// with sk_err saying why (ETIMEDOUT, ECONNREFUSED, …; 0 when the caller gave up first).
SEC("raw_tp/inet_sock_set_state")
int inet_sock_set_state(__u64 *ctx)
{
	const struct sock *sk = (const struct sock *)ctx[0];
	int old = (int)ctx[1], new = (int)ctx[2];
	__u64 key = (__u64)sk;
	if (new == TCP_SYN_SENT) {
		__u32 netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
		if (!netns_ok(netns))
			return 0;
		__u64 now = bpf_ktime_get_ns();
		bpf_map_update_elem(&connect_start, &key, &now, BPF_ANY);
		return 0;
	}
	if (old != TCP_SYN_SENT || (new != TCP_ESTABLISHED && new != TCP_CLOSE))
		return 0;
	__u64 *start = bpf_map_lookup_elem(&connect_start, &key);
	if (!start)
		return 0;
	__u64 took = (bpf_ktime_get_ns() - *start) / 1000;
	bpf_map_delete_elem(&connect_start, &key);
	int err = new == TCP_CLOSE ? BPF_CORE_READ(sk, sk_err) : 0;
	return emit_sock(sk, EV_CONNECT, took > 0xffffffff ? 0xffffffff : (__u32)took, new == TCP_CLOSE ? (err ? err : -1) : 0);
}

// Frees that are not packet loss: used packets, queues purged when a socket closes, and the
// unlabelled frees of closing connections.
static __always_inline int not_a_drop(__u32 reason)
{
	if (reason == bpf_core_enum_value(enum skb_drop_reason, SKB_CONSUMED) ||
	    reason == bpf_core_enum_value(enum skb_drop_reason, SKB_NOT_DROPPED_YET) ||
	    reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NOT_SPECIFIED))
		return 1;
	return bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_QUEUE_PURGE) &&
	       reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_QUEUE_PURGE);
}

// skb:kfree_skb(struct sk_buff *skb, void *location, enum skb_drop_reason reason, struct sock *rx_sk)
// Packets dropped anywhere in the lab, including the bridge namespace where network faults
// drop them.
SEC("raw_tp/kfree_skb")
int kfree_skb(__u64 *ctx)
{
	const struct sk_buff *skb = (const struct sk_buff *)ctx[0];
	__u32 reason = (__u32)ctx[2];
	if (not_a_drop(reason))
		return 0;
	__u32 netns = skb_netns(skb);
	if (!netns_ok(netns))
		return 0;
	struct event *e = reserve();
	if (!e)
		return 0;
	if (!skb_flow(skb, e) || !ips_ok(e->saddr, e->daddr)) {
		bpf_ringbuf_discard(e, 0);
		return 0;
	}
	e->kind = EV_DROP;
	e->netns = netns;
	e->value = reason;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

// tcp:tcp_probe(struct sock *sk, const struct sk_buff *skb): a segment arrived on an
// established connection; sample the smoothed RTT (srtt_us is kept << 3). The kernel's own
// minimum RTT is not used: its window spans minutes, so it still shows the path from before a
// fault started.
SEC("raw_tp/tcp_probe")
int tcp_probe(__u64 *ctx)
{
	const struct sock *sk = (const struct sock *)ctx[0];
	__u64 key = (__u64)sk, now = bpf_ktime_get_ns();
	__u64 *last = bpf_map_lookup_elem(&rtt_last, &key);
	if (last && now - *last < rtt_every_ns)
		return 0;
	bpf_map_update_elem(&rtt_last, &key, &now, BPF_ANY);
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	return emit_sock(sk, EV_RTT, BPF_CORE_READ(tp, srtt_us) >> 3, 0);
}
