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

/// Removes the IPv6 address of `node`'s first interface, leaving it IPv4-only; returns its
/// IPv4 address.
pub(super) fn make_v4_only(lab: &Lab, node: &str) -> Result<Ipv4Addr, LabError> {
    let interface = lab
        .node(node)
        .interfaces
        .first()
        .cloned()
        .ok_or_else(|| LabError::Topology(format!("{node} has no link")))?;
    lab.exec(
        node,
        &[
            "ip",
            "-6",
            "addr",
            "del",
            &format!("{}/64", interface.v6),
            "dev",
            &interface.name,
        ],
    )?;
    interface
        .v4
        .ok_or_else(|| LabError::Topology(format!("{node} has no IPv4")))
}

/// Makes `router` silently drop IPv6 packets to the /64 of `address` (a broken-v6 host:
/// published, unreachable, no ICMP error).
pub(super) fn blackhole_v6(lab: &Lab, router: &str, address: Ipv6Addr) -> Result<(), LabError> {
    lab.exec(
        router,
        &[
            "ip",
            "-6",
            "route",
            "replace",
            "blackhole",
            &format!("{}/64", super::prefix64(address)),
        ],
    )
    .map(drop)
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
    let v4_only = make_v4_only(&lab, "v4only")?;
    let broken = lab.node("broken");
    let broken_v6 = broken.v6();
    let broken_v4 = broken
        .v4()
        .ok_or_else(|| LabError::Topology("broken has no IPv4".into()))?;
    blackhole_v6(&lab, "r1", broken_v6)?;
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

/// Lab names published by [`with_services`]'s DNS server.
pub mod names {
    pub const V6_ONLY: &str = "v6only.lab";
    pub const DUAL_STACK: &str = "dual.lab";
    pub const V4_ONLY: &str = "v4only.lab";
    pub const BROKEN_V6: &str = "broken.lab";
}

/// Scenario 6, on top of scenario 2: services in the target namespaces.
#[derive(Debug)]
pub struct Services {
    pub targets: Targets,
    /// The DNS server (on the dual-stack host), answering A/AAAA for [`names`] over UDP and TCP.
    pub dns: (Ipv6Addr, Ipv4Addr),
    /// CA of the HTTPS and QUIC servers' certificate (`dual.lab`, `v6only.lab` and the hosts'
    /// addresses).
    pub ca: super::services::LabCa,
    /// Body served at `/` over HTTP (80), HTTPS (443) and HTTP/3 (UDP 443) by the dual-stack
    /// and v6-only hosts.
    pub body: String,
    /// Nothing listens there: connections are refused.
    pub closed_port: u16,
    /// nftables drops packets to it: connections time out.
    pub filtered_port: u16,
}

pub fn with_services() -> Result<Services, LabError> {
    use super::services::{self, DnsRecord};
    let mut targets = targets()?;
    let (dual_v6, dual_v4) = targets.dual_stack;
    let (broken_v6, broken_v4) = targets.broken_v6;
    let records = [
        DnsRecord {
            name: names::V6_ONLY.into(),
            aaaa: vec![targets.v6_only],
            a: Vec::new(),
        },
        DnsRecord {
            name: names::DUAL_STACK.into(),
            aaaa: vec![dual_v6],
            a: vec![dual_v4],
        },
        DnsRecord {
            name: names::V4_ONLY.into(),
            aaaa: Vec::new(),
            a: vec![targets.v4_only],
        },
        DnsRecord {
            name: names::BROKEN_V6.into(),
            aaaa: vec![broken_v6],
            a: vec![broken_v4],
        },
    ];
    let lab = &mut targets.lab;
    services::start_dns(lab, "dual", &records)?;
    // The probe resolves the lab's names through the lab's own DNS server.
    lab.set_resolver(PROBE, IpAddr::V6(dual_v6))?;
    let dir = lab.scratch_dir().to_owned();
    let ca = services::make_ca(
        &dir,
        &[names::DUAL_STACK, names::V6_ONLY],
        &[
            IpAddr::V6(dual_v6),
            IpAddr::V4(dual_v4),
            IpAddr::V6(targets.v6_only),
        ],
    )?;
    let body = "sixmap lab: hello over IPv6\n".to_owned();
    for node in ["dual", "v6only"] {
        let node_dir = dir.join(node);
        std::fs::create_dir_all(&node_dir).map_err(|e| LabError::Command {
            command: format!("mkdir {}", node_dir.display()),
            stderr: e.to_string(),
        })?;
        services::start_web(lab, node, &ca, &node_dir, &body)?;
        services::start_quic(lab, node, &ca, &node_dir, &body)?;
    }
    let filtered_port = 8081;
    services::filter_tcp_port(lab, "dual", filtered_port)?;
    Ok(Services {
        dns: (dual_v6, dual_v4),
        ca,
        body,
        closed_port: 81,
        filtered_port,
        targets,
    })
}

impl Truth for Services {
    fn truth(&self) -> serde_json::Value {
        let mut truth = self.targets.truth();
        truth["scenario"] = json!("services");
        truth["dns_server"] = json!([self.dns.0, self.dns.1]);
        truth["probe_resolver"] = json!(self.dns.0);
        truth["names"] = json!({
            names::V6_ONLY: "AAAA only",
            names::DUAL_STACK: "AAAA and A",
            names::V4_ONLY: "A only",
            names::BROKEN_V6: "AAAA and A; IPv6 blackholed",
        });
        truth["ca_cert"] = json!(self.ca.ca_cert);
        truth["web"] = json!({
            "hosts": ["dual", "v6only"],
            "http": 80, "https": 443, "http3_udp": 443,
            "body": self.body,
        });
        truth["closed_tcp_port"] = json!(self.closed_port);
        truth["filtered_tcp_port"] = json!(self.filtered_port);
        truth
    }
    fn lab(&self) -> &Lab {
        &self.targets.lab
    }
    fn lab_mut(&mut self) -> &mut Lab {
        &mut self.targets.lab
    }
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

/// Scenario 5: the link through router `imp` delays, jitters and drops packets in userspace
/// (TUN devices and a forwarder process), because this kernel has no netem. The settings are
/// the ground truth; each applies in each direction, so a round trip sees twice the delay.
#[derive(Debug)]
pub struct Impaired {
    pub lab: Lab,
    pub target: Ipv6Addr,
    pub target_v4: Ipv4Addr,
    pub delay_ms: f64,
    pub jitter_ms: f64,
    pub loss_percent: f64,
    /// `imp`'s address facing the probe: the one hop between probe and target.
    pub impairing_hop: Ipv6Addr,
}

/// Builds scenario 5. `lab_binary` is the `sixmap-lab` executable, which runs the forwarder
/// (`sixmap-lab impair`) inside the router's namespace.
pub fn impaired(
    lab_binary: &std::path::Path,
    delay_ms: f64,
    jitter_ms: f64,
    loss_percent: f64,
) -> Result<Impaired, LabError> {
    super::impair::Impairment::new(delay_ms, jitter_ms, loss_percent)
        .map_err(LabError::Topology)?;
    let topology = Topology::new()
        .host(PROBE)
        .router("imp")
        .host("target")
        .link(PROBE, "imp")
        .link("imp", "target");
    let mut lab = Lab::build(&topology)?;
    let binary = lab_binary
        .to_str()
        .ok_or_else(|| LabError::Topology("sixmap-lab path is not UTF-8".into()))?
        .to_owned();
    let mut forwarder = lab.command("imp", &binary);
    forwarder.args([
        "impair",
        "--tun-a",
        "tunp",
        "--tun-b",
        "tunt",
        "--delay-ms",
        &delay_ms.to_string(),
        "--jitter-ms",
        &jitter_ms.to_string(),
        "--loss",
        &loss_percent.to_string(),
    ]);
    lab.spawn("imp", forwarder)?;
    wait_for_link_up(&lab, "imp", "tunt")?;
    wait_for_link_up(&lab, "imp", "tunp")?;
    let imp = lab.node("imp").clone();
    let to_probe = imp
        .towards(PROBE)
        .cloned()
        .ok_or_else(|| LabError::Topology("imp not linked to the probe".into()))?;
    let to_target = imp
        .towards("target")
        .cloned()
        .ok_or_else(|| LabError::Topology("imp not linked to the target".into()))?;
    // The recipe of `impair`'s module doc: re-injected packets take the main table; all
    // other traffic goes through table 100, a copy of main with each real interface replaced
    // by the TUN device towards it (and `src` set, so imp answers from the usual address).
    let mut commands: Vec<Vec<String>> = Vec::new();
    let families = [
        (
            "-6",
            format!("{}/64", super::prefix64(to_target.v6)),
            to_target.v6.to_string(),
            format!("{}/64", super::prefix64(to_probe.v6)),
            to_probe.v6.to_string(),
        ),
        (
            "-4",
            v4_prefix(to_target.v4),
            to_target.v4.map(|a| a.to_string()).unwrap_or_default(),
            v4_prefix(to_probe.v4),
            to_probe.v4.map(|a| a.to_string()).unwrap_or_default(),
        ),
    ];
    for (family, target_prefix, target_src, probe_prefix, probe_src) in &families {
        if target_prefix.is_empty() || probe_prefix.is_empty() {
            continue;
        }
        for args in [
            vec![
                "rule", "add", "pref", "1000", "iif", "tunp", "lookup", "main",
            ],
            vec![
                "rule", "add", "pref", "1000", "iif", "tunt", "lookup", "main",
            ],
            vec!["rule", "add", "pref", "1001", "lookup", "100"],
            vec![
                "route",
                "add",
                target_prefix,
                "dev",
                "tunp",
                "src",
                target_src,
                "table",
                "100",
            ],
            vec![
                "route",
                "add",
                probe_prefix,
                "dev",
                "tunt",
                "src",
                probe_src,
                "table",
                "100",
            ],
        ] {
            let mut full = vec!["ip".to_owned(), (*family).to_owned()];
            full.extend(args.iter().map(|a| (*a).to_owned()));
            commands.push(full);
        }
    }
    for command in &commands {
        let argv: Vec<&str> = command.iter().map(String::as_str).collect();
        lab.exec("imp", &argv)?;
    }
    let target_v4 = lab
        .node("target")
        .v4()
        .ok_or_else(|| LabError::Topology("target has no IPv4".into()))?;
    Ok(Impaired {
        target: lab.node("target").v6(),
        target_v4,
        delay_ms,
        jitter_ms,
        loss_percent,
        impairing_hop: to_probe.v6,
        lab,
    })
}

fn v4_prefix(address: Option<Ipv4Addr>) -> String {
    address.map_or(String::new(), |a| {
        let o = a.octets();
        format!("{}.{}.{}.0/24", o[0], o[1], o[2])
    })
}

/// Waits until a link exists and is up in a node (a TUN device the forwarder creates; IPv6
/// refuses routes through a device that is down).
fn wait_for_link_up(lab: &Lab, node: &str, link: &str) -> Result<(), LabError> {
    for _ in 0..100 {
        let out = lab.exec_unchecked(node, &["ip", "link", "show", "dev", link, "up"]);
        if out.status.success() && !out.stdout.is_empty() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Err(LabError::Topology(format!(
        "{link} did not appear in {node}: the impairment forwarder did not start"
    )))
}

impl Truth for Impaired {
    fn truth(&self) -> serde_json::Value {
        json!({
            "scenario": "impaired",
            "probe": PROBE,
            "target": self.target, "target_v4": self.target_v4,
            "impairing_hop": self.impairing_hop,
            "each_direction": {
                "delay_ms": self.delay_ms,
                "jitter_ms": self.jitter_ms,
                "loss_percent": self.loss_percent,
            },
            "expected_rtt_ms": 2.0 * self.delay_ms,
            "expected_round_trip_loss_percent":
                100.0 * (1.0 - (1.0 - self.loss_percent / 100.0).powi(2)),
        })
    }
    fn lab(&self) -> &Lab {
        &self.lab
    }
    fn lab_mut(&mut self) -> &mut Lab {
        &mut self.lab
    }
}
