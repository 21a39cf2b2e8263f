//! Prefix data for enrichment: which AS and country an address belongs to.
//!
//! `sixmap-collector import-prefixes` checks each file (errors name the file and line) and
//! copies it into `<data_dir>/prefixes/<kind>/`; the collector loads every file there at
//! start. Keeping the files as published means a later version of the parser can read them
//! again, and an operator can see exactly which data a map was built from.

use sixmap_shared::prefixes::{AddressFormat, Enrichment, LoadCounts, ParseError, PrefixData};
use std::fs::File;
use std::io::BufReader;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The file formats the collector reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// `@ip-location-db/asn` CSV (`asn-ipv4.csv`, `asn-ipv6-num.csv`, ...).
    Asn,
    /// `@ip-location-db/geo-whois-asn-country` CSV.
    Country,
    /// RIR delegated(-extended) statistics.
    Rir,
}

impl SourceKind {
    pub const ALL: [SourceKind; 3] = [Self::Asn, Self::Country, Self::Rir];

    fn dir_name(self) -> &'static str {
        match self {
            Self::Asn => "asn",
            Self::Country => "country",
            Self::Rir => "rir",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse { path: PathBuf, source: ParseError },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EnrichError + '_ {
    move |source| EnrichError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What one file contributed.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub kind: SourceKind,
    pub path: PathBuf,
    pub counts: LoadCounts,
}

fn load_file(
    data: &mut PrefixData,
    kind: SourceKind,
    path: &Path,
) -> Result<LoadCounts, EnrichError> {
    let reader = BufReader::new(File::open(path).map_err(io(path))?);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let format = AddressFormat::from_file_name(&name);
    let parsed = match kind {
        SourceKind::Asn => data.load_asn_csv(reader, format),
        SourceKind::Country => data.load_country_csv(reader, format),
        SourceKind::Rir => data.load_rir_delegated(reader),
    };
    parsed.map_err(|source| EnrichError::Parse {
        path: path.to_owned(),
        source,
    })
}

fn prefixes_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("prefixes")
}

/// Checks `files` (all of one kind) and copies them into the data directory. With `replace`,
/// the kind's earlier files go first. Nothing is copied unless every file parses.
pub fn import(
    data_dir: &Path,
    kind: SourceKind,
    files: &[PathBuf],
    replace: bool,
) -> Result<Vec<FileReport>, EnrichError> {
    let mut reports = Vec::new();
    for path in files {
        let mut scratch = PrefixData::new();
        let counts = load_file(&mut scratch, kind, path)?;
        reports.push(FileReport {
            kind,
            path: path.clone(),
            counts,
        });
    }
    let dir = prefixes_dir(data_dir).join(kind.dir_name());
    if replace && dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
    }
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    for path in files {
        let name = path.file_name().ok_or_else(|| EnrichError::Io {
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
        })?;
        let target = dir.join(name);
        std::fs::copy(path, &target).map_err(io(&target))?;
    }
    Ok(reports)
}

/// Loads every imported file. Files of a kind load in name order, so for the same prefix the
/// file named last wins.
pub fn load(data_dir: &Path) -> Result<(PrefixData, Vec<FileReport>), EnrichError> {
    let mut data = PrefixData::new();
    let mut reports = Vec::new();
    for kind in SourceKind::ALL {
        let dir = prefixes_dir(data_dir).join(kind.dir_name());
        if !dir.exists() {
            continue;
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(io(&dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for path in files {
            let counts = load_file(&mut data, kind, &path)?;
            reports.push(FileReport { kind, path, counts });
        }
    }
    Ok((data, reports))
}

/// The enrichment of an address, or `None` when the prefix data knows nothing of it.
pub fn lookup(data: &PrefixData, address: IpAddr) -> Option<Enrichment> {
    let found = data.lookup(address);
    (found != Enrichment::default()).then_some(found)
}

/// The routed prefix holding an address: the most specific prefix of the ASN data (an
/// announced prefix's origin), or `None` when the data does not cover the address.
pub fn routed_prefix(data: &PrefixData, address: IpAddr) -> Option<(IpAddr, u8)> {
    data.asn
        .lookup(address)
        .map(|(_, network, len)| (network, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/prefixes")
            .join(name)
    }

    #[test]
    fn imported_files_are_checked_copied_and_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let reports = import(
            dir.path(),
            SourceKind::Asn,
            &[fixture("asn-ipv4.csv"), fixture("asn-ipv6.csv")],
            false,
        )
        .unwrap();
        assert!(reports.iter().all(|r| r.counts.records > 0));
        import(
            dir.path(),
            SourceKind::Rir,
            &[fixture("delegated-ripencc-extended-sample")],
            false,
        )
        .unwrap();
        let (data, reports) = load(dir.path()).unwrap();
        assert_eq!(reports.len(), 3);
        assert!(!data.asn.is_empty());
        assert!(!data.country.is_empty());

        // A bad file names itself and its line, and nothing of it is copied.
        let bad = dir.path().join("bad-asn.csv");
        std::fs::write(&bad, "1.0.0.0,1.0.0.255,13335,x\n1.0.1.0,nope,1,y\n").unwrap();
        let err = import(dir.path(), SourceKind::Asn, &[bad], false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad-asn.csv") && err.contains("line 2"),
            "{err}"
        );
        assert!(!dir.path().join("prefixes/asn/bad-asn.csv").exists());

        // Replace drops the kind's earlier files.
        import(
            dir.path(),
            SourceKind::Asn,
            &[fixture("asn-ipv6.csv")],
            true,
        )
        .unwrap();
        let (_, reports) = load(dir.path()).unwrap();
        assert_eq!(reports.len(), 2);
    }
}
