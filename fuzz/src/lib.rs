//! The probe's pure packet modules (`probe/src/rawnet/{build,checksum,parse,matching}.rs`),
//! compiled here on their own: they use only std, thiserror and each other, so fuzzing needs
//! neither tokio nor the probe's dependency tree (and no nightly build of it).

#![allow(dead_code, unreachable_pub)]

// Siblings at the crate root, as in `rawnet`: their `super::` paths resolve the same way.
#[path = "../../probe/src/rawnet/build.rs"]
pub mod build;
#[path = "../../probe/src/rawnet/checksum.rs"]
pub mod checksum;
#[path = "../../probe/src/rawnet/matching.rs"]
pub mod matching;
#[path = "../../probe/src/rawnet/parse.rs"]
pub mod parse;

use build::{COOKIE_LEN, Flow, Transport};
use parse::Icmpv6;
use std::net::Ipv6Addr;

/// Runs `data` through every parser and matcher. Besides a fixed flow, flows are built from
/// the data's own quote (its destination, identifier or ports, cookie), so the matcher's
/// deeper checks are reached without the fuzzer guessing 16-byte addresses.
pub fn feed(data: &[u8]) {
    let from = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    let mut flows = vec![fixed_flow()];
    if let Ok(Icmpv6::Error { quoted, .. }) = parse::icmpv6(data) {
        let _ = quoted.header_at(usize::from(data.first().copied().unwrap_or(0)));
        let word = |at: usize| {
            quoted
                .transport
                .get(at..at + 2)
                .map_or(0, |w| u16::from_be_bytes([w[0], w[1]]))
        };
        let mut cookie = [0u8; COOKIE_LEN];
        for (slot, byte) in cookie.iter_mut().zip(quoted.transport.iter().skip(10)) {
            *slot = *byte;
        }
        for transport in [
            Transport::Icmp {
                identifier: word(4),
            },
            Transport::Udp {
                source_port: word(0),
                destination_port: word(2),
            },
            Transport::TcpSyn {
                source_port: word(0),
                destination_port: word(2),
            },
        ] {
            flows.push(Flow {
                source: quoted.source,
                destination: quoted.destination,
                flow_label: quoted.flow_label,
                transport,
                cookie,
            });
        }
    }
    for flow in &flows {
        let _ = flow.match_icmpv6(from, data);
        let _ = flow.match_icmpv6(flow.destination, data);
        let _ = flow.match_tcp(flow.destination, data);
    }
    let _ = parse::quoted(data);
    let _ = parse::tcp(data);
}

fn fixed_flow() -> Flow {
    Flow {
        source: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2),
        destination: Ipv6Addr::new(0x2001, 0xdb8, 9, 0, 0, 0, 0, 2),
        flow_label: 0x12345,
        transport: Transport::Icmp { identifier: 0x4242 },
        cookie: *b"cookie",
    }
}
