//! The web site over both families, and the page's subresources over IPv6.

use super::html;
use super::lookup::{Answer, TYPE_A, TYPE_AAAA, bounded};
use super::{NO_BUDGET, Run, share};
use crate::http::{self, Fetched};
use crate::safety::{
    READINESS_MAX_REDIRECTS, READINESS_PAGE_BODY, READINESS_SUBRESOURCE_BODY, readiness_fetch,
};
use ring::digest::{SHA256, digest};
use sixmap_shared::measurement::{
    ConnectOutcome, Family, HttpSpec, HttpUrl, MAX_READINESS_URL_LEN, Presence, SubresourceHost,
    SubresourceReadiness, WebReadiness,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use tokio::time::Instant;

/// The web host's A and AAAA lookups.
pub(super) struct Lookups {
    host: String,
    aaaa: Answer,
    a: Answer,
}

pub(super) async fn lookups(run: &Run<'_>, host: &str, end: Instant) -> Lookups {
    let (aaaa, a) = tokio::join!(
        run.lookup(host, TYPE_AAAA, end),
        run.lookup(host, TYPE_A, end)
    );
    Lookups {
        host: host.to_owned(),
        aaaa,
        a,
    }
}

/// The page as fetched over one family, after the redirects followed.
#[derive(Debug, Default)]
pub(super) struct Page {
    /// The first connection's outcome; `None` when no connection was tried.
    connect: Option<ConnectOutcome>,
    status: Option<u16>,
    error: Option<String>,
    url: Option<HttpUrl>,
    /// The URL of the final response when a redirect led elsewhere.
    moved: bool,
    body: Vec<u8>,
    leaf: Option<Vec<u8>>,
    verified: Option<bool>,
    /// The fetch stopped for a reason that says nothing of the site.
    inconclusive: bool,
}

pub(super) struct Pages {
    v6_address: Option<Ipv6Addr>,
    v4_address: Option<Ipv4Addr>,
    v6: Page,
    v4: Page,
}

pub(super) async fn pages(run: &Run<'_>, lookups: &Lookups, path: &str, end: Instant) -> Pages {
    let (_, v6_address) = run.aaaa_presence(&lookups.aaaa);
    let v4_address = lookups
        .a
        .records
        .iter()
        .find_map(|r| r.parse::<Ipv4Addr>().ok());
    let url = format!("https://{}{path}", lookups.host);
    let (v6, v4) = tokio::join!(
        async {
            match v6_address {
                Some(a) => page(run, Family::V6, IpAddr::V6(a), &url, end).await,
                None => Page::default(),
            }
        },
        async {
            match v4_address {
                Some(a) => page(run, Family::V4, IpAddr::V4(a), &url, end).await,
                None => Page::default(),
            }
        },
    );
    Pages {
        v6_address,
        v4_address,
        v6,
        v4,
    }
}

/// GETs `url` from `address`, following up to [`READINESS_MAX_REDIRECTS`] redirects within
/// the same family (a new host is looked up in that family).
async fn page(run: &Run<'_>, family: Family, address: IpAddr, url: &str, end: Instant) -> Page {
    let mut page = Page::default();
    let mut url = url.to_owned();
    let mut address = address;
    let mut host = None;
    let mut own_port = None;
    for hop in 0..=READINESS_MAX_REDIRECTS {
        let spec = match HttpSpec::new(&url, "GET", READINESS_PAGE_BODY) {
            Ok(spec) => spec,
            Err(e) => {
                let why = bounded(format!("redirect to an unusable URL: {e}"));
                page.stop(Stop::Failed(why));
                break;
            }
        };
        let own_port = *own_port.get_or_insert(spec.url().port);
        if let Err(why) = web_port(spec.url().port, own_port) {
            page.stop(Stop::Failed(format!("redirect {why}")));
            break;
        }
        // A redirect to another host: its own address in the same family.
        if host.as_ref().is_some_and(|h| *h != spec.url().host) {
            match next_address(run, &spec.url().host, family, end).await {
                Ok(next) => address = next,
                Err(stop) => {
                    page.stop(stop);
                    break;
                }
            }
        }
        host = Some(spec.url().host.clone());
        if let Err(why) = run.allowed(address) {
            page.stop(Stop::Inconclusive(why));
            break;
        }
        if !run.take(readiness_fetch(READINESS_PAGE_BODY)) {
            page.stop(Stop::Inconclusive(NO_BUDGET.to_owned()));
            break;
        }
        let fetched = match http::fetch(&run.ctx_until(end), &spec, address).await {
            Ok(fetched) => fetched,
            // A local error (a socket, the trust anchors): nothing was learnt of the site.
            Err(e) => {
                page.stop(Stop::Inconclusive(bounded(e.message)));
                break;
            }
        };
        let Some(result) = &fetched.result else {
            page.stop(Stop::Inconclusive("no request was made".to_owned()));
            break;
        };
        run.refund(unsent(READINESS_PAGE_BODY, result.body_bytes));
        if hop == 0 {
            page.connect = Some(result.connect);
        }
        page.status = result.status;
        // The error says why no response came; a response cut short still counts as one.
        page.error = match result.status {
            None => result.failure.clone().map(bounded),
            Some(_) => None,
        };
        page.moved = hop > 0;
        page.url = Some(spec.url().clone());
        let location = redirect(&fetched, spec.url());
        page.leaf = fetched.leaf;
        page.verified = fetched.certificate_verified;
        page.body = fetched.body;
        match location {
            Some(next) if hop < READINESS_MAX_REDIRECTS => url = next,
            _ => break,
        }
    }
    page
}

/// Why a fetch or one of its redirect hops was not completed.
#[derive(Debug)]
enum Stop {
    /// The site's doing: a redirect to a host without an address in the family, to an
    /// unusable URL or to another service's port.
    Failed(String),
    /// Nothing learnt of the site: the packet allowance, a lookup without a usable answer,
    /// the probe's target policy, a local error.
    Inconclusive(String),
}

impl Page {
    /// A hop not completed: what an earlier hop got (a 3xx, its body and certificate) is no
    /// page, so it must not pass for one, be compared with the other family's page or be
    /// scanned for subresources.
    fn stop(&mut self, stop: Stop) {
        self.status = None;
        self.body = Vec::new();
        self.leaf = None;
        self.verified = None;
        let (why, inconclusive) = match stop {
            Stop::Failed(why) => (why, false),
            Stop::Inconclusive(why) => (why, true),
        };
        self.error = Some(why);
        self.inconclusive = inconclusive;
    }
}

/// A page may send the probe to the web's ports only (80, 443, and the port of the page
/// asked for): otherwise a hostile page or redirect could make every probe send an HTTP
/// request to any service of any host, a mail server's port 25 say.
fn web_port(port: u16, own_port: u16) -> Result<(), String> {
    if matches!(port, 80 | 443) || port == own_port {
        Ok(())
    } else {
        Err(format!(
            "not followed: port {port} is not 80, 443 or the page's own ({own_port})"
        ))
    }
}

/// The first address of `host` in `family`, looked up through the host's resolver. An
/// address literal of the other family is refused: it would leave the family measured.
async fn next_address(
    run: &Run<'_>,
    host: &str,
    family: Family,
    end: Instant,
) -> Result<IpAddr, Stop> {
    if let Ok(literal) = host.parse::<IpAddr>() {
        return match (family, literal) {
            (Family::V6, IpAddr::V6(_)) | (Family::V4, IpAddr::V4(_)) => Ok(literal),
            _ => Err(Stop::Failed(format!(
                "redirected to {host}, an address of the other family"
            ))),
        };
    }
    let deadline = share(end, 4);
    match family {
        Family::V6 => {
            let answer = run.lookup(host, TYPE_AAAA, deadline).await;
            match run.aaaa_presence(&answer) {
                (_, Some(address)) => Ok(IpAddr::V6(address)),
                (presence, None) => {
                    let why = format!("redirected to {host}, whose AAAA is {}", presence.words());
                    Err(match presence {
                        Presence::No => Stop::Failed(why),
                        _ => Stop::Inconclusive(why),
                    })
                }
            }
        }
        Family::V4 => {
            let answer = run.lookup(host, TYPE_A, deadline).await;
            let found = answer
                .records
                .iter()
                .find_map(|r| r.parse::<Ipv4Addr>().ok())
                .map(IpAddr::V4);
            found.ok_or_else(|| {
                let why = format!("redirected to {host}, which has no A record");
                match answer.lookup.status.presence() {
                    Presence::No => Stop::Failed(why),
                    _ => Stop::Inconclusive(why),
                }
            })
        }
    }
}

/// Where a 3xx response sends the client: its Location resolved against `base`.
fn redirect(fetched: &Fetched, base: &HttpUrl) -> Option<String> {
    let status = fetched.result.as_ref()?.status?;
    if !(300..400).contains(&status) {
        return None;
    }
    resolve(base, fetched.header("location")?.trim())
}

/// A reference resolved against a base URL (absolute, scheme-relative, absolute-path or
/// relative-path forms; enough for redirects).
fn resolve(base: &HttpUrl, location: &str) -> Option<String> {
    let scheme = if base.https { "https" } else { "http" };
    let lower = location.get(..8).unwrap_or(location).to_ascii_lowercase();
    Some(if lower.starts_with("https://") {
        format!("https://{}", location.get(8..)?)
    } else if lower.starts_with("http://") {
        format!("http://{}", location.get(7..)?)
    } else if let Some(rest) = location.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if location.starts_with('/') {
        format!("{scheme}://{}{location}", base.authority())
    } else if location.is_empty() {
        return None;
    } else {
        let path = base.path.split('?').next().unwrap_or("/");
        let dir = path.rsplit_once('/').map_or("", |(dir, _)| dir);
        format!("{scheme}://{}{dir}/{location}", base.authority())
    })
}

/// Packets a fetch charged for a `cap`-byte body did not need for the `read` bytes it got.
fn unsent(cap: u32, read: u64) -> u32 {
    let read = u32::try_from(read).unwrap_or(u32::MAX).min(cap);
    readiness_fetch(cap) - readiness_fetch(read)
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    digest(&SHA256, bytes).as_ref().to_vec()
}

/// The web part of the result from the lookups and the pages.
pub(super) fn readiness(run: &Run<'_>, lookups: Lookups, pages: &Pages) -> WebReadiness {
    let (v6, v4) = (&pages.v6, &pages.v4);
    let (aaaa, _) = run.aaaa_presence(&lookups.aaaa);
    let both = |f: &dyn Fn(&Page) -> Option<Vec<u8>>| match (f(v6), f(v4)) {
        (Some(a), Some(b)) => Some(sha256(&a) == sha256(&b)),
        _ => None,
    };
    let final_url = [v6, v4]
        .into_iter()
        .find(|p| p.status.is_some())
        .filter(|p| p.moved)
        .and_then(|p| p.url.as_ref())
        .map(|u| u.to_string())
        // Written out again it may be longer than the Location was (a `/` before a `?`):
        // one too long for the result is left out, not let fail the measurement.
        .filter(|u| u.len() <= MAX_READINESS_URL_LEN);
    WebReadiness {
        host: lookups.host,
        aaaa,
        a: lookups.a.lookup.status.presence(),
        v6_address: pages.v6_address,
        v4_address: pages.v4_address,
        https_v6_connect: v6.connect,
        https_v4_connect: v4.connect,
        https_v6_status: v6.status,
        https_v4_status: v4.status,
        v6_certificate_verified: v6.verified,
        v6_error: v6.error.clone(),
        v4_error: v4.error.clone(),
        same_certificate: both(&|p| p.leaf.clone()),
        same_content: both(&|p| p.status.map(|_| p.body.clone())),
        v6_body_bytes: v6.status.map(|_| v6.body.len() as u64),
        v4_body_bytes: v4.status.map(|_| v4.body.len() as u64),
        final_url,
        v6_inconclusive: v6.inconclusive,
        aaaa_lookup: lookups.aaaa.lookup,
        a_lookup: lookups.a.lookup,
    }
}

/// The hosts the page's HTML loads from, each looked up and one of its URLs fetched over
/// IPv6. The page is the IPv6 one when IPv6 got a page, else the IPv4 one.
pub(super) async fn subresources(
    run: &Run<'_>,
    pages: &Pages,
    max_hosts: usize,
    end: Instant,
) -> SubresourceReadiness {
    let source = [(Family::V6, &pages.v6), (Family::V4, &pages.v4)]
        .into_iter()
        .find(|(_, p)| p.status.is_some() && !p.body.is_empty());
    let Some((family, page)) = source else {
        return SubresourceReadiness {
            html_from: None,
            hosts: Vec::new(),
            truncated: false,
        };
    };
    let page_https = page.url.as_ref().is_none_or(|u| u.https);
    let page_port = page.url.as_ref().map_or(443, |u| u.port);
    let scan = html::subresource_hosts(&page.body, page_https, max_hosts);
    let count = scan.hosts.len();
    let mut hosts = Vec::with_capacity(count);
    for (i, reference) in scan.hosts.into_iter().enumerate() {
        let item_end = share(end, count - i);
        let item = subresource(run, reference, page_port, item_end);
        hosts.push(item.await);
    }
    SubresourceReadiness {
        html_from: Some(family),
        hosts,
        truncated: scan.truncated,
    }
}

async fn subresource(
    run: &Run<'_>,
    reference: html::Reference,
    page_port: u16,
    end: Instant,
) -> SubresourceHost {
    let mut detail = None;
    let (has_aaaa, address) = match reference.host.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => (Presence::Yes, Some(v6)),
        Ok(IpAddr::V4(_)) => {
            detail = Some("an IPv4 address literal".to_owned());
            (Presence::No, None)
        }
        Err(_) => {
            let answer = run.lookup(&reference.host, TYPE_AAAA, share(end, 2)).await;
            detail = answer
                .lookup
                .detail
                .as_ref()
                .map(|d| bounded(format!("AAAA lookup: {d}")));
            run.aaaa_presence(&answer)
        }
    };
    let mut fetched_v6 = None;
    let mut status_v6 = None;
    let port = web_port(reference.url.port, page_port);
    if let (Some(_), Err(why)) = (address, &port) {
        detail = Some(why.clone());
    }
    if let (Some(v6), Ok(())) = (address, port) {
        match fetch_over_v6(run, &reference.url, IpAddr::V6(v6), end).await {
            Ok((status, failure)) => {
                fetched_v6 = Some(status.is_some_and(|s| (200..400).contains(&s)));
                status_v6 = status;
                detail = failure.or(detail);
            }
            Err(why) => detail = Some(why),
        }
    }
    SubresourceHost {
        // The page's own host or not: `ReadinessResult::derive_same_hosts`, from the web part,
        // the rule the collector applies again at decode.
        same_host: false,
        host: reference.host,
        has_aaaa,
        url: reference.url.to_string(),
        fetched_v6,
        status_v6,
        detail,
    }
}

/// One GET of a subresource over IPv6 (no redirect followed: a 3xx already shows the host
/// serves over IPv6). `Err` when it was not sent.
async fn fetch_over_v6(
    run: &Run<'_>,
    url: &HttpUrl,
    address: IpAddr,
    end: Instant,
) -> Result<(Option<u16>, Option<String>), String> {
    run.allowed(address)?;
    let spec = HttpSpec::new(&url.to_string(), "GET", READINESS_SUBRESOURCE_BODY)
        .map_err(|e| e.to_string())?;
    if !run.take(readiness_fetch(READINESS_SUBRESOURCE_BODY)) {
        return Err(NO_BUDGET.to_owned());
    }
    let fetched = http::fetch(&run.ctx_until(end), &spec, address)
        .await
        .map_err(|e| bounded(e.message))?;
    Ok(match fetched.result {
        Some(r) => {
            run.refund(unsent(READINESS_SUBRESOURCE_BODY, r.body_bytes));
            (r.status, r.failure.map(bounded))
        }
        None => (None, Some("no request was made".to_owned())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::testserver::{ca, context, tls_serving};
    use sixmap_shared::TargetPolicy;
    use sixmap_shared::measurement::{DnsReadiness, Lookup, LookupStatus, ReadinessResult};
    use std::time::Duration;
    use tokio::net::TcpListener;

    fn answer(status: LookupStatus, records: &[&str]) -> Answer {
        Answer {
            lookup: Lookup {
                status,
                detail: None,
            },
            records: records.iter().map(|r| (*r).to_owned()).collect(),
            authoritative: false,
            over_tcp: false,
        }
    }

    fn lab_run<'a>(ctx: &'a crate::context::Context<'a>) -> Run<'a> {
        Run::new(ctx, None, Some("no resolver in this test".into()), 10_000)
    }

    /// Real local servers on one port: a page that redirects, the page itself with
    /// subresources on an IPv6 literal (served), an IPv4 literal and a name the resolver
    /// cannot look up.
    #[tokio::test]
    async fn a_redirected_page_and_its_subresources_over_local_servers() {
        let listener = TcpListener::bind("[::1]:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let html = format!(
            "<html><head><script src=\"https://[::1]:{port}/app.js\"></script>\
             <link rel=stylesheet href=//cdn.example/site.css></head>\
             <body><img src=http://192.0.2.7/logo.png></body></html>"
        );
        let ok = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{html}",
            html.len()
        );
        let moved = format!(
            "HTTP/1.1 302 Found\r\nLocation: https://fixture.test:{port}/home\r\nContent-Length: 0\r\n\r\n"
        );
        let server = tls_serving(
            listener,
            &["http/1.1"],
            vec![
                moved.into_bytes(),
                ok.into_bytes(),
                b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
            ],
        );

        let ca = ca(true);
        let mut ctx = context(ca.as_deref(), None, Duration::from_secs(5));
        ctx.policy = TargetPolicy { lab_mode: true };
        let run = lab_run(&ctx);
        let end = ctx.deadline;
        let url = format!("https://fixture.test:{port}/");
        let v6 = page(&run, Family::V6, "::1".parse().unwrap(), &url, end).await;
        assert_eq!(v6.status, Some(200), "{v6:?}");
        assert_eq!(
            (v6.connect, v6.moved),
            (Some(ConnectOutcome::Connected), true)
        );
        assert_eq!(v6.verified, Some(true));
        assert!(v6.leaf.is_some());
        assert_eq!(v6.body, html.as_bytes());

        let pages = Pages {
            v6_address: Some("::1".parse().unwrap()),
            v4_address: None,
            v6,
            v4: Page::default(),
        };
        let sub = subresources(&run, &pages, 16, end).await;
        let requests = server.await.unwrap();
        assert!(requests[0].starts_with(b"GET / HTTP/1.1\r\nHost: fixture.test:"));
        assert!(requests[1].starts_with(b"GET /home HTTP/1.1\r\n"));
        assert!(requests[2].starts_with(b"GET /app.js HTTP/1.1\r\n"));
        assert_eq!(sub.html_from, Some(Family::V6));
        let found: Vec<_> = sub
            .hosts
            .iter()
            .map(|h| (h.host.as_str(), h.has_aaaa, h.fetched_v6, h.status_v6))
            .collect();
        assert_eq!(
            found,
            [
                ("::1", Presence::Yes, Some(true), Some(204)),
                ("cdn.example", Presence::Inconclusive, None, None),
                ("192.0.2.7", Presence::No, None, None),
            ]
        );
        let failing: Vec<_> = sub.failing_hosts().map(|h| h.host.as_str()).collect();
        assert_eq!(failing, ["192.0.2.7"]);

        let lookups = Lookups {
            host: "fixture.test".into(),
            aaaa: answer(LookupStatus::Found, &["::1"]),
            a: answer(LookupStatus::Failed, &[]),
        };
        let web = readiness(&run, lookups, &pages);
        assert_eq!(web.a, Presence::Inconclusive);
        assert_eq!(
            web.final_url.as_deref(),
            Some(&*format!("https://fixture.test:{port}/home"))
        );
        assert_eq!((web.same_certificate, web.same_content), (None, None));
        let result = ReadinessResult {
            resolver: None,
            dns64_prefix: None,
            dns: DnsReadiness {
                ns_lookup: Lookup {
                    status: LookupStatus::Failed,
                    detail: None,
                },
                servers: Vec::new(),
            },
            mail: None,
            web,
            subresources: Some(sub),
        };
        assert_eq!(result.validate(), Ok(()));
        let text = crate::render::readiness(&result);
        assert!(
            text.contains("page works IPv6-only: no: 192.0.2.7"),
            "{text}"
        );
    }

    /// A page whose subresources and redirect point at other services (a mail server's
    /// port, any port): the probe sends nothing there.
    #[tokio::test]
    async fn a_hostile_page_cannot_send_the_probe_to_other_ports() {
        let victim = TcpListener::bind("[::1]:0").await.unwrap();
        let victim_port = victim.local_addr().unwrap().port();
        let listener = TcpListener::bind("[::1]:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let html =
            format!("<img src=\"http://[::1]:{victim_port}/\"><img src=\"https://[::1]:25/x\">");
        let ok = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{html}",
            html.len()
        );
        let moved = format!(
            "HTTP/1.1 301 Moved\r\nLocation: http://[::1]:{victim_port}/\r\nContent-Length: 0\r\n\r\n"
        );
        let server = tls_serving(
            listener,
            &["http/1.1"],
            vec![ok.into_bytes(), moved.into_bytes()],
        );
        let ca = ca(true);
        let mut ctx = context(ca.as_deref(), None, Duration::from_secs(5));
        ctx.policy = TargetPolicy { lab_mode: true };
        let run = lab_run(&ctx);
        let end = ctx.deadline;
        let url = format!("https://fixture.test:{port}/");
        let v6 = page(&run, Family::V6, "::1".parse().unwrap(), &url, end).await;
        assert_eq!(v6.status, Some(200), "{v6:?}");
        let pages = Pages {
            v6_address: Some("::1".parse().unwrap()),
            v4_address: None,
            v6,
            v4: Page::default(),
        };
        let sub = subresources(&run, &pages, 16, end).await;
        for host in &sub.hosts {
            assert_eq!((host.has_aaaa, host.fetched_v6), (Presence::Yes, None));
            let detail = host.detail.as_deref().unwrap_or_default();
            assert!(detail.starts_with("not followed: port "), "{detail}");
        }
        assert_eq!(
            sub.hosts.len(),
            1,
            "one host, [::1], first on port {victim_port}"
        );

        let moved = page(&run, Family::V6, "::1".parse().unwrap(), &url, end).await;
        assert_eq!(
            (moved.status, moved.inconclusive),
            (None, false),
            "{moved:?}"
        );
        let error = moved.error.unwrap_or_default();
        assert!(error.starts_with("redirect not followed: port "), "{error}");
        server.await.unwrap();
        let knock = tokio::time::timeout(Duration::from_millis(300), victim.accept()).await;
        assert!(knock.is_err(), "the probe connected to the victim's port");
    }

    /// A redirect hop not completed leaves no page behind: the 3xx is not taken for the
    /// page. Where it went without an address of the family, the site failed; where the
    /// lookup gave no usable answer, nothing was learnt.
    #[tokio::test]
    async fn an_uncompleted_redirect_is_no_page() {
        let listener = TcpListener::bind("[::1]:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let moved = |to: &str| {
            format!("HTTP/1.1 301 Moved\r\nLocation: {to}\r\nContent-Length: 5\r\n\r\nmoved")
                .into_bytes()
        };
        let server = tls_serving(
            listener,
            &["http/1.1"],
            vec![
                moved("https://192.0.2.1/"),
                moved(&format!("https://elsewhere.example:{port}/")),
            ],
        );
        let ca = ca(true);
        let mut ctx = context(ca.as_deref(), None, Duration::from_secs(5));
        ctx.policy = TargetPolicy { lab_mode: true };
        let run = lab_run(&ctx);
        let end = ctx.deadline;
        let url = format!("https://fixture.test:{port}/");
        let address: IpAddr = "::1".parse().unwrap();
        let literal = page(&run, Family::V6, address, &url, end).await;
        let unknown = page(&run, Family::V6, address, &url, end).await;
        server.await.unwrap();
        for (p, inconclusive, error) in [
            (
                &literal,
                false,
                "redirected to 192.0.2.1, an address of the other family",
            ),
            (
                &unknown,
                true,
                "redirected to elsewhere.example, whose AAAA is ",
            ),
        ] {
            assert_eq!(p.connect, Some(ConnectOutcome::Connected), "{p:?}");
            assert_eq!((p.status, p.inconclusive), (None, inconclusive), "{p:?}");
            assert!(p.body.is_empty() && p.leaf.is_none(), "{p:?}");
            let why = p.error.as_deref().unwrap_or_default();
            assert!(why.starts_with(error), "{why}");
        }
        let pages = Pages {
            v6_address: Some("::1".parse().unwrap()),
            v4_address: None,
            v6: unknown,
            v4: Page::default(),
        };
        let sub = subresources(&run, &pages, 16, end).await;
        assert_eq!(sub.html_from, None);
        let lookups = Lookups {
            host: "fixture.test".into(),
            aaaa: answer(LookupStatus::Found, &["::1"]),
            a: answer(LookupStatus::Failed, &[]),
        };
        let web = readiness(&run, lookups, &pages);
        assert_eq!((web.https_v6_status, web.v6_inconclusive), (None, true));
        assert_eq!(web.final_url, None);
    }

    #[test]
    fn redirects_resolve_against_the_page() {
        let base = HttpUrl::parse("https://example.gov:8443/a/b?c").unwrap();
        for (location, expected) in [
            ("https://www.example.gov/", "https://www.example.gov/"),
            ("HTTP://x.example/", "http://x.example/"),
            ("//cdn.example/x", "https://cdn.example/x"),
            ("/root", "https://example.gov:8443/root"),
            ("next", "https://example.gov:8443/a/next"),
        ] {
            assert_eq!(resolve(&base, location).as_deref(), Some(expected));
        }
        assert_eq!(resolve(&base, ""), None);
    }
}
