//! Roll-ups published on the national and per-network maps: shares with their confidence
//! intervals, medians, the IPv6 latency penalty and the trend projection.
//!
//! Pure arithmetic: no I/O and no clock, so every published figure can be recomputed by hand
//! from the inputs. Regulators quote these numbers, so the method is stated here in full.
//!
//! # Method
//!
//! ## Shares and their 95 % interval (`wilson`)
//!
//! A share is `successes / n`. Its uncertainty is the 95 % Wilson score interval, with
//! z = 1.959964 (the two-sided 97.5th percentile of the standard normal):
//!
//! ```text
//! p      = successes / n
//! centre = (p + z²/(2n)) / (1 + z²/n)
//! half   = z / (1 + z²/n) · √( p(1 − p)/n + z²/(4n²) )
//! [low, high] = [centre − half, centre + half], clamped to [0, 1]
//! ```
//!
//! Wilson rather than the textbook normal ("Wald") interval because many networks have only a
//! handful of probes and shares near 0 % or 100 %: there the Wald interval collapses to a single
//! point (0/5 would read "0 % ± 0") or leaves [0, 1], while Wilson keeps a sensible width and
//! near-nominal coverage at small n. At p = 0 the lower bound is exactly 0 and the upper bound
//! is z²/(n + z²); at p = 1 the lower bound is n/(n + z²) and the upper bound exactly 1.
//! `n` may be fractional (an effective sample size, below). There is no interval for n = 0.
//!
//! ## Operator-balanced national share (`balanced_share`)
//!
//! Volunteer probes are not spread like subscribers: one operator may host dozens of probes and
//! another one. Pooling all probes would let the first decide the national figure. The national
//! estimate therefore gives each probe the weight w = 1 / (number of probes in its ASN), so that
//! every operator (ASN) with at least one probe counts equally; the estimate is the unweighted
//! mean of the per-operator shares:
//!
//! ```text
//! share = Σ w·x / Σ w = (1/K) · Σ_ASN share_ASN        (K = number of ASNs, x = 1 if it works)
//! ```
//!
//! Its 95 % interval is the Wilson interval above at an effective sample size `n` that
//! accounts for two things. Unequal weights make the estimate noisier than a plain mean over
//! the same probes (Kish's effective sample size):
//!
//! ```text
//! n_kish = (Σ w)² / Σ w² = K² / Σ_ASN (1 / n_ASN)
//! ```
//!
//! and probes of one operator behave alike (same network, same configuration), so the
//! operators, not the probes, are the independent units: with two operators of 50 probes, one
//! at 0 % and one at 100 %, n_kish is 100 but the data say almost nothing about a third
//! operator. The second part is the between-operator ("ultimate cluster") variance of a mean
//! of K cluster shares, which includes the sampling noise within each operator:
//!
//! ```text
//! v         = Σ_ASN (share_ASN − share)² / (K (K − 1))        (K ≥ 2)
//! n_cluster = share (1 − share) / v                            (the n a binomial share would
//!                                                               need for that variance)
//! n         = min(n_kish, n_cluster)      when K ≥ 2 and v > 0, else n_kish
//! ```
//!
//! successes = share · n. Deterministic, O(K), no resampling: the same data give the same
//! interval (this is the closed form of the variance a cluster bootstrap over operators
//! estimates, with the K − 1 small-sample correction). Taking the minimum keeps the interval at
//! least as wide as the probe-level one: operators that agree give n_kish (many similar
//! operators: a narrow interval), operators that disagree widen it (two operators at 0 % and
//! 100 % give n = 1: [0.05, 0.95]). K ≤ n_kish ≤ number of probes; with a single operator the
//! balanced figure equals the pooled one (within-operator correlation cannot be estimated from
//! one operator; the minimum-sample rule of the publications keeps such figures out).
//!
//! What this figure is, and is not: it answers "for a typical operator among those where we
//! have probes, what share of its probes have working IPv6", not "what share of the country's
//! subscribers have it" (operators are not weighted by size, and operators without probes are
//! absent). The plain pooled share (every probe weight 1, Wilson on all probes) is published
//! beside it for comparison, with the per-operator shares ranked by share, then by number of
//! probes, then by ASN.
//!
//! ## Ranking by interval (`rank_ranges`)
//!
//! A point estimate ranks operators that the data cannot tell apart. Each operator gets a rank
//! range instead: best = 1 + the number of operators whose interval lies entirely above its
//! own (their low bound above its high bound), worst = K − the number whose interval lies
//! entirely below. Operators whose intervals overlap share ranks ("1–3"); a chain a ~ b ~ c
//! where a and c are disjoint gives a "1–2", b "1–3", c "2–3": the rule compares each pair on
//! its own and never merges groups transitively. Touching intervals (equal bounds) overlap.
//!
//! ## Minimum sample (`MinSample`)
//!
//! Below a published minimum number of probes (collector config `[publication] min_probes`,
//! default [`DEFAULT_MIN_PROBES`]) a figure is "insufficient data": its n is shown, but no
//! share, colour or rank. One probe at 0 % has the interval 0–79 %: a colour would state a
//! fact the data do not hold.
//!
//! ## Operators under the minimum in a national figure (`national_share`)
//!
//! A national figure that counted an operator under the minimum on its own would publish that
//! operator's share by subtraction: the balanced share is the mean of the operators' shares,
//! so with K, the named operators' shares and one unnamed operator, anyone computes
//! `K · share − Σ named` (the pooled share and its counts give the same by probes). So a
//! national figure counts
//!
//! - each operator with at least the minimum, as one unit (weight 1 / units);
//! - the operators under the minimum together as **one** unit, their probes pooled, when
//!   together they reach the minimum (the most subtraction yields is that group's share, a
//!   figure over at least the minimum);
//! - otherwise none of them: they are left out of every national figure (shares, medians,
//!   path quality), and only counted.
//!
//! With `min_probes = 1` every operator is named and the figure is the plain balanced share.

//! ## Medians (`median`, `median_of_medians`)
//!
//! The median of an odd count is the middle value, of an even count the mean of the two middle
//! values. Latency figures are a median of medians: first each probe's median over its own
//! samples, then the median of those per-probe medians, so that each probe counts once however
//! many samples it sent (a probe measuring every minute does not outweigh one measuring hourly).
//! Probes without samples are left out.
//!
//! ## IPv6 penalty (`v6_penalty_ms`)
//!
//! median(IPv6) − median(IPv4), in milliseconds, over the same population: positive means IPv6
//! is slower. It is only given when both medians exist.
//!
//! ## Trend projection (`project_share`) — a projection, not a measurement
//!
//! The share's time series is extended by fitting an ordinary least-squares straight line to
//! the logit of the share, logit(p) = ln(p / (1 − p)), against time in days, then
//! transforming the line back with p = 1 / (1 + e^(−logit)). Shares are clamped to
//! [0.001, 0.999] before the logit, which is infinite at 0 and 1; a series stuck at 0 % or 100 %
//! therefore projects 0.1 % or 99.9 %.
//!
//! Why the logit scale: a straight line on the share itself leaves [0, 1] as soon as it is
//! extended far enough (a rising share "reaches" 120 %), whereas any value on the logit scale
//! maps back into (0, 1). A straight line in logit is the logistic S-curve commonly used to
//! describe technology adoption, fitted here with two parameters and no assumed ceiling:
//! simple, reproducible and bounded. It assumes the past trend continues; it knows nothing about
//! operator roll-out plans, and it carries no uncertainty band, so it must be shown as a
//! projection, visually distinct from measured points.
//!
//! A projection needs at least 3 points spanning at least 7 days; all inputs must be finite.
//! Horizons are counted in days after the latest observed point. The slope is reported in logit
//! units per year of 365.25 days (a slope of 1 per year multiplies the odds p/(1 − p) by
//! e ≈ 2.72 each year).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Two-sided 95 % quantile of the standard normal distribution.
pub const Z_95: f64 = 1.959964;

/// Shares are kept this far from 0 and 1 before the logit, which is infinite at both ends.
const LOGIT_CLAMP: f64 = 0.001;

const MIN_PROJECTION_POINTS: usize = 3;
const MIN_PROJECTION_SPAN_DAYS: f64 = 7.0;
const DAYS_PER_YEAR: f64 = 365.25;

/// Default of the minimum-sample rule: figures over fewer probes are "insufficient data".
pub const DEFAULT_MIN_PROBES: usize = 3;

/// The minimum-sample rule of published figures (module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MinSample {
    pub min_probes: usize,
}

impl Default for MinSample {
    fn default() -> Self {
        Self {
            min_probes: DEFAULT_MIN_PROBES,
        }
    }
}

impl MinSample {
    /// Whether a figure over `probes` probes may be published.
    pub fn allows(&self, probes: usize) -> bool {
        probes >= self.min_probes
    }
}

/// A rank range, 1-based: the best and worst rank the intervals allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankRange {
    pub best: usize,
    pub worst: usize,
}

impl std::fmt::Display for RankRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.best == self.worst {
            write!(f, "{}", self.best)
        } else {
            write!(f, "{}–{}", self.best, self.worst)
        }
    }
}

/// Each interval's `(low, high)` rank range among all of them (module documentation):
/// best = 1 + how many lie entirely above, worst = count − how many lie entirely below.
pub fn rank_ranges(intervals: &[(f64, f64)]) -> Vec<RankRange> {
    intervals
        .iter()
        .map(|&(low, high)| {
            let above = intervals.iter().filter(|&&(l, _)| l > high).count();
            let below = intervals.iter().filter(|&&(_, h)| h < low).count();
            RankRange {
                best: 1 + above,
                worst: intervals.len() - below,
            }
        })
        .collect()
}

/// A share with its 95 % Wilson score interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proportion {
    pub share: f64,
    pub low: f64,
    pub high: f64,
    /// Sample size; fractional when it is an effective sample size.
    pub n: f64,
    pub successes: f64,
}

/// The 95 % Wilson score interval of `successes` out of `n`.
///
/// `None` when `n` is not a positive finite number or `successes` is not within `0..=n`: such
/// input is a caller's bug, and publishing an interval for it would hide that.
pub fn wilson(successes: f64, n: f64) -> Option<Proportion> {
    if !(n.is_finite() && n > 0.0 && successes.is_finite() && (0.0..=n).contains(&successes)) {
        return None;
    }
    Some(interval(successes / n, successes, n))
}

/// Wilson interval for share `p` at sample size `n` (validated by the caller). Taking `p` apart
/// from `successes` lets the balanced estimate keep its share exactly as the mean of operator
/// shares instead of `share · n_eff / n_eff`.
fn interval(p: f64, successes: f64, n: f64) -> Proportion {
    let z2 = Z_95 * Z_95;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = Z_95 / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // At p = 0 (p = 1) the bound is exactly 0 (1) algebraically; computing it leaves rounding
    // residue such as 2.8e-17 that would otherwise reach published tables.
    let low = if p <= 0.0 { 0.0 } else { centre - half };
    let high = if p >= 1.0 { 1.0 } else { centre + half };
    Proportion {
        share: p,
        low: low.clamp(0.0, 1.0),
        high: high.clamp(0.0, 1.0),
        n,
        successes,
    }
}

/// One operator's own share, as ranked on the national page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorShare {
    pub asn: u32,
    pub probes: usize,
    pub share: Proportion,
}

/// A country's share, balanced across operators, with the pooled figure beside it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Balanced {
    /// Mean of the operators' shares; `n` is the effective sample size of the module
    /// documentation (Kish's, lowered by the between-operator variance).
    pub overall: Proportion,
    /// Kish's effective sample size alone (weights only).
    pub n_kish: f64,
    /// Every probe weighted 1.
    pub raw: Proportion,
    pub operators: usize,
    pub probes: usize,
    /// By share descending, then probes descending, then ASN ascending.
    pub per_operator: Vec<OperatorShare>,
}

/// Operator-balanced share of per-probe observations `(asn, works)` of one country; `None`
/// without observations. See the module documentation for the method.
pub fn balanced_share(observations: &[(u32, bool)]) -> Option<Balanced> {
    let mut by_asn: BTreeMap<u32, (usize, usize)> = BTreeMap::new();
    for &(asn, works) in observations {
        let (probes, working) = by_asn.entry(asn).or_default();
        *probes += 1;
        *working += usize::from(works);
    }

    let mut per_operator = Vec::with_capacity(by_asn.len());
    let mut share_sum = 0.0;
    let mut inverse_sizes = 0.0;
    for (&asn, &(probes, working)) in &by_asn {
        let share = wilson(working as f64, probes as f64)?;
        share_sum += share.share;
        inverse_sizes += 1.0 / probes as f64;
        per_operator.push(OperatorShare { asn, probes, share });
    }
    per_operator.sort_by(|a, b| {
        b.share
            .share
            .total_cmp(&a.share.share)
            .then(b.probes.cmp(&a.probes))
            .then(a.asn.cmp(&b.asn))
    });

    let operators = per_operator.len();
    let k = operators as f64;
    let share = (share_sum / k).clamp(0.0, 1.0);
    let n_kish = k * k / inverse_sizes;
    if !(n_kish.is_finite() && n_kish > 0.0) {
        return None;
    }
    let n_eff = if operators >= 2 {
        let mean = share_sum / k;
        let spread: f64 = per_operator
            .iter()
            .map(|o| (o.share.share - mean).powi(2))
            .sum();
        let v = spread / (k * (k - 1.0));
        let n_cluster = share * (1.0 - share) / v;
        if v > 0.0 && n_cluster.is_finite() && n_cluster > 0.0 {
            n_kish.min(n_cluster)
        } else {
            n_kish
        }
    } else {
        n_kish
    };
    let overall = interval(share, share * n_eff, n_eff);

    let working = observations.iter().filter(|(_, works)| *works).count();
    let raw = wilson(working as f64, observations.len() as f64)?;
    Some(Balanced {
        overall,
        n_kish,
        raw,
        operators,
        probes: observations.len(),
        per_operator,
    })
}

/// The key the operators under the minimum pool their probes under in a national figure's
/// [`Balanced`]: 4294967295, the last AS number, reserved (RFC 7300), so never an origin.
pub const UNDER_MINIMUM_GROUP: u32 = u32::MAX;

/// Which operators a national figure counts under a minimum sample, and how (module
/// documentation: operators under the minimum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Population {
    /// Operators with at least the minimum: each one unit.
    pub named: BTreeSet<u32>,
    /// Operators under the minimum, and their probes together.
    pub under_minimum: BTreeSet<u32>,
    pub under_minimum_probes: usize,
    /// They count as one unit (together they reach the minimum); else they are left out.
    pub grouped: bool,
}

impl Population {
    /// Sorts operators `(asn, probes)` (each once) by `rule`.
    pub fn of(operators: impl IntoIterator<Item = (u32, usize)>, rule: MinSample) -> Self {
        let mut named = BTreeSet::new();
        let mut under_minimum = BTreeSet::new();
        let mut under_minimum_probes = 0;
        for (asn, probes) in operators {
            if rule.allows(probes) {
                named.insert(asn);
            } else {
                under_minimum.insert(asn);
                under_minimum_probes += probes;
            }
        }
        Self {
            grouped: !under_minimum.is_empty() && rule.allows(under_minimum_probes),
            named,
            under_minimum,
            under_minimum_probes,
        }
    }

    /// The unit an operator's probes count under: its own ASN, [`UNDER_MINIMUM_GROUP`], or
    /// none (left out).
    pub fn unit(&self, asn: u32) -> Option<u32> {
        if self.named.contains(&asn) {
            Some(asn)
        } else if self.grouped && self.under_minimum.contains(&asn) {
            Some(UNDER_MINIMUM_GROUP)
        } else {
            None
        }
    }

    pub fn counts(&self, asn: u32) -> bool {
        self.unit(asn).is_some()
    }

    /// Units the national share averages: K of the weights 1 / K.
    pub fn units(&self) -> usize {
        self.named.len() + usize::from(self.grouped)
    }

    /// Operators under the minimum counted (pooled): all of them or none.
    pub fn grouped_operators(&self) -> usize {
        if self.grouped {
            self.under_minimum.len()
        } else {
            0
        }
    }

    /// Operators under the minimum that no national figure counts.
    pub fn left_out(&self) -> Vec<u32> {
        if self.grouped {
            Vec::new()
        } else {
            self.under_minimum.iter().copied().collect()
        }
    }
}

/// The national share of per-probe observations `(asn, works)` under `rule`: the operators
/// under the minimum pooled into one unit ([`UNDER_MINIMUM_GROUP`]) or left out (module
/// documentation); no share when nothing is counted.
pub fn national_share(
    observations: &[(u32, bool)],
    rule: MinSample,
) -> (Option<Balanced>, Population) {
    let mut sizes: BTreeMap<u32, usize> = BTreeMap::new();
    for &(asn, _) in observations {
        *sizes.entry(asn).or_default() += 1;
    }
    let population = Population::of(sizes, rule);
    let counted: Vec<(u32, bool)> = observations
        .iter()
        .filter_map(|&(asn, works)| population.unit(asn).map(|unit| (unit, works)))
        .collect();
    (balanced_share(&counted), population)
}

/// Median of `values` (sorted in place); the mean of the two middle values for an even count.
/// `None` when empty. NaN does not panic: it sorts by `total_cmp`, after +∞ (or before −∞ if
/// negative).
pub fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_unstable_by(f64::total_cmp);
    let len = values.len();
    let upper = *values.get(len / 2)?;
    if len % 2 == 1 {
        return Some(upper);
    }
    let lower = *values.get(len / 2 - 1)?;
    // Halving first cannot overflow for large finite values and is exact for normal numbers.
    Some(lower / 2.0 + upper / 2.0)
}

/// Median of the per-group medians: each group (one probe's samples) counts once however many
/// samples it holds. Empty groups are skipped; `None` when no group has a sample.
pub fn median_of_medians(groups: &[Vec<f64>]) -> Option<f64> {
    let mut medians: Vec<f64> = groups
        .iter()
        .filter_map(|group| median(&mut group.clone()))
        .collect();
    median(&mut medians)
}

/// IPv6 median minus IPv4 median, in milliseconds: positive means IPv6 is slower.
pub fn v6_penalty_ms(median_v6: Option<f64>, median_v4: Option<f64>) -> Option<f64> {
    Some(median_v6? - median_v4?)
}

/// A trend projection of a share; see the module documentation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Projection {
    /// Fitted slope in logit units per 365.25 days.
    pub slope_per_year_logit: f64,
    /// `(day, projected share)`, one per horizon, `day` = latest observed day + horizon.
    pub points: Vec<(f64, f64)>,
}

/// Least-squares line on the logit of `points` (`(days since epoch, share)`), projected
/// `horizon_days` after the latest point. `None` with fewer than 3 points, a span under 7 days
/// or any non-finite input.
pub fn project_share(points: &[(f64, f64)], horizon_days: &[f64]) -> Option<Projection> {
    if points.len() < MIN_PROJECTION_POINTS
        || points
            .iter()
            .any(|(day, share)| !day.is_finite() || !share.is_finite())
        || horizon_days.iter().any(|h| !h.is_finite())
    {
        return None;
    }
    let first = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let last = points.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    if last - first < MIN_PROJECTION_SPAN_DAYS {
        return None;
    }

    let count = points.len() as f64;
    let logits: Vec<(f64, f64)> = points
        .iter()
        .map(|&(day, share)| (day, logit(share.clamp(LOGIT_CLAMP, 1.0 - LOGIT_CLAMP))))
        .collect();
    // Centred on the mean day: days since epoch are ~20 000, and squaring them uncentred
    // would lose precision in the slope.
    let mean_day = logits.iter().map(|p| p.0).sum::<f64>() / count;
    let mean_logit = logits.iter().map(|p| p.1).sum::<f64>() / count;
    let (sxx, sxy) = logits.iter().fold((0.0, 0.0), |(sxx, sxy), &(day, y)| {
        let dx = day - mean_day;
        (sxx + dx * dx, sxy + dx * (y - mean_logit))
    });
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;

    let projected = horizon_days
        .iter()
        .map(|&horizon| {
            let day = last + horizon;
            (day, logistic(mean_logit + slope * (day - mean_day)))
        })
        .collect();
    Some(Projection {
        slope_per_year_logit: slope * DAYS_PER_YEAR,
        points: projected,
    })
}

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

/// Stays within [0, 1] for any input: e^(−x) overflows to +∞ (giving 0), never to NaN.
fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    // z² = 1.959964² = 3.841459 (3.841458881296) throughout.

    fn close(actual: f64, expected: f64, tolerance: f64) {
        assert!(
            (actual - expected).abs() <= tolerance,
            "{actual} is not within {tolerance} of {expected}"
        );
    }

    fn interval_is(p: &Proportion, share: f64, low: f64, high: f64) {
        close(p.share, share, 1e-12);
        close(p.low, low, 1e-6);
        close(p.high, high, 1e-6);
    }

    #[test]
    fn wilson_eight_of_ten() {
        // p = 0.8, n = 10; z²/n = 0.3841459, denominator = 1.3841459
        // centre = (0.8 + 0.1920729) / 1.3841459 = 0.992073 / 1.3841459 = 0.716740
        // radicand = 0.8·0.2/10 + 3.841459/400 = 0.016 + 0.0096036 = 0.0256036, √ = 0.160011
        // half = 1.959964 / 1.3841459 · 0.160011 = 1.416010 · 0.160011 = 0.226578
        // [0.716740 − 0.226578, 0.716740 + 0.226578] = [0.490162, 0.943318]
        let p = wilson(8.0, 10.0).expect("n > 0");
        interval_is(&p, 0.8, 0.490162, 0.943318);
        assert_eq!((p.n, p.successes), (10.0, 8.0));
    }

    #[test]
    fn wilson_none_of_five() {
        // p = 0: low = 0 exactly; high = z²/(n + z²) = 3.841459 / 8.841459 = 0.434482
        let p = wilson(0.0, 5.0).expect("n > 0");
        assert_eq!(p.low, 0.0);
        interval_is(&p, 0.0, 0.0, 0.434482);
    }

    #[test]
    fn wilson_all_of_five() {
        // p = 1: low = n/(n + z²) = 5 / 8.841459 = 0.565518; high = 1 exactly
        let p = wilson(5.0, 5.0).expect("n > 0");
        assert_eq!(p.high, 1.0);
        interval_is(&p, 1.0, 0.565518, 1.0);
    }

    #[test]
    fn wilson_half_of_hundred() {
        // p = 0.5, n = 100: centre = 0.5 (symmetric); denominator = 1.03841459
        // radicand = 0.25/100 + 3.841459/40000 = 0.0025 + 0.0000960 = 0.0025960, √ = 0.0509513
        // half = 1.959964 / 1.03841459 · 0.0509513 = 1.887458 · 0.0509513 = 0.0961685
        // [0.403832, 0.596168]
        let p = wilson(50.0, 100.0).expect("n > 0");
        interval_is(&p, 0.5, 0.403832, 0.596168);
    }

    #[test]
    fn wilson_fractional_n() {
        // 1.8 of 3.6: p = 0.5; denominator = 1 + 3.841459/3.6 = 2.067072
        // radicand = 0.25/3.6 + 3.841459/(4·12.96) = 0.0694444 + 0.0741022 = 0.1435467, √ = 0.378876
        // half = 1.959964 / 2.067072 · 0.378876 = 0.948184 · 0.378876 = 0.359244
        // [0.140756, 0.859244]
        let p = wilson(1.8, 3.6).expect("n > 0");
        interval_is(&p, 0.5, 0.140756, 0.859244);
    }

    #[test]
    fn wilson_refuses_what_is_not_a_sample() {
        assert_eq!(wilson(0.0, 0.0), None);
        assert_eq!(wilson(1.0, -1.0), None);
        assert_eq!(wilson(3.0, 2.0), None);
        assert_eq!(wilson(-1.0, 2.0), None);
        assert_eq!(wilson(f64::NAN, 2.0), None);
        assert_eq!(wilson(1.0, f64::INFINITY), None);
    }

    #[test]
    fn big_operator_does_not_dominate() {
        // AS1: 9 probes, all working; AS2: 1 probe, not working.
        let mut observations = vec![(1, true); 9];
        observations.push((2, false));
        let b = balanced_share(&observations).expect("observations");

        // raw 9/10: p = 0.9; centre = (0.9 + 0.1920729) / 1.3841459 = 0.788987
        // radicand = 0.09/10 + 0.0096036 = 0.0186036, √ = 0.136395; half = 1.416010 · 0.136395
        // = 0.193137 → [0.595850, 0.982124]
        interval_is(&b.raw, 0.9, 0.595850, 0.982124);
        assert_eq!((b.raw.n, b.raw.successes), (10.0, 9.0));

        // balanced = (1 + 0)/2 = 0.5; n_kish = 2² / (1/9 + 1/1) = 4 / (10/9) = 3.6;
        // the two operators disagree completely: v = (0.25 + 0.25) / (2 · 1) = 0.25,
        // n_cluster = 0.25 / 0.25 = 1, n = min(3.6, 1) = 1; successes = 0.5.
        // Wilson(0.5, 1): denominator = 4.841459, centre = 0.5; radicand = 0.25 + 0.960365
        // = 1.210365, √ = 1.100166; half = 0.404829 · 1.100166 = 0.445379
        // → [0.054621, 0.945379]
        interval_is(&b.overall, 0.5, 0.054621, 0.945379);
        close(b.overall.n, 1.0, 1e-12);
        close(b.overall.successes, 0.5, 1e-12);
        close(b.n_kish, 3.6, 1e-12);

        assert_eq!((b.operators, b.probes), (2, 10));
        let asns: Vec<u32> = b.per_operator.iter().map(|o| o.asn).collect();
        assert_eq!(asns, [1, 2]);
        // AS1 9/9: low = 9 / (9 + 3.841459) = 0.700855, high = 1
        interval_is(&b.per_operator[0].share, 1.0, 0.700855, 1.0);
        assert_eq!(b.per_operator[0].probes, 9);
        // AS2 0/1: low = 0, high = 3.841459 / 4.841459 = 0.793451
        interval_is(&b.per_operator[1].share, 0.0, 0.0, 0.793451);
        assert_eq!(b.per_operator[1].probes, 1);
    }

    #[test]
    fn one_operator_balanced_equals_raw() {
        // n_eff = 1² / (1/n) = n, so the two coincide (up to the rounding of 1/(1/n)).
        for (working, total) in [(3_usize, 7_usize), (0, 4), (49, 49), (20, 49)] {
            let observations: Vec<(u32, bool)> =
                (0..total).map(|i| (64_500, i < working)).collect();
            let b = balanced_share(&observations).expect("observations");
            assert_eq!(b.overall.share, b.raw.share);
            for (balanced, raw) in [
                (b.overall.low, b.raw.low),
                (b.overall.high, b.raw.high),
                (b.overall.n, b.raw.n),
                (b.overall.successes, b.raw.successes),
            ] {
                close(balanced, raw, 1e-12);
            }
            assert_eq!(b.per_operator.len(), 1);
            assert_eq!(b.per_operator[0].share, b.raw);
        }
    }

    #[test]
    fn equal_sized_operators_that_agree_match_pooled_share() {
        // Every ASN with 2 probes, one working: weights all 1/2, n_kish = 3² / (3 · 1/2) = 6 =
        // probes; the operators agree (v = 0), so n = n_kish and the figure is the pooled one.
        let observations = [
            (10, true),
            (10, false),
            (20, true),
            (20, false),
            (30, false),
            (30, true),
        ];
        let b = balanced_share(&observations).expect("observations");
        close(b.overall.share, b.raw.share, 1e-12);
        close(b.overall.n, 6.0, 1e-12);
        close(b.overall.low, b.raw.low, 1e-12);
        close(b.overall.high, b.raw.high, 1e-12);
    }

    #[test]
    fn operators_that_disagree_widen_the_national_interval() {
        // Same probes per operator, but shares 1, 0.5, 0: n_kish = 6 as above, while
        // v = (0.25 + 0 + 0.25) / (3 · 2) = 1/12 and n_cluster = 0.25 · 12 = 3: n = 3.
        // Wilson(0.5, 3) = [0.125334, 0.874666], wider than the pooled Wilson(3, 6).
        let observations = [
            (10, true),
            (10, true),
            (20, true),
            (20, false),
            (30, false),
            (30, false),
        ];
        let b = balanced_share(&observations).expect("observations");
        close(b.n_kish, 6.0, 1e-12);
        close(b.overall.n, 3.0, 1e-12);
        interval_is(&b.overall, 0.5, 0.125334, 0.874666);
        assert!(b.overall.high - b.overall.low > b.raw.high - b.raw.low);
    }

    #[test]
    fn two_operators_at_zero_and_hundred_percent_know_little() {
        // 50 probes each: Kish alone would say n = 100 and [0.40, 0.60]; with the operators as
        // the independent units n = 1 and the interval spans nearly everything.
        let mut observations = vec![(1, true); 50];
        observations.extend(vec![(2, false); 50]);
        let b = balanced_share(&observations).expect("observations");
        close(b.n_kish, 100.0, 1e-9);
        close(b.overall.n, 1.0, 1e-12);
        interval_is(&b.overall, 0.5, 0.054621, 0.945379);
        // The same data give the same interval (no resampling, no seed).
        assert_eq!(balanced_share(&observations), Some(b));
    }

    #[test]
    fn many_similar_operators_narrow_the_national_interval() {
        // 20 operators of 10 probes, alternately 6 and 7 working: share 0.65, n_kish = 200,
        // v = 0.0025 / 19, n_cluster = 0.2275 / v = 1729, so n = n_kish = 200.
        let observations: Vec<(u32, bool)> = (0..20u32)
            .flat_map(|asn| {
                let working = if asn % 2 == 0 { 6 } else { 7 };
                (0..10).map(move |i| (asn, i < working))
            })
            .collect();
        let b = balanced_share(&observations).expect("observations");
        close(b.overall.share, 0.65, 1e-12);
        close(b.overall.n, 200.0, 1e-9);
        assert!(b.overall.high - b.overall.low < 0.14, "{:?}", b.overall);
        // Fewer such operators: a wider interval.
        let few: Vec<(u32, bool)> = observations.iter().copied().filter(|o| o.0 < 4).collect();
        let f = balanced_share(&few).expect("observations");
        assert!(f.overall.high - f.overall.low > b.overall.high - b.overall.low);
    }

    fn ranks(intervals: &[(f64, f64)]) -> Vec<String> {
        rank_ranges(intervals)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn ranks_by_interval() {
        // Disjoint intervals: plain ranks, whatever the input order.
        assert_eq!(
            ranks(&[(0.1, 0.2), (0.8, 0.9), (0.4, 0.5)]),
            ["3", "1", "2"]
        );
        // Ties and overlaps share a range.
        assert_eq!(ranks(&[(0.2, 0.6), (0.2, 0.6)]), ["1–2", "1–2"]);
        assert_eq!(
            ranks(&[(0.5, 0.9), (0.1, 0.6), (0.0, 0.05)]),
            ["1–2", "1–2", "3"]
        );
        // A chain a ~ b ~ c with a and c disjoint: pairs compared one by one.
        assert_eq!(
            ranks(&[(0.7, 0.9), (0.4, 0.75), (0.1, 0.5)]),
            ["1–2", "1–3", "2–3"]
        );
        // Touching bounds overlap.
        assert_eq!(ranks(&[(0.5, 0.9), (0.1, 0.5)]), ["1–2", "1–2"]);
        assert_eq!(ranks(&[(0.3, 0.4)]), ["1"]);
        assert!(rank_ranges(&[]).is_empty());
    }

    #[test]
    fn the_minimum_sample_rule() {
        let rule = MinSample::default();
        assert_eq!(rule.min_probes, DEFAULT_MIN_PROBES);
        assert!(!rule.allows(1) && !rule.allows(2) && rule.allows(3));
        assert!(MinSample { min_probes: 1 }.allows(1));
    }

    #[test]
    fn podium_order_and_balanced_interval() {
        // AS5 1/1 (1.0), AS10 1/2 (0.5), AS20 2/4 (0.5), AS30 2/4 (0.5).
        let mut observations = vec![(10, true), (10, false), (5, true)];
        observations.extend([(30, true), (30, true), (30, false), (30, false)]);
        observations.extend([(20, false), (20, true), (20, false), (20, true)]);
        let b = balanced_share(&observations).expect("observations");

        // share desc, then probes desc, then ASN asc
        let podium: Vec<(u32, usize)> = b.per_operator.iter().map(|o| (o.asn, o.probes)).collect();
        assert_eq!(podium, [(5, 1), (20, 4), (30, 4), (10, 2)]);

        // balanced = (1 + 0.5 + 0.5 + 0.5) / 4 = 0.625; Σ 1/n = 1 + 1/2 + 1/4 + 1/4 = 2;
        // n_eff = 4² / 2 = 8; successes = 0.625 · 8 = 5.
        // Wilson(5, 8): denominator = 1 + 3.841459/8 = 1.480182;
        // centre = (0.625 + 0.2400912) / 1.480182 = 0.584449;
        // radicand = 0.625·0.375/8 + 3.841459/256 = 0.0292969 + 0.0150057 = 0.0443026, √ = 0.210482;
        // half = 1.959964 / 1.480182 · 0.210482 = 1.324137 · 0.210482 = 0.278707
        // → [0.305742, 0.863156]
        interval_is(&b.overall, 0.625, 0.305742, 0.863156);
        close(b.overall.n, 8.0, 1e-12);
        close(b.overall.successes, 5.0, 1e-12);
        // raw 6/11 = 0.545455; Wilson(6, 11) = [0.280092, 0.787287]
        interval_is(&b.raw, 6.0 / 11.0, 0.280092, 0.787287);
        assert_eq!((b.operators, b.probes), (4, 11));
    }

    #[test]
    fn a_lone_operator_under_the_minimum_is_left_out_of_the_national_share() {
        // AS1 3/3, AS2 1/3 named; AS3, one probe at 0 %, under the minimum of 3.
        let mut observations = vec![(1, true); 3];
        observations.extend([(2, true), (2, false), (2, false), (3, false)]);
        let rule = MinSample { min_probes: 3 };
        let (b, population) = national_share(&observations, rule);
        let b = b.expect("counted");
        let named: Vec<u32> = population.named.iter().copied().collect();
        assert_eq!((named, population.left_out()), (vec![1, 2], vec![3]));
        // The mean of the named shares: nothing of AS3 in it, whatever its probe says.
        close(b.overall.share, (1.0 + 1.0 / 3.0) / 2.0, 1e-12);
        assert_eq!((b.operators, b.probes, b.raw.n), (2, 6, 6.0));
        let mut flipped = observations.clone();
        flipped[6] = (3, true);
        assert_eq!(national_share(&flipped, rule).0, Some(b));
        // Without a minimum it is the plain balanced share.
        let all = national_share(&observations, MinSample { min_probes: 1 });
        assert_eq!(all.0, balanced_share(&observations));
        assert_eq!(all.1.units(), 3);
    }

    #[test]
    fn operators_under_the_minimum_that_reach_it_together_count_as_one() {
        // AS1 3/3 named; AS2 (2 probes, 1 works) and AS3 (1 probe, works) pool: 2/3.
        let mut observations = vec![(1, true); 3];
        observations.extend([(2, true), (2, false), (3, true)]);
        let (b, population) = national_share(&observations, MinSample { min_probes: 3 });
        let b = b.expect("counted");
        assert!(population.grouped && population.left_out().is_empty());
        assert_eq!(
            (population.units(), population.under_minimum_probes),
            (2, 3)
        );
        assert_eq!(population.unit(2), Some(UNDER_MINIMUM_GROUP));
        close(b.overall.share, (1.0 + 2.0 / 3.0) / 2.0, 1e-12);
        assert_eq!((b.operators, b.probes), (2, 6));
        // Only the group's total is in the figure: moving the working probe from AS3 to AS2
        // changes nothing.
        let moved = [
            (1, true),
            (1, true),
            (1, true),
            (2, true),
            (2, true),
            (3, false),
        ];
        assert_eq!(
            national_share(&moved, MinSample { min_probes: 3 }).0,
            Some(b)
        );
        // Under the minimum in all: nothing to count.
        let (none, population) = national_share(&[(3, true)], MinSample { min_probes: 3 });
        assert_eq!((none, population.left_out()), (None, vec![3]));
    }

    #[test]
    fn no_observations_no_share() {
        assert_eq!(balanced_share(&[]), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [4.0]), Some(4.0));
        assert_eq!(median(&mut [9.0, 1.0, 5.0]), Some(5.0));
        // sorted 1, 2, 4, 10 → (2 + 4) / 2 = 3
        assert_eq!(median(&mut [10.0, 2.0, 1.0, 4.0]), Some(3.0));
        assert_eq!(median(&mut [f64::MAX, f64::MAX]), Some(f64::MAX));
    }

    #[test]
    fn median_does_not_panic_on_nan() {
        // NaN sorts last: 1, 2, NaN → 2
        assert_eq!(median(&mut [f64::NAN, 2.0, 1.0]), Some(2.0));
        assert!(median(&mut [f64::NAN]).is_some_and(f64::is_nan));
    }

    #[test]
    fn each_probe_counts_once() {
        // Probe A: 100 samples of 10 ms; probe B: 30 ms once; probe C: 40 ms, 50 ms.
        // Pooled, the median would be 10 ms. Per-probe medians 10, 30, 45 → 30.
        let groups = vec![vec![10.0; 100], vec![30.0], vec![50.0, 40.0], vec![]];
        assert_eq!(median_of_medians(&groups), Some(30.0));
        // Medians 10 and 30 → 20.
        assert_eq!(median_of_medians(&groups[..2]), Some(20.0));
        assert_eq!(median_of_medians(&[]), None);
        assert_eq!(median_of_medians(&[vec![], vec![]]), None);
    }

    #[test]
    fn v6_penalty() {
        assert_eq!(v6_penalty_ms(Some(32.5), Some(30.0)), Some(2.5));
        assert_eq!(v6_penalty_ms(Some(28.0), Some(30.0)), Some(-2.0));
        assert_eq!(v6_penalty_ms(None, Some(30.0)), None);
        assert_eq!(v6_penalty_ms(Some(30.0), None), None);
        assert_eq!(v6_penalty_ms(None, None), None);
    }

    #[test]
    fn constant_series_projects_constant() {
        let points: Vec<(f64, f64)> = (0..6)
            .map(|i| (19_000.0 + 30.0 * f64::from(i), 0.3))
            .collect();
        let p = project_share(&points, &[0.0, 90.0, 365.0]).expect("enough points");
        close(p.slope_per_year_logit, 0.0, 1e-9);
        assert_eq!(p.points.len(), 3);
        for (&(day, share), horizon) in p.points.iter().zip([0.0, 90.0, 365.0]) {
            assert_eq!(day, 19_150.0 + horizon);
            close(share, 0.3, 1e-9);
        }
    }

    #[test]
    fn logistic_curve_is_recovered() {
        // True curve: logit p(t) = 1.5 · (t − 19 800) / 365.25 (odds × e^1.5 a year).
        let truth = |day: f64| logistic(1.5 * (day - 19_800.0) / DAYS_PER_YEAR);
        let points: Vec<(f64, f64)> = (0..8)
            .map(|i| 19_500.0 + 30.0 * f64::from(i))
            .map(|day| (day, truth(day)))
            .collect();
        let p = project_share(&points, &[365.0]).expect("enough points");
        close(p.slope_per_year_logit, 1.5, 1e-9);
        let (day, share) = p.points[0];
        assert_eq!(day, 19_710.0 + 365.0);
        // truth: logit = 1.5 · 275 / 365.25 = 1.12936, p = 0.755721
        close(share, truth(day), 0.01);
        close(share, 0.755721, 1e-6);
    }

    #[test]
    fn projection_stays_within_bounds() {
        // Rising 20 points a month: a straight line on the share would pass 100 % in 2 weeks.
        let points = [(0.0, 0.5), (30.0, 0.7), (60.0, 0.9)];
        let p = project_share(&points, &[365.0, 3650.0, 1e6]).expect("enough points");
        assert!(p.slope_per_year_logit > 0.0);
        for (_, share) in &p.points {
            assert!((0.0..=1.0).contains(share), "{share}");
        }
        // Falling to 0: clamped to 0.001, so the projection stays at 0.1 %.
        let zeros = [(0.0, 0.0), (10.0, 0.0), (20.0, 0.0)];
        let p = project_share(&zeros, &[365.0]).expect("enough points");
        close(p.points[0].1, 0.001, 1e-12);
    }

    #[test]
    fn projection_needs_three_points_over_a_week() {
        assert_eq!(project_share(&[(0.0, 0.1), (30.0, 0.2)], &[365.0]), None);
        assert_eq!(
            project_share(&[(0.0, 0.1), (3.0, 0.2), (6.9, 0.3)], &[365.0]),
            None
        );
        assert!(project_share(&[(0.0, 0.1), (3.0, 0.2), (7.0, 0.3)], &[365.0]).is_some());
        assert_eq!(
            project_share(&[(0.0, 0.1), (3.0, f64::NAN), (7.0, 0.3)], &[365.0]),
            None
        );
    }
}
