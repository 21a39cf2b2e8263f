//! Connection limits of the gRPC port, applied around the TLS acceptor (`pki::tls_incoming`).
//!
//! - Per source (IPv4 address, IPv6 /64): connections still in their TLS handshake or
//!   without a client certificate count against `grpc_max_connections_per_source`; a source
//!   over it has further connections closed at once. Enrolled probes (a certificate of our
//!   CA) are not counted there: they are identified, one connection each, and revocable.
//! - In total: at most `grpc_max_connections` established connections, of which the last
//!   `grpc_reserved_connections` take only connections with a client certificate, so
//!   enrolled probes still get in when anonymous clients have filled their share.
//! - Per source, at most `grpc_handshakes_per_source_per_s` TLS handshakes per second after
//!   a burst of `grpc_max_connections_per_source`: a client that connects, handshakes and
//!   leaves in a loop costs the collector a handshake's CPU (signature, key exchange) each
//!   time, and the concurrency caps alone do not bound that rate.
//! - A connection without a client certificate must start a call (enrollment, a campaign or
//!   query call) within `grpc_anonymous_request_timeout_s` of its handshake, or it is closed:
//!   an idle TLS connection (no HTTP/2 preface, or a preface and no request) holds nothing
//!   for long. A request seen by [`RequestSeen`] disarms the deadline.

use super::sources::{PerSource, PerSourceRate, SourceSlot};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Shared state of the gRPC port's limits.
#[derive(Debug, Clone)]
pub struct GrpcGate {
    per_source: PerSource,
    handshakes: PerSourceRate,
    max: usize,
    anonymous_max: usize,
    open: Arc<AtomicUsize>,
    open_anonymous: Arc<AtomicUsize>,
    anonymous_request_timeout: Duration,
    connections: Arc<Mutex<HashMap<SocketAddr, Arc<ConnState>>>>,
}

#[derive(Debug, Default)]
struct ConnState {
    requested: AtomicBool,
}

/// Why a connection was closed by the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    PerSource,
    /// The source started more handshakes than `grpc_handshakes_per_source_per_s`.
    HandshakeRate,
    Full,
    AnonymousShareFull,
}

/// One held count of `open` (and of `open_anonymous` when anonymous); released on drop.
#[derive(Debug)]
struct Counted {
    open: Arc<AtomicUsize>,
    anonymous: Option<Arc<AtomicUsize>>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        if let Some(a) = &self.anonymous {
            a.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

fn take(counter: &AtomicUsize, max: usize) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

impl GrpcGate {
    pub fn new(limits: &crate::limits::Limits) -> Self {
        Self {
            per_source: PerSource::new(
                limits.grpc_max_connections_per_source,
                &limits.source_exempt,
            ),
            handshakes: PerSourceRate::new(
                limits.grpc_handshakes_per_source_per_s,
                limits.grpc_max_connections_per_source,
                &limits.source_exempt,
            ),
            max: limits.grpc_max_connections,
            anonymous_max: limits.grpc_max_connections - limits.grpc_reserved_connections,
            open: Arc::default(),
            open_anonymous: Arc::default(),
            anonymous_request_timeout: limits.grpc_anonymous_request_timeout,
            connections: Arc::default(),
        }
    }

    /// Established connections now, and those of them without a client certificate.
    pub fn open(&self) -> (usize, usize) {
        (
            self.open.load(Ordering::Acquire),
            self.open_anonymous.load(Ordering::Acquire),
        )
    }

    /// A freshly accepted connection, before its handshake: counted against its source.
    pub fn admit(&self, stream: TcpStream, peer: SocketAddr) -> Result<Guarded, Refusal> {
        if !self.handshakes.allow(peer.ip(), std::time::Instant::now()) {
            return Err(Refusal::HandshakeRate);
        }
        let slot = self
            .per_source
            .try_take(peer.ip())
            .ok_or(Refusal::PerSource)?;
        let state = Arc::new(ConnState::default());
        if let Ok(mut map) = self.connections.lock() {
            map.insert(peer, state.clone());
        }
        Ok(Guarded {
            inner: stream,
            peer,
            state,
            deadline: None,
            source: Some(slot),
            counted: None,
            gate: self.clone(),
        })
    }

    /// After the handshake: certified connections need a place in the total, anonymous ones
    /// in the anonymous share, and get the deadline for their first call.
    pub fn established(&self, conn: &mut Guarded, certified: bool) -> Result<(), Refusal> {
        if !take(&self.open, self.max) {
            return Err(Refusal::Full);
        }
        let open = self.open.clone();
        if certified {
            conn.counted = Some(Counted {
                open,
                anonymous: None,
            });
            // Identified: no longer counted against the source.
            conn.source = None;
            return Ok(());
        }
        if !take(&self.open_anonymous, self.anonymous_max) {
            open.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::AnonymousShareFull);
        }
        conn.counted = Some(Counted {
            open,
            anonymous: Some(self.open_anonymous.clone()),
        });
        if !conn.state.requested.load(Ordering::Acquire) {
            conn.deadline = Some(Box::pin(tokio::time::sleep(self.anonymous_request_timeout)));
        }
        Ok(())
    }

    /// The interceptor that marks a connection as having made a call.
    pub fn request_seen(&self) -> RequestSeen {
        RequestSeen {
            connections: self.connections.clone(),
        }
    }
}

/// A tonic interceptor (on every service of the gRPC port) that disarms the first-call
/// deadline of the caller's connection.
#[derive(Debug, Clone)]
pub struct RequestSeen {
    connections: Arc<Mutex<HashMap<SocketAddr, Arc<ConnState>>>>,
}

impl tonic::service::Interceptor for RequestSeen {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(peer) = request.remote_addr()
            && let Some(state) = self
                .connections
                .lock()
                .ok()
                .and_then(|m| m.get(&peer).cloned())
        {
            state.requested.store(true, Ordering::Release);
        }
        Ok(request)
    }
}

/// The TCP stream of a gRPC connection with its counts, and the first-call deadline of an
/// anonymous connection: once it passes without a call, reads fail and the connection ends.
#[derive(Debug)]
pub struct Guarded {
    inner: TcpStream,
    peer: SocketAddr,
    state: Arc<ConnState>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    source: Option<SourceSlot>,
    counted: Option<Counted>,
    gate: GrpcGate,
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Ok(mut map) = self.gate.connections.lock()
            && map
                .get(&self.peer)
                .is_some_and(|s| Arc::ptr_eq(s, &self.state))
        {
            map.remove(&self.peer);
        }
    }
}

impl Guarded {
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.inner
    }

    fn check_deadline(&mut self, cx: &mut Context<'_>) -> std::io::Result<()> {
        let Some(deadline) = self.deadline.as_mut() else {
            return Ok(());
        };
        if self.state.requested.load(Ordering::Acquire) {
            self.deadline = None;
            return Ok(());
        }
        if deadline.as_mut().poll(cx).is_ready() {
            tracing::debug!(peer = %self.peer, "anonymous gRPC connection made no call in time; closing");
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no call on an anonymous connection before the deadline",
            ));
        }
        Ok(())
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        // Checked before reading too, so that a client trickling bytes (pings, settings)
        // without ever calling is cut off as well.
        self.check_deadline(cx)?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Guarded {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}
