//! The lab's scenarios, each with the ground truth tests compare measurements against.
//!
//! Every constructor builds a fresh lab (see [`super::Lab`]); the returned struct owns it, so
//! dropping the scenario tears it down.

use super::{Lab, LabError, Topology};
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Node every scenario measures from.
pub const PROBE: &str = "probe";

/// Scenario 1: a routed path of `routers` routers between the probe and the target, so
/// traceroute sees `routers + 1` hops; every router answers with ICMPv6 time exceeded.
#[derive(Debug)]
pub struct LongPath {
    pub lab: Lab,
    pub target: Ipv6Addr,
    pub target_v4: Ipv4Addr,
    /// What traceroute must report, hop by hop, ending with the target.
    pub hops: Vec<IpAddr>,
    pub hops_v4: Vec<IpAddr>,
}

pub fn long_path(routers: usize) -> Result<LongPath, LabError> {
    if !(1..=30).contains(&routers) {
        return Err(LabError::Topology("routers must be 1..=30".into()));
    }
    let names: Vec<String> = (1..=routers).map(|i| format!("r{i}")).collect();
    let mut topology = Topology::new().host(PROBE).host("target");
    for name in &names {
        topology = topology.router(name);
    }
    let mut previous = PROBE.to_owned();
    for name in &names {
        topology = topology.link(&previous, name);
        previous = name.clone();
    }
    topology = topology.link(&previous, "target");
    let lab = Lab::build(&topology)?;
    let target = lab.node("target").v6();
    let target_v4 = lab
        .node("target")
        .v4()
        .ok_or_else(|| LabError::Topology("target has no IPv4".into()))?;
    let hops = lab.expected_hops(PROBE, "target", IpAddr::V6(target));
    let hops_v4 = lab.expected_hops(PROBE, "target", IpAddr::V4(target_v4));
    Ok(LongPath {
        lab,
        target,
        target_v4,
        hops,
        hops_v4,
    })
}

/// Scenario 2: targets that work and fail in the ways real ones do, behind two routers.
#[derive(Debug)]
pub struct Targets {
    pub lab: Lab,
    /// Has only an IPv6 address.
    pub v6_only: Ipv6Addr,
    /// Answers on both families.
    pub dual_stack: (Ipv6Addr, Ipv4Addr),
    /// Has only an IPv4 address.
    pub v4_only: Ipv4Addr,
    /// Its IPv6 address is published but the route to it is blackholed at `r1` (silently
    /// dropped); IPv4 works.
    pub broken_v6: (Ipv6Addr, Ipv4Addr),
    /// An address on `r2`'s link to the dual-stack host that nobody owns: `r2` answers
    /// ICMPv6 destination unreachable, code 3 (address unreachable) after neighbour discovery
    /// fails.
    pub address_unreachable: Ipv6Addr,
    /// `r2` answers ICMPv6 destination unreachable, code 1 (administratively prohibited).
    pub admin_prohibited: Ipv6Addr,
    /// `r2` answers ICMPv6 destination unreachable, code 0 (no route).
    pub no_route: Ipv6Addr,
    /// `r2`'s address facing the probe: the source of those ICMPv6 errors.
    pub r2: Ipv6Addr,
}

pub fn targets() -> Result<Targets, LabError> {
    let topology = Topology::new()
        .host(PROBE)
        .router("r1")
        .router("r2")
        .host("v6only")
        .host("dual")
        .host("v4only")
        .host("broken")
        .link(PROBE, "r1")
        .link("r1", "r2")
        .link_with("r2", "v6only", None, false)
        .link("r2", "dual")
        .link("r2", "v4only")
        .link("r2", "broken");
    let lab = Lab::build(&topology)?;
    // v4only: no IPv6 address at all on its side of the link.
    let v4only_if = lab
        .node("v4only")
        .interfaces
        .first()
        .cloned()
        .ok_or_else(|| LabError::Topology("v4only has no link".into()))?;
    lab.exec(
        "v4only",
        &[
            "ip",
            "-6",
            "addr",
            "del",
            &format!("{}/64", v4only_if.v6),
            "dev",
            &v4only_if.name,
        ],
    )?;
    let v4_only = v4only_if
        .v4
        .ok_or_else(|| LabError::Topology("v4only has no IPv4".into()))?;
    let broken = lab.node("broken");
    let broken_v6 = broken.v6();
    let broken_v4 = broken
        .v4()
        .ok_or_else(|| LabError::Topology("broken has no IPv4".into()))?;
    lab.exec(
        "r1",
        &[
            "ip",
            "-6",
            "route",
            "replace",
            "blackhole",
            &format!("{}/64", super::prefix64(broken_v6)),
        ],
    )?;
    let dual = lab.node("dual");
    let dual_v6 = dual.v6();
    let dual_v4 = dual
        .v4()
        .ok_or_else(|| LabError::Topology("dual has no IPv4".into()))?;
    let segments = dual_v6.segments();
    let on_dual_link = |last: u16| {
        Ipv6Addr::new(
            segments[0],
            segments[1],
            segments[2],
            segments[3],
            0,
            0,
            0,
            last,
        )
    };
    let address_unreachable = on_dual_link(0x99);
    // Routes of special types on r2; the addresses sit in r1's route towards r2 (r2's links),
    // so packets reach r2, which answers.
    let admin_prohibited = on_dual_link(0xa1);
    let no_route = on_dual_link(0xa2);
    for (kind, address) in [("prohibit", admin_prohibited), ("unreachable", no_route)] {
        lab.exec(
            "r2",
            &["ip", "-6", "route", "add", kind, &format!("{address}/128")],
        )?;
    }
    let r2 = lab
        .node("r2")
        .towards("r1")
        .map(|i| i.v6)
        .ok_or_else(|| LabError::Topology("r2 not linked to r1".into()))?;
    Ok(Targets {
        v6_only: lab.node("v6only").v6(),
        dual_stack: (dual_v6, dual_v4),
        v4_only,
        broken_v6: (broken_v6, broken_v4),
        address_unreachable,
        admin_prohibited,
        no_route,
        r2,
        lab,
    })
}

/// Scenario 3: a 1280-byte link in the middle of the path. `r2` must send ICMPv6 Packet Too
/// Big for larger packets; with `drop_ptb` an nftables rule on `r2` drops those messages (a
/// path-MTU black hole).
#[derive(Debug)]
pub struct Pmtu {
    pub lab: Lab,
    pub target: Ipv6Addr,
    pub path_mtu: u32,
    /// `r2`'s address facing the probe: where the black hole is, and the source of Packet Too
    /// Big when it is delivered.
    pub narrow_hop: Ipv6Addr,
    pub ptb_dropped: bool,
}

pub const NARROW_MTU: u32 = 1280;

pub fn pmtu(drop_ptb: bool) -> Result<Pmtu, LabError> {
    let topology = Topology::new()
        .host(PROBE)
        .router("r1")
        .router("r2")
        .router("r3")
        .host("target")
        .link(PROBE, "r1")
        .link("r1", "r2")
        .link_with("r2", "r3", Some(NARROW_MTU), true)
        .link("r3", "target");
    let lab = Lab::build(&topology)?;
    if drop_ptb {
        lab.nft(
            "r2",
            "table inet lab {\n chain output {\n  type filter hook output priority 0;\n  \
             icmpv6 type packet-too-big counter drop\n }\n}\n",
        )?;
    }
    let narrow_hop = lab
        .node("r2")
        .towards("r1")
        .map(|i| i.v6)
        .ok_or_else(|| LabError::Topology("r2 not linked to r1".into()))?;
    Ok(Pmtu {
        target: lab.node("target").v6(),
        path_mtu: NARROW_MTU,
        narrow_hop,
        ptb_dropped: drop_ptb,
        lab,
    })
}

/// Which IPv6 extension headers the filtering router drops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtHeaderDrops {
    pub hop_by_hop: bool,
    pub destination_options: bool,
    pub fragment: bool,
}

/// Scenario 4: `r2` drops packets carrying the configured extension headers.
#[derive(Debug)]
pub struct ExtHeaders {
    pub lab: Lab,
    pub target: Ipv6Addr,
    pub drops: ExtHeaderDrops,
    /// `r2`'s address facing the probe.
    pub dropping_hop: Ipv6Addr,
}

pub fn ext_headers(drops: ExtHeaderDrops) -> Result<ExtHeaders, LabError> {
    let topology = Topology::new()
        .host(PROBE)
        .router("r1")
        .router("r2")
        .host("target")
        .link(PROBE, "r1")
        .link("r1", "r2")
        .link("r2", "target");
    let lab = Lab::build(&topology)?;
    let mut rules = String::new();
    for (on, header) in [
        (drops.hop_by_hop, "hbh"),
        (drops.destination_options, "dst"),
        (drops.fragment, "frag"),
    ] {
        if on {
            rules.push_str(&format!("  exthdr {header} exists counter drop\n"));
        }
    }
    if !rules.is_empty() {
        lab.nft(
            "r2",
            &format!(
                "table ip6 lab {{\n chain forward {{\n  type filter hook forward priority 0;\n{rules} }}\n}}\n"
            ),
        )?;
    }
    let dropping_hop = lab
        .node("r2")
        .towards("r1")
        .map(|i| i.v6)
        .ok_or_else(|| LabError::Topology("r2 not linked to r1".into()))?;
    Ok(ExtHeaders {
        target: lab.node("target").v6(),
        drops,
        dropping_hop,
        lab,
    })
}

/// A probe host in scenario 7 and the network it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabProbe {
    pub node: String,
    pub address: Ipv6Addr,
    pub asn: u32,
    pub country: &'static str,
    pub operator: &'static str,
}

/// Scenario 7: several operators ("lab ASNs" in two lab countries), each with its own probes,
/// joined by a core router to a dual-stack target.
#[derive(Debug)]
pub struct Networks {
    pub lab: Lab,
    pub probes: Vec<LabProbe>,
    pub target: Ipv6Addr,
    pub target_v4: Ipv4Addr,
}

/// Operators of scenario 7: name, ASN (private-use range), country (user-assigned codes),
/// number of probes.
pub const OPERATORS: [(&str, u32, &str, usize); 3] = [
    ("opa", 64500, "XA", 2),
    ("opb", 64501, "XA", 1),
    ("opc", 64502, "XB", 2),
];

pub fn networks() -> Result<Networks, LabError> {
    let mut topology = Topology::new().router("core").host("target");
    for (operator, _, _, probes) in OPERATORS {
        topology = topology.router(operator).link(operator, "core");
        for i in 1..=probes {
            let node = format!("{operator}-p{i}");
            topology = topology.host(&node).link(&node, operator);
        }
    }
    topology = topology.link("core", "target");
    let lab = Lab::build(&topology)?;
    let probes = OPERATORS
        .iter()
        .flat_map(|(operator, asn, country, probes)| {
            (1..=*probes).map(move |i| (format!("{operator}-p{i}"), *operator, *asn, *country))
        })
        .map(|(node, operator, asn, country)| LabProbe {
            address: lab.node(&node).v6(),
            node,
            asn,
            country,
            operator,
        })
        .collect();
    let target_v4 = lab
        .node("target")
        .v4()
        .ok_or_else(|| LabError::Topology("target has no IPv4".into()))?;
    Ok(Networks {
        target: lab.node("target").v6(),
        target_v4,
        probes,
        lab,
    })
}

/// Ground truth as JSON, for `sixmap-lab up` and for people.
pub trait Truth {
    fn truth(&self) -> serde_json::Value;
    fn lab(&self) -> &Lab;
    fn lab_mut(&mut self) -> &mut Lab;
}

impl Truth for LongPath {
    fn truth(&self) -> serde_json::Value {
        json!({
            "scenario": "path",
            "probe": PROBE,
            "target": self.target, "target_v4": self.target_v4,
            "hops": self.hops, "hops_v4": self.hops_v4,
        })
    }
    fn lab(&self) -> &Lab {
        &self.lab
    }
    fn lab_mut(&mut self) -> &mut Lab {
        &mut self.lab
    }
}

impl Truth for Targets {
    fn truth(&self) -> serde_json::Value {
        json!({
            "scenario": "targets",
            "probe": PROBE,
            "v6_only": self.v6_only,
            "dual_stack": [self.dual_stack.0, self.dual_stack.1],
            "v4_only": self.v4_only,
            "broken_v6": {"v6": self.broken_v6.0, "v4": self.broken_v6.1, "v6_route": "blackhole at r1"},
            "address_unreachable": {"address": self.address_unreachable, "icmpv6": "type 1 code 3", "from": self.r2},
            "admin_prohibited": {"address": self.admin_prohibited, "icmpv6": "type 1 code 1", "from": self.r2},
            "no_route": {"address": self.no_route, "icmpv6": "type 1 code 0", "from": self.r2},
        })
    }
    fn lab(&self) -> &Lab {
        &self.lab
    }
    fn lab_mut(&mut self) -> &mut Lab {
        &mut self.lab
    }
}

impl Truth for Pmtu {
    fn truth(&self) -> serde_json::Value {
        json!({
            "scenario": if self.ptb_dropped { "pmtu-blackhole" } else { "pmtu" },
            "probe": PROBE,
            "target": self.target,
            "path_mtu": self.path_mtu,
            "narrow_hop": self.narrow_hop,
            "packet_too_big_dropped": self.ptb_dropped,
        })
    }
    fn lab(&self) -> &Lab {
        &self.lab
    }
    fn lab_mut(&mut self) -> &mut Lab {
        &mut self.lab
    }
}

impl Truth for ExtHeaders {
    fn truth(&self) -> serde_json::Value {
        json!({
            "scenario": "ext-headers",
            "probe": PROBE,
            "target": self.target,
            "dropping_hop": self.dropping_hop,
            "drops": {
                "hop_by_hop": self.drops.hop_by_hop,
                "destination_options": self.drops.destination_options,
                "fragment": self.drops.fragment,
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

impl Truth for Networks {
    fn truth(&self) -> serde_json::Value {
        json!({
            "scenario": "networks",
            "target": self.target, "target_v4": self.target_v4,
            "probes": self.probes.iter().map(|p| json!({
                "node": p.node, "address": p.address, "asn": p.asn,
                "country": p.country, "operator": p.operator,
            })).collect::<Vec<_>>(),
        })
    }
    fn lab(&self) -> &Lab {
        &self.lab
    }
    fn lab_mut(&mut self) -> &mut Lab {
        &mut self.lab
    }
}
