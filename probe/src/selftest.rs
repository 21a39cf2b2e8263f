//! The probe's self-test: facts about its own connectivity, which the collector turns into
//! tags (the probe never names its own tags).
//!
//! Everything comes from Linux procfs and sysfs and the system resolver. A missing or unreadable
//! file means "not present" (no route, no address, unknown kind): the self-test describes what
//! the probe can see and never fails, so a container without `/sys` still reports something.
//! The parsing is pure functions over the files' text, tested on fixtures.

use crate::netinfo::lookup;
pub use crate::netinfo::{nat64_prefix, parse_ipv4_default_route, parse_ipv6_default_route};
use sixmap_shared::UnixMicros;
use sixmap_shared::health::{InterfaceKind, MAX_NAME_LEN, MAX_SELF_TEST_V4_ADDRESSES, SelfTest};
use sixmap_shared::nat64::Nat64Prefix;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// Runs the self-test against the host's `/proc`, `/sys` and resolver.
///
/// `aaaa_resolved` is `Some(any IPv6 answer)` when the lookup returned, and `None` when it
/// failed or timed out: `getaddrinfo` does not reliably tell "no such name / no AAAA" from "no
/// resolver reachable", so a failure is reported as unknown rather than as a negative answer.
///
/// `collector` is the collector's URL: the self-test tries a TCP connection to it over IPv6.
pub async fn run(aaaa_name: &str, collector: Option<&str>, now: UnixMicros) -> SelfTest {
    let mut test = run_at(Path::new("/"), aaaa_name, now).await;
    if let Some(url) = collector {
        test.collector_v6 = collector_reachable_v6(url).await;
    }
    test
}

/// The self-test with procfs and sysfs read under `root`, so tests can supply a fake tree.
async fn run_at(root: &Path, aaaa_name: &str, now: UnixMicros) -> SelfTest {
    let (aaaa_resolved, nat64_prefix) =
        tokio::join!(resolves_aaaa(aaaa_name), discover_nat64_prefix());
    let global_v6_address = read(root, "proc/net/if_inet6")
        .await
        .is_some_and(|text| has_global_v6_address(&text));
    let v6_route_interface = read(root, "proc/net/ipv6_route")
        .await
        .and_then(|text| parse_ipv6_default_route(&text));
    let default_route_v4 = read(root, "proc/net/route")
        .await
        .and_then(|text| parse_ipv4_default_route(&text))
        .is_some();
    let v4_addresses = read(root, "proc/net/fib_trie")
        .await
        .map(|text| parse_fib_trie_local(&text))
        .unwrap_or_default();
    let (v6_route_interface_kind, v6_route_mtu) = match &v6_route_interface {
        Some(name) => (
            read_interface_kind(root, name).await,
            read_mtu(root, name).await,
        ),
        None => (InterfaceKind::Unknown, None),
    };
    let clat = has_clat(&v4_addresses, &list_interfaces(root).await);
    SelfTest {
        tested_at: now,
        default_route_v6: v6_route_interface.is_some(),
        default_route_v4,
        v4_addresses,
        v6_route_interface,
        v6_route_interface_kind,
        v6_route_mtu,
        aaaa_name: bounded_name(aaaa_name).to_owned(),
        aaaa_resolved,
        nat64_prefix,
        clat,
        global_v6_address,
        collector_v6: None,
    }
}

/// Whether `/proc/net/if_inet6` lists a global unicast address (2000::/3): what a host needs
/// to reach the IPv6 Internet without translation.
pub fn has_global_v6_address(if_inet6: &str) -> bool {
    if_inet6
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|hex| u128::from_str_radix(hex, 16).ok())
        .any(|address| address >> 125 == 0b001)
}

const COLLECTOR_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// A TCP connection to the collector's host and port over IPv6: `Some(connected)`, or `None`
/// when the URL names no IPv6 address (an IPv4 literal, a name without AAAA, no resolver).
pub async fn collector_reachable_v6(url: &str) -> Option<bool> {
    let uri: tonic::transport::Uri = url.parse().ok()?;
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    let address = match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => IpAddr::V6(v6),
        Ok(IpAddr::V4(_)) => return None,
        Err(_) => lookup(host).await?.into_iter().find(IpAddr::is_ipv6)?,
    };
    let connect = tokio::net::TcpStream::connect((address, port));
    Some(matches!(
        tokio::time::timeout(COLLECTOR_CONNECT_TIMEOUT, connect).await,
        Ok(Ok(_))
    ))
}

/// The NAT64 prefix the system resolver reveals (RFC 7050: the AAAA it gives `ipv4only.arpa`),
/// or `None` when there is none or the lookup failed; kept for the answer's TTL on the same
/// network ([`crate::nat64_cache`]).
pub(crate) async fn discover_nat64_prefix() -> Option<Nat64Prefix> {
    crate::nat64_cache::discover(crate::nat64_cache::shared()).await
}

async fn read(root: &Path, relative: &str) -> Option<String> {
    tokio::fs::read_to_string(root.join(relative)).await.ok()
}

async fn resolves_aaaa(name: &str) -> Option<bool> {
    // A name longer than DNS allows cannot resolve, and the collector would refuse the
    // self-test carrying it whole: report "could not run" with the name cut to the limit.
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return None;
    }
    lookup(name)
        .await
        .map(|answers| answers.iter().any(IpAddr::is_ipv6))
}

fn bounded_name(name: &str) -> &str {
    let mut end = name.len().min(MAX_NAME_LEN);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// `root/sys/class/net/<name>/<file>`, refusing names that would leave that directory: the
/// name comes from a procfs file, and the kernel forbids '/' in names, but a path is built here.
fn interface_path(root: &Path, name: &str, file: &str) -> Option<PathBuf> {
    let safe = !name.is_empty() && name != "." && name != ".." && !name.contains('/');
    safe.then(|| root.join("sys/class/net").join(name).join(file))
}

async fn read_interface_file(root: &Path, name: &str, file: &str) -> Option<String> {
    let path = interface_path(root, name, file)?;
    tokio::fs::read_to_string(path).await.ok()
}

async fn read_interface_kind(root: &Path, name: &str) -> InterfaceKind {
    read_interface_file(root, name, "type")
        .await
        .and_then(|text| text.trim().parse().ok())
        .map_or(InterfaceKind::Unknown, interface_kind)
}

async fn read_mtu(root: &Path, name: &str) -> Option<u32> {
    let text = read_interface_file(root, name, "mtu").await?;
    text.trim().parse().ok()
}

async fn list_interfaces(root: &Path) -> Vec<String> {
    let Ok(mut entries) = tokio::fs::read_dir(root.join("sys/class/net")).await else {
        return Vec::new();
    };
    let mut names = Vec::new();
    while let Ok(Some(entry)) = entries.next_entry().await {
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    names
}

/// The host's own IPv4 addresses from `/proc/net/fib_trie`: the `/32 host LOCAL` leaves of the
/// Local table, loopback excluded, deduplicated, at most [`MAX_SELF_TEST_V4_ADDRESSES`].
///
/// Reading the table avoids `getifaddrs`, which would need `unsafe`. Only the `Local:` table
/// is read: with merged tables the kernel prints the same leaves under `Main:` too, and other
/// tables (`Id 100:`) belong to VRFs.
pub fn parse_fib_trie_local(text: &str) -> Vec<Ipv4Addr> {
    let mut in_local = false;
    let mut leaf = None;
    let mut addresses = Vec::new();
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            in_local = line.trim_end() == "Local:";
            leaf = None;
            continue;
        }
        if !in_local {
            continue;
        }
        let line = line.trim();
        if let Some(address) = line.strip_prefix("|-- ") {
            leaf = address.parse::<Ipv4Addr>().ok();
        } else if line.starts_with("+-- ") {
            leaf = None;
        } else if let Some(address) = leaf
            && is_host_local(line)
            && !address.is_loopback()
            && !addresses.contains(&address)
        {
            addresses.push(address);
            if addresses.len() == MAX_SELF_TEST_V4_ADDRESSES {
                break;
            }
        }
    }
    addresses
}

/// An alias line such as `/32 host LOCAL` (possibly followed by ` tos=N`).
fn is_host_local(line: &str) -> bool {
    let mut fields = line.split_whitespace();
    fields.next() == Some("/32") && fields.next().is_some() && fields.next() == Some("LOCAL")
}

/// The kind of an interface from its ARPHRD type (`/sys/class/net/<if>/type`).
pub fn interface_kind(arphrd: u32) -> InterfaceKind {
    match arphrd {
        1 => InterfaceKind::Ethernet,
        512 => InterfaceKind::Ppp,
        772 => InterfaceKind::Loopback,
        776 => InterfaceKind::Sit,
        // IPIP, ip6ip6, GRE, ip6gre, and ARPHRD_NONE used by WireGuard and TUN devices.
        768 | 769 | 778 | 823 | 65534 => InterfaceKind::Tunnel,
        _ => InterfaceKind::Other,
    }
}

/// A CLAT is present when the host holds an address of 192.0.0.0/29 (RFC 7335, reserved for
/// it) or has an interface named like the common implementations' (`clat*`, Android `v4-*`).
pub fn has_clat(v4_addresses: &[Ipv4Addr], interface_names: &[String]) -> bool {
    let clat_address = v4_addresses.iter().any(|a| {
        let o = a.octets();
        o[0] == 192 && o[1] == 0 && o[2] == 0 && o[3] < 8
    });
    clat_address
        || interface_names
            .iter()
            .any(|name| name.starts_with("clat") || name.starts_with("v4-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/net/ipv6_route` of a container host: default via eth0, plus the unreachable
    /// default the kernel lists on `lo` (flags 0x00200200, RTF_REJECT set).
    const IPV6_ROUTE_REAL: &str = "\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo
fd000000000000000000000000000002 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000003 00000000 80200001     eth0
fe8000000000000000fc00fffe000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001     eth0
ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000003 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
";

    /// An IPv4-only host: only the reject default on `lo`.
    const IPV6_ROUTE_NO_DEFAULT: &str = "\
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
";

    /// A 6in4 tunnel (Hurricane Electric style): the default goes over the sit device, with a
    /// worse-metric default over eth0 listed first.
    const IPV6_ROUTE_SIT: &str = "\
20010470001f0b2a0000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001  he-ipv6
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000800 00000001 00000000 00000003     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 00000400 00000001 00000000 00000001  he-ipv6
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
";

    const ROUTE_REAL: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT                                                       
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0                                                                               
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0                                                                               
";

    /// Two defaults (Wi-Fi preferred by metric) and an unreachable default (`*`, RTF_REJECT).
    const ROUTE_TWO_DEFAULTS: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
*\t00000000\t00000000\t0201\t0\t0\t0\t00000000\t0\t0\t0
eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
wlan0\t00000000\t0101A8C0\t0003\t0\t0\t20\t00000000\t0\t0\t0
wlan0\t0001A8C0\t00000000\t0001\t0\t0\t20\t00FFFFFF\t0\t0\t0
";

    const ROUTE_NO_DEFAULT: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
";

    /// This machine's file: merged tables, so the same leaves appear under Main and Local.
    const FIB_TRIE_REAL: &str = "\
Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 192.0.2.0/24 2 0 2
        +-- 192.0.2.0/30 2 0 2
           |-- 192.0.2.0
              /24 link UNICAST
           |-- 192.0.2.2
              /32 host LOCAL
        |-- 192.0.2.255
           /32 link BROADCAST
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 192.0.2.0/24 2 0 2
        +-- 192.0.2.0/30 2 0 2
           |-- 192.0.2.0
              /24 link UNICAST
           |-- 192.0.2.2
              /32 host LOCAL
        |-- 192.0.2.255
           /32 link BROADCAST
";

    /// Separate tables (policy routing in use): a 464XLAT CLAT holding 192.0.0.2 on its
    /// interface, a LAN address, a CGNAT address, and a Main-only unicast leaf that is not ours.
    const FIB_TRIE_CLAT: &str = "\
Main:
  +-- 0.0.0.0/0 3 0 4
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 192.0.0.0/29 2 0 2
        |-- 192.0.0.0
           /29 link UNICAST
     |-- 198.51.100.7
        /32 universe UNICAST
Local:
  +-- 0.0.0.0/0 3 0 5
     +-- 100.64.0.0/10 2 0 2
        |-- 100.72.3.4
           /32 host LOCAL
        |-- 100.72.3.255
           /32 link BROADCAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 192.0.0.0/29 2 0 2
        |-- 192.0.0.2
           /32 host LOCAL
        |-- 192.0.0.7
           /32 link BROADCAST
     +-- 192.168.1.0/24 2 0 2
        |-- 192.168.1.23
           /32 host LOCAL
        |-- 192.168.1.255
           /32 link BROADCAST
Id 100:
  +-- 0.0.0.0/0 3 0 5
     |-- 10.9.9.9
        /32 host LOCAL
";

    fn v4(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv6_default_route_skips_the_reject_route_on_lo() {
        assert_eq!(
            parse_ipv6_default_route(IPV6_ROUTE_REAL).as_deref(),
            Some("eth0")
        );
        assert_eq!(parse_ipv6_default_route(IPV6_ROUTE_NO_DEFAULT), None);
    }

    #[test]
    fn ipv6_default_route_prefers_the_lowest_metric() {
        assert_eq!(
            parse_ipv6_default_route(IPV6_ROUTE_SIT).as_deref(),
            Some("he-ipv6")
        );
    }

    #[test]
    fn ipv4_default_route() {
        assert_eq!(
            parse_ipv4_default_route(ROUTE_REAL).as_deref(),
            Some("eth0")
        );
        assert_eq!(
            parse_ipv4_default_route(ROUTE_TWO_DEFAULTS).as_deref(),
            Some("wlan0")
        );
        assert_eq!(parse_ipv4_default_route(ROUTE_NO_DEFAULT), None);
    }

    #[test]
    fn empty_or_garbled_route_files_have_no_default() {
        for text in ["", "\n", "garbage line\n", "00000000 00 truncated\n"] {
            assert_eq!(parse_ipv6_default_route(text), None, "{text:?}");
            assert_eq!(parse_ipv4_default_route(text), None, "{text:?}");
        }
    }

    #[test]
    fn fib_trie_local_addresses_of_merged_tables() {
        assert_eq!(parse_fib_trie_local(FIB_TRIE_REAL), vec![v4("192.0.2.2")]);
    }

    #[test]
    fn fib_trie_local_addresses_of_separate_tables() {
        assert_eq!(
            parse_fib_trie_local(FIB_TRIE_CLAT),
            vec![v4("100.72.3.4"), v4("192.0.0.2"), v4("192.168.1.23")]
        );
        assert!(parse_fib_trie_local("").is_empty());
    }

    #[test]
    fn fib_trie_local_addresses_are_deduplicated_and_bounded() {
        let mut text = String::from("Local:\n  +-- 0.0.0.0/0 3 0 5\n");
        for round in 0..2 {
            for i in 0..100 {
                text.push_str(&format!(
                    "     |-- 10.0.{i}.1\n        /32 host LOCAL{}\n",
                    if round == 0 { "" } else { " tos=4" }
                ));
            }
        }
        let addresses = parse_fib_trie_local(&text);
        assert_eq!(addresses.len(), MAX_SELF_TEST_V4_ADDRESSES);
        assert_eq!(addresses[0], v4("10.0.0.1"));
        let mut unique = addresses.clone();
        unique.dedup();
        assert_eq!(unique, addresses);

        let twice = "Local:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.0.0.1\n        /32 host LOCAL\n\
                     Local:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.0.0.1\n        /32 host LOCAL\n";
        assert_eq!(parse_fib_trie_local(twice), vec![v4("10.0.0.1")]);
    }

    #[test]
    fn interface_kinds_by_arphrd() {
        let cases = [
            (1, InterfaceKind::Ethernet),
            (772, InterfaceKind::Loopback),
            (776, InterfaceKind::Sit),
            (768, InterfaceKind::Tunnel),
            (769, InterfaceKind::Tunnel),
            (778, InterfaceKind::Tunnel),
            (823, InterfaceKind::Tunnel),
            (65534, InterfaceKind::Tunnel),
            (512, InterfaceKind::Ppp),
            (801, InterfaceKind::Other),
        ];
        for (arphrd, kind) in cases {
            assert_eq!(interface_kind(arphrd), kind, "{arphrd}");
        }
    }

    #[test]
    fn nat64_prefix_from_well_known_answers() {
        let answers = [
            ip("192.0.0.170"),
            ip("64:ff9b::c000:aa"),
            ip("64:ff9b::c000:ab"),
        ];
        assert_eq!(nat64_prefix(&answers), Some("64:ff9b::".parse().unwrap()));
        let network_specific = [ip("2001:db8:1:2:0:0:c000:ab")];
        assert_eq!(
            nat64_prefix(&network_specific),
            Some("2001:db8:1:2::".parse().unwrap())
        );
    }

    #[test]
    fn no_nat64_prefix_without_a_synthesised_answer() {
        assert_eq!(nat64_prefix(&[]), None);
        assert_eq!(nat64_prefix(&[ip("192.0.0.170"), ip("192.0.0.171")]), None);
        assert_eq!(nat64_prefix(&[ip("64:ff9b::c000:ac")]), None);
        assert_eq!(nat64_prefix(&[ip("::ffff:192.0.0.170")]), None);
    }

    #[test]
    fn clat_by_address_or_interface_name() {
        let none: [String; 0] = [];
        assert!(has_clat(&parse_fib_trie_local(FIB_TRIE_CLAT), &none));
        assert!(has_clat(&[v4("192.0.0.7")], &none));
        assert!(!has_clat(&[v4("192.0.0.8"), v4("192.0.2.2")], &none));
        assert!(has_clat(&[], &["clat4".to_owned()]));
        assert!(has_clat(&[], &["v4-wlan0".to_owned()]));
        assert!(!has_clat(&[], &["eth0".to_owned(), "lo".to_owned()]));
    }

    #[test]
    fn interface_paths_stay_under_sys_class_net() {
        let root = Path::new("/r");
        assert_eq!(
            interface_path(root, "eth0", "mtu"),
            Some(PathBuf::from("/r/sys/class/net/eth0/mtu"))
        );
        for bad in ["", ".", "..", "../x", "a/b"] {
            assert_eq!(interface_path(root, bad, "mtu"), None, "{bad:?}");
        }
    }

    #[test]
    fn long_names_are_cut_at_a_char_boundary() {
        assert_eq!(bounded_name("example.org"), "example.org");
        let long = "é".repeat(200);
        let cut = bounded_name(&long);
        assert!(cut.len() <= MAX_NAME_LEN && long.starts_with(cut));
        assert_eq!(cut.len(), 252);
    }

    fn write(root: &Path, relative: &str, text: &str) {
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[tokio::test]
    async fn missing_files_mean_not_present() {
        let root = tempfile::tempdir().unwrap();
        let test = run_at(root.path(), "", UnixMicros(5)).await;
        assert_eq!(test.tested_at, UnixMicros(5));
        assert!(!test.default_route_v6 && !test.default_route_v4 && !test.clat);
        assert!(test.v4_addresses.is_empty());
        assert_eq!(test.v6_route_interface, None);
        assert_eq!(test.v6_route_interface_kind, InterfaceKind::Unknown);
        assert_eq!(test.v6_route_mtu, None);
        assert_eq!(test.aaaa_resolved, None);
    }

    #[tokio::test]
    async fn reads_a_sit_tunnel_host_from_its_files() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        write(root, "proc/net/ipv6_route", IPV6_ROUTE_SIT);
        write(root, "proc/net/route", ROUTE_REAL);
        write(root, "proc/net/fib_trie", FIB_TRIE_REAL);
        write(root, "sys/class/net/he-ipv6/type", "776\n");
        write(root, "sys/class/net/he-ipv6/mtu", "1480\n");
        write(root, "sys/class/net/clat4/type", "65534\n");
        let test = run_at(root, "", UnixMicros(7)).await;
        assert!(test.default_route_v6 && test.default_route_v4);
        assert_eq!(test.v6_route_interface.as_deref(), Some("he-ipv6"));
        assert_eq!(test.v6_route_interface_kind, InterfaceKind::Sit);
        assert_eq!(test.v6_route_mtu, Some(1480));
        assert_eq!(test.v4_addresses, vec![v4("192.0.2.2")]);
        assert!(test.clat, "named clat4");
    }

    #[test]
    fn global_addresses_are_2000_slash_3() {
        let link_local_and_loopback = "fe800000000000000211aafffe0b2c3d 02 40 20 80 eth0\n\
                                       00000000000000000000000000000001 01 80 10 80 lo\n";
        assert!(!has_global_v6_address(link_local_and_loopback));
        let ula = "fd000000000000000000000000000001 02 40 00 80 eth0\n";
        assert!(!has_global_v6_address(ula));
        let global = "2a0104f8000000000000000000000002 02 40 00 80 eth0\n";
        assert!(has_global_v6_address(&format!(
            "{link_local_and_loopback}{global}"
        )));
    }

    #[tokio::test]
    async fn the_collector_is_tried_over_ipv6_only() {
        let listener = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = format!("http://[::1]:{port}");
        assert_eq!(collector_reachable_v6(&url).await, Some(true));
        drop(listener);
        assert_eq!(collector_reachable_v6(&url).await, Some(false));
        assert_eq!(collector_reachable_v6("http://127.0.0.1:7400").await, None);
        assert_eq!(collector_reachable_v6("not a url").await, None);
    }

    #[tokio::test]
    async fn runs_against_this_host() {
        let test = run("localhost", None, UnixMicros(1)).await;
        assert_eq!(test.tested_at, UnixMicros(1));
        assert_eq!(test.aaaa_name, "localhost");
        assert!(test.v4_addresses.iter().all(|a| !a.is_loopback()));
    }
}
