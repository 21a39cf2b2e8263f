//! The only unsafe code of the probe: thin wrappers around `setsockopt(2)`, `recvmsg(2)` and
//! tokio's `AsyncFd` registration, used by ping, by the tcp measurement (its socket's error
//! queue) and by `rawnet`'s raw sockets. Neither std nor socket2 sets arbitrary
//! socket options (ICMP6_FILTER) or hands back the control messages we need (hop limit,
//! kernel timestamps, error queue). Everything that interprets the returned bytes lives in
//! safe code (`cmsg.rs`).
#![allow(unsafe_code)]

use socket2::Socket;
use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, BorrowedFd};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Registers a socket with the tokio reactor (which needs the caller to vouch for the
/// descriptor). Callers must not swap the socket through `AsyncFd::get_mut`.
pub(crate) fn register(socket: Socket, interest: Interest) -> io::Result<AsyncFd<Socket>> {
    // SAFETY: `Socket` owns its descriptor (an `OwnedFd`): it stays open and refers to the
    // same socket until the `AsyncFd` drops it, and `as_raw_fd` always returns it. The callers
    // (`IcmpSocket`, `rawnet::socket`) reach the socket through `get_ref` alone.
    unsafe { AsyncFd::register_with_interest(socket, interest) }.map_err(io::Error::from)
}

/// Sets a socket option whose value is given as its raw bytes.
pub(crate) fn set_option(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &[u8],
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(value.len())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `fd` is an open descriptor for the duration of the borrow, and `value` points
    // to `len` initialised bytes that the kernel only reads.
    let rc = unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, value.as_ptr().cast(), len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// What `recvmsg(2)` reported besides the bytes it wrote into the caller's buffers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecvMeta {
    /// Bytes written to the data buffer.
    pub len: usize,
    /// Source address of the datagram (for the error queue: the original destination).
    pub from: Option<IpAddr>,
    /// Bytes of control messages written to the control buffer.
    pub control_len: usize,
    /// `msg_flags` (e.g. `MSG_TRUNC`, `MSG_CTRUNC`).
    pub flags: libc::c_int,
}

/// One `recvmsg(2)` call into `data` and `control` (one iovec, no blocking if the socket is
/// nonblocking).
pub(crate) fn recv_msg(
    fd: BorrowedFd<'_>,
    data: &mut [u8],
    control: &mut [u8],
    flags: libc::c_int,
) -> io::Result<RecvMeta> {
    let invalid = |_| io::Error::from(io::ErrorKind::InvalidInput);
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: `sockaddr_storage` is plain old data for which all-zero bytes are a valid
    // value; it has room for the source address of either family.
    let mut name: libc::sockaddr_storage = unsafe { mem::zeroed() };
    // SAFETY: `msghdr` is plain old data; all-zero is valid (null pointers, zero lengths).
    // Zeroing rather than a struct literal also covers the private padding fields some
    // libcs declare.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = (&raw mut name).cast();
    msg.msg_namelen =
        libc::socklen_t::try_from(mem::size_of::<libc::sockaddr_storage>()).map_err(invalid)?;
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    // `msg_controllen` is `size_t` with glibc (a no-op conversion) and `socklen_t` with musl.
    #[allow(clippy::useless_conversion)]
    let controllen = control
        .len()
        .try_into()
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    msg.msg_controllen = controllen;
    // SAFETY: `fd` is open for the borrow; every pointer in `msg` refers to a live, exclusively
    // borrowed buffer (`name`, `iov` -> `data`, `control`) whose length is the one given, and
    // the kernel writes at most those lengths.
    let received = unsafe { libc::recvmsg(fd.as_raw_fd(), &raw mut msg, flags) };
    if received < 0 {
        return Err(io::Error::last_os_error());
    }
    let name_len = usize::try_from(msg.msg_namelen).unwrap_or(0);
    #[allow(clippy::useless_conversion)] // see `controllen`
    let control_len = usize::try_from(msg.msg_controllen)
        .unwrap_or(0)
        .min(control.len());
    let from = source_address(&name, name_len);
    Ok(RecvMeta {
        len: usize::try_from(received).unwrap_or(0).min(data.len()),
        from,
        control_len,
        flags: msg.msg_flags,
    })
}

/// The address in a `sockaddr_storage` the kernel filled with `len` bytes, if it is one.
fn source_address(name: &libc::sockaddr_storage, len: usize) -> Option<IpAddr> {
    let family = libc::c_int::from(name.ss_family);
    if family == libc::AF_INET6 && len >= mem::size_of::<libc::sockaddr_in6>() {
        // SAFETY: the kernel wrote a `sockaddr_in6` (family and length say so) into storage
        // that is larger and at least as aligned; reading it by value copies plain data.
        let v6: libc::sockaddr_in6 = unsafe { *(std::ptr::from_ref(name).cast()) };
        Some(IpAddr::V6(Ipv6Addr::from(v6.sin6_addr.s6_addr)))
    } else if family == libc::AF_INET && len >= mem::size_of::<libc::sockaddr_in>() {
        // SAFETY: as above, for a `sockaddr_in`.
        let v4: libc::sockaddr_in = unsafe { *(std::ptr::from_ref(name).cast()) };
        Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr))))
    } else {
        None
    }
}
