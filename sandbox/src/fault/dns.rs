//! DNS faults, installed as rules at the lab's name server: lookups from the target's
//! clients for the target's names get a wrong answer, a late one, or none.

use crate::names::{Catch, Rule, RuleHandle, Rules, Zone};
use crate::plan::{Effect, FaultTarget};
use crate::topology::AddressBook;

use super::FaultError;
use super::selector::selectors;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Direction;
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
}
