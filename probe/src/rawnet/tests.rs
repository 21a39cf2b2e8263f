//! Packet building, parsing and matching without sockets: round trips through hand-made
//! ICMPv6 answers, hostile input, and a few thousand random and mutated packets.

use super::build::*;
use super::checksum;
use super::matching::{AnswerKind, MatchError, Matched};
use super::parse::{self, ParseError};
use std::net::Ipv6Addr;

const COOKIE: [u8; COOKIE_LEN] = *b"cookie";

fn source() -> Ipv6Addr {
    "2001:db8:1::2".parse().unwrap()
}
fn destination() -> Ipv6Addr {
    "2001:db8:9::2".parse().unwrap()
}
fn router() -> Ipv6Addr {
    "2001:db8:5::1".parse().unwrap()
}

fn flow(transport: Transport) -> Flow {
    Flow {
        source: source(),
        destination: destination(),
        flow_label: 0xabcde,
        transport,
        cookie: COOKIE,
    }
}

const TRANSPORTS: [Transport; 3] = [
    Transport::Icmp { identifier: 0x4242 },
    Transport::Udp {
        source_port: 50000,
        destination_port: 33434,
    },
    Transport::TcpSyn {
        source_port: 50001,
        destination_port: 443,
    },
];

const EXTS: [Option<ExtHeader>; 5] = [
    None,
    Some(ExtHeader::HopByHop { len: 8 }),
    Some(ExtHeader::DestinationOptions { len: 64 }),
    Some(ExtHeader::Fragment {
        identification: 0x01020304,
    }),
    Some(ExtHeader::HopByHop { len: 256 }),
];

fn probe(id: u16, hop_limit: u8, ext: Option<ExtHeader>, size: usize) -> ProbeParams {
    ProbeParams {
        id,
        hop_limit,
        ext,
        size,
    }
}

/// An ICMPv6 error of `kind`/`code` quoting `packet` (cut to what fits in 1280 bytes).
fn error(kind: u8, code: u8, info: u32, packet: &[u8]) -> Vec<u8> {
    let mut message = vec![kind, code, 0, 0];
    message.extend_from_slice(&info.to_be_bytes());
    message.extend_from_slice(&packet[..packet.len().min(1280 - 48)]);
    message
}

fn transport_start(ext: Option<ExtHeader>) -> usize {
    IPV6_HEADER_LEN + ext.map_or(0, ExtHeader::wire_len)
}

#[test]
fn ipv6_header_is_as_asked() {
    for transport in TRANSPORTS {
        for ext in EXTS {
            let f = flow(transport);
            let packet = f.build(&probe(7, 5, ext, 300)).unwrap();
            assert_eq!(packet[0] >> 4, 6);
            let label = u32::from_be_bytes([0, packet[1] & 0x0f, packet[2], packet[3]]);
            assert_eq!(label, 0xabcde);
            assert_eq!(packet[1] >> 4, 0, "traffic class stays 0");
            let payload_len = usize::from(u16::from_be_bytes([packet[4], packet[5]]));
            assert_eq!(payload_len + IPV6_HEADER_LEN, packet.len());
            assert_eq!(packet[7], 5);
            assert_eq!(packet[8..24], source().octets());
            assert_eq!(packet[24..40], destination().octets());
            match transport {
                Transport::TcpSyn { .. } => assert_eq!(packet.len(), f.min_size(ext)),
                _ => assert_eq!(packet.len(), 300.max(f.min_size(ext))),
            }
            // The chain leads to the transport, and its checksum verifies.
            let chain = parse::quoted(&packet).unwrap();
            assert_eq!(chain.protocol, transport.next_header());
            assert_eq!(chain.headers.len(), usize::from(ext.is_some()));
            let start = transport_start(ext);
            assert_eq!(chain.transport_offset, start);
            assert!(checksum::verify(
                source(),
                destination(),
                transport.next_header(),
                &packet[start..]
            ));
        }
    }
}

#[test]
fn flow_constants_and_checksum_do_not_change_between_probes() {
    for transport in TRANSPORTS {
        let f = flow(transport);
        let packets: Vec<Vec<u8>> = [0u16, 1, 2, 0x1234, 0x8000, 0xfffe, 0xffff]
            .iter()
            .zip([1u8, 2, 3, 30, 64, 200, 255])
            .map(|(&id, hop)| f.build(&probe(id, hop, None, 0)).unwrap())
            .collect();
        let (checksum_at, ports_or_identifier) = match transport {
            Transport::Icmp { .. } => (42, 44..46),
            Transport::Udp { .. } => (46, 40..44),
            Transport::TcpSyn { .. } => (56, 40..44),
        };
        for packet in &packets {
            assert_eq!(packet[..4], packets[0][..4], "version and flow label");
            assert_eq!(
                packet[checksum_at..checksum_at + 2],
                packets[0][checksum_at..checksum_at + 2],
                "{transport:?}: checksum"
            );
            assert_eq!(
                packet[ports_or_identifier.clone()],
                packets[0][ports_or_identifier.clone()]
            );
        }
        // ...while the probes themselves differ.
        assert_ne!(packets[0], packets[1]);
    }
}

#[test]
fn options_headers_skip_cleanly() {
    let f = flow(TRANSPORTS[0]);
    let packet = f
        .build(&probe(1, 64, Some(ExtHeader::HopByHop { len: 8 }), 0))
        .unwrap();
    // Next header ICMPv6, length 0 (8 bytes), PadN of 4.
    assert_eq!(packet[40..48], [58, 0, 1, 4, 0, 0, 0, 0]);
    let packet = f
        .build(&probe(
            1,
            64,
            Some(ExtHeader::DestinationOptions { len: 24 }),
            0,
        ))
        .unwrap();
    assert_eq!(packet[6], 60);
    // Longer: one experimental option (type 0x1e, "skip if unknown") filling the room.
    assert_eq!(packet[40..44], [58, 2, 0x1e, 20]);
    assert!(packet[44..64].iter().all(|b| *b == 0));
    let packet = f
        .build(&probe(
            1,
            64,
            Some(ExtHeader::Fragment { identification: 9 }),
            0,
        ))
        .unwrap();
    assert_eq!(packet[6], 44);
    assert_eq!(
        packet[40..48],
        [58, 0, 0, 0, 0, 0, 0, 9],
        "atomic: offset 0, M=0"
    );
    assert_eq!(
        f.build(&probe(1, 64, Some(ExtHeader::HopByHop { len: 12 }), 0)),
        Err(BuildError::OptionsLength(12))
    );
    let bad_label = Flow {
        flow_label: 0x10_0000,
        ..f
    };
    assert_eq!(
        bad_label.build(&probe(1, 1, None, 0)),
        Err(BuildError::FlowLabel(0x10_0000))
    );
    assert_eq!(
        f.build(&probe(1, 1, None, 9001)),
        Err(BuildError::TooLarge(9001))
    );
}

#[test]
fn quoted_probes_match_back_to_their_id_for_every_transport_and_header() {
    for transport in TRANSPORTS {
        for ext in EXTS {
            let f = flow(transport);
            for id in [0u16, 77, 0xffff] {
                let packet = f.build(&probe(id, 3, ext, 1500)).unwrap();
                for (kind, code, info) in [(3u8, 0u8, 0u32), (1, 4, 0), (2, 0, 1280), (1, 3, 0)] {
                    let message = error(kind, code, info, &packet);
                    let matched = f.match_icmpv6(router(), &message).unwrap();
                    assert_eq!(matched.id, id, "{transport:?} {ext:?}");
                    assert_eq!(
                        matched.kind,
                        AnswerKind::IcmpError {
                            icmp_type: kind,
                            icmp_code: code,
                            info,
                            parameter_in: None
                        }
                    );
                }
            }
        }
    }
}

#[test]
fn parameter_problem_names_the_header_its_pointer_is_in() {
    let f = flow(TRANSPORTS[0]);
    let packet = f
        .build(&probe(
            5,
            64,
            Some(ExtHeader::DestinationOptions { len: 16 }),
            0,
        ))
        .unwrap();
    // Pointer 42: the option type inside the Destination Options header.
    let matched = f
        .match_icmpv6(destination(), &error(4, 2, 42, &packet))
        .unwrap();
    assert_eq!(
        matched.kind,
        AnswerKind::IcmpError {
            icmp_type: 4,
            icmp_code: 2,
            info: 42,
            parameter_in: Some(60)
        }
    );
    // Pointer 6 (the IPv6 next header field) is in no extension header.
    let matched = f
        .match_icmpv6(destination(), &error(4, 1, 6, &packet))
        .unwrap();
    assert!(matches!(
        matched.kind,
        AnswerKind::IcmpError {
            parameter_in: None,
            ..
        }
    ));
}

/// The echo reply a destination sends for an echo request we built.
fn echo_reply(packet: &[u8], ext: Option<ExtHeader>) -> Vec<u8> {
    let mut reply = packet[transport_start(ext)..].to_vec();
    reply[0] = ICMPV6_ECHO_REPLY;
    reply
}

#[test]
fn echo_replies_match_only_from_the_destination_with_our_cookie() {
    let f = flow(TRANSPORTS[0]);
    let packet = f.build(&probe(300, 64, None, 100)).unwrap();
    let reply = echo_reply(&packet, None);
    assert_eq!(
        f.match_icmpv6(destination(), &reply),
        Ok(Matched {
            id: 300,
            kind: AnswerKind::EchoReply
        })
    );
    assert!(matches!(
        f.match_icmpv6(router(), &reply),
        Err(MatchError::NotOurs(_))
    ));
    let other = Flow {
        cookie: *b"other!",
        ..f
    };
    assert!(matches!(
        other.match_icmpv6(destination(), &reply),
        Err(MatchError::NotOurs(_))
    ));
    let other = Flow {
        transport: Transport::Icmp { identifier: 1 },
        ..f
    };
    assert!(matches!(
        other.match_icmpv6(destination(), &reply),
        Err(MatchError::NotOurs(_))
    ));
    // A reply whose companion word does not fit its sequence is not one of ours.
    let mut forged = reply.clone();
    forged[7] ^= 1;
    assert!(f.match_icmpv6(destination(), &forged).is_err());
    // Neighbour discovery and the like are not answers.
    assert!(
        f.match_icmpv6(destination(), &[135, 0, 0, 0, 0, 0, 0, 0])
            .is_err()
    );
}

fn tcp_segment(sport: u16, dport: u16, sequence: u32, ack: u32, flags: u8) -> Vec<u8> {
    let mut segment = Vec::new();
    segment.extend_from_slice(&sport.to_be_bytes());
    segment.extend_from_slice(&dport.to_be_bytes());
    segment.extend_from_slice(&sequence.to_be_bytes());
    segment.extend_from_slice(&ack.to_be_bytes());
    segment.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    segment
}

#[test]
fn syn_ack_and_reset_give_back_the_probe() {
    let f = flow(TRANSPORTS[2]);
    let sequence = tcp_sequence(0x0a0b);
    assert_eq!(id_of_tcp_sequence(sequence), Some(0x0a0b));
    assert_eq!(id_of_tcp_sequence(sequence ^ 1), None);
    for flags in [TCP_SYN | TCP_ACK, TCP_RST | TCP_ACK] {
        let segment = tcp_segment(443, 50001, 99, sequence.wrapping_add(1), flags);
        assert_eq!(
            f.match_tcp(destination(), &segment),
            Ok(Matched {
                id: 0x0a0b,
                kind: AnswerKind::Tcp { flags }
            })
        );
        assert!(f.match_tcp(router(), &segment).is_err());
    }
    // Wrong ports, a bare RST (no acknowledgment to match) and a short header are refused.
    for segment in [
        tcp_segment(443, 50002, 0, sequence.wrapping_add(1), TCP_SYN | TCP_ACK),
        tcp_segment(80, 50001, 0, sequence.wrapping_add(1), TCP_SYN | TCP_ACK),
        tcp_segment(443, 50001, 0, 0, TCP_RST),
    ] {
        assert!(f.match_tcp(destination(), &segment).is_err());
    }
    let mut short = tcp_segment(443, 50001, 0, sequence.wrapping_add(1), TCP_SYN | TCP_ACK);
    short[12] = 0x40; // data offset 16 bytes
    assert_eq!(
        f.match_tcp(destination(), &short),
        Err(MatchError::Parse(ParseError::Malformed(
            "TCP data offset below 20 bytes"
        )))
    );
    short[12] = 0xf0; // 60 bytes, but 20 are there
    assert_eq!(
        f.match_tcp(destination(), &short),
        Err(MatchError::Parse(ParseError::Truncated("TCP header")))
    );
}

#[test]
fn hostile_quotes_are_refused_with_a_reason() {
    let f = flow(TRANSPORTS[1]);
    let packet = f
        .build(&probe(
            1,
            1,
            Some(ExtHeader::DestinationOptions { len: 16 }),
            0,
        ))
        .unwrap();
    // An extension header longer than the quote.
    let mut lying = packet.clone();
    lying[41] = 200;
    assert_eq!(
        parse::quoted(&lying),
        Err(ParseError::Truncated("extension header"))
    );
    // A chain of Destination Options headers pointing at each other.
    let mut chain = packet[..40].to_vec();
    chain[6] = 60;
    for _ in 0..20 {
        chain.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
    }
    assert_eq!(
        parse::quoted(&chain),
        Err(ParseError::Malformed("too many extension headers"))
    );
    // Hop-by-Hop anywhere but first.
    let mut late = packet.clone();
    late[40] = 0;
    late.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
    assert_eq!(
        parse::quoted(&late[..]),
        Err(ParseError::Malformed("hop-by-hop options not first"))
    );
    // A later fragment has no transport header.
    let mut fragment = f
        .build(&probe(
            1,
            1,
            Some(ExtHeader::Fragment { identification: 1 }),
            0,
        ))
        .unwrap();
    fragment[43] = 0x08; // offset 1
    assert_eq!(
        parse::quoted(&fragment),
        Err(ParseError::Unsupported("not the first fragment"))
    );
    // Not IPv6.
    let mut v4 = packet.clone();
    v4[0] = 0x45;
    assert!(matches!(parse::quoted(&v4), Err(ParseError::Malformed(_))));
    // A UDP quote cut after the header cannot say which probe it was.
    let plain = f.build(&probe(9, 1, None, 0)).unwrap();
    assert_eq!(
        f.match_icmpv6(router(), &error(3, 0, 0, &plain[..48])),
        Err(MatchError::Parse(ParseError::Truncated(
            "quoted UDP probe id"
        )))
    );
    // A quote to another destination is someone else's.
    let mut elsewhere = plain.clone();
    elsewhere[39] ^= 0xff;
    assert!(matches!(
        f.match_icmpv6(router(), &error(3, 0, 0, &elsewhere)),
        Err(MatchError::NotOurs(_))
    ));
}

/// splitmix64: small, seeded, reproducible (the delivery model test uses the same).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Feeds every parser and matcher; only a panic fails.
fn feed(message: &[u8]) {
    for transport in TRANSPORTS {
        let f = flow(transport);
        let _ = f.match_icmpv6(router(), message);
        let _ = f.match_icmpv6(destination(), message);
        let _ = f.match_tcp(destination(), message);
    }
    let _ = parse::quoted(message);
    if let Ok(parse::Icmpv6::Error { quoted, .. }) = parse::icmpv6(message) {
        for offset in [0, 40, 41, 48, usize::MAX] {
            let _ = quoted.header_at(offset);
        }
    }
}

#[test]
fn thousands_of_random_and_mutated_packets_never_panic() {
    let mut rng = Rng(0x5158_6d61_7000_0004);
    let mut seeds = Vec::new();
    for transport in TRANSPORTS {
        for ext in EXTS {
            let packet = flow(transport).build(&probe(3, 2, ext, 200)).unwrap();
            seeds.push(error(3, 0, 0, &packet));
            seeds.push(error(4, 0, 40, &packet));
            if let Transport::Icmp { .. } = transport {
                seeds.push(echo_reply(&packet, ext));
            }
        }
    }
    seeds.push(tcp_segment(
        443,
        50001,
        1,
        tcp_sequence(3).wrapping_add(1),
        0x12,
    ));
    let mut count = 0;
    // Random bytes, often starting like an ICMPv6 error quoting IPv6 so the deep paths run.
    for _ in 0..3000 {
        let len = rng.below(200);
        let mut message: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if rng.below(2) == 0 && message.len() > 16 {
            message[0] = [1, 2, 3, 4, 129][rng.below(5)];
            message[8] = 0x60;
            message[14] = [0, 43, 44, 51, 60, 6, 17, 58][rng.below(8)];
        }
        feed(&message);
        count += 1;
    }
    // Mutations of valid answers: bit flips, byte overwrites with edge values, truncation,
    // insertion and deletion.
    for _ in 0..6000 {
        let mut message = seeds[rng.below(seeds.len())].clone();
        for _ in 0..=rng.below(4) {
            if message.is_empty() {
                break;
            }
            let at = rng.below(message.len());
            match rng.below(5) {
                0 => message[at] ^= 1 << rng.below(8),
                1 => message[at] = [0, 1, 0x7f, 0x80, 0xff, 44, 60][rng.below(7)],
                2 => message.truncate(at),
                3 => message.insert(at, rng.next() as u8),
                _ => {
                    message.remove(at);
                }
            }
        }
        feed(&message);
        count += 1;
    }
    // Every prefix of every seed.
    for seed in &seeds {
        for end in 0..seed.len() {
            feed(&seed[..end]);
            count += 1;
        }
    }
    assert!(count > 9000);
}
