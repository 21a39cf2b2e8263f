//! `[publication]`: rules of what the public maps and campaign reports publish, checked into
//! [`crate::rollup::MinSample`], and who publishes them ([`Publisher`]: the name and logo a
//! campaign report is headed with).

use crate::rollup::{DEFAULT_MIN_PROBES, MinSample};
use serde::{Deserialize, Serialize};
use sixmap_shared::config::ConfigError;
use std::path::Path;

/// The largest minimum sample accepted: a higher one would hide nearly every figure, which is
/// more likely a typo than a policy.
pub const MAX_MIN_PROBES: usize = 1000;

/// Longest publisher name and logo URL accepted: a heading and an `<img src>`, not a document.
pub const MAX_PUBLISHER_BYTES: usize = 200;
pub const MAX_LOGO_URL_BYTES: usize = 2048;

/// Who publishes the reports: shown in their heading. Both optional; validated at start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Publisher {
    /// e.g. "Autorité de régulation des communications électroniques".
    pub name: Option<String>,
    /// An `https:` URL of the logo, or a `data:image/...` URL (so a PDF made offline still
    /// shows it).
    pub logo_url: Option<String>,
}

/// `[publication]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublicationConfig {
    /// Fewest probes behind a published share: a map cell (country, operator) or a report row
    /// with fewer is shown as "insufficient data" with its n, without share, colour or rank.
    /// 1..=1000; default 3 (`rollup::DEFAULT_MIN_PROBES`; docs/methodology.md).
    pub min_probes: usize,
    /// The publisher named in the heading of every campaign report (1..=200 bytes, no
    /// control characters).
    pub publisher: Option<String>,
    /// The publisher's logo in report headings: an `https:` or `data:image/` URL (at most
    /// 2048 bytes, no spaces, quotes or angle brackets, since it lands in an attribute).
    pub logo_url: Option<String>,
}

impl Default for PublicationConfig {
    fn default() -> Self {
        Self {
            min_probes: DEFAULT_MIN_PROBES,
            publisher: None,
            logo_url: None,
        }
    }
}

impl PublicationConfig {
    pub(super) fn validate(&self, source: Option<&Path>) -> Result<MinSample, ConfigError> {
        if !(1..=MAX_MIN_PROBES).contains(&self.min_probes) {
            return Err(ConfigError::invalid(
                "publication.min_probes",
                source,
                format!(
                    "{} is not between 1 (publish every figure) and {MAX_MIN_PROBES}",
                    self.min_probes
                ),
            ));
        }
        Ok(MinSample {
            min_probes: self.min_probes,
        })
    }

    /// The publisher of reports, checked.
    pub(super) fn publisher(&self, source: Option<&Path>) -> Result<Publisher, ConfigError> {
        if let Some(name) = &self.publisher {
            let trimmed = name.trim();
            if trimmed.is_empty()
                || name.len() > MAX_PUBLISHER_BYTES
                || name.chars().any(char::is_control)
            {
                return Err(ConfigError::invalid(
                    "publication.publisher",
                    source,
                    format!(
                        "must be 1..={MAX_PUBLISHER_BYTES} bytes of text without control characters"
                    ),
                ));
            }
        }
        if let Some(url) = &self.logo_url {
            let scheme_ok = url.starts_with("https://") || url.starts_with("data:image/");
            // It is written into an HTML attribute: nothing that could end it or open a tag.
            let clean = !url
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "\"'<>`".contains(c));
            if !scheme_ok || !clean || url.len() > MAX_LOGO_URL_BYTES {
                return Err(ConfigError::invalid(
                    "publication.logo_url",
                    source,
                    format!(
                        "must be an https:// or data:image/ URL of at most {MAX_LOGO_URL_BYTES} \
                         bytes without spaces, quotes or angle brackets"
                    ),
                ));
            }
        }
        Ok(Publisher {
            name: self.publisher.as_ref().map(|n| n.trim().to_owned()),
            logo_url: self.logo_url.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CollectorConfig;
    use sixmap_shared::config::parse_toml;

    fn settings(text: &str) -> Result<crate::config::Settings, String> {
        parse_toml::<CollectorConfig>(text)?
            .validate(None)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn min_probes_defaults_validates_and_names_its_key() {
        assert_eq!(
            settings("").unwrap().publication.min_probes,
            DEFAULT_MIN_PROBES
        );
        let set = settings("[publication]\nmin_probes = 5\n").unwrap();
        assert_eq!(set.publication, MinSample { min_probes: 5 });
        for bad in ["0", "1001"] {
            let text = settings(&format!("[publication]\nmin_probes = {bad}\n")).unwrap_err();
            assert!(
                text.contains("publication.min_probes") && text.contains(bad),
                "{text}"
            );
        }
        assert!(settings("[publication]\nmin_probe = 5\n").is_err());
    }

    #[test]
    fn publisher_and_logo_are_optional_and_checked() {
        assert_eq!(settings("").unwrap().publisher, Publisher::default());
        let set = settings(
            "[publication]\npublisher = \" Regulator of Examples \"\nlogo_url = \"https://example.org/logo.svg\"\n",
        )
        .unwrap();
        assert_eq!(set.publisher.name.as_deref(), Some("Regulator of Examples"));
        assert_eq!(
            set.publisher.logo_url.as_deref(),
            Some("https://example.org/logo.svg")
        );
        assert!(settings("[publication]\nlogo_url = \"data:image/png;base64,AAAA\"\n").is_ok());
        for (key, bad) in [
            ("publisher", "\"\""),
            ("publisher", "\"a\\u0007b\""),
            ("logo_url", "\"http://example.org/logo.svg\""),
            ("logo_url", "\"https://example.org/\\\" onerror=x\""),
            ("logo_url", "\"javascript:alert(1)\""),
        ] {
            let text = settings(&format!("[publication]\n{key} = {bad}\n")).unwrap_err();
            assert!(
                text.contains(&format!("publication.{key}")),
                "{bad}: {text}"
            );
        }
        let long = "x".repeat(MAX_PUBLISHER_BYTES + 1);
        assert!(settings(&format!("[publication]\npublisher = \"{long}\"\n")).is_err());
    }
}
