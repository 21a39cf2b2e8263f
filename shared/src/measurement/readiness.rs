//! Government-style IPv6 readiness of one domain (issue #20): its name servers, its mail
//! exchangers, its web site, and whether the page's subresources load over IPv6 only.
//!
//! The measurement's target is the domain (a host name). Every sub-check records its own
//! outcome, failures included: a resolver that fails or times out makes a presence
//! [`Presence::Inconclusive`], never [`Presence::No`], so a broken probe resolver can never
//! make a domain look unready.

use super::{ConnectOutcome, SpecError, Target, field};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Bounds of a result, so that a hostile or buggy probe cannot send an unbounded one.
pub const MAX_READINESS_NAME_SERVERS: usize = 16;
pub const MAX_READINESS_MAIL_EXCHANGERS: usize = 16;
/// The most subresource hosts a spec may ask for (and a result may carry).
pub const MAX_SUBRESOURCE_HOSTS: u8 = 32;
pub const DEFAULT_SUBRESOURCE_HOSTS: u8 = 16;
/// Error and detail texts of a readiness result, in bytes.
pub const MAX_READINESS_DETAIL_LEN: usize = 512;
/// URLs carried in a result (the page's final URL, a subresource's first URL), in bytes.
pub const MAX_READINESS_URL_LEN: usize = 2048;
/// The page path of a spec, in bytes.
pub const MAX_READINESS_PATH_LEN: usize = 1024;

/// What to check for the domain named by the spec's target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadinessSpec {
    path: String,
    web_host: Option<String>,
    check_mail: bool,
    check_subresources: bool,
    max_subresource_hosts: u8,
}

impl ReadinessSpec {
    /// `path` empty selects "/"; `web_host` empty selects the domain itself;
    /// `max_subresource_hosts` 0 selects [`DEFAULT_SUBRESOURCE_HOSTS`].
    pub fn new(
        path: &str,
        web_host: &str,
        check_mail: bool,
        check_subresources: bool,
        max_subresource_hosts: u32,
    ) -> Result<Self, SpecError> {
        let path = match path {
            "" => "/".to_owned(),
            p if !p.starts_with('/') => {
                return Err(field("readiness.path", format!("{p:?} must start with /")));
            }
            p if p.len() > MAX_READINESS_PATH_LEN => {
                return Err(field(
                    "readiness.path",
                    format!("longer than {MAX_READINESS_PATH_LEN} bytes"),
                ));
            }
            // Spaces, controls and non-ASCII would make a malformed request line.
            p if !p.bytes().all(|b| b.is_ascii_graphic()) => {
                return Err(field(
                    "readiness.path",
                    "contains spaces, control or non-ASCII bytes",
                ));
            }
            p if p.contains('#') => {
                return Err(field("readiness.path", "a fragment is never sent"));
            }
            p => p.to_owned(),
        };
        let web_host = match web_host {
            "" => None,
            name => match Target::hostname(name) {
                Ok(Target::Hostname(h)) => Some(h),
                _ => {
                    return Err(field(
                        "readiness.web_host",
                        format!("{name:?} is not a DNS name"),
                    ));
                }
            },
        };
        let max_subresource_hosts = match max_subresource_hosts {
            0 => DEFAULT_SUBRESOURCE_HOSTS,
            n if n <= u32::from(MAX_SUBRESOURCE_HOSTS) => n as u8,
            _ => {
                return Err(field(
                    "readiness.max_subresource_hosts",
                    format!("must be 0 (default) or 1..={MAX_SUBRESOURCE_HOSTS}"),
                ));
            }
        };
        Ok(Self {
            path,
            web_host,
            check_mail,
            check_subresources,
            max_subresource_hosts,
        })
    }

    /// Path and query of the page fetched, starting with `/`.
    pub fn path(&self) -> &str {
        &self.path
    }
    /// The web site's host when it is not the domain itself (e.g. `www.` in front).
    pub fn web_host(&self) -> Option<&str> {
        self.web_host.as_deref()
    }
    pub fn check_mail(&self) -> bool {
        self.check_mail
    }
    pub fn check_subresources(&self) -> bool {
        self.check_subresources
    }
    pub fn max_subresource_hosts(&self) -> u8 {
        self.max_subresource_hosts
    }
}

/// Whether a record set exists. A lookup that got no usable answer (timeout, SERVFAIL,
/// REFUSED, malformed) is `Inconclusive`: it says nothing about the domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Yes,
    No,
    Inconclusive,
}

impl Presence {
    pub fn words(self) -> &'static str {
        match self {
            Self::Yes => "yes",
            Self::No => "no",
            Self::Inconclusive => "inconclusive",
        }
    }
}

/// How one DNS lookup ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LookupStatus {
    /// NOERROR with at least one record of the type asked.
    Found,
    /// NOERROR without a record of the type (NODATA).
    NoData,
    /// NXDOMAIN: the name does not exist.
    NxDomain,
    /// No usable answer: timeout, SERVFAIL, REFUSED, unreachable resolver, malformed reply.
    Failed,
}

impl LookupStatus {
    /// The presence this lookup proves: only an authoritative-looking "no" is `No`.
    pub fn presence(self) -> Presence {
        match self {
            Self::Found => Presence::Yes,
            Self::NoData | Self::NxDomain => Presence::No,
            Self::Failed => Presence::Inconclusive,
        }
    }

    pub fn words(self) -> &'static str {
        match self {
            Self::Found => "found",
            Self::NoData => "no records",
            Self::NxDomain => "no such name",
            Self::Failed => "lookup failed",
        }
    }
}

/// One lookup's status, and why it failed (rcode or transport failure) when it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lookup {
    pub status: LookupStatus,
    pub detail: Option<String>,
}

impl Lookup {
    fn validate(&self, name: &'static str) -> Result<(), SpecError> {
        detail_ok(name, &self.detail)
    }
}

fn detail_ok(name: &'static str, detail: &Option<String>) -> Result<(), SpecError> {
    if detail
        .as_ref()
        .is_some_and(|d| d.len() > MAX_READINESS_DETAIL_LEN)
    {
        return Err(field(
            name,
            format!("longer than {MAX_READINESS_DETAIL_LEN} bytes"),
        ));
    }
    Ok(())
}

fn name_ok(name: &'static str, host: &str) -> Result<(), SpecError> {
    match Target::hostname(host) {
        Ok(Target::Hostname(h)) if h == host => Ok(()),
        _ => Err(field(
            name,
            format!("{host:?} is not a lower-case DNS name without trailing dot"),
        )),
    }
}

/// A presence that is `Yes` must come with the address used, when one was used.
fn address_agrees(
    name: &'static str,
    presence: Presence,
    address_set: bool,
) -> Result<(), SpecError> {
    if address_set && presence != Presence::Yes {
        return Err(field(
            name,
            "an address is given, but the record is not present",
        ));
    }
    Ok(())
}

/// One of the domain's name servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameServerCheck {
    /// The NS record's target, lower case, without trailing dot.
    pub name: String,
    pub has_aaaa: Presence,
    /// The IPv6 address queried (the first AAAA record), when there is one.
    pub address: Option<Ipv6Addr>,
    /// A query for the domain's SOA sent to `address` got an authoritative answer (AA bit,
    /// NOERROR). `None` when not tried (no AAAA, or no time left).
    pub answers_over_v6: Option<bool>,
    /// Why the query over IPv6 failed, or what the answer lacked.
    pub detail: Option<String>,
}

/// The domain's DNS: its NS set and each server over IPv6.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsReadiness {
    pub ns_lookup: Lookup,
    /// In the order of the NS answer, at most [`MAX_READINESS_NAME_SERVERS`].
    pub servers: Vec<NameServerCheck>,
}

/// One of the domain's mail exchangers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailExchangerCheck {
    /// The MX record's exchange, lower case, without trailing dot.
    pub name: String,
    pub preference: u16,
    pub has_aaaa: Presence,
    /// The IPv6 address connected to (the first AAAA record), when there is one.
    pub address: Option<Ipv6Addr>,
    /// A TCP connection to port 25 over IPv6: connected then closed at once, SMTP is never
    /// spoken. `None` when not tried.
    pub smtp_v6: Option<ConnectOutcome>,
    pub detail: Option<String>,
}

/// The domain's mail. "No MX" is `mx_lookup.status` NoData (or NxDomain); a null MX
/// (RFC 7505: the domain accepts no mail) is `null_mx`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailReadiness {
    pub mx_lookup: Lookup,
    /// The only MX is "0 ." (RFC 7505): the domain declares it takes no mail.
    pub null_mx: bool,
    /// By preference (lowest first), at most [`MAX_READINESS_MAIL_EXCHANGERS`].
    pub exchangers: Vec<MailExchangerCheck>,
}

/// The web site: the page at `https://HOST/PATH` fetched over each family.
///
/// Content is compared by SHA-256 of the body bytes read (at most 1 MiB, after the transfer
/// coding is removed): `same_content` is byte-for-byte equality, so a page that changes on
/// every load (a nonce, a clock) differs even over one family; the body sizes are kept so
/// that a reader can judge such a difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebReadiness {
    /// The host fetched: the spec's web host, or the domain.
    pub host: String,
    pub aaaa: Presence,
    pub a: Presence,
    pub aaaa_lookup: Lookup,
    pub a_lookup: Lookup,
    /// The addresses fetched from (first record of each family).
    pub v6_address: Option<Ipv6Addr>,
    pub v4_address: Option<Ipv4Addr>,
    /// TCP connection to port 443 of each address; `None` when not tried.
    pub https_v6_connect: Option<ConnectOutcome>,
    pub https_v4_connect: Option<ConnectOutcome>,
    /// HTTP status of the final response (after the redirects followed); `None` = no response.
    pub https_v6_status: Option<u16>,
    pub https_v4_status: Option<u16>,
    /// The certificate verified for the host against the probe's trust anchors, over IPv6.
    pub v6_certificate_verified: Option<bool>,
    /// Why the IPv6 (IPv4) fetch failed; `None` when it got a response or was not tried.
    pub v6_error: Option<String>,
    pub v4_error: Option<String>,
    /// Leaf certificates' SHA-256 equal over both families; `None` unless both handshakes
    /// reached the certificate.
    pub same_certificate: Option<bool>,
    /// Bodies' SHA-256 equal over both families; `None` unless both fetches got a body.
    pub same_content: Option<bool>,
    pub v6_body_bytes: Option<u64>,
    pub v4_body_bytes: Option<u64>,
    /// The URL of the final response over IPv6 (or IPv4 when IPv6 got none), when redirects
    /// were followed to another URL.
    pub final_url: Option<String>,
    /// The IPv6 fetch (or a redirect hop of it) stopped for a reason that says nothing of
    /// the site: the packet allowance, a lookup without a usable answer, the probe's own
    /// target policy, a local error. `https_v6_status` is then `None` and the web check
    /// inconclusive, not failed.
    #[serde(default)]
    pub v6_inconclusive: bool,
}

/// One host that the page's HTML loads a resource from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubresourceHost {
    /// Lower case name, or an address literal (without brackets).
    pub host: String,
    /// The host is the page's own host: its readiness is the web check's. Never taken from
    /// the wire: [`ReadinessResult::derive_same_hosts`] sets it from the web part.
    pub same_host: bool,
    pub has_aaaa: Presence,
    /// The first URL on the page with this host (absolute, scheme included).
    pub url: String,
    /// One GET of `url` over IPv6 got a 2xx or 3xx status. `None` when not tried (no AAAA,
    /// or no time left).
    pub fetched_v6: Option<bool>,
    pub status_v6: Option<u16>,
    pub detail: Option<String>,
}

/// Whether the page works on an IPv6-only network: every host its HTML loads scripts,
/// styles, icons, images and frames from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubresourceReadiness {
    /// The family whose response body was scanned (IPv6 when it got a page, else IPv4);
    /// `None` when no page body was obtained, and then `hosts` is empty.
    pub html_from: Option<super::Family>,
    /// In order of first appearance, at most the spec's `max_subresource_hosts`.
    pub hosts: Vec<SubresourceHost>,
    /// The page referenced more hosts than the spec allowed.
    pub truncated: bool,
}

impl SubresourceReadiness {
    /// Hosts other than the page's own whose resources did not load over IPv6: the page is
    /// not IPv6-only ready if there is any. Hosts not decided (inconclusive lookups, not
    /// tried) are not counted.
    pub fn failing_hosts(&self) -> impl Iterator<Item = &SubresourceHost> {
        self.hosts
            .iter()
            .filter(|h| !h.same_host && (h.has_aaaa == Presence::No || h.fetched_v6 == Some(false)))
    }
}

/// The readiness of one domain, as one probe saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadinessResult {
    /// The recursive resolver asked (the probe host's own).
    pub resolver: Option<IpAddr>,
    /// The probe's network synthesises AAAA records (DNS64) under this prefix: AAAA answers
    /// under it were counted as absent, since the name has no IPv6 address of its own.
    pub dns64_prefix: Option<crate::nat64::Nat64Prefix>,
    pub dns: DnsReadiness,
    /// `None` when the spec did not ask for mail.
    pub mail: Option<MailReadiness>,
    pub web: WebReadiness,
    /// `None` when the spec did not ask for subresources.
    pub subresources: Option<SubresourceReadiness>,
}

impl ReadinessResult {
    /// Whether `host` is the page's own: the web host, or the host of the final URL after
    /// redirects (`web.final_url`).
    pub fn is_page_host(&self, host: &str) -> bool {
        let final_host = self.final_url_host();
        self.is_page_host_with(host, final_host.as_deref())
    }

    fn is_page_host_with(&self, host: &str, final_host: Option<&str>) -> bool {
        host.eq_ignore_ascii_case(&self.web.host)
            || final_host.is_some_and(|h| host.eq_ignore_ascii_case(h))
    }

    /// The host of the page's final URL. A URL over the limit is not parsed at all: the
    /// decoder runs this before `validate`, on whatever a result carries.
    fn final_url_host(&self) -> Option<String> {
        self.web
            .final_url
            .as_deref()
            .filter(|u| u.len() <= MAX_READINESS_URL_LEN)
            .and_then(|u| super::HttpUrl::parse(u).ok())
            .map(|u| u.host)
    }

    /// Sets every subresource host's `same_host` by [`ReadinessResult::is_page_host`]: the
    /// probe and the collector's decode apply the one rule, so a result cannot exempt a host
    /// from the page's readiness by saying it is the page's own.
    pub fn derive_same_hosts(&mut self) {
        let Some(mut subresources) = self.subresources.take() else {
            return;
        };
        // Parsed once, not once per host.
        let final_host = self.final_url_host();
        for host in &mut subresources.hosts {
            host.same_host = self.is_page_host_with(&host.host, final_host.as_deref());
        }
        self.subresources = Some(subresources);
    }

    pub fn validate(&self) -> Result<(), SpecError> {
        self.dns
            .ns_lookup
            .validate("readiness.dns.ns_lookup.detail")?;
        if self.dns.servers.len() > MAX_READINESS_NAME_SERVERS {
            return Err(field(
                "readiness.dns.servers",
                format!("more than {MAX_READINESS_NAME_SERVERS}"),
            ));
        }
        if !self.dns.servers.is_empty() && self.dns.ns_lookup.status != LookupStatus::Found {
            return Err(field(
                "readiness.dns.servers",
                "name servers listed, but the NS lookup found none",
            ));
        }
        for server in &self.dns.servers {
            name_ok("readiness.dns.servers.name", &server.name)?;
            address_agrees(
                "readiness.dns.servers.address",
                server.has_aaaa,
                server.address.is_some(),
            )?;
            if server.answers_over_v6.is_some() && server.address.is_none() {
                return Err(field(
                    "readiness.dns.servers.answers_over_v6",
                    "set, but no IPv6 address was queried",
                ));
            }
            detail_ok("readiness.dns.servers.detail", &server.detail)?;
        }
        if let Some(mail) = &self.mail {
            mail.mx_lookup.validate("readiness.mail.mx_lookup.detail")?;
            if mail.exchangers.len() > MAX_READINESS_MAIL_EXCHANGERS {
                return Err(field(
                    "readiness.mail.exchangers",
                    format!("more than {MAX_READINESS_MAIL_EXCHANGERS}"),
                ));
            }
            if (!mail.exchangers.is_empty() || mail.null_mx)
                && mail.mx_lookup.status != LookupStatus::Found
            {
                return Err(field(
                    "readiness.mail.exchangers",
                    "exchangers or a null MX, but the MX lookup found none",
                ));
            }
            if mail.null_mx && !mail.exchangers.is_empty() {
                return Err(field(
                    "readiness.mail.null_mx",
                    "a null MX has no exchangers",
                ));
            }
            for mx in &mail.exchangers {
                name_ok("readiness.mail.exchangers.name", &mx.name)?;
                address_agrees(
                    "readiness.mail.exchangers.address",
                    mx.has_aaaa,
                    mx.address.is_some(),
                )?;
                if mx.smtp_v6.is_some() && mx.address.is_none() {
                    return Err(field(
                        "readiness.mail.exchangers.smtp_v6",
                        "set, but no IPv6 address was connected to",
                    ));
                }
                detail_ok("readiness.mail.exchangers.detail", &mx.detail)?;
            }
        }
        self.validate_web()?;
        if let Some(sub) = &self.subresources {
            if sub.hosts.len() > usize::from(MAX_SUBRESOURCE_HOSTS) {
                return Err(field(
                    "readiness.subresources.hosts",
                    format!("more than {MAX_SUBRESOURCE_HOSTS}"),
                ));
            }
            if sub.html_from.is_none() && (!sub.hosts.is_empty() || sub.truncated) {
                return Err(field(
                    "readiness.subresources.hosts",
                    "hosts listed, but no page was scanned",
                ));
            }
            let mut seen = std::collections::HashSet::new();
            for host in &sub.hosts {
                let literal = host.host.parse::<IpAddr>().is_ok();
                if !literal {
                    name_ok("readiness.subresources.hosts.host", &host.host)?;
                }
                if !seen.insert(host.host.as_str()) {
                    return Err(field(
                        "readiness.subresources.hosts.host",
                        format!("{:?} is listed twice", host.host),
                    ));
                }
                if host.url.len() > MAX_READINESS_URL_LEN
                    || !host.url.bytes().all(|b| b.is_ascii_graphic())
                {
                    return Err(field(
                        "readiness.subresources.hosts.url",
                        format!("not 1..={MAX_READINESS_URL_LEN} printable ASCII bytes"),
                    ));
                }
                if host.fetched_v6.is_none() && host.status_v6.is_some() {
                    return Err(field(
                        "readiness.subresources.hosts.status_v6",
                        "a status, but no fetch was tried",
                    ));
                }
                detail_ok("readiness.subresources.hosts.detail", &host.detail)?;
            }
        }
        Ok(())
    }

    fn validate_web(&self) -> Result<(), SpecError> {
        let web = &self.web;
        name_ok("readiness.web.host", &web.host)?;
        // A DNS64 answer makes a found AAAA lookup count as absent; nothing else may
        // disagree with the lookup.
        let synthesised = web.aaaa == Presence::No
            && web.aaaa_lookup.status == LookupStatus::Found
            && self.dns64_prefix.is_some();
        if web.aaaa != web.aaaa_lookup.status.presence() && !synthesised {
            return Err(field(
                "readiness.web.aaaa",
                "disagrees with the AAAA lookup",
            ));
        }
        if web.a != web.a_lookup.status.presence() {
            return Err(field("readiness.web.a", "disagrees with the A lookup"));
        }
        web.aaaa_lookup
            .validate("readiness.web.aaaa_lookup.detail")?;
        web.a_lookup.validate("readiness.web.a_lookup.detail")?;
        address_agrees(
            "readiness.web.v6_address",
            web.aaaa,
            web.v6_address.is_some(),
        )?;
        address_agrees("readiness.web.v4_address", web.a, web.v4_address.is_some())?;
        for (name, connect, status, address) in [
            (
                "readiness.web.https_v6_connect",
                web.https_v6_connect,
                web.https_v6_status,
                web.v6_address.is_some(),
            ),
            (
                "readiness.web.https_v4_connect",
                web.https_v4_connect,
                web.https_v4_status,
                web.v4_address.is_some(),
            ),
        ] {
            if connect.is_some() && !address {
                return Err(field(name, "set, but no address was fetched from"));
            }
            if status.is_some() && connect != Some(ConnectOutcome::Connected) {
                return Err(field(name, "an HTTP status without a connection"));
            }
            if status.is_some_and(|s| !(100..=999).contains(&s)) {
                return Err(field(name, "HTTP status outside 100..=999"));
            }
        }
        if web.v6_inconclusive && web.https_v6_status.is_some() {
            return Err(field(
                "readiness.web.v6_inconclusive",
                "set, but IPv6 got a response",
            ));
        }
        detail_ok("readiness.web.v6_error", &web.v6_error)?;
        detail_ok("readiness.web.v4_error", &web.v4_error)?;
        if web.final_url.as_ref().is_some_and(|u| {
            u.len() > MAX_READINESS_URL_LEN || !u.bytes().all(|b| b.is_ascii_graphic())
        }) {
            return Err(field(
                "readiness.web.final_url",
                format!("not 1..={MAX_READINESS_URL_LEN} printable ASCII bytes"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(status: LookupStatus) -> Lookup {
        Lookup {
            status,
            detail: None,
        }
    }

    fn sample() -> ReadinessResult {
        ReadinessResult {
            resolver: Some("::1".parse().unwrap()),
            dns64_prefix: None,
            dns: DnsReadiness {
                ns_lookup: lookup(LookupStatus::Found),
                servers: vec![NameServerCheck {
                    name: "ns1.example.gov".into(),
                    has_aaaa: Presence::Yes,
                    address: Some("2001:db8::53".parse().unwrap()),
                    answers_over_v6: Some(true),
                    detail: None,
                }],
            },
            mail: Some(MailReadiness {
                mx_lookup: lookup(LookupStatus::Found),
                null_mx: false,
                exchangers: vec![MailExchangerCheck {
                    name: "mx.example.gov".into(),
                    preference: 10,
                    has_aaaa: Presence::No,
                    address: None,
                    smtp_v6: None,
                    detail: None,
                }],
            }),
            web: WebReadiness {
                host: "example.gov".into(),
                aaaa: Presence::Yes,
                a: Presence::Yes,
                aaaa_lookup: lookup(LookupStatus::Found),
                a_lookup: lookup(LookupStatus::Found),
                v6_address: Some("2001:db8::80".parse().unwrap()),
                v4_address: Some("192.0.2.80".parse().unwrap()),
                https_v6_connect: Some(ConnectOutcome::Connected),
                https_v4_connect: Some(ConnectOutcome::Connected),
                https_v6_status: Some(200),
                https_v4_status: Some(200),
                v6_certificate_verified: Some(true),
                v6_error: None,
                v4_error: None,
                same_certificate: Some(true),
                same_content: Some(true),
                v6_body_bytes: Some(1000),
                v4_body_bytes: Some(1000),
                final_url: None,
                v6_inconclusive: false,
            },
            subresources: Some(SubresourceReadiness {
                html_from: Some(super::super::Family::V6),
                hosts: vec![SubresourceHost {
                    host: "cdn.example.net".into(),
                    same_host: false,
                    has_aaaa: Presence::No,
                    url: "https://cdn.example.net/app.js".into(),
                    fetched_v6: None,
                    status_v6: None,
                    detail: None,
                }],
                truncated: false,
            }),
        }
    }

    fn field_of(result: &ReadinessResult) -> String {
        match result.validate() {
            Err(SpecError::Field { field, .. }) => field.to_owned(),
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn spec_defaults_and_bounds() {
        let spec = ReadinessSpec::new("", "", true, true, 0).unwrap();
        assert_eq!(spec.path(), "/");
        assert_eq!(spec.web_host(), None);
        assert_eq!(spec.max_subresource_hosts(), DEFAULT_SUBRESOURCE_HOSTS);
        let spec = ReadinessSpec::new("/a?b=c", "WWW.Example.gov.", false, false, 32).unwrap();
        assert_eq!(spec.web_host(), Some("www.example.gov"));
        assert_eq!(spec.max_subresource_hosts(), 32);
        for (path, host, max, field_name) in [
            ("x", "", 0, "readiness.path"),
            ("/a b", "", 0, "readiness.path"),
            ("/é", "", 0, "readiness.path"),
            ("/#frag", "", 0, "readiness.path"),
            ("/", "bad host", 0, "readiness.web_host"),
            ("/", "", 33, "readiness.max_subresource_hosts"),
            ("/", "", u32::MAX, "readiness.max_subresource_hosts"),
        ] {
            match ReadinessSpec::new(path, host, true, true, max) {
                Err(SpecError::Field { field, .. }) => assert_eq!(field, field_name, "{path}"),
                other => panic!("{path:?} {host:?} {max}: {other:?}"),
            }
        }
        let long = format!("/{}", "a".repeat(MAX_READINESS_PATH_LEN));
        assert!(ReadinessSpec::new(&long, "", true, true, 0).is_err());
    }

    #[test]
    fn failed_lookups_are_inconclusive_never_no() {
        assert_eq!(LookupStatus::Failed.presence(), Presence::Inconclusive);
        assert_eq!(LookupStatus::NoData.presence(), Presence::No);
        assert_eq!(LookupStatus::NxDomain.presence(), Presence::No);
        assert_eq!(LookupStatus::Found.presence(), Presence::Yes);
        let mut r = sample();
        r.web.a_lookup = lookup(LookupStatus::Failed);
        r.web.a = Presence::No;
        r.web.v4_address = None;
        r.web.https_v4_connect = None;
        r.web.https_v4_status = None;
        assert_eq!(field_of(&r), "readiness.web.a");
        r.web.a = Presence::Inconclusive;
        assert_eq!(r.validate(), Ok(()));
    }

    #[test]
    fn hostile_results_name_the_field() {
        assert_eq!(sample().validate(), Ok(()));
        type Damage = Box<dyn Fn(&mut ReadinessResult)>;
        let cases: Vec<(&str, Damage)> = vec![
            (
                "readiness.dns.servers",
                Box::new(|r| {
                    let s = r.dns.servers[0].clone();
                    r.dns.servers = vec![s; MAX_READINESS_NAME_SERVERS + 1];
                }),
            ),
            (
                "readiness.dns.servers",
                Box::new(|r| r.dns.ns_lookup = lookup(LookupStatus::Failed)),
            ),
            (
                "readiness.dns.servers.name",
                Box::new(|r| r.dns.servers[0].name = "NS1..x".into()),
            ),
            (
                "readiness.dns.servers.address",
                Box::new(|r| r.dns.servers[0].has_aaaa = Presence::Inconclusive),
            ),
            (
                "readiness.dns.servers.detail",
                Box::new(|r| r.dns.servers[0].detail = Some("x".repeat(600))),
            ),
            (
                "readiness.mail.null_mx",
                Box::new(|r| r.mail.as_mut().unwrap().null_mx = true),
            ),
            (
                "readiness.mail.exchangers.smtp_v6",
                Box::new(|r| {
                    r.mail.as_mut().unwrap().exchangers[0].smtp_v6 = Some(ConnectOutcome::Connected)
                }),
            ),
            (
                "readiness.web.https_v6_connect",
                Box::new(|r| r.web.https_v6_connect = Some(ConnectOutcome::Timeout)),
            ),
            (
                "readiness.web.https_v4_connect",
                Box::new(|r| r.web.https_v4_status = Some(7)),
            ),
            (
                "readiness.web.final_url",
                Box::new(|r| r.web.final_url = Some("https://a b/".into())),
            ),
            (
                "readiness.subresources.hosts.host",
                Box::new(|r| {
                    let sub = r.subresources.as_mut().unwrap();
                    let h = sub.hosts[0].clone();
                    sub.hosts.push(h);
                }),
            ),
            (
                "readiness.subresources.hosts",
                Box::new(|r| r.subresources.as_mut().unwrap().html_from = None),
            ),
            (
                "readiness.subresources.hosts.url",
                Box::new(|r| {
                    r.subresources.as_mut().unwrap().hosts[0].url = "x".repeat(3000);
                }),
            ),
            (
                "readiness.subresources.hosts.status_v6",
                Box::new(|r| r.subresources.as_mut().unwrap().hosts[0].status_v6 = Some(200)),
            ),
        ];
        for (expected, damage) in cases {
            let mut r = sample();
            damage(&mut r);
            assert_eq!(field_of(&r), expected);
        }
    }

    #[test]
    fn address_literal_hosts_are_allowed_and_failing_hosts_counted() {
        let mut r = sample();
        let sub = r.subresources.as_mut().unwrap();
        sub.hosts.push(SubresourceHost {
            host: "192.0.2.7".into(),
            same_host: false,
            has_aaaa: Presence::No,
            url: "http://192.0.2.7/x.png".into(),
            fetched_v6: None,
            status_v6: None,
            detail: None,
        });
        sub.hosts.push(SubresourceHost {
            host: "example.gov".into(),
            same_host: true,
            has_aaaa: Presence::Yes,
            url: "https://example.gov/a.css".into(),
            fetched_v6: Some(false),
            status_v6: Some(404),
            detail: None,
        });
        assert_eq!(r.validate(), Ok(()));
        let failing: Vec<_> = r
            .subresources
            .as_ref()
            .unwrap()
            .failing_hosts()
            .map(|h| h.host.as_str())
            .collect();
        assert_eq!(failing, ["cdn.example.net", "192.0.2.7"]);
    }

    #[test]
    fn same_host_is_derived_from_the_web_part_never_claimed() {
        let mut r = sample();
        let host = |name: &str, same_host: bool| SubresourceHost {
            host: name.into(),
            same_host,
            has_aaaa: Presence::No,
            url: format!("https://{name}/x.js"),
            fetched_v6: None,
            status_v6: None,
            detail: None,
        };
        let sub = r.subresources.as_mut().unwrap();
        // A result claiming an IPv4-only CDN is the page's own host, and not claiming the
        // web host and the redirect's host.
        sub.hosts[0].same_host = true;
        sub.hosts.push(host("EXAMPLE.gov", false));
        sub.hosts.push(host("www.example.gov", false));
        r.derive_same_hosts();
        let same: Vec<bool> = r
            .subresources
            .as_ref()
            .unwrap()
            .hosts
            .iter()
            .map(|h| h.same_host)
            .collect();
        assert_eq!(same, [false, true, false]);
        r.web.final_url = Some("https://www.example.gov/home".into());
        r.derive_same_hosts();
        let same: Vec<bool> = r
            .subresources
            .as_ref()
            .unwrap()
            .hosts
            .iter()
            .map(|h| h.same_host)
            .collect();
        assert_eq!(same, [false, true, true]);
        let failing: Vec<_> = r
            .subresources
            .as_ref()
            .unwrap()
            .failing_hosts()
            .map(|h| h.host.as_str())
            .collect();
        assert_eq!(failing, ["cdn.example.net"]);
        // Without subresources there is nothing to derive.
        r.subresources = None;
        r.derive_same_hosts();
        assert_eq!(r.subresources, None);
    }
}
