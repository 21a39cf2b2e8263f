//! `[alerts]` in the collector config: the webhooks alerts are delivered to and the rules
//! that raise them (`crate::alerts`). Every error names its key (`alerts.rules[2].points`).

use serde::{Deserialize, Serialize};
use sixmap_shared::config::ConfigError;
use sixmap_shared::prefixes::CountryCode;
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

/// Most rules and webhooks: each costs work every evaluation and every delivery cycle.
pub const MAX_RULES: usize = 64;
pub const MAX_WEBHOOKS: usize = 8;
/// Most subjects (countries plus networks) one `share_drop` rule watches.
pub const MAX_SUBJECTS: usize = 1000;

/// `min_tests` of the pmtu_black_hole and ext_header_drop rules when not given: a single test
/// on each day compared would call one flapping path a new black hole every other day.
pub const DEFAULT_MIN_TESTS: u64 = 5;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Seconds between rule evaluations.
    pub evaluate_every_s: u64,
    /// Alerts kept (delivered and not); over it the oldest are dropped, delivered first.
    pub max_stored: usize,
    /// Deadline of one webhook request, connect to status line.
    pub timeout_ms: u64,
    /// First retry pause after a failed delivery, doubled per failure up to `backoff_max_s`.
    pub backoff_initial_ms: u64,
    pub backoff_max_s: u64,
    pub webhooks: Vec<WebhookToml>,
    /// Alerts by email through an SMTP relay.
    pub emails: Vec<EmailToml>,
    pub rules: Vec<RuleToml>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            evaluate_every_s: 60,
            max_stored: 10_000,
            timeout_ms: 10_000,
            backoff_initial_ms: 1000,
            backoff_max_s: 600,
            webhooks: Vec::new(),
            emails: Vec::new(),
            rules: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailToml {
    /// Names it in the delivery state, as a webhook's name (unique among both).
    pub name: String,
    /// `host:port` of an SMTP relay spoken to in plain SMTP (no TLS, no login): the
    /// operator's own MTA, which does both onwards.
    pub relay: String,
    /// The envelope and `From` address.
    pub from: String,
    /// Recipients of every alert (at most 16; may be empty when `probe_owners` is set).
    #[serde(default)]
    pub to: Vec<String>,
    /// Probe owners' own contacts: owner (as in their enrollment token) → address. A
    /// `probe_offline` alert of an owner's probe goes to that owner too, as RIPE Atlas tells a
    /// host whose probe is down.
    #[serde(default)]
    pub probe_owners: std::collections::BTreeMap<String, String>,
}

/// Most owner contacts one email destination holds.
pub const MAX_PROBE_OWNERS: usize = 100_000;

/// A validated email destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub name: String,
    pub relay: String,
    pub from: String,
    pub to: Vec<String>,
    /// Owner → address (see [`EmailToml::probe_owners`]).
    pub probe_owners: std::collections::BTreeMap<String, String>,
}

/// An address as SMTP takes it between `<` and `>`: something@something, no spaces, no
/// controls, no angle brackets.
fn address_ok(text: &str) -> bool {
    let ok_chars = text
        .chars()
        .all(|c| !c.is_control() && !c.is_whitespace() && c != '<' && c != '>');
    ok_chars
        && text.len() <= 254
        && text
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookToml {
    /// Names the webhook in the delivery state (`GET /api/v1/alerts`) and in logs.
    pub name: String,
    /// `http://host:port/path`.
    pub url: String,
    /// HMAC-SHA256 key of `X-Sixmap-Signature`; at least 16 bytes.
    pub secret: String,
}

/// As derived, without the secret: a config printed with `?` must not leak it.
impl std::fmt::Debug for WebhookToml {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookToml")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A rule as written: in `[[alerts.rules]]`, and the body of `POST /api/v1/alert-rules` (the
/// same keys, as JSON), stored as such (`RuleToml::validate` again when read).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleToml {
    /// Part of every alert's id, so keep it stable: renaming a rule re-raises its alerts.
    pub id: String,
    /// `share_drop`, `probe_offline` or `target_lost_v6`.
    pub kind: String,
    /// `target_lost_v6`: the campaigns watched (ids); empty: every active campaign.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub campaigns: Vec<u64>,
    /// `share_drop`: countries (ISO 3166 alpha-2) and networks (origin AS numbers) watched;
    /// `pmtu_black_hole`, `ext_header_drop`: networks (empty: every network with figures).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub countries: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<u32>,
    /// `share_drop`: the drop in percentage points of the operator-balanced IPv6 share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<f64>,
    /// `share_drop`: fewest probes on each of the two days; `target_lost_v6`: fewest probes
    /// whose latest IPv6 result failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_probes: Option<usize>,
    /// `probe_offline`: hours without contact (fractions allowed, for tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<f64>,
    /// `pmtu_black_hole`, `ext_header_drop`: fewest tests on each of the two days compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_tests: Option<u64>,
}

/// A validated webhook.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    pub name: String,
    /// Host and port to connect to, and the request target (path and query).
    pub authority: String,
    pub path: String,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches logs.
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("authority", &self.authority)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    ShareDrop {
        countries: Vec<CountryCode>,
        networks: Vec<u32>,
        points: f64,
        min_probes: usize,
    },
    ProbeOffline {
        after: Duration,
    },
    TargetLostV6 {
        /// Empty: every active campaign.
        campaigns: Vec<u64>,
        min_probes: usize,
    },
    /// A network's PMTU tests found a black hole yesterday and none the day before.
    PmtuBlackHole {
        /// Empty: every network with stored days.
        networks: Vec<u32>,
        min_tests: u64,
    },
    /// A network dropped an extension header yesterday that it let through the day before.
    ExtHeaderDrop {
        networks: Vec<u32>,
        min_tests: u64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: String,
    pub kind: RuleKind,
}

/// `[alerts]` validated. Without rules here, rules made over the API still run.
#[derive(Debug, Clone)]
pub struct Alerts {
    pub evaluate_every: Duration,
    pub max_stored: usize,
    pub timeout: Duration,
    pub backoff: crate::alerts::plan::Backoff,
    pub webhooks: Vec<Webhook>,
    pub emails: Vec<Email>,
    pub rules: Vec<Rule>,
    /// `rules` as written, for `GET /api/v1/alert-rules`.
    pub written: Vec<RuleToml>,
}

impl Alerts {
    /// Every destination's name (webhooks, then emails): the keys of an alert's deliveries.
    pub fn destinations(&self) -> Vec<String> {
        self.webhooks
            .iter()
            .map(|w| w.name.clone())
            .chain(self.emails.iter().map(|e| e.name.clone()))
            .collect()
    }
}

impl Default for Alerts {
    fn default() -> Self {
        AlertsConfig::default()
            .validate(None)
            .unwrap_or_else(|_| unreachable!("the defaults are valid"))
    }
}

fn name_ok(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `http://authority/path` split; https is not spoken (a TLS-terminating proxy on the
/// receiver's side, or a local relay, covers it).
fn parse_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("must start with http:// (https is not supported)")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err("needs a host[:port] and no user info".into());
    }
    if url.len() > 2048 || url.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err("must be at most 2048 characters without spaces or controls".into());
    }
    Ok((authority.to_owned(), path.to_owned()))
}

impl RuleToml {
    /// Checks one rule (its id's form, not its uniqueness): the error names the field
    /// (`points`) and the problem. The config and the rules API (`crate::alerts::rules_api`)
    /// both take rules through it.
    pub fn validate(self) -> Result<Rule, (String, String)> {
        let bad = |field: &str, reason: String| (field.to_owned(), reason);
        if !name_ok(&self.id) {
            return Err(bad("id", "must be 1-64 letters, digits, '-' or '_'".into()));
        }
        let unused = |field: &str, set: bool| {
            if set {
                Err(bad(field, format!("not a key of kind {:?}", self.kind)))
            } else {
                Ok(())
            }
        };
        let kind = match self.kind.as_str() {
            "share_drop" => {
                unused("min_tests", self.min_tests.is_some())?;
                unused("hours", self.hours.is_some())?;
                unused("campaigns", !self.campaigns.is_empty())?;
                let points = self
                    .points
                    .ok_or_else(|| bad("points", "is required".into()))?;
                if !(points > 0.0 && points <= 100.0) {
                    return Err(bad("points", "must be in (0, 100]".into()));
                }
                let min_probes = self.min_probes.unwrap_or(5);
                if min_probes == 0 {
                    return Err(bad("min_probes", "must be at least 1".into()));
                }
                if self.countries.is_empty() && self.networks.is_empty() {
                    return Err(bad(
                        "countries",
                        "name at least one country or network".into(),
                    ));
                }
                if self.countries.len() + self.networks.len() > MAX_SUBJECTS {
                    return Err(bad(
                        "countries",
                        format!("at most {MAX_SUBJECTS} countries and networks"),
                    ));
                }
                let countries = self
                    .countries
                    .iter()
                    .map(|c| {
                        // Any case, as the API's country paths.
                        c.to_ascii_uppercase()
                            .parse::<CountryCode>()
                            .map_err(|e| bad("countries", e.to_string()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                RuleKind::ShareDrop {
                    countries,
                    networks: self.networks,
                    points,
                    min_probes,
                }
            }
            "probe_offline" => {
                unused("min_tests", self.min_tests.is_some())?;
                unused("campaigns", !self.campaigns.is_empty())?;
                unused("points", self.points.is_some())?;
                unused("min_probes", self.min_probes.is_some())?;
                unused(
                    "countries",
                    !self.countries.is_empty() || !self.networks.is_empty(),
                )?;
                let hours = self
                    .hours
                    .ok_or_else(|| bad("hours", "is required".into()))?;
                if !(0.0001..=8760.0).contains(&hours) {
                    return Err(bad("hours", "must be in [0.0001, 8760]".into()));
                }
                RuleKind::ProbeOffline {
                    after: Duration::from_secs_f64(hours * 3600.0),
                }
            }
            "target_lost_v6" => {
                unused("min_tests", self.min_tests.is_some())?;
                unused("points", self.points.is_some())?;
                unused("hours", self.hours.is_some())?;
                unused(
                    "countries",
                    !self.countries.is_empty() || !self.networks.is_empty(),
                )?;
                if self.campaigns.len() > MAX_SUBJECTS || self.campaigns.contains(&0) {
                    return Err(bad(
                        "campaigns",
                        format!("at most {MAX_SUBJECTS} campaign ids, none 0"),
                    ));
                }
                let min_probes = self.min_probes.unwrap_or(1);
                if min_probes == 0 {
                    return Err(bad("min_probes", "must be at least 1".into()));
                }
                RuleKind::TargetLostV6 {
                    campaigns: self.campaigns,
                    min_probes,
                }
            }
            kind @ ("pmtu_black_hole" | "ext_header_drop") => {
                unused("points", self.points.is_some())?;
                unused("hours", self.hours.is_some())?;
                unused("min_probes", self.min_probes.is_some())?;
                unused("campaigns", !self.campaigns.is_empty())?;
                unused("countries", !self.countries.is_empty())?;
                if self.networks.len() > MAX_SUBJECTS || self.networks.contains(&0) {
                    return Err(bad(
                        "networks",
                        format!("at most {MAX_SUBJECTS} AS numbers, none 0"),
                    ));
                }
                let min_tests = self.min_tests.unwrap_or(DEFAULT_MIN_TESTS);
                if min_tests == 0 {
                    return Err(bad("min_tests", "must be at least 1".into()));
                }
                let networks = self.networks;
                if kind == "pmtu_black_hole" {
                    RuleKind::PmtuBlackHole {
                        networks,
                        min_tests,
                    }
                } else {
                    RuleKind::ExtHeaderDrop {
                        networks,
                        min_tests,
                    }
                }
            }
            other => {
                return Err(bad(
                    "kind",
                    format!(
                        "{other:?}: expected share_drop, probe_offline, target_lost_v6, \
                         pmtu_black_hole or ext_header_drop"
                    ),
                ));
            }
        };
        Ok(Rule { id: self.id, kind })
    }
}

impl AlertsConfig {
    pub fn validate(self, source: Option<&Path>) -> Result<Alerts, ConfigError> {
        let invalid = |key: &str, reason: String| {
            ConfigError::invalid(format!("alerts.{key}"), source, reason)
        };
        if !(1..=86_400).contains(&self.evaluate_every_s) {
            return Err(invalid("evaluate_every_s", "must be 1..=86400".into()));
        }
        if !(1..=1_000_000).contains(&self.max_stored) {
            return Err(invalid("max_stored", "must be 1..=1000000".into()));
        }
        if !(100..=300_000).contains(&self.timeout_ms) {
            return Err(invalid("timeout_ms", "must be 100..=300000".into()));
        }
        if !(10..=3_600_000).contains(&self.backoff_initial_ms) {
            return Err(invalid("backoff_initial_ms", "must be 10..=3600000".into()));
        }
        if !(1..=86_400).contains(&self.backoff_max_s)
            || self.backoff_max_s * 1000 < self.backoff_initial_ms
        {
            return Err(invalid(
                "backoff_max_s",
                "must be 1..=86400 and at least backoff_initial_ms".into(),
            ));
        }
        if self.webhooks.len() > MAX_WEBHOOKS {
            return Err(invalid("webhooks", format!("at most {MAX_WEBHOOKS}")));
        }
        if self.rules.len() > MAX_RULES {
            return Err(invalid("rules", format!("at most {MAX_RULES}")));
        }
        let mut names = HashSet::new();
        let mut webhooks = Vec::new();
        for (i, hook) in self.webhooks.into_iter().enumerate() {
            let key = |field: &str| format!("webhooks[{i}].{field}");
            if !name_ok(&hook.name) || !names.insert(hook.name.clone()) {
                return Err(invalid(
                    &key("name"),
                    "must be unique, 1-64 letters, digits, '-' or '_'".into(),
                ));
            }
            let (authority, path) = parse_url(&hook.url).map_err(|e| invalid(&key("url"), e))?;
            if hook.secret.len() < 16 {
                return Err(invalid(&key("secret"), "must be at least 16 bytes".into()));
            }
            webhooks.push(Webhook {
                name: hook.name,
                authority,
                path,
                secret: hook.secret.into_bytes(),
            });
        }
        if webhooks.len() + self.emails.len() > MAX_WEBHOOKS {
            return Err(invalid(
                "emails",
                format!("at most {MAX_WEBHOOKS} webhooks and emails together"),
            ));
        }
        let mut emails = Vec::new();
        for (i, mail) in self.emails.into_iter().enumerate() {
            let key = |field: &str| format!("emails[{i}].{field}");
            if !name_ok(&mail.name) || !names.insert(mail.name.clone()) {
                return Err(invalid(
                    &key("name"),
                    "must be unique among webhooks and emails, 1-64 letters, digits, '-' or '_'"
                        .into(),
                ));
            }
            let port_ok = mail
                .relay
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !port_ok || mail.relay.len() > 255 || mail.relay.contains(['/', '@', ' ']) {
                return Err(invalid(&key("relay"), "must be host:port".into()));
            }
            if !address_ok(&mail.from) {
                return Err(invalid(&key("from"), "must be an address (a@b)".into()));
            }
            if (mail.to.is_empty() && mail.probe_owners.is_empty()) || mail.to.len() > 16 {
                return Err(invalid(
                    &key("to"),
                    "1 to 16 addresses (or none, with probe_owners)".into(),
                ));
            }
            if mail.probe_owners.len() > MAX_PROBE_OWNERS {
                return Err(invalid(
                    &key("probe_owners"),
                    format!("at most {MAX_PROBE_OWNERS} owners"),
                ));
            }
            if let Some((owner, bad)) = mail.probe_owners.iter().find(|(_, a)| !address_ok(a)) {
                return Err(invalid(
                    &key(&format!("probe_owners.{owner}")),
                    format!("{bad:?} is not an address (a@b)"),
                ));
            }
            if let Some(bad) = mail.to.iter().find(|t| !address_ok(t)) {
                return Err(invalid(
                    &key("to"),
                    format!("{bad:?} is not an address (a@b)"),
                ));
            }
            emails.push(Email {
                name: mail.name,
                relay: mail.relay,
                from: mail.from,
                to: mail.to,
                probe_owners: mail.probe_owners,
            });
        }
        let mut ids = HashSet::new();
        let mut rules = Vec::new();
        let written = self.rules.clone();
        for (i, rule) in self.rules.into_iter().enumerate() {
            let key = |field: &str| format!("rules[{i}].{field}");
            if !ids.insert(rule.id.clone()) {
                return Err(invalid(&key("id"), "must be unique".into()));
            }
            let rule = rule
                .validate()
                .map_err(|(field, reason)| invalid(&key(&field), reason))?;
            rules.push(rule);
        }
        if !rules.is_empty() && webhooks.is_empty() && emails.is_empty() {
            return Err(invalid(
                "webhooks",
                "rules are set but no webhook or email receives their alerts".into(),
            ));
        }
        Ok(Alerts {
            evaluate_every: Duration::from_secs(self.evaluate_every_s),
            max_stored: self.max_stored,
            timeout: Duration::from_millis(self.timeout_ms),
            backoff: crate::alerts::plan::Backoff {
                base: Duration::from_millis(self.backoff_initial_ms),
                cap: Duration::from_secs(self.backoff_max_s),
            },
            webhooks,
            emails,
            rules,
            written,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<Alerts, String> {
        let config: AlertsConfig = sixmap_shared::config::parse_toml(toml)?;
        config.validate(None).map_err(|e| e.to_string())
    }

    const HOOK: &str = "[[webhooks]]\nname = \"ops\"\nurl = \"http://[::1]:9000/hook?x=1\"\nsecret = \"0123456789abcdef\"\n";

    #[test]
    fn valid_rules_and_webhooks() {
        let alerts = parse(&format!(
            "{HOOK}[[rules]]\nid = \"de-drop\"\nkind = \"share_drop\"\ncountries = [\"de\"]\nnetworks = [64500]\npoints = 5\n\
             [[rules]]\nid = \"offline\"\nkind = \"probe_offline\"\nhours = 6\n\
             [[rules]]\nid = \"lost\"\nkind = \"target_lost_v6\"\ncampaigns = [7]\n"
        ))
        .unwrap();
        assert_eq!(alerts.webhooks[0].authority, "[::1]:9000");
        assert_eq!(alerts.webhooks[0].path, "/hook?x=1");
        assert!(!format!("{:?}", alerts.webhooks[0]).contains("0123456789abcdef"));
        // Nor the config as read, whole.
        let read: AlertsConfig = sixmap_shared::config::parse_toml(HOOK).unwrap();
        let shown = format!("{read:?}");
        assert!(
            shown.contains("ops") && !shown.contains("0123456789abcdef"),
            "{shown}"
        );
        assert_eq!(
            alerts.rules[1].kind,
            RuleKind::ProbeOffline {
                after: Duration::from_secs(6 * 3600)
            }
        );
        assert_eq!(
            alerts.rules[2].kind,
            RuleKind::TargetLostV6 {
                campaigns: vec![7],
                min_probes: 1
            }
        );
        let RuleKind::ShareDrop {
            countries,
            min_probes,
            ..
        } = &alerts.rules[0].kind
        else {
            panic!("{:?}", alerts.rules[0]);
        };
        assert_eq!(countries[0].to_string(), "DE");
        assert_eq!(*min_probes, 5);
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                format!(
                    "{HOOK}[[rules]]\nid = \"a\"\nkind = \"share_drop\"\ncountries = [\"DE\"]\n"
                ),
                "alerts.rules[0].points",
            ),
            (
                format!("{HOOK}[[rules]]\nid = \"a\"\nkind = \"share_drop\"\npoints = 5\n"),
                "alerts.rules[0].countries",
            ),
            (
                format!(
                    "{HOOK}[[rules]]\nid = \"a\"\nkind = \"share_drop\"\ncountries = [\"XYZ\"]\npoints = 5\n"
                ),
                "alerts.rules[0].countries",
            ),
            (
                format!(
                    "{HOOK}[[rules]]\nid = \"a\"\nkind = \"probe_offline\"\nhours = 2\npoints = 3\n"
                ),
                "alerts.rules[0].points",
            ),
            (
                format!("{HOOK}[[rules]]\nid = \"a\"\nkind = \"probe_offline\"\nhours = 0\n"),
                "alerts.rules[0].hours",
            ),
            (
                format!("{HOOK}[[rules]]\nid = \"a\"\nkind = \"nope\"\n"),
                "alerts.rules[0].kind",
            ),
            (
                format!(
                    "{HOOK}[[rules]]\nid = \"a\"\nkind = \"target_lost_v6\"\ncampaigns = [0]\n"
                ),
                "alerts.rules[0].campaigns",
            ),
            (
                format!(
                    "{HOOK}[[rules]]\nid = \"a\"\nkind = \"probe_offline\"\nhours = 1\ncampaigns = [3]\n"
                ),
                "alerts.rules[0].campaigns",
            ),
            (
                format!("{HOOK}[[rules]]\nid = \"a b\"\nkind = \"probe_offline\"\nhours = 1\n"),
                "alerts.rules[0].id",
            ),
            (
                "[[rules]]\nid = \"a\"\nkind = \"probe_offline\"\nhours = 1\n".to_string(),
                "alerts.webhooks",
            ),
            (
                "[[webhooks]]\nname = \"a\"\nurl = \"https://x/\"\nsecret = \"0123456789abcdef\"\n"
                    .to_string(),
                "alerts.webhooks[0].url",
            ),
            (
                "[[webhooks]]\nname = \"a\"\nurl = \"http://x/\"\nsecret = \"short\"\n".to_string(),
                "alerts.webhooks[0].secret",
            ),
            (format!("{HOOK}{HOOK}"), "alerts.webhooks[1].name"),
            ("timeout_ms = 1\n".to_string(), "alerts.timeout_ms"),
            (
                "[[emails]]\nname = \"m\"\nrelay = \"mail.example.org\"\nfrom = \"a@b\"\nto = [\"c@d\"]\n"
                    .to_string(),
                "alerts.emails[0].relay",
            ),
            (
                "[[emails]]\nname = \"m\"\nrelay = \"mx:25\"\nfrom = \"a@b\"\nto = [\"c@d>\\r\\nRCPT TO:<e@f\"]\n"
                    .to_string(),
                "alerts.emails[0].to",
            ),
            (
                "[[emails]]\nname = \"m\"\nrelay = \"mx:25\"\nfrom = \"nobody\"\nto = [\"c@d\"]\n"
                    .to_string(),
                "alerts.emails[0].from",
            ),
            (
                format!("{HOOK}[[emails]]\nname = \"ops\"\nrelay = \"mx:25\"\nfrom = \"a@b\"\nto = [\"c@d\"]\n"),
                "alerts.emails[0].name",
            ),
        ];
        for (toml, key) in cases {
            let error = parse(&toml).unwrap_err();
            assert!(error.contains(key), "{toml}: {error} should name {key}");
        }
    }

    #[test]
    fn the_example_config_alerts_are_valid_uncommented() {
        let text = include_str!("../../../deploy/collector.example.toml");
        let start = text.find("[alerts]").unwrap();
        let end = start + text[start..].find("\n\n").unwrap();
        let uncommented: String = text[start..end]
            .lines()
            .map(|l| l.strip_prefix('#').unwrap_or(l).trim_start())
            .map(|l| format!("{l}\n"))
            .collect();
        let config: crate::config::CollectorConfig =
            sixmap_shared::config::parse_toml(&uncommented).unwrap();
        let alerts = config.alerts.validate(None).unwrap();
        assert_eq!(
            (
                alerts.webhooks.len(),
                alerts.emails.len(),
                alerts.rules.len()
            ),
            (1, 1, 4)
        );
    }
}
