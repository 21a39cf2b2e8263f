//! The one home of socket plumbing shared by the measurement kinds: the probe's only `unsafe`
//! syscalls ([`sys`]: setsockopt, recvmsg, AsyncFd registration), the bounds-checked parsing of
//! what `recvmsg(2)` returns beside the data ([`cmsg`]: hop limit, kernel receive timestamps,
//! the error queue), and the source address the kernel would pick for a destination. Ping,
//! tcp and `rawnet` open their own sockets on top of these.

pub(crate) mod cmsg;
pub(crate) mod sys;

use std::net::{IpAddr, Ipv6Addr, SocketAddr, UdpSocket};

/// The source address the kernel would pick for `destination` (no packet is sent).
pub fn source_address_for(destination: IpAddr) -> std::io::Result<IpAddr> {
    let bind: SocketAddr = match destination {
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        IpAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(bind)?;
    // The port is never used; 9 (discard) because some kernels refuse port 0.
    socket.connect((destination, 9))?;
    Ok(socket.local_addr()?.ip())
}
