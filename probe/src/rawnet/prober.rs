//! Sends the probes of one flow and hands back the answers that match them, with their
//! round-trip times (kernel receive timestamps when the kernel gives them).
//!
//! The measurement modules decide what to send and when; this keeps the books: ids, send
//! times, the packet budget, and which probes were answered (the first answer counts, late
//! duplicates are dropped).

use super::build::{BuildError, ExtHeader, Flow, ProbeParams, Transport};
use super::matching::{AnswerKind, MatchError};
use super::pacer::Pacer;
use super::socket::{Listen, Receiver, Sender, SocketError};
use crate::clock::SentAt;
use sixmap_shared::measurement::{ErrorClass, MeasurementError, TraceProtocol};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Big enough for any answer: ICMPv6 errors quote at most 1280 bytes in all, and a raw TCP
/// socket may hand over a segment of up to the interface MTU.
const DATA_BUFFER_LEN: usize = 9216;
const CONTROL_BUFFER_LEN: usize = 512;
/// Packets read per wake-up before the caller's schedule is looked at again.
const RECV_BUDGET: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Socket(#[from] SocketError),
    #[error("no IPv6 route to {destination}: {source}")]
    NoRoute {
        destination: Ipv6Addr,
        source: io::Error,
    },
    #[error("cannot build probe: {0}")]
    Build(#[from] BuildError),
    #[error("cannot send probes to {destination}: {source}")]
    Send {
        destination: Ipv6Addr,
        source: io::Error,
    },
    #[error("receiving answers failed: {0}")]
    Receive(io::Error),
    #[error("no random numbers for the flow: {0}")]
    Random(String),
}

/// The measurement's classified error for a probing failure.
pub fn measurement_error(error: &ProbeError) -> MeasurementError {
    let class = match error {
        ProbeError::Socket(SocketError::Permission { .. }) => ErrorClass::Permission,
        ProbeError::NoRoute { .. } | ProbeError::Send { .. } => ErrorClass::Network,
        ProbeError::Socket(_)
        | ProbeError::Build(_)
        | ProbeError::Receive(_)
        | ProbeError::Random(_) => ErrorClass::Internal,
    };
    MeasurementError {
        class,
        message: error.to_string(),
    }
}

/// Why one probe did not leave.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("packet budget spent")]
    Budget,
    /// Larger than the outgoing interface's MTU (`EMSGSIZE`).
    #[error("packet larger than the local interface MTU")]
    TooBig,
    #[error(transparent)]
    Failed(#[from] ProbeError),
}

#[derive(Debug, Clone, Copy)]
pub struct Sent {
    pub params: ProbeParams,
    pub at: SentAt,
    pub answered: bool,
}

/// The first answer to one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub id: u16,
    pub probe: ProbeParams,
    pub from: Ipv6Addr,
    pub rtt_ns: u64,
    pub kind: AnswerKind,
    /// The answer's own hop limit on arrival.
    pub reply_hop_limit: Option<u8>,
    /// When it was read (monotonic clock).
    pub received: Instant,
}

impl Answer {
    /// The time until which the other probes of a round are worth waiting for, once this
    /// answer came: a few of its round trips, within sane bounds.
    pub fn settles_at(&self) -> Instant {
        self.received + settle_wait(Duration::from_nanos(self.rtt_ns))
    }
}

/// How long to wait for answers given a round-trip time seen on the same path.
pub fn settle_wait(rtt: Duration) -> Duration {
    (rtt * 4 + Duration::from_millis(150)).clamp(Duration::from_millis(250), Duration::from_secs(2))
}

#[derive(Debug)]
pub struct Prober {
    flow: Flow,
    sender: Sender,
    icmp: Receiver,
    tcp: Option<Receiver>,
    book: Book,
    /// A packets-per-second cap shared with other probers, if any.
    pacer: Option<Arc<Pacer>>,
}

#[derive(Debug)]
struct Book {
    sent: HashMap<u16, Sent>,
    next_id: u16,
    limit: u32,
    packets_sent: u32,
    answers: VecDeque<Answer>,
    data: Vec<u8>,
    control: Vec<u8>,
}

fn random<const N: usize>() -> Result<[u8; N], ProbeError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| ProbeError::Random(e.to_string()))?;
    Ok(bytes)
}

/// A source port for a flow: random, in the dynamic range (49152..=65535) where no service
/// listens, so answers cannot be confused with a local connection's.
fn source_port() -> Result<u16, ProbeError> {
    let [a, b] = random::<2>()?;
    Ok(0xc000 | (u16::from_be_bytes([a, b]) & 0x3fff))
}

impl Prober {
    /// Opens the sockets and draws the flow's constants. `limit` bounds the packets sent;
    /// `known_source` is the source the kernel picks for `destination` if the caller already
    /// asked it (`Context::source_for`).
    pub fn open(
        destination: Ipv6Addr,
        known_source: Option<Ipv6Addr>,
        protocol: TraceProtocol,
        port: u16,
        flow_label: u32,
        limit: u32,
    ) -> Result<Self, ProbeError> {
        let looked_up = match known_source {
            Some(source) => Ok(IpAddr::V6(source)),
            None => crate::sock::source_address_for(IpAddr::V6(destination)),
        };
        let source = match looked_up {
            Ok(IpAddr::V6(source)) => source,
            Ok(IpAddr::V4(_)) => {
                return Err(ProbeError::NoRoute {
                    destination,
                    source: io::Error::other("the kernel picked an IPv4 source"),
                });
            }
            Err(source) => {
                return Err(ProbeError::NoRoute {
                    destination,
                    source,
                });
            }
        };
        let transport = match protocol {
            TraceProtocol::Icmp => Transport::Icmp {
                identifier: u16::from_be_bytes(random::<2>()?),
            },
            TraceProtocol::Udp => Transport::Udp {
                source_port: source_port()?,
                destination_port: port,
            },
            TraceProtocol::TcpSyn => Transport::TcpSyn {
                source_port: source_port()?,
                destination_port: port,
            },
        };
        let flow = Flow {
            source,
            destination,
            flow_label,
            transport,
            cookie: random()?,
        };
        let sender = Sender::open()?;
        let icmp = Receiver::open(Listen::Icmpv6)?;
        let tcp = match protocol {
            TraceProtocol::TcpSyn => Some(Receiver::open(Listen::Tcp)?),
            _ => None,
        };
        Ok(Self {
            flow,
            sender,
            icmp,
            tcp,
            book: Book {
                sent: HashMap::new(),
                // Random start: nothing about the first ids is predictable off-path.
                next_id: u16::from_be_bytes(random::<2>()?),
                limit,
                packets_sent: 0,
                answers: VecDeque::new(),
                data: vec![0; DATA_BUFFER_LEN],
                control: vec![0; CONTROL_BUFFER_LEN],
            },
            pacer: None,
        })
    }

    /// Makes [`Prober::exchange`] take a slot from `pacer` before each probe.
    pub fn set_pacer(&mut self, pacer: Option<Arc<Pacer>>) {
        self.pacer = pacer;
    }

    pub fn flow(&self) -> &Flow {
        &self.flow
    }

    pub fn packets_sent(&self) -> u32 {
        self.book.packets_sent
    }

    /// Packets that may still be sent.
    pub fn budget_left(&self) -> u32 {
        self.book.limit.saturating_sub(self.book.packets_sent)
    }

    pub fn sent(&self, id: u16) -> Option<&Sent> {
        self.book.sent.get(&id)
    }

    /// Builds and sends one probe; its id comes back. ([`Prober::exchange`] fails the
    /// measurement when the very first probe cannot leave, e.g. no route; later failures
    /// only leave a probe unsent.)
    pub fn send(
        &mut self,
        hop_limit: u8,
        ext: Option<ExtHeader>,
        size: usize,
    ) -> Result<u16, SendError> {
        if self.book.packets_sent >= self.book.limit {
            return Err(SendError::Budget);
        }
        let id = self.book.next_id;
        let params = ProbeParams {
            id,
            hop_limit,
            ext,
            size,
        };
        let packet = self.flow.build(&params).map_err(ProbeError::from)?;
        let at = SentAt::now();
        match self.sender.send(&packet, self.flow.destination) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => return Err(SendError::TooBig),
            Err(source) => {
                return Err(SendError::Failed(ProbeError::Send {
                    destination: self.flow.destination,
                    source,
                }));
            }
        }
        self.book.next_id = id.wrapping_add(1);
        self.book.packets_sent += 1;
        self.book.sent.insert(
            id,
            Sent {
                params,
                at,
                answered: false,
            },
        );
        Ok(id)
    }

    /// The next answer to one of our probes, or `None` once `until` passes.
    pub async fn next(&mut self, until: Instant) -> Result<Option<Answer>, ProbeError> {
        let Self {
            flow,
            icmp,
            tcp,
            book,
            ..
        } = self;
        loop {
            if let Some(answer) = book.answers.pop_front() {
                return Ok(Some(answer));
            }
            let tcp_ready = async {
                match tcp.as_ref() {
                    Some(receiver) => receiver.readable().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = tokio::time::sleep_until(until) => return Ok(None),
                guard = icmp.readable() => {
                    let mut guard = guard.map_err(ProbeError::Receive)?;
                    if book.drain(flow, icmp, Listen::Icmpv6)? {
                        guard.clear_ready();
                    }
                }
                guard = tcp_ready => {
                    let mut guard = guard.map_err(ProbeError::Receive)?;
                    if let Some(receiver) = tcp.as_ref()
                        && book.drain(flow, receiver, Listen::Tcp)?
                    {
                        guard.clear_ready();
                    }
                }
            }
        }
    }
}

impl Book {
    /// Reads what is queued on `receiver` (up to the budget); true once the queue is empty.
    fn drain(
        &mut self,
        flow: &Flow,
        receiver: &Receiver,
        listen: Listen,
    ) -> Result<bool, ProbeError> {
        for _ in 0..RECV_BUDGET {
            let received = match receiver.recv(&mut self.data, &mut self.control) {
                Ok(received) => received,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ProbeError::Receive(e)),
            };
            let now = Instant::now();
            let Some(from) = received.from else {
                continue;
            };
            let matched = match listen {
                Listen::Icmpv6 => flow.match_icmpv6(from, received.data),
                Listen::Tcp => flow.match_tcp(from, received.data),
            };
            let matched = match matched {
                Ok(matched) => matched,
                Err(MatchError::NotOurs(_)) => continue,
                Err(reason) => {
                    tracing::debug!(%reason, %from, "ignored packet");
                    continue;
                }
            };
            let Some(sent) = self.sent.get_mut(&matched.id) else {
                tracing::debug!(id = matched.id, %from, "answer to a probe never sent");
                continue;
            };
            if sent.answered {
                continue;
            }
            sent.answered = true;
            let rtt = sent
                .at
                .kernel_rtt(received.ancillary.received_at)
                .unwrap_or_else(|| now.saturating_duration_since(sent.at.monotonic));
            self.answers.push_back(Answer {
                id: matched.id,
                probe: sent.params,
                from,
                rtt_ns: u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX),
                kind: matched.kind,
                reply_hop_limit: received.ancillary.hop_limit,
                received: now,
            });
        }
        Ok(false)
    }
}

/// One probe to send in an [`Prober::exchange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    pub hop_limit: u8,
    pub ext: Option<ExtHeader>,
    /// Whole packet size (0: the smallest).
    pub size: usize,
}

/// What became of each planned probe, by its index in the plan.
#[derive(Debug, Clone, Default)]
pub struct Exchanged {
    /// The id it went out with; `None` if it was not sent (skipped, budget, deadline).
    pub ids: Vec<Option<u16>>,
    pub answers: Vec<Option<Answer>>,
    /// Refused by the local interface as larger than its MTU.
    pub too_big_locally: Vec<bool>,
    /// The packet budget ran out before the plan did.
    pub budget_spent: bool,
    /// Every planned probe was sent or skipped (neither the budget nor the deadline cut in).
    pub complete: bool,
    /// Planned probes dealt with so far (sent, skipped or refused), in plan order.
    pub handled: usize,
}

impl Exchanged {
    fn new(len: usize) -> Self {
        Self {
            ids: vec![None; len],
            answers: vec![None; len],
            too_big_locally: vec![false; len],
            budget_spent: false,
            complete: false,
            handled: 0,
        }
    }

    /// Answers with their plan index.
    pub fn answered(&self) -> impl Iterator<Item = (usize, &Answer)> {
        self.answers
            .iter()
            .enumerate()
            .filter_map(|(i, a)| a.as_ref().map(|a| (i, a)))
    }
}

/// How often an exchange looks at its stop condition while nothing arrives.
const TICK: Duration = Duration::from_millis(100);

impl Prober {
    /// Sends `plan` in order, `gap` apart, while collecting answers; stops when `end`
    /// passes, when `finished` says so, or when everything sent was answered or has waited
    /// `wait` since the last probe left. `skip` may drop a planned probe just before it
    /// would be sent (e.g. hop limits beyond a destination already reached).
    pub async fn exchange(
        &mut self,
        plan: &[Planned],
        gap: Duration,
        wait: Duration,
        end: Instant,
        mut skip: impl FnMut(&Planned, &Exchanged) -> bool,
        mut finished: impl FnMut(&Exchanged) -> bool,
    ) -> Result<Exchanged, ProbeError> {
        let mut ex = Exchanged::new(plan.len());
        let mut by_id: HashMap<u16, usize> = HashMap::new();
        let mut next = 0usize;
        let mut next_send_at = Instant::now();
        let mut last_send: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if now >= end {
                break;
            }
            if let Some(item) = plan.get(next)
                && now >= next_send_at
            {
                let index = next;
                ex.handled = index + 1;
                if skip(item, &ex) {
                    next = index + 1;
                    continue;
                }
                let paced = self.pacer.as_ref().map_or(Ok(()), |p| p.try_take(now));
                if let Err(slot) = paced {
                    // Not this probe's turn under the shared cap: wait for the slot.
                    ex.handled = index;
                    next_send_at = slot;
                } else {
                    next = index + 1;
                    match self.send(item.hop_limit, item.ext, item.size) {
                        Ok(id) => {
                            if let Some(slot) = ex.ids.get_mut(index) {
                                *slot = Some(id);
                            }
                            by_id.insert(id, index);
                            last_send = Some(now);
                            next_send_at = now + gap;
                        }
                        Err(SendError::Budget) => {
                            ex.budget_spent = true;
                            next = plan.len();
                            ex.handled = next;
                        }
                        Err(SendError::TooBig) => {
                            if let Some(slot) = ex.too_big_locally.get_mut(index) {
                                *slot = true;
                            }
                        }
                        Err(SendError::Failed(e)) if self.packets_sent() == 0 => return Err(e),
                        Err(SendError::Failed(e)) => tracing::debug!(error = %e, "probe lost"),
                    }
                    continue;
                }
            }
            let all_sent = next >= plan.len();
            if finished(&ex) {
                break;
            }
            if all_sent {
                let all_answered = ex
                    .ids
                    .iter()
                    .zip(&ex.answers)
                    .all(|(id, answer)| id.is_none() || answer.is_some());
                if all_answered || last_send.is_none_or(|at| now >= at + wait) {
                    break;
                }
            }
            let wake = if all_sent {
                last_send.map_or(now, |at| at + wait)
            } else {
                next_send_at
            };
            let wake = wake.min(end).min(now + TICK);
            if let Some(answer) = self.next(wake).await?
                && let Some(slot) = by_id.get(&answer.id).and_then(|&i| ex.answers.get_mut(i))
            {
                *slot = Some(answer);
            }
        }
        ex.complete = next >= plan.len() && !ex.budget_spent;
        Ok(ex)
    }
}
