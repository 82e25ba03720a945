/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kernel types the probes read, cut down to the fields they use.
 *
 * Every struct here is compiled with preserve_access_index, so each field access becomes a
 * CO-RE relocation that the loader (aya) resolves against the running kernel's BTF
 * (/sys/kernel/btf/vmlinux). The layouts below therefore need not match any kernel: only the
 * names matter. Nested anonymous unions and struct groups in the kernel (skc_addrpair, the
 * sk_buff headers group) are found by name too, so fields are listed flat.
 *
 * Field assumptions, all true since Linux 5.14 and checked at load time by the relocation:
 *   task_struct.__state (5.14 renamed `state`), sock_common.skc_net, sk_buff.cb.
 */
#pragma once

#include <linux/types.h>

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct ns_common {
	unsigned int inum;
};

struct net {
	struct ns_common ns;
};

typedef struct {
	struct net *net;
} possible_net_t;

struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	volatile unsigned char skc_state;
	possible_net_t skc_net;
};

struct sock {
	struct sock_common __sk_common;
	int sk_err;
};

struct tcp_sock {
	__u32 srtt_us; /* smoothed RTT << 3, in microseconds */
};

struct net_device {
	possible_net_t nd_net;
};

struct sk_buff {
	struct net_device *dev;
	struct sock *sk;
	unsigned char *head;
	__u16 network_header;
	__u16 transport_header;
	__be16 protocol;
	char cb[48];
};

/* TCP's view of sk_buff.cb. */
struct tcp_skb_cb {
	__u32 seq;
	__u32 end_seq;
	__u16 tcp_gso_segs;
};

struct task_struct {
	int pid;  /* thread id */
	int tgid; /* process id */
	unsigned int __state;
};

#pragma clang attribute pop

/* Values resolved at load time with bpf_core_enum_value(); the numbers are placeholders. */
enum skb_drop_reason {
	SKB_NOT_DROPPED_YET = 0,
	SKB_CONSUMED = 1,
	SKB_DROP_REASON_NOT_SPECIFIED = 2,
	SKB_DROP_REASON_QUEUE_PURGE = 3,
};
