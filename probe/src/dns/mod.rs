//! DNS measurement: one query to the resolver at the destination address, over UDP (retried
//! over TCP when the answer is truncated), TCP, TLS (DoT) or HTTPS (DoH, `encrypted`), with a
//! hand-written message codec.
//!
//! Timeouts, refusals, unreachable servers and malformed responses are outcomes of the
//! measurement (`DnsResult::failure`), not errors: they are what was measured.

mod encrypted;
mod present;
mod transport;
mod wire;

use crate::context::{Context, failure};
use encrypted::Problem;
use rustls::client::danger::ServerCertVerifier;
use sixmap_shared::measurement::{
    DnsRecord, DnsResponse, DnsResult, DnsSpec, DnsTransport, ErrorClass, MeasurementError,
};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use tokio::time::Instant;
use transport::Failure;
use wire::{Message, Query};

/// Where the host's resolver configuration lives (in a network namespace, `ip netns exec`
/// mounts the namespace's own over it).
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Longest resolv.conf read: the C library reads far less, and a larger file is not one.
const RESOLV_CONF_MAX: u64 = 64 * 1024;

/// Query types a measurement may ask of the host's own resolver: the address records (and
/// HTTPS, for `ipv6hint`) of a public name. The collector chooses the question while the host
/// chooses the resolver, so without this the collector could read the volunteer's internal
/// DNS (PTR of their LAN, `router.lan`, zone transfers) through it.
const SYSTEM_RESOLVER_TYPES: [u16; 3] = [1, 28, 65];

/// Names never asked of the host's resolver: special-use and private-use names (RFC 6761,
/// RFC 8375, RFC 6762, the common home-router zones) and reverse zones, which only say
/// something about the volunteer's own network.
const PRIVATE_SUFFIXES: [&str; 16] = [
    "local",
    "localhost",
    "localdomain",
    "lan",
    "home",
    "internal",
    "intranet",
    "corp",
    "private",
    "test",
    "invalid",
    "example",
    "onion",
    "home.arpa",
    "in-addr.arpa",
    "ip6.arpa",
];

/// Refuses a question the host's own resolver may not be asked (see
/// [`SYSTEM_RESOLVER_TYPES`], [`PRIVATE_SUFFIXES`]); the probe checks it whatever the
/// collector sent.
pub fn check_system_resolver_question(spec: &DnsSpec) -> Result<(), MeasurementError> {
    let refuse = |why: String| failure(ErrorClass::Policy, format!("system resolver: {why}"));
    if !SYSTEM_RESOLVER_TYPES.contains(&spec.query_type()) {
        return Err(refuse(format!(
            "query type {} is not asked of the host's resolver (only A, AAAA and HTTPS)",
            spec.query_type()
        )));
    }
    let name = spec.query_name();
    if !name.contains('.') {
        return Err(refuse(format!("{name:?} is not a public name (one label)")));
    }
    if let Some(suffix) = PRIVATE_SUFFIXES
        .iter()
        .find(|suffix| name == **suffix || name.ends_with(&format!(".{suffix}")))
    {
        return Err(refuse(format!(
            "{name:?} is in the private or special-use zone {suffix:?}"
        )));
    }
    Ok(())
}

/// The host's own resolver: the first `nameserver` of `/etc/resolv.conf`, the one the C
/// library asks first. A missing file or no usable first entry is a resolution failure: the
/// host's lookups are not what this could measure.
pub async fn system_resolver() -> Result<IpAddr, MeasurementError> {
    use tokio::io::AsyncReadExt;
    let unusable = |why: String| failure(ErrorClass::Resolution, format!("system resolver: {why}"));
    let file = tokio::fs::File::open(RESOLV_CONF)
        .await
        .map_err(|e| unusable(format!("{RESOLV_CONF}: {e}")))?;
    let mut text = String::new();
    file.take(RESOLV_CONF_MAX)
        .read_to_string(&mut text)
        .await
        .map_err(|e| unusable(format!("{RESOLV_CONF}: {e}")))?;
    first_nameserver(&text).map_err(|why| unusable(format!("{RESOLV_CONF}: {why}")))
}

/// The first `nameserver` of a resolv.conf text, read as the C library reads it: the keyword
/// at the very start of a line. When that first entry cannot be used here (a zone such as
/// `fe80::1%eth0`, which a socket address here cannot carry; multicast, broadcast or
/// unspecified), it is an error rather than the next entry: the host asks the first one.
fn first_nameserver(text: &str) -> Result<IpAddr, String> {
    let first = text
        .lines()
        .filter_map(|line| line.strip_prefix("nameserver"))
        .filter(|rest| rest.starts_with([' ', '\t']))
        .find_map(|rest| rest.split_whitespace().next())
        .ok_or_else(|| "no nameserver".to_string())?;
    let address: IpAddr = first.parse().map_err(|_| {
        format!("the first nameserver {first:?} is not an address this probe can use")
    })?;
    let unusable = address.is_unspecified()
        || address.is_multicast()
        || address == IpAddr::V4(std::net::Ipv4Addr::BROADCAST);
    if unusable {
        return Err(format!("the first nameserver {address} cannot be asked"));
    }
    Ok(address)
}

pub async fn run(
    ctx: &Context<'_>,
    spec: &DnsSpec,
    destination: IpAddr,
) -> Result<DnsResult, MeasurementError> {
    measure(
        SocketAddr::new(destination, spec.port()),
        spec,
        ctx.extra_ca_file,
        ctx.deadline,
    )
    .await
}

/// The measurement against any server address (tests use a loopback port; readiness asks
/// the host's resolver and name servers with it). `extra_ca` adds trust anchors for DoT and
/// DoH.
pub(crate) async fn measure(
    server: SocketAddr,
    spec: &DnsSpec,
    extra_ca: Option<&Path>,
    deadline: Instant,
) -> Result<DnsResult, MeasurementError> {
    let query = Query::new(
        random_id()?,
        spec.query_name(),
        spec.query_type(),
        spec.recursion_desired(),
    );
    // Encrypted transports set up TLS before the clock starts: loading trust anchors is not
    // the network's time.
    let setup = if spec.transport().is_encrypted() {
        Some(tls_setup(server, spec, extra_ca)?)
    } else {
        None
    };
    let started = Instant::now();
    let mut session = None;
    let (transport_used, outcome) = match (spec.transport(), setup) {
        (DnsTransport::Tcp, _) => (
            DnsTransport::Tcp,
            transport::tcp(server, &query, deadline)
                .await
                .map_err(Problem::from),
        ),
        (DnsTransport::Udp, _) => match transport::udp(server, &query, deadline).await {
            Ok((_, message)) if message.header.word & DnsResponse::FLAG_TC != 0 => (
                DnsTransport::Tcp,
                transport::tcp(server, &query, deadline)
                    .await
                    .map_err(|e| Problem::from(Failure::AfterTruncation(Box::new(e)))),
            ),
            other => (DnsTransport::Udp, other.map_err(Problem::from)),
        },
        (encrypted, Some(setup)) => {
            let exchange = encrypted::exchange(server, encrypted, setup, &query, deadline).await;
            session = Some((exchange.session, exchange.rtt));
            (encrypted, exchange.answer)
        }
        (encrypted, None) => {
            return Err(failure(
                ErrorClass::Internal,
                format!("dns over {}: no TLS setup", encrypted.name()),
            ));
        }
    };
    // From the first query sent to the response used (over TCP after a truncation); over TLS
    // and HTTPS from the query sent over the established session, the connection's phases
    // apart.
    let rtt_ns = match &session {
        Some((_, rtt)) => rtt.map(crate::tls::nanos),
        None => Some(crate::tls::nanos(started.elapsed())),
    };
    let (rtt_ns, response, failure_text, failure_class) = match outcome {
        Ok((bytes, message)) => (rtt_ns, Some(response(&bytes, &message)), None, None),
        Err(problem) => (None, None, Some(problem.text), Some(problem.class)),
    };
    let result = DnsResult {
        query_name: spec.query_name().to_owned(),
        query_type: spec.query_type(),
        transport_used,
        rtt_ns,
        response,
        failure: failure_text,
        failure_class,
        session: session.map(|(session, _)| session),
    };
    result.validate().map_err(|e| {
        failure(
            ErrorClass::Internal,
            format!("dns produced an invalid result: {e}"),
        )
    })?;
    Ok(result)
}

/// The TLS side of DoT and DoH: rustls' verifier over the probe's trust anchors, the name to
/// verify (the spec's, else the resolver's address), the ALPN of the transport.
fn tls_setup(
    server: SocketAddr,
    spec: &DnsSpec,
    extra_ca: Option<&Path>,
) -> Result<encrypted::Setup, MeasurementError> {
    let provider = crate::tls::provider();
    let anchors = crate::trust::anchors(extra_ca)
        .map_err(|e| failure(ErrorClass::Internal, e.to_string()))?;
    let verifier: Arc<dyn ServerCertVerifier> =
        crate::tls::verifier::webpki(anchors, Arc::clone(&provider))
            .map_err(|e| failure(ErrorClass::Internal, e))?;
    let config = crate::tls::client_config(provider, &encrypted::alpn(spec.transport()), verifier)?;
    let name = crate::tls::server_name(spec.server_name(), server.ip())?;
    let authority = match (spec.server_name(), server) {
        (Some(name), _) => name.to_owned(),
        (None, SocketAddr::V6(v6)) => format!("[{}]", v6.ip()),
        (None, SocketAddr::V4(v4)) => v4.ip().to_string(),
    };
    let authority = match server.port() {
        sixmap_shared::measurement::DOH_PORT => authority,
        port => format!("{authority}:{port}"),
    };
    Ok(encrypted::Setup {
        config: Arc::new(config),
        name,
        path: spec.path().to_owned(),
        authority,
    })
}

fn random_id() -> Result<u16, MeasurementError> {
    let mut bytes = [0u8; 2];
    getrandom::fill(&mut bytes)
        .map_err(|e| failure(ErrorClass::Internal, format!("no random query id: {e}")))?;
    Ok(u16::from_ne_bytes(bytes))
}

fn response(bytes: &[u8], message: &Message) -> DnsResponse {
    DnsResponse {
        rcode: message.rcode,
        flags: message.header.flags(),
        answers: message
            .answers
            .iter()
            .map(|r| DnsRecord {
                name: present::owner(&r.name),
                record_type: r.rtype,
                ttl: r.ttl,
                data: present::rdata(bytes, r.rtype, r.rdata.clone()),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests;
