//! Tags the collector computes for a probe from what it knows: the addresses in the probe's
//! hello, its latest self-test and its newest successful IPv6 measurement. Pure: the caller
//! supplies the clock and the previous tags.
//!
//! How each tag is decided ("global" means `policy::classify` finds the address globally
//! routable):
//!
//! - `v6-capable`: the hello lists at least one global IPv6 address.
//! - `v6-works`: a measurement over IPv6 succeeded at most 24 h before now (exactly 24 h
//!   counts). A success stamped after now (probe clock ahead) counts too.
//! - `v6-stable-1d`, `v6-stable-30d`: `v6-works` holds now and has held since at least 1 day /
//!   30 days before now (its `since`).
//! - `resolves-aaaa`: the self-test's AAAA lookup returned IPv6 addresses.
//! - `access-nat64`: the self-test found a NAT64 prefix.
//! - `access-464xlat`: a NAT64 prefix and a CLAT.
//! - `access-tunnel`: `v6-capable`, and the default IPv6 route goes over a sit or other tunnel
//!   interface, or a global address is 6to4 (2002::/16) or Teredo (2001::/32).
//! - `access-native`: `v6-capable`, a default IPv6 route, and not `access-tunnel`.
//! - `access-v4-cgnat`: the self-test lists an IPv4 address in 100.64.0.0/10 (RFC 6598).
//!
//! `resolves-aaaa` and the `access-*` tags need a self-test; without one none of them is set.
//!
//! A tag keeps the `since` it had in the previous tags; a newly set tag gets now. Previous tags
//! this collector does not know are dropped. Tags come out in [`Tag::ALL`] order.

use sixmap_shared::health::{InterfaceKind, ProbeTag, SelfTest, TagName};
use sixmap_shared::policy::classify;
use sixmap_shared::time::UnixMicros;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// What the collector knows about a probe when computing its tags.
#[derive(Debug, Clone, Copy)]
pub struct TagInputs<'a> {
    /// From the probe's hello.
    pub local_addresses: &'a [IpAddr],
    pub self_test: Option<&'a SelfTest>,
    /// Newest successful measurement over IPv6.
    pub last_v6_success: Option<UnixMicros>,
}

/// A tag this collector knows how to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tag {
    V6Capable,
    V6Works,
    V6Stable1d,
    V6Stable30d,
    ResolvesAaaa,
    AccessNative,
    AccessNat64,
    Access464xlat,
    AccessTunnel,
    AccessV4Cgnat,
}

impl Tag {
    /// Every tag, in output order.
    pub const ALL: [Tag; 10] = [
        Tag::V6Capable,
        Tag::V6Works,
        Tag::V6Stable1d,
        Tag::V6Stable30d,
        Tag::ResolvesAaaa,
        Tag::AccessNative,
        Tag::AccessNat64,
        Tag::Access464xlat,
        Tag::AccessTunnel,
        Tag::AccessV4Cgnat,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Tag::V6Capable => "v6-capable",
            Tag::V6Works => "v6-works",
            Tag::V6Stable1d => "v6-stable-1d",
            Tag::V6Stable30d => "v6-stable-30d",
            Tag::ResolvesAaaa => "resolves-aaaa",
            Tag::AccessNative => "access-native",
            Tag::AccessNat64 => "access-nat64",
            Tag::Access464xlat => "access-464xlat",
            Tag::AccessTunnel => "access-tunnel",
            Tag::AccessV4Cgnat => "access-v4-cgnat",
        }
    }

    #[expect(
        clippy::expect_used,
        reason = "the names are constants, all checked by the `names_are_valid` test"
    )]
    pub fn tag_name(self) -> TagName {
        TagName::new(self.name()).expect("tag names are valid")
    }

    fn from_name(name: &TagName) -> Option<Tag> {
        Tag::ALL.into_iter().find(|tag| tag.name() == name.as_str())
    }
}

/// Tags whose names appear or disappear between two tag lists; `since` changes are not changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TagChange {
    pub added: Vec<TagName>,
    pub removed: Vec<TagName>,
}

impl TagChange {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// The probe's tags now, given its previous tags (for `since`).
pub fn compute(inputs: &TagInputs, previous: &[ProbeTag], now: UnixMicros) -> Vec<ProbeTag> {
    let previous: Vec<(Tag, UnixMicros)> = previous
        .iter()
        .filter_map(|t| Tag::from_name(&t.name).map(|tag| (tag, t.since)))
        .collect();
    let since = |tag: Tag| {
        previous
            .iter()
            .find(|(known, _)| *known == tag)
            .map_or(now, |&(_, since)| since)
    };
    let facts = Facts::gather(inputs, now);
    let works_for = now.saturating_since(since(Tag::V6Works));
    Tag::ALL
        .into_iter()
        .filter(|&tag| facts.holds(tag, works_for))
        .map(|tag| ProbeTag {
            name: tag.tag_name(),
            since: since(tag),
        })
        .collect()
}

/// What changed from `old` to `new`, each list in its input's order.
pub fn diff(old: &[ProbeTag], new: &[ProbeTag]) -> TagChange {
    let missing_from = |list: &[ProbeTag], tag: &ProbeTag| !list.iter().any(|t| t.name == tag.name);
    TagChange {
        added: new
            .iter()
            .filter(|t| missing_from(old, t))
            .map(|t| t.name.clone())
            .collect(),
        removed: old
            .iter()
            .filter(|t| missing_from(new, t))
            .map(|t| t.name.clone())
            .collect(),
    }
}

/// The conditions the tags are built from, decided once.
struct Facts {
    v6_capable: bool,
    v6_works: bool,
    transition_address: bool,
    self_test: Option<SelfTestFacts>,
}

struct SelfTestFacts {
    resolves_aaaa: bool,
    default_route_v6: bool,
    nat64: bool,
    clat: bool,
    tunnel_interface: bool,
    cgnat: bool,
}

impl Facts {
    fn gather(inputs: &TagInputs, now: UnixMicros) -> Self {
        let global_v6: Vec<Ipv6Addr> = inputs
            .local_addresses
            .iter()
            .filter_map(|a| match a {
                IpAddr::V6(v6) if classify(*a).is_none() => Some(*v6),
                _ => None,
            })
            .collect();
        Facts {
            v6_capable: !global_v6.is_empty(),
            v6_works: inputs
                .last_v6_success
                .is_some_and(|last| now.saturating_since(last) <= DAY),
            transition_address: global_v6.iter().copied().any(is_transition_address),
            self_test: inputs.self_test.map(SelfTestFacts::gather),
        }
    }

    /// Whether `tag` holds; `works_for` is how long `v6-works` has held.
    fn holds(&self, tag: Tag, works_for: Duration) -> bool {
        let test = self.self_test.as_ref();
        let with_test = |check: fn(&SelfTestFacts) -> bool| test.is_some_and(check);
        match tag {
            Tag::V6Capable => self.v6_capable,
            Tag::V6Works => self.v6_works,
            Tag::V6Stable1d => self.v6_works && works_for >= DAY,
            Tag::V6Stable30d => self.v6_works && works_for >= 30 * DAY,
            Tag::ResolvesAaaa => with_test(|t| t.resolves_aaaa),
            Tag::AccessNative => {
                self.v6_capable && with_test(|t| t.default_route_v6) && !self.access_tunnel()
            }
            Tag::AccessNat64 => with_test(|t| t.nat64),
            Tag::Access464xlat => with_test(|t| t.nat64 && t.clat),
            Tag::AccessTunnel => self.access_tunnel(),
            Tag::AccessV4Cgnat => with_test(|t| t.cgnat),
        }
    }

    fn access_tunnel(&self) -> bool {
        self.v6_capable
            && self
                .self_test
                .as_ref()
                .is_some_and(|t| t.tunnel_interface || self.transition_address)
    }
}

impl SelfTestFacts {
    fn gather(test: &SelfTest) -> Self {
        SelfTestFacts {
            resolves_aaaa: test.aaaa_resolved == Some(true),
            default_route_v6: test.default_route_v6,
            nat64: test.nat64_prefix.is_some(),
            clat: test.clat,
            tunnel_interface: matches!(
                test.v6_route_interface_kind,
                InterfaceKind::Sit | InterfaceKind::Tunnel
            ),
            cgnat: test
                .v4_addresses
                .iter()
                .copied()
                .any(is_shared_address_space),
        }
    }
}

/// 6to4 (2002::/16) or Teredo (2001::/32): IPv6 carried over IPv4 whatever the route says.
fn is_transition_address(address: Ipv6Addr) -> bool {
    let s = address.segments();
    s[0] == 0x2002 || (s[0] == 0x2001 && s[1] == 0)
}

/// 100.64.0.0/10, the carrier-grade NAT range (RFC 6598).
fn is_shared_address_space(address: Ipv4Addr) -> bool {
    let o = address.octets();
    o[0] == 100 && o[1] & 0xc0 == 64
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMicros = UnixMicros(1_000_000_000_000_000);
    const HOUR_US: i64 = 3_600_000_000;
    const DAY_US: i64 = 24 * HOUR_US;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn self_test() -> SelfTest {
        SelfTest {
            tested_at: NOW,
            default_route_v6: false,
            default_route_v4: true,
            v4_addresses: vec!["192.168.1.23".parse().unwrap()],
            v6_route_interface: None,
            v6_route_interface_kind: InterfaceKind::Unknown,
            v6_route_mtu: None,
            aaaa_name: "example.org".to_owned(),
            aaaa_resolved: Some(false),
            nat64_prefix: None,
            clat: false,
            global_v6_address: false,
            collector_v6: None,
        }
    }

    fn native_test() -> SelfTest {
        SelfTest {
            default_route_v6: true,
            v6_route_interface: Some("eth0".to_owned()),
            v6_route_interface_kind: InterfaceKind::Ethernet,
            v6_route_mtu: Some(1500),
            ..self_test()
        }
    }

    fn tag(tag: Tag, since: UnixMicros) -> ProbeTag {
        ProbeTag {
            name: tag.tag_name(),
            since,
        }
    }

    fn names(tags: &[ProbeTag]) -> Vec<&str> {
        tags.iter().map(|t| t.name.as_str()).collect()
    }

    fn tags_of(
        addresses: &[IpAddr],
        self_test: Option<&SelfTest>,
        last_v6_success: Option<UnixMicros>,
    ) -> Vec<ProbeTag> {
        let inputs = TagInputs {
            local_addresses: addresses,
            self_test,
            last_v6_success,
        };
        compute(&inputs, &[], NOW)
    }

    #[test]
    fn names_are_valid() {
        let expected = [
            "v6-capable",
            "v6-works",
            "v6-stable-1d",
            "v6-stable-30d",
            "resolves-aaaa",
            "access-native",
            "access-nat64",
            "access-464xlat",
            "access-tunnel",
            "access-v4-cgnat",
        ];
        let names: Vec<&str> = Tag::ALL.into_iter().map(Tag::name).collect();
        assert_eq!(names, expected);
        for tag in Tag::ALL {
            assert_eq!(tag.tag_name().as_str(), tag.name());
            assert_eq!(Tag::from_name(&tag.tag_name()), Some(tag));
        }
    }

    #[test]
    fn nothing_known_means_no_tags() {
        assert!(tags_of(&[], None, None).is_empty());
    }

    #[test]
    fn v6_capable_needs_a_global_ipv6_address() {
        let local = [ip("fe80::1"), ip("fd00::1"), ip("::1"), ip("192.0.2.1")];
        assert!(tags_of(&local, None, None).is_empty());
        let global = [ip("fe80::1"), ip("2a00:1450:4001:80b::200e")];
        assert_eq!(names(&tags_of(&global, None, None)), ["v6-capable"]);
    }

    #[test]
    fn v6_works_within_24_hours_inclusive() {
        let works = |last: i64| {
            let tags = tags_of(&[], None, Some(UnixMicros(last)));
            names(&tags) == ["v6-works"]
        };
        assert!(works(NOW.0));
        assert!(works(NOW.0 - DAY_US));
        assert!(!works(NOW.0 - DAY_US - 1));
        assert!(works(NOW.0 + HOUR_US), "probe clock ahead");
        assert!(tags_of(&[], None, None).is_empty());
    }

    #[test]
    fn v6_stable_turns_on_exactly_at_one_day() {
        let previous_works = |age: i64| [tag(Tag::V6Works, UnixMicros(NOW.0 - age))];
        let inputs = TagInputs {
            local_addresses: &[],
            self_test: None,
            last_v6_success: Some(NOW),
        };
        let before = compute(&inputs, &previous_works(DAY_US - 1), NOW);
        assert_eq!(names(&before), ["v6-works"]);
        let at = compute(&inputs, &previous_works(DAY_US), NOW);
        assert_eq!(
            at,
            [
                tag(Tag::V6Works, UnixMicros(NOW.0 - DAY_US)),
                tag(Tag::V6Stable1d, NOW)
            ]
        );
        let month = compute(&inputs, &previous_works(30 * DAY_US), NOW);
        assert_eq!(names(&month), ["v6-works", "v6-stable-1d", "v6-stable-30d"]);
        let almost_month = compute(&inputs, &previous_works(30 * DAY_US - 1), NOW);
        assert_eq!(names(&almost_month), ["v6-works", "v6-stable-1d"]);
    }

    #[test]
    fn v6_stable_needs_v6_works_now() {
        let inputs = TagInputs {
            local_addresses: &[],
            self_test: None,
            last_v6_success: Some(UnixMicros(NOW.0 - 2 * DAY_US)),
        };
        let previous = [
            tag(Tag::V6Works, UnixMicros(NOW.0 - 40 * DAY_US)),
            tag(Tag::V6Stable1d, UnixMicros(NOW.0 - 39 * DAY_US)),
            tag(Tag::V6Stable30d, UnixMicros(NOW.0 - 10 * DAY_US)),
        ];
        assert!(compute(&inputs, &previous, NOW).is_empty());
    }

    #[test]
    fn newly_working_v6_is_not_stable() {
        let tags = tags_of(&[], None, Some(NOW));
        assert_eq!(tags, [tag(Tag::V6Works, NOW)]);
    }

    #[test]
    fn resolves_aaaa_only_on_a_positive_answer() {
        for (answer, expected) in [(Some(true), true), (Some(false), false), (None, false)] {
            let test = SelfTest {
                aaaa_resolved: answer,
                ..self_test()
            };
            let tags = tags_of(&[], Some(&test), None);
            assert_eq!(names(&tags) == ["resolves-aaaa"], expected, "{answer:?}");
        }
    }

    #[test]
    fn access_native() {
        let global = [ip("2a00:1450:4001:80b::200e")];
        let tags = tags_of(&global, Some(&native_test()), None);
        assert_eq!(names(&tags), ["v6-capable", "access-native"]);
        // No default route, no global address, or no self-test: not native.
        assert_eq!(
            names(&tags_of(&global, Some(&self_test()), None)),
            ["v6-capable"]
        );
        assert!(tags_of(&[ip("fd00::1")], Some(&native_test()), None).is_empty());
        assert_eq!(names(&tags_of(&global, None, None)), ["v6-capable"]);
    }

    #[test]
    fn access_tunnel_by_interface_kind() {
        let global = [ip("2001:470:1f0b:2a::2")];
        for kind in [InterfaceKind::Sit, InterfaceKind::Tunnel] {
            let test = SelfTest {
                v6_route_interface_kind: kind,
                ..native_test()
            };
            let tags = tags_of(&global, Some(&test), None);
            assert_eq!(names(&tags), ["v6-capable", "access-tunnel"], "{kind:?}");
            assert!(
                tags_of(&[], Some(&test), None).is_empty(),
                "needs v6-capable"
            );
        }
        let ppp = SelfTest {
            v6_route_interface_kind: InterfaceKind::Ppp,
            ..native_test()
        };
        let tags = tags_of(&global, Some(&ppp), None);
        assert_eq!(names(&tags), ["v6-capable", "access-native"]);
    }

    #[test]
    fn access_tunnel_by_6to4_or_teredo_address() {
        for address in ["2002:c000:204::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2"] {
            let local = [ip(address)];
            let tags = tags_of(&local, Some(&native_test()), None);
            assert_eq!(names(&tags), ["v6-capable", "access-tunnel"], "{address}");
            let without_test = tags_of(&local, None, None);
            assert_eq!(names(&without_test), ["v6-capable"], "{address}");
        }
        // 2001:1::/32 is not Teredo.
        let tags = tags_of(&[ip("2001:1::1")], Some(&native_test()), None);
        assert_eq!(names(&tags), ["v6-capable", "access-native"]);
    }

    #[test]
    fn access_nat64_and_464xlat() {
        let nat64 = SelfTest {
            nat64_prefix: Some("64:ff9b::".parse().unwrap()),
            ..self_test()
        };
        assert_eq!(names(&tags_of(&[], Some(&nat64), None)), ["access-nat64"]);
        let xlat = SelfTest {
            clat: true,
            ..nat64.clone()
        };
        let tags = tags_of(&[], Some(&xlat), None);
        assert_eq!(names(&tags), ["access-nat64", "access-464xlat"]);
        let clat_only = SelfTest {
            clat: true,
            ..self_test()
        };
        assert!(tags_of(&[], Some(&clat_only), None).is_empty());
    }

    #[test]
    fn access_v4_cgnat() {
        let cgnat = |address: &str| {
            let test = SelfTest {
                v4_addresses: vec!["192.168.1.23".parse().unwrap(), address.parse().unwrap()],
                ..self_test()
            };
            names(&tags_of(&[], Some(&test), None)) == ["access-v4-cgnat"]
        };
        assert!(cgnat("100.64.0.1"));
        assert!(cgnat("100.127.255.254"));
        assert!(!cgnat("100.63.255.255"));
        assert!(!cgnat("100.128.0.1"));
        assert!(tags_of(&[], Some(&self_test()), None).is_empty());
    }

    #[test]
    fn since_is_kept_and_unknown_tags_dropped() {
        let global = [ip("2a00:1450:4001:80b::200e")];
        let test = SelfTest {
            aaaa_resolved: Some(true),
            ..native_test()
        };
        let inputs = TagInputs {
            local_addresses: &global,
            self_test: Some(&test),
            last_v6_success: Some(NOW),
        };
        let earlier = UnixMicros(NOW.0 - HOUR_US);
        let previous = [
            ProbeTag {
                name: TagName::new("from-a-newer-collector").unwrap(),
                since: earlier,
            },
            tag(Tag::AccessNative, UnixMicros(7)),
            tag(Tag::V6Capable, earlier),
        ];
        let tags = compute(&inputs, &previous, NOW);
        assert_eq!(
            tags,
            [
                tag(Tag::V6Capable, earlier),
                tag(Tag::V6Works, NOW),
                tag(Tag::ResolvesAaaa, NOW),
                tag(Tag::AccessNative, UnixMicros(7)),
            ]
        );
        assert_eq!(compute(&inputs, &tags, NOW), tags, "stable when recomputed");
    }

    #[test]
    fn a_tag_that_comes_back_starts_again() {
        let inputs = TagInputs {
            local_addresses: &[],
            self_test: None,
            last_v6_success: Some(NOW),
        };
        let previous = [tag(Tag::V6Capable, UnixMicros(3))];
        assert_eq!(compute(&inputs, &previous, NOW), [tag(Tag::V6Works, NOW)]);
    }

    #[test]
    fn diff_names_added_and_removed_tags() {
        let old = [
            tag(Tag::V6Capable, UnixMicros(1)),
            tag(Tag::V6Works, UnixMicros(1)),
            tag(Tag::AccessNative, UnixMicros(1)),
        ];
        let new = [
            tag(Tag::V6Capable, UnixMicros(5)),
            tag(Tag::AccessNat64, UnixMicros(5)),
            tag(Tag::Access464xlat, UnixMicros(5)),
        ];
        let change = diff(&old, &new);
        assert_eq!(
            change,
            TagChange {
                added: vec![Tag::AccessNat64.tag_name(), Tag::Access464xlat.tag_name()],
                removed: vec![Tag::V6Works.tag_name(), Tag::AccessNative.tag_name()],
            }
        );
        assert!(!change.is_empty());
        assert!(diff(&old, &old).is_empty());
        assert!(diff(&[], &[]).is_empty());
        assert_eq!(diff(&[], &new).added.len(), 3);
        assert_eq!(diff(&old, &[]).removed.len(), 3);
    }
}
