//! Local servers for unit tests: TLS with the fixture certificate (`fixture.test`,
//! 2001:db8::443, signed by the fixture CA) and plain TCP, on ::1, each answering with what
//! the test hands it.

use crate::context::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

pub fn fixture_ca() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/tls/testdata/ca.pem")
}

/// The extra CA file of a test's context: the fixture CA, or none (the system store only).
pub fn ca(trust_fixture_ca: bool) -> Option<PathBuf> {
    trust_fixture_ca.then(fixture_ca)
}

pub fn context<'a>(ca: Option<&'a Path>, name: Option<&'a str>, timeout: Duration) -> Context<'a> {
    crate::context::for_test(ca, name, timeout)
}

pub fn server_config(alpn: &[&str]) -> Arc<rustls::ServerConfig> {
    server_config_for(alpn, rustls::DEFAULT_VERSIONS)
}

pub fn server_config_for(
    alpn: &[&str],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ServerConfig> {
    let cert = CertificateDer::from_pem_slice(include_bytes!("testdata/leaf.pem")).unwrap();
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("testdata/leaf.key")).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(super::provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}

/// Reads the request head (to the blank line, EOF, or half a second of silence: a TLS
/// client waits for the server), then writes `response` and closes.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, response: Vec<u8>) -> Vec<u8> {
    let mut request = Vec::new();
    let mut byte = [0u8; 1];
    while !request.ends_with(b"\r\n\r\n") {
        let read = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut byte));
        match read.await {
            Ok(Ok(1)) => request.push(byte[0]),
            _ => break,
        }
    }
    let _ = stream.write_all(&response).await;
    let _ = stream.shutdown().await;
    request
}

/// A TLS server for one connection; the join handle gives the request it read.
pub async fn tls(
    alpn: &[&str],
    response: Vec<u8>,
) -> (SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
    tls_with(server_config(alpn), response).await
}

/// A TLS server for one connection with the given configuration.
pub async fn tls_with(
    config: Arc<rustls::ServerConfig>,
    response: Vec<u8>,
) -> (SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("[::1]:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        match acceptor.accept(tcp).await {
            Ok(tls) => answer(tls, response).await,
            Err(_) => Vec::new(),
        }
    });
    (address, task)
}

/// A plain TCP server for one connection.
pub async fn plain(response: Vec<u8>) -> (SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("[::1]:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        answer(tcp, response).await
    });
    (address, task)
}

/// A TLS server on `listener` answering one connection per response, in order (a page, its
/// redirect and its subresources on one port); the join handle gives the requests it read.
pub fn tls_serving(
    listener: TcpListener,
    alpn: &[&str],
    responses: Vec<Vec<u8>>,
) -> tokio::task::JoinHandle<Vec<Vec<u8>>> {
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config(alpn));
    tokio::spawn(async move {
        let mut requests = Vec::new();
        for response in responses {
            let (tcp, _) = listener.accept().await.unwrap();
            requests.push(match acceptor.accept(tcp).await {
                Ok(tls) => answer(tls, response).await,
                Err(_) => Vec::new(),
            });
        }
        requests
    })
}
