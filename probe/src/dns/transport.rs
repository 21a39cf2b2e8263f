//! One query and its response over UDP or TCP (RFC 1035 4.2, RFC 7766 for TCP).
//!
//! A response counts only if it comes from the server, carries our id, is a response and
//! repeats our question (RFC 5452); anything else is ignored as spoofed or stale, and the
//! wait goes on until the deadline.

use super::wire::{self, DecodeError, Header, Message, Query};
use sixmap_shared::measurement::DnsFailureClass;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

/// Answers kept per response; the shared result type refuses more.
const MAX_ANSWERS: usize = sixmap_shared::measurement::MAX_DNS_ANSWERS;
/// Frames read from one TCP connection before giving up on a server that keeps sending
/// responses to other queries.
const MAX_TCP_FRAMES: usize = 4;
/// Datagrams ignored before giving up: a flood of spoofed answers cannot hold the wait.
const MAX_FOREIGN_DATAGRAMS: usize = 256;

/// Why no usable response came (a measurement outcome, reported in `DnsResult::failure`).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("timeout: no response from {server} before the deadline{}", ignored_note(*.ignored))]
    Timeout { server: SocketAddr, ignored: usize },
    #[error("refused: {server} answered {detail}")]
    Refused { server: SocketAddr, detail: String },
    #[error("unreachable: {server}: {detail}")]
    Unreachable { server: SocketAddr, detail: String },
    #[error("malformed response from {server}: {error}")]
    Malformed {
        server: SocketAddr,
        error: DecodeError,
    },
    #[error("connection to {server} closed before a response")]
    Closed { server: SocketAddr },
    #[error("{server}: sent {ignored} responses that do not answer our query")]
    Flooded { server: SocketAddr, ignored: usize },
    #[error("socket error towards {server}: {error}")]
    Io {
        server: SocketAddr,
        error: io::Error,
    },
    #[error("truncated UDP response; the TCP retry failed: {0}")]
    AfterTruncation(Box<Failure>),
    #[error("malformed response from {server}: it does not answer our query ({reason})")]
    NotOurs {
        server: SocketAddr,
        reason: &'static str,
    },
}

impl Failure {
    /// The class a result records.
    pub fn class(&self) -> DnsFailureClass {
        match self {
            Self::Timeout { .. } => DnsFailureClass::Timeout,
            Self::Refused { .. } => DnsFailureClass::Refused,
            Self::Unreachable { .. } => DnsFailureClass::Unreachable,
            Self::Malformed { .. }
            | Self::Closed { .. }
            | Self::Flooded { .. }
            | Self::NotOurs { .. } => DnsFailureClass::Malformed,
            Self::Io { .. } => DnsFailureClass::Other,
            Self::AfterTruncation(inner) => inner.class(),
        }
    }
}

fn ignored_note(ignored: usize) -> String {
    match ignored {
        0 => String::new(),
        n => format!(" ({n} datagrams ignored as not answering our query)"),
    }
}

/// Sorts a socket error into the outcome it stands for.
fn classify(server: SocketAddr, error: io::Error) -> Failure {
    match error.raw_os_error() {
        Some(libc::ECONNREFUSED) => Failure::Refused {
            server,
            detail: "with a refusal (RST or ICMP port unreachable)".into(),
        },
        Some(
            libc::EHOSTUNREACH
            | libc::ENETUNREACH
            | libc::EACCES
            | libc::EPERM
            | libc::EADDRNOTAVAIL
            | libc::ENONET
            | libc::EHOSTDOWN,
        ) => Failure::Unreachable {
            server,
            detail: error.to_string(),
        },
        _ => Failure::Io { server, error },
    }
}

/// What a received message is to us.
#[derive(Debug)]
enum Verdict {
    Ours(Message),
    Foreign(&'static str),
    Malformed(DecodeError),
}

fn judge(bytes: &[u8], query: &Query) -> Verdict {
    let Ok(header) = Header::parse(bytes) else {
        return Verdict::Foreign("shorter than a DNS header");
    };
    if header.id != query.id {
        return Verdict::Foreign("id differs");
    }
    if !header.is_response() {
        return Verdict::Foreign("not a response");
    }
    // From here the message carries our id from the server: damage is the server's.
    let front = match wire::decode_front(bytes) {
        Ok(front) => front,
        Err(error) => return Verdict::Malformed(error),
    };
    match &front.question {
        Some(q)
            if q.qtype == query.question.qtype
                && q.qclass == query.question.qclass
                && q.name.eq_ignore_case(&query.question.name) => {}
        Some(_) => return Verdict::Foreign("question differs"),
        // Servers may leave the question out of an error (FORMERR, NOTIMP): only then.
        None if header.word & 0x000F != 0 => {}
        None => return Verdict::Foreign("no question"),
    }
    match wire::decode_rest(bytes, front, MAX_ANSWERS) {
        Ok(message) => Verdict::Ours(message),
        Err(error) => Verdict::Malformed(error),
    }
}

fn unspecified(server: SocketAddr) -> SocketAddr {
    match server.ip() {
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
    }
}

/// Sends `query` in one datagram and waits for its response until `deadline`. The socket is
/// connected, so the kernel drops datagrams from elsewhere and reports ICMP errors
/// (port unreachable -> refused).
pub async fn udp(
    server: SocketAddr,
    query: &Query,
    deadline: Instant,
) -> Result<(Vec<u8>, Message), Failure> {
    let io = |error| classify(server, error);
    let socket = UdpSocket::bind(unspecified(server)).await.map_err(io)?;
    socket.connect(server).await.map_err(io)?;
    socket.send(&query.bytes).await.map_err(io)?;
    let mut buffer = vec![0u8; 65_535];
    let mut ignored = 0usize;
    loop {
        let received = tokio::time::timeout_at(deadline, socket.recv_from(&mut buffer)).await;
        let (len, from) = match received {
            Err(_) => return Err(Failure::Timeout { server, ignored }),
            Ok(Err(error)) => return Err(io(error)),
            Ok(Ok(received)) => received,
        };
        let bytes = buffer.get(..len).unwrap_or_default();
        let verdict = if from == server {
            judge(bytes, query)
        } else {
            Verdict::Foreign("from another address")
        };
        match verdict {
            Verdict::Ours(message) => return Ok((bytes.to_vec(), message)),
            Verdict::Malformed(error) => return Err(Failure::Malformed { server, error }),
            Verdict::Foreign(reason) => {
                tracing::debug!(%from, reason, "ignored DNS datagram");
                ignored += 1;
                if ignored >= MAX_FOREIGN_DATAGRAMS {
                    return Err(Failure::Flooded { server, ignored });
                }
            }
        }
    }
}

/// Sends `query` over a new TCP connection (2-byte length framing) and reads its response.
pub async fn tcp(
    server: SocketAddr,
    query: &Query,
    deadline: Instant,
) -> Result<(Vec<u8>, Message), Failure> {
    let timeout = || Failure::Timeout { server, ignored: 0 };
    let exchange = async {
        let stream = TcpStream::connect(server)
            .await
            .map_err(|e| classify(server, e))?;
        framed(stream, server, query).await
    };
    tokio::time::timeout_at(deadline, exchange)
        .await
        .map_err(|_| timeout())?
}

/// The query and its response over an established stream with TCP's 2-byte length framing
/// (plain TCP, or TLS for DoT): the length prefix bounds every read to 64 KiB, and at most
/// [`MAX_TCP_FRAMES`] frames are read. The caller bounds the time.
pub async fn framed<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    server: SocketAddr,
    query: &Query,
) -> Result<(Vec<u8>, Message), Failure> {
    let io = |error| classify(server, error);
    let len = u16::try_from(query.bytes.len()).map_err(|_| Failure::Io {
        server,
        error: io::Error::other("query longer than 65535 bytes"),
    })?;
    let mut frame = len.to_be_bytes().to_vec();
    frame.extend_from_slice(&query.bytes);
    stream.write_all(&frame).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    for _ in 0..MAX_TCP_FRAMES {
        let mut prefix = [0u8; 2];
        read_exact(&mut stream, &mut prefix, server).await?;
        let mut bytes = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        read_exact(&mut stream, &mut bytes, server).await?;
        match judge(&bytes, query) {
            Verdict::Ours(message) => return Ok((bytes, message)),
            Verdict::Malformed(error) => return Err(Failure::Malformed { server, error }),
            Verdict::Foreign(reason) => tracing::debug!(%server, reason, "ignored DNS frame"),
        }
    }
    Err(Failure::Flooded {
        server,
        ignored: MAX_TCP_FRAMES,
    })
}

/// Judges one whole DNS message received outside any framing (a DoH response body): ours,
/// or malformed, since nothing else may share an HTTP response.
pub fn single(bytes: &[u8], server: SocketAddr, query: &Query) -> Result<Message, Failure> {
    match judge(bytes, query) {
        Verdict::Ours(message) => Ok(message),
        Verdict::Malformed(error) => Err(Failure::Malformed { server, error }),
        Verdict::Foreign(reason) => Err(Failure::NotOurs { server, reason }),
    }
}

async fn read_exact<S: AsyncRead + Unpin>(
    stream: &mut S,
    buffer: &mut [u8],
    server: SocketAddr,
) -> Result<(), Failure> {
    match stream.read_exact(buffer).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(Failure::Closed { server }),
        Err(e) => Err(classify(server, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::wire::tests::{question, record, response};

    fn query() -> Query {
        Query::new(0x1234, "dual.lab", 28, true)
    }

    #[test]
    fn judge_ignores_what_does_not_answer_us() {
        let q = query();
        let aaaa = record(
            28,
            0,
            &[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        );
        let good = response(0x1234, 0x8580, &question(28), &[&aaaa]);
        assert!(matches!(judge(&good, &q), Verdict::Ours(m) if m.answers.len() == 1));
        let other_id = response(0x1235, 0x8580, &question(28), &[&aaaa]);
        assert!(matches!(
            judge(&other_id, &q),
            Verdict::Foreign("id differs")
        ));
        let not_response = response(0x1234, 0x0100, &question(28), &[]);
        assert!(matches!(
            judge(&not_response, &q),
            Verdict::Foreign("not a response")
        ));
        let other_type = response(0x1234, 0x8580, &question(1), &[]);
        assert!(matches!(
            judge(&other_type, &q),
            Verdict::Foreign("question differs")
        ));
        assert!(matches!(judge(&good[..5], &q), Verdict::Foreign(_)));
        // Our id and question, then garbage: the server's response is malformed.
        let mut broken = good.clone();
        broken.truncate(good.len() - 3);
        assert!(matches!(judge(&broken, &q), Verdict::Malformed(_)));
        // The question matches whatever the case of the name.
        let mut upper = good.clone();
        upper[13] = b'D';
        assert!(matches!(judge(&upper, &q), Verdict::Ours(_)));
    }

    #[test]
    fn errors_map_to_outcomes() {
        let server: SocketAddr = "[2001:db8::1]:53".parse().unwrap();
        let refused = classify(server, io::Error::from_raw_os_error(libc::ECONNREFUSED));
        assert!(refused.to_string().starts_with("refused"), "{refused}");
        for errno in [libc::EHOSTUNREACH, libc::ENETUNREACH, libc::EACCES] {
            let failure = classify(server, io::Error::from_raw_os_error(errno));
            assert!(failure.to_string().starts_with("unreachable"), "{failure}");
        }
    }

    #[tokio::test]
    async fn silence_and_refusal_are_outcomes() {
        // A bound socket that never answers: timeout at the deadline.
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let server = silent.local_addr().unwrap();
        let deadline = Instant::now() + std::time::Duration::from_millis(200);
        let failure = udp(server, &query(), deadline).await.unwrap_err();
        assert!(matches!(failure, Failure::Timeout { .. }), "{failure}");
        drop(silent);
        // Nothing listens: ICMP port unreachable (UDP) and RST (TCP) both read as refused.
        let deadline = Instant::now() + std::time::Duration::from_secs(2);
        let failure = udp(server, &query(), deadline).await.unwrap_err();
        assert!(matches!(failure, Failure::Refused { .. }), "{failure}");
        let failure = tcp(server, &query(), deadline).await.unwrap_err();
        assert!(matches!(failure, Failure::Refused { .. }), "{failure}");
    }
}
