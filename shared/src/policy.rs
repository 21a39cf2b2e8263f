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
        let Some(category) = classify(address) else {
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
    } else if s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0 {
        NonGlobal::Discard
    } else if s[0] & 0xe000 != 0x2000 {
        // Only 2000::/3 is allocated as global unicast.
        NonGlobal::Reserved
    } else {
        return None;
    };
    Some(category)
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
    } else if o[0] >= 240 || (o[0] == 192 && o[1] == 0 && o[2] == 0) {
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
        ];
        for (address, category) in cases {
            let err = policy.check(ip(address)).unwrap_err();
            assert_eq!(err.category, category, "{address}");
            assert!(err.to_string().contains(address), "{err}");
        }
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
        let hint = TargetPolicy::default()
            .check(ip("::1"))
            .unwrap_err()
            .to_string();
        assert!(hint.contains("lab_mode"), "{hint}");
    }
}
