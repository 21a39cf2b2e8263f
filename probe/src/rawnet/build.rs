//! Whole IPv6 probe packets, byte for byte: header (flow label, hop limit, addresses),
//! optional extension header, and an ICMPv6 echo request, UDP datagram or TCP SYN with a
//! correct checksum.
//!
//! Paris-style flows: every probe of a [`Flow`] has the same flow label, ports (or echo
//! identifier) and transport checksum, so routers that balance per flow send them all the
//! same way. A probe is told apart by its 16-bit id, always carried beside its bitwise
//! complement so the checksum does not move ([`super::checksum::companion`]):
//! - ICMPv6 echo: the sequence number is the id; the first payload word its companion.
//! - UDP: the first two payload words are the id and its companion.
//! - TCP SYN: the sequence number is `id << 16 | !id`; no payload and no other field
//!   changes. SYN-ACK and RST acknowledge `sequence + 1`, which gives the id back.
//!
//! ICMPv6 and UDP payloads then carry the flow's random cookie, so replies and quotes of
//! other programs' packets (or of an earlier measurement) are not taken for ours.

use super::checksum;
use std::net::Ipv6Addr;

pub const IPV6_HEADER_LEN: usize = 40;
pub const NEXT_HEADER_HOP_BY_HOP: u8 = 0;
pub const NEXT_HEADER_TCP: u8 = 6;
pub const NEXT_HEADER_UDP: u8 = 17;
pub const NEXT_HEADER_ROUTING: u8 = 43;
pub const NEXT_HEADER_FRAGMENT: u8 = 44;
pub const NEXT_HEADER_ESP: u8 = 50;
pub const NEXT_HEADER_AH: u8 = 51;
pub const NEXT_HEADER_ICMPV6: u8 = 58;
pub const NEXT_HEADER_NONE: u8 = 59;
pub const NEXT_HEADER_DESTINATION_OPTIONS: u8 = 60;

pub const ICMPV6_ECHO_REQUEST: u8 = 128;
pub const ICMPV6_ECHO_REPLY: u8 = 129;
pub const ICMP_HEADER_LEN: usize = 8;
pub const UDP_HEADER_LEN: usize = 8;
/// TCP header with one option (MSS): a SYN without options looks odd to some middleboxes.
pub const TCP_SYN_LEN: usize = 24;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// Random bytes per flow, carried by ICMPv6 and UDP probes after the id words.
pub const COOKIE_LEN: usize = 6;
/// Largest whole packet we build (the biggest path MTU a spec may ask about).
pub const MAX_PACKET: usize = 9000;
/// Largest Hop-by-Hop / Destination Options header we build (the length byte's limit).
pub const MAX_OPTIONS_LEN: usize = 2048;
const MAX_FLOW_LABEL: u32 = 0xf_ffff;
/// Experimental option type (RFC 4727), top bits 00: "skip if unknown", not changing en route.
const OPTION_EXPERIMENTAL: u8 = 0x1e;
const OPTION_PADN: u8 = 1;

/// The transport of a flow and what stays constant in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Icmp {
        identifier: u16,
    },
    Udp {
        source_port: u16,
        destination_port: u16,
    },
    TcpSyn {
        source_port: u16,
        destination_port: u16,
    },
}

impl Transport {
    pub fn next_header(self) -> u8 {
        match self {
            Self::Icmp { .. } => NEXT_HEADER_ICMPV6,
            Self::Udp { .. } => NEXT_HEADER_UDP,
            Self::TcpSyn { .. } => NEXT_HEADER_TCP,
        }
    }

    /// Bytes of the transport header and the payload our matching needs.
    pub fn min_len(self) -> usize {
        match self {
            Self::Icmp { .. } => ICMP_HEADER_LEN + 2 + COOKIE_LEN,
            Self::Udp { .. } => UDP_HEADER_LEN + 4 + COOKIE_LEN,
            Self::TcpSyn { .. } => TCP_SYN_LEN,
        }
    }
}

/// An extension header a probe may carry (each tested on its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtHeader {
    /// Hop-by-Hop Options of `len` bytes (a multiple of 8), padding only.
    HopByHop { len: u16 },
    /// Destination Options of `len` bytes (a multiple of 8), padding only.
    DestinationOptions { len: u16 },
    /// An atomic fragment (offset 0, no more fragments: RFC 6946).
    Fragment { identification: u32 },
}

impl ExtHeader {
    pub fn next_header(self) -> u8 {
        match self {
            Self::HopByHop { .. } => NEXT_HEADER_HOP_BY_HOP,
            Self::DestinationOptions { .. } => NEXT_HEADER_DESTINATION_OPTIONS,
            Self::Fragment { .. } => NEXT_HEADER_FRAGMENT,
        }
    }

    pub fn wire_len(self) -> usize {
        match self {
            Self::HopByHop { len } | Self::DestinationOptions { len } => usize::from(len),
            Self::Fragment { .. } => 8,
        }
    }

    fn write(self, next: u8, out: &mut Vec<u8>) -> Result<(), BuildError> {
        match self {
            Self::HopByHop { len } | Self::DestinationOptions { len } => {
                let len = usize::from(len);
                if len < 8 || len % 8 != 0 || len > MAX_OPTIONS_LEN {
                    return Err(BuildError::OptionsLength(len));
                }
                let units =
                    u8::try_from(len / 8 - 1).map_err(|_| BuildError::OptionsLength(len))?;
                out.extend_from_slice(&[next, units]);
                write_padding_options(len - 2, out);
            }
            Self::Fragment { identification } => {
                out.extend_from_slice(&[next, 0, 0, 0]);
                out.extend_from_slice(&identification.to_be_bytes());
            }
        }
        Ok(())
    }
}

/// Fills `room` bytes of an options header with options every node skips. Linux drops
/// packets whose padding runs longer than 7 bytes (`ip6_parse_tlv`: padding exists only to
/// align), so beyond that one experimental option marked "skip if unknown" takes the room,
/// as other measurement tools do.
fn write_padding_options(mut room: usize, out: &mut Vec<u8>) {
    let first = if room <= 7 {
        OPTION_PADN
    } else {
        OPTION_EXPERIMENTAL
    };
    let mut kind = first;
    while room >= 2 {
        let data = (room - 2).min(255);
        out.push(kind);
        out.push(data as u8);
        out.resize(out.len() + data, 0);
        room -= 2 + data;
        kind = OPTION_EXPERIMENTAL;
    }
    if room == 1 {
        out.push(0); // Pad1
    }
}

/// What every probe of one measurement shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub source: Ipv6Addr,
    pub destination: Ipv6Addr,
    /// 20 bits.
    pub flow_label: u32,
    pub transport: Transport,
    pub cookie: [u8; COOKIE_LEN],
}

/// One probe of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeParams {
    pub id: u16,
    pub hop_limit: u8,
    pub ext: Option<ExtHeader>,
    /// Whole packet size in bytes; smaller than the minimum means the minimum. TCP SYNs have
    /// no payload, so their size is always the minimum.
    pub size: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("flow label {0:#x} does not fit 20 bits")]
    FlowLabel(u32),
    #[error("options header of {0} bytes: must be a multiple of 8 in 8..=2048")]
    OptionsLength(usize),
    #[error("packet of {0} bytes is larger than {MAX_PACKET}")]
    TooLarge(usize),
}

impl Flow {
    /// The smallest whole packet of this flow carrying `ext`.
    pub fn min_size(&self, ext: Option<ExtHeader>) -> usize {
        IPV6_HEADER_LEN + ext.map_or(0, ExtHeader::wire_len) + self.transport.min_len()
    }

    pub fn build(&self, probe: &ProbeParams) -> Result<Vec<u8>, BuildError> {
        if self.flow_label > MAX_FLOW_LABEL {
            return Err(BuildError::FlowLabel(self.flow_label));
        }
        let size = match self.transport {
            Transport::TcpSyn { .. } => self.min_size(probe.ext),
            _ => probe.size.max(self.min_size(probe.ext)),
        };
        if size > MAX_PACKET {
            return Err(BuildError::TooLarge(size));
        }
        let mut packet = Vec::with_capacity(size);
        let payload_len =
            u16::try_from(size - IPV6_HEADER_LEN).map_err(|_| BuildError::TooLarge(size))?;
        let first = probe
            .ext
            .map_or(self.transport.next_header(), ExtHeader::next_header);
        let label = self.flow_label;
        // Version 6, traffic class 0, then the flow label's 20 bits.
        packet.extend_from_slice(&[
            0x60,
            ((label >> 16) & 0x0f) as u8,
            ((label >> 8) & 0xff) as u8,
            (label & 0xff) as u8,
        ]);
        packet.extend_from_slice(&payload_len.to_be_bytes());
        packet.push(first);
        packet.push(probe.hop_limit);
        packet.extend_from_slice(&self.source.octets());
        packet.extend_from_slice(&self.destination.octets());
        if let Some(ext) = probe.ext {
            ext.write(self.transport.next_header(), &mut packet)?;
        }
        let transport_start = packet.len();
        let transport_len = size - transport_start;
        self.write_transport(probe.id, transport_len, &mut packet);
        let checksum = checksum::transport(
            self.source,
            self.destination,
            self.transport.next_header(),
            packet.get(transport_start..).unwrap_or_default(),
        );
        let at = transport_start
            + match self.transport {
                Transport::Icmp { .. } => 2,
                Transport::Udp { .. } => 6,
                Transport::TcpSyn { .. } => 16,
            };
        // UDP sends a computed zero as all ones (zero means "no checksum", not allowed in v6).
        let checksum = match (self.transport, checksum) {
            (Transport::Udp { .. }, 0) => 0xffff,
            (_, value) => value,
        };
        if let Some(field) = packet.get_mut(at..at + 2) {
            field.copy_from_slice(&checksum.to_be_bytes());
        }
        Ok(packet)
    }

    /// Appends the transport header and payload, `len` bytes in all, checksum zero.
    fn write_transport(&self, id: u16, len: usize, out: &mut Vec<u8>) {
        let start = out.len();
        match self.transport {
            Transport::Icmp { identifier } => {
                out.extend_from_slice(&[ICMPV6_ECHO_REQUEST, 0, 0, 0]);
                out.extend_from_slice(&identifier.to_be_bytes());
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&checksum::companion(id).to_be_bytes());
                out.extend_from_slice(&self.cookie);
            }
            Transport::Udp {
                source_port,
                destination_port,
            } => {
                out.extend_from_slice(&source_port.to_be_bytes());
                out.extend_from_slice(&destination_port.to_be_bytes());
                out.extend_from_slice(&(len as u16).to_be_bytes());
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&checksum::companion(id).to_be_bytes());
                out.extend_from_slice(&self.cookie);
            }
            Transport::TcpSyn {
                source_port,
                destination_port,
            } => {
                out.extend_from_slice(&source_port.to_be_bytes());
                out.extend_from_slice(&destination_port.to_be_bytes());
                out.extend_from_slice(&tcp_sequence(id).to_be_bytes());
                out.extend_from_slice(&0u32.to_be_bytes()); // acknowledgment
                out.push(((TCP_SYN_LEN / 4) as u8) << 4);
                out.push(TCP_SYN);
                out.extend_from_slice(&64240u16.to_be_bytes()); // window
                out.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
                out.extend_from_slice(&[2, 4, 0x05, 0xb4]); // MSS 1460
            }
        }
        out.resize(start + len, 0);
    }
}

/// The TCP sequence number of probe `id`: the id and its companion, so the checksum stays.
pub fn tcp_sequence(id: u16) -> u32 {
    u32::from(id) << 16 | u32::from(checksum::companion(id))
}

/// The probe id a TCP sequence number stands for, if it is one of ours.
pub fn id_of_tcp_sequence(sequence: u32) -> Option<u16> {
    let id = (sequence >> 16) as u16;
    (checksum::companion(id) == sequence as u16).then_some(id)
}
