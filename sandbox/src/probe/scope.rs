//! What a probe may see: the processes, namespaces and addresses of one service of one lab
//! (or of the whole lab), resolved from the lab's published state.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::ProbeError;
use crate::lab::{self, FindError, LabDir, State};

/// One instance a probe looks at.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub service: String,
    pub ip: Ipv4Addr,
    /// Inode of its network namespace, as the kernel reports `net->ns.inum`.
    pub netns_inode: u64,
    /// Its network namespace, as the backend published it.
    pub netns: Option<crate::sys::netns::NsPath>,
    pub pid: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Scope {
    pub state: State,
    /// The service or instance asked for; `None` for the whole lab.
    pub target: Option<String>,
    /// The instances targeted (every instance, and the load generator, without a target).
    pub members: Vec<Member>,
    /// Inode of the namespace that forwards the lab's packets, where the backend has one
    /// (the netns backend's bridge namespace, where faults act on forwarded packets).
    pub router_inode: Option<u64>,
    /// Every instance of the lab (not only the targeted ones), for naming peers and places.
    pub all: Vec<Member>,
    names: BTreeMap<Ipv4Addr, String>,
}

impl Scope {
    /// The lab `lab` (or the only one running) and, in it, `target`: a service (all its
    /// replicas) or one instance such as `api-1`.
    pub fn resolve(lab_id: Option<&str>, target: Option<&str>) -> Result<Scope, ProbeError> {
        let state = lab::find(lab_id)?;
        if state.phase != lab::Phase::Ready {
            return Err(ProbeError::Target(format!(
                "lab {} is not ready ({:?}: {})",
                state.id, state.phase, state.step
            )));
        }
        let chosen: Vec<&lab::InstanceState> = match target {
            None => state.instances.iter().collect(),
            Some(t) => {
                let exact: Vec<_> = state.instances.iter().filter(|i| i.name == t).collect();
                if exact.is_empty() {
                    state.instances.iter().filter(|i| i.service == t).collect()
                } else {
                    exact
                }
            }
        };
        if chosen.is_empty() {
            let known: Vec<&str> = state.instances.iter().map(|i| i.name.as_str()).collect();
            return Err(FindError::NoSuchInstance {
                lab: state.id.to_string(),
                name: target.unwrap_or_default().to_string(),
                known: known.join(", "),
            }
            .into());
        }
        let member = |i: &lab::InstanceState| -> Result<Member, ProbeError> {
            Ok(Member {
                name: i.name.clone(),
                service: i.service.clone(),
                ip: i
                    .ip
                    .parse()
                    .map_err(|_| ProbeError::Target(format!("{} has no address", i.name)))?,
                netns_inode: i.netns_inode.ok_or_else(|| {
                    ProbeError::Target(format!(
                        "{} has not started yet (no network namespace published)",
                        i.name
                    ))
                })?,
                netns: i.netns.clone(),
                pid: i.pid,
            })
        };
        let members = chosen
            .into_iter()
            .map(member)
            .collect::<Result<Vec<_>, _>>()?;
        let all = state
            .instances
            .iter()
            .map(member)
            .collect::<Result<Vec<_>, _>>()?;
        let names = all.iter().map(|m| (m.ip, m.name.clone())).collect();
        let router_inode = state.wire.as_ref().and_then(|w| w.router_inode);
        Ok(Scope {
            target: target.map(str::to_string),
            members,
            router_inode,
            all,
            names,
            state,
        })
    }

    /// The members with a running process, and its pid; an error when there are none.
    pub fn running(&self) -> Result<Vec<(&Member, u32)>, ProbeError> {
        let running: Vec<(&Member, u32)> = self
            .members
            .iter()
            .filter_map(|m| Some((m, m.pid?)))
            .collect();
        if running.is_empty() {
            return Err(ProbeError::Target(format!(
                "no running process in {}; is the service up (sandbox status)?",
                self.describe()
            )));
        }
        Ok(running)
    }

    /// `backend (backend-0, backend-1) in lab k3f9q`.
    pub fn describe(&self) -> String {
        let names: Vec<&str> = self.members.iter().map(|m| m.name.as_str()).collect();
        match &self.target {
            Some(t) if names.len() == 1 && names[0] == t => format!("{t} in lab {}", self.state.id),
            Some(t) => format!("{t} ({}) in lab {}", names.join(", "), self.state.id),
            None => format!("all of lab {}", self.state.id),
        }
    }

    /// The instance name of a lab address, or the address itself.
    pub fn name_of(&self, ip: Ipv4Addr) -> String {
        self.names
            .get(&ip)
            .cloned()
            .unwrap_or_else(|| ip.to_string())
    }

    pub fn ips(&self) -> Vec<Ipv4Addr> {
        self.members.iter().map(|m| m.ip).collect()
    }

    pub fn netns_inodes(&self) -> Vec<u64> {
        self.members.iter().map(|m| m.netns_inode).collect()
    }

    /// Every network namespace of the lab: the instances' and the router's.
    pub fn lab_inodes(&self) -> Vec<u64> {
        let mut all: Vec<u64> = self
            .all
            .iter()
            .map(|m| m.netns_inode)
            .chain(self.router_inode)
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Where a namespace inode belongs: an instance name, or the lab network (the bridge).
    pub fn place_of(&self, inode: u64) -> String {
        if Some(inode) == self.router_inode {
            return "network".into();
        }
        self.all
            .iter()
            .find(|m| m.netns_inode == inode)
            .map(|m| m.name.clone())
            .unwrap_or_else(|| format!("netns {inode}"))
    }

    /// Ports the lab's services listen on: the server side of every connection.
    pub fn service_ports(&self) -> Vec<u16> {
        let mut p: Vec<u16> = self
            .state
            .instances
            .iter()
            .flat_map(|i| i.ports.iter().copied())
            .collect();
        p.sort();
        p.dedup();
        p
    }

    /// Processes of the targeted instances that are running.
    pub fn pids(&self) -> Vec<u32> {
        self.members.iter().filter_map(|m| m.pid).collect()
    }

    pub fn lab_dir(&self) -> LabDir {
        LabDir::new(&self.state.id)
    }
}
