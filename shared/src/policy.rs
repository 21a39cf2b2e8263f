//! Which addresses a probe may measure.
//!
//! The probe enforces this on every target, before and after DNS resolution, whatever the
//! collector asks: a volunteer's probe must never be pointed at their own LAN, at multicast
//! groups or at address space that is not routed on the public Internet.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not a valid measurement target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NonGlobal {
    Unspecified,
    Loopback,
    Multicast,
    LinkLocal,
    UniqueLocal,
    SiteLocal,
    Documentation,
    Benchmarking,
    Discard,
    Ipv4Mapped,
    Private,
    SharedAddressSpace,
    Reserved,
    Broadcast,
    /// Teredo (2001::/32): the packets would go through a relay to an IPv4 host named only in
    /// obfuscated form, so neither the real destination nor its policy status can be judged.
    Teredo,
    /// ORCHID (2001:10::/28, 2001:20::/28): cryptographic identifiers, not locators.
    Orchid,
    /// The rest of 2001::/23 (IETF protocol assignments) that is not globally reachable.
    ProtocolAssignment,
    /// 64:ff9b:1::/48 (RFC 8215): NAT64 prefixes local to one network.
    LocalNat64,
}

impl NonGlobal {
    /// Categories refused even in lab mode: they never name a single host we could measure.
    fn refused_in_lab(self) -> bool {
        matches!(
            self,
            Self::Unspecified | Self::Multicast | Self::Broadcast | Self::LinkLocal
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("target {address} is refused by the probe's target policy: {category:?} address{hint}")]
pub struct PolicyViolation {
    pub address: IpAddr,
    pub category: NonGlobal,
    hint: &'static str,
}

/// The probe's own safety policy for targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TargetPolicy {
    /// Lab mode also allows loopback, ULA, documentation and private ranges, for test networks
    /// and the local demo. Never enabled by a collector; only by the probe's own config.
    pub lab_mode: bool,
}

impl TargetPolicy {
    pub fn check(&self, address: IpAddr) -> Result<(), PolicyViolation> {
        let Some(category) = classify_target(address) else {
            return Ok(());
        };
        if self.lab_mode && !category.refused_in_lab() {
            return Ok(());
        }
        let hint = if category.refused_in_lab() {
            ""
        } else {
            " (allowed only with lab_mode = true in the probe config)"
        };
        Err(PolicyViolation {
            address,
            category,
            hint,
        })
    }
}

/// Why `address` may not be a measurement target: [`classify`], and also the tunnel forms
/// whose packets are carried to an IPv4 host the probe cannot judge or must not reach: Teredo
/// (2001::/32, through relays to an obfuscated IPv4 client) and 6to4 (2002::/16) of a
/// non-global IPv4 address. As a probe's *own* address these are globally reachable (the
/// `access-tunnel` tag), which is why [`classify`] does not refuse them.
pub fn classify_target(address: IpAddr) -> Option<NonGlobal> {
    if let Some(category) = classify(address) {
        return Some(category);
    }
    let IpAddr::V6(v6) = address else {
        return None;
    };
    let s = v6.segments();
    if s[0] == 0x2001 && s[1] == 0 {
        return Some(NonGlobal::Teredo);
    }
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        return classify_v4(v4);
    }
    None
}

/// The category of a non-global address, or `None` for a globally routable one.
pub fn classify(address: IpAddr) -> Option<NonGlobal> {
    match address {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v6(address: Ipv6Addr) -> Option<NonGlobal> {
    let s = address.segments();
    if let Some(v4) = address.to_ipv4_mapped() {
        // Sending to ::ffff:a.b.c.d would really send IPv4: judge it as IPv4 and say so.
        return Some(classify_v4(v4).unwrap_or(NonGlobal::Ipv4Mapped));
    }
    // Forms that embed an IPv4 address which decides where the packets really end up: the
    // embedded address is judged too, so a collector cannot reach a volunteer's LAN through
    // a translator or relay (RFC 6052 NAT64, RFC 3056 6to4, deprecated IPv4-compatible).
    let embedded_low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // The well-known NAT64 prefix: a global IPv4 behind it is a fair target (it is how a
        // v6-only network reaches v4-only services); a non-global one is refused as itself.
        return classify_v4(embedded_low);
    }
    if s[..6] == [0; 6] && !address.is_unspecified() && !address.is_loopback() {
        // ::a.b.c.d (IPv4-compatible, deprecated by RFC 4291): never a real target.
        return Some(match classify_v4(embedded_low) {
            None | Some(NonGlobal::Unspecified) => NonGlobal::Reserved,
            Some(category) => category,
        });
    }
    let category = if address.is_unspecified() {
        NonGlobal::Unspecified
    } else if address.is_loopback() {
        NonGlobal::Loopback
    } else if address.is_multicast() {
        NonGlobal::Multicast
    } else if s[0] & 0xffc0 == 0xfe80 {
        NonGlobal::LinkLocal
    } else if s[0] & 0xffc0 == 0xfec0 {
        NonGlobal::SiteLocal
    } else if s[0] & 0xfe00 == 0xfc00 {
        NonGlobal::UniqueLocal
    } else if (s[0] == 0x2001 && s[1] == 0x0db8) || s[0] & 0xfff0 == 0x3ff0 {
        // 2001:db8::/32 (RFC 3849) and 3fff::/20 (RFC 9637).
        NonGlobal::Documentation
    } else if s[0] == 0x2001 && s[1] == 0x0002 && s[2] == 0 {
        NonGlobal::Benchmarking
    } else if s[0] == 0x2001 && matches!(s[1] & 0xfff0, 0x0010 | 0x0020) {
        NonGlobal::Orchid
    } else if s[0] == 0x2001 && s[1] != 0 && s[1] < 0x0200 && !protocol_assignment_is_global(s) {
        NonGlobal::ProtocolAssignment
    } else if s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0 {
        NonGlobal::Discard
    } else if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        NonGlobal::LocalNat64
    } else if s[0] & 0xe000 != 0x2000 {
        // Only 2000::/3 is allocated as global unicast.
        NonGlobal::Reserved
    } else {
        return None;
    };
    Some(category)
}

/// The parts of 2001::/23 that the IANA special-purpose registry marks globally reachable:
/// the PCP, TURN and DNS-SD anycast addresses, AMT (2001:3::/32), AS112-v6 (2001:4:112::/48)
/// and drone remote ID (2001:30::/28).
fn protocol_assignment_is_global(s: [u16; 8]) -> bool {
    let anycast = s[1] == 1 && s[2..7] == [0; 5] && (1..=3).contains(&s[7]);
    anycast || s[1] == 3 || (s[1] == 4 && s[2] == 0x112) || s[1] & 0xfff0 == 0x0030
}

fn classify_v4(address: Ipv4Addr) -> Option<NonGlobal> {
    let o = address.octets();
    let category = if address.is_unspecified() || o[0] == 0 {
        NonGlobal::Unspecified
    } else if address.is_loopback() {
        NonGlobal::Loopback
    } else if address.is_broadcast() {
        NonGlobal::Broadcast
    } else if address.is_multicast() {
        NonGlobal::Multicast
    } else if address.is_link_local() {
        NonGlobal::LinkLocal
    } else if address.is_private() {
        NonGlobal::Private
    } else if o[0] == 100 && o[1] & 0xc0 == 64 {
        NonGlobal::SharedAddressSpace
    } else if address.is_documentation() {
        NonGlobal::Documentation
    } else if o[0] == 198 && o[1] & 0xfe == 18 {
        NonGlobal::Benchmarking
    } else if o[0] >= 240
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 192 && o[1] == 88 && o[2] == 99)
    {
        // 240/4 (future use), 192.0.0/24 (IETF protocol assignments), 192.88.99/24 (the
        // deprecated 6to4 relay anycast, RFC 7526).
        NonGlobal::Reserved
    } else {
        return None;
    };
    Some(category)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn global_addresses_pass() {
        let policy = TargetPolicy::default();
        for a in [
            "2a00:1450:4001:80b::200e",
            "2606:4700::1111",
            "1.1.1.1",
            "193.0.14.129",
            // NAT64 and 6to4 of global IPv4, and the globally reachable protocol assignments.
            "64:ff9b::8.8.8.8",
            "2002:0808:0808::1",
            "2001:1::1",
            "2001:3::1",
            "2001:4:112::1",
            "2001:30::1",
            "2001:200::1",
            "2600::1",
        ] {
            assert_eq!(policy.check(ip(a)), Ok(()), "{a}");
        }
    }

    #[test]
    fn non_global_addresses_are_refused_with_their_category() {
        let policy = TargetPolicy::default();
        let cases = [
            ("::", NonGlobal::Unspecified),
            ("::1", NonGlobal::Loopback),
            ("ff02::1", NonGlobal::Multicast),
            ("fe80::1", NonGlobal::LinkLocal),
            ("fd00::1", NonGlobal::UniqueLocal),
            ("fec0::1", NonGlobal::SiteLocal),
            ("2001:db8::1", NonGlobal::Documentation),
            ("3fff:1::1", NonGlobal::Documentation),
            ("2001:2::1", NonGlobal::Benchmarking),
            ("100::1", NonGlobal::Discard),
            ("::ffff:192.168.1.1", NonGlobal::Private),
            ("::ffff:8.8.8.8", NonGlobal::Ipv4Mapped),
            ("4000::1", NonGlobal::Reserved),
            ("10.1.2.3", NonGlobal::Private),
            ("100.64.0.1", NonGlobal::SharedAddressSpace),
            ("127.0.0.1", NonGlobal::Loopback),
            ("224.0.0.1", NonGlobal::Multicast),
            ("255.255.255.255", NonGlobal::Broadcast),
            // IPv4, every special range.
            ("0.1.2.3", NonGlobal::Unspecified),
            ("0.0.0.0", NonGlobal::Unspecified),
            ("172.16.0.1", NonGlobal::Private),
            ("172.31.255.254", NonGlobal::Private),
            ("192.168.0.1", NonGlobal::Private),
            ("100.127.255.254", NonGlobal::SharedAddressSpace),
            ("127.255.0.1", NonGlobal::Loopback),
            ("169.254.169.254", NonGlobal::LinkLocal),
            ("239.255.255.250", NonGlobal::Multicast),
            ("240.0.0.1", NonGlobal::Reserved),
            ("192.0.2.1", NonGlobal::Documentation),
            ("198.51.100.7", NonGlobal::Documentation),
            ("203.0.113.9", NonGlobal::Documentation),
            ("198.18.0.1", NonGlobal::Benchmarking),
            ("198.19.255.1", NonGlobal::Benchmarking),
            ("192.0.0.8", NonGlobal::Reserved),
            ("192.88.99.1", NonGlobal::Reserved),
            // IPv6 forms that embed a non-global IPv4 address are judged by it.
            ("::ffff:127.0.0.1", NonGlobal::Loopback),
            ("::ffff:169.254.1.1", NonGlobal::LinkLocal),
            ("::ffff:100.64.1.1", NonGlobal::SharedAddressSpace),
            ("::10.0.0.1", NonGlobal::Private),
            ("::8.8.8.8", NonGlobal::Reserved),
            ("64:ff9b::10.0.0.1", NonGlobal::Private),
            ("64:ff9b::192.168.1.1", NonGlobal::Private),
            ("64:ff9b::127.0.0.1", NonGlobal::Loopback),
            ("64:ff9b::224.0.0.1", NonGlobal::Multicast),
            ("64:ff9b:1::8.8.8.8", NonGlobal::LocalNat64),
            ("2002:0a00:0001::1", NonGlobal::Private),
            ("2002:c0a8:0101::1", NonGlobal::Private),
            ("2002:7f00:0001::1", NonGlobal::Loopback),
            ("2002:a9fe:0101::1", NonGlobal::LinkLocal),
            ("2002::1", NonGlobal::Unspecified),
            // IETF protocol assignments and other special IPv6 ranges.
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", NonGlobal::Teredo),
            ("2001:10::1", NonGlobal::Orchid),
            ("2001:20::1", NonGlobal::Orchid),
            ("2001:2f:ffff::1", NonGlobal::Orchid),
            ("2001:1::4", NonGlobal::ProtocolAssignment),
            ("2001:5::1", NonGlobal::ProtocolAssignment),
            ("100::ffff:1", NonGlobal::Discard),
            ("ff05::2", NonGlobal::Multicast),
            ("ff0e::1", NonGlobal::Multicast),
            ("fe80::abcd", NonGlobal::LinkLocal),
            ("febf::1", NonGlobal::LinkLocal),
            ("fc00::1", NonGlobal::UniqueLocal),
            ("5f00::1", NonGlobal::Reserved),
            ("::2", NonGlobal::Reserved),
        ];
        for (address, category) in cases {
            let err = policy.check(ip(address)).unwrap_err();
            assert_eq!(err.category, category, "{address}");
            assert!(err.to_string().contains(&ip(address).to_string()), "{err}");
        }
    }

    #[test]
    fn tunnel_addresses_are_global_but_not_targets() {
        // A probe's own 6to4 or Teredo address still counts as global (tags rely on it)...
        for a in ["2002:c000:204::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2"] {
            assert_eq!(classify(ip(a)), None, "{a}");
        }
        // ...but neither is a target when it leads to a relay or to a non-global IPv4 host.
        assert_eq!(
            classify_target(ip("2002:c000:204::1")),
            Some(NonGlobal::Documentation)
        );
        assert_eq!(classify_target(ip("2002:0808:0808::1")), None);
    }

    #[test]
    fn lab_mode_opens_local_ranges_but_never_multicast() {
        let lab = TargetPolicy { lab_mode: true };
        assert_eq!(lab.check(ip("::1")), Ok(()));
        assert_eq!(lab.check(ip("fd00::1")), Ok(()));
        assert_eq!(lab.check(ip("2001:db8::1")), Ok(()));
        assert!(lab.check(ip("ff02::1")).is_err());
        assert!(lab.check(ip("::")).is_err());
        assert!(lab.check(ip("fe80::1")).is_err());
        // Also when they hide behind a translator prefix.
        assert!(lab.check(ip("64:ff9b::224.0.0.1")).is_err());
        assert!(lab.check(ip("::ffff:255.255.255.255")).is_err());
        assert!(lab.check(ip("169.254.0.1")).is_err());
        assert_eq!(lab.check(ip("10.0.0.1")), Ok(()));
        let hint = TargetPolicy::default()
            .check(ip("::1"))
            .unwrap_err()
            .to_string();
        assert!(hint.contains("lab_mode"), "{hint}");
    }
}
