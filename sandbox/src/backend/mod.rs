//! Where a lab runs. A backend builds the lab's network, runs processes inside it and knows
//! where packet faults are installed. The built-in backend uses network namespaces on this
//! machine; container and Kubernetes backends implement the same trait.

pub mod netns;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::fault::{FaultError, Injector};
use crate::sys::cmd::CmdError;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Cmd(#[from] CmdError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Missing(String),
    #[error(transparent)]
    Fault(#[from] FaultError),
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

/// What the supervisor needs from wherever the lab runs.
pub trait Backend: Send {
    /// Builds the network: an isolated host per instance, addresses, names. Nothing runs yet.
    /// On error, whatever was created is removed again.
    fn create(&mut self) -> Result<(), BackendError>;

    fn book(&self) -> &AddressBook;

    /// Moves the calling thread where it reaches every instance directly; threads and
    /// processes it starts later are there too. Must be called before starting a runtime.
    fn join(&self) -> Result<(), BackendError>;

    /// A command that runs `program` as `instance`, inside its host.
    fn command(
        &self,
        instance: &str,
        program: &Path,
    ) -> Result<std::process::Command, BackendError>;

    /// A command that runs `program` inside the lab's network, as `sandbox shell` does.
    fn shell_command(
        &self,
        instance: &str,
        program: &str,
    ) -> Result<std::process::Command, BackendError>;

    /// Installs and removes the lab's packet and app faults.
    fn injector(&self) -> Injector;

    /// Removes everything `create` made and every process still inside it. Safe to call twice.
    fn destroy(&mut self) -> Result<(), BackendError>;
}

#[cfg(test)]
mod tests {
    use super::*;

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
