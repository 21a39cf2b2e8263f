//! The fault-attribution lab (issue #23, "where IPv6 breaks, and who is responsible"): a
//! probe in its ISP's network (AS 64500, country XA), a transit network (AS 64510) and the
//! destinations' network (AS 64520), one router each, in a line; behind the destination
//! network's edge, three dual-stack targets each with IPv6 dropped at a different place, a
//! target behind a PMTU black hole and one that extension headers do not reach:
//!
//! ```text
//!  p1 ── isp ── transit ── dedge ──┬── tacc   IPv6 dropped on isp      (access)
//!  ctl ──┘                         ├── ttra   IPv6 dropped on transit  (transit)
//!                                  ├── tdst   IPv6 dropped on dedge    (destination)
//!                                  ├── tmtu   1280-byte link; dedge sends no Packet Too Big
//!                                  └── thdr   transit drops Hop-by-Hop and Destination
//!                                             Options headers towards it
//! ```
//!
//! Faults are nftables rules (a router still answers probes that expire on it, as a
//! filtering router does): IPv6 drops in each router's forward chain; the black hole is
//! `dedge`'s output chain dropping its own Packet Too Big (large packets to `tmtu` vanish at
//! `dedge`, the destination network's); the header drop is `transit`'s forward chain
//! (`exthdr hbh exists`, `exthdr dst exists`, towards `thdr` only). IPv4 to every target
//! works. The collector and the lab DNS server run on `ctl`, beside the ISP, outside every
//! faulty path.
//!
//! The prefix data maps each link's /64 to the network of the router that answers from it
//! (a router answers from its address on the link towards the probe, `Lab::expected_hops`):
//! the probe's link and `ctl`'s to the ISP, isp–transit to the transit, the rest to the
//! destination network.

use super::services::{self, DnsRecord};
use super::{Lab, LabError, Topology, prefix64};
use serde_json::json;
use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;

pub const PROBE: &str = "p1";
pub const COLLECTOR: &str = "ctl";
pub const ISP_AS: u32 = 64500;
pub const TRANSIT_AS: u32 = 64510;
pub const DEST_AS: u32 = 64520;
pub const COUNTRY: &str = "XA";

/// One target: its node, DNS name, the router whose forward chain drops IPv6 to it, and the
/// placement the collector must find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultTarget {
    pub node: &'static str,
    pub name: &'static str,
    pub router: &'static str,
    pub placement: &'static str,
    pub responsible_asn: u32,
    pub v6: Ipv6Addr,
}

pub const TARGETS: [(&str, &str, &str, &str, u32); 3] = [
    ("tacc", "access.blame.lab", "isp", "access", ISP_AS),
    (
        "ttra",
        "transit.blame.lab",
        "transit",
        "transit",
        TRANSIT_AS,
    ),
    ("tdst", "dest.blame.lab", "dedge", "destination", DEST_AS),
];

/// The PMTU black hole: the target behind a narrow link, the router that drops its own
/// Packet Too Big, the nftables table holding that rule.
pub const PMTU_TARGET: &str = "tmtu";
pub const PMTU_ROUTER: &str = "dedge";
pub const PMTU_TABLE: &str = "lab_blame_ptb";
pub const NARROW_MTU: u32 = 1280;
/// The extension-header drop: the target, the router whose forward chain drops Hop-by-Hop
/// and Destination Options headers towards it, and the table holding those rules.
pub const EXTHDR_TARGET: &str = "thdr";
pub const EXTHDR_ROUTER: &str = "transit";
pub const EXTHDR_TABLE: &str = "lab_blame_exthdr";

/// A path fault other than IPv6 broken: where it is and whom the collector must blame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathFault {
    pub node: &'static str,
    pub router: &'static str,
    /// The nftables table (family `inet` for the black hole, `ip6` for the header drop).
    pub table: &'static str,
    pub placement: &'static str,
    pub responsible_asn: u32,
    pub v6: Ipv6Addr,
    pub v4: std::net::Ipv4Addr,
    /// `router`'s address facing the probe: the last to answer the failing packets.
    pub router_hop: Ipv6Addr,
}

#[derive(Debug)]
pub struct BlameLab {
    pub lab: Lab,
    pub targets: Vec<FaultTarget>,
    /// Large packets to `tmtu` vanish at the destination network's edge.
    pub pmtu: PathFault,
    /// Hop-by-Hop and Destination Options headers to `thdr` vanish in transit.
    pub exthdr: PathFault,
    pub probe: Ipv6Addr,
    pub collector: Ipv6Addr,
    /// `asn-ipv6.csv` and `geo-whois-asn-country-ipv6.csv` for every link of the lab.
    pub asn_csv: PathBuf,
    pub country_csv: PathBuf,
}

fn io(what: &str, e: std::io::Error) -> LabError {
    LabError::Command {
        command: what.into(),
        stderr: e.to_string(),
    }
}

/// The network a link belongs to: the one whose router answers from it.
fn link_asn(a: &str, b: &str) -> u32 {
    match (a, b) {
        ("p1" | "ctl", "isp") | ("isp", "p1" | "ctl") => ISP_AS,
        ("isp", "transit") | ("transit", "isp") => TRANSIT_AS,
        _ => DEST_AS,
    }
}

pub fn blame() -> Result<BlameLab, LabError> {
    let mut topology = Topology::new()
        .host(PROBE)
        .host(COLLECTOR)
        .router("isp")
        .router("transit")
        .router("dedge")
        .link(PROBE, "isp")
        .link(COLLECTOR, "isp")
        .link("isp", "transit")
        .link("transit", "dedge");
    for (node, ..) in TARGETS {
        topology = topology.host(node).link("dedge", node);
    }
    topology = topology
        .host(PMTU_TARGET)
        .link_with(PMTU_ROUTER, PMTU_TARGET, Some(NARROW_MTU), true)
        .host(EXTHDR_TARGET)
        .link("dedge", EXTHDR_TARGET);
    let mut lab = Lab::build(&topology)?;
    let mut targets = Vec::new();
    let mut records = Vec::new();
    for (node, name, router, placement, responsible_asn) in TARGETS {
        let v6 = lab.node(node).v6();
        let v4 = lab
            .node(node)
            .v4()
            .ok_or_else(|| LabError::Topology(format!("{node} has no IPv4")))?;
        lab.nft(
            router,
            &format!(
                "table inet lab_blame_{node} {{\n chain forward {{\n  type filter hook forward priority 0;\n  \
                 ip6 daddr {v6} counter drop\n }}\n}}\n"
            ),
        )?;
        records.push(DnsRecord {
            name: name.into(),
            aaaa: vec![v6],
            a: vec![v4],
        });
        targets.push(FaultTarget {
            node,
            name,
            router,
            placement,
            responsible_asn,
            v6,
        });
    }
    // The black hole: dedge drops the Packet Too Big it would send for tmtu's narrow link.
    lab.nft(
        PMTU_ROUTER,
        &format!(
            "table inet {PMTU_TABLE} {{\n chain output {{\n  type filter hook output priority 0;\n  \
             icmpv6 type packet-too-big counter drop\n }}\n}}\n"
        ),
    )?;
    // The header drop, towards thdr only (the dual-stack paths carry no header anyway).
    let thdr = lab.node(EXTHDR_TARGET).v6();
    lab.nft(
        EXTHDR_ROUTER,
        &format!(
            "table ip6 {EXTHDR_TABLE} {{\n chain forward {{\n  type filter hook forward priority 0;\n  \
             ip6 daddr {thdr} exthdr hbh exists counter drop\n  \
             ip6 daddr {thdr} exthdr dst exists counter drop\n }}\n}}\n"
        ),
    )?;
    let path_fault = |lab: &Lab,
                      node: &'static str,
                      router: &'static str,
                      table: &'static str,
                      placement: &'static str,
                      responsible_asn: u32|
     -> Result<PathFault, LabError> {
        let before = lab
            .path(PROBE, router)
            .iter()
            .rev()
            .nth(1)
            .cloned()
            .unwrap_or_else(|| PROBE.to_owned());
        Ok(PathFault {
            node,
            router,
            table,
            placement,
            responsible_asn,
            v6: lab.node(node).v6(),
            v4: lab
                .node(node)
                .v4()
                .ok_or_else(|| LabError::Topology(format!("{node} has no IPv4")))?,
            router_hop: lab
                .node(router)
                .towards(&before)
                .map(|i| i.v6)
                .ok_or_else(|| LabError::Topology(format!("{router} not linked to {before}")))?,
        })
    };
    let pmtu = path_fault(
        &lab,
        PMTU_TARGET,
        PMTU_ROUTER,
        PMTU_TABLE,
        "destination",
        DEST_AS,
    )?;
    let exthdr = path_fault(
        &lab,
        EXTHDR_TARGET,
        EXTHDR_ROUTER,
        EXTHDR_TABLE,
        "transit",
        TRANSIT_AS,
    )?;
    services::start_dns(&mut lab, COLLECTOR, &records)?;
    let collector = lab.node(COLLECTOR).v6();
    lab.set_resolver(PROBE, IpAddr::V6(collector))?;

    let mut asn_csv = String::new();
    let mut country_csv = String::new();
    let mut seen = Vec::new();
    for node in lab.nodes() {
        for iface in &node.interfaces {
            let first = prefix64(iface.v6);
            if seen.contains(&first) {
                continue;
            }
            seen.push(first);
            let s = first.segments();
            let last = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0xffff, 0xffff, 0xffff, 0xffff);
            let asn = link_asn(&node.name, &iface.peer);
            asn_csv.push_str(&format!("{first},{last},{asn},Lab AS{asn}\n"));
            country_csv.push_str(&format!("{first},{last},{COUNTRY}\n"));
        }
    }
    let dir = lab.scratch_dir().to_owned();
    let asn_path = dir.join("asn-ipv6.csv");
    let country_path = dir.join("geo-whois-asn-country-ipv6.csv");
    std::fs::write(&asn_path, asn_csv).map_err(|e| io("write asn-ipv6.csv", e))?;
    std::fs::write(&country_path, country_csv).map_err(|e| io("write country csv", e))?;
    Ok(BlameLab {
        probe: lab.node(PROBE).v6(),
        collector,
        targets,
        pmtu,
        exthdr,
        asn_csv: asn_path,
        country_csv: country_path,
        lab,
    })
}

impl super::scenarios::Truth for BlameLab {
    fn truth(&self) -> serde_json::Value {
        json!({
            "scenario": "blame",
            "probe": {"node": PROBE, "address": self.probe, "asn": ISP_AS, "country": COUNTRY},
            "collector": self.collector,
            "targets": self.targets.iter().map(|t| json!({
                "node": t.node, "name": t.name, "address": t.v6,
                "ipv6_dropped_on": t.router, "placement": t.placement,
                "responsible_asn": t.responsible_asn,
            })).collect::<Vec<_>>(),
            "pmtu_black_hole": {
                "node": self.pmtu.node, "address": self.pmtu.v6, "narrow_mtu": NARROW_MTU,
                "packet_too_big_dropped_on": self.pmtu.router,
                "placement": self.pmtu.placement, "responsible_asn": self.pmtu.responsible_asn,
            },
            "ext_header_drop": {
                "node": self.exthdr.node, "address": self.exthdr.v6,
                "headers_dropped_on": self.exthdr.router, "headers": ["hbh", "dst"],
                "placement": self.exthdr.placement,
                "responsible_asn": self.exthdr.responsible_asn,
            },
        })
    }
    fn lab(&self) -> &Lab {
        &self.lab
    }
    fn lab_mut(&mut self) -> &mut Lab {
        &mut self.lab
    }
}
