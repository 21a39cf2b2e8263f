//! ICMPv6 and ICMP (v4) echo ("ping") over real sockets (Linux).
//!
//! Each measurement opens its own socket: an unprivileged ICMP datagram socket when the
//! process group is inside `net.ipv4.ping_group_range`, else a raw socket (CAP_NET_RAW).
//! Requests carry a random per-measurement cookie, so replies to other pings on the host and
//! late replies to earlier measurements are never counted. Receive times come from the
//! kernel (`SO_TIMESTAMPNS`) when it provides them, so scheduling delays of the probe do not
//! inflate round-trip times.

mod packet;
pub(crate) mod socket;

use crate::clock::SentAt;
use crate::sock::cmsg;
use packet::{Icmp, Ignored, Incoming, Matcher};
use sixmap_shared::{IcmpError, IcmpSocketKind, PingReply, PingResult, PingSpec, TimestampSource};
use socket::{ConnectError, IcmpSocket, Message, Queue};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::str::FromStr;
use std::time::Duration;
use tokio::io::unix::AsyncFdReadyGuard;
use tokio::time::Instant;

/// Which ICMP socket kind to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SocketPreference {
    /// Datagram if the sysctl allows it, else raw.
    #[default]
    Auto,
    Datagram,
    Raw,
}

impl SocketPreference {
    fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Datagram => "datagram",
            Self::Raw => "raw",
        }
    }
}

impl fmt::Display for SocketPreference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown ICMP socket kind {0:?}: expected one of \"auto\", \"datagram\", \"raw\"")]
pub struct ParseSocketPreferenceError(String);

impl FromStr for SocketPreference {
    type Err = ParseSocketPreferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Auto, Self::Datagram, Self::Raw]
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| ParseSocketPreferenceError(s.to_owned()))
    }
}

const DATAGRAM_REMEDY: &str = "to allow unprivileged datagram ICMP sockets, put the probe's \
    group inside the sysctl `net.ipv4.ping_group_range` (e.g. \
    `sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"`)";
const RAW_REMEDY: &str = "to allow raw sockets, grant CAP_NET_RAW (e.g. \
    `setcap cap_net_raw+ep sixmap-probe`, or `AmbientCapabilities=CAP_NET_RAW` in the \
    systemd unit)";

fn remedy(kind: &IcmpSocketKind) -> &'static str {
    match kind {
        IcmpSocketKind::Datagram => DATAGRAM_REMEDY,
        IcmpSocketKind::Raw => RAW_REMEDY,
    }
}

fn kind_name(kind: &IcmpSocketKind) -> &'static str {
    match kind {
        IcmpSocketKind::Datagram => "datagram",
        IcmpSocketKind::Raw => "raw",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PingError {
    /// Neither socket kind could be opened.
    #[error(
        "cannot open an ICMP socket: datagram socket failed ({datagram}): {}; \
         raw socket failed ({raw}): {}",
        DATAGRAM_REMEDY,
        RAW_REMEDY
    )]
    NoSocket { datagram: io::Error, raw: io::Error },
    /// The requested socket kind could not be opened.
    #[error("cannot open a {} ICMP socket ({source}): {}", kind_name(.kind), remedy(.kind))]
    Socket {
        kind: IcmpSocketKind,
        source: io::Error,
    },
    /// Sending failed before any request left (e.g. no route: `ENETUNREACH`).
    #[error("cannot send ICMP echo requests: {0}")]
    Send(io::Error),
    /// Any other failure of the socket (registering it with tokio, receiving).
    #[error("ICMP socket error: {0}")]
    Io(io::Error),
}

/// Bytes for one received datagram: a reply to our largest request, or an error quoting as
/// much as ICMPv6 allows (1280 bytes in all), fits.
const DATA_BUFFER_LEN: usize = 2048;
/// Room for hop limit, timestamp and extended error messages with generous slack.
const CONTROL_BUFFER_LEN: usize = 512;
/// Datagrams read per wake-up before the deadline and send schedule are looked at again, so
/// a flood cannot hold the loop.
const RECV_BUDGET: usize = 64;
/// Plausibility bounds per request sent; the error bound is the one `PingResult::validate`
/// enforces.
const ERRORS_PER_REQUEST: usize = 4;
const DUPLICATES_PER_REQUEST: usize = 3;

/// Sends `spec.count()` echo requests to `destination`, `spec.interval()` apart, each with
/// `spec.payload_size()` payload bytes, and collects replies until all are answered or
/// `deadline` (measured from the start) elapses. The destination's family decides between
/// ICMPv6 and ICMP.
pub async fn ping(
    destination: impl Into<IpAddr>,
    spec: &PingSpec,
    deadline: Duration,
    preference: SocketPreference,
) -> Result<PingResult, PingError> {
    let destination = destination.into();
    let start = Instant::now();
    let end = start
        .checked_add(deadline)
        .ok_or_else(|| PingError::Io(io::Error::from(io::ErrorKind::InvalidInput)))?;
    let (cookie, identifier) = random_marker()?;
    let socket = open_socket(destination, preference)?;
    let kind = socket.kind();
    let exchange = Exchange {
        socket: &socket,
        matcher: Matcher {
            cookie,
            identifier: (kind == IcmpSocketKind::Raw).then_some(identifier),
            destination,
        },
        identifier,
        payload_size: usize::from(spec.payload_size()),
    };
    let session = exchange.run(spec, start, end).await?;
    let result = session.finish(kind);
    result.validate().map_err(|e| {
        PingError::Io(io::Error::other(format!(
            "ping produced an invalid result: {e}"
        )))
    })?;
    Ok(result)
}

/// The source address the kernel would use towards `destination`. Connecting a UDP socket
/// runs route and source selection without sending anything.
pub fn source_address_for(destination: Ipv6Addr) -> io::Result<Ipv6Addr> {
    let socket = UdpSocket::bind(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0))?;
    // The port is never used; 9 (discard) because some kernels refuse port 0.
    socket.connect(SocketAddrV6::new(destination, 9, 0, 0))?;
    match socket.local_addr()? {
        SocketAddr::V6(local) => Ok(*local.ip()),
        SocketAddr::V4(local) => Err(io::Error::other(format!(
            "kernel chose IPv4 source {local} for {destination}"
        ))),
    }
}

/// The per-measurement cookie and the echo identifier for raw sockets.
fn random_marker() -> Result<([u8; packet::COOKIE_LEN], u16), PingError> {
    let mut bytes = [0u8; packet::COOKIE_LEN + 2];
    getrandom::fill(&mut bytes).map_err(|e| PingError::Io(io::Error::other(e.to_string())))?;
    let (cookie, identifier) = bytes.split_at(packet::COOKIE_LEN);
    let invalid = |_| PingError::Io(io::Error::other("random marker has the wrong size"));
    Ok((
        cookie.try_into().map_err(invalid)?,
        u16::from_ne_bytes(identifier.try_into().map_err(invalid)?),
    ))
}

fn open_socket(destination: IpAddr, preference: SocketPreference) -> Result<IcmpSocket, PingError> {
    use IcmpSocketKind::{Datagram, Raw};
    let icmp = Icmp::of(destination);
    let opened = |kind| socket::open(kind, icmp).map(|socket| (socket, kind));
    let (socket, kind) = match preference {
        SocketPreference::Auto => opened(Datagram).or_else(|datagram| {
            tracing::debug!(%datagram, "no datagram ICMP socket, trying a raw one");
            opened(Raw).map_err(|raw| PingError::NoSocket { datagram, raw })
        })?,
        SocketPreference::Datagram => opened(Datagram).map_err(|source| PingError::Socket {
            kind: Datagram,
            source,
        })?,
        SocketPreference::Raw => {
            opened(Raw).map_err(|source| PingError::Socket { kind: Raw, source })?
        }
    };
    IcmpSocket::new(socket, kind, destination).map_err(|e| match e {
        ConnectError::Connect(e) => PingError::Send(e),
        ConnectError::Register(e) => PingError::Io(e),
    })
}

/// Errors the kernel maps ICMPv6 errors to. A socket that has one pending reports it on the
/// next send or receive; the ICMPv6 message itself is read from the error queue, so these
/// say "retry", not "fail".
fn is_reported_icmp_error(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(
            libc::ENETUNREACH
                | libc::EHOSTUNREACH
                | libc::EACCES
                | libc::ECONNREFUSED
                | libc::EMSGSIZE
                | libc::EPROTO
        )
    )
}

/// One measurement on an open socket.
#[derive(Debug)]
struct Exchange<'a> {
    socket: &'a IcmpSocket,
    matcher: Matcher,
    identifier: u16,
    payload_size: usize,
}

impl Exchange<'_> {
    /// Sends on schedule and reads whatever arrives until every request sent is answered or
    /// `end` passes.
    async fn run(
        &self,
        spec: &PingSpec,
        start: Instant,
        end: Instant,
    ) -> Result<Session, PingError> {
        let mut session = Session::new(spec.count());
        let mut attempts = 0u16;
        let mut data = vec![0u8; DATA_BUFFER_LEN];
        let mut control = vec![0u8; CONTROL_BUFFER_LEN];
        loop {
            let now = Instant::now();
            if now >= end {
                return Ok(session);
            }
            let next_send = (attempts < spec.count())
                .then(|| spec.interval().checked_mul(u32::from(attempts)))
                .flatten()
                .and_then(|offset| start.checked_add(offset));
            if let Some(at) = next_send
                && now >= at
            {
                self.send_next(&mut session)?;
                attempts += 1;
                continue;
            }
            if next_send.is_none() && session.all_answered() {
                return Ok(session);
            }
            let wake = next_send.map_or(end, |at| at.min(end));
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                guard = self.socket.ready() => {
                    let guard = guard.map_err(PingError::Io)?;
                    self.read_ready(guard, &mut session, &mut data, &mut control)?;
                }
            }
        }
    }

    /// Sends the next request. Only a failure of the very first one fails the measurement:
    /// later ones are simply not counted as sent, so sequence numbers stay contiguous.
    fn send_next(&self, session: &mut Session) -> Result<(), PingError> {
        let sequence = session.sent();
        let packet = packet::echo_request(
            Icmp::of(self.matcher.destination),
            self.identifier,
            sequence,
            &self.matcher.cookie,
            self.payload_size,
        );
        let attempt = || {
            let at = SentAt::now();
            self.socket.send(&packet).map(|()| at)
        };
        let result = match attempt() {
            // A pending ICMPv6 error was reported instead of sending: send again.
            Err(e) if is_reported_icmp_error(&e) && session.sent() > 0 => attempt(),
            other => other,
        };
        match result {
            Ok(at) => session.record_sent(at),
            Err(e) if session.sent() == 0 => return Err(PingError::Send(e)),
            Err(e) => tracing::debug!(sequence, error = %e, "echo request not sent"),
        }
        Ok(())
    }

    /// Reads the queues the readiness may stand for until they are empty (then the readiness
    /// is cleared) or the budget is spent (then it is kept, and the next turn reads on).
    fn read_ready(
        &self,
        mut guard: AsyncFdReadyGuard<'_, socket2::Socket>,
        session: &mut Session,
        data: &mut [u8],
        control: &mut [u8],
    ) -> Result<(), PingError> {
        // Error queue first: draining it also clears the socket's pending error.
        let queues: &[Queue] = match self.socket.kind() {
            IcmpSocketKind::Datagram => &[Queue::Errors, Queue::Normal],
            IcmpSocketKind::Raw => &[Queue::Normal],
        };
        let mut budget = RECV_BUDGET;
        for &queue in queues {
            loop {
                let Some(left) = budget.checked_sub(1) else {
                    return Ok(());
                };
                budget = left;
                match self.socket.recv(data, control, queue) {
                    Ok(message) => self.handle(session, queue, &message),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if is_reported_icmp_error(&e) => {
                        tracing::debug!(error = %e, "pending ICMPv6 error reported on receive");
                    }
                    Err(e) => return Err(PingError::Io(e)),
                }
            }
        }
        guard.clear_ready();
        Ok(())
    }

    fn handle(&self, session: &mut Session, queue: Queue, message: &Message<'_>) {
        let answer = match queue {
            Queue::Normal => packet::classify(message.payload, &self.matcher)
                .map(|incoming| (incoming, message.from)),
            Queue::Errors => queued_error(message, &self.matcher),
        };
        match answer {
            Ok((Incoming::Reply { sequence }, Some(from))) => {
                session.record_reply(sequence, from, &message.ancillary, Instant::now());
            }
            Ok((error @ Incoming::Error { .. }, Some(from))) => session.record_error(error, from),
            Ok((_, None)) => tracing::debug!("ignored ICMP answer without a source address"),
            Err(reason) => {
                tracing::debug!(%reason, from = ?message.from, ?queue, "ignored ICMP packet");
            }
        }
    }
}

/// An error-queue entry of a datagram socket: the ICMPv6 error is described by the extended
/// error control message, and the payload is the echo request it quotes.
fn queued_error(
    message: &Message<'_>,
    matcher: &Matcher,
) -> Result<(Incoming, Option<IpAddr>), Ignored> {
    let error = message
        .ancillary
        .extended_error
        .ok_or(Ignored::Truncated("extended error"))?;
    let icmp = Icmp::of(matcher.destination);
    let origin = match icmp {
        Icmp::V6 => cmsg::ORIGIN_ICMP6,
        Icmp::V4 => cmsg::ORIGIN_ICMP,
    };
    if error.origin != origin {
        return Err(Ignored::NotOurs("queued error did not come from ICMP"));
    }
    if !icmp.is_error(error.icmp_type) {
        return Err(Ignored::UnexpectedType(error.icmp_type));
    }
    let sequence = packet::quoted_echo(message.payload, matcher)?;
    let incoming = Incoming::Error {
        sequence,
        icmp_type: error.icmp_type,
        icmp_code: error.icmp_code,
        mtu: icmp.mtu(error.icmp_type, error.icmp_code, error.info),
    };
    Ok((incoming, error.offender))
}

#[derive(Debug)]
struct Request {
    sent_at: SentAt,
    answered: bool,
}

#[derive(Debug)]
struct Answer {
    sequence: u16,
    from: IpAddr,
    hop_limit: Option<u8>,
    duplicate: bool,
    kernel_rtt_ns: Option<u64>,
    userspace_rtt_ns: u64,
}

/// What one measurement sent and received; turns into the domain result.
#[derive(Debug)]
struct Session {
    /// Indexed by sequence number.
    requests: Vec<Request>,
    answers: Vec<Answer>,
    duplicates: usize,
    errors: Vec<IcmpError>,
}

impl Session {
    fn new(count: u16) -> Self {
        Self {
            requests: Vec::with_capacity(usize::from(count)),
            answers: Vec::new(),
            duplicates: 0,
            errors: Vec::new(),
        }
    }

    /// Requests sent so far, which is also the next sequence number.
    fn sent(&self) -> u16 {
        u16::try_from(self.requests.len()).unwrap_or(u16::MAX)
    }

    fn record_sent(&mut self, sent_at: SentAt) {
        self.requests.push(Request {
            sent_at,
            answered: false,
        });
    }

    fn all_answered(&self) -> bool {
        self.requests.iter().all(|r| r.answered)
    }

    fn record_reply(
        &mut self,
        sequence: u16,
        from: IpAddr,
        ancillary: &cmsg::Ancillary,
        now: Instant,
    ) {
        let duplicate_limit = DUPLICATES_PER_REQUEST * self.requests.len();
        let Some(request) = self.requests.get_mut(usize::from(sequence)) else {
            tracing::debug!(sequence, %from, "ignored reply to a request never sent");
            return;
        };
        let duplicate = request.answered;
        if duplicate && self.duplicates >= duplicate_limit {
            tracing::debug!(sequence, %from, "ignored duplicate beyond the limit");
            return;
        }
        request.answered = true;
        self.duplicates += usize::from(duplicate);
        let sent_at = request.sent_at;
        // Clock steps can make the kernel difference negative or zero: then it is unusable.
        let kernel_rtt_ns = sent_at
            .kernel_rtt(ancillary.received_at)
            .and_then(|rtt| u64::try_from(rtt.as_nanos()).ok());
        let userspace_rtt = now.saturating_duration_since(sent_at.monotonic);
        self.answers.push(Answer {
            sequence,
            from,
            hop_limit: ancillary.hop_limit,
            duplicate,
            kernel_rtt_ns,
            userspace_rtt_ns: u64::try_from(userspace_rtt.as_nanos()).unwrap_or(u64::MAX),
        });
    }

    fn record_error(&mut self, error: Incoming, from: IpAddr) {
        let Incoming::Error {
            sequence,
            icmp_type,
            icmp_code,
            mtu,
        } = error
        else {
            return;
        };
        if usize::from(sequence) >= self.requests.len() {
            tracing::debug!(sequence, %from, "ignored ICMP error about a request never sent");
            return;
        }
        if self.errors.len() >= ERRORS_PER_REQUEST * self.requests.len() {
            tracing::debug!(sequence, %from, icmp_type, "ignored ICMP error beyond the limit");
            return;
        }
        self.errors.push(IcmpError {
            icmp_type,
            icmp_code,
            from,
            mtu,
        });
    }

    /// The domain result. Kernel timestamps are reported only if every reply had one, so a
    /// result never mixes clocks.
    fn finish(self, socket_kind: IcmpSocketKind) -> PingResult {
        let kernel = self.answers.iter().all(|a| a.kernel_rtt_ns.is_some());
        let received = self.requests.iter().filter(|r| r.answered).count();
        PingResult {
            sent: u16::try_from(self.requests.len()).unwrap_or(u16::MAX),
            received: u16::try_from(received).unwrap_or(u16::MAX),
            replies: self
                .answers
                .into_iter()
                .map(|a| PingReply {
                    sequence: a.sequence,
                    rtt_ns: match (kernel, a.kernel_rtt_ns) {
                        (true, Some(ns)) => ns,
                        _ => a.userspace_rtt_ns,
                    },
                    hop_limit: a.hop_limit,
                    duplicate: a.duplicate,
                    from: a.from,
                })
                .collect(),
            timestamp_source: if kernel {
                TimestampSource::Kernel
            } else {
                TimestampSource::Userspace
            },
            socket_kind,
            errors: self.errors,
        }
    }
}

#[cfg(test)]
mod tests;
