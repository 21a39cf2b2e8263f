//! Our figures side by side with another source's (issue #20): APNIC Labs' per-economy IPv6
//! capability, imported from the CSV its statistics pages publish (`sixmap-collector
//! import-apnic FILE --data-dir D`, kept as `<data_dir>/comparison/apnic.json` and loaded at
//! start), shown beside our share per country at `GET /api/v1/maps/comparison` (JSON or
//! `?format=csv`). docs/methodology.md explains why the two differ.
//!
//! The CSV is read by its header, not by column position: a column named like `CC` (or
//! `Country Code`) gives the economy, one containing `Capable` the share of users that can
//! fetch an IPv6-only object, one containing `Preferred` the share that used IPv6 on a
//! dual-stack object, one named `Samples` (or `Seen`) the sample count, and `Date`, when
//! present, the day of the figures. Percentages (`41.23%` or `41.23`) are stored as fractions.
//! Rows whose economy is not a country code (the world total) or is a private-use code
//! (APNIC maps its regions to `XA`–`XZ`, `QM`–`QZ`, `AA`, `ZZ`) are skipped; anything else
//! malformed is an error naming the line.

use crate::map_view::MapView;
use crate::store::Store;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sixmap_shared::UnixMicros;
use sixmap_shared::prefixes::{CountryCode, split_csv};
use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where an import is kept in the data dir.
pub const STORED: &str = "comparison/apnic.json";
/// What the figures are, for people reading the API.
pub const SOURCE: &str =
    "APNIC Labs, IPv6 capability per economy (stats.labs.apnic.net/ipv6), re-use with attribution";

pub const METHOD: &str = "Ours: the operator-balanced share of active probes where IPv6 works (maps method), null under \
the minimum sample. APNIC: the share of users, measured by an online advertisement and weighted by each economy's users, \
whose browser fetched an IPv6-only object (capable) or used IPv6 for a dual-stack one (preferred). Different populations \
and questions: see docs/methodology.md, \"Side by side with APNIC\". difference_pp = ours - APNIC capable, in percentage points.";

#[derive(Debug, thiserror::Error)]
pub enum ComparisonError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("line {line}: {reason}")]
    Line { line: u64, reason: String },
    #[error("the header names no {0} column")]
    Missing(&'static str),
    #[error("no economy in the file")]
    Empty,
    #[error(
        "every figure is between 0 and 1 and none has a % sign: these look like fractions, \
         while APNIC publishes percentages (multiply by 100, or check the file)"
    )]
    Fractions,
    #[error("{path}: {size} bytes, more than the {max} an economy table can need")]
    TooLarge { path: PathBuf, size: u64, max: u64 },
    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// One economy's figures from the other source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EconomyFigure {
    pub country: CountryCode,
    /// Fraction of users IPv6-capable.
    pub capable: f64,
    /// Fraction of users preferring IPv6, when the file gives it.
    pub preferred: Option<f64>,
    pub samples: Option<u64>,
}

/// An import as kept in the data dir.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Imported {
    pub source: String,
    /// The day of the figures: the file's `Date` column, else `--as-of`, else the import day.
    pub as_of: String,
    pub imported_at: UnixMicros,
    pub figures: Vec<EconomyFigure>,
}

fn percent(text: &str, line: u64, what: &str) -> Result<f64, ComparisonError> {
    let value: f64 = text
        .trim()
        .trim_end_matches('%')
        .trim()
        .parse()
        .map_err(|_| ComparisonError::Line {
            line,
            reason: format!("{what} {text:?} is not a percentage"),
        })?;
    if !(0.0..=100.0).contains(&value) {
        return Err(ComparisonError::Line {
            line,
            reason: format!("{what} {value} is not within 0-100 %"),
        });
    }
    Ok(value / 100.0)
}

/// Positions of the columns read: economy, capable, then preferred, samples and date if any.
type Columns = (usize, usize, Option<usize>, Option<usize>, Option<usize>);

/// ISO 3166 user-assigned codes, which APNIC gives its regions, and the reserved EU and AP
/// (the European Union, Asia-Pacific): not economies.
fn private_use(code: &CountryCode) -> bool {
    let text = code.to_string();
    let b = text.as_bytes();
    text == "AA"
        || text == "ZZ"
        || text == "EU"
        || text == "AP"
        || b[0] == b'X'
        || (b[0] == b'Q' && b[1] >= b'M')
}

/// Largest file `import` reads: APNIC's table is a few hundred kilobytes, its time series a
/// few megabytes.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// A `YYYY-MM-DD` day.
fn is_day(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// Parses APNIC's per-economy CSV; returns the figures and the file's date, if it has one.
pub fn parse_apnic(
    reader: impl BufRead,
) -> Result<(Vec<EconomyFigure>, Option<String>), ComparisonError> {
    let mut columns: Option<Columns> = None;
    // Per economy its newest row (a time series has one per day), with that row's day.
    let mut figures: BTreeMap<CountryCode, (Option<String>, EconomyFigure)> = BTreeMap::new();
    let mut percent_signs = false;
    for (n, line) in reader.lines().enumerate() {
        let line_no = n as u64 + 1;
        let line = line.map_err(|source| ComparisonError::Io {
            path: PathBuf::from("-"),
            source,
        })?;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields = split_csv(&line).map_err(|e| ComparisonError::Line {
            line: line_no,
            reason: e.to_string(),
        })?;
        let Some((cc, capable, preferred, samples, day)) = columns else {
            let find = |test: &dyn Fn(&str) -> bool| {
                fields
                    .iter()
                    .position(|f| test(&f.trim().to_ascii_lowercase()))
            };
            let cc = find(&|h| h == "cc" || h == "country code" || h == "economy code")
                .ok_or(ComparisonError::Missing("CC"))?;
            let capable =
                find(&|h| h.contains("capable")).ok_or(ComparisonError::Missing("Capable"))?;
            columns = Some((
                cc,
                capable,
                find(&|h| h.contains("preferred")),
                find(&|h| h == "samples" || h == "seen"),
                find(&|h| h == "date"),
            ));
            continue;
        };
        let field = |i: usize| fields.get(i).map(|f| f.trim()).unwrap_or_default();
        // Regions, totals and unknown economies are not countries: not ours to compare.
        let Ok(country) = field(cc).to_ascii_uppercase().parse::<CountryCode>() else {
            continue;
        };
        if private_use(&country) {
            continue;
        }
        let samples = match samples.map(field).filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => {
                Some(
                    s.replace(',', "")
                        .parse::<u64>()
                        .map_err(|_| ComparisonError::Line {
                            line: line_no,
                            reason: format!("samples {s:?} is not a count"),
                        })?,
                )
            }
        };
        let row_day = match day.map(field).filter(|d| !d.is_empty()) {
            None => None,
            Some(d) if is_day(d) => Some(d.to_owned()),
            Some(d) => {
                return Err(ComparisonError::Line {
                    line: line_no,
                    reason: format!("date {d:?} is not a day (YYYY-MM-DD)"),
                });
            }
        };
        if figures
            .get(&country)
            .is_some_and(|(kept, _)| kept.as_deref() > row_day.as_deref())
        {
            continue;
        }
        percent_signs |= field(capable).contains('%');
        let figure = EconomyFigure {
            country,
            capable: percent(field(capable), line_no, "capable")?,
            preferred: preferred
                .map(field)
                .filter(|p| !p.is_empty())
                .map(|p| percent(p, line_no, "preferred"))
                .transpose()?,
            samples,
        };
        figures.insert(country, (row_day, figure));
    }
    if figures.is_empty() {
        return Err(ComparisonError::Empty);
    }
    if !percent_signs && figures.values().all(|(_, f)| f.capable <= 0.01) {
        return Err(ComparisonError::Fractions);
    }
    // The figures' day: the newest row kept (every economy's, in a one-day table).
    let date = figures.values().filter_map(|(d, _)| d.clone()).max();
    Ok((figures.into_values().map(|(_, f)| f).collect(), date))
}

/// Checks `file` and keeps it in `data_dir` (replacing an earlier import), atomically.
pub fn import(
    data_dir: &Path,
    file: &Path,
    as_of: Option<String>,
    now: UnixMicros,
) -> Result<Imported, ComparisonError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ComparisonError::Io { path, source }
    };
    let opened = std::fs::File::open(file).map_err(io(file))?;
    let size = opened.metadata().map_err(io(file))?.len();
    if size > MAX_FILE_BYTES {
        return Err(ComparisonError::TooLarge {
            path: file.to_owned(),
            size,
            max: MAX_FILE_BYTES,
        });
    }
    let reader = std::io::BufReader::new(opened.take(MAX_FILE_BYTES));
    let (figures, date) = parse_apnic(reader)?;
    let imported = Imported {
        source: SOURCE.into(),
        as_of: date
            .or(as_of)
            .unwrap_or_else(|| crate::daily::day_label(now)),
        imported_at: now,
        figures,
    };
    let path = data_dir.join(STORED);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let temp = path.with_extension("json.tmp");
    let json = serde_json::to_vec_pretty(&imported).map_err(|e| ComparisonError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    std::fs::File::create(&temp)
        .and_then(|mut f| {
            f.write_all(&json)?;
            f.sync_all()
        })
        .map_err(io(&temp))?;
    std::fs::rename(&temp, &path).map_err(io(&path))?;
    Ok(imported)
}

/// The import kept in `data_dir`, if any.
pub fn load(data_dir: &Path) -> Result<Option<Imported>, ComparisonError> {
    let path = data_dir.join(STORED);
    match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| ComparisonError::Corrupt {
                    path,
                    reason: e.to_string(),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ComparisonError::Io { path, source }),
    }
}

/// One country, ours beside theirs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    pub country: CountryCode,
    pub probes: usize,
    pub insufficient_data: bool,
    /// Our operator-balanced share with its 95 % interval; null under the minimum sample.
    pub ours: Option<crate::rollup::Proportion>,
    pub apnic_capable: Option<f64>,
    pub apnic_preferred: Option<f64>,
    pub apnic_samples: Option<u64>,
    /// Ours minus APNIC capable, in percentage points, when both exist.
    pub difference_pp: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub generated_at: UnixMicros,
    pub method: &'static str,
    /// The method of our figures (`maps::METHOD_ID`).
    pub ours_method_id: &'static str,
    pub min_probes: usize,
    /// The other source, its day and when it was imported; null without an import.
    pub other_source: Option<OtherSource>,
    pub countries: Vec<Row>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OtherSource {
    pub name: String,
    pub as_of: String,
    pub imported_at: UnixMicros,
}

/// Every country either side has, ours beside APNIC's.
pub fn compare(
    ours: &crate::maps::Countries,
    theirs: Option<&Imported>,
    now: UnixMicros,
) -> Comparison {
    let mut rows: BTreeMap<CountryCode, Row> = BTreeMap::new();
    for c in &ours.countries {
        rows.insert(
            c.country,
            Row {
                country: c.country,
                probes: c.probes,
                insufficient_data: c.insufficient_data,
                ours: c.v6_works.as_ref().map(|s| s.balanced.clone()),
                apnic_capable: None,
                apnic_preferred: None,
                apnic_samples: None,
                difference_pp: None,
            },
        );
    }
    for f in theirs.map(|t| t.figures.as_slice()).unwrap_or_default() {
        let row = rows.entry(f.country).or_insert(Row {
            country: f.country,
            probes: 0,
            insufficient_data: true,
            ours: None,
            apnic_capable: None,
            apnic_preferred: None,
            apnic_samples: None,
            difference_pp: None,
        });
        row.apnic_capable = Some(f.capable);
        row.apnic_preferred = f.preferred;
        row.apnic_samples = f.samples;
        row.difference_pp = row
            .ours
            .as_ref()
            .map(|o| ((o.share - f.capable) * 1000.0).round() / 10.0);
    }
    Comparison {
        generated_at: now,
        method: METHOD,
        ours_method_id: ours.method_id,
        min_probes: ours.min_probes,
        other_source: theirs.map(|t| OtherSource {
            name: t.source.clone(),
            as_of: t.as_of.clone(),
            imported_at: t.imported_at,
        }),
        countries: rows.into_values().collect(),
    }
}

pub const CSV_HEADER: &str = "country,probes,insufficient_data,ours,ours_ci_low,ours_ci_high,apnic_capable,apnic_preferred,apnic_samples,difference_pp,apnic_as_of,min_probes\n";

/// The comparison as CSV: shares as fractions, empty where a side has no figure.
pub fn to_csv(c: &Comparison) -> String {
    let opt = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_default();
    let as_of = c
        .other_source
        .as_ref()
        .map(|s| s.as_of.clone())
        .unwrap_or_default();
    let mut out = String::from(CSV_HEADER);
    for r in &c.countries {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{}\n",
            r.country,
            r.probes,
            r.insufficient_data,
            opt(r.ours.as_ref().map(|o| o.share)),
            opt(r.ours.as_ref().map(|o| o.low)),
            opt(r.ours.as_ref().map(|o| o.high)),
            opt(r.apnic_capable),
            opt(r.apnic_preferred),
            r.apnic_samples.map(|s| s.to_string()).unwrap_or_default(),
            r.difference_pp
                .map(|d| format!("{d:.1}"))
                .unwrap_or_default(),
            crate::campaign::report::csv_field(&as_of),
            c.min_probes,
        ));
    }
    out
}

#[derive(Clone)]
struct ComparisonState {
    store: Arc<dyn Store>,
    maps: MapView,
    imported: Arc<Option<Imported>>,
}

/// `GET /api/v1/maps/comparison[?format=csv]`: public like the maps.
pub fn router(store: Arc<dyn Store>, maps: MapView, imported: Option<Imported>) -> Router {
    Router::new()
        .route("/api/v1/maps/comparison", get(comparison))
        .with_state(ComparisonState {
            store,
            maps,
            imported: Arc::new(imported),
        })
}

async fn comparison(State(state): State<ComparisonState>, RawQuery(query): RawQuery) -> Response {
    let as_csv = match query.as_deref().unwrap_or_default() {
        "" | "format=json" => false,
        "format=csv" => true,
        other => {
            let shown: String = other.chars().take(40).collect();
            return (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({
                    "error": format!("unknown query {shown:?}: this route takes only format=json or format=csv"),
                    "status": 400
                })),
            )
                .into_response();
        }
    };
    let rule = state.maps.rule();
    let (store, maps) = (state.store.clone(), state.maps.clone());
    let snapshot = match crate::store::run_blocking(move || maps.snapshot(&*store)).await {
        Ok(snapshot) => snapshot,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "error": e.to_string(), "status": 503 })),
            )
                .into_response();
        }
    };
    let c = compare(
        &snapshot.countries_with(rule),
        state.imported.as_ref().as_ref(),
        UnixMicros::now(),
    );
    if as_csv {
        return (
            [
                (
                    header::CONTENT_TYPE,
                    "text/csv; charset=utf-8; header=present",
                ),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"ipv6-sixmap-vs-apnic.csv\"",
                ),
            ],
            to_csv(&c),
        )
            .into_response();
    }
    Json(c).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// APNIC's per-economy table as its statistics page exports it (fixture in
    /// `collector/tests/data/apnic-v6-per-economy.csv`).
    const FIXTURE: &str = include_str!("../tests/data/apnic-v6-per-economy.csv");

    #[test]
    fn the_published_layout_parses_by_header() {
        let (figures, date) = parse_apnic(FIXTURE.as_bytes()).unwrap();
        assert_eq!(date.as_deref(), Some("2026-12-01"));
        let de = figures
            .iter()
            .find(|f| f.country.to_string() == "DE")
            .unwrap();
        assert!((de.capable - 0.7214).abs() < 1e-9, "{de:?}");
        assert!((de.preferred.unwrap() - 0.7031).abs() < 1e-9);
        assert_eq!(de.samples, Some(4_103_227));
        // Regions and the world total are not countries.
        assert!(figures.iter().all(|f| f.country.to_string() != "XA"));
        assert_eq!(figures.len(), 6);
    }

    #[test]
    fn errors_name_the_line_or_the_column() {
        let err = parse_apnic("CC,Economy,IPv6 Capable\nDE,Germany,120%\n".as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("0-100"), "{err}");
        let err = parse_apnic("CC,Economy,Users\nDE,Germany,1\n".as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("Capable"), "{err}");
    }

    /// A time series keeps each economy's newest row and is dated by it; fractions, bad dates
    /// and regions are refused or skipped with a word; lowercase codes are read.
    #[test]
    fn series_fractions_dates_and_codes() {
        let series = "Date,CC,IPv6 Capable\n2026-12-02,de,70%\n2026-11-30,DE,60%\n\
                      2026-11-30,FR,50%\n2026-12-01,EU,40%\n";
        let (figures, date) = parse_apnic(series.as_bytes()).unwrap();
        assert_eq!(date.as_deref(), Some("2026-12-02"));
        let share = |cc: &str| {
            figures
                .iter()
                .find(|f| f.country.to_string() == cc)
                .map(|f| f.capable)
        };
        assert_eq!(
            share("DE"),
            Some(0.7),
            "the newest row, lowercase code read"
        );
        assert_eq!(share("FR"), Some(0.5));
        assert_eq!(share("EU"), None, "EU is no economy");
        let err = parse_apnic("CC,IPv6 Capable\nDE,0.72\nFR,0.5\n".as_bytes()).unwrap_err();
        assert!(matches!(err, ComparisonError::Fractions), "{err}");
        let err = parse_apnic("Date,CC,IPv6 Capable\n12/01/2026,DE,70\n".as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2") && err.contains("YYYY-MM-DD"),
            "{err}"
        );
    }

    #[test]
    fn ours_beside_theirs_with_the_difference() {
        let (figures, _) = parse_apnic(FIXTURE.as_bytes()).unwrap();
        let imported = Imported {
            source: SOURCE.into(),
            as_of: "2026-12-01".into(),
            imported_at: UnixMicros(0),
            figures,
        };
        let share = |share: f64| crate::maps::Shares {
            balanced: crate::rollup::Proportion {
                share,
                low: share - 0.1,
                high: share + 0.1,
                n: 9.0,
                successes: share * 9.0,
            },
            pooled: crate::rollup::Proportion {
                share,
                low: share - 0.1,
                high: share + 0.1,
                n: 9.0,
                successes: share * 9.0,
            },
        };
        let ours = crate::maps::Countries {
            generated_at: UnixMicros(0),
            window_hours: 24,
            method: "",
            method_id: crate::maps::METHOD_ID,
            source: crate::figures::Source::Scan,
            min_probes: 3,
            countries: vec![
                summary("DE", 9, Some(share(0.6))),
                summary("BR", 1, None),
                summary("XB", 5, Some(share(0.5))),
            ],
        };
        let c = compare(&ours, Some(&imported), UnixMicros(0));
        let row = |cc: &str| {
            c.countries
                .iter()
                .find(|r| r.country.to_string() == cc)
                .unwrap()
        };
        assert_eq!(row("DE").difference_pp, Some(-12.1));
        // Under the minimum sample: APNIC's figure shown, ours and the difference not.
        assert!(row("BR").ours.is_none() && row("BR").difference_pp.is_none());
        assert!(row("BR").apnic_capable.is_some());
        // Only ours, only theirs.
        assert!(row("XB").apnic_capable.is_none());
        assert_eq!(row("IN").probes, 0);
        let csv = to_csv(&c);
        assert!(csv.starts_with(CSV_HEADER));
        assert!(csv.contains("\nBR,1,true,,,,0.4876,"), "{csv}");
        assert!(csv.contains(",-12.1,2026-12-01,3\n"), "{csv}");
    }

    fn summary(
        cc: &str,
        probes: usize,
        v6_works: Option<crate::maps::Shares>,
    ) -> crate::maps::CountrySummary {
        crate::maps::CountrySummary {
            country: cc.parse().unwrap(),
            probes,
            operators: 1,
            insufficient_data: v6_works.is_none(),
            v6_works,
            median_rtt_v6_ms: None,
            median_rtt_v4_ms: None,
            v6_penalty_ms: None,
        }
    }
}
