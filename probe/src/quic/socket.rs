//! The UDP socket under the QUIC endpoint, watched for what the handshake alone cannot tell:
//! whether anything came back at all, and whether an ICMP error said the port or host is
//! unreachable.
//!
//! The socket is connected to the server, so the kernel reports hard ICMP errors (port
//! unreachable, administratively prohibited) on it. quinn's socket layer drops receive
//! errors, and tokio does not wake readers for an error alone, so a duplicate of the
//! descriptor waits for error readiness and takes the error (`SO_ERROR`) itself.

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::io::Interest;

/// A UDP socket connected to `server`, and a duplicate for watching its errors.
pub fn open(server: SocketAddr) -> io::Result<(std::net::UdpSocket, tokio::net::UdpSocket)> {
    let local: SocketAddr = match server.ip() {
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
    };
    let socket = std::net::UdpSocket::bind(local)?;
    socket.connect(server)?;
    socket.set_nonblocking(true)?;
    let watch = tokio::net::UdpSocket::from_std(socket.try_clone()?)?;
    Ok((socket, watch))
}

/// Waits for an error on the socket (an ICMP error the kernel turned into `SO_ERROR`).
pub async fn error(watch: &tokio::net::UdpSocket) -> io::Error {
    loop {
        if let Err(e) = watch.ready(Interest::ERROR).await {
            return e;
        }
        match watch.take_error() {
            Ok(Some(e)) | Err(e) => return e,
            // Spurious readiness: clear it and wait again.
            Ok(None) => {
                let _ = watch.try_io(Interest::ERROR, || {
                    Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock))
                });
            }
        }
    }
}

/// What an ICMP error turned socket error means.
pub fn describe(error: &io::Error) -> String {
    let what = match error.raw_os_error() {
        Some(libc::ECONNREFUSED) => "ICMP destination unreachable: port unreachable",
        Some(libc::EACCES) => "ICMP destination unreachable: administratively prohibited",
        Some(libc::EHOSTUNREACH) => "ICMP destination unreachable: host unreachable",
        Some(libc::ENETUNREACH) => "ICMP destination unreachable: no route",
        _ => return format!("UDP socket error: {error}"),
    };
    format!("{what} ({error})")
}

/// quinn's own socket, counting the datagrams received.
pub struct Counting {
    inner: Arc<dyn AsyncUdpSocket>,
    received: Arc<AtomicU64>,
}

impl Counting {
    pub fn new(inner: Arc<dyn AsyncUdpSocket>) -> (Arc<Self>, Arc<AtomicU64>) {
        let received = Arc::new(AtomicU64::new(0));
        let socket = Arc::new(Self {
            inner,
            received: Arc::clone(&received),
        });
        (socket, received)
    }
}

impl fmt::Debug for Counting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counting")
            .field("received", &self.received.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl AsyncUdpSocket for Counting {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Arc::clone(&self.inner).create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.inner.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let polled = self.inner.poll_recv(cx, bufs, meta);
        if let Poll::Ready(Ok(messages)) = &polled {
            self.received.fetch_add(*messages as u64, Ordering::Relaxed);
        }
        polled
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_closed_port_is_reported_by_icmp() {
        // Nothing listens on this port once the probe socket is gone.
        let port = std::net::UdpSocket::bind("[::1]:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (socket, watch) = open((Ipv6Addr::LOCALHOST, port).into()).unwrap();
        socket.send(b"hello").unwrap();
        let e = tokio::time::timeout(Duration::from_secs(2), error(&watch))
            .await
            .expect("an ICMP port unreachable within 2 s");
        assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED));
        assert!(describe(&e).contains("port unreachable"));
    }
}
