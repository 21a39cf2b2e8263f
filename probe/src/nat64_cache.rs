//! The NAT64 prefix of the probe's network (RFC 7050), discovered once and kept for the TTL of
//! the answer instead of asking `ipv4only.arpa` on every measurement and self-test.
//!
//! RFC 7050 §3.1: the node honours the TTL of the synthesised AAAA and discovers again when it
//! expires, and when the network changes. The network is what the probe can see without
//! sending anything: the resolver it asks, the source address the kernel picks towards an
//! address under the well-known prefix, and the interfaces of the default routes; any change
//! there discovers again.
//!
//! [`Nat64Cache`] is pure (the time is handed in); [`discover`] is the I/O around it: one AAAA
//! query over UDP to the system resolver, read with its TTL. When that cannot be asked (no
//! usable resolver, no answer) the old lookup through the C library runs instead, uncached:
//! it has no TTL to honour.

use sixmap_shared::nat64::Nat64Prefix;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// Longest an answer is kept whatever its TTL says: a day, as a bound on a wrong TTL.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long "no prefix" (an answer without a synthesised AAAA) is kept: the SOA's negative
/// TTL is not read, so a short fixed time, after which a network that gained DNS64 is seen.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(300);
/// Bound on the query.
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
/// 192.0.0.170 under `64:ff9b::/96`: the kernel's source address towards it names the network.
const PROBE_TARGET: Ipv6Addr = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0xc000, 0x00aa);
const TYPE_AAAA: u16 = 28;

/// What the probe sees of its network; a change discovers the prefix again.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Network {
    pub resolver: Option<IpAddr>,
    pub source: Option<IpAddr>,
    pub default_v6: Option<String>,
    pub default_v4: Option<String>,
}

#[derive(Debug, Clone)]
struct Cached {
    network: Network,
    prefix: Option<Nat64Prefix>,
    until: Instant,
}

/// The last discovery, for the network it was made on.
#[derive(Debug, Default)]
pub struct Nat64Cache {
    last: Mutex<Option<Cached>>,
    /// Discoveries made (queries sent), for tests and logs.
    queries: std::sync::atomic::AtomicU64,
}

impl Nat64Cache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The cached prefix (`Some(None)`: known to be none) if it was found on `network` and
    /// has not expired at `now`.
    pub fn get(&self, network: &Network, now: Instant) -> Option<Option<Nat64Prefix>> {
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        last.as_ref()
            .filter(|c| c.network == *network && now < c.until)
            .map(|c| c.prefix)
    }

    /// Keeps what a discovery on `network` found at `now`, for `ttl` (bounded by
    /// [`MAX_TTL`]).
    pub fn put(&self, network: Network, prefix: Option<Nat64Prefix>, ttl: Duration, now: Instant) {
        let until = now + ttl.min(MAX_TTL);
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(Cached {
            network,
            prefix,
            until,
        });
    }

    /// Queries sent by [`discover`] through this cache.
    pub fn queries(&self) -> u64 {
        self.queries.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The process's cache: the probe is on one network at a time.
pub fn shared() -> &'static Nat64Cache {
    static CACHE: OnceLock<Nat64Cache> = OnceLock::new();
    CACHE.get_or_init(Nat64Cache::new)
}

/// The NAT64 prefix from the answers to `ipv4only.arpa` AAAA with their TTLs: the prefix as
/// [`crate::netinfo::nat64_prefix`] reads it, and how long to keep it (the smallest TTL of
/// the AAAA records; [`NEGATIVE_TTL`] without a prefix).
pub fn prefix_and_ttl(answers: &[(Ipv6Addr, u32)]) -> (Option<Nat64Prefix>, Duration) {
    let addresses: Vec<IpAddr> = answers.iter().map(|(a, _)| IpAddr::V6(*a)).collect();
    match crate::netinfo::nat64_prefix(&addresses) {
        Some(prefix) => {
            let ttl = answers.iter().map(|(_, ttl)| *ttl).min().unwrap_or(0);
            (Some(prefix), Duration::from_secs(u64::from(ttl)))
        }
        None => (None, NEGATIVE_TTL),
    }
}

/// The network as seen now (no packet sent: a UDP socket's connect only picks a route).
pub async fn current_network() -> Network {
    let resolver = crate::dns::system_resolver().await.ok();
    let source = match tokio::net::UdpSocket::bind("[::]:0").await {
        Ok(socket) => match socket.connect((PROBE_TARGET, 53)).await {
            Ok(()) => socket.local_addr().ok().map(|a| a.ip()),
            Err(_) => None,
        },
        Err(_) => None,
    };
    let read = |path: &'static str| async move { tokio::fs::read_to_string(path).await.ok() };
    let default_v6 = read("/proc/net/ipv6_route")
        .await
        .and_then(|t| crate::netinfo::parse_ipv6_default_route(&t));
    let default_v4 = read("/proc/net/route")
        .await
        .and_then(|t| crate::netinfo::parse_ipv4_default_route(&t));
    Network {
        resolver,
        source,
        default_v6,
        default_v4,
    }
}

/// Asks `resolver` for `ipv4only.arpa` AAAA; `None` when it could not be asked or did not
/// answer.
async fn query(resolver: IpAddr) -> Option<Vec<(Ipv6Addr, u32)>> {
    use crate::dns::{transport, wire};
    // A random id, as for every query: an off-path spoofer must not guess it.
    let id = crate::dns::random_id().ok()?;
    let question = wire::Query::new(id, "ipv4only.arpa", TYPE_AAAA, true);
    let server = SocketAddr::new(resolver, 53);
    let deadline = Instant::now() + QUERY_TIMEOUT;
    let (bytes, message) = transport::udp(server, &question, deadline).await.ok()?;
    if message.rcode != 0 {
        // NXDOMAIN or a failure: no synthesis on this network, or not known; a failure
        // (SERVFAIL, REFUSED) is not an answer to keep.
        return (message.rcode == 3).then(Vec::new);
    }
    Some(
        message
            .answers
            .iter()
            .filter(|r| r.rtype == TYPE_AAAA)
            .filter_map(|r| {
                let data: [u8; 16] = bytes.get(r.rdata.clone())?.try_into().ok()?;
                Some((Ipv6Addr::from(data), r.ttl))
            })
            .collect(),
    )
}

/// The NAT64 prefix of the network now: from `cache` while it holds for this network, else
/// discovered (and kept for the answer's TTL). `None`: no prefix, or discovery failed.
pub async fn discover(cache: &Nat64Cache) -> Option<Nat64Prefix> {
    discover_counted(cache).await.prefix
}

/// What [`discover_counted`] found, and the packets it sent for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discovery {
    pub prefix: Option<Nat64Prefix>,
    /// Datagrams sent: 0 when the cache answered, 1 for the query; `None` when the C
    /// library's lookup ran, which sends what it sends (A and AAAA, retries).
    pub packets: Option<u32>,
}

/// [`discover`], saying what it sent, so that a measurement charged for a discovery gets
/// back what was not sent.
pub async fn discover_counted(cache: &Nat64Cache) -> Discovery {
    let network = current_network().await;
    if let Some(known) = cache.get(&network, Instant::now()) {
        return Discovery {
            prefix: known,
            packets: Some(0),
        };
    }
    let fallback = || async {
        Discovery {
            prefix: crate::netinfo::lookup_nat64_prefix().await,
            packets: None,
        }
    };
    let Some(resolver) = network.resolver else {
        return fallback().await;
    };
    cache
        .queries
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let Some(answers) = query(resolver).await else {
        // Not asked or not answered here (a resolver only the C library reaches): the old
        // way, without a TTL to keep it for.
        return fallback().await;
    };
    let (prefix, ttl) = prefix_and_ttl(&answers);
    tracing::debug!(?prefix, ttl_s = ttl.as_secs(), %resolver, "NAT64 prefix discovered");
    cache.put(network, prefix, ttl, Instant::now());
    Discovery {
        prefix,
        packets: Some(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn network(source: &str) -> Network {
        Network {
            resolver: Some("2001:db8::53".parse().unwrap()),
            source: Some(source.parse().unwrap()),
            default_v6: Some("eth0".into()),
            default_v4: None,
        }
    }

    #[test]
    fn the_prefix_is_kept_for_the_ttl_of_the_answer_then_asked_again() {
        let cache = Nat64Cache::new();
        let here = network("2001:db8:1::10");
        let start = Instant::now();
        assert_eq!(cache.get(&here, start), None, "nothing known yet");
        // A /48: the IPv4 address split around bits 64-71.
        let prefix: Nat64Prefix = "2001:db8:64::/48".parse().unwrap();
        let (found, ttl) = prefix_and_ttl(&[
            (prefix.embed(Ipv4Addr::new(192, 0, 0, 170)), 600),
            (prefix.embed(Ipv4Addr::new(192, 0, 0, 171)), 300),
        ]);
        assert_eq!((found, ttl), (Some(prefix), Duration::from_secs(300)));
        cache.put(here.clone(), found, ttl, start);
        assert_eq!(
            cache.get(&here, start + Duration::from_secs(299)),
            Some(Some(prefix))
        );
        assert_eq!(
            cache.get(&here, start + Duration::from_secs(300)),
            None,
            "expired"
        );
    }

    #[test]
    fn a_changed_network_asks_again() {
        let cache = Nat64Cache::new();
        let start = Instant::now();
        let prefix = Nat64Prefix::WELL_KNOWN;
        cache.put(network("2001:db8:1::10"), Some(prefix), MAX_TTL, start);
        assert_eq!(
            cache.get(&network("2001:db8:2::10"), start),
            None,
            "new source"
        );
        let mut other_route = network("2001:db8:1::10");
        other_route.default_v6 = Some("wlan0".into());
        assert_eq!(cache.get(&other_route, start), None, "new default route");
        let mut other_resolver = network("2001:db8:1::10");
        other_resolver.resolver = Some("2001:db8::54".parse().unwrap());
        assert_eq!(cache.get(&other_resolver, start), None, "new resolver");
        assert_eq!(
            cache.get(&network("2001:db8:1::10"), start),
            Some(Some(prefix))
        );
    }

    #[test]
    fn no_prefix_is_kept_briefly_and_a_huge_ttl_is_bounded() {
        let cache = Nat64Cache::new();
        let here = network("2001:db8:1::10");
        let start = Instant::now();
        // ipv4only.arpa answered with its real addresses only (no DNS64), or nothing.
        for answers in [vec![], vec![("2001:db8::1".parse().unwrap(), 86_400)]] {
            assert_eq!(prefix_and_ttl(&answers), (None, NEGATIVE_TTL));
        }
        cache.put(here.clone(), None, NEGATIVE_TTL, start);
        assert_eq!(cache.get(&here, start + NEGATIVE_TTL / 2), Some(None));
        assert_eq!(cache.get(&here, start + NEGATIVE_TTL), None);
        let prefix = Nat64Prefix::WELL_KNOWN;
        cache.put(
            here.clone(),
            Some(prefix),
            Duration::from_secs(u64::from(u32::MAX)),
            start,
        );
        assert_eq!(cache.get(&here, start + MAX_TTL), None, "bounded by a day");
    }
}
