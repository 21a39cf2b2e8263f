//! `sixmap-probe measure KIND …`: one measurement by hand, like ping or mtr, through the same
//! engine, specs and target policy as the tasks a collector assigns.

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use sixmap_probe::engine::{Engine, Produced};
use sixmap_probe::ping::SocketPreference;
use sixmap_shared::measurement::{
    DnsSpec, DnsTransport, DualInner, DualStackSpec, ExtHeaderSpec, ExtHeaderType, Family,
    HttpSpec, HttpUrl, MeasurementSpec, Outcome, PingSpec, PmtuSpec, QuicSpec, SpecKind, Target,
    TcpSpec, TlsSpec, TraceProtocol, TracerouteSpec, parse_query_type,
};
use sixmap_shared::{TargetPolicy, TaskId};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct MeasureArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    kind: MeasureKind,
}

#[derive(Debug, Args)]
struct Common {
    /// The whole measurement ends after this many milliseconds (at most 60000).
    #[arg(long, global = true, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Packets the measurement may send at most (0: the kind's own bound).
    #[arg(long, global = true, default_value_t = 0)]
    max_packets: u32,
    /// Resolve host names to IPv4 (default IPv6).
    #[arg(short = '4', global = true, conflicts_with = "v6")]
    v4: bool,
    /// Resolve host names to IPv6 (the default).
    #[arg(short = '6', global = true)]
    v6: bool,
    /// ICMP socket kind: "auto", "datagram" or "raw".
    #[arg(long, global = true, default_value = "auto")]
    icmp_socket: String,
    /// Extra PEM certificate authorities trusted for tls, http and quic.
    #[arg(long, global = true)]
    ca_file: Option<PathBuf>,
    /// Allow loopback, ULA, documentation and private targets.
    #[arg(long, global = true)]
    lab_mode: bool,
    /// Print the result as JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum MeasureKind {
    /// ICMP echo over IPv6 (or IPv4 with -4 or an IPv4 literal).
    Ping {
        /// Address or host name.
        target: String,
        #[arg(short = 'c', long, default_value_t = 3)]
        count: u32,
        #[arg(short = 'i', long, default_value_t = 1000)]
        interval_ms: u32,
        /// Payload bytes after the ICMPv6 header.
        #[arg(short = 's', long, default_value_t = 56)]
        size: u32,
    },
    /// Paris-style traceroute (constant flow) with all hop limits probed in parallel.
    Traceroute {
        target: String,
        /// icmp, udp or tcp (SYN).
        #[arg(short = 'P', long, default_value = "icmp")]
        protocol: String,
        #[arg(short = 'f', long, default_value_t = 1)]
        first_hop: u32,
        #[arg(short = 'm', long, default_value_t = 30)]
        max_hops: u32,
        /// Probes per hop.
        #[arg(short = 'q', long, default_value_t = 3)]
        probes: u32,
        /// Stop after this many consecutive silent hops.
        #[arg(long, default_value_t = 5)]
        max_silent: u32,
        /// Destination port for udp and tcp (0: 33434 / 80).
        #[arg(short = 'p', long, default_value_t = 0)]
        port: u32,
        #[arg(long, default_value_t = 0)]
        flow_label: u32,
    },
    /// A DNS query to RESOLVER over UDP (or TCP).
    Dns {
        /// The resolver: address or host name.
        resolver: String,
        /// The name to look up.
        name: String,
        /// Query type: a name (AAAA, A, MX, …) or number.
        #[arg(short = 't', long = "type", default_value = "AAAA")]
        query_type: String,
        #[arg(long)]
        tcp: bool,
        /// Do not set the Recursion Desired bit.
        #[arg(long)]
        no_recurse: bool,
    },
    /// TCP connect.
    Tcp { target: String, port: u32 },
    /// TLS handshake (rustls).
    Tls {
        target: String,
        #[arg(short = 'p', long, default_value_t = 443)]
        port: u32,
        /// Server name to send (default: the target's host name).
        #[arg(long)]
        sni: Option<String>,
        /// ALPN protocols to offer, comma-separated.
        #[arg(long, value_delimiter = ',')]
        alpn: Vec<String>,
    },
    /// HTTP or HTTPS request with phase timings.
    Http {
        /// http:// or https:// URL; its host is measured unless --address is given.
        url: String,
        #[arg(long)]
        head: bool,
        /// Body bytes read at most.
        #[arg(long, default_value_t = 65_536)]
        max_body: u32,
        /// Connect to this address instead of resolving the URL's host.
        #[arg(long)]
        address: Option<String>,
    },
    /// QUIC handshake (quinn), HTTP/3 ALPN by default.
    Quic {
        target: String,
        #[arg(short = 'p', long, default_value_t = 443)]
        port: u32,
        #[arg(long)]
        sni: Option<String>,
        #[arg(long, value_delimiter = ',')]
        alpn: Vec<String>,
    },
    /// Path MTU, with black-hole detection.
    Pmtu {
        target: String,
        /// Largest packet tried, in bytes.
        #[arg(long, default_value_t = 1500)]
        max_size: u32,
        /// icmp or udp.
        #[arg(short = 'P', long, default_value = "icmp")]
        protocol: String,
    },
    /// Do Hop-by-Hop, Destination Options and Fragment headers reach the target?
    Exthdr {
        target: String,
        /// Headers to test, comma-separated: hbh, dst, frag (default all).
        #[arg(long, value_delimiter = ',')]
        headers: Vec<String>,
        /// Size of a Hop-by-Hop / Destination Options header, multiple of 8.
        #[arg(long, default_value_t = 8)]
        option_bytes: u32,
    },
    /// The same name over IPv6 and IPv4 at once; which one Happy Eyeballs picks.
    Dualstack {
        /// A host name with A and AAAA records.
        hostname: String,
        /// ping, tcp or http.
        #[arg(long, default_value = "tcp")]
        inner: String,
        /// Port for tcp and http (0: 80).
        #[arg(short = 'p', long, default_value_t = 0)]
        port: u32,
    },
}

fn target_and_family(text: &str, common: &Common) -> anyhow::Result<(Target, Family)> {
    let target = Target::parse(text)?;
    let family = match (&target, common.v4) {
        (Target::Address(_), _) => target.default_family(),
        (Target::Hostname(_), true) => Family::V4,
        (Target::Hostname(_), false) => Family::V6,
    };
    Ok((target, family))
}

fn spec_of(kind: MeasureKind, common: &Common) -> anyhow::Result<MeasurementSpec> {
    let (target, kind) = match kind {
        MeasureKind::Ping {
            target,
            count,
            interval_ms,
            size,
        } => (
            target,
            SpecKind::Ping(PingSpec::new(count, interval_ms, size)?),
        ),
        MeasureKind::Traceroute {
            target,
            protocol,
            first_hop,
            max_hops,
            probes,
            max_silent,
            port,
            flow_label,
        } => (
            target,
            SpecKind::Traceroute(TracerouteSpec::new(
                TraceProtocol::parse(&protocol)?,
                first_hop,
                max_hops,
                probes,
                max_silent,
                port,
                flow_label,
            )?),
        ),
        MeasureKind::Dns {
            resolver,
            name,
            query_type,
            tcp,
            no_recurse,
        } => {
            let transport = if tcp {
                DnsTransport::Tcp
            } else {
                DnsTransport::Udp
            };
            let query_type = u32::from(parse_query_type(&query_type)?);
            (
                resolver,
                SpecKind::Dns(DnsSpec::new(&name, query_type, transport, !no_recurse)?),
            )
        }
        MeasureKind::Tcp { target, port } => (target, SpecKind::Tcp(TcpSpec::new(port)?)),
        MeasureKind::Tls {
            target,
            port,
            sni,
            alpn,
        } => (
            target,
            SpecKind::Tls(TlsSpec::new(port, sni.as_deref(), alpn)?),
        ),
        MeasureKind::Http {
            url,
            head,
            max_body,
            address,
        } => {
            let method = if head { "HEAD" } else { "GET" };
            let spec = HttpSpec::new(&url, method, max_body)?;
            let target = address.unwrap_or_else(|| HttpUrl::clone(spec.url()).host);
            (target, SpecKind::Http(spec))
        }
        MeasureKind::Quic {
            target,
            port,
            sni,
            alpn,
        } => (
            target,
            SpecKind::Quic(QuicSpec::new(port, sni.as_deref(), alpn)?),
        ),
        MeasureKind::Pmtu {
            target,
            max_size,
            protocol,
        } => (
            target,
            SpecKind::Pmtu(PmtuSpec::new(max_size, TraceProtocol::parse(&protocol)?)?),
        ),
        MeasureKind::Exthdr {
            target,
            headers,
            option_bytes,
        } => {
            let headers = headers
                .iter()
                .map(|h| ExtHeaderType::parse(h))
                .collect::<Result<Vec<_>, _>>()?;
            (
                target,
                SpecKind::ExtHeaders(ExtHeaderSpec::new(headers, option_bytes)?),
            )
        }
        MeasureKind::Dualstack {
            hostname,
            inner,
            port,
        } => (
            hostname,
            SpecKind::DualStack(DualStackSpec::new(DualInner::parse(&inner)?, port)?),
        ),
    };
    let (target, family) = target_and_family(&target, common)?;
    Ok(MeasurementSpec::new(
        target,
        family,
        Duration::from_millis(common.timeout_ms),
        kind,
    )?
    .with_max_packets(common.max_packets)?)
}

pub async fn measure(args: MeasureArgs) -> anyhow::Result<()> {
    let common = args.common;
    let spec = spec_of(args.kind, &common)?;
    let engine = Engine {
        policy: TargetPolicy {
            lab_mode: common.lab_mode,
        },
        icmp_socket: common
            .icmp_socket
            .parse::<SocketPreference>()
            .map_err(|e| anyhow::anyhow!("--icmp-socket: {e}"))?,
        extra_ca_file: common.ca_file.clone(),
        // Run by hand, once: the kind's own bounds apply, not the daemon's per-minute budget.
        budget: None,
    };
    if let Some(path) = &common.ca_file {
        std::fs::metadata(path).with_context(|| format!("--ca-file {}", path.display()))?;
    }
    let produced = engine.run(TaskId::new(1)?, &spec).await;
    if common.json {
        println!("{}", serde_json::to_string_pretty(&json(&spec, &produced))?);
    } else {
        print!("{}", render(&produced));
    }
    if let Outcome::Failed(e) = &produced.outcome {
        bail!("{:?}: {}", e.class, e.message);
    }
    Ok(())
}

/// Everything a result records except its key, as the collector would store it.
fn json(spec: &MeasurementSpec, produced: &Produced) -> serde_json::Value {
    serde_json::json!({
        "spec": spec,
        "started_at_us": produced.started_at.0,
        "duration_us": produced.duration_us,
        "family_requested": produced.family_requested,
        "family_used": produced.family_used,
        "source": produced.source,
        "destination": produced.destination,
        "software_version": sixmap_shared::version::SOFTWARE_VERSION,
        "clock_state": produced.clock_state,
        "outcome": produced.outcome,
    })
}

fn render(produced: &Produced) -> String {
    let mut out = String::new();
    if let Some(destination) = produced.destination {
        let source = produced
            .source
            .map(|s| s.to_string())
            .unwrap_or_else(|| "?".into());
        out.push_str(&format!("{source} -> {destination}\n"));
    }
    out.push_str(&match &produced.outcome {
        Outcome::Failed(_) => String::new(),
        Outcome::Ping(r) => sixmap_probe::ping::render(r),
        Outcome::Traceroute(r) => sixmap_probe::traceroute::render(r),
        Outcome::Dns(r) => sixmap_probe::dns::render(r),
        Outcome::Tcp(r) => sixmap_probe::tcp::render(r),
        Outcome::Tls(r) => sixmap_probe::tls::render(r),
        Outcome::Http(r) => sixmap_probe::http::render(r),
        Outcome::Quic(r) => sixmap_probe::quic::render(r),
        Outcome::Pmtu(r) => sixmap_probe::pmtu::render(r),
        Outcome::ExtHeaders(r) => sixmap_probe::exthdr::render(r),
        Outcome::DualStack(r) => sixmap_probe::dualstack::render(r),
    });
    out
}
