//! Subject, issuer and validity of a DER certificate: the four fields a chain summary shows.
//!
//! A small DER reader instead of a full X.509 crate: webpki already verifies the chain, so
//! all that is left is to read three fields of `TBSCertificate`, and x509-parser or
//! x509-cert would bring a dozen crates (nom, asn1-rs, derive macros) to a probe that builds
//! on a Raspberry Pi. Certificates come from the server, so every read is bounds-checked and
//! anything unexpected gives `None`, never a panic.

use sixmap_shared::UnixMicros;
use sixmap_shared::measurement::CertificateSummary;

/// Longest subject or issuer kept (the result allows 4096 bytes).
const MAX_NAME: usize = 1024;

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// The summary of one certificate; one that cannot be read still takes its place in the
/// chain, saying so.
pub fn summary(der: &[u8]) -> CertificateSummary {
    parse(der).unwrap_or_else(|| CertificateSummary {
        subject: format!("(unreadable certificate, {} bytes)", der.len()),
        issuer: String::new(),
        not_before: None,
        not_after: None,
    })
}

fn parse(der: &[u8]) -> Option<CertificateSummary> {
    let (certificate, _) = expect(der, SEQUENCE)?;
    let (tbs, _) = expect(certificate, SEQUENCE)?;
    let mut rest = tbs;
    if rest.first() == Some(&VERSION) {
        rest = tlv(rest)?.2;
    }
    let (_serial, rest) = expect(rest, INTEGER)?;
    let (_signature, rest) = expect(rest, SEQUENCE)?;
    let (issuer, rest) = expect(rest, SEQUENCE)?;
    let (validity, rest) = expect(rest, SEQUENCE)?;
    let (subject, _) = expect(rest, SEQUENCE)?;
    let (not_before, after) = time(validity)?;
    let (not_after, _) = time(after)?;
    Some(CertificateSummary {
        subject: name(subject)?,
        issuer: name(issuer)?,
        not_before,
        not_after,
    })
}

/// One tag-length-value: (tag, content, what follows). Single-byte tags and definite
/// lengths only, as DER requires of everything read here.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81..=0x84 => {
            let count = usize::from(first & 0x7f);
            let bytes = rest.get(..count)?;
            let len = bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, rest.get(count..)?)
        }
        _ => return None,
    };
    Some((tag, rest.get(..len)?, rest.get(len..)?))
}

fn expect(input: &[u8], want: u8) -> Option<(&[u8], &[u8])> {
    let (tag, content, rest) = tlv(input)?;
    (tag == want).then_some((content, rest))
}

/// A `Time` (UTCTime or GeneralizedTime, both in UTC as RFC 5280 requires).
fn time(input: &[u8]) -> Option<(Option<UnixMicros>, &[u8])> {
    let (tag, content, rest) = tlv(input)?;
    let text = std::str::from_utf8(content).ok()?;
    let seconds = match tag {
        UTC_TIME => {
            let yy: i64 = digits(text, 0, 2)?;
            // RFC 5280 4.1.2.5.1: YY >= 50 is 19YY.
            let year = if yy >= 50 { 1900 + yy } else { 2000 + yy };
            timestamp(year, text.get(2..)?)
        }
        GENERALIZED_TIME => timestamp(digits(text, 0, 4)?, text.get(4..)?),
        _ => return None,
    };
    Some((
        seconds.map(|s| UnixMicros(s.saturating_mul(1_000_000))),
        rest,
    ))
}

/// `MMDDHHMMSSZ` after the year, to seconds since the epoch.
fn timestamp(year: i64, text: &str) -> Option<i64> {
    if text.len() != 11 || !text.ends_with('Z') {
        return None;
    }
    let month = digits(text, 0, 2)?;
    let day = digits(text, 2, 2)?;
    let hour = digits(text, 4, 2)?;
    let minute = digits(text, 6, 2)?;
    let second = digits(text, 8, 2)?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

fn digits(text: &str, at: usize, len: usize) -> Option<i64> {
    let part = text.get(at..at + len)?;
    if !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `2026-11-23T17:14:10Z`, for people reading a chain summary.
pub fn iso8601(time: UnixMicros) -> String {
    let seconds = time.0.div_euclid(1_000_000);
    let (days, of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A `Name` in the certificate's order with OpenSSL's short attribute names, e.g.
/// `C=US, O=Let's Encrypt, CN=R3`; several values of one RDN are joined with `+`.
fn name(input: &[u8]) -> Option<String> {
    let mut rdns = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let (set, after) = expect(rest, SET)?;
        rest = after;
        let mut values = Vec::new();
        let mut inner = set;
        while !inner.is_empty() {
            let (pair, after) = expect(inner, SEQUENCE)?;
            inner = after;
            let (oid, value) = expect(pair, OID)?;
            let (tag, value, _) = tlv(value)?;
            values.push(format!(
                "{}={}",
                attribute(oid),
                escape(&string_value(tag, value))
            ));
        }
        rdns.push(values.join("+"));
    }
    let mut text = rdns.join(", ");
    if text.len() > MAX_NAME {
        let mut end = MAX_NAME;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    Some(text)
}

fn attribute(oid: &[u8]) -> String {
    let short = match oid {
        [0x55, 0x04, 0x03] => "CN",
        [0x55, 0x04, 0x04] => "SN",
        [0x55, 0x04, 0x05] => "serialNumber",
        [0x55, 0x04, 0x06] => "C",
        [0x55, 0x04, 0x07] => "L",
        [0x55, 0x04, 0x08] => "ST",
        [0x55, 0x04, 0x09] => "street",
        [0x55, 0x04, 0x0a] => "O",
        [0x55, 0x04, 0x0b] => "OU",
        [0x55, 0x04, 0x0f] => "businessCategory",
        [0x55, 0x04, 0x2a] => "GN",
        [0x55, 0x04, 0x61] => "organizationIdentifier",
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC",
        [
            0x2b,
            0x06,
            0x01,
            0x04,
            0x01,
            0x82,
            0x37,
            0x3c,
            0x02,
            0x01,
            0x03,
        ] => "jurisdictionC",
        _ => return dotted(oid),
    };
    short.to_owned()
}

/// An OID in dotted form, for attributes without a short name.
fn dotted(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for &byte in oid {
        value = value.saturating_mul(128) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// The text of a directory string; other types as `#` and hex, as RFC 4514 does.
fn string_value(tag: u8, value: &[u8]) -> String {
    match tag {
        // UTF8String, PrintableString, IA5String, VisibleString, NumericString.
        0x0c | 0x13 | 0x16 | 0x1a | 0x12 => String::from_utf8_lossy(value).into_owned(),
        // TeletexString: in practice Latin-1.
        0x14 => value.iter().map(|&b| char::from(b)).collect(),
        // BMPString: UTF-16BE.
        0x1e => {
            let units: Vec<u16> = value
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        // UniversalString: UTF-32BE.
        0x1c => value
            .chunks_exact(4)
            .map(|c| {
                char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .unwrap_or(char::REPLACEMENT_CHARACTER)
            })
            .collect(),
        _ => {
            let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
            format!("#{hex}")
        }
    }
}

/// Escapes what would make the joined name ambiguous (RFC 4514 specials) and control
/// characters.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn reads_subject_issuer_and_validity_as_openssl_shows_them() {
        // openssl x509 -noout -subject -issuer -dates of the fixtures.
        let leaf = summary(&der(include_str!("testdata/leaf.pem")));
        assert_eq!(leaf.subject, "CN=fixture.test");
        assert_eq!(leaf.issuer, "C=DE, O=sixmap test, CN=sixmap test CA");
        // 2026-11-23 17:14:10Z as UTCTime, 2126-10-30 17:14:10Z as GeneralizedTime.
        assert_eq!(leaf.not_before, Some(UnixMicros(1_795_454_050_000_000)));
        assert_eq!(leaf.not_after, Some(UnixMicros(4_949_054_050_000_000)));
        let ca = summary(&der(include_str!("testdata/ca.pem")));
        assert_eq!(ca.subject, ca.issuer);
        assert_eq!(ca.subject, "C=DE, O=sixmap test, CN=sixmap test CA");
    }

    #[test]
    fn damaged_certificates_are_named_not_panicked_on() {
        let good = der(include_str!("testdata/leaf.pem"));
        for cut in 0..good.len() {
            let s = summary(&good[..cut]);
            assert!(s.subject.starts_with("(unreadable"), "{cut}: {s:?}");
        }
        let mut flipped = good.clone();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = summary(&flipped);
            flipped[i] ^= 0xff;
        }
        // Lengths far beyond the input, indefinite and 8-byte lengths.
        for bad in [
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff][..],
            &[0x30, 0x80, 0x00, 0x00],
            &[0x30, 0x88, 1, 2, 3, 4, 5, 6, 7, 8],
            &[0x1f, 0x01, 0x00],
        ] {
            assert!(parse(bad).is_none());
        }
    }

    #[test]
    fn names_escape_specials_and_decode_string_types() {
        assert_eq!(escape("a,b+c=d"), "a\\,b\\+c\\=d");
        assert_eq!(escape("x\ny"), "x\\0ay");
        assert_eq!(string_value(0x1e, &[0x00, 0x41, 0x00, 0xe9]), "Aé");
        assert_eq!(string_value(0x04, &[0xde, 0xad]), "#dead");
        assert_eq!(
            dotted(&[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37]),
            "1.3.6.1.4.1.311"
        );
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(
            iso8601(UnixMicros(4_949_054_050_000_000)),
            "2126-10-30T17:14:10Z"
        );
        assert_eq!(iso8601(UnixMicros(-1)), "1969-12-31T23:59:59Z");
        assert_eq!(
            time(&[
                0x17, 13, b'5', b'0', b'0', b'1', b'0', b'1', b'0', b'0', b'0', b'0', b'0', b'0',
                b'Z'
            ])
            .map(|t| t.0),
            Some(Some(UnixMicros(-631_152_000_000_000)))
        );
    }
}
