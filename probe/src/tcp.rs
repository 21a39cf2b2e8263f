//! TCP connect measurement: how long the handshake takes, or how it fails (refused, timed
//! out, unreachable), with the ICMP error behind an unreachable destination when the kernel
//! queued it on the socket's error queue (`IPV6_RECVERR` / `IP_RECVERR`).

use crate::context::{Context, failure};
use crate::sock::{cmsg, sys};
use sixmap_shared::measurement::{
    ConnectOutcome, ErrorClass, IcmpError, MeasurementError, TcpResult, TcpSpec,
};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;
use tokio::net::TcpSocket;
use tokio::time::Instant;

pub async fn run(
    ctx: &Context<'_>,
    spec: &TcpSpec,
    destination: IpAddr,
) -> Result<TcpResult, MeasurementError> {
    let address = SocketAddr::new(destination, spec.port());
    let socket = match destination {
        IpAddr::V6(_) => TcpSocket::new_v6(),
        IpAddr::V4(_) => TcpSocket::new_v4(),
    }
    .map_err(|e| {
        failure(
            ErrorClass::Internal,
            format!("cannot open a TCP socket: {e}"),
        )
    })?;
    // `connect` consumes the socket and drops it on failure; a duplicate descriptor keeps the
    // socket, and its error queue, readable afterwards.
    let error_queue = watch_errors(&socket, destination)
        .inspect_err(|e| tracing::debug!(error = %e, "no ICMP error queue on the TCP socket"))
        .ok();
    let started = Instant::now();
    let attempt = tokio::time::timeout_at(ctx.deadline, socket.connect(address)).await;
    let elapsed = nanos(started.elapsed());
    let (outcome, connect_ns) = match attempt {
        Ok(Ok(stream)) => {
            drop(stream);
            (ConnectOutcome::Connected, Some(elapsed))
        }
        Err(_) => (ConnectOutcome::Timeout, None),
        Ok(Err(error)) => match classify(&error) {
            Some(ConnectOutcome::Timeout) => (ConnectOutcome::Timeout, None),
            Some(outcome) => (outcome, Some(elapsed)),
            None => {
                return Err(failure(
                    ErrorClass::Network,
                    format!("connect to {address} failed: {error}"),
                ));
            }
        },
    };
    let icmp_error = match outcome {
        ConnectOutcome::Connected | ConnectOutcome::Refused => None,
        ConnectOutcome::Timeout | ConnectOutcome::Unreachable => {
            error_queue.as_ref().and_then(queued_icmp_error)
        }
    };
    Ok(TcpResult {
        port: spec.port(),
        outcome,
        connect_ns,
        icmp_error,
    })
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// What a failed connect says about the destination; `None` for failures that say nothing
/// about it (e.g. out of memory or descriptors).
fn classify(error: &io::Error) -> Option<ConnectOutcome> {
    match error.raw_os_error()? {
        libc::ECONNREFUSED => Some(ConnectOutcome::Refused),
        // The kernel gave up retrying SYNs before our deadline.
        libc::ETIMEDOUT => Some(ConnectOutcome::Timeout),
        // ICMP destination unreachable (no route, host or address unreachable: EHOSTUNREACH
        // or ENETUNREACH; administratively prohibited: EACCES), or no local route or source.
        libc::EHOSTUNREACH
        | libc::ENETUNREACH
        | libc::EACCES
        | libc::EPERM
        | libc::EADDRNOTAVAIL
        | libc::ENONET
        | libc::EHOSTDOWN
        | libc::EPROTO => Some(ConnectOutcome::Unreachable),
        _ => None,
    }
}

/// Asks the kernel to queue ICMP errors about this socket, and returns a second descriptor
/// to read them through once `connect` has consumed the socket.
fn watch_errors(socket: &TcpSocket, destination: IpAddr) -> io::Result<OwnedFd> {
    let (level, name) = match destination {
        IpAddr::V6(_) => (libc::IPPROTO_IPV6, libc::IPV6_RECVERR),
        IpAddr::V4(_) => (libc::IPPROTO_IP, libc::IP_RECVERR),
    };
    crate::sock::set_flag(socket, level, name)?;
    socket.as_fd().try_clone_to_owned()
}

/// The first ICMP error on the socket's error queue, if any.
fn queued_icmp_error(fd: &OwnedFd) -> Option<IcmpError> {
    let mut data = [0u8; 256];
    let mut control = [0u8; 512];
    let flags = libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT;
    // A few entries at most: errors for other reasons (local ones) are skipped.
    for _ in 0..4 {
        let meta = sys::recv_msg(fd.as_fd(), &mut data, &mut control, flags).ok()?;
        let ancillary = cmsg::parse(control.get(..meta.control_len).unwrap_or_default());
        let Some(error) = ancillary.extended_error else {
            continue;
        };
        if !matches!(error.origin, cmsg::ORIGIN_ICMP | cmsg::ORIGIN_ICMP6) {
            continue;
        }
        return Some(IcmpError {
            icmp_type: error.icmp_type,
            icmp_code: error.icmp_code,
            from: error.offender?,
            mtu: None,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    fn ctx(timeout: Duration) -> Context<'static> {
        crate::context::for_test(None, None, timeout)
    }

    #[test]
    fn errors_are_classified() {
        let outcome = |errno| classify(&io::Error::from_raw_os_error(errno));
        assert_eq!(outcome(libc::ECONNREFUSED), Some(ConnectOutcome::Refused));
        assert_eq!(outcome(libc::ETIMEDOUT), Some(ConnectOutcome::Timeout));
        for errno in [
            libc::EHOSTUNREACH,
            libc::ENETUNREACH,
            libc::EACCES,
            libc::EADDRNOTAVAIL,
        ] {
            assert_eq!(outcome(errno), Some(ConnectOutcome::Unreachable), "{errno}");
        }
        assert_eq!(outcome(libc::EMFILE), None);
    }

    #[tokio::test]
    async fn loopback_connects_and_refuses() {
        for local in ["127.0.0.1", "::1"] {
            let local: IpAddr = local.parse().unwrap();
            let listener = tokio::net::TcpListener::bind((local, 0)).await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let spec = TcpSpec::new(u32::from(port)).unwrap();
            let result = run(&ctx(Duration::from_secs(2)), &spec, local)
                .await
                .unwrap();
            assert_eq!(result.outcome, ConnectOutcome::Connected, "{result:?}");
            assert!(result.connect_ns.is_some_and(|ns| ns > 0));
            assert!(crate::render::tcp(&result).contains("connected after"));
            drop(listener);
            let result = run(&ctx(Duration::from_secs(2)), &spec, local)
                .await
                .unwrap();
            assert_eq!(result.outcome, ConnectOutcome::Refused, "{result:?}");
            assert_eq!(result.icmp_error, None);
            assert_eq!(result.validate(), Ok(()));
        }
    }
}
