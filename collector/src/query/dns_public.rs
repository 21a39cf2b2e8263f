//! `GET /api/v1/maps/countries/{country}/dns`: the DNS scorecard of the country's probe
//! networks over the last [`WINDOW_DAYS`] days, public like the maps and behind their cache,
//! read from the daily tallies (`super::dns_scorecard::request`). The publication
//! minimum-sample rule applies per operator: an operator with fewer probes than
//! `[publication] min_probes` is not named, only counted in `few_probes`, so one volunteer's
//! probe in a small network does not point at that person (as `coverage` does).

use super::dns_scorecard::{OperatorRow, Request, Scorecard, request};
use crate::figures::Source;
use crate::rollup::MinSample;
use crate::store::{Store, StoreError};
use axum::extract::{Path, RawQuery, State};

use axum::Router;
use axum::response::Response;
use axum::routing::get;
use serde::Serialize;
use sixmap_shared::UnixMicros;
use sixmap_shared::prefixes::CountryCode;
use std::sync::Arc;

/// Days summed, today included.
pub const WINDOW_DAYS: i64 = 30;

/// Operators below the minimum sample, pooled and unnamed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FewProbes {
    pub operators: u64,
    pub probes: u64,
    /// Their `dns` results: 0, and not in the country's `results`, when together they have
    /// fewer probes than the minimum (as the national shares leave them out: else the
    /// country's count minus the named operators' would be one small operator's).
    pub results: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CountryDns {
    pub country: CountryCode,
    pub days: i64,
    pub source: Source,
    /// `dns` results of all the country's probes.
    pub results: u64,
    /// The minimum number of probes an operator's row needs to be shown.
    pub min_probes: usize,
    /// Operators with at least `min_probes` probes, most probes first.
    pub operators: Vec<OperatorRow>,
    pub few_probes: FewProbes,
}

/// Splits a scorecard's rows by the minimum-sample rule.
pub fn publish(country: CountryCode, card: Scorecard, rule: MinSample) -> CountryDns {
    let mut few = FewProbes::default();
    let mut operators = Vec::new();
    let mut results = 0;
    for row in card.rows {
        let probes = usize::try_from(row.probes).unwrap_or(usize::MAX);
        let row_results = row.results;
        results += row_results;
        if row.asn.is_some() && rule.allows(probes) {
            operators.push(row);
        } else {
            few.operators += 1;
            few.probes += row.probes;
            few.results += row_results;
        }
    }
    if !rule.allows(usize::try_from(few.probes).unwrap_or(usize::MAX)) {
        results -= few.results;
        few.results = 0;
    }
    operators.sort_by(|a, b| b.probes.cmp(&a.probes).then(a.asn.cmp(&b.asn)));
    CountryDns {
        country,
        days: WINDOW_DAYS,
        source: card.source,
        results,
        min_probes: rule.min_probes,
        operators,
        few_probes: few,
    }
}

pub fn router(store: Arc<dyn Store>, rule: MinSample) -> Router {
    Router::new()
        .route("/api/v1/maps/countries/{country}/dns", get(country_dns))
        .with_state((store, rule))
}

async fn country_dns(
    State((store, rule)): State<(Arc<dyn Store>, MinSample)>,
    Path(country): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let code = match crate::http::country_route::country_of(&country, query.as_deref()) {
        Ok(code) => code,
        Err(refused) => return refused,
    };
    let work = move || -> Result<CountryDns, StoreError> {
        let asked = Request {
            days: WINDOW_DAYS,
            probe_country: Some(code),
            probe_asn: None,
        };
        let card = request(
            store.as_ref(),
            &asked,
            UnixMicros::now(),
            super::dns_scorecard::budget(),
        )?;
        Ok(publish(code, card, rule))
    };
    crate::http::country_route::json_or_503("dns", code, work).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::dns_scorecard::from_tallies;

    #[test]
    fn operators_below_the_minimum_are_pooled_and_not_named() {
        use crate::figures::dns::DnsScore;
        let score = |probes: &[&str], asked: u64| {
            let mut s = DnsScore {
                results: asked,
                ..DnsScore::default()
            };
            s.probes = probes.iter().map(|p| (*p).to_owned()).collect();
            s.resolver_v6.add_many(asked, asked);
            s
        };
        let card = from_tallies([
            (0, Some(1), score(&["a", "b", "c"], 9)),
            (0, Some(2), score(&["d"], 4)),
            (0, None, score(&["e", "f", "g"], 2)),
        ]);
        let out = publish("NL".parse().unwrap(), card, MinSample { min_probes: 3 });
        assert_eq!(out.results, 15);
        let named: Vec<Option<u32>> = out.operators.iter().map(|r| r.asn).collect();
        assert_eq!(named, vec![Some(1)]);
        assert_eq!(
            out.few_probes,
            FewProbes {
                operators: 2,
                probes: 4,
                results: 6
            }
        );
        // AS 2 alone under the minimum: counted, its results left out of the country's.
        let card = from_tallies([
            (0, Some(1), score(&["a", "b", "c"], 9)),
            (0, Some(2), score(&["d"], 4)),
        ]);
        let out = publish("NL".parse().unwrap(), card, MinSample { min_probes: 3 });
        assert_eq!(out.results, 9);
        assert_eq!(
            out.few_probes,
            FewProbes {
                operators: 1,
                probes: 1,
                results: 0
            }
        );
        // A looser rule names AS 2 as well, never the unknown network.
        let card = from_tallies([(0, Some(2), score(&["d"], 4)), (0, None, score(&["e"], 1))]);
        let out = publish("NL".parse().unwrap(), card, MinSample { min_probes: 1 });
        assert_eq!(out.operators.len(), 1);
        assert_eq!(out.few_probes.operators, 1);
    }
}
