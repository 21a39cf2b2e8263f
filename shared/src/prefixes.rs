//! Origin AS and country of an address, from public prefix data.
//!
//! Three public formats are read (where to fetch them: `fixtures/prefixes/README.md`):
//! - `@ip-location-db/asn` CSV: `ip_range_start,ip_range_end,as_number,as_organization`;
//! - `@ip-location-db/geo-whois-asn-country` CSV: `ip_range_start,ip_range_end,country_code`;
//! - the RIRs' delegated(-extended) statistics: `registry|cc|type|start|value|date|status|...`.
//!
//! Parsers read any `BufRead` line by line, since this crate opens no data files (the collector
//! does), and name the line of every problem. Ranges become the minimal set of CIDR prefixes in
//! a [`PrefixTable`], which answers longest-prefix-match queries; [`PrefixData`] holds the one
//! ASN table and the one country table the collector fills from any number of files.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;

// ---- CIDR decomposition ----

/// The minimal set of aligned prefixes covering `start..=end`, lowest first; empty when
/// `start > end` (the caller decides whether that is an error).
pub fn range_to_prefixes_v4(start: Ipv4Addr, end: Ipv4Addr) -> Vec<(Ipv4Addr, u8)> {
    decompose(start.to_bits().into(), end.to_bits().into(), 32)
        .into_iter()
        // Every network lies within start..=end, so it fits in 32 bits.
        .map(|(network, len)| (Ipv4Addr::from_bits(network as u32), len))
        .collect()
}

/// The minimal set of aligned prefixes covering `start..=end`, lowest first; empty when
/// `start > end` (the caller decides whether that is an error).
pub fn range_to_prefixes_v6(start: Ipv6Addr, end: Ipv6Addr) -> Vec<(Ipv6Addr, u8)> {
    decompose(start.to_bits(), end.to_bits(), 128)
        .into_iter()
        .map(|(network, len)| (Ipv6Addr::from_bits(network), len))
        .collect()
}

/// [`range_to_prefixes_v4`] or [`range_to_prefixes_v6`], refusing mixed families and reversed
/// ranges.
pub fn range_to_prefixes(start: IpAddr, end: IpAddr) -> Result<Vec<(IpAddr, u8)>, PrefixError> {
    check_range(start, end)?;
    Ok(match (start, end) {
        (IpAddr::V4(s), IpAddr::V4(e)) => range_to_prefixes_v4(s, e)
            .into_iter()
            .map(|(n, len)| (IpAddr::V4(n), len))
            .collect(),
        (IpAddr::V6(s), IpAddr::V6(e)) => range_to_prefixes_v6(s, e)
            .into_iter()
            .map(|(n, len)| (IpAddr::V6(n), len))
            .collect(),
        _ => Vec::new(),
    })
}

/// Greedy decomposition in a `bits`-wide space: at each step, the largest block that is both
/// aligned at `start` and does not run past `end`. Works in u128 for both families so that the
/// whole IPv6 space (whose size does not fit in u128) is handled without overflow.
fn decompose(mut start: u128, end: u128, bits: u32) -> Vec<(u128, u8)> {
    let mut prefixes = Vec::new();
    if start > end {
        return prefixes;
    }
    loop {
        let remaining = end - start;
        // Largest k with 2^k - 1 <= remaining; remaining + 1 overflows only for all of IPv6.
        let fits = remaining
            .checked_add(1)
            .map_or(128, |size| 127 - size.leading_zeros());
        let aligned = start.trailing_zeros().min(bits);
        let k = fits.min(aligned);
        prefixes.push((start, (bits - k) as u8));
        let last = start + low_bits(k);
        if last == end {
            return prefixes;
        }
        start = last + 1;
    }
}

/// A mask of the `k` lowest bits.
fn low_bits(k: u32) -> u128 {
    if k >= 128 {
        u128::MAX
    } else {
        (1u128 << k) - 1
    }
}

fn check_range(start: IpAddr, end: IpAddr) -> Result<(), PrefixError> {
    match (start, end) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) if start <= end => Ok(()),
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
            Err(PrefixError::StartAfterEnd { start, end })
        }
        _ => Err(PrefixError::MixedFamilies { start, end }),
    }
}

/// Why a prefix or range cannot go into a [`PrefixTable`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("prefix length /{len} is longer than {family} addresses")]
    LengthTooLong { len: u8, family: &'static str },
    #[error("{network}/{len} has host bits set (the network would be {masked}/{len})")]
    HostBitsSet {
        network: IpAddr,
        len: u8,
        masked: IpAddr,
    },
    #[error("range start {start} is after its end {end}")]
    StartAfterEnd { start: IpAddr, end: IpAddr },
    #[error("range {start} - {end} mixes IPv4 and IPv6")]
    MixedFamilies { start: IpAddr, end: IpAddr },
}

// ---- longest-prefix match ----

/// An address family's integer form.
trait Bits: Copy + Eq + Hash {
    const WIDTH: u8;
    /// The address with all but the first `len` bits cleared.
    fn network(self, len: u8) -> Self;
}

impl Bits for u32 {
    const WIDTH: u8 = 32;
    fn network(self, len: u8) -> Self {
        self & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
    }
}

impl Bits for u128 {
    const WIDTH: u8 = 128;
    fn network(self, len: u8) -> Self {
        self & u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
    }
}

/// Keys are networks from public data files, never chosen by a client, so flooding attacks
/// are not a concern and a fast hash matters more: with SipHash, lookups were 2-3 times slower
/// in `examples/prefix_lookup_bench.rs`. The folded multiply spreads high bits into the low
/// ones that pick the bucket, which matters because networks have their low bits all zero.
#[derive(Debug, Default, Clone, Copy)]
struct NetworkHasher(u64);

impl NetworkHasher {
    fn mix(&mut self, word: u64) {
        let product = u128::from(self.0 ^ word) * 0x9e37_79b9_7f4a_7c15_u128;
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl Hasher for NetworkHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.mix(n.into());
    }
    fn write_u128(&mut self, n: u128) {
        self.mix(n as u64);
        self.mix((n >> 64) as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type NetworkMap<K, T> = HashMap<K, T, BuildHasherDefault<NetworkHasher>>;

/// One family's prefixes: a map per prefix length.
#[derive(Debug, Clone)]
struct FamilyTable<K, T> {
    /// Indexed by prefix length; an empty map allocates nothing.
    by_len: Vec<NetworkMap<K, T>>,
    /// The lengths that hold at least one prefix, longest first: lookups probe only these.
    lengths: Vec<u8>,
    count: usize,
}

impl<K: Bits, T> FamilyTable<K, T> {
    fn new() -> Self {
        Self {
            by_len: (0..=K::WIDTH).map(|_| NetworkMap::default()).collect(),
            lengths: Vec::new(),
            count: 0,
        }
    }

    /// The caller has checked the prefix: `len` at most `K::WIDTH`, no host bits.
    fn insert(&mut self, network: K, len: u8, value: T) -> Option<T> {
        let previous = self.by_len[usize::from(len)].insert(network, value);
        if previous.is_none() {
            self.count += 1;
            if let Err(at) = self.lengths.binary_search_by(|probe| len.cmp(probe)) {
                self.lengths.insert(at, len);
            }
        }
        previous
    }

    fn lookup(&self, address: K) -> Option<(&T, K, u8)> {
        self.lengths.iter().find_map(|&len| {
            let network = address.network(len);
            self.by_len[usize::from(len)]
                .get(&network)
                .map(|value| (value, network, len))
        })
    }
}

/// Longest-prefix match over IPv4 and IPv6 prefixes.
///
/// Inserted prefixes must have their host bits zero: `10.0.0.1/8` is refused rather than
/// masked, because in a data file it means a wrong length or a wrong address, and masking would
/// silently attribute a much larger range. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are
/// IPv4: lookups of them search the IPv4 prefixes, and IPv6 prefixes of /96 or longer inside
/// `::ffff:0:0/96` are stored as the IPv4 prefixes they denote.
#[derive(Debug, Clone)]
pub struct PrefixTable<T> {
    v4: FamilyTable<u32, T>,
    v6: FamilyTable<u128, T>,
}

impl<T> Default for PrefixTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> PrefixTable<T> {
    pub fn new() -> Self {
        Self {
            v4: FamilyTable::new(),
            v6: FamilyTable::new(),
        }
    }

    /// Stores `value` for `network/len`. A prefix already present is replaced: its previous
    /// value is returned.
    pub fn insert(&mut self, network: IpAddr, len: u8, value: T) -> Result<Option<T>, PrefixError> {
        check_prefix(network, len)?;
        Ok(match network {
            IpAddr::V4(v4) => self.v4.insert(v4.to_bits(), len, value),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                // Mapped space names IPv4: store it where lookups of mapped addresses search.
                Some(v4) if len >= 96 => self.v4.insert(v4.to_bits(), len - 96, value),
                _ => self.v6.insert(v6.to_bits(), len, value),
            },
        })
    }

    /// Stores `value` for every prefix of the inclusive range `start..=end`; returns how many.
    pub fn insert_range(
        &mut self,
        start: IpAddr,
        end: IpAddr,
        value: T,
    ) -> Result<usize, PrefixError>
    where
        T: Clone,
    {
        let prefixes = range_to_prefixes(start, end)?;
        for &(network, len) in &prefixes {
            self.insert(network, len, value.clone())?;
        }
        Ok(prefixes.len())
    }

    /// The value of the most specific prefix containing `address`, with that prefix. For an
    /// IPv4-mapped address the prefix is the IPv4 one.
    pub fn lookup(&self, address: IpAddr) -> Option<(&T, IpAddr, u8)> {
        match address {
            IpAddr::V4(v4) => self.lookup_v4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => self.lookup_v4(v4),
                None => self.v6.lookup(v6.to_bits()).map(|(value, network, len)| {
                    (value, IpAddr::V6(Ipv6Addr::from_bits(network)), len)
                }),
            },
        }
    }

    fn lookup_v4(&self, address: Ipv4Addr) -> Option<(&T, IpAddr, u8)> {
        self.v4
            .lookup(address.to_bits())
            .map(|(value, network, len)| (value, IpAddr::V4(Ipv4Addr::from_bits(network)), len))
    }

    /// The number of distinct prefixes stored.
    pub fn len(&self) -> usize {
        self.v4.count + self.v6.count
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every stored prefix with its value, in no particular order (IPv4 as IPv4): for
    /// summaries over the whole table, such as the address space each AS announces.
    pub fn iter(&self) -> impl Iterator<Item = (IpAddr, u8, &T)> {
        let v4 = self.v4.by_len.iter().enumerate().flat_map(|(len, map)| {
            map.iter().map(move |(network, value)| {
                (IpAddr::V4(Ipv4Addr::from_bits(*network)), len, value)
            })
        });
        let v6 = self.v6.by_len.iter().enumerate().flat_map(|(len, map)| {
            map.iter().map(move |(network, value)| {
                (IpAddr::V6(Ipv6Addr::from_bits(*network)), len, value)
            })
        });
        // Lengths index `by_len`, which has one entry per length up to 128.
        v4.chain(v6)
            .map(|(network, len, value)| (network, u8::try_from(len).unwrap_or(u8::MAX), value))
    }
}

/// `network/len` is a prefix: the length fits the family and the host bits are zero.
fn check_prefix(network: IpAddr, len: u8) -> Result<(), PrefixError> {
    let (bits, width, family) = match network {
        IpAddr::V4(v4) => (u128::from(v4.to_bits()), 32, "IPv4"),
        IpAddr::V6(v6) => (v6.to_bits(), 128, "IPv6"),
    };
    if len > width {
        return Err(PrefixError::LengthTooLong { len, family });
    }
    let host = low_bits(u32::from(width - len));
    if bits & host == 0 {
        return Ok(());
    }
    let masked = match network {
        // The network fits in 32 bits: host bits were cleared from a 32-bit value.
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from_bits((bits & !host) as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from_bits(bits & !host)),
    };
    Err(PrefixError::HostBitsSet {
        network,
        len,
        masked,
    })
}

// ---- country codes ----

/// An ISO 3166-1 alpha-2 code as registries write it: two uppercase ASCII letters. Only the
/// form is checked: registries also use codes that are not countries (`EU`, `AP`, `ZZ`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CountryCode([u8; 2]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a country code (two uppercase ASCII letters, ISO 3166-1 alpha-2)")]
pub struct CountryCodeError(String);

impl FromStr for CountryCode {
    type Err = CountryCodeError;
    fn from_str(text: &str) -> Result<Self, CountryCodeError> {
        match text.as_bytes() {
            &[a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => Ok(Self([a, b])),
            _ => Err(CountryCodeError(text.chars().take(40).collect())),
        }
    }
}

impl TryFrom<String> for CountryCode {
    type Error = CountryCodeError;
    fn try_from(text: String) -> Result<Self, CountryCodeError> {
        text.parse()
    }
}

impl From<CountryCode> for String {
    fn from(code: CountryCode) -> String {
        code.to_string()
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", char::from(self.0[0]), char::from(self.0[1]))
    }
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountryCode({self})")
    }
}

// ---- parsing ----

/// How the addresses of an ip-location-db CSV file are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressFormat {
    /// `1.0.0.0`, `2001:200::`: both families may appear in one file.
    #[default]
    Text,
    /// The `-ipv4-num` files: addresses as decimal u32.
    NumericV4,
    /// The `-ipv6-num` files: addresses as decimal u128.
    NumericV6,
}

impl AddressFormat {
    /// The format ip-location-db's file names announce: `…-ipv4-num.csv`, `…-ipv6-num.csv`,
    /// otherwise text.
    pub fn from_file_name(name: &str) -> Self {
        let stem = name.strip_suffix(".csv").unwrap_or(name);
        if stem.ends_with("-ipv4-num") {
            Self::NumericV4
        } else if stem.ends_with("-ipv6-num") {
            Self::NumericV6
        } else {
            Self::Text
        }
    }
}

/// One line of an `@ip-location-db/asn` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsnRange {
    pub start: IpAddr,
    pub end: IpAddr,
    pub asn: u32,
    /// May be empty: the files leave it so when the organization is unknown.
    pub name: String,
}

/// One line of a `geo-whois-asn-country` file, or one delegation of an RIR file (an IPv6
/// delegation is a prefix, given here as its first and last address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountryRange {
    pub start: IpAddr,
    pub end: IpAddr,
    pub country: CountryCode,
}

/// A data file could not be read; the line is counted from 1.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("line {line}: {problem}")]
    Line { line: u64, problem: LineProblem },
    #[error("line {line}: cannot read: {source}")]
    Read { line: u64, source: std::io::Error },
}

impl ParseError {
    pub fn line(&self) -> u64 {
        match self {
            Self::Line { line, .. } | Self::Read { line, .. } => *line,
        }
    }
}

/// What is wrong with one line of a data file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineProblem {
    #[error("expected {expected} fields, found {found}")]
    FieldCount {
        expected: &'static str,
        found: usize,
    },
    #[error("{text:?} is not {expected}")]
    BadAddress {
        text: String,
        expected: &'static str,
    },
    #[error(
        "{0:?} is a decimal number, not an address: read `-num` files with \
         AddressFormat::NumericV4 or NumericV6"
    )]
    NumericAddress(String),
    #[error("{0:?} is not an AS number (decimal, 0 to 4294967295)")]
    BadAsn(String),
    #[error(transparent)]
    BadCountry(#[from] CountryCodeError),
    #[error(transparent)]
    BadRange(#[from] PrefixError),
    #[error("{0:?} is not a number of IPv4 addresses")]
    BadCount(String),
    #[error("{count} addresses from {start} run past 255.255.255.255")]
    CountOverflow { start: Ipv4Addr, count: u32 },
    #[error("{0:?} is not an IPv6 prefix length")]
    BadPrefixLength(String),
    #[error("unknown record type {0:?} (expected ipv4, ipv6 or asn)")]
    UnknownType(String),
    #[error(
        "unknown status {0:?} (expected allocated, assigned, available, reserved, ietf or iana)"
    )]
    UnknownStatus(String),
    #[error("a quoted field is not closed on its line")]
    UnterminatedQuote,
    #[error("text follows a closing quote")]
    TextAfterQuote,
}

/// Reads `reader` line by line, skipping blank lines, `#` comments, a UTF-8 byte order mark
/// and line endings (LF or CRLF); `parse` turns a line into a record or skips it (`None`),
/// `sink` takes the records. Errors from either are reported with the line number.
fn for_each_record<T>(
    mut reader: impl BufRead,
    mut parse: impl FnMut(&str) -> Result<Option<T>, LineProblem>,
    mut sink: impl FnMut(T) -> Result<(), LineProblem>,
) -> Result<(), ParseError> {
    let mut buffer = String::new();
    let mut line = 0;
    loop {
        buffer.clear();
        line += 1;
        let read = reader
            .read_line(&mut buffer)
            .map_err(|source| ParseError::Read { line, source })?;
        if read == 0 {
            return Ok(());
        }
        let text = buffer.trim_end_matches(['\n', '\r']);
        let text = if line == 1 {
            text.trim_start_matches('\u{feff}')
        } else {
            text
        };
        if text.trim().is_empty() || text.starts_with('#') {
            continue;
        }
        let at_line = |problem| ParseError::Line { line, problem };
        if let Some(record) = parse(text).map_err(at_line)? {
            sink(record).map_err(at_line)?;
        }
    }
}

/// Splits a CSV line (RFC 4180: a quoted field may hold commas, `""` in it is one quote).
/// A quoted field cannot span lines: these files have none, so an open quote is an error.
/// The one CSV splitter of the tree: the collector's declared-figures import uses it too.
pub fn split_csv(line: &str) -> Result<Vec<Cow<'_, str>>, LineProblem> {
    let mut fields = Vec::new();
    let mut rest = line;
    loop {
        let (field, after) = match rest.strip_prefix('"') {
            Some(quoted) => {
                let (field, after) = quoted_field(quoted)?;
                (Cow::Owned(field), after)
            }
            None => match rest.split_once(',') {
                Some((field, after)) => (Cow::Borrowed(field), Some(after)),
                None => (Cow::Borrowed(rest), None),
            },
        };
        fields.push(field);
        match after {
            Some(next) => rest = next,
            None => return Ok(fields),
        }
    }
}

/// The content of a quoted field whose opening quote is already consumed, and the rest of the
/// line after its separating comma (`None` at the end of the line).
fn quoted_field(text: &str) -> Result<(String, Option<&str>), LineProblem> {
    let mut value = String::new();
    let mut rest = text;
    loop {
        let Some(quote) = rest.find('"') else {
            return Err(LineProblem::UnterminatedQuote);
        };
        value.push_str(&rest[..quote]);
        let after = &rest[quote + 1..];
        if let Some(next) = after.strip_prefix('"') {
            value.push('"');
            rest = next;
        } else if after.is_empty() {
            return Ok((value, None));
        } else if let Some(next) = after.strip_prefix(',') {
            return Ok((value, Some(next)));
        } else {
            return Err(LineProblem::TextAfterQuote);
        }
    }
}

/// The fields of a CSV line that must have exactly `N`.
fn csv_fields<'a, const N: usize>(
    line: &'a str,
    expected: &'static str,
) -> Result<[Cow<'a, str>; N], LineProblem> {
    <[Cow<'a, str>; N]>::try_from(split_csv(line)?).map_err(|fields| LineProblem::FieldCount {
        expected,
        found: fields.len(),
    })
}

/// ip-location-db files have no header row, but a copy passed through a spreadsheet may.
fn is_csv_header(line: &str) -> bool {
    line.starts_with("ip_range_start")
}

fn parse_address(text: &str, format: AddressFormat) -> Result<IpAddr, LineProblem> {
    let bad = |expected| LineProblem::BadAddress {
        text: text.to_owned(),
        expected,
    };
    match format {
        AddressFormat::Text => text.parse().map_err(|_| {
            if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
                LineProblem::NumericAddress(text.to_owned())
            } else {
                bad(expected_family(text))
            }
        }),
        AddressFormat::NumericV4 => text
            .parse::<u32>()
            .map(|n| IpAddr::V4(Ipv4Addr::from_bits(n)))
            .map_err(|_| bad("an IPv4 address as a decimal number (0 to 4294967295)")),
        AddressFormat::NumericV6 => text
            .parse::<u128>()
            .map(|n| IpAddr::V6(Ipv6Addr::from_bits(n)))
            .map_err(|_| bad("an IPv6 address as a decimal number (0 to 2^128 - 1)")),
    }
}

/// Which family a malformed address was probably meant to be, for the error message.
fn expected_family(text: &str) -> &'static str {
    if text.contains(':') {
        "an IPv6 address"
    } else if text.contains('.') {
        "an IPv4 address"
    } else {
        "an IP address"
    }
}

fn parse_range(
    start: &str,
    end: &str,
    format: AddressFormat,
) -> Result<(IpAddr, IpAddr), LineProblem> {
    let start = parse_address(start, format)?;
    let end = parse_address(end, format)?;
    check_range(start, end)?;
    Ok((start, end))
}

fn parse_asn_line(line: &str, format: AddressFormat) -> Result<Option<AsnRange>, LineProblem> {
    if is_csv_header(line) {
        return Ok(None);
    }
    let [start, end, asn, name] = csv_fields(
        line,
        "4 (ip_range_start,ip_range_end,as_number,as_organization)",
    )?;
    let (start, end) = parse_range(&start, &end, format)?;
    let asn = asn
        .parse()
        .map_err(|_| LineProblem::BadAsn(asn.into_owned()))?;
    Ok(Some(AsnRange {
        start,
        end,
        asn,
        name: name.into_owned(),
    }))
}

fn parse_country_line(
    line: &str,
    format: AddressFormat,
) -> Result<Option<CountryRange>, LineProblem> {
    if is_csv_header(line) {
        return Ok(None);
    }
    let [start, end, country] = csv_fields(line, "3 (ip_range_start,ip_range_end,country_code)")?;
    let (start, end) = parse_range(&start, &end, format)?;
    Ok(Some(CountryRange {
        start,
        end,
        country: country.parse()?,
    }))
}

/// The version line opens every delegated file: `2|ripencc|…` or `2.3|arin|…`.
fn is_rir_version_line(fields: &[&str]) -> bool {
    fields
        .first()
        .is_some_and(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
}

/// `registry|*|type|*|count|summary`.
fn is_rir_summary_line(fields: &[&str]) -> bool {
    fields.get(5) == Some(&"summary")
}

#[derive(Clone, Copy)]
enum RirType {
    Ipv4,
    Ipv6,
    Asn,
}

fn parse_rir_line(line: &str) -> Result<Option<CountryRange>, LineProblem> {
    let fields: Vec<&str> = line.split('|').collect();
    if is_rir_version_line(&fields) || is_rir_summary_line(&fields) {
        return Ok(None);
    }
    // Seven fields is the plain (non-extended) format, which carries everything used here.
    let &[_registry, cc, kind, start, value, _date, status, ..] = fields.as_slice() else {
        return Err(LineProblem::FieldCount {
            expected: "at least 7 (registry|cc|type|start|value|date|status|opaque-id)",
            found: fields.len(),
        });
    };
    let kind = match kind {
        "ipv4" => RirType::Ipv4,
        "ipv6" => RirType::Ipv6,
        "asn" => RirType::Asn,
        other => return Err(LineProblem::UnknownType(other.to_owned())),
    };
    let delegated = match status {
        "allocated" | "assigned" => true,
        // IANA's own records (in the NRO's combined file) say `ietf` or `iana`.
        "available" | "reserved" | "ietf" | "iana" => false,
        other => return Err(LineProblem::UnknownStatus(other.to_owned())),
    };
    if !delegated || cc.is_empty() || cc == "ZZ" {
        return Ok(None);
    }
    let (start, end) = match kind {
        RirType::Ipv4 => rir_v4_range(start, value)?,
        RirType::Ipv6 => rir_v6_range(start, value)?,
        RirType::Asn => return Ok(None),
    };
    Ok(Some(CountryRange {
        start,
        end,
        country: cc.parse()?,
    }))
}

/// For IPv4 the value is a count of addresses, not necessarily a power of two.
fn rir_v4_range(start: &str, count: &str) -> Result<(IpAddr, IpAddr), LineProblem> {
    let first: Ipv4Addr = start.parse().map_err(|_| LineProblem::BadAddress {
        text: start.to_owned(),
        expected: "an IPv4 address",
    })?;
    let count: u32 = match count.parse() {
        Ok(n) if n > 0 => n,
        _ => return Err(LineProblem::BadCount(count.to_owned())),
    };
    let last = first
        .to_bits()
        .checked_add(count - 1)
        .ok_or(LineProblem::CountOverflow {
            start: first,
            count,
        })?;
    Ok((IpAddr::V4(first), IpAddr::V4(Ipv4Addr::from_bits(last))))
}

/// For IPv6 the value is a prefix length.
fn rir_v6_range(start: &str, len: &str) -> Result<(IpAddr, IpAddr), LineProblem> {
    let network: Ipv6Addr = start.parse().map_err(|_| LineProblem::BadAddress {
        text: start.to_owned(),
        expected: "an IPv6 address",
    })?;
    let len: u8 = match len.parse() {
        Ok(n) if n <= 128 => n,
        _ => return Err(LineProblem::BadPrefixLength(len.to_owned())),
    };
    check_prefix(IpAddr::V6(network), len)?;
    let host = low_bits(128 - u32::from(len));
    let last = Ipv6Addr::from_bits(network.to_bits() | host);
    Ok((IpAddr::V6(network), IpAddr::V6(last)))
}

fn collect<T>(
    reader: impl BufRead,
    parse: impl FnMut(&str) -> Result<Option<T>, LineProblem>,
) -> Result<Vec<T>, ParseError> {
    let mut records = Vec::new();
    for_each_record(reader, parse, |record| {
        records.push(record);
        Ok(())
    })?;
    Ok(records)
}

/// Reads an `@ip-location-db/asn` CSV file (`asn-ipv4.csv`, `asn-ipv6-num.csv`, ...).
pub fn parse_asn_csv(
    reader: impl BufRead,
    format: AddressFormat,
) -> Result<Vec<AsnRange>, ParseError> {
    collect(reader, |line| parse_asn_line(line, format))
}

/// Reads an `@ip-location-db/geo-whois-asn-country` CSV file (or any
/// `start,end,country_code` file of ip-location-db).
pub fn parse_country_csv(
    reader: impl BufRead,
    format: AddressFormat,
) -> Result<Vec<CountryRange>, ParseError> {
    collect(reader, |line| parse_country_line(line, format))
}

/// Reads an RIR delegated or delegated-extended statistics file: the IPv4 and IPv6 space
/// each registry allocated or assigned, with the holder's country. Version, summary and `asn`
/// lines are skipped, as are `available` and `reserved` space and country `ZZ` or empty.
pub fn parse_rir_delegated(reader: impl BufRead) -> Result<Vec<CountryRange>, ParseError> {
    collect(reader, parse_rir_line)
}

// ---- the collector's tables ----

/// The origin AS of a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsInfo {
    pub asn: u32,
    /// Shared by all prefixes of the same organization name; empty when the data has none.
    pub name: Arc<str>,
}

/// What a load added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadCounts {
    /// Records read and used (skipped lines of RIR files not counted).
    pub records: usize,
    /// Prefixes those records became (a range may need several).
    pub prefixes: usize,
}

/// What the prefix data says about an address; stored with results.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Enrichment {
    pub asn: Option<u32>,
    pub as_name: Option<String>,
    pub country: Option<CountryCode>,
}

/// One table for origin ASes and one for countries, filled from any number of files.
///
/// The most specific prefix wins in each table; for the same prefix, the file loaded last
/// wins. A load that fails keeps what it inserted before the failing line: build a fresh
/// `PrefixData` and swap it in only when every file loaded.
#[derive(Debug, Clone, Default)]
pub struct PrefixData {
    pub asn: PrefixTable<AsInfo>,
    pub country: PrefixTable<CountryCode>,
    /// Organization names, so that 500k prefixes of a few thousand operators share them.
    names: HashSet<Arc<str>>,
}

impl PrefixData {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an `@ip-location-db/asn` CSV file to the ASN table.
    pub fn load_asn_csv(
        &mut self,
        reader: impl BufRead,
        format: AddressFormat,
    ) -> Result<LoadCounts, ParseError> {
        let mut counts = LoadCounts::default();
        let (table, names) = (&mut self.asn, &mut self.names);
        for_each_record(
            reader,
            |line| parse_asn_line(line, format),
            |range| {
                let info = AsInfo {
                    asn: range.asn,
                    name: intern(names, range.name),
                };
                counts.prefixes += table.insert_range(range.start, range.end, info)?;
                counts.records += 1;
                Ok(())
            },
        )?;
        Ok(counts)
    }

    /// Adds a `geo-whois-asn-country` CSV file to the country table.
    pub fn load_country_csv(
        &mut self,
        reader: impl BufRead,
        format: AddressFormat,
    ) -> Result<LoadCounts, ParseError> {
        load_countries(&mut self.country, reader, |line| {
            parse_country_line(line, format)
        })
    }

    /// Adds an RIR delegated(-extended) file to the country table.
    pub fn load_rir_delegated(&mut self, reader: impl BufRead) -> Result<LoadCounts, ParseError> {
        load_countries(&mut self.country, reader, parse_rir_line)
    }

    pub fn lookup(&self, address: IpAddr) -> Enrichment {
        let origin = self.asn.lookup(address).map(|(info, _, _)| info);
        Enrichment {
            asn: origin.map(|info| info.asn),
            as_name: origin
                .filter(|info| !info.name.is_empty())
                .map(|info| info.name.to_string()),
            country: self.country.lookup(address).map(|(code, _, _)| *code),
        }
    }
}

fn load_countries(
    table: &mut PrefixTable<CountryCode>,
    reader: impl BufRead,
    parse: impl FnMut(&str) -> Result<Option<CountryRange>, LineProblem>,
) -> Result<LoadCounts, ParseError> {
    let mut counts = LoadCounts::default();
    for_each_record(reader, parse, |range| {
        counts.prefixes += table.insert_range(range.start, range.end, range.country)?;
        counts.records += 1;
        Ok(())
    })?;
    Ok(counts)
}

fn intern(names: &mut HashSet<Arc<str>>, name: String) -> Arc<str> {
    if let Some(shared) = names.get(name.as_str()) {
        return Arc::clone(shared);
    }
    let shared: Arc<str> = name.into();
    names.insert(Arc::clone(&shared));
    shared
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASN_V4: &str = include_str!("../fixtures/prefixes/asn-ipv4.csv");
    const ASN_V4_NUM: &str = include_str!("../fixtures/prefixes/asn-ipv4-num.csv");
    const ASN_V6: &str = include_str!("../fixtures/prefixes/asn-ipv6.csv");
    const COUNTRY_V4: &str = include_str!("../fixtures/prefixes/geo-whois-asn-country-ipv4.csv");
    const COUNTRY_V6: &str = include_str!("../fixtures/prefixes/geo-whois-asn-country-ipv6.csv");
    const RIR: &str = include_str!("../fixtures/prefixes/delegated-ripencc-extended-sample");

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn iter_yields_every_prefix_once_with_its_family() {
        let mut table = PrefixTable::new();
        table.insert(ip("10.0.0.0"), 8, 1).unwrap();
        table.insert(ip("2001:db8::"), 32, 2).unwrap();
        table.insert(ip("2001:db8:1::"), 48, 3).unwrap();
        // Mapped IPv4 space is stored, and listed, as IPv4.
        table.insert(ip("::ffff:192.0.2.0"), 120, 4).unwrap();
        let mut all: Vec<(IpAddr, u8, i32)> = table.iter().map(|(n, l, v)| (n, l, *v)).collect();
        all.sort_by_key(|e| e.2);
        assert_eq!(
            all,
            [
                (ip("10.0.0.0"), 8, 1),
                (ip("2001:db8::"), 32, 2),
                (ip("2001:db8:1::"), 48, 3),
                (ip("192.0.2.0"), 24, 4),
            ]
        );
        assert_eq!(table.iter().count(), table.len());
    }

    fn v4(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    fn v6(text: &str) -> Ipv6Addr {
        text.parse().unwrap()
    }

    fn cc(text: &str) -> CountryCode {
        text.parse().unwrap()
    }

    fn shown_v4(prefixes: Vec<(Ipv4Addr, u8)>) -> Vec<String> {
        prefixes.iter().map(|(n, l)| format!("{n}/{l}")).collect()
    }

    fn shown_v6(prefixes: Vec<(Ipv6Addr, u8)>) -> Vec<String> {
        prefixes.iter().map(|(n, l)| format!("{n}/{l}")).collect()
    }

    // ---- decomposition ----

    #[test]
    fn a_single_address_is_a_host_prefix() {
        let a = v4("192.0.2.7");
        assert_eq!(shown_v4(range_to_prefixes_v4(a, a)), ["192.0.2.7/32"]);
        let b = v6("2001:db8::7");
        assert_eq!(shown_v6(range_to_prefixes_v6(b, b)), ["2001:db8::7/128"]);
    }

    #[test]
    fn the_whole_space_is_one_prefix() {
        let all_v4 = range_to_prefixes_v4(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST);
        assert_eq!(shown_v4(all_v4), ["0.0.0.0/0"]);
        let all_v6 = range_to_prefixes_v6(Ipv6Addr::UNSPECIFIED, Ipv6Addr::from_bits(u128::MAX));
        assert_eq!(shown_v6(all_v6), ["::/0"]);
    }

    #[test]
    fn ranges_at_the_top_of_the_space_do_not_overflow() {
        let top = range_to_prefixes_v4(v4("255.255.255.254"), Ipv4Addr::BROADCAST);
        assert_eq!(shown_v4(top), ["255.255.255.254/31"]);
        let last = range_to_prefixes_v4(Ipv4Addr::BROADCAST, Ipv4Addr::BROADCAST);
        assert_eq!(shown_v4(last), ["255.255.255.255/32"]);
        let max = Ipv6Addr::from_bits(u128::MAX);
        assert_eq!(
            shown_v6(range_to_prefixes_v6(max, max)),
            ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"]
        );
        // Everything but `::` needs one prefix of each length from /128 to /1.
        let almost_all = range_to_prefixes_v6(v6("::1"), max);
        assert_eq!(almost_all.len(), 128);
        assert_eq!(almost_all[0], (v6("::1"), 128));
        assert_eq!(almost_all[127], (v6("8000::"), 1));
        let all_but_last = range_to_prefixes_v4(Ipv4Addr::UNSPECIFIED, v4("255.255.255.254"));
        assert_eq!(all_but_last.len(), 32);
    }

    #[test]
    fn an_unaligned_range_becomes_the_minimal_prefixes() {
        let prefixes = range_to_prefixes_v4(v4("1.0.0.3"), v4("1.0.0.10"));
        assert_eq!(
            shown_v4(prefixes),
            ["1.0.0.3/32", "1.0.0.4/30", "1.0.0.8/31", "1.0.0.10/32"]
        );
        let prefixes = range_to_prefixes_v6(
            v6("2a02:2e0::"),
            v6("2a02:2e1:7fff:ffff:ffff:ffff:ffff:ffff"),
        );
        assert_eq!(shown_v6(prefixes), ["2a02:2e0::/32", "2a02:2e1::/33"]);
    }

    #[test]
    fn a_reversed_range_gives_nothing_or_an_error() {
        assert!(range_to_prefixes_v4(v4("1.0.0.2"), v4("1.0.0.1")).is_empty());
        assert!(range_to_prefixes_v6(v6("::2"), v6("::1")).is_empty());
        assert_eq!(
            range_to_prefixes(ip("1.0.0.2"), ip("1.0.0.1")),
            Err(PrefixError::StartAfterEnd {
                start: ip("1.0.0.2"),
                end: ip("1.0.0.1")
            })
        );
        assert!(matches!(
            range_to_prefixes(ip("1.0.0.1"), ip("::2")),
            Err(PrefixError::MixedFamilies { .. })
        ));
    }

    /// Every small range: the prefixes are aligned, contiguous, cover exactly the range, and no
    /// two of them are siblings (which, for an exact aligned cover, means none could be merged:
    /// the cover is minimal).
    #[test]
    fn decomposition_is_exact_and_minimal_for_every_small_range() {
        let base = 0xffff_ff00_u32;
        for from in 0..=64u32 {
            for to in from..=64u32 {
                let (start, end) = (base + from * 3, base + to * 3 + 2);
                let prefixes =
                    range_to_prefixes_v4(Ipv4Addr::from_bits(start), Ipv4Addr::from_bits(end));
                let mut next = u64::from(start);
                for (i, &(network, len)) in prefixes.iter().enumerate() {
                    let network = u64::from(network.to_bits());
                    let size = 1u64 << (32 - len);
                    assert_eq!(network, next, "{start:#x}-{end:#x}: gap or overlap");
                    assert_eq!(network % size, 0, "{start:#x}-{end:#x}: unaligned");
                    next = network + size;
                    if let Some(&(following, following_len)) = prefixes.get(i + 1) {
                        let siblings = following_len == len
                            && network % (2 * size) == 0
                            && u64::from(following.to_bits()) == network + size;
                        assert!(!siblings, "{start:#x}-{end:#x}: mergeable /{len}s");
                    }
                }
                assert_eq!(next, u64::from(end) + 1, "{start:#x}-{end:#x}: wrong end");
            }
        }
    }

    // ---- longest-prefix match ----

    #[test]
    fn the_most_specific_prefix_wins() {
        let mut table = PrefixTable::new();
        table.insert(ip("10.0.0.0"), 8, "eight").unwrap();
        table.insert(ip("10.1.0.0"), 16, "sixteen").unwrap();
        table.insert(ip("2001:67c::"), 32, "thirty-two").unwrap();
        table
            .insert(ip("2001:67c:2e8::"), 48, "forty-eight")
            .unwrap();
        assert_eq!(
            table.lookup(ip("10.1.2.3")),
            Some((&"sixteen", ip("10.1.0.0"), 16))
        );
        assert_eq!(
            table.lookup(ip("10.2.0.1")),
            Some((&"eight", ip("10.0.0.0"), 8))
        );
        assert_eq!(
            table.lookup(ip("10.255.255.255")),
            Some((&"eight", ip("10.0.0.0"), 8))
        );
        assert_eq!(
            table.lookup(ip("2001:67c:2e8:22::c100:68b")),
            Some((&"forty-eight", ip("2001:67c:2e8::"), 48))
        );
        assert_eq!(
            table.lookup(ip("2001:67c:2e9::1")),
            Some((&"thirty-two", ip("2001:67c::"), 32))
        );
        assert_eq!(table.len(), 4);
    }

    #[test]
    fn addresses_outside_every_prefix_are_not_found() {
        let mut table = PrefixTable::new();
        assert!(table.is_empty());
        assert_eq!(table.lookup(ip("10.0.0.1")), None);
        table.insert(ip("10.0.0.0"), 8, 1).unwrap();
        table.insert(ip("2001:67c::"), 32, 2).unwrap();
        assert!(!table.is_empty());
        assert_eq!(table.lookup(ip("11.0.0.0")), None);
        assert_eq!(table.lookup(ip("9.255.255.255")), None);
        assert_eq!(table.lookup(ip("2001:67d::")), None);
        // The families are separate: ::a00:1 is not 10.0.0.1.
        assert_eq!(table.lookup(ip("::a00:1")), None);
    }

    #[test]
    fn mapped_addresses_are_looked_up_as_ipv4() {
        let mut table = PrefixTable::new();
        table.insert(ip("1.1.1.0"), 24, "v4").unwrap();
        table.insert(ip("::"), 0, "v6 default").unwrap();
        assert_eq!(
            table.lookup(ip("::ffff:1.1.1.1")),
            Some((&"v4", ip("1.1.1.0"), 24))
        );
        assert_eq!(table.lookup(ip("::ffff:1.1.2.1")), None);
        // A mapped prefix is stored as the IPv4 prefix it denotes.
        table.insert(ip("::ffff:9.9.9.0"), 120, "mapped").unwrap();
        assert_eq!(
            table.lookup(ip("9.9.9.9")),
            Some((&"mapped", ip("9.9.9.0"), 24))
        );
        assert_eq!(
            table.lookup(ip("2a00::1")),
            Some((&"v6 default", ip("::"), 0))
        );
    }

    #[test]
    fn the_same_prefix_inserted_again_replaces_the_value() {
        let mut table = PrefixTable::new();
        assert_eq!(table.insert(ip("192.0.2.0"), 24, 1), Ok(None));
        assert_eq!(table.insert(ip("192.0.2.0"), 24, 2), Ok(Some(1)));
        assert_eq!(table.len(), 1);
        assert_eq!(
            table.lookup(ip("192.0.2.1")),
            Some((&2, ip("192.0.2.0"), 24))
        );
    }

    #[test]
    fn prefixes_with_host_bits_or_too_long_are_refused() {
        let mut table = PrefixTable::new();
        let err = table.insert(ip("10.0.0.1"), 8, ()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "10.0.0.1/8 has host bits set (the network would be 10.0.0.0/8)"
        );
        assert!(table.insert(ip("2001:67c::1"), 32, ()).is_err());
        assert_eq!(
            table.insert(ip("10.0.0.0"), 33, ()),
            Err(PrefixError::LengthTooLong {
                len: 33,
                family: "IPv4"
            })
        );
        assert!(table.insert(ip("::"), 129, ()).is_err());
        assert!(table.is_empty());
    }

    #[test]
    fn a_default_route_matches_its_whole_family() {
        let mut table = PrefixTable::new();
        table.insert(ip("0.0.0.0"), 0, "any v4").unwrap();
        assert_eq!(
            table.lookup(ip("255.255.255.255")),
            Some((&"any v4", ip("0.0.0.0"), 0))
        );
        assert_eq!(table.lookup(ip("::1")), None);
    }

    #[test]
    fn inserting_a_range_inserts_its_prefixes() {
        let mut table = PrefixTable::new();
        assert_eq!(
            table.insert_range(ip("1.0.0.3"), ip("1.0.0.10"), 'x'),
            Ok(4)
        );
        assert_eq!(table.lookup(ip("1.0.0.2")), None);
        assert_eq!(table.lookup(ip("1.0.0.3")), Some((&'x', ip("1.0.0.3"), 32)));
        assert_eq!(table.lookup(ip("1.0.0.9")), Some((&'x', ip("1.0.0.8"), 31)));
        assert_eq!(table.lookup(ip("1.0.0.11")), None);
        assert!(
            table
                .insert_range(ip("1.0.0.3"), ip("1.0.0.1"), 'x')
                .is_err()
        );
    }

    // ---- country codes ----

    #[test]
    fn country_codes_are_two_uppercase_letters() {
        assert_eq!(cc("NL").to_string(), "NL");
        assert_eq!(format!("{:?}", cc("NL")), "CountryCode(NL)");
        for bad in ["nl", "N", "NLD", "N1", "", "ÑL", "N L"] {
            assert!(bad.parse::<CountryCode>().is_err(), "{bad:?}");
        }
        let err = "nl".parse::<CountryCode>().unwrap_err().to_string();
        assert!(err.starts_with("\"nl\" is not a country code"), "{err}");
    }

    #[test]
    fn country_codes_serialize_as_strings() {
        assert_eq!(serde_json::to_string(&cc("DE")).unwrap(), "\"DE\"");
        assert_eq!(
            serde_json::from_str::<CountryCode>("\"DE\"").unwrap(),
            cc("DE")
        );
        assert!(serde_json::from_str::<CountryCode>("\"de\"").is_err());
    }

    // ---- CSV ----

    #[test]
    fn csv_fields_follow_rfc_4180_quoting() {
        let fields = split_csv(r#"1.0.0.0,1.0.0.255,13335,"Cloudflare, Inc.""#).unwrap();
        assert_eq!(
            fields,
            ["1.0.0.0", "1.0.0.255", "13335", "Cloudflare, Inc."]
        );
        let fields = split_csv(r#"a,"PJSC ""Kyivstar""",,"""""#).unwrap();
        assert_eq!(fields, ["a", r#"PJSC "Kyivstar""#, "", "\""]);
        assert_eq!(split_csv("a,").unwrap(), ["a", ""]);
        assert_eq!(split_csv(r#""a,b"#), Err(LineProblem::UnterminatedQuote));
        assert_eq!(split_csv(r#""a"b,c"#), Err(LineProblem::TextAfterQuote));
    }

    #[test]
    fn file_names_announce_the_address_format() {
        assert_eq!(
            AddressFormat::from_file_name("asn-ipv4.csv"),
            AddressFormat::Text
        );
        assert_eq!(
            AddressFormat::from_file_name("asn-ipv4-num.csv"),
            AddressFormat::NumericV4
        );
        assert_eq!(
            AddressFormat::from_file_name("geo-whois-asn-country-ipv6-num.csv"),
            AddressFormat::NumericV6
        );
    }

    #[test]
    fn asn_files_are_read() {
        let v4 = parse_asn_csv(ASN_V4.as_bytes(), AddressFormat::Text).unwrap();
        assert_eq!(v4.len(), 11);
        assert_eq!(
            v4[0],
            AsnRange {
                start: ip("1.0.0.0"),
                end: ip("1.0.0.255"),
                asn: 13335,
                name: "Cloudflare, Inc.".into(),
            }
        );
        assert_eq!(v4[2].name, "Enecom,Inc.");
        assert_eq!(v4[7].name, r#"PJSC "Kyivstar""#);
        assert_eq!((v4[8].asn, v4[8].name.as_str()), (135689, ""));
        let v6 = parse_asn_csv(ASN_V6.as_bytes(), AddressFormat::Text).unwrap();
        assert_eq!(v6.len(), 8);
        assert_eq!(v6[7].end, ip("2a02:2e1:7fff:ffff:ffff:ffff:ffff:ffff"));
        assert_eq!(v6[7].name, "Plus.line AG, Frankfurt");
    }

    #[test]
    fn numeric_files_hold_the_same_ranges_as_text_files() {
        let numeric = parse_asn_csv(ASN_V4_NUM.as_bytes(), AddressFormat::NumericV4).unwrap();
        let text = parse_asn_csv(ASN_V4.as_bytes(), AddressFormat::Text).unwrap();
        assert_eq!(numeric.len(), 6);
        assert_eq!(numeric, text[..6]);
        let v6 = parse_asn_csv(
            "42540766411282592856903984951653826560,42540766411283801782723599580828532735,1,x\n"
                .as_bytes(),
            AddressFormat::NumericV6,
        )
        .unwrap();
        assert_eq!(
            (v6[0].start, v6[0].end),
            (ip("2001:db8::"), ip("2001:db8:0:ffff:ffff:ffff:ffff:ffff"))
        );
    }

    #[test]
    fn country_files_are_read_with_crlf() {
        assert!(
            COUNTRY_V6.contains("\r\n"),
            "the fixture must keep its CRLF endings"
        );
        let v6 = parse_country_csv(COUNTRY_V6.as_bytes(), AddressFormat::Text).unwrap();
        assert_eq!(v6.len(), 5);
        assert_eq!(
            v6[4],
            CountryRange {
                start: ip("2a01:4f8::"),
                end: ip("2a01:4ff:ffff:ffff:ffff:ffff:ffff:ffff"),
                country: cc("DE"),
            }
        );
        let v4 = parse_country_csv(COUNTRY_V4.as_bytes(), AddressFormat::Text).unwrap();
        assert_eq!(v4.len(), 14);
        assert_eq!(v4[1].country, cc("CN"));
    }

    #[test]
    fn headers_comments_blank_lines_and_a_bom_are_skipped() {
        let text = "\u{feff}ip_range_start,ip_range_end,country_code\r\n\r\n# note\n1.0.0.0,1.0.0.255,AU\n   \n";
        let ranges = parse_country_csv(text.as_bytes(), AddressFormat::Text).unwrap();
        assert_eq!(ranges.len(), 1);
        assert_eq!(ranges[0].country, cc("AU"));
    }

    // ---- errors ----

    fn asn_error(text: &str, format: AddressFormat) -> String {
        parse_asn_csv(text.as_bytes(), format)
            .unwrap_err()
            .to_string()
    }

    fn country_error(text: &str) -> String {
        parse_country_csv(text.as_bytes(), AddressFormat::Text)
            .unwrap_err()
            .to_string()
    }

    fn rir_error(text: &str) -> String {
        parse_rir_delegated(text.as_bytes())
            .unwrap_err()
            .to_string()
    }

    const GOOD_ASN: &str = "1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"\n# comment\n\n";

    #[test]
    fn asn_errors_name_the_line_and_the_problem() {
        let text = |bad: &str| format!("{GOOD_ASN}{bad}\n");
        let cases = [
            (
                "1.0.0.x,1.0.1.255,1,B",
                r#"line 4: "1.0.0.x" is not an IPv4 address"#,
            ),
            (
                "2001:db8::g,2001:db8::1,1,B",
                r#"line 4: "2001:db8::g" is not an IPv6 address"#,
            ),
            (
                "1.0.1.0,1.0.0.255,1,B",
                "line 4: range start 1.0.1.0 is after its end 1.0.0.255",
            ),
            (
                "1.0.1.0,2001:db8::,1,B",
                "line 4: range 1.0.1.0 - 2001:db8:: mixes IPv4 and IPv6",
            ),
            (
                "1.0.1.0,1.0.1.255,AS13335,B",
                r#"line 4: "AS13335" is not an AS number (decimal, 0 to 4294967295)"#,
            ),
            (
                "1.0.1.0,1.0.1.255,4294967296,B",
                r#"line 4: "4294967296" is not an AS number"#,
            ),
            ("1.0.1.0,1.0.1.255,1", "line 4: expected 4 (ip_range_start"),
            (
                "1.0.1.0,1.0.1.255,1,B,C",
                "line 4: expected 4 (ip_range_start",
            ),
            (
                "1.0.1.0,1.0.1.255,1,\"B",
                "line 4: a quoted field is not closed on its line",
            ),
            (
                "16777472,16777727,1,B",
                r#"line 4: "16777472" is a decimal number"#,
            ),
        ];
        for (bad, expected) in cases {
            let err = asn_error(&text(bad), AddressFormat::Text);
            assert!(err.starts_with(expected), "{bad}: {err}");
        }
        let err = asn_error(
            "1,2,3,x\n4294967296,4294967296,1,x\n",
            AddressFormat::NumericV4,
        );
        assert!(
            err.starts_with(r#"line 2: "4294967296" is not an IPv4 address as a decimal"#),
            "{err}"
        );
        let err = asn_error("1.0.0.0,1.0.0.255,1,x\n", AddressFormat::NumericV6);
        assert!(
            err.starts_with(r#"line 1: "1.0.0.0" is not an IPv6 address as a decimal"#),
            "{err}"
        );
        assert_eq!(
            parse_asn_csv(text("1.0.0.x,1,1,B").as_bytes(), AddressFormat::Text)
                .unwrap_err()
                .line(),
            4
        );
    }

    #[test]
    fn country_errors_name_the_line_and_the_problem() {
        let good = "1.0.0.0,1.0.0.255,AU\r\n";
        let cases = [
            (
                "1.0.1.0,1.0.1.255,au",
                r#"line 2: "au" is not a country code"#,
            ),
            (
                "1.0.1.0,1.0.1.255,AUS",
                r#"line 2: "AUS" is not a country code"#,
            ),
            ("1.0.1.0,1.0.1.255,", r#"line 2: "" is not a country code"#),
            (
                "1.0.1.0,1.0.1.255",
                "line 2: expected 3 (ip_range_start,ip_range_end,country_code) fields, found 2",
            ),
            ("1.0.1.0,1.0.1.255,AU,x", "line 2: expected 3"),
            (
                "1.0.1.0,1.0.0.0,AU",
                "line 2: range start 1.0.1.0 is after its end 1.0.0.0",
            ),
            (
                "1.0.1.0,1.0.1.256,AU",
                r#"line 2: "1.0.1.256" is not an IPv4 address"#,
            ),
        ];
        for (bad, expected) in cases {
            let err = country_error(&format!("{good}{bad}\r\n"));
            assert!(err.starts_with(expected), "{bad}: {err}");
        }
    }

    #[test]
    fn rir_errors_name_the_line_and_the_problem() {
        let head = "2|ripencc|1715554799|3|19830705|20240512|+0200\nripencc|*|ipv4|*|2|summary\n";
        let cases = [
            (
                "ripencc|FR|ipv4|2.0.0|256|20100712|allocated|x",
                r#"line 3: "2.0.0" is not an IPv4 address"#,
            ),
            (
                "ripencc|FR|ipv4|2.0.0.0|0|20100712|allocated|x",
                r#"line 3: "0" is not a number of IPv4 addresses"#,
            ),
            (
                "ripencc|FR|ipv4|2.0.0.0|/24|20100712|allocated|x",
                r#"line 3: "/24" is not a number of IPv4 addresses"#,
            ),
            (
                "ripencc|FR|ipv4|255.255.255.0|512|20100712|allocated|x",
                "line 3: 512 addresses from 255.255.255.0 run past 255.255.255.255",
            ),
            (
                "ripencc|Fr|ipv4|2.0.0.0|256|20100712|allocated|x",
                r#"line 3: "Fr" is not a country code"#,
            ),
            (
                "ripencc|FR|ipv4|2.0.0.0|256|20100712",
                "line 3: expected at least 7",
            ),
            (
                "ripencc|FR|ipv6|2a00::|129|20100712|allocated|x",
                r#"line 3: "129" is not an IPv6 prefix length"#,
            ),
            (
                "ripencc|FR|ipv6|2a00::1|32|20100712|allocated|x",
                "line 3: 2a00::1/32 has host bits set (the network would be 2a00::/32)",
            ),
            (
                "ripencc|FR|ipv6|2.0.0.0|32|20100712|allocated|x",
                r#"line 3: "2.0.0.0" is not an IPv6 address"#,
            ),
            (
                "ripencc|FR|ipv5|2.0.0.0|256|20100712|allocated|x",
                r#"line 3: unknown record type "ipv5""#,
            ),
            (
                "ripencc|FR|ipv4|2.0.0.0|256|20100712|ALLOCATED PA|x",
                r#"line 3: unknown status "ALLOCATED PA""#,
            ),
            (
                "ripencc|EU|asn|3333|1|19930901|alocated|x",
                r#"line 3: unknown status "alocated""#,
            ),
        ];
        for (bad, expected) in cases {
            let err = rir_error(&format!("{head}{bad}\n"));
            assert!(err.starts_with(expected), "{bad}: {err}");
        }
    }

    #[test]
    fn read_errors_name_the_line() {
        let bytes: &[u8] = b"1.0.0.0,1.0.0.255,AU\n1.0.1.0,1.0.1.255,\xff\xfe\n";
        let err = parse_country_csv(bytes, AddressFormat::Text).unwrap_err();
        assert!(matches!(err, ParseError::Read { line: 2, .. }), "{err}");
    }

    // ---- RIR files ----

    #[test]
    fn rir_files_give_delegated_space_only() {
        let ranges = parse_rir_delegated(RIR.as_bytes()).unwrap();
        // 9 ipv4 and 6 ipv6 lines, of which one each is available or reserved; plus one
        // reserved ipv4 line with no country. The version, summary and asn lines are skipped.
        assert_eq!(ranges.len(), 12);
        assert!(ranges.iter().all(|r| r.country != cc("ZZ")));
        assert!(
            !ranges
                .iter()
                .any(|r| r.start == ip("2.56.136.0") || r.start == ip("193.0.24.0"))
        );
        let italy = ranges.iter().find(|r| r.country == cc("IT")).unwrap();
        assert_eq!(
            (italy.start, italy.end),
            (ip("185.40.4.0"), ip("185.40.6.255"))
        );
        let hetzner = ranges.iter().find(|r| r.start == ip("2a01:4f8::")).unwrap();
        assert_eq!(hetzner.end, ip("2a01:4ff:ffff:ffff:ffff:ffff:ffff:ffff"));
    }

    #[test]
    fn rir_banners_extensions_and_iana_records_are_accepted() {
        let text = "# CONDITIONS OF USE\n#\n2.3|apnic|20260926|4||20260925|+1000\n\
                    apnic|*|ipv4|*|2|summary\n\
                    iana|ZZ|ipv4|192.0.0.0|256|20100114|ietf\n\
                    apnic|AU|ipv4|1.0.0.0|256|20110811|assigned|A91872ED|e-stats\n\
                    lacnic||ipv4|177.0.0.0|65536|20100614|reserved\n\
                    lacnic|BR|ipv6|2804::|16|20100614|allocated\n";
        let ranges = parse_rir_delegated(text.as_bytes()).unwrap();
        let found: Vec<_> = ranges.iter().map(|r| (r.start, r.country)).collect();
        assert_eq!(found, [(ip("1.0.0.0"), cc("AU")), (ip("2804::"), cc("BR"))]);
    }

    #[test]
    fn a_count_that_is_not_a_power_of_two_covers_exactly_its_range() {
        let mut data = PrefixData::new();
        let counts = data
            .load_rir_delegated("ripencc|IT|ipv4|185.40.4.0|768|20140102|allocated|x\n".as_bytes())
            .unwrap();
        assert_eq!(
            counts,
            LoadCounts {
                records: 1,
                prefixes: 2
            }
        );
        let country = |a: &str| data.lookup(ip(a)).country;
        assert_eq!(country("185.40.3.255"), None);
        assert_eq!(country("185.40.4.0"), Some(cc("IT")));
        assert_eq!(
            data.country
                .lookup(ip("185.40.5.255"))
                .map(|(_, n, l)| (n, l)),
            Some((ip("185.40.4.0"), 23))
        );
        assert_eq!(
            data.country
                .lookup(ip("185.40.6.0"))
                .map(|(_, n, l)| (n, l)),
            Some((ip("185.40.6.0"), 24))
        );
        assert_eq!(country("185.40.6.255"), Some(cc("IT")));
        assert_eq!(country("185.40.7.0"), None);
    }

    // ---- everything together ----

    fn loaded() -> PrefixData {
        let mut data = PrefixData::new();
        let text = AddressFormat::Text;
        let counts = [
            data.load_asn_csv(ASN_V4.as_bytes(), text).unwrap(),
            data.load_asn_csv(ASN_V6.as_bytes(), text).unwrap(),
            data.load_asn_csv(ASN_V4_NUM.as_bytes(), AddressFormat::NumericV4)
                .unwrap(),
            data.load_country_csv(COUNTRY_V4.as_bytes(), text).unwrap(),
            data.load_country_csv(COUNTRY_V6.as_bytes(), text).unwrap(),
            data.load_rir_delegated(RIR.as_bytes()).unwrap(),
        ];
        let counts = counts.map(|c| (c.records, c.prefixes));
        assert_eq!(
            counts,
            [(11, 12), (8, 9), (6, 7), (14, 16), (5, 5), (12, 14)]
        );
        data
    }

    fn enrichment(asn: Option<u32>, name: Option<&str>, country: Option<&str>) -> Enrichment {
        Enrichment {
            asn,
            as_name: name.map(str::to_owned),
            country: country.map(cc),
        }
    }

    #[test]
    fn lookups_over_the_fixtures_match_hand_computed_answers() {
        let data = loaded();
        // The numeric file repeated six ranges: same prefixes, so nothing new.
        assert_eq!(data.asn.len(), 12 + 9);
        // 193.0.0.0/20 + /21, 2001:67c:2e8::/48, 2a00:1450::/32, 2a01:4f8::/29: in both sources.
        assert_eq!(data.country.len(), 16 + 5 + 14 - 2 - 3);
        let ripe = "Reseaux IP Europeens Network Coordination Centre (RIPE NCC)";
        let cases = [
            (
                "1.0.0.1",
                enrichment(Some(13335), Some("Cloudflare, Inc."), Some("AU")),
            ),
            (
                "::ffff:1.1.1.1",
                enrichment(Some(13335), Some("Cloudflare, Inc."), Some("AU")),
            ),
            ("1.0.2.1", enrichment(None, None, Some("CN"))),
            // Real country files nest ranges (a geofeed /32 inside a whois /23): the most
            // specific wins, which a search over sorted ranges would get wrong.
            ("2.58.197.14", enrichment(None, None, Some("DE"))),
            ("2.58.197.15", enrichment(None, None, Some("BE"))),
            ("2.58.197.16", enrichment(None, None, Some("DE"))),
            (
                "1.0.100.1",
                enrichment(Some(18144), Some("Enecom,Inc."), Some("JP")),
            ),
            (
                "5.39.95.255",
                enrichment(Some(16276), Some("OVH SAS"), Some("FR")),
            ),
            ("5.39.96.0", enrichment(None, None, Some("FR"))),
            ("5.39.128.0", enrichment(None, None, None)),
            (
                "31.144.1.1",
                enrichment(Some(15895), Some(r#"PJSC "Kyivstar""#), Some("UA")),
            ),
            ("103.10.233.255", enrichment(Some(135689), None, None)),
            (
                "193.0.14.129",
                enrichment(Some(25152), Some(ripe), Some("NL")),
            ),
            ("193.0.23.255", enrichment(None, None, Some("NL"))),
            ("193.0.24.0", enrichment(None, None, None)),
            ("2.56.136.1", enrichment(None, None, None)),
            ("10.0.0.1", enrichment(None, None, None)),
            (
                "2001:67c:2e8:22::c100:68b",
                enrichment(Some(3333), Some(ripe), Some("NL")),
            ),
            (
                "2001:7fd::1",
                enrichment(Some(25152), Some(ripe), Some("NL")),
            ),
            ("2001:200::1", enrichment(None, None, Some("JP"))),
            (
                "2a02:2e1:7fff:ffff:ffff:ffff:ffff:ffff",
                enrichment(Some(12306), Some("Plus.line AG, Frankfurt"), Some("DE")),
            ),
            ("2a02:2e1:8000::", enrichment(None, None, Some("DE"))),
            ("2a02:2e2::", enrichment(None, None, None)),
            ("2001:db8::1", enrichment(None, None, None)),
        ];
        for (address, expected) in cases {
            assert_eq!(data.lookup(ip(address)), expected, "{address}");
        }
    }

    #[test]
    fn organization_names_are_shared_between_prefixes() {
        let data = loaded();
        let a = data.asn.lookup(ip("1.0.0.1")).unwrap().0;
        let b = data.asn.lookup(ip("2606:4700::1")).unwrap().0;
        assert!(Arc::ptr_eq(&a.name, &b.name));
    }

    #[test]
    fn a_more_specific_prefix_from_an_earlier_file_still_wins() {
        let mut data = PrefixData::new();
        data.load_country_csv(
            "193.0.14.0,193.0.14.255,SE\n".as_bytes(),
            AddressFormat::Text,
        )
        .unwrap();
        data.load_country_csv(
            "193.0.0.0,193.0.23.255,NL\n".as_bytes(),
            AddressFormat::Text,
        )
        .unwrap();
        assert_eq!(data.lookup(ip("193.0.14.1")).country, Some(cc("SE")));
        assert_eq!(data.lookup(ip("193.0.15.1")).country, Some(cc("NL")));
    }

    #[test]
    fn enrichment_serializes_for_storage() {
        let found = enrichment(Some(3333), Some("RIPE NCC"), Some("NL"));
        let json = serde_json::to_string(&found).unwrap();
        assert_eq!(json, r#"{"asn":3333,"as_name":"RIPE NCC","country":"NL"}"#);
        assert_eq!(serde_json::from_str::<Enrichment>(&json).unwrap(), found);
        assert_eq!(
            serde_json::from_str::<Enrichment>("{}").unwrap(),
            Enrichment::default()
        );
    }
}
