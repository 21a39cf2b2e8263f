//! Traceroute: which routers a flow crosses, one hop limit at a time.

use super::{SpecError, field};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The transport of the probing packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceProtocol {
    Icmp,
    Udp,
    TcpSyn,
}

impl TraceProtocol {
    pub fn name(self) -> &'static str {
        match self {
            Self::Icmp => "icmp",
            Self::Udp => "udp",
            Self::TcpSyn => "tcp",
        }
    }

    pub fn parse(text: &str) -> Result<Self, SpecError> {
        match text {
            "icmp" => Ok(Self::Icmp),
            "udp" => Ok(Self::Udp),
            "tcp" | "tcp-syn" | "tcp_syn" => Ok(Self::TcpSyn),
            other => Err(field(
                "traceroute.protocol",
                format!("{other:?} is not one of icmp, udp, tcp"),
            )),
        }
    }

    /// Destination port used when the spec gives none.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Icmp => 0,
            Self::Udp => 33434,
            Self::TcpSyn => 80,
        }
    }
}

/// Paris-style traceroute: every probe of one trace belongs to the same flow (flow label,
/// ports and transport checksum stay constant), so per-flow load balancing cannot stitch
/// several paths into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracerouteSpec {
    protocol: TraceProtocol,
    first_hop: u8,
    max_hops: u8,
    probes_per_hop: u8,
    max_silent_hops: u8,
    port: u16,
    flow_label: u32,
}

impl TracerouteSpec {
    pub const MAX_HOPS: u32 = 64;
    pub const DEFAULT_MAX_HOPS: u8 = 30;
    pub const MAX_PROBES_PER_HOP: u32 = 5;
    pub const DEFAULT_PROBES_PER_HOP: u8 = 3;
    pub const MAX_SILENT_HOPS: u32 = 32;
    pub const DEFAULT_SILENT_HOPS: u8 = 5;
    pub const MAX_FLOW_LABEL: u32 = 0xF_FFFF;

    /// Zero selects the default for `first_hop` (1), `max_hops` (30), `probes_per_hop` (3),
    /// `max_silent_hops` (5) and `port` (the protocol's). A zero flow label is sent as zero.
    pub fn new(
        protocol: TraceProtocol,
        first_hop: u32,
        max_hops: u32,
        probes_per_hop: u32,
        max_silent_hops: u32,
        port: u32,
        flow_label: u32,
    ) -> Result<Self, SpecError> {
        let max_hops = match max_hops {
            0 => Self::DEFAULT_MAX_HOPS,
            n if n <= Self::MAX_HOPS => n as u8,
            _ => {
                return Err(field(
                    "traceroute.max_hops",
                    format!("must be 0 (default) or 1..={}", Self::MAX_HOPS),
                ));
            }
        };
        let first_hop = match first_hop {
            0 => 1,
            n if n <= u32::from(max_hops) => n as u8,
            _ => {
                return Err(field(
                    "traceroute.first_hop",
                    format!("must be 1..={max_hops} (max_hops)"),
                ));
            }
        };
        let probes_per_hop = match probes_per_hop {
            0 => Self::DEFAULT_PROBES_PER_HOP,
            n if n <= Self::MAX_PROBES_PER_HOP => n as u8,
            _ => {
                return Err(field(
                    "traceroute.probes_per_hop",
                    format!("must be 0 (default) or 1..={}", Self::MAX_PROBES_PER_HOP),
                ));
            }
        };
        let max_silent_hops = match max_silent_hops {
            0 => Self::DEFAULT_SILENT_HOPS,
            n if n <= Self::MAX_SILENT_HOPS => n as u8,
            _ => {
                return Err(field(
                    "traceroute.max_silent_hops",
                    format!("must be 0 (default) or 1..={}", Self::MAX_SILENT_HOPS),
                ));
            }
        };
        let port = match port {
            0 => protocol.default_port(),
            n => u16::try_from(n)
                .map_err(|_| field("traceroute.port", "must be 0 (default) or 1..=65535"))?,
        };
        if flow_label > Self::MAX_FLOW_LABEL {
            return Err(field(
                "traceroute.flow_label",
                format!("must be 0..={:#x} (20 bits)", Self::MAX_FLOW_LABEL),
            ));
        }
        Ok(Self {
            protocol,
            first_hop,
            max_hops,
            probes_per_hop,
            max_silent_hops,
            port,
            flow_label,
        })
    }

    pub fn protocol(&self) -> TraceProtocol {
        self.protocol
    }
    pub fn first_hop(&self) -> u8 {
        self.first_hop
    }
    pub fn max_hops(&self) -> u8 {
        self.max_hops
    }
    pub fn probes_per_hop(&self) -> u8 {
        self.probes_per_hop
    }
    pub fn max_silent_hops(&self) -> u8 {
        self.max_silent_hops
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn flow_label(&self) -> u32 {
        self.flow_label
    }
    /// Packets a full trace may send.
    pub fn packet_budget(&self) -> u32 {
        u32::from(self.max_hops - self.first_hop + 1) * u32::from(self.probes_per_hop)
    }
}

/// What answered one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum HopAnswer {
    /// An ICMPv6 (or ICMP) message: time exceeded from a router, an error, or an echo reply
    /// from the destination. `mtu` is set for Packet Too Big.
    Icmp {
        icmp_type: u8,
        icmp_code: u8,
        mtu: Option<u32>,
    },
    /// A TCP segment from the destination (SYN-ACK or RST), with its flags byte.
    Tcp { flags: u8 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HopReply {
    pub from: IpAddr,
    pub rtt_ns: u64,
    #[serde(flatten)]
    pub answer: HopAnswer,
}

/// One hop limit: one entry per probe sent, `None` where no answer came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracerouteHop {
    pub hop_limit: u8,
    pub replies: Vec<Option<HopReply>>,
}

impl TracerouteHop {
    /// The addresses that answered at this hop, first answer first, without repeats.
    pub fn responders(&self) -> Vec<IpAddr> {
        let mut seen = Vec::new();
        for reply in self.replies.iter().flatten() {
            if !seen.contains(&reply.from) {
                seen.push(reply.from);
            }
        }
        seen
    }
}

/// Why the trace stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceStop {
    /// The destination answered.
    Reached,
    /// A router or the destination answered with a destination-unreachable error.
    Unreachable,
    /// `max_silent_hops` consecutive hops gave no answer.
    SilentHops,
    /// `max_hops` was probed without reaching the destination.
    MaxHops,
    /// The measurement's timeout ran out first.
    Timeout,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracerouteResult {
    pub protocol: TraceProtocol,
    pub flow_label: u32,
    pub hops: Vec<TracerouteHop>,
    pub reached_destination: bool,
    pub stop: TraceStop,
    pub packets_sent: u32,
    /// The first `reused_hops` hops were not probed by this trace: they are the path to an
    /// interface this trace reached at the same hop limit, as an earlier trace of the same
    /// run found it (a Doubletree stop set, `measure traceroute T1 T2 …`). One reply slot
    /// each, with that trace's answer; not counted in `packets_sent`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reused_hops: u8,
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

impl TracerouteResult {
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.hops.len() > 255 {
            return Err(field("traceroute.hops", "more than 255 hops"));
        }
        if self.flow_label > TracerouteSpec::MAX_FLOW_LABEL {
            return Err(field("traceroute.flow_label", "more than 20 bits"));
        }
        if usize::from(self.reused_hops) > self.hops.len() {
            return Err(field(
                "traceroute.reused_hops",
                "more than the hops reported",
            ));
        }
        let mut previous = 0u8;
        let mut answers = 0usize;
        for (i, hop) in self.hops.iter().enumerate() {
            if hop.hop_limit <= previous {
                return Err(field(
                    "traceroute.hops.hop_limit",
                    "must be strictly increasing and > 0",
                ));
            }
            previous = hop.hop_limit;
            if hop.replies.len() > 16 {
                return Err(field("traceroute.hops.replies", "more than 16 per hop"));
            }
            if i < usize::from(self.reused_hops) {
                // Copied from an earlier trace: one slot, not a probe of this one.
                if hop.replies.len() != 1 {
                    return Err(field(
                        "traceroute.hops.replies",
                        "a reused hop has one slot",
                    ));
                }
            } else {
                answers += hop.replies.len();
            }
            // On the wire, TCP flags 0 means "an ICMP answer".
            if hop
                .replies
                .iter()
                .flatten()
                .any(|r| r.answer == HopAnswer::Tcp { flags: 0 })
            {
                return Err(field("traceroute.hops.replies.tcp_flags", "must not be 0"));
            }
        }
        if (self.packets_sent as usize) < answers {
            return Err(field(
                "traceroute.packets_sent",
                format!("{} but {answers} probe slots reported", self.packets_sent),
            ));
        }
        if self.reached_destination != (self.stop == TraceStop::Reached) {
            return Err(field(
                "traceroute.reached_destination",
                "must be true exactly when the stop reason is `reached`",
            ));
        }
        Ok(())
    }

    /// The first responder of each hop (`None` for silent hops), as traceroute prints it.
    pub fn path(&self) -> Vec<Option<IpAddr>> {
        self.hops
            .iter()
            .map(|h| h.responders().first().copied())
            .collect()
    }
}
