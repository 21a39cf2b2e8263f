//! The one home of socket plumbing shared by the measurement kinds: the probe's only `unsafe`
//! syscalls ([`sys`]: setsockopt, recvmsg, AsyncFd registration), the bounds-checked parsing of
//! what `recvmsg(2)` returns beside the data ([`cmsg`]: hop limit, kernel receive timestamps,
//! the error queue), the options ping, tcp and `rawnet` all set, and the source address the
//! kernel would pick for a destination. Each kind opens its own sockets on top of these.

pub(crate) mod cmsg;
pub(crate) mod sys;

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;

/// `ICMP6_FILTER` (`<netinet/icmp6.h>`, `ICMPV6_FILTER` in `<linux/icmpv6.h>`); libc lacks it.
const ICMP6_FILTER: libc::c_int = 1;

/// Turns on a boolean socket option (timestamps, hop limits, the error queue).
pub(crate) fn set_flag(
    socket: &impl AsFd,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<()> {
    sys::set_option(socket.as_fd(), level, name, &1i32.to_ne_bytes())
}

/// Lets only ICMPv6 messages of `types` through to a raw ICMPv6 socket.
pub(crate) fn set_icmp6_filter(
    socket: &impl AsFd,
    types: impl IntoIterator<Item = u8>,
) -> io::Result<()> {
    let filter = icmp6_filter(types);
    sys::set_option(socket.as_fd(), libc::IPPROTO_ICMPV6, ICMP6_FILTER, &filter)
}

/// The `struct icmp6_filter` bytes that pass only `types`. On Linux a set bit blocks the
/// type, so everything else stays blocked and the raw socket is not woken by the host's
/// neighbour discovery, router advertisements or our own echo requests.
pub(crate) fn icmp6_filter(types: impl IntoIterator<Item = u8>) -> [u8; 32] {
    let mut words = [u32::MAX; 8];
    for kind in types {
        if let Some(word) = words.get_mut(usize::from(kind >> 5)) {
            *word &= !(1u32 << (kind & 31));
        }
    }
    let mut bytes = [0u8; 32];
    for (chunk, word) in bytes.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    bytes
}

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
