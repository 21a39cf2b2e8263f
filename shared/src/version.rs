//! Software versions exchanged at hello and stamped on every result.

/// Version of this build, shared by probe and collector (one workspace, one version).
pub const SOFTWARE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A `major.minor.patch` version, the only form the protocol accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    /// Parses `1.2.3` (a pre-release or build suffix after `-`/`+` is ignored).
    pub fn parse(text: &str) -> Option<Self> {
        let core = text.split(['-', '+']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
        let version = Self {
            major: parts.next()??,
            minor: parts.next()??,
            patch: parts.next()??,
        };
        parts.next().is_none().then_some(version)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders_versions() {
        let a = Version::parse("0.1.0").unwrap();
        let b = Version::parse("0.10.2-rc1").unwrap();
        assert!(a < b);
        assert_eq!(b.to_string(), "0.10.2");
        assert!(Version::parse("1.2").is_none());
        assert!(Version::parse("1.2.3.4").is_none());
        assert!(Version::parse("x.2.3").is_none());
        assert!(Version::parse(SOFTWARE_VERSION).is_some());
    }
}
