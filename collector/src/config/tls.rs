//! `[tls]`: the names the gRPC listener's certificate carries, checked into [`TlsSettings`].
//!
//! Probes check the collector's certificate for the fixed name `sixmap-collector` (they pin
//! its CA, so the name proves nothing more); a researcher's standard gRPC client (grpcio, Go)
//! checks the name it dialled. `public_names` adds those names, DNS or IP, to the certificate
//! made at each start; `sixmap-collector` always stays in it.

pub use crate::pki::PublicName;
use serde::Deserialize;
use sixmap_shared::config::ConfigError;
use std::net::IpAddr;
use std::path::Path;

/// More names than this is a mistake (a list pasted twice), not a deployment.
pub const MAX_PUBLIC_NAMES: usize = 32;

/// `[tls]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Host names and addresses clients reach the gRPC port by, e.g.
    /// `["collector.example.org", "2001:db8::5"]`; each becomes a subject alternative name of
    /// the server certificate, beside `sixmap-collector`.
    pub public_names: Vec<String>,
}

/// `[tls]` checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    pub public_names: Vec<PublicName>,
}

impl TlsConfig {
    /// Each name an IP address (`2001:db8::5`, also in brackets) or a DNS host name (letters,
    /// digits and hyphens in dot-separated labels of 1..=63, at most 253 in all; no wildcard);
    /// errors name the entry (`tls.public_names[i]`).
    pub fn validate(&self, source: Option<&Path>) -> Result<TlsSettings, ConfigError> {
        if self.public_names.len() > MAX_PUBLIC_NAMES {
            return Err(ConfigError::invalid(
                "tls.public_names",
                source,
                format!(
                    "{} names, at most {MAX_PUBLIC_NAMES}",
                    self.public_names.len()
                ),
            ));
        }
        let mut names: Vec<PublicName> = Vec::with_capacity(self.public_names.len());
        for (i, text) in self.public_names.iter().enumerate() {
            let key = format!("tls.public_names[{i}]");
            let name = parse_name(text).map_err(|reason| {
                ConfigError::invalid(&key, source, format!("{text:?}: {reason}"))
            })?;
            if names.contains(&name) {
                return Err(ConfigError::invalid(
                    &key,
                    source,
                    format!("{text:?} is listed twice"),
                ));
            }
            names.push(name);
        }
        Ok(TlsSettings {
            public_names: names,
        })
    }
}

fn parse_name(text: &str) -> Result<PublicName, String> {
    let unbracketed = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        if ip.is_unspecified() || ip.is_multicast() {
            return Err("an unspecified or multicast address names no server".into());
        }
        return Ok(PublicName::Ip(ip));
    }
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    if name.is_empty() || name.len() > 253 {
        return Err("a host name has 1..=253 characters".into());
    }
    for label in name.split('.') {
        let ok = (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "label {label:?}: a host name is labels of 1..=63 letters, digits or inner \
                 hyphens (no wildcards), or give an IP address"
            ));
        }
    }
    // All-numeric dotted names would be read as (bad) IPv4 addresses by clients.
    if name
        .split('.')
        .all(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("not an IP address, and digits only cannot be a host name".into());
    }
    Ok(PublicName::Dns(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(names: &[&str]) -> Result<TlsSettings, String> {
        TlsConfig {
            public_names: names.iter().map(|n| (*n).to_owned()).collect(),
        }
        .validate(None)
        .map_err(|e| e.to_string())
    }

    #[test]
    fn names_are_dns_or_ip_and_errors_name_the_entry() {
        let ok = check(&[
            "Collector.Example.ORG.",
            "localhost",
            "2001:db8::5",
            "[::1]",
            "192.0.2.7",
        ])
        .unwrap();
        assert_eq!(
            ok.public_names,
            [
                PublicName::Dns("collector.example.org".into()),
                PublicName::Dns("localhost".into()),
                PublicName::Ip("2001:db8::5".parse().unwrap()),
                PublicName::Ip("::1".parse().unwrap()),
                PublicName::Ip("192.0.2.7".parse().unwrap()),
            ]
        );
        for (names, entry, words) in [
            (
                &["ok.example", "bad name"][..],
                "tls.public_names[1]",
                "bad name",
            ),
            (
                &["*.example.org"][..],
                "tls.public_names[0]",
                "no wildcards",
            ),
            (&["a..b"][..], "tls.public_names[0]", "label \"\""),
            (&["-a.example"][..], "tls.public_names[0]", "-a"),
            (&["300.1.2.3"][..], "tls.public_names[0]", "digits only"),
            (&["::"][..], "tls.public_names[0]", "unspecified"),
            (&[""][..], "tls.public_names[0]", "1..=253"),
            (
                &["a.example", "A.example."][..],
                "tls.public_names[1]",
                "twice",
            ),
        ] {
            let e = check(names).unwrap_err();
            assert!(e.contains(entry) && e.contains(words), "{names:?}: {e}");
        }
        let long = format!("{}.example", "a".repeat(64));
        assert!(check(&[&long]).unwrap_err().contains("1..=63"));
        let many: Vec<String> = (0..=MAX_PUBLIC_NAMES)
            .map(|i| format!("h{i}.example"))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(check(&many).unwrap_err().contains("at most 32"));
        assert_eq!(check(&[]).unwrap(), TlsSettings::default());
    }
}
