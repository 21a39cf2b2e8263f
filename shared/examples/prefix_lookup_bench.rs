//! Longest-prefix-match speed at the size of the real `@ip-location-db/asn` files.
//!
//! cargo run --release -p sixmap-shared --example prefix_lookup_bench [LOOKUPS]
//!
//! Builds a `PrefixTable<AsInfo>` of ~600k synthetic IPv4 and ~150k IPv6 prefixes whose lengths
//! follow the mix of a global BGP table, then times single-threaded lookups of random
//! addresses (all of the unicast space, so many miss and probe every length) and of addresses
//! inside stored prefixes (hits), per family. It also loads the same prefixes written as an
//! asn CSV through `PrefixData`, the collector's path at startup. Memory is the growth of the
//! process's resident set (Linux only). A fixed seed makes runs comparable.

use sixmap_shared::prefixes::{AddressFormat, AsInfo, PrefixData, PrefixTable};
use std::error::Error;
use std::fmt::Write as _;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Instant;

const V4_PREFIXES: usize = 600_000;
const V6_PREFIXES: usize = 150_000;
const OPERATORS: u32 = 75_000;

/// (length, parts per million): roughly the shape of the routing tables, where /24 and /48
/// dominate and short prefixes are rare (a dozen /8s, not hundreds).
const V4_LENGTHS: &[(u8, u32)] = &[
    (8, 20),
    (12, 100),
    (14, 500),
    (16, 20_000),
    (17, 10_000),
    (18, 20_000),
    (19, 35_000),
    (20, 60_000),
    (21, 60_000),
    (22, 120_000),
    (23, 100_000),
    (24, 574_380),
];
const V6_LENGTHS: &[(u8, u32)] = &[
    (29, 30_000),
    (32, 180_000),
    (36, 40_000),
    (40, 60_000),
    (44, 80_000),
    (46, 30_000),
    (47, 30_000),
    (48, 520_000),
    (56, 15_000),
    (64, 15_000),
];

/// splitmix64: tiny and seedable, good enough to scatter prefixes and addresses.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn next_u128(&mut self) -> u128 {
        (u128::from(self.next()) << 64) | u128::from(self.next())
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn length(&mut self, weights: &[(u8, u32)]) -> u8 {
        let total: u32 = weights.iter().map(|&(_, w)| w).sum();
        let mut pick = self.below(total.into()) as u32;
        for &(len, weight) in weights {
            if pick < weight {
                return len;
            }
            pick -= weight;
        }
        weights.last().map_or(0, |&(len, _)| len)
    }
}

fn mask_v4(bits: u32, len: u8) -> u32 {
    bits & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask_v6(bits: u128, len: u8) -> u128 {
    bits & u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

/// A unicast IPv4 address: 1.0.0.0 to 223.255.255.255.
fn random_v4(rng: &mut Rng) -> u32 {
    0x0100_0000 + rng.below(0xdf00_0000) as u32
}

/// A global unicast IPv6 address: 2000::/3.
fn random_v6(rng: &mut Rng) -> u128 {
    (rng.next_u128() >> 3) | (1u128 << 125)
}

fn v4_prefixes(rng: &mut Rng) -> Vec<(Ipv4Addr, u8)> {
    (0..V4_PREFIXES)
        .map(|_| {
            let len = rng.length(V4_LENGTHS);
            (Ipv4Addr::from_bits(mask_v4(random_v4(rng), len)), len)
        })
        .collect()
}

fn v6_prefixes(rng: &mut Rng) -> Vec<(Ipv6Addr, u8)> {
    (0..V6_PREFIXES)
        .map(|_| {
            let len = rng.length(V6_LENGTHS);
            (Ipv6Addr::from_bits(mask_v6(random_v6(rng), len)), len)
        })
        .collect()
}

/// Resident memory in KiB, from /proc (Linux); `None` elsewhere.
fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn operators() -> Vec<AsInfo> {
    (1..=OPERATORS)
        .map(|asn| AsInfo {
            asn: asn * 3,
            name: Arc::from(format!("Example Networks {asn}, Ltd")),
        })
        .collect()
}

fn build_table(
    v4: &[(Ipv4Addr, u8)],
    v6: &[(Ipv6Addr, u8)],
    operators: &[AsInfo],
) -> Result<PrefixTable<AsInfo>, Box<dyn Error>> {
    let mut table = PrefixTable::new();
    let all = v4
        .iter()
        .map(|&(n, len)| (IpAddr::V4(n), len))
        .chain(v6.iter().map(|&(n, len)| (IpAddr::V6(n), len)));
    for (i, (network, len)) in all.enumerate() {
        table.insert(network, len, operators[i % operators.len()].clone())?;
    }
    Ok(table)
}

/// Lookups per second over `addresses`, and the share that found a prefix.
fn time_lookups(table: &PrefixTable<AsInfo>, addresses: &[IpAddr]) -> (f64, f64) {
    let started = Instant::now();
    let mut found = 0usize;
    for &address in addresses {
        if let Some((info, _, _)) = table.lookup(black_box(address)) {
            found += 1;
            black_box(info.asn);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    (
        addresses.len() as f64 / seconds,
        found as f64 / addresses.len() as f64,
    )
}

/// The prefixes written as an asn CSV file, as ranges, with quoted organization names.
fn as_csv(v4: &[(Ipv4Addr, u8)], v6: &[(Ipv6Addr, u8)]) -> String {
    let mut csv = String::new();
    for (i, &(network, len)) in v4.iter().enumerate() {
        let last = Ipv4Addr::from_bits(network.to_bits() | !mask_v4(u32::MAX, len));
        let asn = (i as u32 % OPERATORS + 1) * 3;
        let _ = writeln!(
            csv,
            "{network},{last},{asn},\"Example Networks {asn}, Ltd\""
        );
    }
    for (i, &(network, len)) in v6.iter().enumerate() {
        let last = Ipv6Addr::from_bits(network.to_bits() | !mask_v6(u128::MAX, len));
        let asn = (i as u32 % OPERATORS + 1) * 3;
        let _ = writeln!(
            csv,
            "{network},{last},{asn},\"Example Networks {asn}, Ltd\""
        );
    }
    csv
}

fn main() -> Result<(), Box<dyn Error>> {
    let lookups: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 5_000_000,
    };
    let mut rng = Rng(0x5158_4d41_5000_0001);
    let v4 = v4_prefixes(&mut rng);
    let v6 = v6_prefixes(&mut rng);
    let operators = operators();

    let before = resident_kib();
    let started = Instant::now();
    let table = build_table(&v4, &v6, &operators)?;
    let build = started.elapsed();
    let after = resident_kib();
    println!(
        "built {} distinct prefixes ({} v4 + {} v6 inserted) in {:.0} ms",
        table.len(),
        v4.len(),
        v6.len(),
        build.as_secs_f64() * 1e3
    );
    if let (Some(before), Some(after)) = (before, after) {
        println!(
            "resident memory grew by {:.1} MiB ({:.0} bytes per prefix)",
            (after.saturating_sub(before)) as f64 / 1024.0,
            (after.saturating_sub(before) * 1024) as f64 / table.len() as f64
        );
    }

    let random_v4s: Vec<IpAddr> = (0..lookups)
        .map(|_| IpAddr::V4(Ipv4Addr::from_bits(random_v4(&mut rng))))
        .collect();
    let random_v6s: Vec<IpAddr> = (0..lookups)
        .map(|_| IpAddr::V6(Ipv6Addr::from_bits(random_v6(&mut rng))))
        .collect();
    let inside_v4s: Vec<IpAddr> = (0..lookups)
        .map(|_| {
            let (network, len) = v4[rng.below(v4.len() as u64) as usize];
            let host = random_v4(&mut rng) & !mask_v4(u32::MAX, len);
            IpAddr::V4(Ipv4Addr::from_bits(network.to_bits() | host))
        })
        .collect();
    let inside_v6s: Vec<IpAddr> = (0..lookups)
        .map(|_| {
            let (network, len) = v6[rng.below(v6.len() as u64) as usize];
            let host = rng.next_u128() & !mask_v6(u128::MAX, len);
            IpAddr::V6(Ipv6Addr::from_bits(network.to_bits() | host))
        })
        .collect();
    let cases = [
        ("IPv4, random unicast", &random_v4s),
        ("IPv4, inside a stored prefix", &inside_v4s),
        ("IPv6, random in 2000::/3", &random_v6s),
        ("IPv6, inside a stored prefix", &inside_v6s),
    ];
    for (name, addresses) in cases {
        let (rate, found) = time_lookups(&table, addresses);
        println!(
            "{name:<30} {:>6.2} M lookups/s, {:>5.1}% found",
            rate / 1e6,
            found * 100.0
        );
    }

    let csv = as_csv(&v4, &v6);
    let started = Instant::now();
    let mut data = PrefixData::new();
    let counts = data.load_asn_csv(csv.as_bytes(), AddressFormat::Text)?;
    println!(
        "loaded the same as an asn CSV ({:.1} MiB, {} lines) into PrefixData in {:.0} ms",
        csv.len() as f64 / (1024.0 * 1024.0),
        counts.records,
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}
