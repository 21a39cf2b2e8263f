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

/// The host's own resolver: the first usable `nameserver` of `/etc/resolv.conf`, the one the
/// C library asks first. A missing file or no usable entry is a resolution failure: the
/// host cannot look names up either.
pub async fn system_resolver() -> Result<IpAddr, MeasurementError> {
    let text = tokio::fs::read_to_string(RESOLV_CONF).await.map_err(|e| {
        failure(
            ErrorClass::Resolution,
            format!("system resolver: {RESOLV_CONF}: {e}"),
        )
    })?;
    first_nameserver(&text).ok_or_else(|| {
        failure(
            ErrorClass::Resolution,
            format!("system resolver: no usable nameserver in {RESOLV_CONF}"),
        )
    })
}

/// The first `nameserver` address of a resolv.conf text. Entries with a zone (`fe80::1%eth0`)
/// are skipped: a socket address here carries no zone, and such a query could not be sent.
fn first_nameserver(text: &str) -> Option<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next())?
        })
        .find_map(|address| address.parse().ok())
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
