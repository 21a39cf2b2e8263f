use super::*;
use cmsg::{Ancillary, ExtendedError};

fn loopback() -> Ipv6Addr {
    Ipv6Addr::LOCALHOST
}

#[test]
fn socket_preference_parses_and_lists_options() {
    assert_eq!("auto".parse(), Ok(SocketPreference::Auto));
    assert_eq!("datagram".parse(), Ok(SocketPreference::Datagram));
    assert_eq!("raw".parse(), Ok(SocketPreference::Raw));
    assert_eq!(SocketPreference::default(), SocketPreference::Auto);
    let err = "icmp".parse::<SocketPreference>().unwrap_err().to_string();
    for option in ["auto", "datagram", "raw", "icmp"] {
        assert!(err.contains(option), "{err}");
    }
    assert_eq!(SocketPreference::Raw.to_string(), "raw");
}

#[test]
fn socket_errors_name_the_remedies() {
    let err = PingError::NoSocket {
        datagram: io::Error::from_raw_os_error(libc::EACCES),
        raw: io::Error::from_raw_os_error(libc::EPERM),
    }
    .to_string();
    for needle in [
        "net.ipv4.ping_group_range",
        "sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"",
        "CAP_NET_RAW",
        "setcap cap_net_raw+ep sixmap-probe",
        "AmbientCapabilities",
        &io::Error::from_raw_os_error(libc::EACCES).to_string(),
        &io::Error::from_raw_os_error(libc::EPERM).to_string(),
    ] {
        assert!(err.contains(needle), "{needle:?} missing from {err}");
    }
    let datagram = PingError::Socket {
        kind: IcmpSocketKind::Datagram,
        source: io::Error::from_raw_os_error(libc::EACCES),
    }
    .to_string();
    assert!(
        datagram.contains("ping_group_range") && !datagram.contains("CAP_NET_RAW"),
        "{datagram}"
    );
    let raw = PingError::Socket {
        kind: IcmpSocketKind::Raw,
        source: io::Error::from_raw_os_error(libc::EPERM),
    }
    .to_string();
    assert!(
        raw.contains("CAP_NET_RAW") && !raw.contains("ping_group_range"),
        "{raw}"
    );
}

// ---------------------------------------------------------------------------------------------
// Session bookkeeping, without sockets

fn sent_at(start: Instant, realtime_ms: u64) -> SentAt {
    SentAt {
        monotonic: start,
        realtime: Some(Duration::from_millis(realtime_ms)),
    }
}

fn received(hop_limit: u8, realtime_ms: Option<u64>) -> Ancillary {
    Ancillary {
        hop_limit: Some(hop_limit),
        received_at: realtime_ms.map(Duration::from_millis),
        extended_error: None,
    }
}

fn error(sequence: u16) -> Incoming {
    Incoming::Error {
        sequence,
        icmp_type: 3,
        icmp_code: 0,
        mtu: None,
    }
}

#[test]
fn session_flags_duplicates_and_uses_kernel_times() {
    let start = Instant::now();
    let later = start + Duration::from_millis(50);
    let mut session = Session::new(3);
    for _ in 0..3 {
        session.record_sent(sent_at(start, 1_000));
    }
    let from = IpAddr::from(loopback());
    session.record_reply(2, from, &received(64, Some(1_007)), later);
    session.record_reply(0, from, &received(64, Some(1_005)), later);
    session.record_reply(2, from, &received(63, Some(1_009)), later);
    // Never sent: ignored.
    session.record_reply(3, from, &received(64, Some(1_009)), later);
    assert!(!session.all_answered());
    let result = session.finish(IcmpSocketKind::Raw);
    assert_eq!(result.validate(), Ok(()));
    assert_eq!((result.sent, result.received), (3, 2));
    assert_eq!(result.timestamp_source, TimestampSource::Kernel);
    let summary: Vec<_> = result
        .replies
        .iter()
        .map(|r| (r.sequence, r.duplicate, r.rtt_ns, r.hop_limit))
        .collect();
    assert_eq!(
        summary,
        [
            (2, false, 7_000_000, Some(64)),
            (0, false, 5_000_000, Some(64)),
            (2, true, 9_000_000, Some(63)),
        ]
    );
}

#[test]
fn session_falls_back_to_userspace_times_for_all_replies() {
    let start = Instant::now();
    let mut session = Session::new(2);
    session.record_sent(sent_at(start, 1_000));
    session.record_sent(sent_at(start, 1_000));
    session.record_reply(
        0,
        loopback().into(),
        &received(64, Some(1_001)),
        start + Duration::from_millis(3),
    );
    // One reply without a kernel timestamp puts the whole result on the userspace clock.
    session.record_reply(
        1,
        loopback().into(),
        &received(64, None),
        start + Duration::from_millis(4),
    );
    assert!(session.all_answered());
    let result = session.finish(IcmpSocketKind::Datagram);
    assert_eq!(result.timestamp_source, TimestampSource::Userspace);
    let rtts: Vec<_> = result.replies.iter().map(|r| r.rtt_ns).collect();
    assert_eq!(rtts, [3_000_000, 4_000_000]);
}

#[test]
fn session_rejects_kernel_times_before_the_send() {
    let start = Instant::now();
    let mut session = Session::new(1);
    session.record_sent(sent_at(start, 1_000));
    // The realtime clock stepped back between send and receive.
    session.record_reply(
        0,
        loopback().into(),
        &received(64, Some(900)),
        start + Duration::from_millis(2),
    );
    let result = session.finish(IcmpSocketKind::Raw);
    assert_eq!(result.timestamp_source, TimestampSource::Userspace);
    assert_eq!(result.replies[0].rtt_ns, 2_000_000);
}

#[test]
fn session_bounds_errors_and_duplicates() {
    let start = Instant::now();
    let mut session = Session::new(2);
    session.record_sent(sent_at(start, 1_000));
    for _ in 0..10 {
        session.record_error(error(0), "2001:db8::1".parse().unwrap());
    }
    // About a request never sent: ignored.
    session.record_error(error(1), "2001:db8::1".parse().unwrap());
    for _ in 0..10 {
        session.record_reply(0, loopback().into(), &received(64, Some(1_001)), start);
    }
    let result = session.finish(IcmpSocketKind::Raw);
    assert_eq!(result.errors.len(), ERRORS_PER_REQUEST);
    assert_eq!(result.replies.len(), 1 + DUPLICATES_PER_REQUEST);
    assert_eq!(result.validate(), Ok(()));
}

#[test]
fn queued_errors_are_matched_by_their_quote() {
    let matcher = Matcher {
        cookie: packet::tests::COOKIE,
        identifier: None,
        destination: packet::tests::destination().into(),
    };
    let request = packet::echo_request(Icmp::V6, 0x4242, 0, &packet::tests::COOKIE, 56);
    let offender: IpAddr = "2001:db8::1".parse().unwrap();
    let message = |extended_error| Message {
        payload: &request,
        from: Some(matcher.destination),
        ancillary: Ancillary {
            extended_error,
            ..Ancillary::default()
        },
    };
    let too_big = ExtendedError {
        origin: cmsg::ORIGIN_ICMP6,
        icmp_type: packet::PACKET_TOO_BIG,
        icmp_code: 0,
        info: 1280,
        offender: Some(offender),
    };
    let expected = Incoming::Error {
        sequence: 0,
        icmp_type: 2,
        icmp_code: 0,
        mtu: Some(1280),
    };
    assert_eq!(
        queued_error(&message(Some(too_big)), &matcher),
        Ok((expected, Some(offender)))
    );
    let local = ExtendedError {
        origin: 1,
        ..too_big
    };
    assert!(queued_error(&message(Some(local)), &matcher).is_err());
    let redirect = ExtendedError {
        icmp_type: 137,
        ..too_big
    };
    assert!(queued_error(&message(Some(redirect)), &matcher).is_err());
    assert!(queued_error(&message(None), &matcher).is_err());
}

// ---------------------------------------------------------------------------------------------
// Real sockets. These need root (raw sockets, and writing the ping_group_range sysctl).

fn spec(count: u32, interval_ms: u32) -> PingSpec {
    PingSpec::new(count, interval_ms, 0).unwrap()
}

/// Three quick echoes to ::1, which must succeed.
async fn ping_loopback(preference: SocketPreference) -> PingResult {
    ping_to(loopback().into(), preference).await
}

fn loopback_v4() -> IpAddr {
    IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
}

async fn ping_to(destination: IpAddr, preference: SocketPreference) -> PingResult {
    ping(
        destination,
        &spec(3, 20),
        Duration::from_secs(2),
        preference,
    )
    .await
    .unwrap()
}

fn assert_loopback_result(result: &PingResult, kind: IcmpSocketKind) {
    assert_result_from(result, kind, loopback().into());
}

fn assert_result_from(result: &PingResult, kind: IcmpSocketKind, from: IpAddr) {
    assert_eq!(result.validate(), Ok(()));
    assert_eq!(result.socket_kind, kind);
    assert_eq!((result.sent, result.received), (3, 3), "{result:?}");
    assert_eq!(
        result.timestamp_source,
        TimestampSource::Kernel,
        "{result:?}"
    );
    for reply in &result.replies {
        assert!(
            reply.rtt_ns > 0 && reply.rtt_ns < 1_000_000_000,
            "{reply:?}"
        );
        assert_eq!(reply.hop_limit, Some(64), "{reply:?}");
        assert_eq!(reply.from, from);
        assert!(!reply.duplicate);
    }
    assert!(result.errors.is_empty(), "{result:?}");
}

#[tokio::test]
async fn raw_ping_to_loopback() {
    let result = ping_loopback(SocketPreference::Raw).await;
    assert_loopback_result(&result, IcmpSocketKind::Raw);
    // ICMP (v4) over a raw socket: the IP header is stripped, TTL comes from IP_RECVTTL.
    let result = ping_to(loopback_v4(), SocketPreference::Raw).await;
    assert_result_from(&result, IcmpSocketKind::Raw, loopback_v4());
}

/// Sets `net.ipv4.ping_group_range` and restores the old value when dropped, also when the
/// test fails.
struct PingGroupRange {
    old: String,
}

impl PingGroupRange {
    const PATH: &str = "/proc/sys/net/ipv4/ping_group_range";

    fn set(value: &str) -> Self {
        let old = std::fs::read_to_string(Self::PATH).unwrap();
        std::fs::write(Self::PATH, value).unwrap();
        Self { old }
    }

    fn change(&self, value: &str) {
        std::fs::write(Self::PATH, value).unwrap();
    }
}

impl Drop for PingGroupRange {
    fn drop(&mut self) {
        // The file shows the range tab-separated; writing it back that way is accepted.
        if let Err(e) = std::fs::write(Self::PATH, self.old.trim()) {
            eprintln!("could not restore {}: {e}", Self::PATH);
        }
    }
}

/// Everything that depends on the sysctl lives in this one test, so parallel tests cannot
/// race on it.
#[tokio::test]
async fn datagram_and_auto_follow_ping_group_range() {
    let range = PingGroupRange::set("0 2147483647");
    let datagram = ping_loopback(SocketPreference::Datagram).await;
    assert_loopback_result(&datagram, IcmpSocketKind::Datagram);
    let auto = ping_loopback(SocketPreference::Auto).await;
    assert_loopback_result(&auto, IcmpSocketKind::Datagram);
    assert_unroutable_is_handled(SocketPreference::Datagram).await;
    let v4 = ping_to(loopback_v4(), SocketPreference::Datagram).await;
    assert_result_from(&v4, IcmpSocketKind::Datagram, loopback_v4());

    // An empty range forbids datagram sockets: naming the sysctl, or falling back to raw.
    range.change("1 0");
    let err = ping(
        loopback(),
        &spec(1, 0),
        Duration::from_secs(1),
        SocketPreference::Datagram,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            PingError::Socket {
                kind: IcmpSocketKind::Datagram,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("ping_group_range"), "{err}");
    let auto = ping_loopback(SocketPreference::Auto).await;
    assert_loopback_result(&auto, IcmpSocketKind::Raw);
    let auto = ping_to(loopback_v4(), SocketPreference::Auto).await;
    assert_result_from(&auto, IcmpSocketKind::Raw, loopback_v4());
}

/// A destination nobody answers: either the send fails or nothing comes back (ICMPv6 errors
/// may), never a panic.
async fn assert_unroutable_is_handled(preference: SocketPreference) {
    for destination in [
        "2001:db8:dead::1",
        "fe80::dead",
        "::ffff:192.0.2.1",
        "203.0.113.254",
        "0.0.0.1",
    ] {
        let destination: IpAddr = destination.parse().unwrap();
        match ping(
            destination,
            &spec(2, 50),
            Duration::from_millis(400),
            preference,
        )
        .await
        {
            Err(PingError::Send(e)) => eprintln!("{destination} ({preference}): send failed: {e}"),
            Ok(result) => {
                assert_eq!(result.validate(), Ok(()));
                assert_eq!(result.received, 0, "{result:?}");
                eprintln!("{destination} ({preference}): {result:?}");
            }
            Err(other) => panic!("{destination} ({preference}): unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn unroutable_destination_fails_cleanly() {
    assert_unroutable_is_handled(SocketPreference::Raw).await;
}

#[test]
fn source_address_for_loopback_is_loopback() {
    assert_eq!(source_address_for(loopback()).unwrap(), loopback());
}
