//! Control messages (`cmsg`) returned by `recvmsg(2)`, parsed from the raw control buffer.
//!
//! Bounds-checked byte reads instead of the `CMSG_*` macros: no unsafe code, and hand-made
//! (or hostile, or truncated) buffers can be tested directly.

use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// `struct cmsghdr` in the kernel ABI: `size_t cmsg_len; int cmsg_level; int cmsg_type;`.
const HEADER_LEN: usize = size_of::<usize>() + 2 * size_of::<libc::c_int>();
/// `struct sock_extended_err` is 16 bytes; the offender `sockaddr_in6` / `sockaddr_in` follows.
const EXTENDED_ERR_LEN: usize = 16;

/// Origin of an error-queue entry that came from an ICMPv6 message (`SO_EE_ORIGIN_ICMP6`).
pub(crate) const ORIGIN_ICMP6: u8 = 3;
/// Origin of an error-queue entry that came from an ICMP (v4) message (`SO_EE_ORIGIN_ICMP`).
pub(crate) const ORIGIN_ICMP: u8 = 2;

/// `CMSG_ALIGN`: control messages are padded to the size of `size_t`.
fn align(len: usize) -> Option<usize> {
    let unit = size_of::<usize>();
    Some(len.checked_add(unit - 1)? & !(unit - 1))
}

/// Iterates `(level, type, data)` over a control buffer; stops at the first malformed or
/// truncated header instead of guessing.
#[derive(Debug)]
struct ControlMessages<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for ControlMessages<'a> {
    type Item = (libc::c_int, libc::c_int, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = std::mem::take(&mut self.rest);
        let len = usize::from_ne_bytes(rest.get(..size_of::<usize>())?.try_into().ok()?);
        let level = read_int(rest, size_of::<usize>())?;
        let kind = read_int(rest, size_of::<usize>() + size_of::<libc::c_int>())?;
        let data = rest.get(align(HEADER_LEN)?..len)?;
        self.rest = align(len)
            .and_then(|next| rest.get(next..))
            .unwrap_or_default();
        Some((level, kind, data))
    }
}

fn read_int(bytes: &[u8], offset: usize) -> Option<libc::c_int> {
    let end = offset.checked_add(size_of::<libc::c_int>())?;
    Some(libc::c_int::from_ne_bytes(
        bytes.get(offset..end)?.try_into().ok()?,
    ))
}

fn read_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        bytes.get(offset..offset.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// An entry of the socket error queue (`struct sock_extended_err` and its offender).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExtendedError {
    pub origin: u8,
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// For ICMPv6 "packet too big" and ICMP "fragmentation needed": the MTU.
    pub info: u32,
    /// The node that sent the ICMP error.
    pub offender: Option<IpAddr>,
}

/// The control messages we ask for, as far as the kernel delivered them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Ancillary {
    /// IPv6 hop limit or IPv4 TTL of the received packet.
    pub hop_limit: Option<u8>,
    /// Kernel receive time (`SCM_TIMESTAMPNS`, CLOCK_REALTIME) since the Unix epoch.
    pub received_at: Option<Duration>,
    pub extended_error: Option<ExtendedError>,
}

pub(crate) fn parse(control: &[u8]) -> Ancillary {
    let mut ancillary = Ancillary::default();
    for (level, kind, data) in (ControlMessages { rest: control }) {
        match (level, kind) {
            (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT) | (libc::IPPROTO_IP, libc::IP_TTL) => {
                ancillary.hop_limit = read_int(data, 0).and_then(|h| u8::try_from(h).ok());
            }
            (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) => ancillary.received_at = timespec(data),
            (libc::IPPROTO_IPV6, libc::IPV6_RECVERR) | (libc::IPPROTO_IP, libc::IP_RECVERR) => {
                ancillary.extended_error = extended_error(data);
            }
            _ => tracing::debug!(level, kind, "ignored unexpected control message"),
        }
    }
    ancillary
}

/// `struct timespec` as the kernel writes it for `SO_TIMESTAMPNS` (the "old" layout: two
/// native `long`s), so both 64-bit and 32-bit layouts are recognised by size.
fn timespec(data: &[u8]) -> Option<Duration> {
    let (secs, nanos) = match data.len() {
        16 => (
            i64::from_ne_bytes(data.get(..8)?.try_into().ok()?),
            i64::from_ne_bytes(data.get(8..16)?.try_into().ok()?),
        ),
        8 => (
            i64::from(i32::from_ne_bytes(data.get(..4)?.try_into().ok()?)),
            i64::from(i32::from_ne_bytes(data.get(4..8)?.try_into().ok()?)),
        ),
        _ => return None,
    };
    let nanos = u32::try_from(nanos).ok().filter(|n| *n < 1_000_000_000)?;
    Some(Duration::new(u64::try_from(secs).ok()?, nanos))
}

fn extended_error(data: &[u8]) -> Option<ExtendedError> {
    let header = data.get(..EXTENDED_ERR_LEN)?;
    let offender = data.get(EXTENDED_ERR_LEN..).and_then(sockaddr);
    Some(ExtendedError {
        origin: *header.get(4)?,
        icmp_type: *header.get(5)?,
        icmp_code: *header.get(6)?,
        info: read_u32(header, 8)?,
        offender,
    })
}

/// The address of a `sockaddr_in6` (family, port, flow info, address, scope id) or a
/// `sockaddr_in` (family, port, address), if it is one.
fn sockaddr(bytes: &[u8]) -> Option<IpAddr> {
    let family = libc::c_int::from(u16::from_ne_bytes(bytes.get(..2)?.try_into().ok()?));
    if family == libc::AF_INET6 {
        let octets: [u8; 16] = bytes.get(8..24)?.try_into().ok()?;
        Some(IpAddr::V6(Ipv6Addr::from(octets)))
    } else if family == libc::AF_INET {
        let octets: [u8; 4] = bytes.get(4..8)?.try_into().ok()?;
        Some(IpAddr::V4(Ipv4Addr::from(octets)))
    } else {
        None
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Appends one control message laid out like the kernel does.
    pub(crate) fn push(buffer: &mut Vec<u8>, level: libc::c_int, kind: libc::c_int, data: &[u8]) {
        let start = buffer.len();
        buffer.extend_from_slice(&(HEADER_LEN + data.len()).to_ne_bytes());
        buffer.extend_from_slice(&level.to_ne_bytes());
        buffer.extend_from_slice(&kind.to_ne_bytes());
        buffer.resize(start + align(HEADER_LEN).unwrap(), 0);
        buffer.extend_from_slice(data);
        buffer.resize(start + align(buffer.len() - start).unwrap(), 0);
    }

    pub(crate) fn extended_error_bytes(origin: u8, kind: u8, code: u8, info: u32) -> Vec<u8> {
        let mut data = Vec::new();
        data.extend_from_slice(&113u32.to_ne_bytes()); // ee_errno (EHOSTUNREACH)
        data.extend_from_slice(&[origin, kind, code, 0]);
        data.extend_from_slice(&info.to_ne_bytes());
        data.extend_from_slice(&0u32.to_ne_bytes());
        let family = u16::try_from(libc::AF_INET6).unwrap();
        data.extend_from_slice(&family.to_ne_bytes());
        data.extend_from_slice(&[0; 6]); // port, flow info
        data.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        data.extend_from_slice(&[0; 4]); // scope id
        data
    }

    fn timespec_bytes(secs: i64, nanos: i64) -> Vec<u8> {
        [secs.to_ne_bytes(), nanos.to_ne_bytes()].concat()
    }

    #[test]
    fn parses_hop_limit_and_timestamp() {
        let mut control = Vec::new();
        push(
            &mut control,
            libc::IPPROTO_IPV6,
            libc::IPV6_HOPLIMIT,
            &64i32.to_ne_bytes(),
        );
        push(
            &mut control,
            libc::SOL_SOCKET,
            libc::SCM_TIMESTAMPNS,
            &timespec_bytes(5, 7),
        );
        let ancillary = parse(&control);
        assert_eq!(ancillary.hop_limit, Some(64));
        assert_eq!(ancillary.received_at, Some(Duration::new(5, 7)));
        assert_eq!(ancillary.extended_error, None);
    }

    #[test]
    fn parses_extended_error_with_offender() {
        let mut control = Vec::new();
        let data = extended_error_bytes(ORIGIN_ICMP6, 2, 0, 1280);
        push(&mut control, libc::IPPROTO_IPV6, libc::IPV6_RECVERR, &data);
        let error = parse(&control).extended_error.unwrap();
        assert_eq!(
            (error.origin, error.icmp_type, error.icmp_code),
            (ORIGIN_ICMP6, 2, 0)
        );
        assert_eq!(error.info, 1280);
        assert_eq!(error.offender, Some("2001:db8::1".parse().unwrap()));
        // The IPv4 flavour: IP_RECVERR with a `sockaddr_in` offender, and IP_TTL.
        let mut v4 = data[..16].to_vec();
        v4[4] = ORIGIN_ICMP;
        let family = u16::try_from(libc::AF_INET).unwrap();
        v4.extend_from_slice(&family.to_ne_bytes());
        v4.extend_from_slice(&[0, 0, 192, 0, 2, 9, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut control = Vec::new();
        push(&mut control, libc::IPPROTO_IP, libc::IP_RECVERR, &v4);
        push(
            &mut control,
            libc::IPPROTO_IP,
            libc::IP_TTL,
            &57i32.to_ne_bytes(),
        );
        let ancillary = parse(&control);
        let error = ancillary.extended_error.unwrap();
        assert_eq!(error.origin, ORIGIN_ICMP);
        assert_eq!(error.offender, Some("192.0.2.9".parse().unwrap()));
        assert_eq!(ancillary.hop_limit, Some(57));
        // Without the offender address the error is still reported.
        let mut control = Vec::new();
        push(
            &mut control,
            libc::IPPROTO_IPV6,
            libc::IPV6_RECVERR,
            &data[..16],
        );
        assert_eq!(parse(&control).extended_error.unwrap().offender, None);
    }

    #[test]
    fn malformed_control_buffers_never_panic() {
        let mut control = Vec::new();
        push(
            &mut control,
            libc::IPPROTO_IPV6,
            libc::IPV6_HOPLIMIT,
            &64i32.to_ne_bytes(),
        );
        push(
            &mut control,
            libc::SOL_SOCKET,
            libc::SCM_TIMESTAMPNS,
            &timespec_bytes(5, 7),
        );
        // Every truncation (as with MSG_CTRUNC) parses to a prefix of the messages.
        for end in 0..control.len() {
            let ancillary = parse(&control[..end]);
            assert!(ancillary.received_at.is_none() || end == control.len());
        }
        // Lengths that are zero, smaller than a header or huge stop the walk.
        for bogus in [0usize, 1, HEADER_LEN - 1, usize::MAX, usize::MAX - 3] {
            let mut control = bogus.to_ne_bytes().to_vec();
            control.extend_from_slice(&[0xff; 40]);
            assert_eq!(parse(&control), Ancillary::default());
        }
        // Out-of-range values are dropped, not wrapped.
        let mut control = Vec::new();
        push(
            &mut control,
            libc::IPPROTO_IPV6,
            libc::IPV6_HOPLIMIT,
            &300i32.to_ne_bytes(),
        );
        push(
            &mut control,
            libc::SOL_SOCKET,
            libc::SCM_TIMESTAMPNS,
            &timespec_bytes(-1, 0),
        );
        assert_eq!(parse(&control), Ancillary::default());
        let mut control = Vec::new();
        push(
            &mut control,
            libc::SOL_SOCKET,
            libc::SCM_TIMESTAMPNS,
            &timespec_bytes(1, 2_000_000_000),
        );
        push(
            &mut control,
            libc::IPPROTO_IPV6,
            libc::IPV6_RECVERR,
            &[1, 2, 3],
        );
        assert_eq!(parse(&control), Ancillary::default());
    }
}
