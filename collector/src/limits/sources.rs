//! Counting what each source holds (connections, streams), so that one client cannot take
//! a whole budget. A source is an IPv4 address or an IPv6 /64 (a host usually has a whole
//! /64, so counting single IPv6 addresses would count nothing); IPv4-mapped IPv6 addresses
//! count as the IPv4 address. Sources in the exempt list (by default loopback: a reverse
//! proxy on the same host, whose own limits apply) are counted but never refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The key a peer address is counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    V4([u8; 4]),
    /// The first 64 bits.
    V6Net([u8; 8]),
}

impl Source {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4.octets()),
                None => {
                    let o = v6.octets();
                    Self::V6Net([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
                }
            },
        }
    }
}

/// An address prefix (`::1/128`, `127.0.0.0/8`) of sources that are never refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exempt {
    pub network: IpAddr,
    pub len: u8,
}

impl std::str::FromStr for Exempt {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let (addr, len) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not an address or address/length"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{text:?}: prefix length must be 0..={max}"))?,
        };
        Ok(Self { network, len })
    }
}

impl Exempt {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Per-source counts with a cap. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct PerSource {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cap: usize,
    exempt: Vec<Exempt>,
    counts: Mutex<HashMap<Source, usize>>,
}

/// One unit held by a source; released on drop.
#[derive(Debug)]
pub struct SourceSlot {
    inner: Arc<Inner>,
    source: Source,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.inner.counts.lock()
            && let Some(n) = counts.get_mut(&self.source)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.source);
            }
        }
    }
}

impl PerSource {
    pub fn new(cap: usize, exempt: &[Exempt]) -> Self {
        Self {
            inner: Arc::new(Inner {
                cap,
                exempt: exempt.to_vec(),
                counts: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A slot for `ip`'s source, or `None` when that source holds its cap already.
    pub fn try_take(&self, ip: IpAddr) -> Option<SourceSlot> {
        let source = Source::of(ip);
        let exempt = self.inner.exempt.iter().any(|e| e.contains(ip));
        let mut counts = self.inner.counts.lock().ok()?;
        let n = counts.entry(source).or_insert(0);
        if *n >= self.inner.cap && !exempt {
            return None;
        }
        *n += 1;
        Some(SourceSlot {
            inner: self.inner.clone(),
            source,
        })
    }

    /// Units `ip`'s source holds now.
    pub fn held(&self, ip: IpAddr) -> usize {
        self.inner
            .counts
            .lock()
            .map(|c| c.get(&Source::of(ip)).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    pub fn cap(&self) -> usize {
        self.inner.cap
    }
}

/// Sources followed by a [`PerSourceRate`] at most: beyond, sources with a full bucket are
/// forgotten, and if none is, new sources pass unchecked (the concurrency caps still bound
/// what they hold) rather than the map growing without bound.
const MAX_RATED_SOURCES: usize = 65_536;

/// Per-source rate of an event (a TLS handshake) with a burst: a token bucket per source.
/// The time is a parameter, so the rule is tested without the clock. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PerSourceRate {
    inner: Arc<RateInner>,
}

#[derive(Debug)]
struct RateInner {
    per_second: f64,
    burst: f64,
    exempt: Vec<Exempt>,
    buckets: Mutex<HashMap<Source, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant, per_second: f64, burst: f64) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second).min(burst);
        self.at = now;
    }
}

impl PerSourceRate {
    pub fn new(per_second: u32, burst: usize, exempt: &[Exempt]) -> Self {
        Self {
            inner: Arc::new(RateInner {
                per_second: f64::from(per_second),
                burst: burst.max(1) as f64,
                exempt: exempt.to_vec(),
                buckets: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Whether `ip`'s source may have one more event at `now` (and counts it if so).
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        if self.inner.exempt.iter().any(|e| e.contains(ip)) {
            return true;
        }
        let (per_second, burst) = (self.inner.per_second, self.inner.burst);
        let source = Source::of(ip);
        let Ok(mut buckets) = self.inner.buckets.lock() else {
            return true;
        };
        if buckets.len() >= MAX_RATED_SOURCES && !buckets.contains_key(&source) {
            buckets.retain(|_, b| {
                b.refill(now, per_second, burst);
                b.tokens < burst
            });
            if buckets.len() >= MAX_RATED_SOURCES {
                return true;
            }
        }
        let bucket = buckets.entry(source).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        bucket.refill(now, per_second, burst);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn sources_are_v4_addresses_and_v6_64s_with_exemptions() {
        assert_eq!(
            Source::of(ip("2001:db8:1:2::1")),
            Source::of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            Source::of(ip("2001:db8:1:2::1")),
            Source::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            Source::of(ip("::ffff:192.0.2.1")),
            Source::of(ip("192.0.2.1"))
        );
        let exempt: Vec<Exempt> = ["::1", "127.0.0.0/8"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert!("10.0.0.0/33".parse::<Exempt>().is_err());
        assert!("nonsense".parse::<Exempt>().is_err());
        let caps = PerSource::new(2, &exempt);
        let a = caps.try_take(ip("2001:db8::1")).unwrap();
        let _b = caps.try_take(ip("2001:db8::2")).unwrap();
        assert!(caps.try_take(ip("2001:db8::3")).is_none(), "same /64");
        assert!(caps.try_take(ip("2001:db8:0:1::3")).is_some(), "other /64");
        drop(a);
        assert!(caps.try_take(ip("2001:db8::3")).is_some());
        for _ in 0..5 {
            std::mem::forget(caps.try_take(ip("::ffff:127.0.0.2")).unwrap());
            std::mem::forget(caps.try_take(ip("::1")).unwrap());
        }
        assert_eq!(caps.held(ip("127.0.0.2")), 5);
    }

    #[test]
    fn a_source_gets_its_burst_then_its_rate_and_others_are_not_affected() {
        let rate = PerSourceRate::new(2, 4, &["::1".parse().unwrap()]);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + std::time::Duration::from_millis(ms);
        let a = ip("2001:db8::1");
        for _ in 0..4 {
            assert!(rate.allow(a, t0));
        }
        assert!(!rate.allow(a, t0), "burst spent");
        assert!(!rate.allow(ip("2001:db8::2"), at(100)), "the same /64");
        assert!(rate.allow(ip("2001:db8:0:1::1"), t0), "another /64");
        assert!(rate.allow(a, at(500)), "2/s: one more after half a second");
        assert!(!rate.allow(a, at(500)));
        assert!(rate.allow(a, at(10_000)), "refilled");
        for _ in 0..100 {
            assert!(rate.allow(ip("::1"), t0), "exempt");
        }
    }

    #[test]
    fn the_followed_sources_stay_bounded() {
        let rate = PerSourceRate::new(1, 1, &[]);
        let t0 = Instant::now();
        for i in 0..(MAX_RATED_SOURCES as u32 + 10) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            assert!(rate.allow(ip, t0), "first event of a new source");
        }
        assert!(rate.inner.buckets.lock().unwrap().len() <= MAX_RATED_SOURCES);
        // Once their buckets refill, old sources are forgotten to make room.
        let later = t0 + std::time::Duration::from_secs(5);
        assert!(rate.allow(ip("192.0.2.1"), later));
        assert!(!rate.allow(ip("192.0.2.1"), later), "followed again");
    }
}
