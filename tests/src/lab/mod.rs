//! The network lab: hosts and routers in Linux network namespaces, joined by veth links, with
//! real IPv6 (and optionally IPv4) forwarding, built from a declared topology.
//!
//! Every lab gets namespaces named `sxl-<pid>-<n>-<node>`, so labs of parallel tests never
//! meet; addresses can therefore repeat between labs. Dropping a [`Lab`] kills what runs in its
//! namespaces and deletes them (also while a test unwinds from a panic); labs left by a process
//! that died are collected when the next lab is built. `sixmap-lab up` builds a lab that is
//! kept after the command exits, under the fixed prefix `sxl-manual-`.
//!
//! Addressing: link `k` (in declaration order, from 1) is `2001:db8:<k>::/64` and, where the
//! link carries IPv4, `10.<k / 256>.<k % 256>.0/24`; the link's first endpoint is `::1` / `.1`,
//! the second `::2` / `.2`. Routes are static, computed along shortest paths, so the route
//! between two nodes is the ground truth tests compare against.

pub mod blame;
pub mod campaign;
pub mod impair;
pub mod many;
pub mod nat64;
pub mod ratelimit;
pub mod readiness;
pub mod scenarios;
pub mod services;
mod tun;

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Prefix of every lab namespace; `sixmap-lab down` and the collector of leftovers key on it.
pub const NAMESPACE_PREFIX: &str = "sxl-";
/// Prefix of labs brought up by hand (`sixmap-lab up`).
pub const MANUAL_PREFIX: &str = "sxl-manual-";

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("the lab needs {0}")]
    Unavailable(String),
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("topology: {0}")]
    Topology(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Host,
    Router,
}

/// A link between two nodes, as declared.
#[derive(Debug, Clone)]
pub struct LinkSpec {
    pub a: String,
    pub b: String,
    /// MTU of both ends; the kernel default (1500) when `None`.
    pub mtu: Option<u32>,
    /// Whether the link also carries IPv4.
    pub v4: bool,
}

/// A topology to build: nodes and the links between them.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    nodes: Vec<(String, Role)>,
    links: Vec<LinkSpec>,
}

impl Topology {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn host(mut self, name: &str) -> Self {
        self.nodes.push((name.to_owned(), Role::Host));
        self
    }

    pub fn router(mut self, name: &str) -> Self {
        self.nodes.push((name.to_owned(), Role::Router));
        self
    }

    /// A dual-stack link with the default MTU.
    pub fn link(self, a: &str, b: &str) -> Self {
        self.link_with(a, b, None, true)
    }

    pub fn link_with(mut self, a: &str, b: &str, mtu: Option<u32>, v4: bool) -> Self {
        self.links.push(LinkSpec {
            a: a.to_owned(),
            b: b.to_owned(),
            mtu,
            v4,
        });
        self
    }

    fn check(&self) -> Result<(), LabError> {
        let mut seen = std::collections::BTreeSet::new();
        for (name, _) in &self.nodes {
            let valid = !name.is_empty()
                && name.len() <= 12
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !valid {
                return Err(LabError::Topology(format!(
                    "node name {name:?} must be 1..=12 letters, digits or '-'"
                )));
            }
            if !seen.insert(name.as_str()) {
                return Err(LabError::Topology(format!("node {name} declared twice")));
            }
        }
        for link in &self.links {
            for end in [&link.a, &link.b] {
                if !seen.contains(end.as_str()) {
                    return Err(LabError::Topology(format!("link to unknown node {end}")));
                }
            }
            if link.a == link.b {
                return Err(LabError::Topology(format!(
                    "link from {} to itself",
                    link.a
                )));
            }
            if link.mtu.is_some_and(|m| m < 1280) {
                return Err(LabError::Topology("IPv6 links need an MTU >= 1280".into()));
            }
        }
        if self.links.len() > 60_000 {
            return Err(LabError::Topology("too many links".into()));
        }
        Ok(())
    }
}

/// One end of a built link, as seen from its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Interface name inside the node's namespace.
    pub name: String,
    /// Link index (from 1).
    pub link: usize,
    pub v6: Ipv6Addr,
    pub v4: Option<Ipv4Addr>,
    /// The node at the other end.
    pub peer: String,
    pub mtu: u32,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub role: Role,
    pub netns: String,
    pub interfaces: Vec<Interface>,
}

impl Node {
    /// The node's first IPv6 address (hosts have one link).
    pub fn v6(&self) -> Ipv6Addr {
        self.interfaces
            .first()
            .map_or(Ipv6Addr::UNSPECIFIED, |i| i.v6)
    }

    pub fn v4(&self) -> Option<Ipv4Addr> {
        self.interfaces.iter().find_map(|i| i.v4)
    }

    /// The interface facing `peer`.
    pub fn towards(&self, peer: &str) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.peer == peer)
    }
}

/// A built lab. Dropping it tears everything down unless it was [`Lab::keep`]-ed.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    nodes: BTreeMap<String, Node>,
    /// Next hop of every node towards every other node, along shortest paths.
    next_hops: BTreeMap<(String, String), String>,
    children: Vec<Child>,
    /// Files of this lab's services (configs, certificates), removed with the lab.
    scratch: std::path::PathBuf,
    keep: bool,
}

static LAB_COUNTER: AtomicU32 = AtomicU32::new(0);
static MANUAL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// From now on, labs of this process are built under [`MANUAL_PREFIX`] and kept after they
/// drop (`sixmap-lab up`).
pub fn build_manual_labs() {
    MANUAL.store(true, Ordering::Relaxed);
}

/// Runs a command, turning a non-zero exit into an error that shows it.
pub fn run(program: &str, args: &[&str]) -> Result<Output, LabError> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LabError::Command {
            command: format!("{program} {}", args.join(" ")),
            stderr: e.to_string(),
        })?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(LabError::Command {
            command: format!("{program} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

fn ip(args: &[&str]) -> Result<Output, LabError> {
    run("ip", args)
}

/// Why the lab cannot run here, if it cannot: it needs root and iproute2.
pub fn unavailable() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("");
    if euid != "0" {
        return Some("root (network namespaces, veth, nftables)".into());
    }
    if Command::new("ip")
        .arg("-V")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        return Some("iproute2 (`ip`): apt-get install iproute2".into());
    }
    None
}

/// Starts a lab test or explains why it cannot run. In CI (`CI=true`) a lab test that cannot
/// run fails, so a missing install step is never hidden by a skip.
#[macro_export]
macro_rules! lab_or_skip {
    () => {
        if let Some(missing) = $crate::lab::unavailable() {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("lab test cannot run in CI: it needs {missing}");
            }
            eprintln!("skipped: this lab test needs {missing}");
            return;
        }
    };
}

/// Whether a process id is alive.
fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Namespaces whose name starts with `prefix`.
pub fn namespaces(prefix: &str) -> Vec<String> {
    let Ok(output) = ip(&["netns", "list"]) else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// Kills every process in a namespace, then deletes it (which deletes its links).
pub fn delete_namespace(netns: &str) {
    for _ in 0..3 {
        let pids = ip(&["netns", "pids", netns])
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let pids: Vec<&str> = pids.split_whitespace().collect();
        if pids.is_empty() {
            break;
        }
        let _ = run("kill", &[&["-9"][..], &pids[..]].concat());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = ip(&["netns", "delete", netns]);
    // `ip netns exec` bind-mounts files from here over /etc (see Lab::set_resolver).
    let _ = std::fs::remove_dir_all(format!("/etc/netns/{netns}"));
}

/// Deletes labs whose creating process is gone (a test killed before it could clean up).
pub fn collect_leftovers() {
    for netns in namespaces(NAMESPACE_PREFIX) {
        if netns.starts_with(MANUAL_PREFIX) {
            continue;
        }
        let pid = netns
            .strip_prefix(NAMESPACE_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !alive(p)) {
            delete_namespace(&netns);
        }
    }
}

impl Lab {
    /// Builds `topology` in fresh namespaces.
    pub fn build(topology: &Topology) -> Result<Self, LabError> {
        if MANUAL.load(Ordering::Relaxed) {
            return Self::build_manual(topology);
        }
        let n = LAB_COUNTER.fetch_add(1, Ordering::Relaxed);
        Self::build_named(
            topology,
            &format!("{NAMESPACE_PREFIX}{}-{n}-", std::process::id()),
        )
    }

    /// Builds `topology` under the manual prefix; it stays up after this process exits.
    pub fn build_manual(topology: &Topology) -> Result<Self, LabError> {
        let mut lab = Self::build_named(topology, MANUAL_PREFIX)?;
        lab.keep = true;
        Ok(lab)
    }

    fn build_named(topology: &Topology, prefix: &str) -> Result<Self, LabError> {
        topology.check()?;
        if let Some(missing) = unavailable() {
            return Err(LabError::Unavailable(missing));
        }
        collect_leftovers();
        let mut lab = Self {
            prefix: prefix.to_owned(),
            nodes: BTreeMap::new(),
            next_hops: BTreeMap::new(),
            children: Vec::new(),
            scratch: std::env::temp_dir().join(format!("{prefix}files")),
            keep: false,
        };
        std::fs::create_dir_all(&lab.scratch).map_err(|e| LabError::Command {
            command: format!("mkdir {}", lab.scratch.display()),
            stderr: e.to_string(),
        })?;
        // From here on, a failure drops `lab`, which removes what was built so far.
        for (name, role) in &topology.nodes {
            let netns = format!("{prefix}{name}");
            ip(&["netns", "add", &netns])?;
            lab.nodes.insert(
                name.clone(),
                Node {
                    name: name.clone(),
                    role: *role,
                    netns,
                    interfaces: Vec::new(),
                },
            );
            lab.setup_node(name, *role)?;
        }
        for (i, link) in topology.links.iter().enumerate() {
            lab.add_link(i + 1, link)?;
        }
        lab.compute_next_hops(topology);
        lab.add_routes()?;
        Ok(lab)
    }

    fn setup_node(&self, name: &str, role: Role) -> Result<(), LabError> {
        self.exec(name, &["ip", "link", "set", "lo", "up"])?;
        let forwarding = if role == Role::Router { "1" } else { "0" };
        for setting in [
            format!("net.ipv6.conf.all.forwarding={forwarding}"),
            format!("net.ipv4.ip_forward={forwarding}"),
            // Addresses usable at once, and no router solicitations or SLAAC noise.
            "net.ipv6.conf.default.accept_dad=0".into(),
            "net.ipv6.conf.default.accept_ra=0".into(),
            "net.ipv6.conf.default.autoconf=0".into(),
            // Every probe gets its ICMPv6 answer: no rate limit on errors in the lab.
            "net.ipv6.icmp.ratelimit=0".into(),
            "net.ipv4.icmp_ratelimit=0".into(),
            // Unprivileged ICMP echo sockets for every group, as on most distributions.
            "net.ipv4.ping_group_range=0 2147483647".into(),
        ] {
            self.exec(name, &["sysctl", "-q", "-w", &setting])?;
        }
        // No global ICMP budget either: the defaults (1000/s, bursts of 50) starve traceroutes
        // run in parallel. Per namespace only on recent kernels, hence best effort.
        for setting in [
            "net.ipv4.icmp_msgs_per_sec=1000000",
            "net.ipv4.icmp_msgs_burst=1000000",
        ] {
            let _ = self.exec_unchecked(name, &["sysctl", "-q", "-w", setting]);
        }
        Ok(())
    }

    fn add_link(&mut self, k: usize, link: &LinkSpec) -> Result<(), LabError> {
        let (a_if, b_if) = {
            let a = &self.nodes[&link.a];
            let b = &self.nodes[&link.b];
            (
                format!("eth{}", a.interfaces.len()),
                format!("eth{}", b.interfaces.len()),
            )
        };
        let a_ns = self.nodes[&link.a].netns.clone();
        let b_ns = self.nodes[&link.b].netns.clone();
        ip(&[
            "-n", &a_ns, "link", "add", &a_if, "type", "veth", "peer", "name", &b_if, "netns",
            &b_ns,
        ])?;
        let mtu = link.mtu.unwrap_or(1500);
        let (hi, lo) = ((k >> 8) as u8, (k & 0xff) as u8);
        for (end, ns, ifname, host) in [(&link.a, &a_ns, &a_if, 1u8), (&link.b, &b_ns, &b_if, 2)] {
            let v6 = Ipv6Addr::new(0x2001, 0xdb8, k as u16, 0, 0, 0, 0, u16::from(host));
            let v4 = link.v4.then(|| Ipv4Addr::new(10, hi, lo, host));
            ip(&[
                "-n",
                ns,
                "link",
                "set",
                ifname,
                "mtu",
                &mtu.to_string(),
                "up",
            ])?;
            ip(&[
                "-n",
                ns,
                "-6",
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                ifname,
                "nodad",
            ])?;
            if let Some(v4) = v4 {
                ip(&["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", ifname])?;
            }
            let peer = if end == &link.a { &link.b } else { &link.a };
            if let Some(node) = self.nodes.get_mut(end) {
                node.interfaces.push(Interface {
                    name: ifname.clone(),
                    link: k,
                    v6,
                    v4,
                    peer: peer.clone(),
                    mtu,
                });
            }
        }
        Ok(())
    }

    /// Breadth-first search from every node: the first hop of a shortest path to each other.
    fn compute_next_hops(&mut self, topology: &Topology) {
        let mut adjacency: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for link in &topology.links {
            adjacency.entry(&link.a).or_default().push(&link.b);
            adjacency.entry(&link.b).or_default().push(&link.a);
        }
        for (source, _) in &topology.nodes {
            let mut first_hop: BTreeMap<&str, &str> = BTreeMap::new();
            let mut queue = VecDeque::new();
            for next in adjacency.get(source.as_str()).into_iter().flatten() {
                if !first_hop.contains_key(next) {
                    first_hop.insert(next, next);
                    queue.push_back(*next);
                }
            }
            while let Some(node) = queue.pop_front() {
                let via = first_hop[node];
                for next in adjacency.get(node).into_iter().flatten() {
                    if *next != source.as_str() && !first_hop.contains_key(next) {
                        first_hop.insert(next, via);
                        queue.push_back(*next);
                    }
                }
            }
            for (target, via) in first_hop {
                self.next_hops
                    .insert((source.clone(), target.to_owned()), via.to_owned());
            }
        }
    }

    /// Static routes: to every link prefix not directly attached, via the neighbour on the
    /// shortest path to that link's first endpoint.
    fn add_routes(&self) -> Result<(), LabError> {
        let links: BTreeMap<usize, (&str, &Interface)> = self
            .nodes
            .values()
            .flat_map(|n| {
                n.interfaces
                    .iter()
                    .map(move |i| (i.link, (n.name.as_str(), i)))
            })
            .collect();
        for node in self.nodes.values() {
            for (k, (owner, iface)) in &links {
                if node.interfaces.iter().any(|i| i.link == *k) {
                    continue;
                }
                let Some(via) = self
                    .next_hops
                    .get(&(node.name.clone(), (*owner).to_owned()))
                else {
                    continue; // not connected
                };
                let Some(out) = node.towards(via) else {
                    continue;
                };
                let gateway = &self.nodes[via];
                let Some(gw_if) = gateway.towards(&node.name) else {
                    continue;
                };
                let prefix6 = format!("{}/64", prefix64(iface.v6));
                self.exec(
                    &node.name,
                    &[
                        "ip",
                        "-6",
                        "route",
                        "add",
                        &prefix6,
                        "via",
                        &gw_if.v6.to_string(),
                        "dev",
                        &out.name,
                    ],
                )?;
                if let (Some(v4), Some(gw4)) = (iface.v4, gw_if.v4) {
                    let o = v4.octets();
                    let prefix4 = format!("{}.{}.{}.0/24", o[0], o[1], o[2]);
                    self.exec(
                        &node.name,
                        &[
                            "ip",
                            "route",
                            "add",
                            &prefix4,
                            "via",
                            &gw4.to_string(),
                            "dev",
                            &out.name,
                        ],
                    )?;
                }
            }
        }
        Ok(())
    }

    pub fn node(&self, name: &str) -> &Node {
        self.nodes
            .get(name)
            .unwrap_or_else(|| panic!("no node {name} in this lab"))
    }

    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    /// The namespace prefix of this lab.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The nodes a packet from `from` to `to` visits after `from`, ending with `to`.
    pub fn path(&self, from: &str, to: &str) -> Vec<String> {
        let mut path = Vec::new();
        let mut at = from.to_owned();
        while at != to {
            let Some(next) = self.next_hops.get(&(at.clone(), to.to_owned())) else {
                return Vec::new();
            };
            path.push(next.clone());
            at = next.clone();
            if path.len() > self.nodes.len() {
                return Vec::new();
            }
        }
        path
    }

    /// The addresses traceroute from `from` to `to` should report, hop by hop: each router's
    /// address on the interface facing the previous node (the source Linux picks for an
    /// ICMPv6 error sent back towards `from`), then the destination.
    pub fn expected_hops(&self, from: &str, to: &str, target: IpAddr) -> Vec<IpAddr> {
        let path = self.path(from, to);
        let mut previous = from.to_owned();
        let mut hops = Vec::new();
        for node in &path {
            if node == to {
                hops.push(target);
            } else if let Some(iface) = self.node(node).towards(&previous) {
                hops.push(match target {
                    IpAddr::V6(_) => IpAddr::V6(iface.v6),
                    IpAddr::V4(_) => iface
                        .v4
                        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), IpAddr::V4),
                });
            }
            previous = node.clone();
        }
        hops
    }

    /// Runs a command inside a node's namespace and waits for it.
    pub fn exec(&self, node: &str, argv: &[&str]) -> Result<Output, LabError> {
        let netns = &self.node(node).netns;
        run(
            "ip",
            &[&["netns", "exec", netns.as_str()][..], argv].concat(),
        )
    }

    /// Like [`Lab::exec`], but returns the output whatever the exit status.
    pub fn exec_unchecked(&self, node: &str, argv: &[&str]) -> Output {
        let netns = &self.node(node).netns;
        Command::new("ip")
            .args(["netns", "exec", netns])
            .args(argv)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run ip netns exec: {e}"))
    }

    /// A `Command` that runs inside a node's namespace, for the caller to spawn.
    pub fn command(&self, node: &str, program: &str) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.node(node).netns, program])
            .stdin(Stdio::null());
        command
    }

    /// Starts a long-running program in a node's namespace; it lives as long as the lab.
    pub fn spawn(&mut self, node: &str, mut command: Command) -> Result<(), LabError> {
        let _ = node;
        let child = command.spawn().map_err(|e| LabError::Command {
            command: format!("{command:?}"),
            stderr: e.to_string(),
        })?;
        self.children.push(child);
        Ok(())
    }

    /// Loads nftables rules into a node (`nft -f -` syntax).
    pub fn nft(&self, node: &str, ruleset: &str) -> Result<(), LabError> {
        use std::io::Write;
        let mut child = self
            .command(node, "nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| LabError::Unavailable(format!("nftables (`nft`): {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(ruleset.as_bytes());
        }
        let output = child.wait_with_output().map_err(|e| LabError::Command {
            command: "nft -f -".into(),
            stderr: e.to_string(),
        })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(LabError::Command {
                command: format!("nft -f - in {node}"),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            })
        }
    }

    /// Makes programs run in `node` (through `ip netns exec`) resolve names with `server`:
    /// `ip netns exec` mounts `/etc/netns/<namespace>/resolv.conf` over `/etc/resolv.conf`.
    /// Removed with the namespace.
    pub fn set_resolver(&self, node: &str, server: IpAddr) -> Result<(), LabError> {
        let dir = format!("/etc/netns/{}", self.node(node).netns);
        std::fs::create_dir_all(&dir)
            .and_then(|()| {
                std::fs::write(
                    format!("{dir}/resolv.conf"),
                    format!("nameserver {server}\noptions timeout:1 attempts:2\n"),
                )
            })
            .map_err(|e| LabError::Command {
                command: format!("write {dir}/resolv.conf"),
                stderr: e.to_string(),
            })
    }

    /// A directory for this lab's files, removed with the lab.
    pub fn scratch_dir(&self) -> &std::path::Path {
        &self.scratch
    }

    /// Keeps the lab (namespaces and programs) after this handle drops.
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

/// The /64 prefix of an address (its first four groups, then zeros).
pub fn prefix64(address: Ipv6Addr) -> Ipv6Addr {
    let s = address.segments();
    Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0)
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for node in self.nodes.values() {
            delete_namespace(&node.netns);
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}
