//! The campaign scenario (issue #8): probes in three operators' networks (two lab countries)
//! and the targets of the services scenario behind an edge router: a v6-only, a dual-stack, a
//! broken-v6 host (its IPv6 blackholed at the core router) and a v4-only one (a name without AAAA),
//! with the lab DNS server and web servers; a host for the collector, reachable from every
//! probe. Also the prefix files mapping each probe's /64 to its operator, in the
//! `@ip-location-db` formats `sixmap-collector import-prefixes` reads.

use super::scenarios::{OPERATORS, blackhole_v6, make_v4_only, names};
use super::services::{self, DnsRecord, LabCa};
use super::{Lab, LabError, Topology, prefix64};
use serde_json::json;
use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;

pub use super::scenarios::LabProbe;

/// Where the collector runs.
pub const COLLECTOR: &str = "ctl";

#[derive(Debug)]
pub struct CampaignLab {
    pub lab: Lab,
    pub probes: Vec<LabProbe>,
    /// The collector host's address.
    pub collector: Ipv6Addr,
    /// The lab DNS server (on the dual-stack host); every probe resolves through it.
    pub dns: Ipv6Addr,
    pub ca: LabCa,
    /// `asn-ipv6.csv` and `geo-whois-asn-country-ipv6.csv` for the probes' prefixes.
    pub asn_csv: PathBuf,
    pub country_csv: PathBuf,
}

fn io(what: &str, e: std::io::Error) -> LabError {
    LabError::Command {
        command: what.into(),
        stderr: e.to_string(),
    }
}

pub fn campaign() -> Result<CampaignLab, LabError> {
    let mut topology = Topology::new()
        .router("core")
        .host(COLLECTOR)
        .link(COLLECTOR, "core")
        .router("edge")
        .link("core", "edge")
        .host("v6only")
        .host("dual")
        .host("v4only")
        .host("broken")
        .link_with("edge", "v6only", None, false)
        .link("edge", "dual")
        .link("edge", "v4only")
        .link("edge", "broken");
    for (operator, _, _, probes) in OPERATORS {
        topology = topology.router(operator).link(operator, "core");
        for i in 1..=probes {
            let node = format!("{operator}-p{i}");
            topology = topology.host(&node).link(&node, operator);
        }
    }
    let mut lab = Lab::build(&topology)?;
    // v4only: no IPv6 address at all.
    let v4_only = make_v4_only(&lab, "v4only")?;
    let broken_v6 = lab.node("broken").v6();
    let broken_v4 = lab
        .node("broken")
        .v4()
        .ok_or_else(|| LabError::Topology("broken has no IPv4".into()))?;
    // On core, where the route to it is a static one (as `targets()` does on r1): every
    // probe's path crosses core.
    blackhole_v6(&lab, "core", broken_v6)?;
    let dual_v6 = lab.node("dual").v6();
    let dual_v4 = lab
        .node("dual")
        .v4()
        .ok_or_else(|| LabError::Topology("dual has no IPv4".into()))?;
    let v6_only = lab.node("v6only").v6();
    let records = [
        DnsRecord {
            name: names::V6_ONLY.into(),
            aaaa: vec![v6_only],
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
            a: vec![v4_only],
        },
        DnsRecord {
            name: names::BROKEN_V6.into(),
            aaaa: vec![broken_v6],
            a: vec![broken_v4],
        },
    ];
    services::start_dns(&mut lab, "dual", &records)?;
    let probes: Vec<LabProbe> = OPERATORS
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
    for probe in &probes {
        lab.set_resolver(&probe.node, IpAddr::V6(dual_v6))?;
    }
    let dir = lab.scratch_dir().to_owned();
    let ca = services::make_ca(
        &dir,
        &[names::DUAL_STACK, names::V6_ONLY],
        &[
            IpAddr::V6(dual_v6),
            IpAddr::V4(dual_v4),
            IpAddr::V6(v6_only),
        ],
    )?;
    let body = "sixmap lab: hello over IPv6\n";
    for node in ["dual", "v6only"] {
        services::start_web(&mut lab, node, &ca, &dir.join(node), body)?;
    }
    // Each probe's /64 belongs to its operator.
    let mut asn_csv = String::new();
    let mut country_csv = String::new();
    for p in &probes {
        let first = prefix64(p.address);
        let s = first.segments();
        let last = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0xffff, 0xffff, 0xffff, 0xffff);
        asn_csv.push_str(&format!(
            "{first},{last},{},Lab operator {}\n",
            p.asn, p.operator
        ));
        country_csv.push_str(&format!("{first},{last},{}\n", p.country));
    }
    let asn_path = dir.join("asn-ipv6.csv");
    let country_path = dir.join("geo-whois-asn-country-ipv6.csv");
    std::fs::write(&asn_path, asn_csv).map_err(|e| io("write asn-ipv6.csv", e))?;
    std::fs::write(&country_path, country_csv).map_err(|e| io("write country csv", e))?;
    Ok(CampaignLab {
        collector: lab.node(COLLECTOR).v6(),
        dns: dual_v6,
        probes,
        ca,
        asn_csv: asn_path,
        country_csv: country_path,
        lab,
    })
}

impl super::scenarios::Truth for CampaignLab {
    fn truth(&self) -> serde_json::Value {
        json!({
            "scenario": "campaign",
            "collector": self.collector,
            "dns_server": self.dns,
            "probes": self.probes.iter().map(|p| json!({
                "node": p.node, "address": p.address, "asn": p.asn,
                "country": p.country, "operator": p.operator,
            })).collect::<Vec<_>>(),
            "targets": {
                names::V6_ONLY: "AAAA only; web on 80/443",
                names::DUAL_STACK: "AAAA and A; web on 80/443, same certificate and body on both",
                names::BROKEN_V6: "AAAA and A; IPv6 blackholed at core; no web server",
                names::V4_ONLY: "A only (no AAAA)",
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
