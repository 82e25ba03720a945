//! The addresses of a lab: the one piece of a lab's layout that backends, the fault engine,
//! the name server and the probes all read.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// A lab's block of addresses. 10.64.0.0/13 is cut into 256 blocks of /21, one per lab slot,
/// so labs side by side never share an address. One lab holds up to [`Subnet::MAX_INSTANCES`]
/// instances: every backend joins a lab's instances on one Linux bridge, which has at most
/// 1,024 ports. `.1` is the control address (the supervisor's, and the lab's name server);
/// instances are numbered from `.10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Subnet {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    const BLOCK_BITS: u32 = 11;
    const FIRST_HOST: u32 = 10;
    pub const MAX_INSTANCES: usize = 1020;

    pub fn of_slot(slot: u8) -> Subnet {
        let base = u32::from(Ipv4Addr::new(10, 64, 0, 0)) + (u32::from(slot) << Self::BLOCK_BITS);
        Subnet {
            base: Ipv4Addr::from(base),
            prefix: (32 - Self::BLOCK_BITS) as u8,
        }
    }

    pub fn control(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + 1)
    }

    /// The address of the `n`th instance.
    pub fn host(&self, n: usize) -> Option<Ipv4Addr> {
        (n < Self::MAX_INSTANCES)
            .then(|| Ipv4Addr::from(u32::from(self.base) + Self::FIRST_HOST + n as u32))
    }

    /// `10.64.8.0/21`.
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.base, self.prefix)
    }
}

/// Every address in a lab: the control address the supervisor uses, and each instance's.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AddressBook {
    pub subnet: Ipv4Addr,
    pub prefix: u8,
    pub control: Ipv4Addr,
    /// Instance name → (service name, address).
    pub instances: BTreeMap<String, (String, Ipv4Addr)>,
}

impl AddressBook {
    /// Addresses for `instances` ((instance, service) pairs, in order) in `subnet`.
    pub fn plan(subnet: Subnet, instances: &[(String, String)]) -> Option<AddressBook> {
        let mut book = AddressBook {
            subnet: subnet.base,
            prefix: subnet.prefix,
            control: subnet.control(),
            instances: BTreeMap::new(),
        };
        for (n, (name, service)) in instances.iter().enumerate() {
            book.instances
                .insert(name.clone(), (service.clone(), subnet.host(n)?));
        }
        Some(book)
    }

    pub fn ip_of(&self, instance: &str) -> Option<Ipv4Addr> {
        self.instances.get(instance).map(|(_, ip)| *ip)
    }

    pub fn ips_of_service(&self, service: &str) -> Vec<Ipv4Addr> {
        self.instances
            .values()
            .filter(|(s, _)| s == service)
            .map(|(_, ip)| *ip)
            .collect()
    }

    /// `/etc/resolv.conf` for instances: the lab's name server on the control address. Go's
    /// and glibc's resolvers give up on a lookup after a second.
    pub fn resolv_conf(&self) -> String {
        format!(
            "nameserver {}\noptions timeout:1 attempts:1\n",
            self.control
        )
    }

    /// `/etc/hosts` for instances: each service name lists all its replicas' addresses (clients
    /// pick one at random), and each instance has its own name.
    pub fn hosts_file(&self) -> String {
        let mut out = String::from("127.0.0.1\tlocalhost\n");
        let mut by_service: BTreeMap<&str, Vec<(&str, Ipv4Addr)>> = BTreeMap::new();
        for (name, (service, ip)) in &self.instances {
            by_service.entry(service).or_default().push((name, *ip));
        }
        for (service, members) in by_service {
            for (name, ip) in members {
                if name == service {
                    out.push_str(&format!("{ip}\t{name}\n"));
                } else {
                    out.push_str(&format!("{ip}\t{service} {name}\n"));
                }
            }
        }
        out
    }
}

#[cfg(test)]
impl AddressBook {
    /// `api-0`, `api-1` (service `api`) and `web` in 10.9.0.0/24, for tests.
    pub(crate) fn sample() -> AddressBook {
        let mut instances = BTreeMap::new();
        for (n, s, last) in [
            ("api-0", "api", 10),
            ("api-1", "api", 11),
            ("web", "web", 12),
        ] {
            instances.insert(
                n.to_string(),
                (s.to_string(), Ipv4Addr::new(10, 9, 0, last)),
            );
        }
        AddressBook {
            subnet: Ipv4Addr::new(10, 9, 0, 0),
            prefix: 24,
            control: Ipv4Addr::new(10, 9, 0, 1),
            instances,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_get_blocks_of_their_own_big_enough_for_a_thousand_instances() {
        assert_eq!(Subnet::of_slot(0).cidr(), "10.64.0.0/21");
        assert_eq!(Subnet::of_slot(1).cidr(), "10.64.8.0/21");
        assert_eq!(Subnet::of_slot(255).cidr(), "10.71.248.0/21");
        let s = Subnet::of_slot(3);
        assert_eq!(s.control(), Ipv4Addr::new(10, 64, 24, 1));
        assert_eq!(s.host(0), Some(Ipv4Addr::new(10, 64, 24, 10)));
        assert_eq!(s.host(999), Some(Ipv4Addr::new(10, 64, 27, 241)));
        let last = s.host(Subnet::MAX_INSTANCES - 1).expect("last host");
        assert!(u32::from(last) < u32::from(Subnet::of_slot(4).base) - 1);
        assert_eq!(s.host(Subnet::MAX_INSTANCES), None);
    }

    #[test]
    fn hosts_file_lists_service_names_and_replicas() {
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
            "loadgen".to_string(),
            ("loadgen".to_string(), Ipv4Addr::new(10, 66, 0, 9)),
        );
        let book = AddressBook {
            subnet: Ipv4Addr::new(10, 66, 0, 0),
            prefix: 24,
            control: Ipv4Addr::new(10, 66, 0, 1),
            instances,
        };
        let hosts = book.hosts_file();
        assert!(hosts.contains("10.66.0.10\tapi api-0\n"));
        assert!(hosts.contains("10.66.0.11\tapi api-1\n"));
        assert!(hosts.contains("10.66.0.9\tloadgen\n"));
    }
}
