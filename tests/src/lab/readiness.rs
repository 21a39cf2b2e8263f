//! The government readiness lab (issue #20): four government domains whose IPv6 readiness is
//! known, an authoritative-and-recursive DNS server, web, mail, a collector host and two probes.
//!
//! ```text
//!  p1 ─┐
//!  p2 ─┴─ isp ── core ── gov   (unbound: the zones and the probes' resolver; web; SMTP;
//!                  │            a second unbound: DNS64, p2's resolver)
//!                  └──── ctl   (the collector)
//! ```
//!
//! `p2` ([`DNS64_PROBE`]) asks a DNS64 resolver (unbound, `dns64 iterator`, forwarding to the
//! zones' unbound) synthesising AAAA under the network-specific [`DNS64_PREFIX`] for names
//! with A records only, as an IPv6-only access network's resolver does (there is no NAT64
//! behind it: nothing may be sent to a synthesised address). Every name of the lab without
//! AAAA has one there, made up; a probe must find the same readiness as `p1`.
//!
//! Everything the domains serve lives on `gov`, on addresses added to its link (its /64 and
//! its /24 are routed to it), so that a name "without AAAA", "with AAAA but nothing serving
//! on it" or "serving something else over IPv6" is a property of one address:
//! - `good.gov.lab`: two NS names with AAAA answering over IPv6, an MX with AAAA accepting
//!   TCP/25 over IPv6, web over both families with the same certificate and page, every
//!   subresource host with AAAA and served over IPv6.
//! - `partial.gov.lab`: DNS and web fine, but its page loads a script from `cdn.v4.lab` (A
//!   only) and an image from `img.partial.gov.lab` (AAAA on an address where nothing listens);
//!   its stylesheet comes from `static.good.gov.lab` (fine). Its MX has no AAAA.
//! - `v4only.gov.lab`: no AAAA for the web; NS `ns2.v4only.gov.lab` without AAAA; no MX.
//! - `mismatch.gov.lab`: over IPv6 another server answers, with another certificate (same CA)
//!   and another page than over IPv4.
//!
//! Entities group them ([`ENTITIES`]); [`DOMAINS`] states, for each domain, the components'
//! scores by the rule of `docs/readiness.md` (the truth the collector's report must meet).
//!
//! The DNS server is Debian's `unbound` with `local-data` (answers carry the `aa` flag): the
//! probes' resolver and each NS name's address are addresses of the same process. The web and
//! mail servers are one Python stdlib script choosing the page by `Host` and by the address
//! the request came in on.

use super::scenarios::LabProbe;
use super::services::{self, LabCa};
use super::{Lab, LabError, Topology, prefix64};
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// Where the collector runs.
pub const COLLECTOR: &str = "ctl";
/// The government servers' host.
pub const GOV: &str = "gov";
/// The probes' operator router, its AS and country (in the prefix files).
pub const ISP: &str = "isp";
pub const ISP_ASN: u32 = 64510;
pub const ISP_COUNTRY: &str = "XA";
/// The probe hosts.
pub const PROBES: [&str; 2] = ["p1", "p2"];
/// The probe whose resolver is DNS64.
pub const DNS64_PROBE: &str = "p2";
/// The prefix DNS64 synthesises under (a network-specific /96, RFC 6052 section 2.3: only RFC
/// 7050 discovery tells a probe that addresses under it are made up).
pub const DNS64_PREFIX: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x64, 0xff9b, 0, 0, 0, 0);

/// One government domain and what a readiness measurement of it must find.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DomainTruth {
    pub name: &'static str,
    /// The entity it belongs to (one of [`ENTITIES`]).
    pub entity: &'static str,
    /// Component scores (0..1; `None`: not applicable, e.g. no MX).
    pub dns: Option<f64>,
    pub mail: Option<f64>,
    pub web: Option<f64>,
    pub page: Option<f64>,
    /// Every failure the report must name: host and reason (the collector's reason codes,
    /// docs/readiness.md), seen by every probe.
    pub failing: &'static [(&'static str, &'static str)],
}

impl DomainTruth {
    /// The domain's score: the mean of its applicable components (equal weights,
    /// docs/readiness.md).
    pub fn score(&self) -> f64 {
        let parts: Vec<f64> = [self.dns, self.mail, self.web, self.page]
            .into_iter()
            .flatten()
            .collect();
        parts.iter().sum::<f64>() / parts.len() as f64
    }
}

pub const DOMAINS: [DomainTruth; 4] = [
    DomainTruth {
        name: "good.gov.lab",
        entity: "Ministry of Digital Affairs",
        dns: Some(1.0),
        mail: Some(1.0),
        web: Some(1.0),
        page: Some(1.0),
        failing: &[],
    },
    DomainTruth {
        name: "partial.gov.lab",
        entity: "Ministry of Digital Affairs",
        dns: Some(1.0),
        mail: Some(0.0),
        web: Some(1.0),
        // static.good.gov.lab works; cdn.v4.lab (no AAAA) and img.partial.gov.lab (AAAA,
        // nothing serves on it) do not.
        page: Some(1.0 / 3.0),
        failing: &[
            ("mail.partial.gov.lab", "no_aaaa"),
            ("cdn.v4.lab", "no_aaaa"),
            ("img.partial.gov.lab", "not_served_v6"),
        ],
    },
    DomainTruth {
        name: "v4only.gov.lab",
        entity: "Ministry of Agriculture",
        // ns1 fine, ns2 without AAAA.
        dns: Some(0.5),
        mail: None,
        web: Some(0.0),
        page: Some(0.0),
        failing: &[
            ("ns2.v4only.gov.lab", "no_aaaa"),
            ("v4only.gov.lab", "no_aaaa"),
            ("v4only.gov.lab", "page_not_v6"),
        ],
    },
    DomainTruth {
        name: "mismatch.gov.lab",
        entity: "Ministry of Agriculture",
        dns: Some(1.0),
        mail: Some(1.0),
        // AAAA and HTTPS over IPv6 fine; certificate and content differ.
        web: Some(0.5),
        page: Some(1.0),
        failing: &[
            ("mismatch.gov.lab", "other_certificate"),
            ("mismatch.gov.lab", "other_content"),
        ],
    },
];

/// Entities and their domains, as the campaign spec lists them.
pub const ENTITIES: [(&str, [&str; 2]); 2] = [
    (
        "Ministry of Digital Affairs",
        ["good.gov.lab", "partial.gov.lab"],
    ),
    (
        "Ministry of Agriculture",
        ["v4only.gov.lab", "mismatch.gov.lab"],
    ),
];

/// The entity's score: the mean of its domains' scores.
pub fn entity_score(entity: &str) -> f64 {
    let scores: Vec<f64> = DOMAINS
        .iter()
        .filter(|d| d.entity == entity)
        .map(DomainTruth::score)
        .collect();
    scores.iter().sum::<f64>() / scores.len() as f64
}

/// Every name the web serves and the certificates hold.
const WEB_NAMES: [&str; 7] = [
    "good.gov.lab",
    "static.good.gov.lab",
    "partial.gov.lab",
    "img.partial.gov.lab",
    "cdn.v4.lab",
    "v4only.gov.lab",
    "mismatch.gov.lab",
];

/// The built lab and the addresses its names point at.
#[derive(Debug)]
pub struct ReadinessLab {
    pub lab: Lab,
    pub probes: Vec<LabProbe>,
    /// The collector host's address.
    pub collector: Ipv6Addr,
    /// The probes' resolver (unbound on `gov`).
    pub resolver: Ipv6Addr,
    /// [`DNS64_PROBE`]'s resolver: DNS64 under [`DNS64_PREFIX`] (a second unbound on `gov`).
    pub dns64_resolver: Ipv6Addr,
    /// Addresses by role (see [`Addresses`]).
    pub addresses: Addresses,
    /// The lab CA: both web certificates are signed by it (probes trust it).
    pub ca: LabCa,
    /// The second leaf certificate (mismatch.gov.lab over IPv6).
    pub other_cert: PathBuf,
    /// `asn-ipv6.csv` and `geo-whois-asn-country-ipv6.csv` for the probes' prefixes.
    pub asn_csv: PathBuf,
    pub country_csv: PathBuf,
}

/// The addresses of `gov` the names point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addresses {
    /// The web over IPv6 (good, static.good, partial) and over IPv4 (every web name).
    pub web_v6: Ipv6Addr,
    pub web_v4: Ipv4Addr,
    /// img.partial.gov.lab's AAAA: nothing listens there.
    pub dead_v6: Ipv6Addr,
    /// mismatch.gov.lab's AAAA: another server (certificate, page).
    pub mismatch_v6: Ipv6Addr,
    /// mail.good.gov.lab (AAAA and A); mail.partial.gov.lab has the A only.
    pub mail_v6: Ipv6Addr,
    pub mail_v4: Ipv4Addr,
    /// NS names with AAAA, in the order ns1.good, ns2.good, ns1.partial, ns1.v4only,
    /// ns1.mismatch.
    pub ns_v6: [Ipv6Addr; 5],
    /// The IPv4 address of every NS name (ns2.v4only.gov.lab has only this one).
    pub ns_v4: Ipv4Addr,
    /// The DNS64 resolver's address.
    pub dns64: Ipv6Addr,
}

fn topology_error(why: &str) -> LabError {
    LabError::Topology(why.to_owned())
}

fn io(what: &str, e: std::io::Error) -> LabError {
    LabError::Command {
        command: what.into(),
        stderr: e.to_string(),
    }
}

/// Builds the lab, its DNS, web and mail, and returns once every service listens.
pub fn readiness() -> Result<ReadinessLab, LabError> {
    services::require("unbound", &["-V"], "unbound: apt-get install unbound")?;
    services::require(
        "python3",
        &["-c", "import ssl, http.server, socketserver"],
        "python3 (with ssl): apt-get install python3",
    )?;
    let mut topology = Topology::new()
        .router("core")
        .router(ISP)
        .host(COLLECTOR)
        .host(GOV)
        .link(COLLECTOR, "core")
        .link(GOV, "core")
        .link(ISP, "core");
    for probe in PROBES {
        topology = topology.host(probe).link(probe, ISP);
    }
    let mut lab = Lab::build(&topology)?;
    let gov = lab.node(GOV).clone();
    let interface = gov
        .interfaces
        .first()
        .cloned()
        .ok_or_else(|| topology_error("gov has no link"))?;
    let gov_v4 = interface
        .v4
        .ok_or_else(|| topology_error("gov has no IPv4"))?;
    let net6 = prefix64(interface.v6).to_bits();
    let v6 = |suffix: u16| Ipv6Addr::from_bits(net6 | u128::from(suffix));
    let net4 = gov_v4.to_bits() & !0xff;
    let v4 = |last: u8| Ipv4Addr::from_bits(net4 | u32::from(last));
    let addresses = Addresses {
        web_v6: v6(0x80),
        web_v4: v4(180),
        dead_v6: v6(0x8004),
        mismatch_v6: v6(0x8007),
        mail_v6: v6(0x25),
        mail_v4: v4(125),
        ns_v6: [v6(0x5301), v6(0x5302), v6(0x5303), v6(0x5304), v6(0x5305)],
        ns_v4: v4(153),
        dns64: v6(0x6464),
    };
    // The role addresses on gov's link; no duplicate address detection, so they work at
    // once. dead_v6 is there too: a connection to it is refused (RST), as from a host whose
    // web server does not listen on IPv6.
    let mut own_v6 = vec![
        addresses.web_v6,
        addresses.dead_v6,
        addresses.mismatch_v6,
        addresses.mail_v6,
        addresses.dns64,
    ];
    own_v6.extend(addresses.ns_v6);
    for address in own_v6 {
        lab.exec(
            GOV,
            &[
                "ip",
                "-6",
                "addr",
                "add",
                &format!("{address}/64"),
                "dev",
                &interface.name,
                "nodad",
            ],
        )?;
    }
    for address in [addresses.web_v4, addresses.mail_v4, addresses.ns_v4] {
        lab.exec(
            GOV,
            &[
                "ip",
                "addr",
                "add",
                &format!("{address}/24"),
                "dev",
                &interface.name,
            ],
        )?;
    }

    let dir = lab.scratch_dir().join("readiness");
    std::fs::create_dir_all(&dir).map_err(|e| io("mkdir readiness", e))?;
    let resolver = interface.v6;
    start_unbound(&mut lab, &dir, &addresses, resolver, gov_v4)?;
    start_dns64(&mut lab, &dir, addresses.dns64, resolver)?;
    let ca = services::make_ca(&dir, &WEB_NAMES, &[])?;
    let other_cert = second_leaf(&dir)?;
    start_servers(&mut lab, &dir, &addresses, &ca, &other_cert)?;

    let probes: Vec<LabProbe> = PROBES
        .iter()
        .map(|node| LabProbe {
            node: (*node).to_owned(),
            address: lab.node(node).v6(),
            asn: ISP_ASN,
            country: ISP_COUNTRY,
            operator: ISP,
        })
        .collect();
    for probe in &probes {
        let server = if probe.node == DNS64_PROBE {
            addresses.dns64
        } else {
            resolver
        };
        lab.set_resolver(&probe.node, IpAddr::V6(server))?;
    }
    // The probes' /64s belong to the ISP.
    let mut asn_csv = String::new();
    let mut country_csv = String::new();
    for p in &probes {
        let first = prefix64(p.address);
        let s = first.segments();
        let last = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0xffff, 0xffff, 0xffff, 0xffff);
        asn_csv.push_str(&format!("{first},{last},{ISP_ASN},Lab operator {ISP}\n"));
        country_csv.push_str(&format!("{first},{last},{ISP_COUNTRY}\n"));
    }
    let asn_path = dir.join("asn-ipv6.csv");
    let country_path = dir.join("geo-whois-asn-country-ipv6.csv");
    std::fs::write(&asn_path, asn_csv).map_err(|e| io("write asn-ipv6.csv", e))?;
    std::fs::write(&country_path, country_csv).map_err(|e| io("write country csv", e))?;
    Ok(ReadinessLab {
        collector: lab.node(COLLECTOR).v6(),
        probes,
        resolver,
        dns64_resolver: addresses.dns64,
        addresses,
        ca,
        other_cert,
        asn_csv: asn_path,
        country_csv: country_path,
        lab,
    })
}

/// The zone data: every name of the lab under `lab.`, as `local-data` lines.
fn zone(a: &Addresses) -> Vec<String> {
    let mut records = Vec::new();
    let mut add = |name: &str, rtype: &str, data: String| {
        records.push(format!("{name}. 0 IN {rtype} {data}"));
    };
    let [ns1_good, ns2_good, ns1_partial, ns1_v4only, ns1_mismatch] = a.ns_v6;
    for domain in [
        "good.gov.lab",
        "partial.gov.lab",
        "v4only.gov.lab",
        "mismatch.gov.lab",
    ] {
        add(
            domain,
            "SOA",
            format!("ns1.{domain}. hostmaster.{domain}. 1 3600 600 86400 0"),
        );
    }
    for (domain, names) in [
        ("good.gov.lab", &["ns1", "ns2"][..]),
        ("partial.gov.lab", &["ns1"][..]),
        ("v4only.gov.lab", &["ns1", "ns2"][..]),
        ("mismatch.gov.lab", &["ns1"][..]),
    ] {
        for ns in names {
            add(domain, "NS", format!("{ns}.{domain}."));
        }
    }
    for (name, address) in [
        ("ns1.good.gov.lab", ns1_good),
        ("ns2.good.gov.lab", ns2_good),
        ("ns1.partial.gov.lab", ns1_partial),
        ("ns1.v4only.gov.lab", ns1_v4only),
        ("ns1.mismatch.gov.lab", ns1_mismatch),
    ] {
        add(name, "AAAA", address.to_string());
        add(name, "A", a.ns_v4.to_string());
    }
    add("ns2.v4only.gov.lab", "A", a.ns_v4.to_string());
    // Mail: good and mismatch use mail.good.gov.lab; partial's MX has no AAAA; v4only has
    // none.
    add("good.gov.lab", "MX", "10 mail.good.gov.lab.".into());
    add("mismatch.gov.lab", "MX", "10 mail.good.gov.lab.".into());
    add("partial.gov.lab", "MX", "10 mail.partial.gov.lab.".into());
    add("mail.good.gov.lab", "AAAA", a.mail_v6.to_string());
    add("mail.good.gov.lab", "A", a.mail_v4.to_string());
    add("mail.partial.gov.lab", "A", a.mail_v4.to_string());
    // Web.
    for name in ["good.gov.lab", "static.good.gov.lab", "partial.gov.lab"] {
        add(name, "AAAA", a.web_v6.to_string());
    }
    add("img.partial.gov.lab", "AAAA", a.dead_v6.to_string());
    add("mismatch.gov.lab", "AAAA", a.mismatch_v6.to_string());
    for name in WEB_NAMES {
        add(name, "A", a.web_v4.to_string());
    }
    records
}

/// unbound on gov: the probes' resolver on gov's own addresses, and the NS names' addresses,
/// all answering the zone from `local-data` (authoritative: `aa`), nothing forwarded.
fn start_unbound(
    lab: &mut Lab,
    dir: &Path,
    a: &Addresses,
    resolver_v6: Ipv6Addr,
    resolver_v4: Ipv4Addr,
) -> Result<(), LabError> {
    let instance = services::instance_name(lab, GOV, "unbound");
    let conf = dir.join(format!("{instance}.conf"));
    let mut text = String::from("server:\n");
    let mut listen: Vec<IpAddr> = vec![
        IpAddr::V6(resolver_v6),
        IpAddr::V4(resolver_v4),
        IpAddr::V4(a.ns_v4),
    ];
    listen.extend(a.ns_v6.iter().copied().map(IpAddr::V6));
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
         \x20 access-control: 0.0.0.0/0 allow\n\
         \x20 module-config: \"iterator\"\n\
         \x20 cache-max-ttl: 0\n\
         \x20 cache-max-negative-ttl: 0\n\
         \x20 local-zone: \"lab.\" static\n",
        dir = dir.display(),
    ));
    for record in zone(a) {
        text.push_str(&format!("  local-data: \"{record}\"\n"));
    }
    services::write(&conf, text.as_bytes())?;
    let conf_arg = conf.display().to_string();
    services::launch(
        lab,
        GOV,
        "unbound",
        &["-d", "-c", &conf_arg],
        &conf_arg,
        &dir.join(format!("{instance}.log")),
        &[(53, true), (53, false)],
    )
}

/// DNS64 on gov: a second unbound on `listen`, forwarding everything to the zones' unbound
/// at `upstream` and synthesising AAAA under [`DNS64_PREFIX`] for names with A records only;
/// `ipv4only.arpa` answered locally (RFC 8880) so that probes discover the prefix (RFC 7050).
/// No cache, no validation, no daemon.
fn start_dns64(
    lab: &mut Lab,
    dir: &Path,
    listen: Ipv6Addr,
    upstream: Ipv6Addr,
) -> Result<(), LabError> {
    let instance = services::instance_name(lab, GOV, "unbound-dns64");
    let conf = dir.join(format!("{instance}.conf"));
    let under = |v4: u32| Ipv6Addr::from_bits(DNS64_PREFIX.to_bits() | u128::from(v4));
    let text = format!(
        "server:\n\
         \x20 interface: {listen}\n\
         \x20 port: 53\n\
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
         \x20 dns64-prefix: {DNS64_PREFIX}/96\n\
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
        aa = under(0xc000_00aa),
        ab = under(0xc000_00ab),
    );
    services::write(&conf, text.as_bytes())?;
    let conf_arg = conf.display().to_string();
    services::launch(
        lab,
        GOV,
        "unbound",
        &["-d", "-c", &conf_arg],
        &conf_arg,
        &dir.join(format!("{instance}.log")),
        &[(53, true), (53, false)],
    )
}

/// A second leaf certificate for the same names, signed by the same CA (`make_ca`'s files in
/// `dir`): `leaf2.pem`, key `leaf2.key`.
fn second_leaf(dir: &Path) -> Result<PathBuf, LabError> {
    let p = |file: &str| dir.join(file).display().to_string();
    super::run(
        "openssl",
        &[
            "req",
            "-new",
            "-config",
            &p("leaf.cnf"),
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &p("leaf2.key"),
            "-out",
            &p("leaf2.csr"),
        ],
    )?;
    super::run(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            &p("leaf2.csr"),
            "-CA",
            &p("ca.pem"),
            "-CAkey",
            &p("ca.key"),
            "-CAserial",
            &p("ca.srl"),
            "-extfile",
            &p("leaf.cnf"),
            "-extensions",
            "leaf_ext",
            "-days",
            "30",
            "-out",
            &p("leaf2.pem"),
        ],
    )?;
    Ok(dir.join("leaf2.pem"))
}

/// Web and mail: one listener per (address, port). `site` picks the pages: "a" is the
/// ordinary server, "b" the other one mismatch.gov.lab's IPv6 address reaches.
const SCRIPT: &str = r#"# sixmap readiness lab: web pages by site and Host, and an SMTP greeting.
import http.server, json, socket, socketserver, ssl, sys, threading

with open(sys.argv[1]) as f:
    CONFIG = json.load(f)
SITES = CONFIG["sites"]


class Web(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sixmap-lab"
    timeout = 30

    def answer(self, with_body):
        host = (self.headers.get("Host") or "").lower()
        if host.startswith("["):
            host = host.split("]")[0] + "]"
        else:
            host = host.split(":")[0]
        page = SITES[self.server.site].get(host, {}).get(self.path.split("?")[0])
        if page is None:
            status, kind, body = 404, "text/plain; charset=utf-8", b"not found\n"
        else:
            status, kind, body = 200, page["type"], page["body"].encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_GET(self):
        self.answer(True)

    def do_HEAD(self):
        self.answer(False)

    def log_message(self, *args):
        pass


class Smtp(socketserver.BaseRequestHandler):
    def handle(self):
        try:
            self.request.sendall(b"220 mail.gov.lab ESMTP sixmap-lab\r\n")
            self.request.settimeout(5)
            self.request.recv(512)
        except OSError:
            pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, listener):
        self.address_family = socket.AF_INET6 if ":" in listener["addr"] else socket.AF_INET
        self.site = listener.get("site")
        self.context = None
        if listener.get("cert"):
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(listener["cert"], listener["key"])
            self.context.set_alpn_protocols(["http/1.1"])
        handler = Smtp if listener["kind"] == "smtp" else Web
        super().__init__((listener["addr"], listener["port"]), handler)

    def server_bind(self):
        # No socket.getfqdn() (HTTPServer's), which would query DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "sixmap-lab", self.server_address[1]

    def finish_request(self, request, client_address):
        request.settimeout(30)
        if self.context is not None:
            request = self.context.wrap_socket(request, server_side=True)
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        print(f"{client_address[0]}: {sys.exc_info()[1]!r}", file=sys.stderr, flush=True)


for listener in CONFIG["listeners"]:
    threading.Thread(target=Server(listener).serve_forever, daemon=True).start()
threading.Event().wait()
"#;

/// The pages of each site: host → path → content type and body.
fn sites() -> serde_json::Value {
    let html = |body: &str| json!({"type": "text/html; charset=utf-8", "body": body});
    let asset = |kind: &str, body: &str| json!({"type": kind, "body": body});
    let site_a = json!({
        "good.gov.lab": {
            "/": html(
                "<!doctype html><html><head><title>Good</title>\
                 <link rel=\"stylesheet\" href=\"//static.good.gov.lab/site.css\">\
                 <script src=\"https://static.good.gov.lab/app.js\"></script></head>\
                 <body><img src=\"/logo.png\" alt=\"logo\">\
                 <img src=\"https://good.gov.lab/logo.png\">Good ministry</body></html>\n"),
            "/logo.png": asset("image/png", "png"),
        },
        "static.good.gov.lab": {
            "/site.css": asset("text/css", "body { color: black }\n"),
            "/app.js": asset("application/javascript", "console.log('good');\n"),
        },
        "partial.gov.lab": {
            "/": html(
                "<!doctype html><html><head><title>Partial</title>\
                 <link rel=\"stylesheet\" href=\"https://static.good.gov.lab/site.css\">\
                 <script src=\"https://cdn.v4.lab/lib.js\"></script></head>\
                 <body><img src=\"https://img.partial.gov.lab/banner.png\">Partial</body></html>\n"),
        },
        "cdn.v4.lab": {"/lib.js": asset("application/javascript", "var lib = 1;\n")},
        "img.partial.gov.lab": {"/banner.png": asset("image/png", "png")},
        "v4only.gov.lab": {"/": html("<!doctype html><html><body>IPv4 only</body></html>\n")},
        "mismatch.gov.lab": {"/": html("<!doctype html><html><body>Mismatch, the IPv4 server</body></html>\n")},
    });
    let site_b = json!({
        "mismatch.gov.lab": {"/": html("<!doctype html><html><body>Another server over IPv6</body></html>\n")},
    });
    json!({"a": site_a, "b": site_b})
}

fn start_servers(
    lab: &mut Lab,
    dir: &Path,
    a: &Addresses,
    ca: &LabCa,
    other_cert: &Path,
) -> Result<(), LabError> {
    let cert_a = ca.cert.display().to_string();
    let key_a = ca.key.display().to_string();
    let cert_b = other_cert.display().to_string();
    let key_b = other_cert.with_extension("key").display().to_string();
    let mut listeners = Vec::new();
    for (address, site, cert, key) in [
        (IpAddr::V6(a.web_v6), "a", &cert_a, &key_a),
        (IpAddr::V4(a.web_v4), "a", &cert_a, &key_a),
        (IpAddr::V6(a.mismatch_v6), "b", &cert_b, &key_b),
    ] {
        listeners.push(json!({"kind": "web", "addr": address, "port": 80, "site": site}));
        listeners.push(json!({
            "kind": "web", "addr": address, "port": 443, "site": site, "cert": cert, "key": key,
        }));
    }
    for address in [IpAddr::V6(a.mail_v6), IpAddr::V4(a.mail_v4)] {
        listeners.push(json!({"kind": "smtp", "addr": address, "port": 25}));
    }
    let instance = services::instance_name(lab, GOV, "readiness-web");
    let script = dir.join(format!("{instance}.py"));
    let config = dir.join(format!("{instance}.json"));
    services::write(&script, SCRIPT.as_bytes())?;
    services::write(
        &config,
        json!({"sites": sites(), "listeners": listeners})
            .to_string()
            .as_bytes(),
    )?;
    let script_arg = script.display().to_string();
    let config_arg = config.display().to_string();
    services::launch(
        lab,
        GOV,
        "python3",
        &["-u", &script_arg, &config_arg],
        &script_arg,
        &dir.join(format!("{instance}.log")),
        &[(80, false), (443, false), (25, false)],
    )
}

impl super::scenarios::Truth for ReadinessLab {
    fn truth(&self) -> serde_json::Value {
        json!({
            "scenario": "readiness",
            "collector": self.collector,
            "resolver": self.resolver,
            "dns64": {"probe": DNS64_PROBE, "resolver": self.dns64_resolver, "prefix": DNS64_PREFIX},
            "probes": self.probes.iter().map(|p| json!({
                "node": p.node, "address": p.address, "asn": p.asn, "country": p.country,
            })).collect::<Vec<_>>(),
            "domains": DOMAINS.iter().map(|d| json!({
                "name": d.name, "entity": d.entity, "dns": d.dns, "mail": d.mail,
                "web": d.web, "page": d.page, "score": d.score(),
            })).collect::<Vec<_>>(),
            "entities": ENTITIES.iter().map(|(name, domains)| json!({
                "name": name, "domains": domains, "score": entity_score(name),
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
