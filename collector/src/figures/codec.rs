//! Varints for the compact figure rows: LEB128 for unsigned, zigzag for signed.

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(pub &'static str);

pub fn put_u64(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub fn put_i64(out: &mut Vec<u8>, value: i64) {
    put_u64(out, ((value << 1) ^ (value >> 63)) as u64);
}

#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub fn u8(&mut self) -> Result<u8, CodecError> {
        let (first, rest) = self
            .bytes
            .split_first()
            .ok_or(CodecError("row ends early"))?;
        self.bytes = rest;
        Ok(*first)
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.bytes.len() < n {
            return Err(CodecError("row ends early"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    pub fn u64(&mut self) -> Result<u64, CodecError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(CodecError("varint longer than 10 bytes"))
    }

    pub fn i64(&mut self) -> Result<i64, CodecError> {
        let raw = self.u64()?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_truncation_is_an_error() {
        let values = [0i64, 1, -1, 63, -64, 1 << 40, i64::MIN, i64::MAX];
        let mut out = Vec::new();
        for v in values {
            put_i64(&mut out, v);
            put_u64(&mut out, v as u64);
        }
        let mut r = Reader::new(&out);
        for v in values {
            assert_eq!(r.i64().unwrap(), v);
            assert_eq!(r.u64().unwrap(), v as u64);
        }
        assert!(r.is_empty());
        assert!(Reader::new(&[0x80]).u64().is_err());
        assert!(Reader::new(&[0xff; 11]).u64().is_err());
    }
}
