//! The results simulated probes send: a realistic mix of kinds and sizes, built from
//! `sixmap_shared` domain types (checked with `validate`) and encoded with `sixmap_proto`, as
//! a real probe does.
//!
//! Building and encoding every result afresh would spend the loadgen's CPU (which shares the
//! machine with the collector) on work that is not the collector's; so a pool of encoded
//! templates per kind is built once, and each result sent is a template with its own key,
//! task and start time.

use sixmap_proto::{encode, v1};
use sixmap_shared::measurement::{
    CertificateSummary, ClockInfo, ClockState, ConnectOutcome, DnsRecord, DnsResponse, DnsResult,
    DnsTransport, ErrorClass, Family, HopAnswer, HopReply, HttpResult, IcmpSocketKind,
    MeasurementError, MeasurementKind, MeasurementResult, Outcome, PingReply, PingResult,
    TcpResult, TimestampSource, TlsResult, TraceProtocol, TraceStop, TracerouteHop,
    TracerouteResult,
};
use sixmap_shared::{ProbeId, ResultKey, TaskId, UnixMicros};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};

/// Deterministic, fast pseudo-random numbers (SplitMix64): the mix must be reproducible run
/// to run, and quality needs are low.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// What a simulated result is: one of the assigned kinds, or a measurement that failed to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sort {
    Kind(MeasurementKind),
    Failed,
}

/// The kinds the collector must assign to every simulated probe (`[[tasks]]` of its config).
pub const KINDS: [MeasurementKind; 6] = [
    MeasurementKind::Ping,
    MeasurementKind::Traceroute,
    MeasurementKind::Dns,
    MeasurementKind::Http,
    MeasurementKind::Tcp,
    MeasurementKind::Tls,
];

/// Share of each sort in percent: mostly ping (the default task runs every minute on every
/// probe), then traceroute and DNS, fewer application-level ones, some failures.
pub const MIX: [(Sort, u64); 7] = [
    (Sort::Kind(MeasurementKind::Ping), 60),
    (Sort::Kind(MeasurementKind::Traceroute), 10),
    (Sort::Kind(MeasurementKind::Dns), 10),
    (Sort::Kind(MeasurementKind::Http), 6),
    (Sort::Kind(MeasurementKind::Tcp), 6),
    (Sort::Kind(MeasurementKind::Tls), 4),
    (Sort::Failed, 4),
];

const TEMPLATES_PER_SORT: usize = 16;

/// Global (non-documentation) IPv6 addresses, so results count as IPv6 working towards the
/// Internet, as most real ones do (the collector then updates the probe's tags per batch).
fn global(n: u64) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(
        0x2a00,
        0x1450,
        0x4001,
        0x0800 + (n % 64) as u16,
        0,
        0,
        0,
        0x200e + (n % 7) as u16,
    ))
}

fn router(hop: u8, n: u64) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(
        0x2001,
        0x7f8,
        0x1 + u16::from(hop),
        (n % 4) as u16,
        0,
        0,
        0,
        1,
    ))
}

fn base(probe: &ProbeId, outcome: Outcome, rng: &mut Rng) -> MeasurementResult {
    let destination = global(rng.next_u64());
    let reached = outcome.kind().is_some();
    MeasurementResult {
        // Replaced per result; a valid placeholder so `validate` runs on the template.
        key: ResultKey {
            probe_id: probe.clone(),
            boot_epoch: 1,
            sequence: 1,
        },
        task_id: TaskId::new(1).unwrap_or_else(|_| unreachable!("1 is not 0")),
        started_at: UnixMicros(1_700_000_000_000_000),
        duration_us: 5_000 + rng.below(2_000_000),
        family_requested: Family::V6,
        family_used: reached.then_some(Family::V6),
        source: Some(IpAddr::V6(Ipv6Addr::new(
            0x2a02, 0x8109, 0x1c40, 0x1d00, 0x1e2f, 0x3aff, 0xfe4b, 0x8a1,
        ))),
        destination: reached.then_some(destination),
        software_version: sixmap_shared::version::SOFTWARE_VERSION.to_owned(),
        clock: ClockInfo {
            state: ClockState::Synchronized,
            offset_us: Some(rng.below(4000) as i64 - 2000),
        },
        outcome,
    }
}

fn ping(rng: &mut Rng) -> Outcome {
    let sent = 3u16;
    let lost = u16::from(rng.below(10) == 0);
    let from = global(rng.next_u64());
    let rtt = 8_000_000 + rng.below(40_000_000);
    Outcome::Ping(PingResult {
        sent,
        received: sent - lost,
        replies: (0..sent - lost)
            .map(|sequence| PingReply {
                sequence,
                rtt_ns: rtt + rng.below(2_000_000),
                hop_limit: Some(52 + rng.below(8) as u8),
                duplicate: false,
                from,
            })
            .collect(),
        timestamp_source: TimestampSource::Kernel,
        socket_kind: IcmpSocketKind::Datagram,
        errors: Vec::new(),
    })
}

fn traceroute(rng: &mut Rng) -> Outcome {
    let hops = 8 + rng.below(10) as u8;
    let reached = rng.below(5) != 0;
    let path = rng.next_u64();
    Outcome::Traceroute(TracerouteResult {
        protocol: TraceProtocol::Icmp,
        flow_label: (rng.below(1 << 20)) as u32,
        hops: (1..=hops)
            .map(|hop_limit| TracerouteHop {
                hop_limit,
                replies: (0..3)
                    .map(|_| {
                        (rng.below(12) != 0).then(|| HopReply {
                            from: router(hop_limit, path),
                            rtt_ns: u64::from(hop_limit) * 1_500_000 + rng.below(3_000_000),
                            answer: HopAnswer::Icmp {
                                icmp_type: if reached && hop_limit == hops { 129 } else { 3 },
                                icmp_code: 0,
                                mtu: None,
                            },
                        })
                    })
                    .collect(),
            })
            .collect(),
        reached_destination: reached,
        stop: if reached {
            TraceStop::Reached
        } else {
            TraceStop::SilentHops
        },
        packets_sent: u32::from(hops) * 3,
        reused_hops: 0,
    })
}

fn dns(rng: &mut Rng) -> Outcome {
    let answers = 1 + rng.below(3);
    Outcome::Dns(DnsResult {
        query_name: "www.example-operator.net".into(),
        query_type: 28,
        transport_used: DnsTransport::Udp,
        rtt_ns: Some(2_000_000 + rng.below(30_000_000)),
        response: Some(DnsResponse {
            rcode: 0,
            flags: 0x8180,
            answers: (0..answers)
                .map(|_| DnsRecord {
                    name: "www.example-operator.net".into(),
                    record_type: 28,
                    ttl: 300,
                    data: global(rng.next_u64()).to_string(),
                })
                .collect(),
        }),
        failure: None,
        failure_class: None,
        session: None,
    })
}

fn http(rng: &mut Rng) -> Outcome {
    let connect = 10_000_000 + rng.below(30_000_000);
    Outcome::Http(HttpResult {
        connect: ConnectOutcome::Connected,
        status: Some(if rng.below(10) == 0 { 301 } else { 200 }),
        http_version: Some("HTTP/1.1".into()),
        dns_ns: Some(3_000_000 + rng.below(10_000_000)),
        connect_ns: Some(connect),
        tls_ns: Some(connect * 2),
        first_byte_ns: Some(connect * 3),
        total_ns: connect * 4,
        body_bytes: 4_000 + rng.below(60_000),
        body_truncated: false,
        failure: None,
    })
}

fn tcp(rng: &mut Rng) -> Outcome {
    Outcome::Tcp(TcpResult {
        port: 443,
        outcome: ConnectOutcome::Connected,
        connect_ns: Some(8_000_000 + rng.below(40_000_000)),
        icmp_error: None,
    })
}

fn tls(rng: &mut Rng) -> Outcome {
    let certificate = |subject: &str, issuer: &str| CertificateSummary {
        subject: subject.into(),
        issuer: issuer.into(),
        not_before: Some(UnixMicros(1_700_000_000_000_000)),
        not_after: Some(UnixMicros(1_800_000_000_000_000)),
    };
    let connect = 8_000_000 + rng.below(40_000_000);
    Outcome::Tls(TlsResult {
        connect: ConnectOutcome::Connected,
        connect_ns: Some(connect),
        handshake_ok: true,
        handshake_ns: Some(connect * 2),
        version: Some("TLSv1.3".into()),
        cipher_suite: Some("TLS13_AES_128_GCM_SHA256".into()),
        alpn: Some("h2".into()),
        chain: vec![
            certificate(
                "CN=www.example-operator.net",
                "C=US, O=Let's Encrypt, CN=R11",
            ),
            certificate(
                "C=US, O=Let's Encrypt, CN=R11",
                "C=US, O=Internet Security Research Group, CN=ISRG Root X1",
            ),
        ],
        certificate_verified: true,
        failure: None,
    })
}

fn failed(rng: &mut Rng) -> Outcome {
    let (class, message) = match rng.below(3) {
        0 => (
            ErrorClass::Resolution,
            "no AAAA record for www.example-operator.net",
        ),
        1 => (ErrorClass::Network, "no route to host (IPv6)"),
        _ => (
            ErrorClass::Policy,
            "target resolved to a private address: refused by the probe's policy",
        ),
    };
    Outcome::Failed(MeasurementError {
        class,
        message: message.into(),
    })
}

/// Error of a template that does not pass the shared types' own checks (a loadgen bug).
#[derive(Debug, thiserror::Error)]
#[error("simulated {sort:?} result is invalid: {reason}")]
pub struct TemplateError {
    sort: Sort,
    reason: String,
}

/// Encoded results to send, a pool per sort, and the mix to draw from.
#[derive(Debug, Clone)]
pub struct Factory {
    templates: HashMap<Sort, Vec<v1::MeasurementResult>>,
}

impl Factory {
    pub fn new(seed: u64) -> Result<Self, TemplateError> {
        let mut rng = Rng::new(seed);
        let probe = ProbeId::random().map_err(|e| TemplateError {
            sort: Sort::Failed,
            reason: format!("no probe id for the templates: {e}"),
        })?;
        let mut templates = HashMap::new();
        for (sort, _) in MIX {
            let mut pool = Vec::with_capacity(TEMPLATES_PER_SORT);
            for _ in 0..TEMPLATES_PER_SORT {
                let outcome = match sort {
                    Sort::Kind(MeasurementKind::Ping) => ping(&mut rng),
                    Sort::Kind(MeasurementKind::Traceroute) => traceroute(&mut rng),
                    Sort::Kind(MeasurementKind::Dns) => dns(&mut rng),
                    Sort::Kind(MeasurementKind::Http) => http(&mut rng),
                    Sort::Kind(MeasurementKind::Tcp) => tcp(&mut rng),
                    Sort::Kind(MeasurementKind::Tls) => tls(&mut rng),
                    Sort::Kind(_) | Sort::Failed => failed(&mut rng),
                };
                let result = base(&probe, outcome, &mut rng);
                result.validate().map_err(|e| TemplateError {
                    sort,
                    reason: e.to_string(),
                })?;
                pool.push(encode::result(&result));
            }
            templates.insert(sort, pool);
        }
        Ok(Self { templates })
    }

    /// Draws a sort by the mix.
    pub fn sort(rng: &mut Rng) -> Sort {
        let total: u64 = MIX.iter().map(|(_, share)| share).sum();
        let mut pick = rng.below(total);
        for (sort, share) in MIX {
            if pick < share {
                return sort;
            }
            pick -= share;
        }
        Sort::Failed
    }

    /// One result: a template of a sort drawn by the mix, with this key, the task assigned
    /// for its kind (a failure goes to the TCP task: it failed before connecting) and now as
    /// its start.
    pub fn result(
        &self,
        rng: &mut Rng,
        key: v1::ResultKey,
        tasks: &TaskIds,
        started_at: UnixMicros,
    ) -> Option<v1::MeasurementResult> {
        let sort = Self::sort(rng);
        let kind = match sort {
            Sort::Kind(kind) => kind,
            Sort::Failed => MeasurementKind::Tcp,
        };
        let pool = self.templates.get(&sort)?;
        let mut result = pool.get(rng.below(pool.len() as u64) as usize)?.clone();
        result.key = Some(key);
        result.task_id = tasks.get(kind)?;
        result.started_at_us = started_at.0;
        Some(result)
    }
}

/// The task id the collector assigned for each kind.
#[derive(Debug, Clone, Default)]
pub struct TaskIds(HashMap<MeasurementKind, u64>);

impl TaskIds {
    pub fn insert(&mut self, kind: MeasurementKind, task: u64) {
        self.0.entry(kind).or_insert(task);
    }

    pub fn get(&self, kind: MeasurementKind) -> Option<u64> {
        self.0.get(&kind).copied()
    }

    /// The kinds of [`KINDS`] the collector did not assign.
    pub fn missing(&self) -> Vec<MeasurementKind> {
        KINDS
            .into_iter()
            .filter(|k| !self.0.contains_key(k))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sixmap_proto::decode;

    #[test]
    fn every_template_decodes_as_the_collector_reads_it() {
        let factory = Factory::new(7).unwrap();
        let mut tasks = TaskIds::default();
        for (i, kind) in KINDS.into_iter().enumerate() {
            tasks.insert(kind, i as u64 + 10);
        }
        let probe = ProbeId::random().unwrap();
        let mut rng = Rng::new(1);
        let mut seen = HashMap::new();
        let results: Vec<_> = (1..=500u64)
            .map(|sequence| {
                let key = encode::result_key(&ResultKey {
                    probe_id: probe.clone(),
                    boot_epoch: 3,
                    sequence,
                });
                factory
                    .result(&mut rng, key, &tasks, UnixMicros::now())
                    .unwrap()
            })
            .collect();
        let batch = v1::ResultBatch {
            batch_id: 1,
            results: results[..256].to_vec(),
            losses: Vec::new(),
        };
        for item in decode::batch(&batch).unwrap() {
            let result = item.map_err(|(_, e)| e).unwrap();
            assert_eq!(result.key.probe_id, probe);
            let sort = result.outcome.kind().map_or(Sort::Failed, Sort::Kind);
            *seen.entry(sort).or_insert(0) += 1;
        }
        // Every sort of the mix shows up, ping most.
        assert_eq!(seen.len(), MIX.len(), "{seen:?}");
        let ping = seen[&Sort::Kind(MeasurementKind::Ping)];
        assert!(seen.values().all(|&n| n <= ping), "{seen:?}");
    }

    #[test]
    fn a_kind_without_a_task_gives_no_result() {
        let factory = Factory::new(7).unwrap();
        let tasks = TaskIds::default();
        assert_eq!(tasks.missing().len(), KINDS.len());
        let key = v1::ResultKey::default();
        let mut rng = Rng::new(1);
        assert!(
            factory
                .result(&mut rng, key, &tasks, UnixMicros::now())
                .is_none()
        );
    }
}
