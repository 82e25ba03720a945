// SPDX-License-Identifier: GPL-2.0
//
// DNS traffic for the `dns` probe.
//
// Hook: socket filter (SEC("socket")) on an AF_PACKET socket bound to a lab's bridge device,
// inside the lab's bridge namespace. The lab's name server listens on the bridge address, so
// every lookup an instance makes arrives at that device and every answer leaves from it.
// Loaded and attached by sandbox/src/probe/dns.rs; the socket goes with the probe.
//
// Keeps IPv4 UDP datagrams to or from port 53 (first fragments only) and drops everything
// else in the kernel, so user space reads nothing but DNS. The packet is kept whole: user
// space parses the DNS message.
//
// Assumptions: Ethernet framing (a Linux bridge), IPv4, any IHL. Only the stable
// __sk_buff context and bpf_skb_load_bytes are used, so no CO-RE is needed.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define DNS_PORT 53

SEC("socket")
int dns_only(struct __sk_buff *skb)
{
	struct iphdr ip;
	__u16 ports[2];

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return 0;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0)
		return 0;
	if (ip.protocol != IPPROTO_UDP || ip.ihl < 5)
		return 0;
	// A later fragment carries no UDP header.
	if (ip.frag_off & bpf_htons(0x1fff))
		return 0;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + ip.ihl * 4, ports, sizeof(ports)) < 0)
		return 0;
	if (ports[0] != bpf_htons(DNS_PORT) && ports[1] != bpf_htons(DNS_PORT))
		return 0;
	return skb->len;
}
