//! A DNS wire-format response rebuilt from a stored DNS result, for the Atlas `abuf`.
//!
//! Our results keep the answer as text (RDATA in presentation format, as the probe decoded
//! it), so the message is re-encoded: ID 0 (the probe does not keep it), the stored header
//! flags with QR set and the low four bits of the rcode, one question, the answers without
//! name compression. RDATA is encoded for A, AAAA, NS, CNAME, PTR, MX, TXT and the RFC 3597
//! generic form (`\# len hex`); an answer of another type, or whose text does not parse, is
//! left out and counted in the return value (`docs/export.md`).

use sixmap_shared::measurement::{DnsRecord, DnsResult};
use std::net::{Ipv4Addr, Ipv6Addr};

/// The response message and how many answers could not be encoded; `None` without a
/// response.
pub fn response_message(result: &DnsResult) -> Option<(Vec<u8>, usize, u16)> {
    let response = result.response.as_ref()?;
    let mut answers = Vec::new();
    let mut left_out = 0;
    let mut count: u16 = 0;
    for record in &response.answers {
        match encode_record(record) {
            Some(bytes) if count < u16::MAX => {
                answers.extend_from_slice(&bytes);
                count += 1;
            }
            _ => left_out += 1,
        }
    }
    let mut m = Vec::with_capacity(512);
    m.extend_from_slice(&0u16.to_be_bytes());
    let flags = (response.flags & 0xfff0) | 0x8000 | (response.rcode & 0x000f);
    m.extend_from_slice(&flags.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m.extend_from_slice(&count.to_be_bytes());
    m.extend_from_slice(&0u16.to_be_bytes());
    m.extend_from_slice(&0u16.to_be_bytes());
    m.extend_from_slice(&encode_name(&result.query_name)?);
    m.extend_from_slice(&result.query_type.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m.extend_from_slice(&answers);
    Some((m, left_out, count))
}

fn encode_record(record: &DnsRecord) -> Option<Vec<u8>> {
    let rdata = encode_rdata(record.record_type, &record.data)?;
    let mut out = encode_name(&record.name)?;
    out.extend_from_slice(&record.record_type.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&record.ttl.to_be_bytes());
    out.extend_from_slice(&u16::try_from(rdata.len()).ok()?.to_be_bytes());
    out.extend_from_slice(&rdata);
    Some(out)
}

fn encode_rdata(record_type: u16, data: &str) -> Option<Vec<u8>> {
    if let Some(generic) = data.strip_prefix("\\# ") {
        return generic_rdata(generic);
    }
    match record_type {
        1 => Some(data.parse::<Ipv4Addr>().ok()?.octets().to_vec()),
        28 => Some(data.parse::<Ipv6Addr>().ok()?.octets().to_vec()),
        2 | 5 | 12 => encode_name(data),
        15 => {
            let (preference, exchange) = data.split_once(' ')?;
            let mut out = preference.parse::<u16>().ok()?.to_be_bytes().to_vec();
            out.extend_from_slice(&encode_name(exchange)?);
            Some(out)
        }
        16 => encode_txt(data),
        _ => None,
    }
}

/// RFC 3597: `len hex…` (hex possibly split by spaces).
fn generic_rdata(text: &str) -> Option<Vec<u8>> {
    let (len, hex) = text.split_once(' ').unwrap_or((text, ""));
    let len: usize = len.parse().ok()?;
    let hex: String = hex.chars().filter(|c| !c.is_whitespace()).collect();
    if hex.len() != len * 2 {
        return None;
    }
    (0..len)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// Reads one character of presentation text, resolving `\X` and `\DDD`.
fn unescape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<(u8, bool)> {
    let c = chars.next()?;
    if c != '\\' {
        return u8::try_from(u32::from(c)).ok().map(|b| (b, false));
    }
    let first = chars.next()?;
    if first.is_ascii_digit() {
        let d2 = chars.next()?.to_digit(10)?;
        let d3 = chars.next()?.to_digit(10)?;
        let value = first.to_digit(10)? * 100 + d2 * 10 + d3;
        return u8::try_from(value).ok().map(|b| (b, true));
    }
    u8::try_from(u32::from(first)).ok().map(|b| (b, true))
}

/// Standard base64 with padding (RFC 4648), as Atlas writes `abuf`.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A presentation-format name (`www.example.org.`, escapes allowed) as wire labels.
pub fn encode_name(name: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(name.len() + 2);
    let mut label = Vec::new();
    let mut chars = name.chars().peekable();
    while chars.peek().is_some() {
        let (b, escaped) = unescape(&mut chars)?;
        if b == b'.' && !escaped {
            if label.is_empty() {
                // Only the root may be empty, and only as the whole name.
                if name == "." {
                    break;
                }
                return None;
            }
            out.push(u8::try_from(label.len()).ok().filter(|l| *l <= 63)?);
            out.append(&mut label);
        } else {
            label.push(b);
        }
    }
    if !label.is_empty() {
        out.push(u8::try_from(label.len()).ok().filter(|l| *l <= 63)?);
        out.append(&mut label);
    }
    out.push(0);
    (out.len() <= 255).then_some(out)
}

/// TXT presentation (`"part one" "part two"`) as character-strings.
fn encode_txt(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        match chars.next() {
            None => break,
            Some('"') => {}
            Some(_) => return None,
        }
        let mut part = Vec::new();
        loop {
            if chars.peek() == Some(&'"') {
                chars.next();
                break;
            }
            let (b, _) = unescape(&mut chars)?;
            part.push(b);
        }
        out.push(u8::try_from(part.len()).ok()?);
        out.extend_from_slice(&part);
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn names_encode_with_escapes() {
        assert_eq!(
            encode_name("a.bc.").unwrap(),
            vec![1, b'a', 2, b'b', b'c', 0]
        );
        assert_eq!(encode_name("a\\.b.").unwrap(), vec![3, b'a', b'.', b'b', 0]);
        assert_eq!(encode_name("\\065.").unwrap(), vec![1, b'A', 0]);
        assert_eq!(encode_name(".").unwrap(), vec![0]);
        assert!(encode_name("a..b").is_none());
    }

    #[test]
    fn rdata_of_known_types() {
        assert_eq!(encode_rdata(1, "192.0.2.1").unwrap(), vec![192, 0, 2, 1]);
        assert_eq!(encode_rdata(28, "2001:db8::1").unwrap().len(), 16);
        assert_eq!(
            encode_rdata(16, "\"a b\" \"\\\"\"").unwrap(),
            vec![3, b'a', b' ', b'b', 1, b'"']
        );
        assert_eq!(encode_rdata(99, "\\# 2 ab cd").unwrap(), vec![0xab, 0xcd]);
        assert!(encode_rdata(99, "something").is_none());
        assert!(encode_rdata(1, "not an address").is_none());
    }
}
