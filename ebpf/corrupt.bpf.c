// SPDX-License-Identifier: GPL-2.0
//
// Packet corruption for the `corrupt` fault.
//
// Hook: tc (TCX) egress of the lab-side veth towards a receiving instance, inside the lab's
// bridge namespace. Loaded and attached by sandbox/src/fault/corrupt.rs, one instance per fault.
//
// For a `basis_points / 10000` share of the IPv4 TCP/UDP packets that match one of the
// fault's selectors and carry payload, one payload byte is inverted. The L4 checksum is left
// alone, so the receiver's checksum check drops the packet and TCP retransmits, as on a real
// noisy link. That only happens when checksums are computed in software: the loader turns
// checksum offload off on the involved interfaces (veth otherwise hands over unchecked
// CHECKSUM_PARTIAL packets and the flip would reach the application silently).
//
// Assumptions: no IP options beyond what IHL says (any IHL is parsed), IPv4 only, no
// kernel-specific struct access (only the stable __sk_buff context), so no CO-RE is needed.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define MAX_ADDRS 8
#define MAX_SELECTORS 2

// One direction of the fault: packets from any of `src` to any of `dst` (an empty list
// matches any address), optionally only those whose source or destination port is `port`.
struct corrupt_sel {
	__u32 src[MAX_ADDRS]; // network byte order
	__u32 dst[MAX_ADDRS];
	__u8 nsrc;
	__u8 ndst;
	__u16 port;        // host byte order; 0 = any port
	__u8 port_is_dst;  // 1: match the destination port, 0: the source port
	__u8 pad[3];
};

struct corrupt_cfg {
	__u32 basis_points; // 0..10000
	__u32 nsel;
	struct corrupt_sel sel[MAX_SELECTORS];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct corrupt_cfg);
} corrupt_config SEC(".maps");

// [0] packets that matched a selector, [1] packets corrupted.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} corrupt_stats SEC(".maps");

static __always_inline int in_list(const __u32 *list, __u8 n, __u32 addr)
{
	if (n == 0)
		return 1;
#pragma unroll
	for (int i = 0; i < MAX_ADDRS; i++) {
		if (i < n && list[i] == addr)
			return 1;
	}
	return 0;
}

static __always_inline void count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&corrupt_stats, &slot);
	if (v)
		*v += 1;
}

SEC("classifier")
int sbx_corrupt(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct corrupt_cfg *cfg = bpf_map_lookup_elem(&corrupt_config, &zero);
	if (!cfg || cfg->basis_points == 0)
		return TC_ACT_UNSPEC;
	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_UNSPEC;

	struct iphdr ip;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0)
		return TC_ACT_UNSPEC;
	if (ip.protocol != IPPROTO_TCP && ip.protocol != IPPROTO_UDP)
		return TC_ACT_UNSPEC;
	__u32 ihl = (__u32)ip.ihl * 4;
	if (ihl < sizeof(ip))
		return TC_ACT_UNSPEC;
	__u32 l4 = ETH_HLEN + ihl;

	__u16 ports[2]; // source, destination; same place in TCP and UDP
	if (bpf_skb_load_bytes(skb, l4, ports, sizeof(ports)) < 0)
		return TC_ACT_UNSPEC;
	__u16 sport = bpf_ntohs(ports[0]), dport = bpf_ntohs(ports[1]);

	int hit = 0;
#pragma unroll
	for (int i = 0; i < MAX_SELECTORS; i++) {
		if (i >= cfg->nsel)
			break;
		struct corrupt_sel *s = &cfg->sel[i];
		if (!in_list(s->src, s->nsrc, ip.saddr) || !in_list(s->dst, s->ndst, ip.daddr))
			continue;
		if (s->port && s->port != (s->port_is_dst ? dport : sport))
			continue;
		hit = 1;
	}
	if (!hit)
		return TC_ACT_UNSPEC;
	count(0);

	__u32 l4hdr = 8;
	if (ip.protocol == IPPROTO_TCP) {
		__u8 doff;
		if (bpf_skb_load_bytes(skb, l4 + 12, &doff, 1) < 0)
			return TC_ACT_UNSPEC;
		l4hdr = (__u32)(doff >> 4) * 4;
	}
	__u32 tot = bpf_ntohs(ip.tot_len);
	if (tot <= ihl + l4hdr)
		return TC_ACT_UNSPEC; // no payload: leave pure ACKs and handshakes alone
	if (bpf_get_prandom_u32() % 10000 >= cfg->basis_points)
		return TC_ACT_UNSPEC;

	__u32 payload = tot - ihl - l4hdr;
	__u32 off = l4 + l4hdr + bpf_get_prandom_u32() % (payload < 64 ? payload : 64);
	__u8 byte;
	if (bpf_skb_load_bytes(skb, off, &byte, 1) < 0)
		return TC_ACT_UNSPEC;
	byte ^= 0xff;
	if (bpf_skb_store_bytes(skb, off, &byte, 1, 0) < 0)
		return TC_ACT_UNSPEC;
	count(1);
	return TC_ACT_UNSPEC;
}
