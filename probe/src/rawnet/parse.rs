//! Parsing what comes back: ICMPv6 messages as a raw ICMPv6 socket hands them over (from the
//! ICMPv6 header on), the invoking packet an ICMPv6 error quotes (whose extension-header chain
//! is walked to find the transport header), and TCP segments from a raw TCP socket.
//!
//! Input is hostile until proven otherwise: every read is bounds-checked, every length
//! field is checked against the bytes actually there, and the header walk always advances
//! and stops after [`MAX_EXTENSION_HEADERS`], so any byte string gives a value or an error,
//! never a panic or a loop.

use super::build::{
    ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST, IPV6_HEADER_LEN, NEXT_HEADER_AH,
    NEXT_HEADER_DESTINATION_OPTIONS, NEXT_HEADER_ESP, NEXT_HEADER_FRAGMENT, NEXT_HEADER_HOP_BY_HOP,
    NEXT_HEADER_NONE, NEXT_HEADER_ROUTING,
};
use std::net::Ipv6Addr;

pub const DESTINATION_UNREACHABLE: u8 = 1;
pub const PACKET_TOO_BIG: u8 = 2;
pub const TIME_EXCEEDED: u8 = 3;
pub const PARAMETER_PROBLEM: u8 = 4;
/// Destination Unreachable code 4: what a UDP probe's destination answers.
pub const PORT_UNREACHABLE: u8 = 4;
/// More extension headers than this in one quote is not a packet we sent.
pub const MAX_EXTENSION_HEADERS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("truncated: no room for {0}")]
    Truncated(&'static str),
    #[error("malformed: {0}")]
    Malformed(&'static str),
    #[error("not parsed: {0}")]
    Unsupported(&'static str),
}

use ParseError::{Malformed, Truncated, Unsupported};

fn u16_at(bytes: &[u8], at: usize, what: &'static str) -> Result<u16, ParseError> {
    let end = at.checked_add(2).ok_or(Truncated(what))?;
    let b = bytes.get(at..end).ok_or(Truncated(what))?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

fn u32_at(bytes: &[u8], at: usize, what: &'static str) -> Result<u32, ParseError> {
    let end = at.checked_add(4).ok_or(Truncated(what))?;
    let b = bytes.get(at..end).ok_or(Truncated(what))?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn byte_at(bytes: &[u8], at: usize, what: &'static str) -> Result<u8, ParseError> {
    bytes.get(at).copied().ok_or(Truncated(what))
}

fn address_at(bytes: &[u8], at: usize, what: &'static str) -> Result<Ipv6Addr, ParseError> {
    let end = at.checked_add(16).ok_or(Truncated(what))?;
    let octets: [u8; 16] = bytes
        .get(at..end)
        .and_then(|b| b.try_into().ok())
        .ok_or(Truncated(what))?;
    Ok(Ipv6Addr::from(octets))
}

/// One ICMPv6 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Icmpv6<'a> {
    EchoReply {
        identifier: u16,
        sequence: u16,
        payload: &'a [u8],
    },
    /// Destination Unreachable, Packet Too Big, Time Exceeded or Parameter Problem.
    Error {
        icmp_type: u8,
        icmp_code: u8,
        /// The MTU for Packet Too Big, the pointer for Parameter Problem, else unused.
        info: u32,
        quoted: Quoted<'a>,
    },
    /// Any other type (neighbour discovery, echo requests...): not for us.
    Other { icmp_type: u8 },
}

pub fn icmpv6(message: &[u8]) -> Result<Icmpv6<'_>, ParseError> {
    let icmp_type = byte_at(message, 0, "ICMPv6 type")?;
    let icmp_code = byte_at(message, 1, "ICMPv6 code")?;
    match icmp_type {
        ICMPV6_ECHO_REPLY => Ok(Icmpv6::EchoReply {
            identifier: u16_at(message, 4, "echo identifier")?,
            sequence: u16_at(message, 6, "echo sequence")?,
            payload: message.get(8..).unwrap_or_default(),
        }),
        DESTINATION_UNREACHABLE | PACKET_TOO_BIG | TIME_EXCEEDED | PARAMETER_PROBLEM => {
            let info = u32_at(message, 4, "ICMPv6 error header")?;
            let quoted = quoted(message.get(8..).unwrap_or_default())?;
            Ok(Icmpv6::Error {
                icmp_type,
                icmp_code,
                info,
                quoted,
            })
        }
        _ => Ok(Icmpv6::Other { icmp_type }),
    }
}

/// An extension header found in a quoted packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeenHeader {
    /// Its protocol number (0, 43, 44, 51 or 60).
    pub protocol: u8,
    /// Offset from the start of the quoted IPv6 header.
    pub offset: usize,
    pub len: usize,
}

/// The invoking packet an ICMPv6 error quotes (as much of it as the sender fitted in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quoted<'a> {
    pub source: Ipv6Addr,
    pub destination: Ipv6Addr,
    pub flow_label: u32,
    /// The hop limit the packet had when it reached the node that quotes it.
    pub hop_limit: u8,
    pub headers: Vec<SeenHeader>,
    /// The transport protocol found at the end of the chain.
    pub protocol: u8,
    /// Offset of the transport header from the start of the quoted IPv6 header.
    pub transport_offset: usize,
    /// The quoted bytes from the transport header on (possibly cut short).
    pub transport: &'a [u8],
}

impl Quoted<'_> {
    /// The extension header holding byte `offset` of the quoted packet (a Parameter Problem
    /// pointer), if one does.
    pub fn header_at(&self, offset: usize) -> Option<SeenHeader> {
        self.headers
            .iter()
            .copied()
            .find(|h| (h.offset..h.offset.saturating_add(h.len)).contains(&offset))
    }
}

/// Walks a quoted IPv6 packet to its transport header.
pub fn quoted(packet: &[u8]) -> Result<Quoted<'_>, ParseError> {
    if packet.len() < IPV6_HEADER_LEN {
        return Err(Truncated("quoted IPv6 header"));
    }
    let first = u32_at(packet, 0, "quoted IPv6 header")?;
    if first >> 28 != 6 {
        return Err(Malformed("quoted packet is not IPv6"));
    }
    let mut next = byte_at(packet, 6, "quoted next header")?;
    let hop_limit = byte_at(packet, 7, "quoted hop limit")?;
    let source = address_at(packet, 8, "quoted source")?;
    let destination = address_at(packet, 24, "quoted destination")?;
    let mut offset = IPV6_HEADER_LEN;
    let mut headers = Vec::new();
    loop {
        let len = match next {
            NEXT_HEADER_HOP_BY_HOP if offset != IPV6_HEADER_LEN => {
                return Err(Malformed("hop-by-hop options not first"));
            }
            NEXT_HEADER_HOP_BY_HOP | NEXT_HEADER_ROUTING | NEXT_HEADER_DESTINATION_OPTIONS => {
                let units = byte_at(packet, offset + 1, "extension header length")?;
                (usize::from(units) + 1) * 8
            }
            NEXT_HEADER_FRAGMENT => {
                let field = u16_at(packet, offset + 2, "fragment offset")?;
                if field >> 3 != 0 {
                    return Err(Unsupported("not the first fragment"));
                }
                8
            }
            NEXT_HEADER_AH => {
                let units = byte_at(packet, offset + 1, "authentication header length")?;
                (usize::from(units) + 2) * 4
            }
            NEXT_HEADER_ESP => return Err(Unsupported("encrypted payload (ESP)")),
            NEXT_HEADER_NONE => return Err(Unsupported("no next header")),
            protocol => {
                return Ok(Quoted {
                    source,
                    destination,
                    flow_label: first & 0xf_ffff,
                    hop_limit,
                    headers,
                    protocol,
                    transport_offset: offset,
                    transport: packet.get(offset..).unwrap_or_default(),
                });
            }
        };
        if headers.len() >= MAX_EXTENSION_HEADERS {
            return Err(Malformed("too many extension headers"));
        }
        let end = offset
            .checked_add(len)
            .filter(|end| *end <= packet.len())
            .ok_or(Truncated("extension header"))?;
        let following = byte_at(packet, offset, "extension next header")?;
        headers.push(SeenHeader {
            protocol: next,
            offset,
            len,
        });
        next = following;
        offset = end;
    }
}

/// The fields of a quoted ICMPv6 echo request we match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotedEcho<'a> {
    pub identifier: u16,
    pub sequence: u16,
    pub payload: &'a [u8],
}

pub fn quoted_echo(transport: &[u8]) -> Result<QuotedEcho<'_>, ParseError> {
    if byte_at(transport, 0, "quoted ICMPv6 type")? != ICMPV6_ECHO_REQUEST {
        return Err(Malformed("quoted ICMPv6 message is not an echo request"));
    }
    Ok(QuotedEcho {
        identifier: u16_at(transport, 4, "quoted echo identifier")?,
        sequence: u16_at(transport, 6, "quoted echo sequence")?,
        payload: transport.get(8..).unwrap_or_default(),
    })
}

/// Source and destination ports (UDP and TCP alike start with them).
pub fn ports(transport: &[u8]) -> Result<(u16, u16), ParseError> {
    Ok((
        u16_at(transport, 0, "source port")?,
        u16_at(transport, 2, "destination port")?,
    ))
}

/// The fields of a TCP segment we match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment {
    pub source_port: u16,
    pub destination_port: u16,
    pub sequence: u32,
    pub acknowledgment: u32,
    pub flags: u8,
}

pub fn tcp(segment: &[u8]) -> Result<TcpSegment, ParseError> {
    let data_offset = usize::from(byte_at(segment, 12, "TCP data offset")? >> 4) * 4;
    if data_offset < 20 {
        return Err(Malformed("TCP data offset below 20 bytes"));
    }
    if data_offset > segment.len() {
        return Err(Truncated("TCP header"));
    }
    let (source_port, destination_port) = ports(segment)?;
    Ok(TcpSegment {
        source_port,
        destination_port,
        sequence: u32_at(segment, 4, "TCP sequence number")?,
        acknowledgment: u32_at(segment, 8, "TCP acknowledgment number")?,
        flags: byte_at(segment, 13, "TCP flags")?,
    })
}
