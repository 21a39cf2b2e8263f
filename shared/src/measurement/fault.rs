//! The IPv6 path towards a destination where something failed (IPv6 broken while IPv4
//! works, a PMTU black hole, an extension-header drop), traced by the probe right after the
//! failure so the collector can say where it broke and whose network that is.

use super::{SpecError, TracerouteSpec, field};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// One hop limit that answered: the router (or the destination) that sent the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathHop {
    pub hop_limit: u8,
    pub address: IpAddr,
}

impl PathHop {
    /// An address an ICMPv6 answer on an IPv6 path can come from: IPv6 unicast. IPv4
    /// (plain or IPv4-mapped), multicast and the unspecified address name no router, and an
    /// attribution would look them up as somebody's network.
    pub fn answers_from(address: IpAddr) -> bool {
        match address {
            IpAddr::V4(_) => false,
            IpAddr::V6(a) => {
                !a.is_unspecified() && !a.is_multicast() && a.to_ipv4_mapped().is_none()
            }
        }
    }
}

/// The answering hops of a short plain traceroute (the failing measurement's protocol,
/// small packets, no extension header) towards the destination. Hop limits that are not
/// listed up to `probed_up_to` stayed silent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultPath {
    /// Answering hops, strictly increasing hop limits.
    pub hops: Vec<PathHop>,
    /// Highest hop limit probed: a hop limit up to it without an entry was silent.
    pub probed_up_to: u8,
    /// The destination itself answered the trace.
    pub reached_destination: bool,
    pub packets_sent: u32,
}

impl FaultPath {
    /// More hops than a traceroute can have ([`super::TracerouteSpec::MAX_HOPS`]).
    pub const MAX_HOPS: usize = 64;

    pub fn validate(&self, name: &'static str) -> Result<(), SpecError> {
        if self.hops.len() > Self::MAX_HOPS {
            return Err(field(name, format!("more than {} hops", Self::MAX_HOPS)));
        }
        // A trace that probed nothing is no path; one past a traceroute's hop range is not ours.
        if self.probed_up_to == 0 || u32::from(self.probed_up_to) > TracerouteSpec::MAX_HOPS {
            return Err(field(
                name,
                format!(
                    "probed_up_to {} is not in 1..={}",
                    self.probed_up_to,
                    TracerouteSpec::MAX_HOPS
                ),
            ));
        }
        let mut previous = 0u8;
        for (i, hop) in self.hops.iter().enumerate() {
            if hop.hop_limit <= previous {
                return Err(field(
                    name,
                    format!(
                        "hops[{i}]: hop limits must be strictly increasing and > 0 ({} after {previous})",
                        hop.hop_limit
                    ),
                ));
            }
            if !PathHop::answers_from(hop.address) {
                return Err(field(
                    name,
                    format!(
                        "hops[{i}].address {} is not an IPv6 unicast address",
                        hop.address
                    ),
                ));
            }
            previous = hop.hop_limit;
        }
        if previous > self.probed_up_to {
            return Err(field(name, "a hop above probed_up_to"));
        }
        if (self.packets_sent as usize) < self.hops.len() {
            return Err(field(name, "fewer packets sent than hops answered"));
        }
        Ok(())
    }

    /// The last answering hop (highest hop limit), if any.
    pub fn last_answering(&self) -> Option<PathHop> {
        self.hops.last().copied()
    }

    /// The hop at `hop_limit`, if it answered.
    pub fn at(&self, hop_limit: u8) -> Option<PathHop> {
        self.hops.iter().copied().find(|h| h.hop_limit == hop_limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(hop_limit: u8, address: &str) -> PathHop {
        PathHop {
            hop_limit,
            address: address.parse().unwrap(),
        }
    }

    #[test]
    fn hops_must_increase_and_stay_within_what_was_probed() {
        let mut path = FaultPath {
            hops: vec![hop(1, "2001:db8::1"), hop(3, "2001:db8:1::1")],
            probed_up_to: 5,
            reached_destination: false,
            packets_sent: 6,
        };
        assert_eq!(path.validate("p"), Ok(()));
        assert_eq!(path.last_answering(), Some(hop(3, "2001:db8:1::1")));
        assert_eq!(path.at(2), None);
        path.probed_up_to = 2;
        assert!(path.validate("p").is_err());
        path.probed_up_to = 5;
        path.hops.swap(0, 1);
        assert!(path.validate("p").is_err());
        path.hops = vec![hop(0, "2001:db8::1")];
        assert!(path.validate("p").is_err());
        path.hops = vec![hop(1, "2001:db8::1")];
        path.packets_sent = 0;
        assert!(path.validate("p").is_err());
    }

    #[test]
    fn hostile_paths_are_refused_saying_what_is_wrong() {
        let good = || FaultPath {
            hops: vec![hop(1, "fe80::1"), hop(2, "2001:db8::1")],
            probed_up_to: 5,
            reached_destination: false,
            packets_sent: 10,
        };
        assert_eq!(good().validate("p"), Ok(()));
        type Damage = Box<dyn Fn(&mut FaultPath)>;
        let cases: Vec<(&str, Damage)> = vec![
            (
                "probed_up_to 0",
                Box::new(|p| {
                    p.hops.clear();
                    p.probed_up_to = 0;
                }),
            ),
            ("probed_up_to 65", Box::new(|p| p.probed_up_to = 65)),
            (
                "::ffff:192.0.2.1",
                Box::new(|p| p.hops[1] = hop(2, "::ffff:192.0.2.1")),
            ),
            ("192.0.2.1", Box::new(|p| p.hops[1] = hop(2, "192.0.2.1"))),
            ("ff02::1", Box::new(|p| p.hops[0] = hop(1, "ff02::1"))),
            ("hops[1].address ::", Box::new(|p| p.hops[1] = hop(2, "::"))),
            ("hops[1]: hop limits", Box::new(|p| p.hops[1].hop_limit = 1)),
            ("hops[1]: hop limits", Box::new(|p| p.hops.swap(0, 1))),
            (
                "more than 64 hops",
                Box::new(|p| {
                    p.probed_up_to = 64;
                    p.hops = (1..=65).map(|n| hop(n, "2001:db8::1")).collect();
                }),
            ),
        ];
        for (reason, damage) in cases {
            let mut path = good();
            damage(&mut path);
            let err = path.validate("p").unwrap_err().to_string();
            assert!(err.contains(reason), "{reason}: {err}");
        }
        // Link-local and unique-local routers answer real traces: they stay.
        let mut path = good();
        path.hops[1] = hop(2, "fd00::1");
        assert_eq!(path.validate("p"), Ok(()));
    }
}
