//! HMAC-SHA256 (RFC 2104) on `ring`'s SHA-256, the hash the collector already links: the
//! webhook signature. Written out (thirty lines) rather than taken from a crate so the
//! construction is visible next to its RFC 4231 test vectors.

use ring::digest::{Context, SHA256};

/// SHA-256's block size in bytes (RFC 2104's B).
const BLOCK: usize = 64;

/// HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // Keys longer than a block are hashed first; shorter ones are padded with zeros.
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(ring::digest::digest(&SHA256, key).as_ref());
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|k| k ^ byte);
    let mut inner = Context::new(&SHA256);
    inner.update(&pad(0x36));
    inner.update(message);
    let inner = inner.finish();
    let mut outer = Context::new(&SHA256);
    outer.update(&pad(0x5c));
    outer.update(inner.as_ref());
    let mut out = [0u8; 32];
    out.copy_from_slice(outer.finish().as_ref());
    out
}

/// The `X-Sixmap-Signature` header value: `sha256=` and the lowercase hex HMAC of
/// `timestamp` ‖ `.` ‖ `body`, so a captured body cannot be replayed under another time.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut signed = Vec::with_capacity(body.len() + 24);
    signed.extend_from_slice(timestamp.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    format!(
        "sha256={}",
        sixmap_shared::digest::hex_lower(&hmac_sha256(secret, &signed))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        sixmap_shared::digest::hex_lower(bytes)
    }

    /// RFC 4231 section 4, test cases 1–4, 6 and 7 (case 5 truncates the output).
    #[test]
    fn rfc4231_vectors() {
        let cases: [(Vec<u8>, Vec<u8>, &str); 6] = [
            (
                vec![0x0b; 20],
                b"Hi There".to_vec(),
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                vec![0xaa; 20],
                vec![0xdd; 50],
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            ),
            (
                (1..=25).collect(),
                vec![0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                vec![0xaa; 131],
                b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".to_vec(),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (key, data, expected) in cases {
            assert_eq!(hex(&hmac_sha256(&key, &data)), expected, "key {key:02x?}");
        }
    }

    #[test]
    fn agrees_with_ring_hmac_at_every_key_length_around_the_block() {
        for len in [0, 1, 63, 64, 65, 200] {
            let key = vec![0x5a; len];
            let reference = ring::hmac::sign(
                &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key),
                b"body",
            );
            assert_eq!(
                hmac_sha256(&key, b"body"),
                reference.as_ref(),
                "key length {len}"
            );
        }
    }

    #[test]
    fn signature_covers_the_timestamp() {
        let a = signature(b"secret", 1, b"{}");
        assert!(a.starts_with("sha256=") && a.len() == 7 + 64);
        assert_ne!(a, signature(b"secret", 2, b"{}"));
        assert_ne!(a, signature(b"other", 1, b"{}"));
    }
}
