//! NAT64 prefixes and the IPv4 addresses they embed (RFC 6052).
//!
//! A prefix is one of the six lengths RFC 6052 allows. Under a /96 the IPv4 address is the
//! last 32 bits; under the shorter ones it is split around bits 64–71 (the "u" octet, always
//! zero), so `2001:db8::/32` embeds 192.0.2.33 as `2001:db8:c000:221::`. Networks with a
//! network-specific prefix announce it only through DNS64 (RFC 7050 discovery,
//! [`Nat64Prefix::discover`]).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// The prefix lengths RFC 6052 section 2.2 allows, the most common first: discovery tries
/// them in this order.
pub const PREFIX_LENGTHS: [u8; 6] = [96, 64, 56, 48, 40, 32];

/// A NAT64 prefix: its network address (bits after the length zero) and its length. Bits
/// 64–71 of a /96 are not checked: RFC 6052 reserves them, but a network that sets them still
/// translates, and discovery must not lose its prefix over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nat64Prefix {
    network: Ipv6Addr,
    len: u8,
}

/// Why a text or an address is not a NAT64 prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Nat64PrefixError {
    #[error("{0:?} is not an IPv6 address")]
    Address(String),
    #[error("prefix length {0:?} is not one of 32, 40, 48, 56, 64 or 96 (RFC 6052)")]
    Length(String),
    #[error("{network}/{len} has bits set after its length")]
    HostBits { network: Ipv6Addr, len: u8 },
}

/// Bits 64–71 of an address (RFC 6052's "u" octet).
const U_OCTET: u128 = 0xff << 56;

impl Nat64Prefix {
    /// `64:ff9b::/96`, RFC 6052's well-known prefix.
    pub const WELL_KNOWN: Nat64Prefix = Nat64Prefix {
        network: Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0),
        len: 96,
    };

    pub fn new(network: Ipv6Addr, len: u8) -> Result<Self, Nat64PrefixError> {
        if !PREFIX_LENGTHS.contains(&len) {
            return Err(Nat64PrefixError::Length(len.to_string()));
        }
        if network.to_bits() & !mask(len) != 0 {
            return Err(Nat64PrefixError::HostBits { network, len });
        }
        Ok(Self { network, len })
    }

    pub fn network(&self) -> Ipv6Addr {
        self.network
    }

    pub fn length(&self) -> u8 {
        self.len
    }

    /// The address under this prefix that stands for `v4` (RFC 6052 section 2.2; suffix zero).
    pub fn embed(&self, v4: Ipv4Addr) -> Ipv6Addr {
        let v4 = u128::from(v4.to_bits());
        let embedded = match self.len {
            96 => v4,
            // The 32 bits start right after the prefix, skipping bits 64–71.
            len => {
                let before_u = 64 - u32::from(len); // bits of v4 placed before the u octet
                let high = v4 >> (32 - before_u);
                let low = v4 & ((1 << (32 - before_u)) - 1);
                (high << 64) | (low << (56 - (32 - before_u)))
            }
        };
        Ipv6Addr::from_bits(self.network.to_bits() | embedded)
    }

    /// The IPv4 address `address` stands for, if it lies under this prefix (and, under the
    /// prefixes shorter than /96, leaves bits 64–71 zero).
    pub fn extract(&self, address: Ipv6Addr) -> Option<Ipv4Addr> {
        let bits = address.to_bits();
        if bits & mask(self.len) != self.network.to_bits() {
            return None;
        }
        embedded_at(bits, self.len)
    }

    /// Whether `address` lies under this prefix: DNS64 made it from an A record.
    pub fn contains(&self, address: Ipv6Addr) -> bool {
        self.extract(address).is_some()
    }

    /// The prefix a synthesised `address` was made under, found the way RFC 7050 section 3
    /// says: the position, among RFC 6052's, where one of `known` (the well-known IPv4-only
    /// addresses of `ipv4only.arpa`, or a name's A answers) is embedded.
    pub fn discover(address: Ipv6Addr, known: &[Ipv4Addr]) -> Option<Nat64Prefix> {
        // A mapped address is IPv4 in disguise, not a synthesised one.
        if address.to_ipv4_mapped().is_some() {
            return None;
        }
        let bits = address.to_bits();
        PREFIX_LENGTHS.iter().find_map(|&len| {
            let v4 = embedded_at(bits, len)?;
            known.contains(&v4).then(|| Nat64Prefix {
                network: Ipv6Addr::from_bits(bits & mask(len)),
                len,
            })
        })
    }
}

/// The first `len` bits set.
fn mask(len: u8) -> u128 {
    match len {
        0 => 0,
        len => u128::MAX << (128 - u32::from(len)),
    }
}

/// The IPv4 address at the position a /`len` prefix puts it, when the u octet is zero.
fn embedded_at(bits: u128, len: u8) -> Option<Ipv4Addr> {
    if len == 96 {
        return Some(Ipv4Addr::from_bits(bits as u32));
    }
    if bits & U_OCTET != 0 {
        return None;
    }
    let before_u = 64 - u32::from(len);
    let high = (bits >> 64) & ((1 << before_u) - 1);
    let after_u = 32 - before_u;
    let low = (bits >> (56 - after_u)) & ((1 << after_u) - 1);
    Some(Ipv4Addr::from_bits(((high << after_u) | low) as u32))
}

/// `64:ff9b::/96`: the network address and the length.
impl fmt::Display for Nat64Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.len)
    }
}

/// `ADDRESS/LENGTH`, or a bare address for a /96 (the form carried before lengths were).
impl FromStr for Nat64Prefix {
    type Err = Nat64PrefixError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (address, len) = match text.split_once('/') {
            Some((address, len)) => (
                address,
                len.parse::<u8>()
                    .map_err(|_| Nat64PrefixError::Length(len.to_owned()))?,
            ),
            None => (text, 96),
        };
        let network = address
            .parse()
            .map_err(|_| Nat64PrefixError::Address(address.to_owned()))?;
        Self::new(network, len)
    }
}

/// A /96 as its bare address, the form stored and served before other lengths existed (a
/// collector rolled back still reads its records); the others as `ADDRESS/LENGTH`.
impl Serialize for Nat64Prefix {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.len == 96 {
            serializer.collect_str(&self.network)
        } else {
            serializer.collect_str(self)
        }
    }
}

impl<'de> Deserialize<'de> for Nat64Prefix {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(text: &str) -> Nat64Prefix {
        text.parse().unwrap()
    }

    /// RFC 6052 section 2.4's table: 192.0.2.33 under each length of 2001:db8:122:344::.
    const RFC_6052_EXAMPLES: [(&str, &str); 6] = [
        ("2001:db8::/32", "2001:db8:c000:221::"),
        ("2001:db8:100::/40", "2001:db8:1c0:2:21::"),
        ("2001:db8:122::/48", "2001:db8:122:c000:2:2100::"),
        ("2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
        ("2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"),
        ("2001:db8:122:344::/96", "2001:db8:122:344::c000:221"),
    ];

    #[test]
    fn embeds_and_extracts_as_rfc_6052_section_2_4() {
        let v4 = Ipv4Addr::new(192, 0, 2, 33);
        for (p, expected) in RFC_6052_EXAMPLES {
            let p = prefix(p);
            let expected: Ipv6Addr = expected.parse().unwrap();
            assert_eq!(p.embed(v4), expected, "{p}");
            assert_eq!(p.extract(expected), Some(v4), "{p}");
            assert!(p.contains(expected));
            assert_eq!(Nat64Prefix::discover(expected, &[v4]), Some(p), "{p}");
        }
    }

    #[test]
    fn every_length_round_trips_edge_addresses() {
        for (p, _) in RFC_6052_EXAMPLES {
            let p = prefix(p);
            for v4 in [Ipv4Addr::new(0, 0, 0, 0), Ipv4Addr::new(255, 255, 255, 255)] {
                assert_eq!(p.extract(p.embed(v4)), Some(v4), "{p} {v4}");
            }
        }
    }

    #[test]
    fn outside_the_prefix_or_with_the_u_octet_set_is_not_embedded() {
        let p = prefix("2001:db8:122::/48");
        assert_eq!(
            p.extract("2001:db8:123:c000:2:2100::".parse().unwrap()),
            None
        );
        // Bit 64 set: not an RFC 6052 address.
        assert_eq!(
            p.extract("2001:db8:122:c000:8002:2100::".parse().unwrap()),
            None
        );
        assert!(!Nat64Prefix::WELL_KNOWN.contains("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn discovery_finds_the_well_known_address_at_its_position() {
        let wka = [Ipv4Addr::new(192, 0, 0, 170), Ipv4Addr::new(192, 0, 0, 171)];
        let found = |a: &str| Nat64Prefix::discover(a.parse().unwrap(), &wka);
        assert_eq!(found("64:ff9b::c000:aa"), Some(Nat64Prefix::WELL_KNOWN));
        assert_eq!(
            found("2001:db8:64:ff9b::c000:ab"),
            Some(prefix("2001:db8:64:ff9b::/96"))
        );
        assert_eq!(
            found("2001:db8:122:c000:0:aa00::"),
            Some(prefix("2001:db8:122::/48"))
        );
        assert_eq!(found("2001:db8::1"), None);
        assert_eq!(found("::ffff:192.0.0.170"), None);
    }

    #[test]
    fn text_form_and_its_errors() {
        assert_eq!(prefix("64:ff9b::"), Nat64Prefix::WELL_KNOWN);
        assert_eq!(Nat64Prefix::WELL_KNOWN.to_string(), "64:ff9b::/96");
        assert_eq!(prefix("2001:db8::/32").to_string(), "2001:db8::/32");
        let error = |t: &str| t.parse::<Nat64Prefix>().unwrap_err().to_string();
        assert!(
            error("nope").contains("not an IPv6 address"),
            "{}",
            error("nope")
        );
        assert!(error("2001:db8::/33").contains("not one of 32"));
        assert!(error("2001:db8::/x").contains("\"x\""));
        assert!(error("2001:db8::1/64").contains("bits set after its length"));
        let json = serde_json::to_string(&Nat64Prefix::WELL_KNOWN).unwrap();
        assert_eq!(json, "\"64:ff9b::\"");
        let short = prefix("2001:db8::/32");
        let json = serde_json::to_string(&short).unwrap();
        assert_eq!(json, "\"2001:db8::/32\"");
        assert_eq!(serde_json::from_str::<Nat64Prefix>(&json).unwrap(), short);
        assert_eq!(
            serde_json::from_str::<Nat64Prefix>("\"64:ff9b::\"").unwrap(),
            Nat64Prefix::WELL_KNOWN
        );
        assert!(serde_json::from_str::<Nat64Prefix>("\"64:ff9b::/7\"").is_err());
    }
}
