//! The Internet checksum (RFC 1071) over IPv6's pseudo-header (RFC 8200 §8.1), and the
//! word pairs that keep it constant while a probe's identifier changes.

use std::net::Ipv6Addr;

/// Ones'-complement sum of `bytes` as big-endian 16-bit words (an odd last byte is padded
/// with zero), not yet folded. A `u64` accumulator cannot overflow for any packet we handle.
pub fn sum(bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(2);
    let mut total: u64 = chunks
        .by_ref()
        .map(|pair| u64::from(u16::from_be_bytes([pair[0], pair[1]])))
        .sum();
    if let [last] = chunks.remainder() {
        total += u64::from(*last) << 8;
    }
    total
}

/// Folds carries back in until the sum fits 16 bits.
pub fn fold(mut total: u64) -> u16 {
    while total > 0xffff {
        total = (total & 0xffff) + (total >> 16);
    }
    total as u16
}

/// Sum of the IPv6 pseudo-header for an upper-layer packet of `length` bytes.
pub fn pseudo_header(source: Ipv6Addr, destination: Ipv6Addr, next_header: u8, length: u32) -> u64 {
    sum(&source.octets())
        + sum(&destination.octets())
        + u64::from(length >> 16)
        + u64::from(length & 0xffff)
        + u64::from(next_header)
}

/// The checksum field value for `segment` (whose own checksum field must be zero).
pub fn transport(source: Ipv6Addr, destination: Ipv6Addr, next_header: u8, segment: &[u8]) -> u16 {
    let length = u32::try_from(segment.len()).unwrap_or(u32::MAX);
    !fold(pseudo_header(source, destination, next_header, length) + sum(segment))
}

/// Whether `segment` (checksum field included) carries a valid checksum.
pub fn verify(source: Ipv6Addr, destination: Ipv6Addr, next_header: u8, segment: &[u8]) -> bool {
    let length = u32::try_from(segment.len()).unwrap_or(u32::MAX);
    fold(pseudo_header(source, destination, next_header, length) + sum(segment)) == 0xffff
}

/// The word that, placed beside `word`, makes the pair add up to 0xffff whatever `word` is:
/// its bitwise complement. A probe carries its identifier and this companion, so the
/// transport checksum of every probe of a flow is the same (Paris traceroute's rule).
pub fn companion(word: u16) -> u16 {
    !word
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&bytes)), 0xddf2);
        assert_eq!(fold(sum(&[0xff])), 0xff00);
    }

    #[test]
    fn a_word_and_its_companion_never_change_the_sum() {
        let base = sum(&[0x12, 0x34, 0xab, 0xcd]);
        let reference = fold(base + u64::from(companion(0)));
        for word in [1u16, 2, 0x7fff, 0x8000, 0xfffe, 0xffff] {
            assert_eq!(
                fold(base + u64::from(word) + u64::from(companion(word))),
                reference
            );
        }
    }

    #[test]
    fn checksum_verifies() {
        let source: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let destination: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let mut segment = vec![1, 2, 3, 4, 0, 8, 0, 0, 9];
        let value = transport(source, destination, 17, &segment);
        segment[6..8].copy_from_slice(&value.to_be_bytes());
        assert!(verify(source, destination, 17, &segment));
        segment[8] ^= 1;
        assert!(!verify(source, destination, 17, &segment));
    }
}
