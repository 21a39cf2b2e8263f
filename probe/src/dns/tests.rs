use super::*;
use sixmap_shared::measurement::DnsFailureClass;
use sixmap_shared::measurement::rcode_name;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wire::tests::{question, record, response as wire_response, response_counts};

/// A response with one record of every type the probe presents, plus an unknown one and OPT.
fn rich_response() -> Vec<u8> {
    let mut soa = vec![2, b'n', b's', 0xC0, 12, 0xC0, 12];
    for n in [1u32, 2, 3, 4, 5] {
        soa.extend_from_slice(&n.to_be_bytes());
    }
    let answers = [
        record(1, 1, &[192, 0, 2, 1]),
        record(
            28,
            2,
            &[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        ),
        record(5, 3, &[3, b'w', b'w', b'w', 0xC0, 12]),
        record(2, 4, &[0xC0, 12]),
        record(12, 5, &[0xC0, 12]),
        record(15, 6, &[0, 10, 0xC0, 12]),
        record(16, 7, b"\x03abc\x00"),
        record(6, 8, &soa),
        record(33, 9, &[0, 1, 0, 2, 0, 80, 0xC0, 12]),
        record(65, 10, &[0, 1, 0]),
    ];
    let opt = [0u8, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0];
    let mut records: Vec<&[u8]> = answers.iter().map(Vec::as_slice).collect();
    records.push(&opt);
    response_counts(0x4242, 0x8580, &question(28), &records, [10, 0, 1])
}

fn decode(bytes: &[u8]) -> Result<Message, wire::DecodeError> {
    wire::decode_rest(bytes, wire::decode_front(bytes)?, 256)
}

#[test]
fn every_known_type_is_presented() {
    let bytes = rich_response();
    let message = decode(&bytes).unwrap();
    let r = response(&bytes, &message);
    assert_eq!((r.rcode, r.flags), (0, 0x8580));
    let data: Vec<&str> = r.answers.iter().map(|a| a.data.as_str()).collect();
    assert_eq!(
        data,
        [
            "192.0.2.1",
            "2001:db8::1",
            "www.dual.lab.",
            "dual.lab.",
            "dual.lab.",
            "10 dual.lab.",
            "\"abc\" \"\"",
            "ns.dual.lab. dual.lab. 1 2 3 4 5",
            "1 2 80 dual.lab.",
            "\\# 3 000100",
        ]
    );
    assert!(r.answers.iter().all(|a| a.name == "dual.lab"));
    let result = DnsResult {
        query_name: "dual.lab".into(),
        query_type: 28,
        transport_used: DnsTransport::Udp,
        rtt_ns: Some(1_500_000),
        response: Some(r),
        failure: None,
        failure_class: None,
        session: None,
    };
    assert_eq!(result.validate(), Ok(()));
    let text = crate::render::dns(&result);
    assert!(
        text.contains("NOERROR, flags: qr aa rd ra; 10 answers"),
        "{text}"
    );
    assert!(
        text.contains("dual.lab\t2\tIN\tAAAA\t2001:db8::1"),
        "{text}"
    );
}

/// Thousands of mutated responses (cut, bytes overwritten, pointers planted): decoding and
/// presentation must never panic, and whatever decodes must make a valid result.
#[test]
fn mutated_responses_never_panic() {
    let template = rich_response();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut decoded = 0;
    for round in 0..5000 {
        let mut bytes = template.clone();
        for _ in 0..(1 + next() % 4) {
            let at = (next() as usize) % bytes.len().max(1);
            match next() % 4 {
                0 => bytes.truncate(at),
                1 => {
                    if let Some(b) = bytes.get_mut(at) {
                        *b = next() as u8;
                    }
                }
                2 => {
                    // A compression pointer to a random place, possibly forward or into itself.
                    let target = (next() as usize) % (bytes.len() + 8);
                    if at + 1 < bytes.len() {
                        bytes[at] = 0xC0 | ((target >> 8) as u8 & 0x3F);
                        bytes[at + 1] = target as u8;
                    }
                }
                _ => bytes.insert(at.min(bytes.len()), next() as u8),
            }
        }
        if round % 7 == 0 {
            // Random lengths in the counts.
            if let Some(b) = bytes.get_mut(7) {
                *b = next() as u8;
            }
        }
        if let Ok(message) = decode(&bytes) {
            decoded += 1;
            let r = response(&bytes, &message);
            let result = DnsResult {
                query_name: "dual.lab".into(),
                query_type: 28,
                transport_used: DnsTransport::Udp,
                rtt_ns: None,
                response: Some(r),
                failure: None,
                failure_class: None,
                session: None,
            };
            assert_eq!(result.validate(), Ok(()), "round {round}");
        }
    }
    assert!(decoded > 100, "only {decoded} mutated responses decoded");
}

#[test]
fn random_bytes_never_panic() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let len = (next() % 600) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if bytes.len() > 3 {
            bytes[2] |= 0x80;
        }
        if let Ok(message) = decode(&bytes) {
            let _ = response(&bytes, &message);
        }
    }
}

#[test]
fn rcodes_have_names() {
    assert_eq!(rcode_name(3), "NXDOMAIN");
    assert_eq!(rcode_name(19), "RCODE19");
}

/// A fake server on loopback: a stale answer, a spoofed one from another port, then a
/// truncated one over UDP; the full answer over TCP. The measurement must ignore the first
/// two, retry the third over TCP, and say so.
#[tokio::test]
async fn truncated_udp_answer_is_retried_over_tcp() {
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = udp.local_addr().unwrap().port();
    let Ok(tcp) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await else {
        return; // the port is taken for TCP on this host: nothing to test this run
    };
    let spoofer = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let serve = async move {
        let mut buf = vec![0u8; 512];
        let (_, client) = udp.recv_from(&mut buf).await.unwrap();
        let id = u16::from_be_bytes([buf[0], buf[1]]);
        assert_eq!(buf[2] & 0x01, 0x01, "RD set as the spec asks");
        let aaaa = record(
            28,
            7,
            &[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        );
        let stale = wire_response(id.wrapping_add(1), 0x8580, &question(28), &[&aaaa]);
        udp.send_to(&stale, client).await.unwrap();
        let spoofed = wire_response(id, 0x8580, &question(28), &[&aaaa]);
        spoofer.send_to(&spoofed, client).await.unwrap();
        let truncated = wire_response(id, 0x8780, &question(28), &[]);
        udp.send_to(&truncated, client).await.unwrap();
        let (mut stream, _) = tcp.accept().await.unwrap();
        let mut prefix = [0u8; 2];
        stream.read_exact(&mut prefix).await.unwrap();
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        stream.read_exact(&mut body).await.unwrap();
        assert_eq!(body[..2], id.to_be_bytes());
        let full = wire_response(id, 0x8580, &question(28), &[&aaaa]);
        let mut frame = u16::try_from(full.len()).unwrap().to_be_bytes().to_vec();
        frame.extend_from_slice(&full);
        stream.write_all(&frame).await.unwrap();
    };
    let server_task = tokio::spawn(serve);
    let spec = DnsSpec::new("dual.lab", 28, DnsTransport::Udp, true).unwrap();
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    let result = measure(([127, 0, 0, 1], port).into(), &spec, None, deadline)
        .await
        .unwrap();
    server_task.await.unwrap();
    assert_eq!(result.transport_used, DnsTransport::Tcp, "{result:?}");
    assert_eq!(result.failure, None);
    let response = result.response.unwrap();
    assert_eq!(response.flags & DnsResponse::FLAG_TC, 0);
    assert_eq!(response.answers.len(), 1);
    assert_eq!(response.answers[0].data, "2001:db8::2");
    assert_eq!(response.answers[0].ttl, 7);
    assert!(result.rtt_ns.is_some());
}

#[tokio::test]
async fn a_silent_server_is_a_timeout_outcome() {
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let spec = DnsSpec::new("dual.lab", 1, DnsTransport::Udp, false).unwrap();
    let deadline = Instant::now() + std::time::Duration::from_millis(200);
    let result = measure(silent.local_addr().unwrap(), &spec, None, deadline)
        .await
        .unwrap();
    assert_eq!(result.response, None);
    assert_eq!(result.rtt_ns, None);
    assert!(result.failure.unwrap().starts_with("timeout"));
}

#[test]
fn the_system_resolver_is_the_first_nameserver_as_the_c_library_reads_it() {
    let text = "# generated\nsearch lab\n  nameserver 2001:db8::99\nnameserver   2001:db8::53 \n\
                nameserver 192.0.2.53\noptions timeout:1\n";
    // An indented line is not an entry for the C library either.
    assert_eq!(first_nameserver(text), Ok("2001:db8::53".parse().unwrap()));
    assert_eq!(
        first_nameserver("nameserver\t127.0.0.53\n"),
        Ok("127.0.0.53".parse().unwrap())
    );
    // Commented, misspelt or empty entries are not resolvers.
    assert!(
        first_nameserver("#nameserver 2001:db8::1\nnameservers 2001:db8::2\nnameserver\n").is_err()
    );
    assert!(first_nameserver("").is_err());
    // A first entry this probe cannot ask is an error, not a silent switch to the second.
    for first in [
        "fe80::1%eth0",
        "::",
        "ff02::1",
        "255.255.255.255",
        "0.0.0.0",
    ] {
        let text = format!("nameserver {first}\nnameserver 2001:db8::53\n");
        assert!(first_nameserver(&text).is_err(), "{first}");
    }
}

#[test]
fn the_host_resolver_is_asked_only_about_public_names_and_address_records() {
    let spec = |name: &str, query_type: u32| {
        DnsSpec::new(name, query_type, DnsTransport::Udp, true)
            .unwrap()
            .with_system_resolver(true)
    };
    for allowed in [
        ("gouv.fr", 28),
        ("www.service-public.fr", 1),
        ("example.org", 65),
    ] {
        assert!(
            check_system_resolver_question(&spec(allowed.0, allowed.1)).is_ok(),
            "{allowed:?}"
        );
    }
    for (name, query_type) in [
        ("gouv.fr", 255),
        ("gouv.fr", 252),
        ("gouv.fr", 12),
        ("router", 28),
        ("router.lan", 28),
        ("fritz.box.local", 1),
        ("nas.home.arpa", 28),
        ("1.1.168.192.in-addr.arpa", 28),
        ("dc.corp", 1),
        ("localhost", 1),
    ] {
        let refused = check_system_resolver_question(&spec(name, query_type)).unwrap_err();
        assert_eq!(refused.class, ErrorClass::Policy, "{name} {query_type}");
    }
}

/// A DoT server on ::1 for one connection with the fixture certificate: reads one framed
/// query and answers with what `answer` makes of its id (raw bytes, framing included).
async fn dot_server(
    alpn: &[&str],
    answer: fn(u16) -> Vec<u8>,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let config = crate::tls::testserver::server_config(alpn);
    let listener = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let Ok(mut tls) = acceptor.accept(tcp).await else {
            return;
        };
        let mut prefix = [0u8; 2];
        if tls.read_exact(&mut prefix).await.is_err() {
            return;
        }
        let mut query = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        tls.read_exact(&mut query).await.unwrap();
        let id = u16::from_be_bytes([query[0], query[1]]);
        let _ = tls.write_all(&answer(id)).await;
        let _ = tls.shutdown().await;
    });
    (address, task)
}

fn framed_aaaa(id: u16) -> Vec<u8> {
    let aaaa = record(
        28,
        7,
        &[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6],
    );
    let message = wire_response(id, 0x8180, &question(28), &[&aaaa]);
    let mut frame = u16::try_from(message.len()).unwrap().to_be_bytes().to_vec();
    frame.extend_from_slice(&message);
    frame
}

fn encrypted_spec(transport: DnsTransport, name: &str) -> DnsSpec {
    DnsSpec::new("dual.lab", 28, transport, true)
        .unwrap()
        .with_server_name(name)
        .unwrap()
}

#[tokio::test]
async fn dot_answers_with_connect_and_tls_phases() {
    let (address, server) = dot_server(&[], framed_aaaa).await;
    let ca = crate::tls::testserver::fixture_ca();
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    let spec = encrypted_spec(DnsTransport::Tls, "fixture.test");
    let result = measure(address, &spec, Some(&ca), deadline).await.unwrap();
    server.await.unwrap();
    assert_eq!(result.failure, None, "{result:?}");
    assert_eq!(result.transport_used, DnsTransport::Tls);
    let session = result.session.clone().unwrap();
    assert!(session.connect_ns.is_some() && session.tls_ns.is_some());
    assert_eq!(session.tls_version.as_deref(), Some("TLSv1.3"));
    assert_eq!(session.http_status, None);
    assert_eq!(result.response.unwrap().answers[0].data, "2001:db8::6");
    assert!(result.rtt_ns.is_some());
}

#[tokio::test]
async fn dot_certificate_and_refusal_failures_are_classed() {
    let ca = crate::tls::testserver::fixture_ca();
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    // The certificate is for fixture.test: another name does not verify.
    let (address, server) = dot_server(&[], framed_aaaa).await;
    let spec = encrypted_spec(DnsTransport::Tls, "wrong.test");
    let result = measure(address, &spec, Some(&ca), deadline).await.unwrap();
    server.await.unwrap();
    assert_eq!(
        result.failure_class,
        Some(DnsFailureClass::Certificate),
        "{result:?}"
    );
    assert!(result.failure.as_deref().unwrap().contains("name mismatch"));
    let session = result.session.unwrap();
    assert!(session.connect_ns.is_some() && session.tls_ns.is_none());
    // Without the fixture CA the issuer is unknown.
    let (address, server) = dot_server(&[], framed_aaaa).await;
    let spec = encrypted_spec(DnsTransport::Tls, "fixture.test");
    let result = measure(address, &spec, None, deadline).await.unwrap();
    server.await.unwrap();
    assert_eq!(result.failure_class, Some(DnsFailureClass::Certificate));
    assert!(result.failure.unwrap().contains("unknown issuer"));
    // Nothing listens: refused, before any TLS.
    let result = measure(address, &spec, Some(&ca), deadline).await.unwrap();
    assert_eq!(result.failure_class, Some(DnsFailureClass::Refused));
    assert_eq!(result.session.as_ref().unwrap().tls_ns, None);
    let text = crate::render::dns(&result);
    assert!(text.contains("no answer (refused)"), "{text}");
}

#[tokio::test]
async fn dot_hostile_answers_are_malformed_not_memory() {
    let ca = crate::tls::testserver::fixture_ca();
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    // A length prefix of 65535 and then the close: at most 64 KiB were ever asked for.
    let (address, server) = dot_server(&[], |_| vec![0xFF, 0xFF, 1, 2, 3]).await;
    let spec = encrypted_spec(DnsTransport::Tls, "fixture.test");
    let result = measure(address, &spec, Some(&ca), deadline).await.unwrap();
    server.await.unwrap();
    assert_eq!(
        result.failure_class,
        Some(DnsFailureClass::Malformed),
        "{result:?}"
    );
    // An answer to another id, then the close.
    let (address, server) = dot_server(&[], |id| framed_aaaa(id.wrapping_add(1))).await;
    let result = measure(address, &spec, Some(&ca), deadline).await.unwrap();
    server.await.unwrap();
    assert_eq!(result.failure_class, Some(DnsFailureClass::Malformed));
}

#[tokio::test]
async fn doh_needs_http2_in_alpn() {
    // A TLS server that only speaks HTTP/1.1: the exchange fails at the HTTP layer.
    let ca = crate::tls::testserver::fixture_ca();
    let (address, server) = crate::tls::testserver::tls(&["http/1.1"], Vec::new()).await;
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    let spec = encrypted_spec(DnsTransport::Https, "fixture.test");
    let result = measure(address, &spec, Some(&ca), deadline).await.unwrap();
    let _ = server.await;
    assert_eq!(result.transport_used, DnsTransport::Https);
    // rustls refuses a server that selects none of the offered protocols... or the server
    // declines ALPN: both are failures of the HTTP/2 agreement, not of the certificate.
    assert!(
        matches!(
            result.failure_class,
            Some(DnsFailureClass::Http | DnsFailureClass::Tls)
        ),
        "{result:?}"
    );
    result.validate().unwrap();
}

/// What the DoH test server answers.
#[derive(Clone, Copy)]
enum Doh {
    /// 200, `application/dns-message`, an AAAA answer to the query's id.
    Answer,
    /// 200 and a body that never ends.
    Endless,
    /// 503.
    Unavailable,
    /// 200 but `text/html`.
    Html,
}

/// A DoH server over HTTP/2 on ::1 for one connection with the fixture certificate; the join
/// handle gives the request's method, path and content type.
async fn doh_server(
    behaviour: Doh,
) -> (
    SocketAddr,
    tokio::task::JoinHandle<Option<(String, String, String)>>,
) {
    use http_body_util::combinators::BoxBody;
    use http_body_util::{BodyExt, Full, StreamBody};
    use hyper::body::Frame;
    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};

    let config = crate::tls::testserver::server_config(&["h2"]);
    let listener = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let seen = Arc::new(Mutex::new(None));
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let Ok(tls) = acceptor.accept(tcp).await else {
            return None;
        };
        let recorded = Arc::clone(&seen);
        let service =
            hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let recorded = Arc::clone(&recorded);
                async move {
                    let head = (
                        request.method().to_string(),
                        request.uri().path().to_owned(),
                        request
                            .headers()
                            .get("content-type")
                            .map(|v| v.to_str().unwrap().to_owned())
                            .unwrap_or_default(),
                    );
                    *recorded.lock().unwrap() = Some(head);
                    let query = request.into_body().collect().await.unwrap().to_bytes();
                    let id = u16::from_be_bytes([query[0], query[1]]);
                    let full = |bytes: Vec<u8>| -> BoxBody<VecDeque<u8>, Infallible> {
                        Full::new(VecDeque::from(bytes)).boxed()
                    };
                    let (status, content_type, body) = match behaviour {
                        Doh::Answer => (
                            200,
                            "application/dns-message",
                            full(framed_aaaa(id)[2..].to_vec()),
                        ),
                        Doh::Html => (200, "text/html", full(b"<html></html>".to_vec())),
                        Doh::Unavailable => (503, "text/plain", full(b"busy".to_vec())),
                        Doh::Endless => {
                            let chunks = std::iter::repeat_with(|| {
                                Ok::<_, Infallible>(Frame::data(VecDeque::from(vec![
                                    0u8;
                                    16 * 1024
                                ])))
                            });
                            (
                                200,
                                "application/dns-message",
                                StreamBody::new(tokio_stream::iter(chunks)).boxed(),
                            )
                        }
                    };
                    let response = hyper::Response::builder()
                        .status(status)
                        .header("content-type", content_type)
                        .body(body)
                        .unwrap();
                    Ok::<_, Infallible>(response)
                }
            });
        let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
            .await;
        seen.lock().unwrap().take()
    });
    (address, task)
}

#[tokio::test]
async fn doh_posts_a_dns_message_over_http2() {
    let ca = crate::tls::testserver::fixture_ca();
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    let (address, server) = doh_server(Doh::Answer).await;
    let spec = encrypted_spec(DnsTransport::Https, "fixture.test")
        .with_path("/q")
        .unwrap();
    let result = measure(address, &spec, Some(&ca), deadline).await.unwrap();
    let request = server.await.unwrap();
    assert_eq!(result.failure, None, "{result:?}");
    assert_eq!(result.response.unwrap().answers[0].data, "2001:db8::6");
    let session = result.session.unwrap();
    assert_eq!(session.http_status, Some(200));
    assert!(session.connect_ns.is_some() && session.tls_ns.is_some());
    assert_eq!(
        request,
        Some((
            "POST".to_owned(),
            "/q".to_owned(),
            "application/dns-message".to_owned()
        ))
    );
}

#[tokio::test]
async fn doh_hostile_and_failing_servers_are_classed_and_bounded() {
    let ca = crate::tls::testserver::fixture_ca();
    let spec = encrypted_spec(DnsTransport::Https, "fixture.test");
    for (behaviour, class, words) in [
        (
            Doh::Endless,
            DnsFailureClass::Malformed,
            "larger than a DNS message",
        ),
        (Doh::Unavailable, DnsFailureClass::Http, "HTTP status 503"),
        (Doh::Html, DnsFailureClass::Http, "text/html"),
    ] {
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let (address, server) = doh_server(behaviour).await;
        let started = Instant::now();
        let result = measure(address, &spec, Some(&ca), deadline).await.unwrap();
        server.abort();
        assert_eq!(result.failure_class, Some(class), "{result:?}");
        assert!(
            result.failure.as_deref().unwrap().contains(words),
            "{result:?}"
        );
        // The endless body ends at the limit, not at the deadline.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{result:?}"
        );
        result.validate().unwrap();
    }
}
