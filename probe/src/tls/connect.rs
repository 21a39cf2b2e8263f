//! TCP connect with the outcome classified the way the results record it, shared by the TLS
//! and HTTP measurements.

use sixmap_shared::measurement::ConnectOutcome;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

/// How a connection attempt ended, the stream when it connected, and how long it took (to the
/// SYN-ACK, the RST or the error; the whole wait on a timeout).
#[derive(Debug)]
pub struct Attempt {
    pub outcome: ConnectOutcome,
    pub stream: Option<TcpStream>,
    pub elapsed: Duration,
    /// Why it did not connect, in words.
    pub detail: Option<String>,
}

/// Connects to `destination`:`port`, giving up at `deadline`.
pub async fn connect(destination: IpAddr, port: u16, deadline: Instant) -> io::Result<Attempt> {
    let socket = match destination {
        IpAddr::V6(_) => TcpSocket::new_v6()?,
        IpAddr::V4(_) => TcpSocket::new_v4()?,
    };
    // Small requests and responses: do not let Nagle hold the request back.
    socket.set_nodelay(true)?;
    let address = SocketAddr::new(destination, port);
    let started = Instant::now();
    let attempt = tokio::time::timeout_at(deadline, socket.connect(address)).await;
    let elapsed = started.elapsed();
    let (outcome, stream, detail) = match attempt {
        Ok(Ok(stream)) => (ConnectOutcome::Connected, Some(stream), None),
        Err(_) => (
            ConnectOutcome::Timeout,
            None,
            Some(format!(
                "no answer to the TCP connection attempt to {address} within {} ms",
                elapsed.as_millis()
            )),
        ),
        Ok(Err(e)) => match classify(&e) {
            Some(outcome) => (outcome, None, Some(format!("connect to {address}: {e}"))),
            None => return Err(e),
        },
    };
    Ok(Attempt {
        outcome,
        stream,
        elapsed,
        detail,
    })
}

/// What a failed connect says about the network; `None` for local errors that say nothing.
pub fn classify(error: &io::Error) -> Option<ConnectOutcome> {
    match error.raw_os_error()? {
        libc::ECONNREFUSED => Some(ConnectOutcome::Refused),
        // The kernel gave up after its SYN retries (only with very long deadlines).
        libc::ETIMEDOUT => Some(ConnectOutcome::Timeout),
        // ICMPv6 destination unreachable: no route (ENETUNREACH), address unreachable
        // (EHOSTUNREACH), administratively prohibited (EACCES), or no local route at all.
        libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EACCES | libc::EPERM => {
            Some(ConnectOutcome::Unreachable)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_connects_and_a_closed_port_is_refused() {
        let listener = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let deadline = Instant::now() + Duration::from_secs(2);
        let ok = connect("::1".parse().unwrap(), port, deadline)
            .await
            .unwrap();
        assert_eq!(ok.outcome, ConnectOutcome::Connected);
        assert!(ok.stream.is_some() && ok.detail.is_none());
        drop(listener);
        let refused = connect("::1".parse().unwrap(), port, deadline)
            .await
            .unwrap();
        assert_eq!(refused.outcome, ConnectOutcome::Refused);
        assert!(refused.detail.unwrap().contains("refused"));
    }

    #[test]
    fn errors_are_classified() {
        let e = |code| io::Error::from_raw_os_error(code);
        assert_eq!(
            classify(&e(libc::EHOSTUNREACH)),
            Some(ConnectOutcome::Unreachable)
        );
        assert_eq!(
            classify(&e(libc::ECONNREFUSED)),
            Some(ConnectOutcome::Refused)
        );
        assert_eq!(classify(&e(libc::EMFILE)), None);
    }
}
