//! Digests both sides of the protocol must compute alike: enrollment tokens carry the
//! collector CA's fingerprint, and the collector stores tokens by their hash.

/// Lowercase hex SHA-256 of `bytes`: certificate fingerprints and token hashes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex_lower(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// Lowercase hex of `bytes`, two digits per byte.
pub fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Whether `text` is exactly `len` lowercase hex digits.
pub fn is_hex_lower(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_the_empty_string() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn hex_checks_length_and_case() {
        assert_eq!(hex_lower(&[0x00, 0xab, 0xff]), "00abff");
        assert!(is_hex_lower("00abff", 6));
        assert!(!is_hex_lower("00ABFF", 6));
        assert!(!is_hex_lower("00abf", 6));
    }
}
