//! A fault attribution (issue #23): what failed, whose network the fault is in, and the
//! hops that say so. Made by the collector (`blame`) from a failing result's `FaultPath`,
//! stored with the result, and carried by the query APIs (HTTP as JSON, gRPC through
//! `sixmap-proto`); here so both sides share one validated type.

use crate::prefixes::CountryCode;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// What failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// IPv6 failed while IPv4 worked (dual-stack).
    V6Broken = 0,
    /// Large packets vanish without Packet Too Big.
    PmtuBlackHole = 1,
    /// Packets with an extension header vanish.
    ExtHeaderDrop = 2,
}

impl Failure {
    pub const ALL: [Self; 3] = [Self::V6Broken, Self::PmtuBlackHole, Self::ExtHeaderDrop];

    pub fn from_u8(n: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|f| *f as u8 == n)
    }
}

/// Whose network the fault is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// The probe's own network: its ISP (last answering hop in the probe's AS) or its home
    /// network / CPE (no public hop answered).
    Access = 0,
    /// A network between the probe's and the destination's.
    Transit = 1,
    /// The destination's network, or the destination itself.
    Destination = 2,
    /// The prefix data cannot tell (an AS it does not know, an end without AS).
    Unknown = 3,
}

impl Placement {
    pub const ALL: [Self; 4] = [
        Self::Access,
        Self::Transit,
        Self::Destination,
        Self::Unknown,
    ];

    pub fn from_u8(n: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|p| *p as u8 == n)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Transit => "transit",
            Self::Destination => "destination",
            Self::Unknown => "unknown",
        }
    }
}

/// One hop of an attribution: where, who answered (if known) and that address's origin AS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlameHop {
    pub hop_limit: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
}

/// The attribution stored with a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blame {
    pub failure: Failure,
    pub placement: Placement,
    /// The network held responsible: the probe's AS for `access`, the destination's for
    /// `destination`, the last answering hop's for `transit` (and `unknown`, when it has one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responsible_asn: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_answering: Option<BlameHop>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_silent: Option<BlameHop>,
    /// The last answering and the first silent hop are in different (known) ASes: the fault
    /// is at their interconnection.
    #[serde(default)]
    pub boundary: bool,
    /// The ends as attributed: the probe's origin AS and country (the rollups group by
    /// them) and the destination's AS. A dual-stack result names its addresses in its legs
    /// only, so they are looked up there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_asn: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_country: Option<CountryCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_asn: Option<u32>,
}
