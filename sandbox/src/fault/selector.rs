//! Which packets a fault acts on, in addresses and ports: the common form every technique
//! (nftables, iptables, tc, eBPF) renders its matches from.

use std::net::Ipv4Addr;

use crate::plan::{Effect, FaultTarget};
use crate::scenario::Direction;
use crate::topology::AddressBook;

/// Packets from any of `src` to any of `dst` (empty = any address), optionally only those to
/// or from one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub src: Vec<Ipv4Addr>,
    pub dst: Vec<Ipv4Addr>,
    pub dport: Option<u16>,
    pub sport: Option<u16>,
}

impl Selector {
    pub fn port(&self) -> Option<u16> {
        self.dport.or(self.sport)
    }
}

/// The selectors of a fault's target, one per direction it covers. A partition always cuts
/// both ways.
pub fn selectors(target: &FaultTarget, effect: &Effect, book: &AddressBook) -> Vec<Selector> {
    let both = matches!(effect, Effect::Partition);
    match target {
        FaultTarget::Service {
            service,
            replica,
            direction,
            port,
        } => {
            let ips = match replica {
                Some(r) => book.ip_of(&format!("{service}-{r}")).into_iter().collect(),
                None => book.ips_of_service(service),
            };
            let into = Selector {
                src: vec![],
                dst: ips.clone(),
                dport: *port,
                sport: None,
            };
            let out = Selector {
                src: ips,
                dst: vec![],
                dport: None,
                sport: *port,
            };
            match (both, direction) {
                (false, Direction::Ingress) => vec![into],
                (false, Direction::Egress) => vec![out],
                _ => vec![into, out],
            }
        }
        FaultTarget::Link {
            from,
            to,
            direction,
            port,
        } => {
            let (a, b) = (book.ips_of_service(from), book.ips_of_service(to));
            let fwd = Selector {
                src: a.clone(),
                dst: b.clone(),
                dport: *port,
                sport: None,
            };
            let rev = Selector {
                src: b,
                dst: a,
                dport: None,
                sport: *port,
            };
            match (both, direction) {
                (false, Direction::Forward) => vec![fwd],
                (false, Direction::Reverse) => vec![rev],
                _ => vec![fwd, rev],
            }
        }
        // Matched by the node's own addresses; see `Injector::inject`.
        FaultTarget::Node { .. } => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn book() -> AddressBook {
        let mut instances = BTreeMap::new();
        instances.insert(
            "api-0".to_string(),
            ("api".to_string(), Ipv4Addr::new(10, 66, 0, 10)),
        );
        instances.insert(
            "api-1".to_string(),
            ("api".to_string(), Ipv4Addr::new(10, 66, 0, 11)),
        );
        instances.insert(
            "store-0".to_string(),
            ("store".to_string(), Ipv4Addr::new(10, 66, 0, 12)),
        );
        AddressBook {
            subnet: Ipv4Addr::new(10, 66, 0, 0),
            prefix: 24,
            control: Ipv4Addr::new(10, 66, 0, 1),
            instances,
        }
    }

    #[test]
    fn service_port_means_its_own_listening_port() {
        let t = FaultTarget::Service {
            service: "store".into(),
            replica: None,
            direction: Direction::Both,
            port: Some(7070),
        };
        let s = selectors(&t, &Effect::Blackhole, &book());
        let store = vec![Ipv4Addr::new(10, 66, 0, 12)];
        assert_eq!(
            s[0],
            Selector {
                src: vec![],
                dst: store.clone(),
                dport: Some(7070),
                sport: None
            }
        );
        assert_eq!(
            s[1],
            Selector {
                src: store,
                dst: vec![],
                dport: None,
                sport: Some(7070)
            }
        );
    }

    #[test]
    fn link_covers_every_replica_and_one_direction() {
        let t = FaultTarget::Link {
            from: "api".into(),
            to: "store".into(),
            direction: Direction::Forward,
            port: None,
        };
        let s = selectors(&t, &Effect::Loss { percent: 10.0 }, &book());
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].src.len(), 2);
        assert_eq!(s[0].dst, vec![Ipv4Addr::new(10, 66, 0, 12)]);
    }

    #[test]
    fn partition_ignores_direction() {
        let t = FaultTarget::Service {
            service: "api".into(),
            replica: Some(1),
            direction: Direction::Ingress,
            port: None,
        };
        let s = selectors(&t, &Effect::Partition, &book());
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].dst, vec![Ipv4Addr::new(10, 66, 0, 11)]);
    }
}
