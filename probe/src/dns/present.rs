//! Presentation format (RFC 1035 5.1, RFC 3597 for unknown types) of names and RDATA.
//!
//! Known types whose RDATA does not parse exactly (short, trailing bytes, bad name) fall back
//! to the generic `\# len hex` form: the bytes are reported as they came, never guessed at.

use super::wire::{DecodeError, Name, Reader};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

/// Longest presentation text a result may carry (`DnsResult::validate`).
pub const MAX_TEXT: usize = 4096;
/// Longest owner name a result may carry.
pub const MAX_NAME: usize = 255;

/// A name without the trailing dot (root: "."), as the spec writes query names.
pub fn owner(name: &Name) -> String {
    let text = dotted(name);
    clip(if text.is_empty() { ".".into() } else { text }, MAX_NAME)
}

/// A fully qualified name as zone files write it: with the trailing dot.
fn absolute(name: &Name) -> String {
    format!("{}.", dotted(name))
}

fn dotted(name: &Name) -> String {
    let mut out = String::new();
    for (i, label) in name.0.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        for &b in label {
            match b {
                b'.' | b'\\' => {
                    out.push('\\');
                    out.push(char::from(b));
                }
                0x21..=0x7E => out.push(char::from(b)),
                _ => {
                    let _ = write!(out, "\\{b:03}");
                }
            }
        }
    }
    out
}

/// Cuts ASCII text to at most `max` bytes (presentation text is always ASCII).
fn clip(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The RDATA of a record at `range` in `msg`, in presentation format.
pub fn rdata(msg: &[u8], rtype: u16, range: Range<usize>) -> String {
    let known = known(msg, rtype, range.clone());
    let text = known.unwrap_or_else(|| generic(msg.get(range).unwrap_or_default()));
    clip(text, MAX_TEXT)
}

/// RFC 3597: `\# <length> <hex>`.
fn generic(bytes: &[u8]) -> String {
    let mut out = format!("\\# {}", bytes.len());
    if !bytes.is_empty() {
        out.push(' ');
        for b in bytes {
            let _ = write!(out, "{b:02X}");
        }
    }
    out
}

fn known(msg: &[u8], rtype: u16, range: Range<usize>) -> Option<String> {
    let bytes = msg.get(range.clone())?;
    // Names inside RDATA may point anywhere before them; the reader must still end exactly
    // at the end of the RDATA.
    let mut r = Reader {
        msg: msg.get(..range.end)?,
        pos: range.start,
    };
    let text = match rtype {
        1 => Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?).to_string(),
        28 => Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?).to_string(),
        2 | 5 | 12 => absolute(&r.name().ok()?),
        15 => {
            let preference = r.u16("MX").ok()?;
            format!("{preference} {}", absolute(&r.name().ok()?))
        }
        16 => txt(&mut r).ok()?,
        6 => {
            let mname = absolute(&r.name().ok()?);
            let rname = absolute(&r.name().ok()?);
            let mut numbers = [0u32; 5];
            for n in &mut numbers {
                *n = r.u32("SOA").ok()?;
            }
            let [serial, refresh, retry, expire, minimum] = numbers;
            format!("{mname} {rname} {serial} {refresh} {retry} {expire} {minimum}")
        }
        33 => {
            let priority = r.u16("SRV").ok()?;
            let weight = r.u16("SRV").ok()?;
            let port = r.u16("SRV").ok()?;
            format!("{priority} {weight} {port} {}", absolute(&r.name().ok()?))
        }
        _ => return None,
    };
    (r.pos == range.end || matches!(rtype, 1 | 28)).then_some(text)
}

/// One or more character-strings, each quoted.
fn txt(r: &mut Reader<'_>) -> Result<String, DecodeError> {
    let mut parts = Vec::new();
    while r.pos < r.msg.len() {
        let len = usize::from(r.u8("TXT")?);
        let mut part = String::from("\"");
        for &b in r.bytes(len, "TXT")? {
            match b {
                b'"' | b'\\' => {
                    part.push('\\');
                    part.push(char::from(b));
                }
                0x20..=0x7E => part.push(char::from(b)),
                _ => {
                    let _ = write!(part, "\\{b:03}");
                }
            }
        }
        part.push('"');
        parts.push(part);
    }
    if parts.is_empty() {
        return Err(DecodeError::Truncated("TXT"));
    }
    Ok(parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message of 12 filler bytes and "dual.lab" at 12, then `rdata`.
    fn with_rdata(rdata: &[u8]) -> (Vec<u8>, Range<usize>) {
        let mut msg = vec![0u8; 12];
        msg.extend_from_slice(b"\x04dual\x03lab\x00");
        let start = msg.len();
        msg.extend_from_slice(rdata);
        let end = msg.len();
        (msg, start..end)
    }

    fn show(rtype: u16, rdata: &[u8]) -> String {
        let (msg, range) = with_rdata(rdata);
        super::rdata(&msg, rtype, range)
    }

    #[test]
    fn known_types() {
        assert_eq!(show(1, &[192, 0, 2, 1]), "192.0.2.1");
        let mut v6 = [0u8; 16];
        v6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        v6[15] = 1;
        assert_eq!(show(28, &v6), "2001:db8::1");
        assert_eq!(show(5, &[3, b'w', b'w', b'w', 0xC0, 12]), "www.dual.lab.");
        assert_eq!(show(2, &[0xC0, 12]), "dual.lab.");
        assert_eq!(show(12, &[0]), ".");
        assert_eq!(show(15, &[0, 10, 0xC0, 12]), "10 dual.lab.");
        assert_eq!(
            show(33, &[0, 1, 0, 2, 0x01, 0xbb, 0xC0, 12]),
            "1 2 443 dual.lab."
        );
        let mut soa = vec![2, b'n', b's', 0xC0, 12, 0xC0, 12];
        for n in [2026u32, 3600, 600, 86400, 60] {
            soa.extend_from_slice(&n.to_be_bytes());
        }
        assert_eq!(
            show(6, &soa),
            "ns.dual.lab. dual.lab. 2026 3600 600 86400 60"
        );
        assert_eq!(
            show(16, b"\x05hello\x07a \"b\" \\\x01\x01\x00"),
            r#""hello" "a \"b\" \\" "\001" """#
        );
    }

    #[test]
    fn unknown_and_malformed_rdata_is_generic() {
        assert_eq!(show(99, &[0xde, 0xad]), "\\# 2 DEAD");
        assert_eq!(show(99, &[]), "\\# 0");
        assert_eq!(show(1, &[1, 2, 3]), "\\# 3 010203");
        // A name with trailing bytes, a name running past the RDATA, an empty TXT.
        assert_eq!(show(5, &[0xC0, 12, 7]), "\\# 3 C00C07");
        assert_eq!(show(2, &[3, b'w', b'w']), "\\# 3 037777");
        assert_eq!(show(16, &[]), "\\# 0");
        assert_eq!(show(16, &[5, b'a']), "\\# 2 0561");
    }

    #[test]
    fn names_escape_odd_bytes_and_results_stay_bounded() {
        let name = Name(vec![b"a.b".to_vec(), b"c\\".to_vec(), vec![0, 0xff, b' ']]);
        assert_eq!(owner(&name), "a\\.b.c\\\\.\\000\\255\\032");
        assert_eq!(owner(&Name::default()), ".");
        let long = Name(vec![vec![0u8; 63]; 4]);
        assert_eq!(owner(&long).len(), MAX_NAME);
        let big = vec![0xabu8; 5000];
        assert_eq!(show(99, &big).len(), MAX_TEXT);
    }
}
