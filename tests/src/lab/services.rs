//! Services the lab's target hosts run, each with the ground truth tests compare against: an
//! authoritative-style DNS server (dnsmasq), a lab certificate authority (openssl CLI), HTTP and
//! HTTPS (a Python stdlib script), HTTP/3 over QUIC (a Python script on aioquic), DNS over TLS
//! and over HTTPS (unbound), and filtered TCP ports (nftables).
//!
//! Every `start_*` function returns only once the program listens on all its ports (checked
//! with `ss` for the program's own process, so another listener on the port does not count);
//! if the program exits first, the error carries its output. Programs run as children of the
//! [`Lab`], so they die with it. A missing program is reported as [`LabError::Unavailable`]
//! naming the package to install.

use super::{Lab, LabError};
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a service may take to listen (python3 importing aioquic takes about a second on a
/// busy 2-core machine).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a just-spawned service may take to show up in /proc with its marker.
const FIND_TIMEOUT: Duration = Duration::from_secs(2);
/// Interval between two looks at the listening sockets.
const POLL: Duration = Duration::from_millis(50);
/// nftables table holding the lab's filtered ports.
const FILTER_TABLE: &str = "sixmap_lab_filter";

/// One DNS name and the addresses it resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    pub name: String,
    pub aaaa: Vec<Ipv6Addr>,
    pub a: Vec<Ipv4Addr>,
}

/// dnsmasq in `node`'s namespace answering only the given records (authoritative-style, no
/// upstream, no /etc/hosts, no DHCP), over UDP and TCP on port 53 of all the node's addresses.
/// A name with no AAAA must answer NOERROR with no data for AAAA (not NXDOMAIN); unknown names
/// NXDOMAIN.
///
/// Answers carry TTL 0 (dnsmasq's default for local records); positive answers have the `aa`
/// flag, negative ones (NODATA, NXDOMAIN) do not and carry no SOA. Each address also gets a PTR
/// record (the first name given for it). A record with neither AAAA nor A still exists: it
/// carries a TXT record, so A and AAAA queries for it answer NOERROR with no data.
pub fn start_dns(lab: &mut Lab, node: &str, records: &[DnsRecord]) -> Result<(), LabError> {
    require(
        "dnsmasq",
        &["--version"],
        "dnsmasq: apt-get install dnsmasq-base",
    )?;
    let mut config = String::from(
        "# sixmap lab DNS: only the records below, nothing forwarded, no DHCP.\n\
         port=53\n\
         user=root\n\
         pid-file=\n\
         no-resolv\n\
         no-hosts\n\
         no-poll\n\
         log-facility=-\n\
         # Every interface (also on addresses of other subnets: no local-service default).\n\
         interface=*\n\
         # Every domain is local: names not below answer NXDOMAIN.\n\
         local=/#/\n",
    );
    for record in records {
        let name = record.name.strip_suffix('.').unwrap_or(&record.name);
        let valid = !name.is_empty()
            && name.len() <= 253
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !valid {
            return Err(LabError::Command {
                command: format!("start_dns in {node}"),
                stderr: format!("invalid DNS name {:?}", record.name),
            });
        }
        for v6 in &record.aaaa {
            config.push_str(&format!("host-record={name},{v6}\n"));
        }
        for v4 in &record.a {
            config.push_str(&format!("host-record={name},{v4}\n"));
        }
        if record.aaaa.is_empty() && record.a.is_empty() {
            config.push_str(&format!(
                "txt-record={name},sixmap lab name without addresses\n"
            ));
        }
    }
    // `start_dns` has no directory of its own: the files live in the temporary directory under
    // the instance's unique name and are removed once dnsmasq has read its configuration (its
    // output keeps going to the unlinked log).
    let instance = instance_name(lab, node, "dnsmasq");
    let tmp = std::env::temp_dir();
    let conf = tmp.join(format!("{instance}.conf"));
    let log = tmp.join(format!("{instance}.log"));
    write(&conf, config.as_bytes())?;
    let conf_arg = format!("--conf-file={}", conf.display());
    let result = launch(
        lab,
        node,
        "dnsmasq",
        &["--keep-in-foreground", &conf_arg],
        &conf_arg,
        &log,
        &[(53, true), (53, false)],
    );
    let _ = std::fs::remove_file(&conf);
    let _ = std::fs::remove_file(&log);
    result
}

/// A lab certificate authority made with the openssl CLI: the CA's certificate, and a leaf
/// certificate signed by it with its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabCa {
    /// The CA certificate (PEM): what clients trust (`curl --cacert`).
    pub ca_cert: PathBuf,
    /// The leaf certificate (PEM), for the given names and addresses.
    pub cert: PathBuf,
    /// The leaf's private key (PEM, PKCS#8, unencrypted).
    pub key: PathBuf,
}

/// A lab certificate authority made with the openssl CLI in `dir`: a CA key+cert, and a leaf
/// cert for the given DNS names and IP addresses signed by it (SANs), ECDSA P-256, valid 30
/// days. Files: `ca.pem`, `ca.key`, `leaf.pem`, `leaf.key` (and the `.cnf`, `.csr`, `.srl`
/// files openssl worked from).
pub fn make_ca(dir: &Path, names: &[&str], addresses: &[IpAddr]) -> Result<LabCa, LabError> {
    require("openssl", &["version"], "openssl: apt-get install openssl")?;
    let mut sans: Vec<String> = Vec::new();
    for name in names {
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'*'));
        if !valid {
            return Err(LabError::Command {
                command: "make_ca".into(),
                stderr: format!("invalid DNS name {name:?} for a certificate"),
            });
        }
        sans.push(format!("DNS:{name}"));
    }
    sans.extend(addresses.iter().map(|a| format!("IP:{a}")));
    if sans.is_empty() {
        return Err(LabError::Command {
            command: "make_ca".into(),
            stderr: "a leaf certificate needs at least one DNS name or IP address".into(),
        });
    }
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, &e))?;
    let path = |file: &str| dir.join(file);
    let ca = LabCa {
        ca_cert: path("ca.pem"),
        cert: path("leaf.pem"),
        key: path("leaf.key"),
    };
    write(
        &path("ca.cnf"),
        b"[req]\n\
          distinguished_name = dn\n\
          prompt = no\n\
          x509_extensions = ca_ext\n\
          [dn]\n\
          CN = sixmap lab CA\n\
          [ca_ext]\n\
          basicConstraints = critical, CA:TRUE\n\
          keyUsage = critical, keyCertSign, cRLSign\n\
          subjectKeyIdentifier = hash\n\
          authorityKeyIdentifier = keyid:always\n",
    )?;
    write(
        &path("leaf.cnf"),
        format!(
            "[req]\n\
             distinguished_name = dn\n\
             prompt = no\n\
             [dn]\n\
             CN = sixmap lab server\n\
             [leaf_ext]\n\
             basicConstraints = critical, CA:FALSE\n\
             keyUsage = critical, digitalSignature\n\
             extendedKeyUsage = serverAuth\n\
             subjectKeyIdentifier = hash\n\
             authorityKeyIdentifier = keyid\n\
             subjectAltName = {}\n",
            sans.join(", ")
        )
        .as_bytes(),
    )?;
    let p = |file: &str| path(file).display().to_string();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let days = ["-days", "30"];
    super::run(
        "openssl",
        &[
            &["req", "-x509", "-config", &p("ca.cnf")][..],
            &ec,
            &days,
            &["-keyout", &p("ca.key"), "-out", &p("ca.pem")],
        ]
        .concat(),
    )?;
    super::run(
        "openssl",
        &[
            &["req", "-new", "-config", &p("leaf.cnf")][..],
            &ec,
            &["-keyout", &p("leaf.key"), "-out", &p("leaf.csr")],
        ]
        .concat(),
    )?;
    super::run(
        "openssl",
        &[
            &["x509", "-req", "-in", &p("leaf.csr"), "-CA", &p("ca.pem")][..],
            &[
                "-CAkey",
                &p("ca.key"),
                "-CAserial",
                &p("ca.srl"),
                "-CAcreateserial",
            ],
            &["-extfile", &p("leaf.cnf"), "-extensions", "leaf_ext"],
            &days,
            &["-out", &p("leaf.pem")],
        ]
        .concat(),
    )?;
    Ok(ca)
}

/// The HTTP and HTTPS server: dual-stack sockets, TLS handshakes in the connection's thread,
/// no request log (stderr keeps errors only).
const WEB_SCRIPT: &str = r#"# sixmap lab web server: GET/HEAD / -> 200 with the body, anything else 404.
import http.server, socket, socketserver, ssl, sys, threading

CERT, KEY, BODY_FILE = sys.argv[1:4]
with open(BODY_FILE, "rb") as f:
    BODY = f.read()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sixmap-lab"
    timeout = 30

    def answer(self, with_body):
        status, body = (200, BODY) if self.path == "/" else (404, b"not found\n")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_GET(self):
        self.answer(True)

    def do_HEAD(self):
        self.answer(False)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True

    def __init__(self, port, context):
        self.context = context
        super().__init__(("::", port), Handler)

    def server_bind(self):
        # Dual stack; and no socket.getfqdn() (HTTPServer's), which would query DNS.
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "sixmap-lab", self.server_address[1]

    def finish_request(self, request, client_address):
        request.settimeout(30)
        if self.context is not None:
            request = self.context.wrap_socket(request, server_side=True)
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        print(f"{client_address[0]}: {sys.exc_info()[1]!r}", file=sys.stderr, flush=True)


context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(CERT, KEY)
context.set_alpn_protocols(["http/1.1"])
servers = [Server(80, None), Server(443, context)]
for server in servers:
    threading.Thread(target=server.serve_forever, daemon=True).start()
threading.Event().wait()
"#;

/// HTTP on port 80 and HTTPS on 443 (the lab CA's leaf cert) in `node`'s namespace, on IPv6 and
/// IPv4 (whatever addresses the node has), serving `body` at `/` with status 200 for GET and
/// HEAD, and 404 elsewhere. A small Python 3 stdlib script (http.server + ssl), written to
/// `dir` and run with python3; dual-stack sockets. HEAD must not send a body.
///
/// Responses are HTTP/1.1 with `Content-Length` and `Content-Type: text/plain; charset=utf-8`;
/// the 404 body is `not found\n`; TLS offers ALPN `http/1.1` only; other methods get 501.
pub fn start_web(
    lab: &mut Lab,
    node: &str,
    ca: &LabCa,
    dir: &Path,
    body: &str,
) -> Result<(), LabError> {
    require_python(&[])?;
    start_python(
        lab,
        node,
        "web",
        WEB_SCRIPT,
        ca,
        dir,
        body,
        &[(80, false), (443, false)],
    )
}

/// The HTTP/3 server, after aioquic's documented asyncio API (`serve`, a
/// `QuicConnectionProtocol` subclass feeding `H3Connection`).
const QUIC_SCRIPT: &str = r#"# sixmap lab HTTP/3 server: GET/HEAD / -> 200 with the body, anything else 404.
import asyncio, sys
from aioquic.asyncio import QuicConnectionProtocol, serve
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ProtocolNegotiated

CERT, KEY, BODY_FILE = sys.argv[1:4]
with open(BODY_FILE, "rb") as f:
    BODY = f.read()


class Http3(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = None

    def quic_event_received(self, event):
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
            self.h3 = H3Connection(self._quic)
        if self.h3 is None:
            return
        for h3_event in self.h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived):
                self.answer(h3_event.stream_id, dict(h3_event.headers))

    def answer(self, stream_id, headers):
        method, path = headers.get(b":method"), headers.get(b":path")
        if method not in (b"GET", b"HEAD"):
            status, body = 405, b""
        elif path == b"/":
            status, body = 200, BODY
        else:
            status, body = 404, b"not found\n"
        with_body = method == b"GET"
        self.h3.send_headers(
            stream_id,
            [
                (b":status", str(status).encode()),
                (b"server", b"sixmap-lab"),
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
            end_stream=not with_body,
        )
        if with_body:
            self.h3.send_data(stream_id, body, end_stream=True)
        self.transmit()


async def main():
    configuration = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
    configuration.load_cert_chain(CERT, KEY)
    # "::" is dual-stack: a new namespace has net.ipv6.bindv6only=0.
    await serve("::", 443, configuration=configuration, create_protocol=Http3)
    await asyncio.Event().wait()


asyncio.run(main())
"#;

/// HTTP/3 over QUIC on UDP 443 in `node`'s namespace with the same cert, serving the same body,
/// using aioquic from PyPI (a small script after aioquic's HTTP/3 server example, written to
/// `dir`). Same answers as [`start_web`] (405 for methods other than GET and HEAD).
pub fn start_quic(
    lab: &mut Lab,
    node: &str,
    ca: &LabCa,
    dir: &Path,
    body: &str,
) -> Result<(), LabError> {
    require_python(&["aioquic.asyncio", "aioquic.h3.connection"])?;
    start_python(
        lab,
        node,
        "quic",
        QUIC_SCRIPT,
        ca,
        dir,
        body,
        &[(443, true)],
    )
}

/// Port of DNS over TLS (RFC 7858) of [`start_encrypted_dns`].
pub const DOT_PORT: u16 = 853;
/// Port and path of DNS over HTTPS (RFC 8484) of [`start_encrypted_dns`].
pub const DOH_PORT: u16 = 443;
pub const DOH_PATH: &str = "/dns-query";

/// DNS over TLS on port 853 and DNS over HTTPS (HTTP/2, `POST`/`GET` at `/dns-query`) on port
/// 443 of each of `listen`, served by Debian's `unbound` in `node`'s namespace with the lab CA's
/// leaf certificate, forwarding every question to `upstream` (the lab's dnsmasq, port 53).
/// Nothing else: no plain port 53 (the node's dnsmasq keeps it), no cache (TTL 0), no DNSSEC
/// validation (the lab's zone is unsigned), no daemon. Run the way the access lab runs its
/// DNS64 unbound. unbound's DoH speaks HTTP/2 only.
pub fn start_encrypted_dns(
    lab: &mut Lab,
    node: &str,
    ca: &LabCa,
    dir: &Path,
    listen: &[IpAddr],
    upstream: IpAddr,
) -> Result<(), LabError> {
    require("unbound", &["-V"], "unbound: apt-get install unbound")?;
    let instance = instance_name(lab, node, "unbound-tls");
    let conf = dir.join(format!("{instance}.conf"));
    let mut text = String::from("server:\n");
    for address in listen {
        for port in [DOT_PORT, DOH_PORT] {
            text.push_str(&format!("  interface: {address}@{port}\n"));
        }
    }
    text.push_str(&format!(
        "  tls-port: {DOT_PORT}\n\
         \x20 https-port: {DOH_PORT}\n\
         \x20 http-endpoint: \"{DOH_PATH}\"\n\
         \x20 tls-service-key: \"{key}\"\n\
         \x20 tls-service-pem: \"{cert}\"\n\
         \x20 do-daemonize: no\n\
         \x20 username: \"\"\n\
         \x20 chroot: \"\"\n\
         \x20 pidfile: \"\"\n\
         \x20 directory: \"{dir}\"\n\
         \x20 use-syslog: no\n\
         \x20 logfile: \"\"\n\
         \x20 verbosity: 1\n\
         \x20 access-control: ::/0 allow\n\
         \x20 access-control: 0.0.0.0/0 allow\n\
         \x20 module-config: \"iterator\"\n\
         \x20 cache-max-ttl: 0\n\
         \x20 cache-max-negative-ttl: 0\n\
         forward-zone:\n\
         \x20 name: \".\"\n\
         \x20 forward-addr: {upstream}\n",
        key = ca.key.display(),
        cert = ca.cert.display(),
        dir = dir.display(),
    ));
    write(&conf, text.as_bytes())?;
    let conf_arg = conf.display().to_string();
    launch(
        lab,
        node,
        "unbound",
        &["-d", "-c", &conf_arg],
        &conf_arg,
        &dir.join(format!("{instance}.log")),
        &[(DOT_PORT, false), (DOH_PORT, false)],
    )
}

/// A TCP port that is "filtered": nftables in `node` drops inbound packets to it (v4 and v6),
/// so connects time out. (A "closed" port needs nothing: the kernel answers RST.)
///
/// The rules live in the node's `inet sixmap_lab_filter` table, chain `input`; calling this
/// again adds a port.
pub fn filter_tcp_port(lab: &Lab, node: &str, port: u16) -> Result<(), LabError> {
    lab.nft(
        node,
        &format!(
            "add table inet {FILTER_TABLE}\n\
             add chain inet {FILTER_TABLE} input {{ type filter hook input priority 0; policy accept; }}\n\
             add rule inet {FILTER_TABLE} input tcp dport {port} drop\n"
        ),
    )
}

/// Waits until something listens on the node's `port` (TCP or UDP per `udp`), by polling
/// `ss -lntu` in the namespace, up to `timeout`; errors naming the service if not.
pub fn wait_listening(
    lab: &Lab,
    node: &str,
    port: u16,
    udp: bool,
    timeout: Duration,
) -> Result<(), LabError> {
    let deadline = Instant::now() + timeout;
    loop {
        if listening(lab, node)
            .iter()
            .any(|s| s.port == port && s.udp == udp)
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(LabError::Command {
                command: format!("wait for {} in {node}", service_name(port, udp)),
                stderr: format!("nothing listens after {timeout:?}"),
            });
        }
        std::thread::sleep(POLL);
    }
}

/// `tcp/443`, `udp/53`: how errors name a port.
fn service_name(port: u16, udp: bool) -> String {
    format!("{}/{port}", if udp { "udp" } else { "tcp" })
}

/// A listening socket as `ss` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listener {
    udp: bool,
    port: u16,
    /// Processes holding it (`ss -p`; empty without it).
    pids: Vec<u32>,
}

/// The node's listening TCP and bound UDP sockets, with their processes.
fn listening(lab: &Lab, node: &str) -> Vec<Listener> {
    let output = lab.exec_unchecked(node, &["ss", "-H", "-lntup"]);
    parse_ss(&String::from_utf8_lossy(&output.stdout))
}

/// Parses `ss -lntu[p]` lines: `netid state recv-q send-q local peer [users:((..,pid=N,..))]`.
fn parse_ss(text: &str) -> Vec<Listener> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let udp = match fields.next()? {
                "udp" => true,
                "tcp" => false,
                _ => return None, // the header, or another protocol
            };
            let local = fields.nth(3)?;
            let port = local.rsplit_once(':')?.1.parse().ok()?;
            let pids = line
                .split("pid=")
                .skip(1)
                .filter_map(|rest| {
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    digits.parse().ok()
                })
                .collect();
            Some(Listener { udp, port, pids })
        })
        .collect()
}

/// The process whose command line has `arg` as one of its arguments (a zombie's is empty).
/// `ip netns exec` and the pyenv shims exec the program, so the pid stays the same from spawn
/// to the running service.
fn process_with_arg(arg: &str) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            cmdline
                .split(|b| *b == 0)
                .any(|a| a == arg.as_bytes())
                .then_some(pid)
        })
}

/// Whether a process is alive: it exists and is not a zombie.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| !matches!(state, "Z" | "X" | "x"))
    })
}

/// Spawns `program args` in the node with stdout and stderr to `log`, then waits until the
/// process listens on every one of `ports` (port, udp). `marker` is an argument unique to this
/// instance, by which the process is found.
pub(super) fn launch(
    lab: &mut Lab,
    node: &str,
    program: &str,
    args: &[&str],
    marker: &str,
    log: &Path,
    ports: &[(u16, bool)],
) -> Result<(), LabError> {
    let file = File::create(log).map_err(|e| io_error(log, &e))?;
    let file2 = file.try_clone().map_err(|e| io_error(log, &e))?;
    let mut command = lab.command(node, program);
    command
        .args(args)
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(file2));
    lab.spawn(node, command)?;
    let started = Instant::now();
    let failed = |why: String| {
        let output = std::fs::read_to_string(log).unwrap_or_default();
        LabError::Command {
            command: format!("{program} in {node}"),
            stderr: format!("{why}; its output: {}", output.trim()),
        }
    };
    // The process is found once by its marker, then followed by pid: it is the lab's child and
    // never reaped before the lab drops, so its pid cannot be reused meanwhile. While an exec is
    // in progress its command line reads empty, so not finding it once proves nothing; a
    // process that is never found exited at once.
    let mut pid = None;
    loop {
        if pid.is_none() {
            pid = process_with_arg(marker);
        }
        let Some(pid) = pid else {
            if started.elapsed() >= FIND_TIMEOUT {
                return Err(failed(format!(
                    "exited at once (no process with {marker} after {FIND_TIMEOUT:?})"
                )));
            }
            std::thread::sleep(POLL);
            continue;
        };
        if !running(pid) {
            return Err(failed(format!(
                "exited after {:?} before listening",
                started.elapsed()
            )));
        }
        let sockets = listening(lab, node);
        let missing: Vec<String> = ports
            .iter()
            .filter(|(port, udp)| {
                !sockets
                    .iter()
                    .any(|s| s.port == *port && s.udp == *udp && s.pids.contains(&pid))
            })
            .map(|(port, udp)| service_name(*port, *udp))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= START_TIMEOUT {
            return Err(failed(format!(
                "not listening on {} after {START_TIMEOUT:?}",
                missing.join(", ")
            )));
        }
        std::thread::sleep(POLL);
    }
}

/// A name unique to one start of a service (`<netns>-<kind>-<n>`): its files are named after
/// it, and the path of one of them, in its command line, finds its process.
pub(super) fn instance_name(lab: &Lab, node: &str, kind: &str) -> String {
    static STARTS: AtomicU32 = AtomicU32::new(0);
    let n = STARTS.fetch_add(1, Ordering::Relaxed);
    format!("{}-{kind}-{n}", lab.node(node).netns)
}

/// Writes the script and the body to `dir` and runs the script with python3 in the node.
#[allow(clippy::too_many_arguments)]
fn start_python(
    lab: &mut Lab,
    node: &str,
    kind: &str,
    script: &str,
    ca: &LabCa,
    dir: &Path,
    body: &str,
    ports: &[(u16, bool)],
) -> Result<(), LabError> {
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, &e))?;
    let instance = instance_name(lab, node, kind);
    let script_path = dir.join(format!("{instance}.py"));
    let body_path = dir.join(format!("{instance}.body"));
    let log = dir.join(format!("{instance}.log"));
    write(&script_path, script.as_bytes())?;
    write(&body_path, body.as_bytes())?;
    let script_arg = script_path.display().to_string();
    launch(
        lab,
        node,
        "python3",
        &[
            "-u",
            &script_arg,
            &ca.cert.display().to_string(),
            &ca.key.display().to_string(),
            &body_path.display().to_string(),
        ],
        &script_arg,
        &log,
        ports,
    )
}

/// Fails with the install hint unless `program args` runs and succeeds.
pub(super) fn require(program: &str, args: &[&str], install: &str) -> Result<(), LabError> {
    let ok = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(LabError::Unavailable(install.into()))
    }
}

/// python3 with the standard library's ssl, and the given modules (from aioquic).
fn require_python(aioquic_modules: &[&str]) -> Result<(), LabError> {
    require(
        "python3",
        &["-c", "import ssl, http.server"],
        "python3 (with ssl): apt-get install python3",
    )?;
    if aioquic_modules.is_empty() {
        return Ok(());
    }
    require(
        "python3",
        &["-c", &format!("import {}", aioquic_modules.join(", "))],
        "aioquic: pip install aioquic",
    )
}

pub(super) fn write(path: &Path, contents: &[u8]) -> Result<(), LabError> {
    std::fs::write(path, contents).map_err(|e| io_error(path, &e))
}

fn io_error(path: &Path, error: &std::io::Error) -> LabError {
    LabError::Command {
        command: format!("write {}", path.display()),
        stderr: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Topology, namespaces};

    #[test]
    fn ss_lines_parse() {
        let text = "udp   UNCONN 0      0            0.0.0.0:53        0.0.0.0:*    users:((\"dnsmasq\",pid=20477,fd=4))\n\
                    tcp   LISTEN 0      32              [::]:53           [::]:*    users:((\"dnsmasq\",pid=20477,fd=7),(\"x\",pid=9,fd=1))\n\
                    tcp   LISTEN 0      5                  *:443             *:*\n\
                    Netid State  Recv-Q Send-Q Local Address:Port Peer Address:Port\n";
        assert_eq!(
            parse_ss(text),
            vec![
                Listener {
                    udp: true,
                    port: 53,
                    pids: vec![20477]
                },
                Listener {
                    udp: false,
                    port: 53,
                    pids: vec![20477, 9]
                },
                Listener {
                    udp: false,
                    port: 443,
                    pids: vec![]
                },
            ]
        );
    }

    #[test]
    fn a_missing_program_names_its_package() {
        let error = require("sixmap-no-such-program", &[], "x: apt-get install x")
            .expect_err("missing program");
        assert_eq!(error.to_string(), "the lab needs x: apt-get install x");
    }

    /// Skips (or fails in CI) when a tool the test itself uses is missing.
    fn tool_missing(program: &str, args: &[&str], install: &str) -> bool {
        if require(program, args, install).is_ok() {
            return false;
        }
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("lab test cannot run in CI: it needs {install}");
        }
        eprintln!("skipped: this lab test needs {install}");
        true
    }

    fn text(output: &std::process::Output) -> (String, String) {
        (
            String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        )
    }

    /// `dig @server args` from the client: stdout and stderr.
    fn dig(lab: &Lab, server: &str, args: &[&str]) -> (String, String) {
        let at = format!("@{server}");
        let argv = [&["dig", at.as_str(), "+time=2", "+tries=1"][..], args].concat();
        text(&lab.exec_unchecked("client", &argv))
    }

    /// `curl -sS args` from the client: exit code, stdout, stderr.
    fn curl(lab: &Lab, args: &[&str]) -> (Option<i32>, String, String) {
        let argv = [&["curl", "-sS", "--max-time", "10"][..], args].concat();
        let output = lab.exec_unchecked("client", &argv);
        let (out, err) = text(&output);
        (output.status.code(), out, err)
    }

    /// An HTTP/3 GET with aioquic's client API; prints the status line, then the body.
    const H3_GET: &str = r#"import asyncio, sys
from aioquic.asyncio import QuicConnectionProtocol, connect
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration

HOST, PATH, CA = sys.argv[1], sys.argv[2].encode(), sys.argv[3]


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.status, self.body = None, b""
        self.done = asyncio.get_running_loop().create_future()

    def quic_event_received(self, event):
        for h3_event in self.h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived):
                self.status = dict(h3_event.headers)[b":status"].decode()
            elif isinstance(h3_event, DataReceived):
                self.body += h3_event.data
            if h3_event.stream_ended and not self.done.done():
                self.done.set_result(None)


async def main():
    configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    configuration.load_verify_locations(CA)
    async with connect(HOST, 443, configuration=configuration, create_protocol=Client) as client:
        stream_id = client._quic.get_next_available_stream_id()
        authority = f"[{HOST}]" if ":" in HOST else HOST
        client.h3.send_headers(
            stream_id,
            [(b":method", b"GET"), (b":scheme", b"https"),
             (b":authority", authority.encode()), (b":path", PATH)],
            end_stream=True,
        )
        client.transmit()
        await asyncio.wait_for(client.done, 10)
        print(f"{client._quic.tls.alpn_negotiated} {client.status}")
        sys.stdout.write(client.body.decode())


asyncio.run(main())
"#;

    /// A raw HTTP/1.0 HEAD: prints everything the server sent, so a body after the headers
    /// shows.
    const RAW_HEAD: &str = r#"import socket, sys
s = socket.create_connection((sys.argv[1], 80), timeout=5)
s.sendall(b"HEAD / HTTP/1.0\r\nHost: lab\r\n\r\n")
data = b""
while chunk := s.recv(4096):
    data += chunk
sys.stdout.write(repr(data))
"#;

    #[test]
    fn services_answer_with_their_ground_truth() {
        crate::lab_or_skip!();
        if tool_missing("dig", &["-v"], "dig: apt-get install dnsutils")
            || tool_missing(
                "dnsmasq",
                &["--version"],
                "dnsmasq: apt-get install dnsmasq-base",
            )
            || tool_missing(
                "python3",
                &["-c", "import aioquic"],
                "aioquic: pip install aioquic",
            )
            || tool_missing("curl", &["--version"], "curl: apt-get install curl")
        {
            return;
        }
        let topology = Topology::new()
            .host("client")
            .router("r1")
            .host("server")
            .link("client", "r1")
            .link("r1", "server");
        let mut lab = Lab::build(&topology).expect("lab builds");
        let prefix = lab.prefix().to_owned();
        let v6 = lab.node("server").v6();
        let v4 = lab.node("server").v4().expect("dual-stack link");
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path();

        // DNS.
        let records = [
            DnsRecord {
                name: "v6only.lab".into(),
                aaaa: vec![v6],
                a: vec![],
            },
            DnsRecord {
                name: "dual.lab".into(),
                aaaa: vec![v6, "2001:db8:ffff::1".parse().expect("address")],
                a: vec![v4],
            },
            DnsRecord {
                name: "v4only.lab".into(),
                aaaa: vec![],
                a: vec![v4],
            },
            DnsRecord {
                name: "noaddress.lab".into(),
                aaaa: vec![],
                a: vec![],
            },
        ];
        let started = Instant::now();
        start_dns(&mut lab, "server", &records).expect("dnsmasq starts");
        eprintln!("dnsmasq listening after {:?}", started.elapsed());
        let sorted = |s: String| {
            let mut lines: Vec<String> = s.lines().map(str::to_owned).collect();
            lines.sort();
            lines
        };
        let v6s = v6.to_string();
        let v4s = v4.to_string();
        for transport in ["+notcp", "+tcp"] {
            for server in [&v6s, &v4s] {
                assert_eq!(
                    sorted(dig(&lab, server, &[transport, "+short", "AAAA", "dual.lab"]).0),
                    vec![v6s.clone(), "2001:db8:ffff::1".to_owned()],
                    "AAAA dual.lab {transport} via {server}"
                );
                assert_eq!(
                    dig(&lab, server, &[transport, "+short", "A", "dual.lab"]).0,
                    v4s
                );
                assert_eq!(
                    dig(&lab, server, &[transport, "+short", "AAAA", "v6only.lab"]).0,
                    v6s
                );
                assert_eq!(
                    dig(&lab, server, &[transport, "+short", "A", "v4only.lab"]).0,
                    v4s
                );
                for (qtype, name, status) in [
                    ("AAAA", "v4only.lab", "NOERROR"),
                    ("A", "v6only.lab", "NOERROR"),
                    ("AAAA", "noaddress.lab", "NOERROR"),
                    ("A", "noaddress.lab", "NOERROR"),
                    ("AAAA", "unknown.lab", "NXDOMAIN"),
                    ("AAAA", "example.com", "NXDOMAIN"),
                ] {
                    let (out, err) = dig(&lab, server, &[transport, qtype, name]);
                    assert!(
                        out.contains(&format!("status: {status}")) && out.contains("ANSWER: 0,"),
                        "{qtype} {name} {transport} via {server}: want {status}, no answer; got {out} {err}"
                    );
                }
            }
        }
        let (out, _) = dig(&lab, &v6s, &["AAAA", "dual.lab"]);
        let flags = out.lines().find(|l| l.contains("flags:")).unwrap_or("");
        eprintln!("dig AAAA dual.lab: {flags}");
        let (out, _) = dig(&lab, &v6s, &["AAAA", "v4only.lab"]);
        let flags = out.lines().find(|l| l.contains("flags:")).unwrap_or("");
        eprintln!("dig AAAA v4only.lab (NODATA): {flags}");
        let again = start_dns(&mut lab, "server", &records);
        eprintln!("a second dnsmasq in the same node: {again:?}");
        assert!(
            again
                .as_ref()
                .is_err_and(|e| e.to_string().contains("Address already in use")),
            "{again:?}"
        );

        // HTTP and HTTPS.
        let ca = make_ca(
            &dir.join("ca"),
            &["dual.lab", "v6only.lab"],
            &[IpAddr::V6(v6), IpAddr::V4(v4)],
        )
        .expect("lab CA");
        let cacert = ca.ca_cert.display().to_string();
        let leaf = ca.cert.display().to_string();
        let openssl = |args: &[&str]| {
            let output = Command::new("openssl")
                .args(args)
                .output()
                .expect("openssl");
            (output.status.success(), text(&output).0)
        };
        let (_, dump) = openssl(&["x509", "-noout", "-text", "-in", &leaf]);
        for want in [
            "NIST CURVE: P-256",
            "Issuer: CN = sixmap lab CA",
            "DNS:dual.lab, DNS:v6only.lab, IP Address:2001:DB8:2:0:0:0:0:2, IP Address:10.0.2.2",
            "TLS Web Server Authentication",
        ] {
            assert!(dump.contains(want), "leaf certificate lacks {want}: {dump}");
        }
        let day = 24 * 3600;
        for (seconds, valid) in [(29 * day, true), (31 * day, false)] {
            let checkend = seconds.to_string();
            for cert in [&leaf, &cacert] {
                let (still_valid, _) =
                    openssl(&["x509", "-noout", "-checkend", &checkend, "-in", cert]);
                assert_eq!(still_valid, valid, "{cert} valid in {seconds} s");
            }
        }
        let (verified, out) = openssl(&["verify", "-CAfile", &cacert, &leaf]);
        assert!(verified, "{out}");
        let key = std::fs::read_to_string(&ca.key).expect("leaf key");
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8");
        let body = "hello from the sixmap lab\n";
        let started = Instant::now();
        start_web(&mut lab, "server", &ca, dir, body).expect("web server starts");
        eprintln!("web server listening after {:?}", started.elapsed());
        let url6 = format!("https://[{v6}]/");
        let (code, out, err) = curl(&lab, &["-6", "--cacert", &cacert, &url6]);
        assert_eq!((code, out.as_str()), (Some(0), body.trim()), "{err}");
        let (code, out, err) = curl(&lab, &["-4", &format!("http://{v4}/")]);
        assert_eq!((code, out.as_str()), (Some(0), body.trim()), "{err}");
        let (code, out, err) = curl(
            &lab,
            &["-4", "--cacert", &cacert, &format!("https://{v4}/")],
        );
        assert_eq!((code, out.as_str()), (Some(0), body.trim()), "{err}");
        let (code, out, err) = curl(&lab, &["--http1.1", &format!("http://[{v6}]/")]);
        assert_eq!((code, out.as_str()), (Some(0), body.trim()), "{err}");
        let resolve = format!("dual.lab:443:[{v6}]");
        let (code, out, err) = curl(
            &lab,
            &[
                "--cacert",
                &cacert,
                "--resolve",
                &resolve,
                "https://dual.lab/",
            ],
        );
        assert_eq!((code, out.as_str()), (Some(0), body.trim()), "{err}");
        let (code, _, err) = curl(&lab, &[&url6]);
        let first = err.lines().next().unwrap_or("");
        eprintln!("https without the lab CA: exit {code:?}: {first}");
        assert_eq!(code, Some(60), "untrusted without --cacert: {err}");
        let (code, out, err) = curl(&lab, &["-I", "--cacert", &cacert, &url6]);
        assert_eq!(code, Some(0), "{err}");
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(
            out.to_ascii_lowercase()
                .contains(&format!("content-length: {}", body.len())),
            "{out}"
        );
        let (code, out, err) = curl(
            &lab,
            &[
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--cacert",
                &cacert,
                &format!("https://[{v6}]/missing"),
            ],
        );
        assert_eq!((code, out.as_str()), (Some(0), "404"), "{err}");
        let (code, out, err) = curl(
            &lab,
            &[
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &format!("http://{v4}/index.html"),
            ],
        );
        assert_eq!((code, out.as_str()), (Some(0), "404"), "{err}");
        let raw_head = dir.join("raw_head.py");
        std::fs::write(&raw_head, RAW_HEAD).expect("script");
        for target in [&v6s, &v4s] {
            let output = lab.exec_unchecked(
                "client",
                &["python3", &raw_head.display().to_string(), target],
            );
            let (out, err) = text(&output);
            assert!(
                out.starts_with("b'HTTP/1.1 200 OK") && out.ends_with("\\r\\n\\r\\n'"),
                "HEAD via {target} must end with the headers: {out} {err}"
            );
        }
        let again = start_web(&mut lab, "server", &ca, dir, body);
        eprintln!("a second web server in the same node: {again:?}");
        assert!(
            again
                .as_ref()
                .is_err_and(|e| e.to_string().contains("Address already in use")),
            "{again:?}"
        );

        // HTTP/3.
        let started = Instant::now();
        start_quic(&mut lab, "server", &ca, dir, body).expect("HTTP/3 server starts");
        eprintln!("HTTP/3 server listening after {:?}", started.elapsed());
        let h3_get = dir.join("h3_get.py");
        std::fs::write(&h3_get, H3_GET).expect("script");
        let h3 = |host: &str, path: &str| {
            let script = h3_get.display().to_string();
            text(&lab.exec_unchecked("client", &["python3", &script, host, path, &cacert]))
        };
        for host in [&v6s, &v4s] {
            let started = Instant::now();
            let (out, err) = h3(host, "/");
            eprintln!("HTTP/3 GET / via {host}: {:?}", started.elapsed());
            assert_eq!(out, format!("h3 200\n{}", body.trim()), "{err}");
            let (out, err) = h3(host, "/missing");
            assert_eq!(out, "h3 404\nnot found", "{err}");
        }

        // Closed and filtered TCP ports.
        filter_tcp_port(&lab, "server", 8081).expect("nft");
        filter_tcp_port(&lab, "server", 8082).expect("a second filtered port");
        let (rules, _) = text(
            &lab.exec("server", &["nft", "list", "table", "inet", FILTER_TABLE])
                .expect("nft list"),
        );
        assert!(
            rules.contains("tcp dport 8081 drop") && rules.contains("tcp dport 8082 drop"),
            "{rules}"
        );
        for host in [format!("[{v6}]"), v4s.clone()] {
            let started = Instant::now();
            let (code, _, err) = curl(
                &lab,
                &[
                    "-v",
                    "--connect-timeout",
                    "2",
                    &format!("http://{host}:81/"),
                ],
            );
            let closed = started.elapsed();
            let refused = err.lines().find(|l| l.contains("Connection refused"));
            eprintln!("closed port 81 on {host}: exit {code:?} after {closed:?}: {refused:?}");
            assert_eq!(code, Some(7), "{err}");
            assert!(refused.is_some(), "{err}");
            assert!(closed < Duration::from_secs(1), "{closed:?}");
            let started = Instant::now();
            let (code, _, err) = curl(
                &lab,
                &["--connect-timeout", "2", &format!("http://{host}:8081/")],
            );
            let filtered = started.elapsed();
            eprintln!("filtered port 8081 on {host}: exit {code:?} after {filtered:?}: {err}");
            assert_eq!(code, Some(28), "{err}");
            assert!(filtered >= Duration::from_secs(2), "{filtered:?}");
        }

        // wait_listening on what runs, and on what does not.
        for (port, udp) in [
            (53, true),
            (53, false),
            (80, false),
            (443, false),
            (443, true),
        ] {
            wait_listening(&lab, "server", port, udp, Duration::from_secs(1)).expect("listens");
        }
        let none = wait_listening(&lab, "server", 8081, false, Duration::from_millis(200));
        eprintln!("wait_listening on nothing: {none:?}");
        assert!(none.is_err_and(|e| e.to_string().contains("tcp/8081")));

        drop(lab);
        assert_eq!(namespaces(&prefix), Vec::<String>::new());
    }
}
