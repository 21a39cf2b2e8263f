//! DNS measurement: one query to the resolver at the destination address, over UDP (retried
//! over TCP when the answer is truncated) or TCP, with a hand-written message codec.
//!
//! Timeouts, refusals, unreachable servers and malformed responses are outcomes of the
//! measurement (`DnsResult::failure`), not errors: they are what was measured.

mod present;
mod transport;
mod wire;

use crate::context::{Context, failure};
use sixmap_shared::measurement::{
    DnsRecord, DnsResponse, DnsResult, DnsSpec, DnsTransport, ErrorClass, MeasurementError,
};
use std::net::{IpAddr, SocketAddr};
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
        ctx.deadline,
    )
    .await
}

/// The measurement against any server address (tests use a loopback port).
async fn measure(
    server: SocketAddr,
    spec: &DnsSpec,
    deadline: Instant,
) -> Result<DnsResult, MeasurementError> {
    let query = Query::new(
        random_id()?,
        spec.query_name(),
        spec.query_type(),
        spec.recursion_desired(),
    );
    let started = Instant::now();
    let (transport_used, outcome) = match spec.transport() {
        DnsTransport::Tcp => (
            DnsTransport::Tcp,
            transport::tcp(server, &query, deadline).await,
        ),
        DnsTransport::Udp => match transport::udp(server, &query, deadline).await {
            Ok((_, message)) if message.header.word & DnsResponse::FLAG_TC != 0 => (
                DnsTransport::Tcp,
                transport::tcp(server, &query, deadline)
                    .await
                    .map_err(|e| Failure::AfterTruncation(Box::new(e))),
            ),
            other => (DnsTransport::Udp, other),
        },
    };
    // From the first query sent to the response used (over TCP after a truncation).
    let rtt_ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let (rtt_ns, response, failure_text) = match outcome {
        Ok((bytes, message)) => (Some(rtt_ns), Some(response(&bytes, &message)), None),
        Err(failure) => (None, None, Some(failure.to_string())),
    };
    let result = DnsResult {
        query_name: spec.query_name().to_owned(),
        query_type: spec.query_type(),
        transport_used,
        rtt_ns,
        response,
        failure: failure_text,
    };
    result.validate().map_err(|e| {
        failure(
            ErrorClass::Internal,
            format!("dns produced an invalid result: {e}"),
        )
    })?;
    Ok(result)
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
