//! The map routes' figures as CSV (`?format=csv`), for spreadsheets: the same figures as the
//! JSON, under the same minimum sample (a row with insufficient data has its probes and no
//! share), one header line, shares as fractions with their 95 % interval, RTTs in ms. Each
//! row says what it is as of (`as_of`: the snapshot's time or the stored day) and the
//! minimum sample applied, so a row copied alone still says how to read it.

use crate::campaign::report::csv_field;
use crate::daily::{DayCountries, DayCountry};
use crate::maps::{Countries, CountryDetail, Shares};
use std::fmt::Write;

pub const COUNTRIES_HEADER: &str = "country,probes,operators,insufficient_data,v6_works,ci_low,ci_high,n_effective,pooled,median_rtt_v6_ms,median_rtt_v4_ms,v6_penalty_ms,as_of,min_probes\n";

pub const OPERATORS_HEADER: &str = "country,rank,asn,as_name,probes,insufficient_data,v6_works,ci_low,ci_high,n,median_rtt_v6_ms,as_of,min_probes\n";

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}")).unwrap_or_default()
}

/// `share,low,high,n,pooled` of the balanced figure, or empty cells.
fn shares(s: Option<&Shares>) -> String {
    match s {
        Some(s) => format!(
            "{:.4},{:.4},{:.4},{:.1},{:.4}",
            s.balanced.share, s.balanced.low, s.balanced.high, s.balanced.n, s.pooled.share
        ),
        None => ",,,,".into(),
    }
}

/// The world map's table (the live snapshot).
pub fn countries(c: &Countries) -> String {
    let as_of = crate::export::row::rfc3339(c.generated_at.0);
    let mut out = String::from(COUNTRIES_HEADER);
    for s in &c.countries {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{as_of},{}",
            s.country,
            s.probes,
            s.operators,
            s.insufficient_data,
            shares(s.v6_works.as_ref()),
            opt(s.median_rtt_v6_ms, 1),
            opt(s.median_rtt_v4_ms, 1),
            opt(s.v6_penalty_ms, 1),
            c.min_probes,
        );
    }
    out
}

fn day_row(out: &mut String, d: &DayCountry, min_probes: usize) {
    let f = &d.figures;
    let _ = writeln!(
        out,
        "{},{},{},{},{},{},{},{},{},{min_probes}",
        d.country,
        f.probes,
        f.operators,
        f.insufficient_data,
        shares(f.v6_works.as_ref()),
        opt(f.median_rtt_v6_ms, 1),
        opt(f.median_rtt_v4_ms, 1),
        opt(d.v6_penalty_ms, 1),
        f.day,
    );
}

/// A past day's map table (`?date=`).
pub fn countries_on(c: &DayCountries) -> String {
    let mut out = String::from(COUNTRIES_HEADER);
    for d in &c.countries {
        day_row(&mut out, d, c.min_probes);
    }
    out
}

/// One country's past day (`?date=`): its row of the day's map table.
pub fn country_on(d: &DayCountry, min_probes: usize) -> String {
    let mut out = String::from(COUNTRIES_HEADER);
    day_row(&mut out, d, min_probes);
    out
}

/// A country page's operator ranking.
pub fn operators(d: &CountryDetail) -> String {
    let as_of = crate::export::row::rfc3339(d.generated_at.0);
    let mut out = String::from(OPERATORS_HEADER);
    for o in &d.operators {
        let share = match &o.v6_works {
            Some(p) => format!("{:.4},{:.4},{:.4},{}", p.share, p.low, p.high, p.n),
            None => ",,,".into(),
        };
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{share},{},{as_of},{}",
            d.country,
            o.rank.map(|r| r.to_string()).unwrap_or_default(),
            o.asn,
            csv_field(o.as_name.as_deref().unwrap_or("")),
            o.probes,
            o.insufficient_data,
            opt(o.median_rtt_v6_ms, 1),
            d.min_probes,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::Operator;
    use crate::rollup::{RankRange, wilson};
    use sixmap_shared::UnixMicros;

    #[test]
    fn operator_rows_keep_insufficient_data_without_share_and_quote_names() {
        let operator = |asn, name: &str, probes, share: Option<(f64, f64)>, rank| Operator {
            asn,
            as_name: Some(name.into()),
            probes,
            insufficient_data: share.is_none(),
            rank,
            v6_works: share.and_then(|(hits, n)| wilson(hits, n)),
            median_rtt_v6_ms: share.map(|_| 12.34),
        };
        let detail = CountryDetail {
            country: "FR".parse().unwrap(),
            generated_at: UnixMicros(1_796_400_359_000_000),
            window_hours: 24,
            method: "",
            method_id: crate::maps::METHOD_ID,
            source: crate::figures::Source::Figures,
            probe_count: 6,
            operator_count: 2,
            min_probes: 3,
            insufficient_data: false,
            v6_works: None,
            median_rtt_v6_ms: None,
            median_rtt_v4_ms: None,
            v6_penalty_ms: None,
            operators: vec![
                operator(
                    64500,
                    "Example, \"the\" net",
                    4,
                    Some((3.0, 4.0)),
                    Some(RankRange { best: 1, worst: 1 }),
                ),
                operator(64501, "Small", 2, None, None),
            ],
            probes: Vec::new(),
        };
        let csv = operators(&detail);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], OPERATORS_HEADER.trim_end());
        assert!(
            lines[1].starts_with("FR,1,64500,\"Example, \"\"the\"\" net\",4,false,0.7500,"),
            "{csv}"
        );
        assert!(
            lines[1].ends_with(",12.3,2026-12-04T16:05:59.000000Z,3"),
            "{csv}"
        );
        assert_eq!(
            lines[2],
            "FR,,64501,Small,2,true,,,,,,2026-12-04T16:05:59.000000Z,3"
        );
        assert_eq!(lines.len(), 3);
    }
}
