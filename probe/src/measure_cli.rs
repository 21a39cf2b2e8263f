//! `sixmap-probe measure KIND …`: one measurement by hand, like ping or mtr, through the same
//! engine, specs and target policy as the tasks a collector assigns.

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use sixmap_probe::engine::{Engine, Produced};
use sixmap_probe::ping::SocketPreference;
use sixmap_probe::rawnet::pacer::Pacer;
use sixmap_probe::traceroute::stop_set::StopSet;
use sixmap_shared::cli_help::{LazySubcommand, with_lazy_subcommands};
use sixmap_shared::measurement::{
    DnsSpec, DnsTransport, DualInner, DualStackSpec, ExtHeaderSpec, ExtHeaderType, Family,
    HttpSpec, HttpUrl, MeasurementSpec, Outcome, PingSpec, PmtuSpec, QuicSpec, ReadinessSpec,
    SpecKind, Target, TcpSpec, TlsSpec, TraceProtocol, TracerouteSpec, parse_query_type,
};
use sixmap_shared::{TargetPolicy, TaskId};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `measure`'s arguments: the kinds, each built only when given (what `MeasureArgs` is read
/// from).
pub fn measure_args(cmd: clap::Command) -> clap::Command {
    with_lazy_subcommands(cmd, KINDS)
}

#[derive(Debug, Args)]
pub struct MeasureArgs {
    #[command(subcommand)]
    kind: MeasureKind,
}

// The options every kind takes, flattened into each kind's arguments rather than `global` on
// `measure`: clap copies a global option into every subcommand and its matches, which was a
// fifth of a one-shot measurement's instructions. (Not a doc comment: the derive would show
// it as the description of every kind.)
#[derive(Debug, Clone, Args)]
struct Common {
    /// The whole measurement ends after this many milliseconds (at most 60000).
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Packets the measurement may send at most (0: the kind's own bound).
    #[arg(long, default_value_t = 0)]
    max_packets: u32,
    /// Resolve host names to IPv4 (default IPv6).
    #[arg(short = '4', conflicts_with = "v6")]
    v4: bool,
    /// Resolve host names to IPv6 (the default).
    #[arg(short = '6')]
    v6: bool,
    /// ICMP socket kind: datagram (unprivileged, ping_group_range), raw (CAP_NET_RAW) or
    /// auto (datagram if allowed, else raw).
    #[arg(long, default_value = "auto", value_parser = ["auto", "datagram", "raw"])]
    icmp_socket: String,
    /// Extra PEM certificate authorities trusted for tls, http and quic.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Allow loopback, ULA, documentation and private targets.
    #[arg(long)]
    lab_mode: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// The kind measured; each kind's arguments are built only when it is used (`KINDS`).
#[derive(Debug, Subcommand)]
enum MeasureKind {
    Ping(PingArgs),
    Traceroute(TracerouteArgs),
    Dns(DnsArgs),
    Tcp(TcpArgs),
    Tls(TlsArgs),
    Http(HttpArgs),
    Quic(QuicArgs),
    Pmtu(PmtuArgs),
    Exthdr(ExthdrArgs),
    Dualstack(DualstackArgs),
    Readiness(ReadinessArgs),
}

impl MeasureKind {
    /// The options every kind takes.
    fn common(&self) -> &Common {
        match self {
            Self::Ping(args) => &args.common,
            Self::Traceroute(args) => &args.common,
            Self::Dns(args) => &args.common,
            Self::Tcp(args) => &args.common,
            Self::Tls(args) => &args.common,
            Self::Http(args) => &args.common,
            Self::Quic(args) => &args.common,
            Self::Pmtu(args) => &args.common,
            Self::Exthdr(args) => &args.common,
            Self::Dualstack(args) => &args.common,
            Self::Readiness(args) => &args.common,
        }
    }
}

/// `measure`'s kinds: described at once, their arguments added only for the kind given.
const KINDS: &[LazySubcommand] = &[
    LazySubcommand {
        name: "ping",
        about: "ICMP echo over IPv6 (or IPv4 with -4 or an IPv4 literal)",
        examples: "  sixmap-probe measure ping example.org\n  \
         sixmap-probe measure ping 2001:db8::1 -c 10 -i 200 -s 1200 --lab-mode\n  \
         sixmap-probe measure ping example.org -4 --json",
        args: PingArgs::augment_args,
    },
    LazySubcommand {
        name: "traceroute",
        about: "Paris-style traceroute (constant flow) with all hop limits probed in parallel. Several targets are traced at once (at most --parallel), all under one --pps cap if given",
        examples: "  sixmap-probe measure traceroute example.org\n  \
         sixmap-probe measure traceroute example.org -P tcp -p 443 -q 1\n  \
         sixmap-probe measure traceroute 2001:db8::1 2001:db8::2 --pps 100",
        args: TracerouteArgs::augment_args,
    },
    LazySubcommand {
        name: "dns",
        about: "A DNS query to RESOLVER over UDP, TCP, TLS (DoT, RFC 7858) or HTTPS (DoH, RFC 8484, over HTTP/2)",
        examples: "  sixmap-probe measure dns 2001:4860:4860::8888 example.org\n  \
         sixmap-probe measure dns ::1 example.org -t A -p 5353 --tcp --lab-mode",
        args: DnsArgs::augment_args,
    },
    LazySubcommand {
        name: "tcp",
        about: "TCP connect",
        examples: "  sixmap-probe measure tcp example.org 443",
        args: TcpArgs::augment_args,
    },
    LazySubcommand {
        name: "tls",
        about: "TLS handshake (rustls)",
        examples: "  sixmap-probe measure tls example.org\n  \
         sixmap-probe measure tls 2001:db8::1 --sni example.org --alpn h2,http/1.1 --lab-mode",
        args: TlsArgs::augment_args,
    },
    LazySubcommand {
        name: "http",
        about: "HTTP or HTTPS request with phase timings",
        examples: "  sixmap-probe measure http https://example.org/\n  \
         sixmap-probe measure http https://example.org/ --head --address 2001:db8::1 --lab-mode",
        args: HttpArgs::augment_args,
    },
    LazySubcommand {
        name: "quic",
        about: "QUIC handshake (quinn), HTTP/3 ALPN by default",
        examples: "  sixmap-probe measure quic example.org",
        args: QuicArgs::augment_args,
    },
    LazySubcommand {
        name: "pmtu",
        about: "Path MTU, with black-hole detection",
        examples: "  sixmap-probe measure pmtu example.org\n  sixmap-probe measure pmtu example.org -P udp --max-size 9000",
        args: PmtuArgs::augment_args,
    },
    LazySubcommand {
        name: "exthdr",
        about: "Do Hop-by-Hop, Destination Options and Fragment headers reach the target?",
        examples: "  sixmap-probe measure exthdr example.org\n  \
         sixmap-probe measure exthdr example.org --headers hbh,dst --option-bytes 16",
        args: ExthdrArgs::augment_args,
    },
    LazySubcommand {
        name: "dualstack",
        about: "The same name over IPv6 and IPv4 at once; which one Happy Eyeballs picks",
        examples: "  sixmap-probe measure dualstack example.org\n  \
         sixmap-probe measure dualstack example.org --inner http",
        args: DualstackArgs::augment_args,
    },
    LazySubcommand {
        name: "readiness",
        about: "How ready a domain is for IPv6: name servers, mail, the web site over both families, and whether the page's subresources load over IPv6 only",
        examples: "  sixmap-probe measure readiness example.gov --timeout-ms 30000
  \
         sixmap-probe measure readiness example.gov --web-host www.example.gov --no-mail",
        args: ReadinessArgs::augment_args,
    },
];

#[derive(Debug, Args)]
struct PingArgs {
    /// Address or host name.
    target: String,
    /// Echo requests to send.
    #[arg(short = 'c', long, default_value_t = 3)]
    count: u32,
    /// Milliseconds between requests.
    #[arg(short = 'i', long, default_value_t = 1000)]
    interval_ms: u32,
    /// Payload bytes after the ICMPv6 header.
    #[arg(short = 's', long, default_value_t = 56)]
    size: u32,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct TracerouteArgs {
    /// Addresses or host names, one trace each.
    #[arg(required = true, num_args = 1..)]
    targets: Vec<String>,
    /// Packets per second at most, over all targets together.
    #[arg(long)]
    pps: Option<u32>,
    /// Traces running at the same time when several targets are given.
    #[arg(long, default_value_t = 32)]
    parallel: u32,
    /// Trace every target from the first hop, without the Doubletree stop set shared by
    /// the traces of a run (the first trace to a /64 leads; the others start at its
    /// distance and probe backwards only until a router the run already saw).
    #[arg(long)]
    no_stop_set: bool,
    /// Probe packets: ICMP echo, UDP or TCP SYN.
    #[arg(short = 'P', long, default_value = "icmp", value_parser = ["icmp", "udp", "tcp"])]
    protocol: String,
    /// First hop limit probed.
    #[arg(short = 'f', long, default_value_t = 1)]
    first_hop: u32,
    /// Last hop limit probed.
    #[arg(short = 'm', long, default_value_t = 30)]
    max_hops: u32,
    /// Most probes per hop: a hop that answered gets one, a silent one more, 1 s apart.
    #[arg(short = 'q', long, default_value_t = 3)]
    probes: u32,
    /// Stop after this many consecutive silent hops.
    #[arg(long, default_value_t = 5)]
    max_silent: u32,
    /// Destination port for udp and tcp (0: 33434 / 80).
    #[arg(short = 'p', long, default_value_t = 0)]
    port: u32,
    /// IPv6 flow label of every probe packet (0..=1048575), constant for the whole trace.
    #[arg(long, default_value_t = 0)]
    flow_label: u32,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct DnsArgs {
    /// The resolver: address or host name.
    resolver: String,
    /// The name to look up.
    name: String,
    /// Query type: a name (AAAA, A, MX, …) or number.
    #[arg(short = 't', long = "type", default_value = "AAAA")]
    query_type: String,
    /// Same as `--transport tcp`.
    #[arg(long, conflicts_with = "transport")]
    tcp: bool,
    /// udp, tcp, tls (DoT, RFC 7858) or https (DoH, RFC 8484).
    #[arg(long, default_value = "udp", value_parser = ["udp", "tcp", "tls", "https"])]
    transport: String,
    /// TLS and HTTPS: the name to verify and send as SNI (default: the resolver's address
    /// is verified).
    #[arg(long)]
    server_name: Option<String>,
    /// HTTPS: the DoH endpoint's path.
    #[arg(long, default_value = sixmap_shared::measurement::DOH_PATH)]
    path: String,
    /// Do not set the Recursion Desired bit.
    #[arg(long)]
    no_recurse: bool,
    /// The resolver's port (0: the transport's, 53, 853 for tls, 443 for https).
    #[arg(short = 'p', long, default_value_t = 0)]
    port: u32,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct TcpArgs {
    /// Address or host name.
    target: String,
    /// Destination port.
    port: u32,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct TlsArgs {
    /// Address or host name.
    target: String,
    /// Destination port.
    #[arg(short = 'p', long, default_value_t = 443)]
    port: u32,
    /// Server name to send (default: the target's host name).
    #[arg(long)]
    sni: Option<String>,
    /// ALPN protocols to offer, comma-separated.
    #[arg(long, value_delimiter = ',')]
    alpn: Vec<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct HttpArgs {
    /// http:// or https:// URL; its host is measured unless --address is given.
    url: String,
    /// Send HEAD instead of GET.
    #[arg(long)]
    head: bool,
    /// Body bytes read at most.
    #[arg(long, default_value_t = 65_536)]
    max_body: u32,
    /// Connect to this address instead of resolving the URL's host.
    #[arg(long)]
    address: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct QuicArgs {
    /// Address or host name.
    target: String,
    /// Destination UDP port.
    #[arg(short = 'p', long, default_value_t = 443)]
    port: u32,
    /// Server name to send (default: the target's host name).
    #[arg(long)]
    sni: Option<String>,
    /// ALPN protocols to offer, comma-separated (default h3).
    #[arg(long, value_delimiter = ',')]
    alpn: Vec<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct PmtuArgs {
    /// Address or host name.
    target: String,
    /// Largest packet tried, in bytes.
    #[arg(long, default_value_t = 1500)]
    max_size: u32,
    /// Probe packets: ICMP echo or UDP.
    #[arg(short = 'P', long, default_value = "icmp", value_parser = ["icmp", "udp"])]
    protocol: String,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct ExthdrArgs {
    /// Address or host name.
    target: String,
    /// Headers to test, comma-separated: hbh, dst, frag (default all).
    #[arg(long, value_delimiter = ',')]
    headers: Vec<String>,
    /// Size of a Hop-by-Hop / Destination Options header, multiple of 8.
    #[arg(long, default_value_t = 8)]
    option_bytes: u32,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct DualstackArgs {
    /// A host name with A and AAAA records.
    hostname: String,
    /// What runs over each family.
    #[arg(long, default_value = "tcp", value_parser = ["ping", "tcp", "http"])]
    inner: String,
    /// Port for tcp and http (0: 80).
    #[arg(short = 'p', long, default_value_t = 0)]
    port: u32,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct ReadinessArgs {
    /// The domain name (its NS, MX and web site are checked).
    domain: String,
    /// Path and query of the page fetched.
    #[arg(long, default_value = "/")]
    path: String,
    /// Host of the web site when it is not the domain itself (e.g. www.example.gov).
    #[arg(long, default_value = "")]
    web_host: String,
    /// Skip the mail exchangers.
    #[arg(long)]
    no_mail: bool,
    /// Skip the page's subresource hosts.
    #[arg(long)]
    no_subresources: bool,
    /// Subresource hosts checked at most (0: 16; at most 32).
    #[arg(long, default_value_t = 0)]
    max_hosts: u32,
    #[command(flatten)]
    common: Common,
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
        MeasureKind::Ping(PingArgs {
            target,
            count,
            interval_ms,
            size,
            ..
        }) => (
            target,
            SpecKind::Ping(PingSpec::new(count, interval_ms, size)?),
        ),
        MeasureKind::Traceroute(TracerouteArgs {
            targets,
            protocol,
            first_hop,
            max_hops,
            probes,
            max_silent,
            port,
            flow_label,
            ..
        }) => {
            let [target] = <[String; 1]>::try_from(targets)
                .map_err(|t| anyhow::anyhow!("one target expected, got {}", t.len()))?;
            (
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
            )
        }
        MeasureKind::Dns(DnsArgs {
            resolver,
            name,
            query_type,
            tcp,
            transport,
            server_name,
            path,
            no_recurse,
            port,
            ..
        }) => {
            let transport = match (tcp, transport.to_ascii_lowercase().as_str()) {
                (true, _) | (false, "tcp") => DnsTransport::Tcp,
                (false, "udp") => DnsTransport::Udp,
                (false, "tls" | "dot") => DnsTransport::Tls,
                (false, "https" | "doh") => DnsTransport::Https,
                (false, other) => {
                    anyhow::bail!("--transport {other:?}: expected udp, tcp, tls or https")
                }
            };
            let query_type = u32::from(parse_query_type(&query_type)?);
            let spec = DnsSpec::new(&name, query_type, transport, !no_recurse)?
                .with_port(port)?
                .with_server_name(server_name.as_deref().unwrap_or_default())?;
            let spec = if transport == DnsTransport::Https {
                spec.with_path(&path)?
            } else {
                spec
            };
            (resolver, SpecKind::Dns(spec))
        }
        MeasureKind::Tcp(TcpArgs { target, port, .. }) => {
            (target, SpecKind::Tcp(TcpSpec::new(port)?))
        }
        MeasureKind::Tls(TlsArgs {
            target,
            port,
            sni,
            alpn,
            ..
        }) => (
            target,
            SpecKind::Tls(TlsSpec::new(port, sni.as_deref(), alpn)?),
        ),
        MeasureKind::Http(HttpArgs {
            url,
            head,
            max_body,
            address,
            ..
        }) => {
            let method = if head { "HEAD" } else { "GET" };
            let spec = HttpSpec::new(&url, method, max_body)?;
            let target = address.unwrap_or_else(|| HttpUrl::clone(spec.url()).host);
            (target, SpecKind::Http(spec))
        }
        MeasureKind::Quic(QuicArgs {
            target,
            port,
            sni,
            alpn,
            ..
        }) => (
            target,
            SpecKind::Quic(QuicSpec::new(port, sni.as_deref(), alpn)?),
        ),
        MeasureKind::Pmtu(PmtuArgs {
            target,
            max_size,
            protocol,
            ..
        }) => (
            target,
            SpecKind::Pmtu(PmtuSpec::new(max_size, TraceProtocol::parse(&protocol)?)?),
        ),
        MeasureKind::Exthdr(ExthdrArgs {
            target,
            headers,
            option_bytes,
            ..
        }) => {
            let headers = headers
                .iter()
                .map(|h| ExtHeaderType::parse(h))
                .collect::<Result<Vec<_>, _>>()?;
            (
                target,
                SpecKind::ExtHeaders(ExtHeaderSpec::new(headers, option_bytes)?),
            )
        }
        MeasureKind::Dualstack(DualstackArgs {
            hostname,
            inner,
            port,
            ..
        }) => (
            hostname,
            SpecKind::DualStack(DualStackSpec::new(DualInner::parse(&inner)?, port)?),
        ),
        MeasureKind::Readiness(ReadinessArgs {
            domain,
            path,
            web_host,
            no_mail,
            no_subresources,
            max_hosts,
            ..
        }) => (
            domain,
            SpecKind::Readiness(ReadinessSpec::new(
                &path,
                &web_host,
                !no_mail,
                !no_subresources,
                max_hosts,
            )?),
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
    let common = args.kind.common().clone();
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
        pacer: None,
        stop_set: None,
    };
    if let Some(path) = &common.ca_file {
        std::fs::metadata(path).with_context(|| format!("--ca-file {}", path.display()))?;
    }
    if let MeasureKind::Traceroute(TracerouteArgs {
        targets,
        pps,
        parallel,
        no_stop_set,
        ..
    }) = &args.kind
        && (targets.len() > 1 || pps.is_some())
    {
        let (targets, pps, parallel) = (targets.clone(), *pps, *parallel);
        let engine = Engine {
            stop_set: (!*no_stop_set).then(|| Arc::new(StopSet::new())),
            ..engine
        };
        let mut first = args.kind;
        if let MeasureKind::Traceroute(TracerouteArgs { targets, .. }) = &mut first {
            // The spec is the same for every target; this one only carries the settings.
            *targets = vec!["::".into()];
        }
        let SpecKind::Traceroute(trace) = spec_of(first, &common)?.kind else {
            bail!("not a traceroute");
        };
        return many_traceroutes(engine, &targets, trace, pps, parallel, &common).await;
    }
    if let MeasureKind::Ping(PingArgs {
        target,
        count,
        interval_ms,
        size,
        ..
    }) = &args.kind
        && !common.json
    {
        return ping_live(engine, target, *count, *interval_ms, *size, &common).await;
    }
    let spec = spec_of(args.kind, &common)?;
    let produced = engine.run(TaskId::new(1)?, &spec).await;
    if common.json {
        use std::io::Write as _;
        // One write: stdout is line-buffered, and a write per line costs a system call each.
        let mut text = serde_json::to_vec_pretty(&json(&spec, &produced))?;
        text.push(b'\n');
        std::io::stdout().lock().write_all(&text)?;
    } else {
        print!("{}", sixmap_probe::render::produced(&produced));
    }
    if let Outcome::Failed(e) = &produced.outcome {
        bail!("{:?}: {}", e.class, e.message);
    }
    Ok(())
}

/// `measure ping` as text, like ping: each reply (or ICMP error, or loss) printed as it
/// comes. Each echo request is its own one-request measurement, started `interval` after
/// the previous one whatever became of it, so a lost reply holds up no other line; the
/// sequence number is the request's place. `--json` keeps one measurement holding every
/// reply, as the collector would store it.
async fn ping_live(
    engine: Engine,
    target: &str,
    count: u32,
    interval_ms: u32,
    size: u32,
    common: &Common,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    // The whole request checked as one spec, so the bounds and messages are the usual ones.
    PingSpec::new(count, interval_ms, size)?;
    let (target, family) = target_and_family(target, common)?;
    let one = MeasurementSpec::new(
        target,
        family,
        Duration::from_millis(common.timeout_ms),
        SpecKind::Ping(PingSpec::new(1, interval_ms, size)?),
    )?
    .with_max_packets(common.max_packets)?;
    let engine = Arc::new(engine);
    let interval = Duration::from_millis(u64::from(interval_ms));
    let start = tokio::time::Instant::now();
    // At most `count` (64) results: unbounded is bounded here.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for sequence in 0..count {
        let task_id = TaskId::new(u64::from(sequence) + 1)?;
        let (engine, spec, tx) = (engine.clone(), one.clone(), tx.clone());
        tokio::spawn(async move {
            tokio::time::sleep_until(start + interval * sequence).await;
            let produced = engine.run(task_id, &spec).await;
            // The receiver outlives every sender unless main is already failing.
            let _ = tx.send((sequence, produced));
        });
    }
    drop(tx);
    let mut tally = sixmap_probe::render::PingTally::default();
    let mut header = false;
    let mut failures = Vec::new();
    let mut stdout = std::io::stdout();
    while let Some((sequence, produced)) = rx.recv().await {
        if !header && let Some(destination) = produced.destination {
            let source = produced.source.map_or("?".to_owned(), |s| s.to_string());
            writeln!(
                stdout,
                "PING {destination} from {source}: {size} payload bytes"
            )?;
            header = true;
        }
        write!(
            stdout,
            "{}",
            sixmap_probe::render::ping_request(sequence, &produced, common.timeout_ms)
        )?;
        stdout.flush()?;
        tally.add(&produced);
        if let Outcome::Failed(e) = &produced.outcome {
            failures.push(format!("{:?}: {}", e.class, e.message));
        }
    }
    print!("{}", tally.summary());
    if failures.len() == count as usize
        && let Some(first) = failures.first()
    {
        bail!("{first}");
    }
    Ok(())
}

/// Traces every target, at most `parallel` at once, all probes under one `pps` cap; prints
/// each result as `measure traceroute` does for one, in target order.
async fn many_traceroutes(
    engine: Engine,
    targets: &[String],
    trace: TracerouteSpec,
    pps: Option<u32>,
    parallel: u32,
    common: &Common,
) -> anyhow::Result<()> {
    let pacer = pps
        .map(Pacer::new)
        .transpose()
        .context("--pps")?
        .map(Arc::new);
    let engine = Engine { pacer, ..engine };
    let slots = Arc::new(tokio::sync::Semaphore::new(parallel.clamp(1, 1024) as usize));
    let engine = Arc::new(engine);
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for (i, text) in targets.iter().enumerate() {
        let task_id = TaskId::new(u64::try_from(i)?.saturating_add(1))?;
        let (target, family) = target_and_family(text, common)?;
        let spec = MeasurementSpec::new(
            target,
            family,
            Duration::from_millis(common.timeout_ms),
            SpecKind::Traceroute(trace),
        )?
        .with_max_packets(common.max_packets)?;
        let (engine, slots) = (engine.clone(), slots.clone());
        tasks.push(tokio::spawn(async move {
            // The semaphore is never closed, so a permit always comes.
            let _permit = slots.acquire_owned().await;
            let produced = engine.run(task_id, &spec).await;
            (spec, produced)
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.context("a trace panicked")?);
    }
    let duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let failed = results
        .iter()
        .filter(|(_, p)| matches!(p.outcome, Outcome::Failed(_)))
        .count();
    if common.json {
        let all = serde_json::json!({
            "targets": targets.len(),
            "pps": pps,
            "parallel": parallel,
            "duration_us": duration_us,
            "packets_sent": results.iter().map(|(_, p)| match &p.outcome {
                Outcome::Traceroute(r) => u64::from(r.packets_sent),
                _ => 0,
            }).sum::<u64>(),
            "results": results.iter().map(|(spec, p)| json(spec, p)).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        for (_, produced) in &results {
            print!("{}", sixmap_probe::render::produced(produced));
            if let Outcome::Failed(e) = &produced.outcome {
                println!("failed: {:?}: {}", e.class, e.message);
            }
        }
        println!(
            "{} targets in {:.3} s ({} failed)",
            targets.len(),
            duration_us as f64 / 1e6,
            failed
        );
    }
    if failed > 0 {
        bail!("{failed} of {} traces failed", targets.len());
    }
    Ok(())
}

/// Everything a result records except its key, as the collector would store it.
///
/// Serialized as it stands rather than through a `serde_json::Value`: building that tree,
/// sorting its maps and dropping it was a sixth of a one-shot traceroute's instructions.
#[derive(serde::Serialize)]
struct ResultJson<'a> {
    spec: &'a MeasurementSpec,
    started_at_us: i64,
    duration_us: u64,
    family_requested: Family,
    family_used: Option<Family>,
    source: Option<std::net::IpAddr>,
    destination: Option<std::net::IpAddr>,
    software_version: &'static str,
    clock_state: sixmap_shared::measurement::ClockState,
    outcome: &'a Outcome,
}

fn json<'a>(spec: &'a MeasurementSpec, produced: &'a Produced) -> ResultJson<'a> {
    ResultJson {
        spec,
        started_at_us: produced.started_at.0,
        duration_us: produced.duration_us,
        family_requested: produced.family_requested,
        family_used: produced.family_used,
        source: produced.source,
        destination: produced.destination,
        software_version: sixmap_shared::version::SOFTWARE_VERSION,
        clock_state: produced.clock_state,
        outcome: &produced.outcome,
    }
}
