//! What a probe reports about its own connectivity (the self-test), the tags the collector
//! derives from it, and the record of results a probe lost before delivery.

use crate::ids::ResultKey;
use crate::time::UnixMicros;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;

/// Upper bound on IPv4 addresses a self-test may list.
pub const MAX_SELF_TEST_V4_ADDRESSES: usize = 64;
/// Upper bound on a loss record's free text.
pub const MAX_LOSS_DETAIL_LEN: usize = 512;
/// Upper bound on host names carried in a self-test.
pub const MAX_NAME_LEN: usize = 253;

/// Kind of the interface that carries the default IPv6 route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterfaceKind {
    Unknown,
    /// Ethernet or Wi-Fi.
    Ethernet,
    /// 6in4 / 6to4.
    Sit,
    /// GRE, ip6ip6, IPIP, WireGuard or a TUN device.
    Tunnel,
    Ppp,
    Loopback,
    Other,
}

/// Facts the probe measured about itself. The probe reports facts; the collector decides tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfTest {
    pub tested_at: UnixMicros,
    pub default_route_v6: bool,
    pub default_route_v4: bool,
    pub v4_addresses: Vec<Ipv4Addr>,
    /// Interface carrying the default IPv6 route, if any.
    pub v6_route_interface: Option<String>,
    pub v6_route_interface_kind: InterfaceKind,
    /// MTU of that interface, when known.
    pub v6_route_mtu: Option<u32>,
    /// Name looked up for AAAA records.
    pub aaaa_name: String,
    /// `None` when the lookup could not run (no resolver configured, timeout).
    pub aaaa_resolved: Option<bool>,
    /// NAT64 prefix learned from ipv4only.arpa (RFC 7050).
    pub nat64_prefix: Option<crate::nat64::Nat64Prefix>,
    /// The customer side of 464XLAT is present.
    pub clat: bool,
    /// The host has a global unicast IPv6 address (2000::/3).
    #[serde(default)]
    pub global_v6_address: bool,
    /// A TCP connection to the collector over IPv6 worked; `None` when the collector's host
    /// has no IPv6 address to try.
    #[serde(default)]
    pub collector_v6: Option<bool>,
}

/// A tag the collector computed for a probe, and since when it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeTag {
    pub name: TagName,
    pub since: UnixMicros,
}

/// A tag's name: lowercase ASCII letters, digits and '-', 1..=32 bytes. Kept as text on the
/// probe side so that a collector may add tags without a probe upgrade.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TagName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tag name {0:?} is not 1..=32 of a-z, 0-9 and '-'")]
pub struct TagNameError(pub String);

impl TagName {
    pub fn new(text: &str) -> Result<Self, TagNameError> {
        let valid = (1..=32).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(TagNameError(text.chars().take(40).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TagName {
    type Error = TagNameError;
    fn try_from(text: String) -> Result<Self, TagNameError> {
        Self::new(&text)
    }
}

impl From<TagName> for String {
    fn from(name: TagName) -> String {
        name.0
    }
}

impl fmt::Display for TagName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why results left an outbox undelivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossReason {
    /// The outbox reached its size bound; the oldest results went.
    OutboxFull,
    /// The outbox could not be opened and was moved aside.
    OutboxCorrupt,
    /// One stored entry could not be read back.
    UnreadableEntry,
    /// The outbox was gone or emptied at start while the probe's ledger says it held
    /// undelivered results.
    OutboxMissing,
    /// Made by the collector: boot epochs jumped between two hellos with nothing to say what
    /// the skipped epochs produced.
    EpochGap,
}

/// Results a probe dropped before delivery. Stored by the collector like results, so a gap in
/// a probe's series is explained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxLoss {
    /// Identity of the record; its sequence space is separate from the results'.
    pub key: ResultKey,
    pub reason: LossReason,
    /// Results dropped; exact unless `count_unknown`.
    pub count: u64,
    /// The count is not known: `count` is then 0 or a lower bound, and `first`/`last`, when
    /// set, bound the keys that may be lost.
    #[serde(default)]
    pub count_unknown: bool,
    pub bytes: u64,
    /// First and last dropped result, in production order, when known.
    pub first: Option<ResultKey>,
    pub last: Option<ResultKey>,
    /// `started_at` of the oldest and newest dropped result, when known.
    pub oldest_started_at: Option<UnixMicros>,
    pub newest_started_at: Option<UnixMicros>,
    pub recorded_at: UnixMicros,
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_names_are_checked() {
        assert_eq!(
            TagName::new("v6-stable-30d").unwrap().as_str(),
            "v6-stable-30d"
        );
        assert!(TagName::new("").is_err());
        assert!(TagName::new("V6").is_err());
        assert!(TagName::new("a b").is_err());
        assert!(TagName::new(&"x".repeat(33)).is_err());
    }
}
