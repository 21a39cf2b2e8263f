//! Operators' declared figures (CSV `asn,metric,value,as_of,source`), shown beside the
//! measured ones in reports.

use super::DeclaredFigure;
use sixmap_shared::prefixes::split_csv;

/// Parses declared figures; errors name the line.
pub fn parse_declared(csv: &str) -> Result<Vec<DeclaredFigure>, String> {
    let mut out = Vec::new();
    for (i, line) in csv.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |reason: String| format!("line {}: {reason}", i + 1);
        let f = split_csv(line).map_err(|problem| at(problem.to_string()))?;
        if i == 0
            && f.first()
                .is_some_and(|h| h.trim().eq_ignore_ascii_case("asn"))
        {
            continue;
        }
        if f.len() != 5 {
            return Err(at(format!(
                "{} fields, expected 5: asn,metric,value,as_of,source",
                f.len()
            )));
        }
        let asn = f[0]
            .trim()
            .trim_start_matches("AS")
            .parse::<u32>()
            .map_err(|_| at(format!("asn {:?} is not a number", f[0])))?;
        let value = f[2]
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| at(format!("value {:?} is not a number", f[2])))?;
        let metric = f[1].trim();
        if metric.is_empty() {
            return Err(at("metric is empty".into()));
        }
        out.push(DeclaredFigure {
            asn,
            metric: metric.to_owned(),
            value,
            as_of: f[3].trim().to_owned(),
            source: f[4].trim().to_owned(),
        });
        if out.len() > 10_000 {
            return Err(at("more than 10000 figures".into()));
        }
    }
    Ok(out)
}
