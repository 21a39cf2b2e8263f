//! Which of our probes a received packet answers, if any: the flow's constants (echo
//! identifier or ports, destination, cookie) must match, and the probe id must come with
//! its companion word (see `build`).

use super::build::{COOKIE_LEN, Flow, TCP_ACK, TCP_RST, TCP_SYN, Transport, id_of_tcp_sequence};
use super::checksum::companion;
use super::parse::{self, Icmpv6, ParseError, Quoted};
use std::net::Ipv6Addr;

/// What answered a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerKind {
    EchoReply,
    IcmpError {
        icmp_type: u8,
        icmp_code: u8,
        /// MTU (Packet Too Big) or pointer (Parameter Problem).
        info: u32,
        /// For Parameter Problem: the protocol number of the quoted extension header the
        /// pointer falls in, if any.
        parameter_in: Option<u8>,
    },
    Tcp {
        flags: u8,
    },
}

/// A packet that answers probe `id` of the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matched {
    pub id: u16,
    pub kind: AnswerKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("not ours: {0}")]
    NotOurs(&'static str),
}

use MatchError::NotOurs;

/// The id in the first payload words (`id`, companion, cookie), checking as much of the
/// cookie as is there. `id` comes from elsewhere for ICMPv6 (the sequence number).
fn check_marker(
    flow: &Flow,
    id: u16,
    words: &[u8],
    cookie_required: bool,
) -> Result<(), MatchError> {
    match words.get(..2) {
        Some(w) if w != companion(id).to_be_bytes() => {
            return Err(NotOurs("companion word differs"));
        }
        Some(_) => {}
        None if cookie_required => return Err(ParseError::Truncated("companion word").into()),
        None => return Ok(()),
    }
    let cookie = words.get(2..).unwrap_or_default();
    let cookie = cookie.get(..COOKIE_LEN).unwrap_or(cookie);
    if cookie_required && cookie.len() < COOKIE_LEN {
        return Err(ParseError::Truncated("cookie").into());
    }
    if flow.cookie.get(..cookie.len()) != Some(cookie) {
        return Err(NotOurs("cookie differs"));
    }
    Ok(())
}

impl Flow {
    /// Matches an ICMPv6 message received from `from`.
    pub fn match_icmpv6(&self, from: Ipv6Addr, message: &[u8]) -> Result<Matched, MatchError> {
        match parse::icmpv6(message)? {
            Icmpv6::EchoReply {
                identifier,
                sequence,
                payload,
            } => {
                let Transport::Icmp { identifier: ours } = self.transport else {
                    return Err(NotOurs("echo reply to a flow that sends no echo requests"));
                };
                if identifier != ours {
                    return Err(NotOurs("echo identifier differs"));
                }
                if from != self.destination {
                    return Err(NotOurs("echo reply from another address"));
                }
                check_marker(self, sequence, payload, true)?;
                Ok(Matched {
                    id: sequence,
                    kind: AnswerKind::EchoReply,
                })
            }
            Icmpv6::Error {
                icmp_type,
                icmp_code,
                info,
                quoted,
            } => {
                let id = self.match_quoted(&quoted)?;
                let parameter_in = (icmp_type == parse::PARAMETER_PROBLEM)
                    .then(|| usize::try_from(info).ok())
                    .flatten()
                    .and_then(|pointer| quoted.header_at(pointer))
                    .map(|h| h.protocol);
                Ok(Matched {
                    id,
                    kind: AnswerKind::IcmpError {
                        icmp_type,
                        icmp_code,
                        info,
                        parameter_in,
                    },
                })
            }
            Icmpv6::Other { .. } => Err(NotOurs("not an echo reply or error")),
        }
    }

    /// The id of our probe an ICMPv6 error quotes.
    pub fn match_quoted(&self, quoted: &Quoted<'_>) -> Result<u16, MatchError> {
        if quoted.destination != self.destination {
            return Err(NotOurs("quoted destination differs"));
        }
        if quoted.protocol != self.transport.next_header() {
            return Err(NotOurs("quoted transport differs"));
        }
        let transport = quoted.transport;
        match self.transport {
            Transport::Icmp { identifier } => {
                let echo = parse::quoted_echo(transport)?;
                if echo.identifier != identifier {
                    return Err(NotOurs("quoted echo identifier differs"));
                }
                // A quote may stop inside our payload: what is there must match.
                check_marker(self, echo.sequence, echo.payload, false)?;
                Ok(echo.sequence)
            }
            Transport::Udp {
                source_port,
                destination_port,
            } => {
                if parse::ports(transport)? != (source_port, destination_port) {
                    return Err(NotOurs("quoted ports differ"));
                }
                let payload = transport.get(8..).unwrap_or_default();
                let id = payload
                    .get(..2)
                    .map(|w| u16::from_be_bytes([w[0], w[1]]))
                    .ok_or(ParseError::Truncated("quoted UDP probe id"))?;
                let rest = payload.get(2..).unwrap_or_default();
                if rest.len() < 2 {
                    return Err(ParseError::Truncated("quoted UDP companion word").into());
                }
                check_marker(self, id, rest, false)?;
                Ok(id)
            }
            Transport::TcpSyn {
                source_port,
                destination_port,
            } => {
                if parse::ports(transport)? != (source_port, destination_port) {
                    return Err(NotOurs("quoted ports differ"));
                }
                let sequence = transport
                    .get(4..8)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                    .ok_or(ParseError::Truncated("quoted TCP sequence number"))?;
                id_of_tcp_sequence(sequence).ok_or(NotOurs("quoted TCP sequence is not a probe's"))
            }
        }
    }

    /// Matches a TCP segment received from `from`: the destination's SYN-ACK or RST
    /// acknowledging one of our SYNs.
    pub fn match_tcp(&self, from: Ipv6Addr, segment: &[u8]) -> Result<Matched, MatchError> {
        let Transport::TcpSyn {
            source_port,
            destination_port,
        } = self.transport
        else {
            return Err(NotOurs("TCP segment for a flow that sends no SYNs"));
        };
        if from != self.destination {
            return Err(NotOurs("TCP segment from another address"));
        }
        let segment = parse::tcp(segment)?;
        if (segment.source_port, segment.destination_port) != (destination_port, source_port) {
            return Err(NotOurs("TCP ports differ"));
        }
        let answers = segment.flags & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK
            || segment.flags & (TCP_RST | TCP_ACK) == TCP_RST | TCP_ACK;
        if !answers {
            return Err(NotOurs("TCP segment is neither SYN-ACK nor RST-ACK"));
        }
        let id = id_of_tcp_sequence(segment.acknowledgment.wrapping_sub(1))
            .ok_or(NotOurs("TCP acknowledgment is not for a probe"))?;
        Ok(Matched {
            id,
            kind: AnswerKind::Tcp {
                flags: segment.flags,
            },
        })
    }
}
