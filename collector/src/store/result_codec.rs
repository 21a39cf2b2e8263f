//! How the sled store keeps a result: keys that sort by start time, and a compact value.
//!
//! Row key: start time (8 bytes, big-endian with the sign bit flipped so it sorts as
//! unsigned) ‖ result key (probe id as its 16 hex digits, boot epoch and sequence as 8 bytes
//! big-endian each): 40 bytes, in the order query pages, exports and cursors use.
//!
//! Value ([`FORMAT_PROTO`]): the format byte; one byte saying which enrichments follow; each
//! enrichment as a byte of present fields, the ASN (4 bytes), the country (2 ASCII letters)
//! and the AS name (LEB128 length, UTF-8); then the result's protobuf bytes without key and
//! start time (`sixmap_proto::encode::stored_result`), which the row key holds. The protobuf
//! is the probe's own wire form, so a result read back is exactly what the probe measured.

use super::{StoreError, StoredResult};
use sixmap_shared::prefixes::Enrichment;
use sixmap_shared::{ProbeId, ResultKey, UnixMicros};

/// Values written before the compact layout: JSON of a `StoredResult` (read by the migration).
pub(super) use super::sled_db::FORMAT_JSON;
/// The compact value described in the module doc.
pub(super) const FORMAT_PROTO: u8 = 2;

pub(super) const RESULT_KEY_LEN: usize = 16 + 8 + 8;
pub(super) const ROW_KEY_LEN: usize = 8 + RESULT_KEY_LEN;

const PROBE_ORIGIN: u8 = 1;
const TARGET_ORIGIN: u8 = 2;
/// A fault attribution follows the enrichments: its length (varint) and its JSON (rare
/// results, and a form that can grow).
const BLAME: u8 = 4;
const HAS_ASN: u8 = 1;
const HAS_COUNTRY: u8 = 2;
const HAS_NAME: u8 = 4;

/// A start time as bytes that sort like the time.
pub(super) fn time_bytes(t: UnixMicros) -> [u8; 8] {
    ((t.0 as u64) ^ (1 << 63)).to_be_bytes()
}

fn time_from(bytes: [u8; 8]) -> UnixMicros {
    UnixMicros((u64::from_be_bytes(bytes) ^ (1 << 63)) as i64)
}

pub(super) fn result_key_bytes(key: &ResultKey) -> [u8; RESULT_KEY_LEN] {
    let mut bytes = [0u8; RESULT_KEY_LEN];
    let probe = key.probe_id.as_str().as_bytes();
    // Probe ids are 16 ASCII hex digits by construction.
    let n = probe.len().min(16);
    bytes[..n].copy_from_slice(&probe[..n]);
    bytes[16..24].copy_from_slice(&key.boot_epoch.to_be_bytes());
    bytes[24..].copy_from_slice(&key.sequence.to_be_bytes());
    bytes
}

#[cfg(test)]
pub(super) fn row_key(started_at: UnixMicros, key: &ResultKey) -> [u8; ROW_KEY_LEN] {
    let mut bytes = [0u8; ROW_KEY_LEN];
    bytes[..8].copy_from_slice(&time_bytes(started_at));
    bytes[8..].copy_from_slice(&result_key_bytes(key));
    bytes
}

fn corrupt(key: &[u8], reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: reason.into(),
    }
}

pub(super) fn parse_result_key(bytes: &[u8]) -> Result<ResultKey, StoreError> {
    if bytes.len() != RESULT_KEY_LEN {
        return Err(corrupt(
            bytes,
            format!("result key of {} bytes", bytes.len()),
        ));
    }
    let probe = std::str::from_utf8(&bytes[..16])
        .ok()
        .and_then(|text| text.parse::<ProbeId>().ok())
        .ok_or_else(|| corrupt(bytes, "probe id is not 16 hex digits"))?;
    let word = |range: std::ops::Range<usize>| {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&bytes[range]);
        u64::from_be_bytes(raw)
    };
    Ok(ResultKey {
        probe_id: probe,
        boot_epoch: word(16..24),
        sequence: word(24..32),
    })
}

/// A start time stored as a value (the indexes' values).
pub(super) fn parse_time(key: &[u8], bytes: &[u8]) -> Result<UnixMicros, StoreError> {
    <[u8; 8]>::try_from(bytes)
        .map(time_from)
        .map_err(|_| corrupt(key, format!("start time of {} bytes", bytes.len())))
}

/// Start time and result key of a row key.
pub(super) fn parse_row_key(bytes: &[u8]) -> Result<(UnixMicros, ResultKey), StoreError> {
    if bytes.len() != ROW_KEY_LEN {
        return Err(corrupt(bytes, format!("row key of {} bytes", bytes.len())));
    }
    let mut time = [0u8; 8];
    time.copy_from_slice(&bytes[..8]);
    Ok((time_from(time), parse_result_key(&bytes[8..])?))
}

fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_enrichment(out: &mut Vec<u8>, e: &Enrichment) {
    let flags = if e.asn.is_some() { HAS_ASN } else { 0 }
        | if e.country.is_some() { HAS_COUNTRY } else { 0 }
        | if e.as_name.is_some() { HAS_NAME } else { 0 };
    out.push(flags);
    if let Some(asn) = e.asn {
        out.extend_from_slice(&asn.to_be_bytes());
    }
    if let Some(country) = e.country {
        out.extend_from_slice(country.to_string().as_bytes());
    }
    if let Some(name) = &e.as_name {
        put_varint(out, name.len());
        out.extend_from_slice(name.as_bytes());
    }
}

/// The value of a row (see the module doc).
pub(super) fn encode_value(stored: &StoredResult) -> Vec<u8> {
    let proto = sixmap_proto::encode::stored_result(&stored.result);
    let mut out = Vec::with_capacity(proto.len() + 16);
    out.push(FORMAT_PROTO);
    let present = if stored.probe_origin.is_some() {
        PROBE_ORIGIN
    } else {
        0
    } | if stored.target_origin.is_some() {
        TARGET_ORIGIN
    } else {
        0
    };
    // Serialising plain data to JSON cannot fail; a failure would only drop the attribution.
    let blame = stored
        .blame
        .as_ref()
        .and_then(|b| serde_json::to_vec(b).ok());
    let present = present | if blame.is_some() { BLAME } else { 0 };
    out.push(present);
    for e in [&stored.probe_origin, &stored.target_origin]
        .into_iter()
        .flatten()
    {
        put_enrichment(&mut out, e);
    }
    if let Some(blame) = blame {
        put_varint(&mut out, blame.len());
        out.extend_from_slice(&blame);
    }
    out.extend_from_slice(&proto);
    out
}

/// A stored result read but not decoded yet. Decoding is most of what a scan costs, so a
/// scan may hand rows over like this and its caller decode them on threads of its own
/// (`export`); a backend that has nothing to defer hands over results already decoded.
#[derive(Debug)]
pub struct Undecoded(Deferred);

#[derive(Debug)]
enum Deferred {
    Ready(Box<StoredResult>),
    /// A sled row as read: the whole key (with its tree prefix) and the value. `IVec`s share
    /// sled's buffers, so handing a row over copies nothing.
    SledRow {
        key: sled::IVec,
        value: sled::IVec,
    },
    /// A row key and value read from elsewhere (ClickHouse's `raw` column).
    Row {
        row: Vec<u8>,
        value: Vec<u8>,
    },
}

impl Undecoded {
    pub fn ready(stored: StoredResult) -> Self {
        Self(Deferred::Ready(Box::new(stored)))
    }

    /// A row of the results tree: `key` is the tree key, the row key after its prefix byte.
    pub(super) fn sled_row(key: sled::IVec, value: sled::IVec) -> Self {
        Self(Deferred::SledRow { key, value })
    }

    /// A row key ([`ROW_KEY_LEN`] bytes) and its value.
    pub(super) fn row(row: Vec<u8>, value: Vec<u8>) -> Self {
        Self(Deferred::Row { row, value })
    }

    pub fn decode(self) -> Result<StoredResult, StoreError> {
        match self.0 {
            Deferred::Ready(stored) => Ok(*stored),
            Deferred::SledRow { key, value } => {
                decode_value(key.get(1..).unwrap_or_default(), &value)
            }
            Deferred::Row { row, value } => decode_value(&row, &value),
        }
    }
}

/// Runs `scan` over undecoded rows, decoding each for `visit`: a scan of decoded results
/// from one of undecoded rows. The first row that fails to decode ends it with its error.
pub(super) fn decode_each(
    scan: impl FnOnce(&mut dyn FnMut(Undecoded) -> bool) -> Result<(), StoreError>,
    visit: &mut dyn FnMut(StoredResult) -> bool,
) -> Result<(), StoreError> {
    let mut failed = None;
    scan(&mut |row| match row.decode() {
        Ok(stored) => visit(stored),
        Err(e) => {
            failed = Some(e);
            false
        }
    })?;
    failed.map_or(Ok(()), Err)
}

/// Reads a value back; `row` is the row key it was stored under (for its key and start time).
pub(super) fn decode_value(row: &[u8], value: &[u8]) -> Result<StoredResult, StoreError> {
    let (started_at, key) = parse_row_key(row)?;
    let mut reader = Reader {
        bytes: value,
        row,
        at: 0,
    };
    match reader.byte()? {
        FORMAT_PROTO => {}
        FORMAT_JSON => return super::sled_db::decode(row, value),
        other => return Err(corrupt(row, format!("unknown value format {other}"))),
    }
    let present = reader.byte()?;
    let probe_origin = (present & PROBE_ORIGIN != 0)
        .then(|| reader.enrichment())
        .transpose()?;
    let target_origin = (present & TARGET_ORIGIN != 0)
        .then(|| reader.enrichment())
        .transpose()?;
    let blame = if present & BLAME != 0 {
        let len = reader.varint()?;
        let bytes = reader.take(len)?;
        Some(
            serde_json::from_slice(bytes)
                .map_err(|e| corrupt(row, format!("fault attribution: {e}")))?,
        )
    } else {
        None
    };
    let result = sixmap_proto::decode::stored_result(reader.rest(), key, started_at)
        .map_err(|e| corrupt(row, e.to_string()))?;
    Ok(StoredResult {
        result,
        probe_origin,
        target_origin,
        blame,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    row: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len());
        let end = end.ok_or_else(|| corrupt(self.row, "value ends too early"))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> Result<usize, StoreError> {
        let mut n = 0usize;
        for shift in (0..28).step_by(7) {
            let b = self.byte()?;
            n |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(corrupt(self.row, "length too long"))
    }

    fn enrichment(&mut self) -> Result<Enrichment, StoreError> {
        let flags = self.byte()?;
        let asn = if flags & HAS_ASN != 0 {
            let mut raw = [0u8; 4];
            raw.copy_from_slice(self.take(4)?);
            Some(u32::from_be_bytes(raw))
        } else {
            None
        };
        let country = if flags & HAS_COUNTRY != 0 {
            let raw = self.take(2)?;
            let text = std::str::from_utf8(raw).map_err(|_| corrupt(self.row, "country"))?;
            Some(
                text.parse()
                    .map_err(|e: sixmap_shared::prefixes::CountryCodeError| {
                        corrupt(self.row, e.to_string())
                    })?,
            )
        } else {
            None
        };
        let as_name = if flags & HAS_NAME != 0 {
            let len = self.varint()?;
            let raw = self.take(len)?;
            Some(
                std::str::from_utf8(raw)
                    .map_err(|_| corrupt(self.row, "AS name is not UTF-8"))?
                    .to_owned(),
            )
        } else {
            None
        };
        Ok(Enrichment {
            asn,
            as_name,
            country,
        })
    }

    fn rest(&self) -> &'a [u8] {
        &self.bytes[self.at..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_with_and_without_enrichment_and_refuse_damage() {
        let probe: ProbeId = "00000000000000aa".parse().unwrap();
        let full = crate::testing::ping_v6(
            probe.clone(),
            7,
            UnixMicros(-3),
            Some(std::time::Duration::from_millis(12)),
            Enrichment {
                asn: Some(3320),
                as_name: Some("DTAG Deutsche Telekom AG — ünïcode".into()),
                country: Some("DE".parse().unwrap()),
            },
        );
        let mut partial = full.clone();
        partial.target_origin = Some(Enrichment {
            asn: None,
            as_name: None,
            country: Some("NL".parse().unwrap()),
        });
        partial.probe_origin = None;
        let bare = StoredResult::from(full.result.clone());
        let mut blamed = full.clone();
        blamed.blame = Some(crate::blame::Blame {
            failure: crate::blame::Failure::V6Broken,
            placement: crate::blame::Placement::Transit,
            responsible_asn: Some(64510),
            last_answering: Some(crate::blame::BlameHop {
                hop_limit: 3,
                address: Some("2001:db8:21::1".parse().unwrap()),
                asn: Some(64510),
            }),
            first_silent: None,
            boundary: false,
            probe_asn: Some(64500),
            probe_country: Some("XA".parse().unwrap()),
            destination_asn: None,
        });
        for stored in [full, partial, bare, blamed] {
            let row = row_key(stored.result.started_at, &stored.result.key);
            let value = encode_value(&stored);
            assert_eq!(value[0], FORMAT_PROTO);
            assert_eq!(decode_value(&row, &value).unwrap(), stored);
            for cut in 1..value.len().min(40) {
                // A cut inside the enrichment is an error; one inside the protobuf too.
                assert!(decode_value(&row, &value[..cut]).is_err(), "cut at {cut}");
            }
            assert!(decode_value(&row[..39], &value).is_err());
        }
        assert!(decode_value(&[0; ROW_KEY_LEN], &[9, 0]).is_err());
    }

    #[test]
    fn row_keys_sort_by_time_then_key() {
        let a: ProbeId = "00000000000000aa".parse().unwrap();
        let b: ProbeId = "00000000000000bb".parse().unwrap();
        let key = |p: &ProbeId, s| ResultKey {
            probe_id: p.clone(),
            boot_epoch: 1,
            sequence: s,
        };
        let mut rows = [
            row_key(UnixMicros(5), &key(&a, 2)),
            row_key(UnixMicros(-5), &key(&b, 1)),
            row_key(UnixMicros(5), &key(&a, 1)),
            row_key(UnixMicros(0), &key(&b, 300)),
        ];
        rows.sort();
        let parsed: Vec<_> = rows.iter().map(|r| parse_row_key(r).unwrap()).collect();
        let mut expected = parsed.clone();
        expected.sort();
        assert_eq!(parsed, expected);
        assert_eq!(parsed[0].0, UnixMicros(-5));
    }
}
