//! Many targets behind routers, for traceroutes of many destinations at once (the benchmark's
//! packets-per-second runs): four target hosts behind 3, 4, 5 and 6 routers (so 4..7 hops
//! from the probe), each answering on `per_host` addresses of its link's /64 besides its own.
//!
//! ```text
//! probe - r1 - r2 - r3 - ta                 (ta's addresses: 4 hops)
//!               \- r4 - r5 - tb             (5 hops)
//!               \- r6 - r7 - r8 - tc        (6 hops)
//!               \- r9 - r10 - r11 - r12 - td (7 hops)
//! ```

use super::scenarios::{PROBE, Truth};
use super::{Lab, LabError, Topology};
use serde_json::json;
use std::net::{IpAddr, Ipv6Addr};

/// Target hosts and the routers before each, after r1 - r2.
const BRANCHES: [(&str, &[&str]); 4] = [
    ("ta", &["r3"]),
    ("tb", &["r4", "r5"]),
    ("tc", &["r6", "r7", "r8"]),
    ("td", &["r9", "r10", "r11", "r12"]),
];

/// One destination and what traceroute must report for it, hop by hop.
#[derive(Debug, Clone)]
pub struct Destination {
    pub address: Ipv6Addr,
    pub host: String,
    pub hops: Vec<IpAddr>,
}

#[derive(Debug)]
pub struct ManyTargets {
    pub lab: Lab,
    pub destinations: Vec<Destination>,
}

/// Builds the scenario with `per_host` extra addresses (1..=1000) on each target host, so
/// `4 * (per_host + 1)` destinations in all.
pub fn many_targets(per_host: usize) -> Result<ManyTargets, LabError> {
    if !(1..=1000).contains(&per_host) {
        return Err(LabError::Topology("per_host must be 1..=1000".into()));
    }
    let mut topology = Topology::new()
        .host(PROBE)
        .router("r1")
        .router("r2")
        .link(PROBE, "r1")
        .link("r1", "r2");
    for (host, routers) in BRANCHES {
        topology = topology.host(host);
        let mut previous = "r2";
        for router in routers {
            topology = topology.router(router).link(previous, router);
            previous = router;
        }
        topology = topology.link(previous, host);
    }
    let lab = Lab::build(&topology)?;
    let mut destinations = Vec::new();
    for (host, _) in BRANCHES {
        let node = lab.node(host);
        let iface = node
            .interfaces
            .first()
            .cloned()
            .ok_or_else(|| LabError::Topology(format!("{host} has no link")))?;
        let own = iface.v6;
        let mut addresses = vec![own];
        let s = own.segments();
        for i in 0..per_host {
            let extra = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 1, 0x100 + i as u16);
            lab.exec(
                host,
                &[
                    "ip",
                    "-6",
                    "addr",
                    "add",
                    &format!("{extra}/64"),
                    "dev",
                    &iface.name,
                    "nodad",
                ],
            )?;
            addresses.push(extra);
        }
        for address in addresses {
            destinations.push(Destination {
                address,
                host: host.to_owned(),
                hops: lab.expected_hops(PROBE, host, IpAddr::V6(address)),
            });
        }
    }
    // Routers keep a neighbour entry for every destination.
    for router in ["r3", "r5", "r8", "r12"] {
        for setting in [
            "net.ipv6.neigh.default.gc_thresh1=4096",
            "net.ipv6.neigh.default.gc_thresh2=8192",
            "net.ipv6.neigh.default.gc_thresh3=16384",
        ] {
            let _ = lab.exec_unchecked(router, &["sysctl", "-q", "-w", setting]);
        }
    }
    Ok(ManyTargets { lab, destinations })
}

impl Truth for ManyTargets {
    fn truth(&self) -> serde_json::Value {
        json!({
            "scenario": "many_targets",
            "probe": PROBE,
            "destinations": self.destinations.iter().map(|d| json!({
                "address": d.address, "host": d.host, "hops": d.hops,
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
