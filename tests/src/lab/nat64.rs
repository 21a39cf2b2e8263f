//! Access networks as ISPs build them, one lab with a host on each: native dual-stack,
//! IPv4-only, IPv6-only with NAT64/DNS64, and 464XLAT (RFC 6877: a CLAT on the host).
//!
//! ```text
//!  v6only ─┐  IPv6 only, resolver: DNS64 (unbound on isp)
//!  xlat ───┤  IPv6 only + CLAT (tayga on xlat, 192.0.0.1 → PLAT), resolver: DNS64
//!  dual ───┼─ isp ── server   (dnsmasq: the names; HTTP/HTTPS; IPv4-only service V4_SERVICE)
//!  v4only ─┘  IPv4 only (its IPv6 disabled), resolver: dnsmasq over IPv4
//! ```
//!
//! `isp` is the provider's router: it routes both families, runs the PLAT (Debian's `tayga`,
//! a userspace NAT64 on a TUN device: Jool needs a kernel module) translating the NAT64 prefix
//! (the well-known [`NAT64_PREFIX`], or a network-specific one such as
//! [`network_specific_prefix`], a /96, or [`short_network_specific_prefix`], a /48) to a pool of [`NAT64_POOL`], NAT44 (nftables masquerade) from that
//! pool towards the server, and DNS64 (Debian's `unbound`, `module-config: "dns64 iterator"`)
//! forwarding to the server's dnsmasq. The CLAT on `xlat` is a second tayga with one static
//! mapping, as clatd sets it up: the host's IPv4 default route goes into the `clat` device,
//! whose IPv4 source 192.0.0.1 becomes [`AccessLab::clat_v6`] and whose destinations become
//! addresses under the PLAT prefix.
//!
//! Every program runs as a child of the [`Lab`] in its namespace, and the TUN devices live in
//! the namespaces, so dropping the lab removes all of it, also after a failed test.

use super::scenarios::Truth;
use super::services::{self, DnsRecord, LabCa};
use super::{Lab, LabError, Topology};
use serde_json::json;
use sixmap_shared::nat64::Nat64Prefix;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::{Duration, Instant};

/// The provider's router: PLAT, NAT44 and DNS64.
pub const ISP: &str = "isp";
/// Host of the IPv6-only access with NAT64/DNS64.
pub const V6_ONLY: &str = "v6only";
/// Host of the 464XLAT access (IPv6-only link, CLAT on the host).
pub const XLAT: &str = "xlat";
/// Host of the native dual-stack access.
pub const DUAL: &str = "dual";
/// Host of the IPv4-only access.
pub const V4_ONLY: &str = "v4only";
/// The services' host (dual-stack): DNS, HTTP and the IPv4-only address.
pub const SERVER: &str = "server";

/// The RFC 6052 well-known prefix the PLAT and DNS64 use.
pub const NAT64_PREFIX: Nat64Prefix = Nat64Prefix::WELL_KNOWN;
/// A network-specific prefix (RFC 6052 section 2.3), for the case where only RFC 7050
/// discovery tells a host that an address is synthesised.
pub fn network_specific_prefix() -> Nat64Prefix {
    Nat64Prefix::new(Ipv6Addr::new(0x2001, 0xdb8, 0x64, 0xff9b, 0, 0, 0, 0), 96)
        .unwrap_or(Nat64Prefix::WELL_KNOWN)
}
/// A network-specific prefix shorter than /96 (RFC 6052 section 2.2): the IPv4 address is
/// split around bits 64–71, so only a discovery that searches every position finds it.
pub fn short_network_specific_prefix() -> Nat64Prefix {
    Nat64Prefix::new(Ipv6Addr::new(0x2001, 0xdb8, 0x640, 0, 0, 0, 0, 0), 48)
        .unwrap_or(Nat64Prefix::WELL_KNOWN)
}
/// The IPv4-only service, on the server's loopback. Debian's tayga 0.9.2 drops traffic to
/// RFC 1918 and documentation (TEST-NET) addresses behind the well-known prefix, as the RFC
/// asks of non-global addresses, but lets the shared address space 100.64.0.0/10 through, so
/// the lab's "public" IPv4 service lives there (and is routed nowhere outside the lab).
pub const V4_SERVICE: Ipv4Addr = Ipv4Addr::new(100, 64, 1, 2);
/// The PLAT's dynamic pool (`/24`): IPv6 clients get one of these towards IPv4, then NAT44.
pub const NAT64_POOL: Ipv4Addr = Ipv4Addr::new(100, 64, 255, 0);
/// The PLAT's own IPv4 address, in the pool.
const PLAT_V4: Ipv4Addr = Ipv4Addr::new(100, 64, 255, 1);
/// The PLAT's own IPv6 address (source of its ICMPv6 errors); tayga needs one with the
/// well-known prefix and a non-global IPv4 address.
const PLAT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x64, 0, 0, 0, 0, 1);
/// The CLAT host's IPv4 address (RFC 7335's 192.0.0.0/29, as clatd and Android use).
pub const CLAT_HOST_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 0, 1);
/// The CLAT's own IPv4 address (tayga's, the source of its ICMP errors).
const CLAT_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 0, 2);
/// Interface names of the two translators' TUN devices.
const PLAT_DEVICE: &str = "nat64";
pub const CLAT_DEVICE: &str = "clat";
/// MTU of the CLAT's IPv4 route: 1500 less the 20 bytes IPv6's header adds over IPv4's.
const CLAT_MTU: u32 = 1480;
/// nftables table of the NAT44 (its one rule counts what it translated).
pub const NAT_TABLE: &str = "sixmap_lab_nat44";
/// How long the translators may take to pass their first packet.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The lab's DNS names (served by dnsmasq on the server, through DNS64 on the IPv6-only
/// accesses).
pub mod names {
    /// A and AAAA: the server's addresses (the AAAA is the server's own IPv6 address).
    pub const DUAL_STACK: &str = "dual.access.lab";
    /// A only ([`super::V4_SERVICE`]): DNS64 synthesises its AAAA.
    pub const V4_ONLY: &str = "v4only.access.lab";
    /// RFC 7050's discovery name; the server answers its two well-known A records, as the
    /// root zone does.
    pub const IPV4ONLY_ARPA: &str = "ipv4only.arpa";
}

/// The built lab with its ground truth.
#[derive(Debug)]
pub struct AccessLab {
    pub lab: Lab,
    /// The server's IPv6 and IPv4 link addresses.
    pub server_v6: Ipv6Addr,
    pub server_v4: Ipv4Addr,
    /// The DNS64 resolver (unbound on `isp`) as each IPv6-only host reaches it.
    pub dns64_v6only: Ipv6Addr,
    pub dns64_xlat: Ipv6Addr,
    /// The IPv6 address the CLAT gives the xlat host's IPv4 traffic.
    pub clat_v6: Ipv6Addr,
    /// The NAT64 prefix of the PLAT, the CLAT and DNS64.
    pub nat64_prefix: Nat64Prefix,
    /// The lab CA of the server's HTTPS.
    pub ca: LabCa,
    /// What the server's web serves at `/`.
    pub body: String,
}

impl AccessLab {
    /// The address DNS64 synthesises and the PLAT translates for `v4` (RFC 6052).
    pub fn synthesised(&self, v4: Ipv4Addr) -> Ipv6Addr {
        self.nat64_prefix.embed(v4)
    }
}

/// Builds the access lab with the well-known prefix and returns once both translators pass
/// traffic.
pub fn access_lab() -> Result<AccessLab, LabError> {
    access_lab_with(NAT64_PREFIX)
}

/// Builds the access lab with `nat64_prefix`.
pub fn access_lab_with(nat64_prefix: Nat64Prefix) -> Result<AccessLab, LabError> {
    services::require("tayga", &["--help"], "tayga: apt-get install tayga")?;
    services::require("unbound", &["-V"], "unbound: apt-get install unbound")?;
    let topology = Topology::new()
        .router(ISP)
        .host(V6_ONLY)
        .host(XLAT)
        .host(DUAL)
        .host(V4_ONLY)
        .host(SERVER)
        .link_with(ISP, V6_ONLY, None, false)
        .link_with(ISP, XLAT, None, false)
        .link(ISP, DUAL)
        .link(ISP, V4_ONLY)
        .link(ISP, SERVER);
    let mut lab = Lab::build(&topology)?;
    let server = lab.node(SERVER).clone();
    let isp = lab.node(ISP).clone();
    let server_v6 = server.v6();
    let server_v4 = server
        .v4()
        .ok_or_else(|| topology_error("server without IPv4"))?;
    let towards = |peer: &str| {
        isp.towards(peer)
            .cloned()
            .ok_or_else(|| topology_error(&format!("isp has no link to {peer}")))
    };
    let (to_v6only, to_xlat, to_dual, to_v4only, to_server) = (
        towards(V6_ONLY)?,
        towards(XLAT)?,
        towards(DUAL)?,
        towards(V4_ONLY)?,
        towards(SERVER)?,
    );
    let isp_v4 = |i: &super::Interface| {
        i.v4.ok_or_else(|| topology_error(&format!("isp's {} without IPv4", i.name)))
    };

    // Default routes, as each access hands them out.
    for (host, gateway) in [(V6_ONLY, &to_v6only), (XLAT, &to_xlat), (DUAL, &to_dual)] {
        lab.exec(
            host,
            &[
                "ip",
                "-6",
                "route",
                "add",
                "default",
                "via",
                &gateway.v6.to_string(),
            ],
        )?;
    }
    for (host, gateway) in [(DUAL, &to_dual), (V4_ONLY, &to_v4only)] {
        let via = isp_v4(gateway)?.to_string();
        lab.exec(host, &["ip", "route", "add", "default", "via", &via])?;
    }
    // The IPv4-only host has no IPv6 at all: disabling it removes its addresses and routes.
    let v4only_if = lab.node(V4_ONLY).interfaces[0].name.clone();
    lab.exec(
        V4_ONLY,
        &[
            "sysctl",
            "-q",
            "-w",
            &format!("net.ipv6.conf.{v4only_if}.disable_ipv6=1"),
        ],
    )?;

    // The server: the IPv4-only service on its loopback, routed by the ISP.
    lab.exec(
        SERVER,
        &[
            "ip",
            "addr",
            "add",
            &format!("{V4_SERVICE}/32"),
            "dev",
            "lo",
        ],
    )?;
    lab.exec(
        ISP,
        &[
            "ip",
            "route",
            "add",
            &format!("{V4_SERVICE}/32"),
            "via",
            &server_v4.to_string(),
        ],
    )?;
    let records = [
        DnsRecord {
            name: names::DUAL_STACK.into(),
            aaaa: vec![server_v6],
            a: vec![V4_SERVICE],
        },
        DnsRecord {
            name: names::V4_ONLY.into(),
            aaaa: Vec::new(),
            a: vec![V4_SERVICE],
        },
        DnsRecord {
            name: names::IPV4ONLY_ARPA.into(),
            aaaa: Vec::new(),
            a: vec![Ipv4Addr::new(192, 0, 0, 170), Ipv4Addr::new(192, 0, 0, 171)],
        },
    ];
    services::start_dns(&mut lab, SERVER, &records)?;
    let dir = lab.scratch_dir().join("access");
    std::fs::create_dir_all(&dir).map_err(|e| LabError::Command {
        command: format!("mkdir {}", dir.display()),
        stderr: e.to_string(),
    })?;
    let ca = services::make_ca(
        &dir,
        &[names::DUAL_STACK, names::V4_ONLY],
        &[IpAddr::V6(server_v6), IpAddr::V4(V4_SERVICE)],
    )?;
    let body = "sixmap access lab: hello\n".to_owned();
    services::start_web(&mut lab, SERVER, &ca, &dir, &body)?;

    start_plat(&mut lab, &dir, &to_server.name, nat64_prefix)?;
    start_dns64(
        &mut lab,
        &dir,
        &[to_v6only.v6, to_xlat.v6],
        server_v6,
        nat64_prefix,
    )?;
    let clat_v6 = start_clat(&mut lab, &dir, nat64_prefix)?;

    for (host, resolver) in [
        (V6_ONLY, IpAddr::V6(to_v6only.v6)),
        (XLAT, IpAddr::V6(to_xlat.v6)),
        (DUAL, IpAddr::V6(server_v6)),
        (V4_ONLY, IpAddr::V4(server_v4)),
    ] {
        lab.set_resolver(host, resolver)?;
        // Straight to DNS: an NSS module in front (systemd-resolved's `resolve`, mDNS) would
        // answer from the host's own resolver, outside the namespace. `ip netns exec` mounts
        // this file over /etc/nsswitch.conf; it goes with the namespace's directory.
        let nsswitch = format!("/etc/netns/{}/nsswitch.conf", lab.node(host).netns);
        services::write(Path::new(&nsswitch), b"hosts: files dns\n")?;
    }

    let access = AccessLab {
        lab,
        server_v6,
        server_v4,
        dns64_v6only: to_v6only.v6,
        dns64_xlat: to_xlat.v6,
        clat_v6,
        nat64_prefix,
        ca,
        body,
    };
    let synthesised = access.synthesised(V4_SERVICE).to_string();
    wait_ping(&access.lab, V6_ONLY, &synthesised)?;
    wait_ping(&access.lab, XLAT, &V4_SERVICE.to_string())?;
    Ok(access)
}

impl Truth for AccessLab {
    fn truth(&self) -> serde_json::Value {
        let host = |name: &str| {
            let node = self.lab.node(name);
            // The IPv4-only host's link address was removed with its IPv6.
            let v6 = (name != V4_ONLY).then(|| node.v6());
            json!({"netns": node.netns, "v6": v6, "v4": node.v4()})
        };
        json!({
            "scenario": "access",
            "nat64_prefix": self.nat64_prefix.to_string(),
            "v4_service": V4_SERVICE,
            "v4_service_synthesised": self.synthesised(V4_SERVICE),
            "server": [self.server_v6, self.server_v4],
            "dns64": {V6_ONLY: self.dns64_v6only, XLAT: self.dns64_xlat},
            "clat": {"host_v4": CLAT_HOST_V4, "v6": self.clat_v6, "device": CLAT_DEVICE},
            "names": [names::DUAL_STACK, names::V4_ONLY, names::IPV4ONLY_ARPA],
            "hosts": {
                V6_ONLY: host(V6_ONLY),
                XLAT: host(XLAT),
                DUAL: host(DUAL),
                V4_ONLY: host(V4_ONLY),
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

fn topology_error(why: &str) -> LabError {
    LabError::Topology(why.to_owned())
}

/// The PLAT on `isp`: tayga between `prefix` and the pool, then NAT44 out of `uplink`
/// (towards the server) so the IPv4 side sees the router's own address.
fn start_plat(
    lab: &mut Lab,
    dir: &Path,
    uplink: &str,
    prefix: Nat64Prefix,
) -> Result<(), LabError> {
    let conf = dir.join("plat.conf");
    services::write(
        &conf,
        format!(
            "tun-device {PLAT_DEVICE}\n\
             ipv4-addr {PLAT_V4}\n\
             ipv6-addr {PLAT_V6}\n\
             prefix {prefix}\n\
             dynamic-pool {NAT64_POOL}/24\n"
        )
        .as_bytes(),
    )?;
    start_tayga(lab, ISP, &conf, &dir.join("plat.log"))?;
    let isp = lab.node(ISP).clone();
    let uplink_if = isp
        .interfaces
        .iter()
        .find(|i| i.name == uplink)
        .cloned()
        .ok_or_else(|| topology_error("isp without its uplink"))?;
    let pool = format!("{NAT64_POOL}/24");
    let prefix = prefix.to_string();
    let plat_v6 = PLAT_V6.to_string();
    let uplink_v4 = uplink_if
        .v4
        .ok_or_else(|| topology_error("isp's uplink without IPv4"))?
        .to_string();
    // The router's own addresses on the TUN device too, as tayga's documentation sets it up:
    // the kernel then has a source for what it sends into the device.
    let commands = [
        strings(&["ip", "addr", "add", &uplink_v4, "dev", PLAT_DEVICE]),
        strings(&[
            "ip",
            "addr",
            "add",
            &uplink_if.v6.to_string(),
            "dev",
            PLAT_DEVICE,
            "nodad",
        ]),
        strings(&["ip", "route", "add", &pool, "dev", PLAT_DEVICE]),
        strings(&["ip", "-6", "route", "add", &prefix, "dev", PLAT_DEVICE]),
        strings(&["ip", "-6", "route", "add", &plat_v6, "dev", PLAT_DEVICE]),
    ];
    for command in &commands {
        let argv: Vec<&str> = command.iter().map(String::as_str).collect();
        lab.exec(ISP, &argv)?;
    }
    lab.nft(
        ISP,
        &format!(
            "add table ip {NAT_TABLE}\n\
             add chain ip {NAT_TABLE} postrouting {{ type nat hook postrouting priority 100; }}\n\
             add rule ip {NAT_TABLE} postrouting ip saddr {pool} oifname {uplink} counter masquerade\n"
        ),
    )
}

/// DNS64 on `isp`: unbound listening on `listen`, forwarding everything to the server's
/// dnsmasq, synthesising AAAA under `prefix` for names with A records only. No cache
/// (TTL 0 everywhere), no DNSSEC validation (the lab's zone is unsigned), no daemon. Except
/// `ipv4only.arpa`, answered locally as RFC 8880 asks of a DNS64, with a TTL of 60 s: the
/// probe keeps the NAT64 prefix that long (RFC 7050 section 3.1).
fn start_dns64(
    lab: &mut Lab,
    dir: &Path,
    listen: &[Ipv6Addr],
    upstream: Ipv6Addr,
    prefix: Nat64Prefix,
) -> Result<(), LabError> {
    let instance = services::instance_name(lab, ISP, "unbound");
    let conf = dir.join(format!("{instance}.conf"));
    let mut text = String::from("server:\n");
    for address in listen {
        text.push_str(&format!("  interface: {address}\n"));
    }
    text.push_str(&format!(
        "  port: 53\n\
         \x20 do-daemonize: no\n\
         \x20 username: \"\"\n\
         \x20 chroot: \"\"\n\
         \x20 pidfile: \"\"\n\
         \x20 directory: \"{dir}\"\n\
         \x20 use-syslog: no\n\
         \x20 logfile: \"\"\n\
         \x20 verbosity: 1\n\
         \x20 access-control: ::/0 allow\n\
         \x20 module-config: \"dns64 iterator\"\n\
         \x20 dns64-prefix: {prefix}\n\
         \x20 cache-max-ttl: 0\n\
         \x20 cache-max-negative-ttl: 0\n\
         \x20 local-zone: \"ipv4only.arpa.\" static\n\
         \x20 local-data: \"ipv4only.arpa. 60 IN A 192.0.0.170\"\n\
         \x20 local-data: \"ipv4only.arpa. 60 IN A 192.0.0.171\"\n\
         \x20 local-data: \"ipv4only.arpa. 60 IN AAAA {aa}\"\n\
         \x20 local-data: \"ipv4only.arpa. 60 IN AAAA {ab}\"\n\
         forward-zone:\n\
         \x20 name: \".\"\n\
         \x20 forward-addr: {upstream}\n",
        dir = dir.display(),
        aa = prefix.embed(Ipv4Addr::new(192, 0, 0, 170)),
        ab = prefix.embed(Ipv4Addr::new(192, 0, 0, 171)),
    ));
    services::write(&conf, text.as_bytes())?;
    let conf_arg = conf.display().to_string();
    services::launch(
        lab,
        ISP,
        "unbound",
        &["-d", "-c", &conf_arg],
        &conf_arg,
        &dir.join(format!("{instance}.log")),
        &[(53, true), (53, false)],
    )
}

/// The CLAT on `xlat`: its IPv4 default route into the `clat` device, where tayga maps
/// [`CLAT_HOST_V4`] to a dedicated IPv6 address of the host's prefix (returned) and every
/// destination into the PLAT prefix. The ISP routes that address to the host, which forwards
/// it into the device.
fn start_clat(lab: &mut Lab, dir: &Path, plat_prefix: Nat64Prefix) -> Result<Ipv6Addr, LabError> {
    let host = lab.node(XLAT).clone();
    let host_v6 = host.v6();
    let prefix = super::prefix64(host_v6).to_bits();
    let clat_v6 = Ipv6Addr::from_bits(prefix | 0xc1a7);
    let tayga_v6 = Ipv6Addr::from_bits(prefix | 0xc1a6);
    let conf = dir.join("clat.conf");
    services::write(
        &conf,
        format!(
            "tun-device {CLAT_DEVICE}\n\
             ipv4-addr {CLAT_V4}\n\
             ipv6-addr {tayga_v6}\n\
             prefix {plat_prefix}\n\
             map {CLAT_HOST_V4} {clat_v6}\n"
        )
        .as_bytes(),
    )?;
    // The host forwards between its link and the CLAT device.
    lab.exec(
        XLAT,
        &["sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"],
    )?;
    start_tayga(lab, XLAT, &conf, &dir.join("clat.log"))?;
    for argv in [
        strings(&[
            "ip",
            "addr",
            "add",
            &format!("{CLAT_HOST_V4}/32"),
            "dev",
            CLAT_DEVICE,
        ]),
        strings(&[
            "ip",
            "-6",
            "route",
            "add",
            &clat_v6.to_string(),
            "dev",
            CLAT_DEVICE,
        ]),
        strings(&[
            "ip",
            "-6",
            "route",
            "add",
            &tayga_v6.to_string(),
            "dev",
            CLAT_DEVICE,
        ]),
        strings(&[
            "ip",
            "route",
            "add",
            "default",
            "dev",
            CLAT_DEVICE,
            "mtu",
            &CLAT_MTU.to_string(),
        ]),
    ] {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        lab.exec(XLAT, &argv)?;
    }
    let host_v6 = host_v6.to_string();
    for address in [clat_v6, tayga_v6] {
        lab.exec(
            ISP,
            &[
                "ip",
                "-6",
                "route",
                "add",
                &address.to_string(),
                "via",
                &host_v6,
            ],
        )?;
    }
    Ok(clat_v6)
}

/// Creates tayga's TUN device (`--mktun`, persistent, so it can be configured before tayga
/// runs: it dies with the namespace), brings it up, then runs tayga in the foreground as the
/// lab's child.
fn start_tayga(lab: &mut Lab, node: &str, conf: &Path, log: &Path) -> Result<(), LabError> {
    let conf_arg = conf.display().to_string();
    lab.exec(node, &["tayga", "-c", &conf_arg, "--mktun"])?;
    let device = if node == ISP {
        PLAT_DEVICE
    } else {
        CLAT_DEVICE
    };
    lab.exec(node, &["ip", "link", "set", device, "up"])?;
    services::launch(
        lab,
        node,
        "tayga",
        &["-c", &conf_arg, "-d"],
        &conf_arg,
        log,
        &[],
    )
}

fn strings(argv: &[&str]) -> Vec<String> {
    argv.iter().map(|s| (*s).to_owned()).collect()
}

/// Pings `target` from `node` until it answers, up to [`READY_TIMEOUT`].
fn wait_ping(lab: &Lab, node: &str, target: &str) -> Result<(), LabError> {
    let started = Instant::now();
    loop {
        let output = lab.exec_unchecked(node, &["ping", "-c", "1", "-W", "1", target]);
        if output.status.success() {
            return Ok(());
        }
        if started.elapsed() >= READY_TIMEOUT {
            return Err(LabError::Command {
                command: format!("ping {target} in {node}"),
                stderr: format!(
                    "no answer through the translators after {READY_TIMEOUT:?}: {}",
                    String::from_utf8_lossy(&output.stdout).trim()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
