//! Loading TOML configuration files with errors that name the file, the key and the problem.
//!
//! Each daemon defines its own config struct (with `#[serde(deny_unknown_fields)]`) and loads
//! it through [`load_toml`]; command-line flags are applied on top by the daemon.

use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config value `{key}`{location}: {reason}")]
    Invalid {
        key: String,
        location: String,
        reason: String,
    },
}

impl ConfigError {
    /// A semantically wrong value found after parsing, e.g. a port of 0.
    pub fn invalid(
        key: impl Into<String>,
        source: Option<&Path>,
        reason: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            key: key.into(),
            location: source
                .map(|p| format!(" in {}", p.display()))
                .unwrap_or_default(),
            reason: reason.into(),
        }
    }
}

/// Reads and parses `path`. Unknown keys are rejected when `T` uses `deny_unknown_fields`.
pub fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_toml(&text).map_err(|message| ConfigError::Parse {
        path: path.to_owned(),
        message,
    })
}

/// Parses TOML text; the error message carries line, column and the offending key.
pub fn parse_toml<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Example {
        name: String,
        #[serde(default)]
        count: u32,
    }

    #[test]
    fn unknown_keys_and_bad_types_are_named() {
        let err = parse_toml::<Example>("name = \"a\"\ncolour = 3\n").unwrap_err();
        assert!(err.contains("colour"), "{err}");
        let err = parse_toml::<Example>("name = \"a\"\ncount = \"many\"\n").unwrap_err();
        assert!(err.contains("count") || err.contains("line 2"), "{err}");
        let err = parse_toml::<Example>("name = \n").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = load_toml::<Example>(Path::new("/nonexistent/sixmap.toml")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/sixmap.toml"),
            "{err}"
        );
    }
}
