//! Path properties: the path MTU (and black holes), and extension-header survival.

use super::traceroute::TraceProtocol;
use super::{FaultPath, IcmpError, SpecError, field};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PmtuSpec {
    max_size: u16,
    protocol: TraceProtocol,
}

impl PmtuSpec {
    pub const MIN_SIZE: u16 = 1280;
    pub const MAX_SIZE: u32 = 9000;
    pub const DEFAULT_SIZE: u16 = 1500;

    /// `max_size` 0 selects 1500. Probes are ICMPv6 echo requests or UDP datagrams.
    pub fn new(max_size: u32, protocol: TraceProtocol) -> Result<Self, SpecError> {
        let max_size = match max_size {
            0 => Self::DEFAULT_SIZE,
            n if (u32::from(Self::MIN_SIZE)..=Self::MAX_SIZE).contains(&n) => n as u16,
            _ => {
                return Err(field(
                    "pmtu.max_size",
                    format!(
                        "must be 0 (default {}) or {}..={}",
                        Self::DEFAULT_SIZE,
                        Self::MIN_SIZE,
                        Self::MAX_SIZE
                    ),
                ));
            }
        };
        if protocol == TraceProtocol::TcpSyn {
            return Err(field("pmtu.protocol", "must be icmp or udp"));
        }
        Ok(Self { max_size, protocol })
    }
    /// Largest whole IPv6 packet tried, in bytes.
    pub fn max_size(&self) -> u16 {
        self.max_size
    }
    pub fn protocol(&self) -> TraceProtocol {
        self.protocol
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PmtuResult {
    /// Largest packet size that reached the destination (whole IPv6 packet, bytes).
    pub path_mtu: u32,
    /// Packets larger than `path_mtu` vanished with no Packet Too Big.
    pub black_hole: bool,
    /// First hop limit at which large packets stop being answered while small ones are.
    pub black_hole_hop: Option<u8>,
    /// The last router that still answered large packets: the one that drops them silently.
    pub black_hole_from: Option<IpAddr>,
    pub too_big: Vec<IcmpError>,
    pub packets_sent: u32,
    /// With a black hole: the plain path towards the destination, for fault attribution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault_path: Option<FaultPath>,
}

impl PmtuResult {
    pub fn validate(&self) -> Result<(), SpecError> {
        if !(u32::from(PmtuSpec::MIN_SIZE)..=PmtuSpec::MAX_SIZE).contains(&self.path_mtu)
            && self.path_mtu != 0
        {
            return Err(field("pmtu.path_mtu", "must be 0 (unknown) or 1280..=9000"));
        }
        if !self.black_hole && (self.black_hole_hop.is_some() || self.black_hole_from.is_some()) {
            return Err(field(
                "pmtu.black_hole_hop",
                "set only when a black hole was found",
            ));
        }
        if self.too_big.len() > 64 {
            return Err(field("pmtu.too_big", "more than 64 messages"));
        }
        if let Some(path) = &self.fault_path {
            if !self.black_hole {
                return Err(field("pmtu.fault_path", "set, but no black hole was found"));
            }
            path.validate("pmtu.fault_path")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtHeaderType {
    HopByHop,
    DestinationOptions,
    Fragment,
}

impl ExtHeaderType {
    pub const ALL: [Self; 3] = [Self::HopByHop, Self::DestinationOptions, Self::Fragment];

    pub fn name(self) -> &'static str {
        match self {
            Self::HopByHop => "hbh",
            Self::DestinationOptions => "dst",
            Self::Fragment => "frag",
        }
    }

    pub fn parse(text: &str) -> Result<Self, SpecError> {
        match text {
            "hbh" | "hop-by-hop" | "hop_by_hop" => Ok(Self::HopByHop),
            "dst" | "dest" | "destination-options" | "destination_options" => {
                Ok(Self::DestinationOptions)
            }
            "frag" | "fragment" => Ok(Self::Fragment),
            other => Err(field(
                "ext_headers.headers",
                format!("{other:?} is not one of hbh, dst, frag"),
            )),
        }
    }

    /// The IPv6 Next Header value.
    pub fn protocol_number(self) -> u8 {
        match self {
            Self::HopByHop => 0,
            Self::DestinationOptions => 60,
            Self::Fragment => 44,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtHeaderSpec {
    headers: Vec<ExtHeaderType>,
    option_bytes: u16,
}

impl ExtHeaderSpec {
    pub const DEFAULT_OPTION_BYTES: u16 = 8;
    pub const MAX_OPTION_BYTES: u32 = 256;

    /// Empty `headers` selects all three, each tested on its own; `option_bytes` 0 selects 8
    /// (the whole Hop-by-Hop / Destination Options header, padding included).
    pub fn new(headers: Vec<ExtHeaderType>, option_bytes: u32) -> Result<Self, SpecError> {
        let mut headers = if headers.is_empty() {
            ExtHeaderType::ALL.to_vec()
        } else {
            headers
        };
        headers.sort();
        headers.dedup();
        let option_bytes = match option_bytes {
            0 => Self::DEFAULT_OPTION_BYTES,
            n if n % 8 == 0 && n <= Self::MAX_OPTION_BYTES => n as u16,
            _ => {
                return Err(field(
                    "ext_headers.option_bytes",
                    format!(
                        "must be 0 (default 8) or a multiple of 8 up to {}",
                        Self::MAX_OPTION_BYTES
                    ),
                ));
            }
        };
        Ok(Self {
            headers,
            option_bytes,
        })
    }
    pub fn headers(&self) -> &[ExtHeaderType] {
        &self.headers
    }
    pub fn option_bytes(&self) -> u16 {
        self.option_bytes
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtHeaderOutcome {
    pub header: ExtHeaderType,
    /// The destination answered a probe carrying the header.
    pub survived: bool,
    /// First hop limit at which probes with the header went unanswered while plain probes
    /// were answered.
    pub dropped_at_hop: Option<u8>,
    /// The last router that answered probes with the header: the drop is just after it.
    pub last_responder: Option<IpAddr>,
    /// An ICMPv6 error naming the header (e.g. Parameter Problem), if one came back.
    pub icmp_error: Option<IcmpError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtHeaderResult {
    pub outcomes: Vec<ExtHeaderOutcome>,
    pub packets_sent: u32,
    /// With a header dropped on the way: the plain path towards the destination, for fault
    /// attribution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault_path: Option<FaultPath>,
}

impl ExtHeaderResult {
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.outcomes.len() > ExtHeaderType::ALL.len() {
            return Err(field(
                "ext_headers.outcomes",
                "more than one per header type",
            ));
        }
        for outcome in &self.outcomes {
            if outcome.survived && outcome.dropped_at_hop.is_some() {
                return Err(field(
                    "ext_headers.outcomes.dropped_at_hop",
                    "a header that survived was not dropped",
                ));
            }
        }
        if let Some(path) = &self.fault_path {
            if self.outcomes.iter().all(|o| o.survived) {
                return Err(field(
                    "ext_headers.fault_path",
                    "set, but no header was dropped",
                ));
            }
            path.validate("ext_headers.fault_path")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measurement::PathHop;

    fn path() -> FaultPath {
        FaultPath {
            hops: vec![PathHop {
                hop_limit: 1,
                address: "2001:db8:1::1".parse().unwrap(),
            }],
            probed_up_to: 3,
            reached_destination: true,
            packets_sent: 4,
        }
    }

    #[test]
    fn a_pmtu_fault_path_needs_a_black_hole() {
        let mut result = PmtuResult {
            path_mtu: 1280,
            black_hole: true,
            black_hole_hop: Some(2),
            black_hole_from: None,
            too_big: Vec::new(),
            packets_sent: 20,
            fault_path: Some(path()),
        };
        assert_eq!(result.validate(), Ok(()));
        result.black_hole = false;
        result.black_hole_hop = None;
        let err = result.validate().unwrap_err().to_string();
        assert!(err.contains("pmtu.fault_path"), "{err}");
        assert!(err.contains("no black hole"), "{err}");
        result.fault_path = None;
        assert_eq!(result.validate(), Ok(()));
    }

    #[test]
    fn an_ext_header_fault_path_needs_a_dropped_header() {
        let outcome = |survived: bool| ExtHeaderOutcome {
            header: ExtHeaderType::HopByHop,
            survived,
            dropped_at_hop: (!survived).then_some(2),
            last_responder: None,
            icmp_error: None,
        };
        let mut result = ExtHeaderResult {
            outcomes: vec![outcome(false)],
            packets_sent: 20,
            fault_path: Some(path()),
        };
        assert_eq!(result.validate(), Ok(()));
        result.outcomes = vec![outcome(true)];
        let err = result.validate().unwrap_err().to_string();
        assert!(err.contains("ext_headers.fault_path"), "{err}");
        assert!(err.contains("no header was dropped"), "{err}");
        result.outcomes.clear();
        assert!(result.validate().is_err());
        let mut bad = path();
        bad.hops[0].address = "ff02::2".parse().unwrap();
        result.outcomes = vec![outcome(false)];
        result.fault_path = Some(bad);
        assert!(result.validate().is_err());
    }
}
