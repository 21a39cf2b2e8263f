//! The raw sockets of path measurements: one that sends whole IPv6 packets
//! (`IPPROTO_RAW`, header included), and receivers for ICMPv6 and TCP with kernel receive
//! timestamps. All need CAP_NET_RAW. The few syscalls that need `unsafe` are `sock::sys`'s.

use crate::sock::cmsg::{self, Ancillary};
use crate::sock::{set_flag, set_icmp6_filter, sys};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::AsFd;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Room for the answers of a parallel trace arriving together (best effort: the kernel caps
/// it at `net.core.rmem_max`).
const RECEIVE_BUFFER: usize = 1 << 20;

pub const CAP_NET_RAW_REMEDY: &str = "raw IPv6 sockets need CAP_NET_RAW (e.g. `setcap \
    cap_net_raw+ep sixmap-probe`, or `AmbientCapabilities=CAP_NET_RAW` in the systemd unit)";

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("cannot open a raw {what} socket ({source}): {CAP_NET_RAW_REMEDY}")]
    Permission {
        what: &'static str,
        source: io::Error,
    },
    #[error("cannot set up a raw {what} socket: {source}")]
    Setup {
        what: &'static str,
        source: io::Error,
    },
}

fn open(what: &'static str, protocol: libc::c_int) -> Result<Socket, SocketError> {
    let socket =
        Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(protocol))).map_err(|source| {
            match source.raw_os_error() {
                Some(libc::EPERM | libc::EACCES) => SocketError::Permission { what, source },
                _ => SocketError::Setup { what, source },
            }
        })?;
    socket
        .set_nonblocking(true)
        .map_err(|source| SocketError::Setup { what, source })?;
    Ok(socket)
}

/// Sends whole IPv6 packets as built: with `IPPROTO_RAW` the kernel adds no header and
/// changes nothing (flow label, hop limit, extension headers, checksums are ours).
#[derive(Debug)]
pub struct Sender {
    socket: Socket,
}

impl Sender {
    pub fn open() -> Result<Self, SocketError> {
        let what = "IPv6 (IPPROTO_RAW)";
        let socket = open(what, libc::IPPROTO_RAW)?;
        // Size probes by the interface MTU, not by the kernel's path MTU cache: once a Packet
        // Too Big (perhaps provoked by our own probes) lowered the cached MTU, larger probes
        // would fail locally with EMSGSIZE and never test the path again.
        sys::set_option(
            socket.as_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            &libc::IPV6_PMTUDISC_PROBE.to_ne_bytes(),
        )
        .map_err(|source| SocketError::Setup { what, source })?;
        Ok(Self { socket })
    }

    /// Sends one packet to `destination` without waiting. Packets larger than the outgoing
    /// interface's MTU fail with `EMSGSIZE` (the kernel never fragments them).
    pub fn send(&self, packet: &[u8], destination: Ipv6Addr) -> io::Result<()> {
        let to = SockAddr::from(SocketAddrV6::new(destination, 0, 0, 0));
        let written = self.socket.send_to(packet, &to)?;
        if written == packet.len() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "probe sent partially",
            ))
        }
    }
}

/// What a receiver reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// ICMPv6 echo replies and errors (types 1-4, 129), from the ICMPv6 header on.
    Icmpv6,
    /// TCP segments, from the TCP header on.
    Tcp,
}

/// A raw receiving socket registered with tokio; only ever used through `get_ref` (see
/// `sock::sys::register`).
#[derive(Debug)]
pub struct Receiver {
    fd: AsyncFd<Socket>,
}

/// One packet read.
#[derive(Debug)]
pub(crate) struct Received<'a> {
    pub data: &'a [u8],
    pub from: Option<Ipv6Addr>,
    pub ancillary: Ancillary,
}

impl Receiver {
    pub fn open(listen: Listen) -> Result<Self, SocketError> {
        let (what, protocol) = match listen {
            Listen::Icmpv6 => ("ICMPv6", libc::IPPROTO_ICMPV6),
            Listen::Tcp => ("TCP", libc::IPPROTO_TCP),
        };
        let socket = open(what, protocol)?;
        let setup = |source| SocketError::Setup { what, source };
        set_flag(&socket, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS).map_err(setup)?;
        set_flag(&socket, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT).map_err(setup)?;
        if listen == Listen::Icmpv6 {
            set_icmp6_filter(&socket, [1, 2, 3, 4, super::build::ICMPV6_ECHO_REPLY])
                .map_err(setup)?;
        }
        if let Err(e) = socket.set_recv_buffer_size(RECEIVE_BUFFER) {
            tracing::debug!(error = %e, "receive buffer left at its default");
        }
        let fd = sys::register(socket, Interest::READABLE).map_err(setup)?;
        Ok(Self { fd })
    }

    pub async fn readable(&self) -> io::Result<tokio::io::unix::AsyncFdReadyGuard<'_, Socket>> {
        self.fd.readable().await
    }

    /// Reads one packet without waiting (`WouldBlock` when none is queued).
    pub(crate) fn recv<'a>(
        &self,
        data: &'a mut [u8],
        control: &mut [u8],
    ) -> io::Result<Received<'a>> {
        let meta = sys::recv_msg(self.fd.get_ref().as_fd(), data, control, 0)?;
        let data: &'a [u8] = data;
        Ok(Received {
            data: data.get(..meta.len).unwrap_or(data),
            // An IPv6 raw socket only receives from IPv6 sources.
            from: meta.from.and_then(|from| match from {
                std::net::IpAddr::V6(v6) => Some(v6),
                std::net::IpAddr::V4(_) => None,
            }),
            ancillary: cmsg::parse(control.get(..meta.control_len).unwrap_or_default()),
        })
    }
}
