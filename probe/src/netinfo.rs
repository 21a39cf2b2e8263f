//! What the host's network looks like from procfs and the resolver, below both the self-test
//! (`selftest`) and the NAT64 prefix cache (`nat64_cache`): the default routes' interfaces
//! and the RFC 7050 NAT64 prefix. Pure parsing over the files' text, and one lookup.

use sixmap_shared::nat64::Nat64Prefix;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// Bound on each DNS lookup; `getaddrinfo` itself may retry for much longer.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// RTF_REJECT: an unreachable/prohibit route, which carries no traffic.
const RTF_REJECT: u32 = 0x0200;
/// RFC 7050 discovery name; its only A records are the two well-known addresses below.
const NAT64_DISCOVERY_NAME: &str = "ipv4only.arpa";
const WELL_KNOWN_IPV4_ONLY: [Ipv4Addr; 2] =
    [Ipv4Addr::new(192, 0, 0, 170), Ipv4Addr::new(192, 0, 0, 171)];

/// The NAT64 prefix through the C library, uncached (it gives no TTL).
pub(crate) async fn lookup_nat64_prefix() -> Option<Nat64Prefix> {
    lookup(NAT64_DISCOVERY_NAME)
        .await
        .and_then(|answers| nat64_prefix(&answers))
}

/// All addresses the system resolver returns for `name`, or `None` on failure or timeout.
/// On timeout the blocking `getaddrinfo` thread finishes on its own; only the wait is bounded.
pub(crate) async fn lookup(name: &str) -> Option<Vec<IpAddr>> {
    match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((name, 0))).await {
        Ok(Ok(answers)) => Some(answers.map(|a| a.ip()).collect()),
        Ok(Err(_)) | Err(_) => None,
    }
}

/// The interface of the default IPv6 route in `/proc/net/ipv6_route`, lowest metric first.
///
/// Reject routes are skipped: some setups list an unreachable default on `lo`, which must not
/// read as IPv6 connectivity.
pub fn parse_ipv6_default_route(text: &str) -> Option<String> {
    let routes = text.lines().filter_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let &[
            destination,
            prefix_len,
            _,
            _,
            _,
            metric,
            _,
            _,
            flags,
            interface,
        ] = fields.as_slice()
        else {
            return None;
        };
        let is_default = prefix_len == "00" && destination.bytes().all(|b| b == b'0');
        let metric = u32::from_str_radix(metric, 16).ok()?;
        usable_default(is_default, flags)?;
        Some((metric, interface))
    });
    lowest_metric(routes)
}

/// The interface of the default IPv4 route in `/proc/net/route`, lowest metric first.
pub fn parse_ipv4_default_route(text: &str) -> Option<String> {
    let routes = text.lines().filter_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let &[interface, destination, _, flags, _, _, metric, mask, ..] = fields.as_slice() else {
            return None;
        };
        let is_default = destination == "00000000" && mask == "00000000";
        // Unlike ipv6_route, this file prints the metric in decimal.
        let metric = metric.parse().ok()?;
        usable_default(is_default, flags)?;
        Some((metric, interface))
    });
    lowest_metric(routes)
}

fn usable_default(is_default: bool, hex_flags: &str) -> Option<()> {
    let flags = u32::from_str_radix(hex_flags, 16).ok()?;
    (is_default && flags & RTF_REJECT == 0).then_some(())
}

fn lowest_metric<'a>(routes: impl Iterator<Item = (u32, &'a str)>) -> Option<String> {
    routes
        .min_by_key(|&(metric, _)| metric)
        .map(|(_, interface)| interface.to_owned())
}

/// The NAT64 prefix (RFC 7050) from the answers for `ipv4only.arpa`: an IPv6 answer that
/// embeds a well-known IPv4-only address at one of RFC 6052's positions, which gives the
/// prefix and its length.
pub fn nat64_prefix(answers: &[IpAddr]) -> Option<Nat64Prefix> {
    answers.iter().find_map(|answer| match answer {
        IpAddr::V6(v6) => Nat64Prefix::discover(*v6, &WELL_KNOWN_IPV4_ONLY),
        IpAddr::V4(_) => None,
    })
}
