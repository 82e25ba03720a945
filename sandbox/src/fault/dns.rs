//! DNS faults, installed as rules at the lab's name server: lookups from the target's
//! clients for the target's names get a wrong answer, a late one, or none. On a cluster,
//! whose pods ask cluster DNS, they act on the query packets on their way instead.

use std::time::Duration;

use crate::names::{Catch, Rule, RuleHandle, Rules, Zone};
use crate::plan::{Effect, FaultTarget};
use crate::scenario::{Direction, DnsAnswer};
use crate::topology::AddressBook;

use super::FaultError;
use super::selector::{Selector, selectors};

pub struct DnsFault {
    handle: RuleHandle,
}

impl DnsFault {
    pub fn remove(self) -> Result<(), FaultError> {
        self.handle.remove();
        Ok(())
    }

    pub fn lookups(&self) -> u64 {
        self.handle.hits()
    }
}

/// A lookup by client `c` for name `n` stands for traffic from `c` to `n`'s addresses, so a
/// target catches the lookups whose traffic its packet selectors would: `egress` of a
/// service catches its own lookups, `ingress` everyone's lookups of it, a link from `a` to
/// `b` the lookups `a` makes for `b`.
pub fn catches(target: &FaultTarget, effect: &Effect, book: &AddressBook) -> Vec<Catch> {
    let zone = Zone::of(book);
    selectors(target, effect, book)
        .into_iter()
        .map(|s| Catch {
            clients: (!s.src.is_empty()).then(|| s.src.iter().copied().collect()),
            names: (!s.dst.is_empty()).then(|| zone.names_of(&s.dst)),
        })
        .collect()
}

pub fn install(
    rules: &Rules,
    target: &FaultTarget,
    effect: &Effect,
    book: &AddressBook,
) -> Result<DnsFault, FaultError> {
    let Effect::Dns {
        answer,
        delay,
        percent,
    } = effect
    else {
        return Err(FaultError::Unsupported(format!(
            "{effect} is not a DNS fault"
        )));
    };
    let handle = rules.add(Rule {
        catch: catches(target, effect, book),
        answer: *answer,
        delay: *delay,
        percent: *percent,
    });
    Ok(DnsFault { handle })
}

/// A DNS fault where sandbox runs no name server (a cluster's pods ask cluster DNS): the
/// packet fault that gives the same answers to the target's own query packets (from its
/// pods to port 53): loss for lookups left unanswered, delay for late ones. A packet rule
/// does not know which name a query asks, nor answer in the server's place, so only a
/// service's own lookups (`egress`), and only late or missing answers, can be given.
pub fn as_packets(
    target: &FaultTarget,
    effect: &Effect,
    book: &AddressBook,
) -> Result<(Effect, Vec<Selector>), FaultError> {
    let unsupported = |why: &str| Err(FaultError::Unsupported(why.into()));
    let Effect::Dns {
        answer,
        delay,
        percent,
    } = effect
    else {
        return unsupported("not a DNS fault");
    };
    let FaultTarget::Service {
        direction: Direction::Egress,
        ..
    } = target
    else {
        return unsupported(
            "on a cluster a dns fault catches a service's own lookups (`direction: egress`): cluster DNS, not sandbox, answers them",
        );
    };
    let packets = match (answer, delay) {
        (Some(DnsAnswer::Timeout), _) => Effect::Loss { percent: *percent },
        (None, Some(d)) if *percent >= 100.0 => Effect::Delay {
            delay: *d,
            jitter: Duration::ZERO,
        },
        (None, Some(_)) => return unsupported("on a cluster a dns delay holds every lookup"),
        (Some(_), _) => {
            return unsupported(
                "on a cluster a dns fault can only leave lookups unanswered (`answer: timeout`) or answer them late; nxdomain and servfail need the lab's own name server",
            );
        }
        (None, None) => return unsupported("a dns fault needs `answer` or `delay`"),
    };
    let sels = selectors(target, &packets, book)
        .into_iter()
        .map(|s| Selector {
            dst: Vec::new(),
            dport: Some(53),
            sport: None,
            ..s
        })
        .collect();
    Ok((packets, sels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn book() -> AddressBook {
        AddressBook::sample()
    }

    const NX: Effect = Effect::Dns {
        answer: Some(crate::scenario::DnsAnswer::Nxdomain),
        delay: None,
        percent: 100.0,
    };

    #[test]
    fn a_link_catches_its_source_looking_up_its_destination() {
        let t = FaultTarget::Link {
            from: "web".into(),
            to: "api".into(),
            direction: Direction::Forward,
            port: None,
        };
        let c = catches(&t, &NX, &book());
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].clients, Some([Ipv4Addr::new(10, 9, 0, 12)].into()));
        let names: Vec<&str> = c[0].names.iter().flatten().map(String::as_str).collect();
        assert_eq!(names, ["api", "api-0", "api-1"]);
    }

    #[test]
    fn a_service_catches_its_own_lookups_going_out_and_lookups_of_it_coming_in() {
        let svc = |direction| FaultTarget::Service {
            service: "web".into(),
            replica: None,
            direction,
            port: None,
        };
        let out = catches(&svc(Direction::Egress), &NX, &book());
        assert_eq!(out[0].clients, Some([Ipv4Addr::new(10, 9, 0, 12)].into()));
        assert_eq!(out[0].names, None, "every name it looks up");
        let inn = catches(&svc(Direction::Ingress), &NX, &book());
        assert_eq!(inn[0].clients, None, "whoever looks it up");
        assert_eq!(inn[0].names, Some(["web".to_string()].into()));
    }

    #[test]
    fn on_a_cluster_a_services_lookups_are_its_query_packets() {
        let svc = |direction| FaultTarget::Service {
            service: "web".into(),
            replica: None,
            direction,
            port: None,
        };
        let late = Effect::Dns {
            answer: None,
            delay: Some(Duration::from_millis(80)),
            percent: 100.0,
        };
        let (effect, sels) = as_packets(&svc(Direction::Egress), &late, &book()).unwrap();
        assert_eq!(
            effect,
            Effect::Delay {
                delay: Duration::from_millis(80),
                jitter: Duration::ZERO
            }
        );
        assert_eq!(sels.len(), 1);
        assert_eq!(sels[0].src, [Ipv4Addr::new(10, 9, 0, 12)]);
        assert_eq!((sels[0].dst.len(), sels[0].dport), (0, Some(53)));
        let lost = Effect::Dns {
            answer: Some(DnsAnswer::Timeout),
            delay: None,
            percent: 30.0,
        };
        let (effect, _) = as_packets(&svc(Direction::Egress), &lost, &book()).unwrap();
        assert_eq!(effect, Effect::Loss { percent: 30.0 });
        assert!(as_packets(&svc(Direction::Ingress), &lost, &book()).is_err());
        assert!(as_packets(&svc(Direction::Egress), &NX, &book()).is_err());
    }
}
