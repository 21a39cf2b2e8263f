//! ICMPv6 and ICMP (v4) echo packets: building requests and recognising the replies and
//! errors that answer them. Pure functions over byte slices starting at the ICMP header (the
//! socket strips the IP header on receive, see `socket::IcmpSocket::recv`). Every read is
//! bounds-checked: malformed or hostile input yields an [`Ignored`] reason, never a panic.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

pub(super) const ECHO_REQUEST: u8 = 128;
pub(super) const ECHO_REPLY: u8 = 129;
/// Errors we report: destination unreachable, packet too big, time exceeded, parameter problem.
pub(super) const ERROR_TYPES: RangeInclusive<u8> = 1..=4;
pub(super) const PACKET_TOO_BIG: u8 = 2;
pub(super) const COOKIE_LEN: usize = 8;

pub(super) const ECHO_REQUEST_V4: u8 = 8;
pub(super) const ECHO_REPLY_V4: u8 = 0;
/// ICMP errors we report: destination unreachable, time exceeded, parameter problem.
pub(super) const ERROR_TYPES_V4: [u8; 3] = [3, 11, 12];
const DEST_UNREACHABLE_V4: u8 = 3;
/// Destination unreachable, "fragmentation needed": the ICMP counterpart of packet too big.
const FRAGMENTATION_NEEDED: u8 = 4;

const ICMP_HEADER_LEN: usize = 8;
const IPV6_HEADER_LEN: usize = 40;
const IPV4_MIN_HEADER_LEN: usize = 20;
const NEXT_HEADER_ICMPV6: u8 = 58;
const PROTOCOL_ICMP: u8 = 1;

/// Which ICMP: the one of the destination's family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Icmp {
    V6,
    V4,
}

impl Icmp {
    pub(super) fn of(address: IpAddr) -> Self {
        match address {
            IpAddr::V6(_) => Self::V6,
            IpAddr::V4(_) => Self::V4,
        }
    }

    pub(super) fn echo_request(self) -> u8 {
        match self {
            Self::V6 => ECHO_REQUEST,
            Self::V4 => ECHO_REQUEST_V4,
        }
    }

    pub(super) fn echo_reply(self) -> u8 {
        match self {
            Self::V6 => ECHO_REPLY,
            Self::V4 => ECHO_REPLY_V4,
        }
    }

    pub(super) fn is_error(self, kind: u8) -> bool {
        match self {
            Self::V6 => ERROR_TYPES.contains(&kind),
            Self::V4 => ERROR_TYPES_V4.contains(&kind),
        }
    }

    /// The MTU an error reports, for the errors that report one.
    pub(super) fn mtu(self, kind: u8, code: u8, info: u32) -> Option<u32> {
        match self {
            Self::V6 => (kind == PACKET_TOO_BIG).then_some(info),
            // The next-hop MTU sits in the low 16 bits of the rest-of-header word.
            Self::V4 => (kind == DEST_UNREACHABLE_V4 && code == FRAGMENTATION_NEEDED)
                .then_some(info & 0xFFFF),
        }
    }
}
/// Our payload starts with the cookie and a copy of the sequence number.
const MARKER_LEN: usize = COOKIE_LEN + 2;

/// What makes a packet ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Matcher {
    /// Random per measurement: tells our packets from other pings and earlier measurements.
    pub cookie: [u8; COOKIE_LEN],
    /// Echo identifier to require; `None` for datagram sockets, where the kernel replaces
    /// the identifier with its own and only delivers packets carrying that one.
    pub identifier: Option<u16>,
    /// Where our requests go: a quoted request to elsewhere is not ours. Its family says
    /// which ICMP is spoken.
    pub destination: IpAddr,
}

impl Matcher {
    fn icmp(&self) -> Icmp {
        Icmp::of(self.destination)
    }
}

/// A packet that answers one of our requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Incoming {
    Reply {
        sequence: u16,
    },
    Error {
        sequence: u16,
        icmp_type: u8,
        icmp_code: u8,
        mtu: Option<u32>,
    },
}

/// Why a packet was not taken as an answer to us (for debug logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ignored {
    Truncated(&'static str),
    UnexpectedType(u8),
    NotOurs(&'static str),
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated(what) => write!(f, "truncated: no room for {what}"),
            Self::UnexpectedType(kind) => write!(f, "unexpected ICMP type {kind}"),
            Self::NotOurs(why) => write!(f, "not ours: {why}"),
        }
    }
}

/// An echo request with `payload_size` payload bytes (at least the cookie and sequence).
/// ICMPv6: the checksum stays zero, the kernel computes it for both socket kinds (it covers a
/// pseudo-header we do not know). ICMP (v4): raw sockets send it as is, so it is computed.
pub(super) fn echo_request(
    icmp: Icmp,
    identifier: u16,
    sequence: u16,
    cookie: &[u8; COOKIE_LEN],
    payload_size: usize,
) -> Vec<u8> {
    let len = ICMP_HEADER_LEN + payload_size.max(MARKER_LEN);
    let mut packet = Vec::with_capacity(len);
    packet.extend_from_slice(&[icmp.echo_request(), 0, 0, 0]);
    packet.extend_from_slice(&identifier.to_be_bytes());
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.extend_from_slice(cookie);
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.resize(len, 0);
    if icmp == Icmp::V4 {
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

/// The Internet checksum (RFC 1071) of `bytes`.
pub(super) fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| {
            u32::from(u16::from_be_bytes([
                pair[0],
                pair.get(1).copied().unwrap_or(0),
            ]))
        })
        .sum();
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// The ICMP message inside an IPv4 packet as a raw ICMP socket delivers it (with its IP
/// header), or `None` if the header is not a plausible IPv4 one.
pub(super) fn strip_ipv4_header(packet: &[u8]) -> Option<&[u8]> {
    let first = *packet.first()?;
    let header_len = usize::from(first & 0x0F) * 4;
    if first >> 4 != 4 || header_len < IPV4_MIN_HEADER_LEN {
        return None;
    }
    packet.get(header_len..)
}

/// Classifies a packet read from a socket's receive queue.
pub(super) fn classify(packet: &[u8], matcher: &Matcher) -> Result<Incoming, Ignored> {
    let icmp = matcher.icmp();
    match packet.first() {
        None => Err(Ignored::Truncated("ICMP type")),
        Some(&kind) if kind == icmp.echo_reply() => {
            let sequence = our_echo(packet, kind, matcher, Cookie::Required)?;
            Ok(Incoming::Reply { sequence })
        }
        Some(&kind) if icmp.is_error(kind) => classify_error(packet, matcher),
        Some(&kind) => Err(Ignored::UnexpectedType(kind)),
    }
}

/// The quoted packet of an ICMP error: checks it went to our destination with ICMP of our
/// family, and returns what follows its IP header (our echo request, if it is ours).
fn quoted_request<'a>(quote: &'a [u8], matcher: &Matcher) -> Result<&'a [u8], Ignored> {
    match matcher.destination {
        IpAddr::V6(destination) => {
            let ip = quote
                .get(..IPV6_HEADER_LEN)
                .ok_or(Ignored::Truncated("quoted IPv6 header"))?;
            if ip.first().map(|b| b >> 4) != Some(6) {
                return Err(Ignored::NotOurs("quoted packet is not IPv6"));
            }
            if ip.get(6) != Some(&NEXT_HEADER_ICMPV6) {
                return Err(Ignored::NotOurs("quoted packet is not ICMPv6"));
            }
            let quoted: [u8; 16] = ip
                .get(24..40)
                .and_then(|d| d.try_into().ok())
                .ok_or(Ignored::Truncated("quoted destination"))?;
            if Ipv6Addr::from(quoted) != destination {
                return Err(Ignored::NotOurs("quoted destination differs"));
            }
            Ok(quote.get(IPV6_HEADER_LEN..).unwrap_or_default())
        }
        IpAddr::V4(destination) => {
            let ip = quote
                .get(..IPV4_MIN_HEADER_LEN)
                .ok_or(Ignored::Truncated("quoted IPv4 header"))?;
            if ip.first().map(|b| b >> 4) != Some(4) {
                return Err(Ignored::NotOurs("quoted packet is not IPv4"));
            }
            if ip.get(9) != Some(&PROTOCOL_ICMP) {
                return Err(Ignored::NotOurs("quoted packet is not ICMP"));
            }
            let quoted: [u8; 4] = ip
                .get(16..20)
                .and_then(|d| d.try_into().ok())
                .ok_or(Ignored::Truncated("quoted destination"))?;
            if Ipv4Addr::from(quoted) != destination {
                return Err(Ignored::NotOurs("quoted destination differs"));
            }
            strip_ipv4_header(quote).ok_or(Ignored::Truncated("quoted IPv4 header"))
        }
    }
}

/// An ICMPv6 error: 8-byte header (type, code, checksum, MTU/pointer/unused), then as much of
/// the offending packet as fits: its IPv6 header, and (if it is ours) our echo request.
fn classify_error(packet: &[u8], matcher: &Matcher) -> Result<Incoming, Ignored> {
    let header = packet
        .get(..ICMP_HEADER_LEN)
        .ok_or(Ignored::Truncated("ICMPv6 error header"))?;
    let quote = packet.get(ICMP_HEADER_LEN..).unwrap_or_default();
    let echo = quoted_request(quote, matcher)?;
    let sequence = quoted_echo(echo, matcher)?;
    let icmp_type = header.first().copied().unwrap_or_default();
    let icmp_code = header.get(1).copied().unwrap_or_default();
    let info = header
        .get(4..8)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .unwrap_or_default();
    Ok(Incoming::Error {
        sequence,
        icmp_type,
        icmp_code,
        mtu: matcher.icmp().mtu(icmp_type, icmp_code, info),
    })
}

/// The sequence number of our echo request as quoted by an ICMPv6 error (after the quoted
/// IPv6 header for raw sockets; the whole error-queue payload for datagram sockets).
pub(super) fn quoted_echo(echo: &[u8], matcher: &Matcher) -> Result<u16, Ignored> {
    our_echo(
        echo,
        matcher.icmp().echo_request(),
        matcher,
        Cookie::IfQuoted,
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cookie {
    /// Replies echo our whole payload: no cookie, not ours.
    Required,
    /// Errors may quote too little to hold it; the identifier (or, for datagram sockets, the
    /// kernel's own matching) has to do then.
    IfQuoted,
}

fn our_echo(
    echo: &[u8],
    expected_type: u8,
    matcher: &Matcher,
    cookie: Cookie,
) -> Result<u16, Ignored> {
    let header = echo
        .get(..ICMP_HEADER_LEN)
        .ok_or(Ignored::Truncated("echo header"))?;
    let field = |at: usize| {
        header
            .get(at..at + 2)
            .and_then(|b| b.try_into().ok())
            .map(u16::from_be_bytes)
            .ok_or(Ignored::Truncated("echo header"))
    };
    let kind = header.first().copied().unwrap_or_default();
    if kind != expected_type {
        return Err(Ignored::UnexpectedType(kind));
    }
    if header.get(1) != Some(&0) {
        return Err(Ignored::NotOurs("nonzero echo code"));
    }
    if matcher.identifier.is_some_and(|id| Ok(id) != field(4)) {
        return Err(Ignored::NotOurs("identifier differs"));
    }
    let sequence = field(6)?;
    let payload = echo.get(ICMP_HEADER_LEN..).unwrap_or_default();
    // A quote may cut the cookie: what is there must match.
    let quoted_cookie = payload.get(..COOKIE_LEN).unwrap_or(payload);
    if cookie == Cookie::Required && quoted_cookie.len() < COOKIE_LEN {
        return Err(Ignored::Truncated("cookie"));
    }
    if matcher.cookie.get(..quoted_cookie.len()) != Some(quoted_cookie) {
        return Err(Ignored::NotOurs("cookie differs"));
    }
    match payload.get(COOKIE_LEN..MARKER_LEN) {
        Some(copy) if copy != sequence.to_be_bytes() => {
            Err(Ignored::NotOurs("payload sequence differs"))
        }
        Some(_) => Ok(sequence),
        None if cookie == Cookie::Required => Err(Ignored::Truncated("payload sequence")),
        None => Ok(sequence),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) const COOKIE: [u8; COOKIE_LEN] = *b"cookie!!";
    const IDENTIFIER: u16 = 0xbeef;

    pub(crate) fn destination() -> Ipv6Addr {
        "2001:db8::7".parse().unwrap()
    }

    fn v4_destination() -> Ipv4Addr {
        "192.0.2.7".parse().unwrap()
    }

    fn raw_matcher() -> Matcher {
        Matcher {
            cookie: COOKIE,
            identifier: Some(IDENTIFIER),
            destination: destination().into(),
        }
    }

    fn datagram_matcher() -> Matcher {
        Matcher {
            identifier: None,
            ..raw_matcher()
        }
    }

    fn reply(identifier: u16, sequence: u16, cookie: &[u8; COOKIE_LEN]) -> Vec<u8> {
        let mut packet = echo_request(Icmp::V6, identifier, sequence, cookie, 56);
        packet[0] = ECHO_REPLY;
        packet
    }

    /// An ICMPv6 error quoting `request` sent to `to`.
    pub(crate) fn error(kind: u8, code: u8, info: u32, to: Ipv6Addr, request: &[u8]) -> Vec<u8> {
        let mut packet = vec![kind, code, 0, 0];
        packet.extend_from_slice(&info.to_be_bytes());
        let mut ip = [0u8; IPV6_HEADER_LEN];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&u16::try_from(request.len()).unwrap().to_be_bytes());
        ip[6] = NEXT_HEADER_ICMPV6;
        ip[7] = 1;
        ip[8..24].copy_from_slice(&"2001:db8::100".parse::<Ipv6Addr>().unwrap().octets());
        ip[24..40].copy_from_slice(&to.octets());
        packet.extend_from_slice(&ip);
        packet.extend_from_slice(request);
        packet
    }

    #[test]
    fn echo_request_layout() {
        let packet = echo_request(Icmp::V6, 0x1234, 0x0506, &COOKIE, 56);
        assert_eq!(packet.len(), 64);
        assert_eq!(packet[..8], [128, 0, 0, 0, 0x12, 0x34, 0x05, 0x06]);
        assert_eq!(packet[8..16], COOKIE);
        assert_eq!(packet[16..18], [0x05, 0x06]);
        assert!(packet[18..].iter().all(|b| *b == 0));
        // Never shorter than the marker, whatever the caller asks.
        assert_eq!(echo_request(Icmp::V6, 1, 2, &COOKIE, 0).len(), 18);
    }

    #[test]
    fn matching_reply_is_recognised() {
        let packet = reply(IDENTIFIER, 3, &COOKIE);
        assert_eq!(
            classify(&packet, &raw_matcher()),
            Ok(Incoming::Reply { sequence: 3 })
        );
        // Datagram sockets: the kernel owns the identifier, so any value matches.
        let packet = reply(0x4242, 3, &COOKIE);
        assert_eq!(
            classify(&packet, &datagram_matcher()),
            Ok(Incoming::Reply { sequence: 3 })
        );
    }

    #[test]
    fn foreign_replies_are_ignored() {
        let m = raw_matcher();
        let other_cookie = reply(IDENTIFIER, 3, b"someone!");
        assert_eq!(
            classify(&other_cookie, &m),
            Err(Ignored::NotOurs("cookie differs"))
        );
        let other_id = reply(IDENTIFIER + 1, 3, &COOKIE);
        assert_eq!(
            classify(&other_id, &m),
            Err(Ignored::NotOurs("identifier differs"))
        );
        let mut wrong_copy = reply(IDENTIFIER, 3, &COOKIE);
        wrong_copy[17] = 4;
        assert_eq!(
            classify(&wrong_copy, &m),
            Err(Ignored::NotOurs("payload sequence differs"))
        );
        let mut wrong_code = reply(IDENTIFIER, 3, &COOKIE);
        wrong_code[1] = 1;
        assert_eq!(
            classify(&wrong_code, &m),
            Err(Ignored::NotOurs("nonzero echo code"))
        );
        let request = echo_request(Icmp::V6, IDENTIFIER, 3, &COOKIE, 56);
        assert_eq!(
            classify(&request, &m),
            Err(Ignored::UnexpectedType(ECHO_REQUEST))
        );
    }

    #[test]
    fn truncated_replies_are_ignored() {
        let packet = reply(IDENTIFIER, 3, &COOKIE);
        for end in 0..MARKER_LEN + ICMP_HEADER_LEN {
            let result = classify(&packet[..end], &raw_matcher());
            assert!(
                matches!(result, Err(Ignored::Truncated(_))),
                "{end}: {result:?}"
            );
        }
        assert!(classify(&packet[..18], &raw_matcher()).is_ok());
    }

    #[test]
    fn errors_quoting_our_request_are_recognised() {
        let request = echo_request(Icmp::V6, IDENTIFIER, 1, &COOKIE, 56);
        let packet = error(1, 3, 0, destination(), &request);
        let expected = Incoming::Error {
            sequence: 1,
            icmp_type: 1,
            icmp_code: 3,
            mtu: None,
        };
        assert_eq!(classify(&packet, &raw_matcher()), Ok(expected));
        let too_big = error(PACKET_TOO_BIG, 0, 1280, destination(), &request);
        assert!(matches!(
            classify(&too_big, &raw_matcher()),
            Ok(Incoming::Error {
                mtu: Some(1280),
                icmp_type: 2,
                ..
            })
        ));
        // A quote cut after the echo header still matches on the identifier.
        let short = error(3, 0, 0, destination(), &request[..8]);
        assert!(matches!(
            classify(&short, &raw_matcher()),
            Ok(Incoming::Error { sequence: 1, .. })
        ));
    }

    #[test]
    fn errors_not_quoting_our_request_are_ignored() {
        let m = raw_matcher();
        let request = echo_request(Icmp::V6, IDENTIFIER, 1, &COOKIE, 56);
        let elsewhere = error(1, 0, 0, "2001:db8::8".parse().unwrap(), &request);
        assert_eq!(
            classify(&elsewhere, &m),
            Err(Ignored::NotOurs("quoted destination differs"))
        );
        let other = echo_request(Icmp::V6, IDENTIFIER, 1, b"someone!", 56);
        let other = error(1, 0, 0, destination(), &other);
        assert_eq!(
            classify(&other, &m),
            Err(Ignored::NotOurs("cookie differs"))
        );
        let mut udp = error(1, 0, 0, destination(), &request);
        udp[8 + 6] = 17;
        assert_eq!(
            classify(&udp, &m),
            Err(Ignored::NotOurs("quoted packet is not ICMPv6"))
        );
        let mut v4 = error(1, 0, 0, destination(), &request);
        v4[8] = 0x45;
        assert_eq!(
            classify(&v4, &m),
            Err(Ignored::NotOurs("quoted packet is not IPv6"))
        );
        // An error quoting a reply (someone else's) is not about our request.
        let quoted_reply = error(1, 0, 0, destination(), &reply(IDENTIFIER, 1, &COOKIE));
        assert_eq!(
            classify(&quoted_reply, &m),
            Err(Ignored::UnexpectedType(ECHO_REPLY))
        );
        assert_eq!(
            classify(&[135, 0, 0, 0], &m),
            Err(Ignored::UnexpectedType(135))
        );
    }

    #[test]
    fn too_short_quotes_are_ignored() {
        let request = echo_request(Icmp::V6, IDENTIFIER, 1, &COOKIE, 56);
        let packet = error(1, 0, 0, destination(), &request);
        // Anything that cuts the IPv6 header or the echo header cannot be attributed.
        for end in 0..ICMP_HEADER_LEN + IPV6_HEADER_LEN + ICMP_HEADER_LEN {
            let result = classify(&packet[..end], &raw_matcher());
            assert!(
                matches!(result, Err(Ignored::Truncated(_))),
                "{end}: {result:?}"
            );
        }
        // From the echo header on, the identifier matches and a cut cookie matches as far
        // as it is quoted.
        let echo_start = ICMP_HEADER_LEN + IPV6_HEADER_LEN;
        for end in echo_start + ICMP_HEADER_LEN..packet.len() {
            assert!(classify(&packet[..end], &raw_matcher()).is_ok(), "{end}");
            let mut other = packet[..end].to_vec();
            if let Some(byte) = other.get_mut(echo_start + ICMP_HEADER_LEN) {
                *byte ^= 0xff;
                let result = classify(&other, &raw_matcher());
                assert_eq!(result, Err(Ignored::NotOurs("cookie differs")), "{end}");
            }
        }
    }

    #[test]
    fn error_queue_quotes_match_by_cookie() {
        let m = datagram_matcher();
        let request = echo_request(Icmp::V6, 0x4242, 2, &COOKIE, 56);
        assert_eq!(quoted_echo(&request, &m), Ok(2));
        assert_eq!(quoted_echo(&request[..8], &m), Ok(2));
        assert!(quoted_echo(&request[..7], &m).is_err());
        let other = echo_request(Icmp::V6, 0x4242, 2, b"someone!", 56);
        assert_eq!(
            quoted_echo(&other, &m),
            Err(Ignored::NotOurs("cookie differs"))
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic generator: enough to walk odd lengths and values.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let templates = [
            reply(IDENTIFIER, 1, &COOKIE),
            error(
                1,
                0,
                0,
                destination(),
                &echo_request(Icmp::V6, IDENTIFIER, 1, &COOKIE, 56),
            ),
        ];
        for _ in 0..20_000 {
            let template = &templates[usize::from(next() % 2 == 0)];
            let mut packet =
                template[..usize::try_from(next()).unwrap() % (template.len() + 1)].to_vec();
            if let Some(byte) = packet.get_mut(usize::try_from(next()).unwrap() % 80) {
                *byte = u8::try_from(next() & 0xff).unwrap();
            }
            let _ = classify(&packet, &raw_matcher());
            let _ = classify(&packet, &datagram_matcher());
            let _ = quoted_echo(&packet, &datagram_matcher());
        }
    }

    fn v4_matcher(identifier: Option<u16>) -> Matcher {
        Matcher {
            cookie: COOKIE,
            identifier,
            destination: v4_destination().into(),
        }
    }

    /// An ICMP (v4) error quoting `request` sent to `to`, with `options` bytes of IP options.
    fn error_v4(
        kind: u8,
        code: u8,
        info: u32,
        to: Ipv4Addr,
        options: usize,
        request: &[u8],
    ) -> Vec<u8> {
        let mut packet = vec![kind, code, 0, 0];
        packet.extend_from_slice(&info.to_be_bytes());
        let header_len = IPV4_MIN_HEADER_LEN + options;
        let mut ip = vec![0u8; header_len];
        ip[0] = 0x40 | u8::try_from(header_len / 4).unwrap();
        ip[8] = 1;
        ip[9] = PROTOCOL_ICMP;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&to.octets());
        packet.extend_from_slice(&ip);
        packet.extend_from_slice(request);
        packet
    }

    #[test]
    fn v4_requests_carry_a_valid_checksum_and_replies_match() {
        let request = echo_request(Icmp::V4, IDENTIFIER, 5, &COOKIE, 56);
        assert_eq!(request[0], ECHO_REQUEST_V4);
        assert_eq!(checksum(&request), 0, "a correct checksum sums to zero");
        assert_eq!(
            checksum(&request[..17]),
            checksum(&[&request[..17], &[0][..]].concat())
        );
        let mut reply = request.clone();
        reply[0] = ECHO_REPLY_V4;
        assert_eq!(
            classify(&reply, &v4_matcher(Some(IDENTIFIER))),
            Ok(Incoming::Reply { sequence: 5 })
        );
        // An ICMPv6 echo reply type means nothing on an ICMP socket.
        reply[0] = ECHO_REPLY;
        assert_eq!(
            classify(&reply, &v4_matcher(None)),
            Err(Ignored::UnexpectedType(ECHO_REPLY))
        );
        // Our own request (raw sockets see it on loopback) is not a reply.
        assert_eq!(
            classify(&request, &v4_matcher(None)),
            Err(Ignored::UnexpectedType(ECHO_REQUEST_V4))
        );
    }

    #[test]
    fn v4_errors_are_matched_by_their_quote_whatever_the_header_length() {
        let request = echo_request(Icmp::V4, IDENTIFIER, 2, &COOKIE, 56);
        for options in [0, 4, 40] {
            let packet = error_v4(11, 0, 0, v4_destination(), options, &request);
            assert_eq!(
                classify(&packet, &v4_matcher(Some(IDENTIFIER))),
                Ok(Incoming::Error {
                    sequence: 2,
                    icmp_type: 11,
                    icmp_code: 0,
                    mtu: None
                }),
                "{options}"
            );
        }
        let frag = error_v4(3, 4, 1400, v4_destination(), 0, &request[..8]);
        assert!(matches!(
            classify(&frag, &v4_matcher(Some(IDENTIFIER))),
            Ok(Incoming::Error {
                mtu: Some(1400),
                icmp_type: 3,
                icmp_code: 4,
                ..
            })
        ));
        let elsewhere = error_v4(3, 1, 0, "192.0.2.8".parse().unwrap(), 0, &request);
        assert_eq!(
            classify(&elsewhere, &v4_matcher(None)),
            Err(Ignored::NotOurs("quoted destination differs"))
        );
        let mut udp = error_v4(3, 3, 0, v4_destination(), 0, &request);
        udp[8 + 9] = 17;
        assert_eq!(
            classify(&udp, &v4_matcher(None)),
            Err(Ignored::NotOurs("quoted packet is not ICMP"))
        );
        // Every cut before the quoted echo header cannot be attributed, and never panics.
        let packet = error_v4(3, 1, 0, v4_destination(), 4, &request);
        for end in 0..ICMP_HEADER_LEN + 24 + ICMP_HEADER_LEN {
            assert!(
                classify(&packet[..end], &v4_matcher(None)).is_err(),
                "{end}"
            );
        }
        assert_eq!(strip_ipv4_header(&[0x45]), None);
        assert_eq!(strip_ipv4_header(&[0x44, 0, 0, 0]), None);
        assert_eq!(strip_ipv4_header(&[0x60; 40]), None);
        let mut raw = vec![0x45; 20];
        raw.extend_from_slice(&[1, 2]);
        assert_eq!(strip_ipv4_header(&raw), Some(&[1u8, 2][..]));
    }
}
