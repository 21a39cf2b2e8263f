//! A readiness result as `sixmap-probe measure readiness` prints it: one table per check.

use sixmap_shared::measurement::{ConnectOutcome, Family, Presence, ReadinessResult};
use std::fmt::Write as _;

fn yes_no(value: Option<bool>) -> &'static str {
    match value {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    }
}

fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn connect(outcome: Option<ConnectOutcome>) -> &'static str {
    outcome.map_or("-", ConnectOutcome::words)
}

/// `  (why)` after a row, when there is something to say.
fn note(detail: &Option<String>) -> String {
    detail
        .as_ref()
        .map_or_else(String::new, |d| format!("  ({d})"))
}

pub fn readiness(r: &ReadinessResult) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "resolver: {}", or_dash(r.resolver));
    if let Some(prefix) = r.dns64_prefix {
        let _ = writeln!(
            out,
            "DNS64 prefix {prefix}/96: AAAA answers under it are not counted"
        );
    }
    let dns = &r.dns;
    let _ = writeln!(
        out,
        "\nDNS: NS lookup {}{}",
        dns.ns_lookup.status.words(),
        note(&dns.ns_lookup.detail)
    );
    if !dns.servers.is_empty() {
        let _ = writeln!(
            out,
            "  {:<32} {:<12} {:<40} answers over IPv6",
            "name server", "AAAA", "address"
        );
    }
    for s in &dns.servers {
        let _ = writeln!(
            out,
            "  {:<32} {:<12} {:<40} {}{}",
            s.name,
            s.has_aaaa.words(),
            or_dash(s.address),
            yes_no(s.answers_over_v6),
            note(&s.detail)
        );
    }
    if let Some(mail) = &r.mail {
        let state = if mail.null_mx {
            "null MX: the domain takes no mail".to_owned()
        } else {
            format!("MX lookup {}", mail.mx_lookup.status.words())
        };
        let _ = writeln!(out, "\nMail: {state}{}", note(&mail.mx_lookup.detail));
        if !mail.exchangers.is_empty() {
            let _ = writeln!(
                out,
                "  {:<5} {:<32} {:<12} {:<40} port 25 over IPv6",
                "pref", "exchanger", "AAAA", "address"
            );
        }
        for x in &mail.exchangers {
            let _ = writeln!(
                out,
                "  {:<5} {:<32} {:<12} {:<40} {}{}",
                x.preference,
                x.name,
                x.has_aaaa.words(),
                or_dash(x.address),
                connect(x.smtp_v6),
                note(&x.detail)
            );
        }
    }
    let web = &r.web;
    let _ = writeln!(
        out,
        "\nWeb: {}: AAAA {}{}, A {}{}",
        web.host,
        web.aaaa.words(),
        web.v6_address
            .map_or_else(String::new, |a| format!(" ({a})")),
        web.a.words(),
        web.v4_address
            .map_or_else(String::new, |a| format!(" ({a})")),
    );
    for (family, connected, status, error) in [
        (
            "IPv6",
            web.https_v6_connect,
            web.https_v6_status,
            &web.v6_error,
        ),
        (
            "IPv4",
            web.https_v4_connect,
            web.https_v4_status,
            &web.v4_error,
        ),
    ] {
        let _ = writeln!(
            out,
            "  https over {family}: connect {}, status {}{}",
            connect(connected),
            or_dash(status),
            note(error)
        );
    }
    let _ = writeln!(
        out,
        "  certificate verified over IPv6: {}; same certificate: {}; same content: {} (bytes v6 {}, v4 {})",
        yes_no(web.v6_certificate_verified),
        yes_no(web.same_certificate),
        yes_no(web.same_content),
        or_dash(web.v6_body_bytes),
        or_dash(web.v4_body_bytes),
    );
    if let Some(url) = &web.final_url {
        let _ = writeln!(out, "  redirected to {url}");
    }
    if let Some(sub) = &r.subresources {
        let from = match sub.html_from {
            Some(Family::V6) => "the IPv6 page",
            Some(Family::V4) => "the IPv4 page (none over IPv6)",
            None => "no page",
        };
        let _ = writeln!(
            out,
            "\nSubresources: {} host{} from {from}{}",
            sub.hosts.len(),
            if sub.hosts.len() == 1 { "" } else { "s" },
            if sub.truncated {
                ", more not checked"
            } else {
                ""
            }
        );
        if !sub.hosts.is_empty() {
            let _ = writeln!(
                out,
                "  {:<40} {:<12} {:<20} status",
                "host", "AAAA", "fetched over IPv6"
            );
        }
        for h in &sub.hosts {
            let _ = writeln!(
                out,
                "  {:<40} {:<12} {:<20} {}{}",
                if h.same_host {
                    format!("{} (the page's)", h.host)
                } else {
                    h.host.clone()
                },
                h.has_aaaa.words(),
                yes_no(h.fetched_v6),
                or_dash(h.status_v6),
                note(&h.detail)
            );
        }
        if sub.html_from.is_some() {
            let failing: Vec<&str> = sub.failing_hosts().map(|h| h.host.as_str()).collect();
            let undecided = sub
                .hosts
                .iter()
                .any(|h| h.has_aaaa == Presence::Inconclusive || h.fetched_v6.is_none());
            let verdict = match (failing.is_empty(), undecided || sub.truncated) {
                (false, _) => format!("no: {}", failing.join(", ")),
                (true, true) => "not decided (hosts not checked or inconclusive)".to_owned(),
                (true, false) => "yes".to_owned(),
            };
            let _ = writeln!(out, "  page works IPv6-only: {verdict}");
        }
    }
    out
}
