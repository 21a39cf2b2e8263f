use super::*;
use wire::tests::{question, record, response_counts};

/// A response with one record of every type the probe presents, plus an unknown one and OPT.
fn rich_response() -> Vec<u8> {
    let mut soa = vec![2, b'n', b's', 0xC0, 12, 0xC0, 12];
    for n in [1u32, 2, 3, 4, 5] {
        soa.extend_from_slice(&n.to_be_bytes());
    }
    let answers = [
        record(1, 1, &[192, 0, 2, 1]),
        record(
            28,
            2,
            &[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        ),
        record(5, 3, &[3, b'w', b'w', b'w', 0xC0, 12]),
        record(2, 4, &[0xC0, 12]),
        record(12, 5, &[0xC0, 12]),
        record(15, 6, &[0, 10, 0xC0, 12]),
        record(16, 7, b"\x03abc\x00"),
        record(6, 8, &soa),
        record(33, 9, &[0, 1, 0, 2, 0, 80, 0xC0, 12]),
        record(65, 10, &[0, 1, 0]),
    ];
    let opt = [0u8, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0];
    let mut records: Vec<&[u8]> = answers.iter().map(Vec::as_slice).collect();
    records.push(&opt);
    response_counts(0x4242, 0x8580, &question(28), &records, [10, 0, 1])
}

fn decode(bytes: &[u8]) -> Result<Message, wire::DecodeError> {
    wire::decode_rest(bytes, wire::decode_front(bytes)?, 256)
}

#[test]
fn every_known_type_is_presented() {
    let bytes = rich_response();
    let message = decode(&bytes).unwrap();
    let r = response(&bytes, &message);
    assert_eq!((r.rcode, r.flags), (0, 0x8580));
    let data: Vec<&str> = r.answers.iter().map(|a| a.data.as_str()).collect();
    assert_eq!(
        data,
        [
            "192.0.2.1",
            "2001:db8::1",
            "www.dual.lab.",
            "dual.lab.",
            "dual.lab.",
            "10 dual.lab.",
            "\"abc\" \"\"",
            "ns.dual.lab. dual.lab. 1 2 3 4 5",
            "1 2 80 dual.lab.",
            "\\# 3 000100",
        ]
    );
    assert!(r.answers.iter().all(|a| a.name == "dual.lab"));
    let result = DnsResult {
        query_name: "dual.lab".into(),
        query_type: 28,
        transport_used: DnsTransport::Udp,
        rtt_ns: Some(1_500_000),
        response: Some(r),
        failure: None,
    };
    assert_eq!(result.validate(), Ok(()));
    let text = render(&result);
    assert!(
        text.contains("NOERROR, flags: qr aa rd ra; 10 answers"),
        "{text}"
    );
    assert!(
        text.contains("dual.lab\t2\tIN\tAAAA\t2001:db8::1"),
        "{text}"
    );
}

/// Thousands of mutated responses (cut, bytes overwritten, pointers planted): decoding and
/// presentation must never panic, and whatever decodes must make a valid result.
#[test]
fn mutated_responses_never_panic() {
    let template = rich_response();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut decoded = 0;
    for round in 0..5000 {
        let mut bytes = template.clone();
        for _ in 0..(1 + next() % 4) {
            let at = (next() as usize) % bytes.len().max(1);
            match next() % 4 {
                0 => bytes.truncate(at),
                1 => {
                    if let Some(b) = bytes.get_mut(at) {
                        *b = next() as u8;
                    }
                }
                2 => {
                    // A compression pointer to a random place, possibly forward or into itself.
                    let target = (next() as usize) % (bytes.len() + 8);
                    if at + 1 < bytes.len() {
                        bytes[at] = 0xC0 | ((target >> 8) as u8 & 0x3F);
                        bytes[at + 1] = target as u8;
                    }
                }
                _ => bytes.insert(at.min(bytes.len()), next() as u8),
            }
        }
        if round % 7 == 0 {
            // Random lengths in the counts.
            if let Some(b) = bytes.get_mut(7) {
                *b = next() as u8;
            }
        }
        if let Ok(message) = decode(&bytes) {
            decoded += 1;
            let r = response(&bytes, &message);
            let result = DnsResult {
                query_name: "dual.lab".into(),
                query_type: 28,
                transport_used: DnsTransport::Udp,
                rtt_ns: None,
                response: Some(r),
                failure: None,
            };
            assert_eq!(result.validate(), Ok(()), "round {round}");
        }
    }
    assert!(decoded > 100, "only {decoded} mutated responses decoded");
}

#[test]
fn random_bytes_never_panic() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let len = (next() % 600) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if bytes.len() > 3 {
            bytes[2] |= 0x80;
        }
        if let Ok(message) = decode(&bytes) {
            let _ = response(&bytes, &message);
        }
    }
}

#[test]
fn rcodes_have_names() {
    assert_eq!(rcode_name(3), "NXDOMAIN");
    assert_eq!(rcode_name(19), "RCODE19");
}
