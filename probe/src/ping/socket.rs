//! An ICMPv6 or ICMP (v4) socket of either kind, nonblocking and registered with tokio.

use super::packet::{self, ECHO_REPLY, ECHO_REPLY_V4, ERROR_TYPES, ERROR_TYPES_V4, Icmp};
use crate::sock::cmsg::{self, Ancillary};
use crate::sock::{set_flag, set_icmp6_filter, sys};
use sixmap_shared::IcmpSocketKind;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use tokio::io::Interest;
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};

/// `ICMP_FILTER` at level `SOL_RAW` (`<linux/icmp.h>`): a 32-bit mask of ICMP types to drop.
const ICMP_FILTER: libc::c_int = 1;
const SOL_RAW: libc::c_int = 255;

/// Readiness we wait for: datagram sockets report ICMPv6 errors through the error queue,
/// which signals EPOLLERR, not EPOLLIN.
const INTEREST: Interest = Interest::READABLE.add(Interest::ERROR);

/// Which queue of the socket to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Queue {
    Normal,
    Errors,
}

/// One datagram read from the socket.
#[derive(Debug)]
pub(super) struct Message<'a> {
    /// Starts at the ICMP header (error queue: at the quoted echo request).
    pub payload: &'a [u8],
    pub from: Option<IpAddr>,
    pub ancillary: Ancillary,
}

#[derive(Debug)]
pub(super) struct IcmpSocket {
    /// Only ever used through `get_ref` (see `sys::register`).
    fd: AsyncFd<Socket>,
    kind: IcmpSocketKind,
    icmp: Icmp,
    destination: SockAddr,
}

/// Opens and configures a socket of `kind`; any failure here means "this kind is not
/// available", which is what decides the fallback from datagram to raw.
pub(super) fn open(kind: IcmpSocketKind, icmp: Icmp) -> io::Result<Socket> {
    let ty = match kind {
        IcmpSocketKind::Datagram => Type::DGRAM,
        IcmpSocketKind::Raw => Type::RAW,
    };
    // socket2 sets close-on-exec.
    let socket = match icmp {
        Icmp::V6 => Socket::new(Domain::IPV6, ty, Some(Protocol::ICMPV6))?,
        Icmp::V4 => Socket::new(Domain::IPV4, ty, Some(Protocol::ICMPV4))?,
    };
    socket.set_nonblocking(true)?;
    // Kernel receive timestamps when offered; without them RTTs come from the probe's own
    // clock and the result says so (`timestamp_source`). Every Linux offers them, but
    // qemu-user (used to test the Raspberry Pi builds) refuses this option.
    if let Err(e) = set_flag(&socket, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS) {
        tracing::debug!(error = %e, "no kernel receive timestamps; using the probe's clock");
    }
    match icmp {
        Icmp::V6 => set_flag(&socket, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT)?,
        Icmp::V4 => set_flag(&socket, libc::IPPROTO_IP, libc::IP_RECVTTL)?,
    }
    match (kind, icmp) {
        (IcmpSocketKind::Datagram, Icmp::V6) => {
            set_flag(&socket, libc::IPPROTO_IPV6, libc::IPV6_RECVERR)?;
        }
        (IcmpSocketKind::Datagram, Icmp::V4) => {
            set_flag(&socket, libc::IPPROTO_IP, libc::IP_RECVERR)?;
        }
        (IcmpSocketKind::Raw, Icmp::V6) => {
            set_icmp6_filter(&socket, ERROR_TYPES.chain([ECHO_REPLY]))?;
        }
        (IcmpSocketKind::Raw, Icmp::V4) => {
            let filter = icmp_filter(ERROR_TYPES_V4.into_iter().chain([ECHO_REPLY_V4]));
            sys::set_option(socket.as_fd(), SOL_RAW, ICMP_FILTER, &filter.to_ne_bytes())?;
        }
    }
    Ok(socket)
}

/// The `struct icmp_filter` mask that passes only `types` (a set bit drops the type), so a
/// raw ICMP socket is not woken by every echo request and redirect the host sees.
fn icmp_filter(types: impl IntoIterator<Item = u8>) -> u32 {
    types
        .into_iter()
        .filter(|kind| *kind < 32)
        .fold(u32::MAX, |mask, kind| mask & !(1u32 << kind))
}

impl IcmpSocket {
    /// Registers an opened socket with tokio. A datagram socket is connected, so the kernel
    /// addresses our requests and reports errors for them. A raw socket stays unconnected:
    /// connected raw ICMPv6 sockets only receive packets *from* the destination, which would
    /// drop the errors routers on the path send us (and hard errors would fail later calls).
    ///
    /// Connecting fails like a send would (e.g. `ENETUNREACH`), so the error says so.
    pub(super) fn new(
        socket: Socket,
        kind: IcmpSocketKind,
        destination: IpAddr,
    ) -> Result<Self, ConnectError> {
        let icmp = Icmp::of(destination);
        let destination = SockAddr::from(SocketAddr::new(destination, 0));
        if kind == IcmpSocketKind::Datagram {
            socket
                .connect(&destination)
                .map_err(ConnectError::Connect)?;
        }
        let fd = sys::register(socket, INTEREST).map_err(ConnectError::Register)?;
        Ok(Self {
            fd,
            kind,
            icmp,
            destination,
        })
    }

    pub(super) fn kind(&self) -> IcmpSocketKind {
        self.kind
    }

    pub(super) async fn ready(&self) -> io::Result<AsyncFdReadyGuard<'_, Socket>> {
        self.fd.ready(INTEREST).await
    }

    /// Sends one packet without waiting; a full send buffer is reported as `WouldBlock`.
    pub(super) fn send(&self, packet: &[u8]) -> io::Result<()> {
        let socket = self.fd.get_ref();
        let written = match self.kind {
            IcmpSocketKind::Datagram => socket.send(packet)?,
            IcmpSocketKind::Raw => socket.send_to(packet, &self.destination)?,
        };
        if written == packet.len() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "echo request sent partially",
            ))
        }
    }

    /// Reads one datagram without waiting.
    pub(super) fn recv<'a>(
        &self,
        data: &'a mut [u8],
        control: &mut [u8],
        queue: Queue,
    ) -> io::Result<Message<'a>> {
        let flags = match queue {
            Queue::Normal => 0,
            Queue::Errors => libc::MSG_ERRQUEUE,
        };
        let meta = sys::recv_msg(self.fd.get_ref().as_fd(), data, control, flags)?;
        if meta.flags & libc::MSG_CTRUNC != 0 {
            tracing::debug!("ICMPv6 control messages truncated");
        }
        let data: &'a [u8] = data;
        let mut payload = data.get(..meta.len).unwrap_or(data);
        // Raw IPv4 sockets deliver the IP header too (raw IPv6 ones never do); an implausible
        // one leaves nothing to match.
        if self.kind == IcmpSocketKind::Raw && self.icmp == Icmp::V4 && queue == Queue::Normal {
            payload = packet::strip_ipv4_header(payload).unwrap_or_default();
        }
        Ok(Message {
            payload,
            from: meta.from,
            ancillary: cmsg::parse(control.get(..meta.control_len).unwrap_or_default()),
        })
    }
}

/// Why [`IcmpSocket::new`] failed.
#[derive(Debug)]
pub(super) enum ConnectError {
    Connect(io::Error),
    Register(io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(filter: &[u8; 32], kind: u8) -> bool {
        let word = usize::from(kind >> 5) * 4;
        let word = u32::from_ne_bytes(filter[word..word + 4].try_into().unwrap());
        word & (1 << (kind & 31)) != 0
    }

    #[test]
    fn v4_filter_passes_only_replies_and_errors() {
        let mask = icmp_filter(ERROR_TYPES_V4.into_iter().chain([ECHO_REPLY_V4]));
        for kind in 0..32u8 {
            let pass = matches!(kind, 0 | 3 | 11 | 12);
            assert_eq!(mask & (1 << kind) != 0, !pass, "type {kind}");
        }
    }

    #[test]
    fn filter_passes_only_replies_and_errors() {
        let filter = crate::sock::icmp6_filter(ERROR_TYPES.chain([ECHO_REPLY]));
        for kind in 0..=255u8 {
            let pass = matches!(kind, 1..=4 | 129);
            assert_eq!(blocks(&filter, kind), !pass, "type {kind}");
        }
    }
}
