//! `[publication]`: rules of what the public maps and campaign reports publish, checked into
//! [`crate::rollup::MinSample`].

use crate::rollup::{DEFAULT_MIN_PROBES, MinSample};
use serde::Deserialize;
use sixmap_shared::config::ConfigError;
use std::path::Path;

/// The largest minimum sample accepted: a higher one would hide nearly every figure, which is
/// more likely a typo than a policy.
pub const MAX_MIN_PROBES: usize = 1000;

/// `[publication]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublicationConfig {
    /// Fewest probes behind a published share: a map cell (country, operator) or a report row
    /// with fewer is shown as "insufficient data" with its n, without share, colour or rank.
    /// 1..=1000; default 3 (`rollup::DEFAULT_MIN_PROBES`; docs/methodology.md).
    pub min_probes: usize,
}

impl Default for PublicationConfig {
    fn default() -> Self {
        Self {
            min_probes: DEFAULT_MIN_PROBES,
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
}
