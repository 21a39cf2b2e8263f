//! A campaign's published figures, from its stored results: pure, so each figure can be
//! recomputed by hand from the results export. [`METHODOLOGY`] states the method and is
//! embedded, with its version and the campaign spec, in every rendering.

pub(crate) use super::escape::{csv_field, esc};
use super::presence::{self, Answer, Presence, Source, TYPE_A, TYPE_AAAA, Verdict};
use super::spec::{is_reachability_kind, task_label};
use super::{CampaignRecord, DeclaredFigure, Progress};
use crate::i18n::Language;
use crate::rollup::{self, Balanced, MinSample, Proportion, RankRange};
use crate::store::{CampaignCell, StoredResult, is_newer};
use serde::Serialize;
use sixmap_shared::measurement::{Family, MeasurementKind, Outcome, SpecKind, Target};
use sixmap_shared::nat64::Nat64Prefix;
use sixmap_shared::{ProbeId, UnixMicros};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write;
use std::net::IpAddr;

/// Bumped whenever a figure's definition changes, so published reports say which applies.
pub const METHODOLOGY_VERSION: &str = "sixmap-campaign-report/3";

pub const METHODOLOGY: &str = "\
Observations. For each probe, target, measurement kind and address family only the probe's \
latest result counts, so a probe measuring often does not outweigh one measuring rarely. \
Operators are the origin AS of the probe's address when it was chosen (imported prefix data); \
probes without one are grouped under AS 0.\n\
AAAA published (and A published, the same way): from DNS questions about the name (`dns` \
measurements, normally asked of each probe's own resolver), each probe's latest answer per \
record type. A probe votes yes when its resolver returned the record with an address it did \
not make up (not synthesised by DNS64 in 64:ff9b::/96 or 64:ff9b:1::/48, not a filter's ::, \
0.0.0.0 or loopback); no when the answer was NOERROR or NXDOMAIN without it while the same \
probe's question of the other type returned records (so its resolver works for that name); \
inconclusive otherwise (SERVFAIL, REFUSED, timeouts, an unreachable resolver, only made-up \
addresses, or an empty answer the other question cannot confirm). A probe whose \
resolver failed both questions is excluded from the figure, with the reason. The figure is yes \
when any probe voted yes, else no when any voted no, else inconclusive; the counts are shown. \
A resolver's failure is never a no. Without DNS questions of a type, an address of that family \
resolved by another measurement still counts as yes; nothing counts as no. An address target is \
its own answer.\n\
Reachable over IPv6: a probe reaches a target when the latest IPv6 result of at least one \
reachability measurement (ping, traceroute, tcp, tls, http, quic, dual_stack's IPv6 leg) \
reached the destination (an answer of any kind, a refused TCP connection included). Per \
operator: the share of its probes, with the 95 % Wilson score interval. Overall: the \
operator-balanced share (each operator counts equally), its interval on an effective sample \
size that accounts for unequal weights (Kish) and for probes of one operator behaving alike \
(between-operator variance), with the pooled share beside it (collector/src/rollup.rs states \
both methods).\n\
Minimum sample: a figure over fewer probes than the collector's published minimum \
(`min_probes`, in the report) is insufficient data: its number of probes is shown, no share, \
interval, RTT or rank.\n\
HTTP over IPv6 works: the probe's latest IPv6 HTTP result has a status 200-399.\n\
Same certificate over IPv4 and IPv6: the latest TLS results of one probe over both families \
present the same leaf certificate (subject, issuer, validity period). Same content: the latest \
HTTP results of one probe over both families have the same status and the same body size and \
truncation; the probe reports body sizes, not body hashes, so equal sizes of different bodies \
count as the same content. Only probes with results over both families are compared.\n\
Operator ranking: per operator, the (probe, target) pairs over the targets with AAAA \
published, and the share of those reached over IPv6, with its 95 % Wilson interval; listed by \
share, then sample size, then ASN, and ranked by interval: an operator's rank range runs from 1 \
+ the number of operators whose interval lies entirely above its own to the number of ranked \
operators minus those entirely below, so operators the data cannot tell apart share ranks. \
Pairs of one probe are not independent, so the interval understates the uncertainty when an \
operator has few probes. Median IPv6 RTT: the median over \
probes of each probe's median ping RTT (first replies).\n\
Declared figures are the operators' own, imported as given, and shown beside the measured \
ones without adjustment.";

#[derive(Debug, Clone, Serialize)]
pub struct CampaignInfo {
    pub id: u64,
    pub name: String,
    pub description: String,
    pub owner: String,
    pub status: super::CampaignStatus,
    pub status_reason: Option<String>,
    pub created_at: UnixMicros,
    pub ended_at: Option<UnixMicros>,
    /// When it was made public (`/reports/{id}`); null while it is not.
    pub published_at: Option<UnixMicros>,
    pub spec: super::spec::CampaignSpec,
    pub spec_text: String,
}

/// The period the figures cover: from the campaign's start (its schedule's start, or its
/// creation if later) to its newest result. Cells keep each probe's latest result only, so
/// the start is the campaign's, not its first result's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Period {
    pub from: UnixMicros,
    pub to: UnixMicros,
}

/// The report's dates as people read them (UTC, e.g. `4 December 2026, 16:05 UTC`), beside
/// the µs fields they come from.
#[derive(Debug, Clone, Serialize)]
pub struct HumanDates {
    pub generated: String,
    pub created: String,
    pub ended: Option<String>,
    pub published: Option<String>,
    /// The period measured; null before the first result.
    pub period_from: Option<String>,
    pub period_to: Option<String>,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// `t` as `4 December 2026, 16:05 UTC` (minutes truncated, as a clock shows them).
pub fn human_utc(t: UnixMicros) -> String {
    let secs = t.0.div_euclid(1_000_000);
    let (year, month, day) = crate::export::row::civil_from_days(secs.div_euclid(86_400));
    let of_day = secs.rem_euclid(86_400);
    format!(
        "{day} {} {year}, {:02}:{:02} UTC",
        MONTHS[(month as usize).clamp(1, 12) - 1],
        of_day / 3600,
        of_day % 3600 / 60
    )
}

/// A yes/no figure compared over probes with both families.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Probes with results over both families.
    pub compared: u64,
    pub same: u64,
    pub share: Option<Proportion>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OperatorFigure {
    pub asn: u32,
    pub as_name: Option<String>,
    pub country: Option<String>,
    pub probes: usize,
    /// Fewer probes than the minimum sample: no share.
    pub insufficient_data: bool,
    pub share: Option<Proportion>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShareFigure {
    /// Probes behind the figure.
    pub probes: usize,
    /// Fewer probes than the minimum sample: no overall or pooled share.
    pub insufficient_data: bool,
    /// Operator-balanced.
    pub overall: Option<Proportion>,
    /// Every probe weighted 1.
    pub pooled: Option<Proportion>,
    pub operators: Vec<OperatorFigure>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub target: String,
    /// `aaaa.verdict` as a boolean: yes / no, null when inconclusive or not measured.
    pub aaaa_published: Option<bool>,
    /// AAAA published: verdict, source, the probes' votes and the probes excluded.
    pub aaaa: Presence,
    /// A published, the same way.
    pub a: Presence,
    /// IPv6 addresses the probes resolved.
    pub v6_addresses: Vec<IpAddr>,
    pub reachable_v6: Option<ShareFigure>,
    pub http_v6_works: Option<ShareFigure>,
    pub same_certificate_v4_v6: Option<Comparison>,
    pub same_content_v4_v6: Option<Comparison>,
    /// Results per measurement (`http v6`...).
    pub results: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OperatorReport {
    /// The best rank of `rank_range`; null with insufficient data.
    pub rank: Option<usize>,
    /// Rank range by interval among the operators with sufficient data
    /// (`rollup::rank_ranges`): operators whose intervals overlap share ranks.
    pub rank_range: Option<RankRange>,
    /// Fewer reporting probes than the minimum sample: no share, RTT or rank.
    pub insufficient_data: bool,
    pub asn: u32,
    pub as_name: Option<String>,
    pub country: Option<String>,
    /// The operator's probes selected for the campaign.
    pub probes: usize,
    /// Of those, the ones that reported on targets with AAAA published: the n the minimum
    /// sample is checked against.
    pub reporting_probes: usize,
    /// (probe, target) pairs over targets with AAAA published, reached over IPv6.
    pub v6_reachability: Option<Proportion>,
    pub http_v6: Option<Proportion>,
    pub median_v6_rtt_ms: Option<f64>,
    pub declared: Vec<DeclaredFigure>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub methodology_version: &'static str,
    pub methodology: &'static str,
    pub generated_at: UnixMicros,
    /// The minimum sample applied (collector config `[publication] min_probes`).
    pub min_probes: usize,
    /// Who publishes it (collector config `[publication]`): named in the HTML heading.
    pub publisher: crate::config::Publisher,
    /// The period measured; null before the first result.
    pub period: Option<Period>,
    /// `generated_at`, the campaign's dates and the period in words.
    pub dates: HumanDates,
    pub campaign: CampaignInfo,
    pub progress: Progress,
    pub targets: Vec<TargetReport>,
    pub operators: Vec<OperatorReport>,
    /// Declared figures of operators without measured figures.
    pub declared_unmatched: Vec<DeclaredFigure>,
    /// Readiness scores per domain and entity (`super::readiness`, docs/readiness.md);
    /// absent when the campaign has no readiness measurement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness: Option<super::readiness::ReadinessReport>,
}

type Key = (ProbeId, String, MeasurementKind, Family);

fn http_works(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Http(h) if h.status.is_some_and(|s| (200..400).contains(&s)))
}

fn share_figure(
    observations: &[(u32, bool)],
    names: &BTreeMap<u32, (Option<String>, Option<String>)>,
    rule: MinSample,
) -> Option<ShareFigure> {
    let Balanced {
        overall,
        raw,
        per_operator,
        probes,
        ..
    } = rollup::balanced_share(observations)?;
    let sufficient = rule.allows(probes);
    Some(ShareFigure {
        probes,
        insufficient_data: !sufficient,
        overall: sufficient.then_some(overall),
        pooled: sufficient.then_some(raw),
        operators: per_operator
            .into_iter()
            .map(|o| {
                let (as_name, country) = names.get(&o.asn).cloned().unwrap_or_default();
                let sufficient = rule.allows(o.probes);
                OperatorFigure {
                    asn: o.asn,
                    as_name,
                    country,
                    probes: o.probes,
                    insufficient_data: !sufficient,
                    share: sufficient.then_some(o.share),
                }
            })
            .collect(),
    })
}

/// The presence of `query_type` records of `target` from the probes' DNS questions about it
/// ([`presence::presence`]); without any, yes when another measurement resolved an address of
/// the type's family (`resolved`), else not measured.
fn dns_presence(
    dns_latest: &HashMap<(ProbeId, String, u16), &StoredResult>,
    nat64_of: &BTreeMap<&ProbeId, Option<Nat64Prefix>>,
    target: &str,
    query_type: u16,
    resolved: bool,
) -> Presence {
    let name = target
        .strip_suffix('.')
        .unwrap_or(target)
        .to_ascii_lowercase();
    let other_type = if query_type == TYPE_AAAA {
        TYPE_A
    } else {
        TYPE_AAAA
    };
    let mut asked: BTreeMap<ProbeId, (Option<Answer>, Option<Answer>)> = BTreeMap::new();
    for ((probe, asked_name, t), r) in dns_latest {
        if *asked_name != name {
            continue;
        }
        let nat64 = nat64_of.get(probe).copied().flatten();
        let votes = asked.entry(probe.clone()).or_default();
        if *t == query_type {
            votes.0 = Some(presence::answer(&r.result.outcome, *t, nat64));
        } else if *t == other_type {
            votes.1 = Some(presence::answer(&r.result.outcome, *t, nat64));
        }
    }
    let p = presence::presence(query_type, &asked);
    match p.verdict {
        Verdict::NotMeasured if resolved => Presence::fixed(Verdict::Yes, Source::Resolved),
        Verdict::NotMeasured => Presence::fixed(Verdict::NotMeasured, Source::None),
        _ => p,
    }
}

fn comparison(pairs: &[bool]) -> Option<Comparison> {
    if pairs.is_empty() {
        return None;
    }
    let same = pairs.iter().filter(|s| **s).count() as u64;
    Some(Comparison {
        compared: pairs.len() as u64,
        same,
        share: rollup::wilson(same as f64, pairs.len() as f64),
    })
}

/// Builds the report of `record` from its cells (per task and probe: each holds its count
/// and latest result, all a figure below needs).
pub fn build(
    record: &CampaignRecord,
    cells: &[CampaignCell],
    progress: Progress,
    now: UnixMicros,
    rule: MinSample,
) -> Report {
    // The domain of each readiness task, looked up once per cell (not a scan of the tasks).
    let readiness_target: HashMap<_, &str> = record
        .tasks
        .iter()
        .filter(|t| t.task.spec.measurement_kind() == MeasurementKind::Readiness)
        .map(|t| (t.task_id, t.task.target.as_str()))
        .collect();
    let asn_of: BTreeMap<&ProbeId, u32> = record
        .probes
        .iter()
        .map(|p| (&p.probe, p.asn.unwrap_or(0)))
        .collect();
    let nat64_of: BTreeMap<&ProbeId, Option<Nat64Prefix>> = record
        .probes
        .iter()
        .map(|p| (&p.probe, p.nat64_prefix))
        .collect();
    let mut names: BTreeMap<u32, (Option<String>, Option<String>)> = BTreeMap::new();
    for p in &record.probes {
        names
            .entry(p.asn.unwrap_or(0))
            .or_insert((p.as_name.clone(), p.country.clone()));
    }
    // Latest result per (probe, target, kind, family).
    // Iteration order does not matter: every figure below goes through ordered maps.
    let mut latest: HashMap<Key, &StoredResult> = HashMap::new();
    // DNS questions apart, per (probe, name asked, record type): a probe's AAAA and A
    // questions of one name share the other key's kind and family.
    let mut dns_latest: HashMap<(ProbeId, String, u16), &StoredResult> = HashMap::new();
    let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for cell in cells {
        let Some(task) = record.tasks.iter().find(|t| t.task_id == cell.task_id) else {
            continue;
        };
        let spec = &task.task.spec;
        *counts
            .entry(task.task.target.clone())
            .or_default()
            .entry(task_label(spec))
            .or_default() += cell.results;
        let key = (
            cell.probe_id.clone(),
            task.task.target.clone(),
            spec.measurement_kind(),
            spec.family,
        );
        // The newest over the tasks of the key; ties by result key (`store::is_newer`), so
        // the answer does not depend on the order cells are read in.
        let r = &cell.latest;
        if let SpecKind::Dns(dns) = &spec.kind {
            let key = (
                cell.probe_id.clone(),
                dns.query_name().to_owned(),
                dns.query_type(),
            );
            if dns_latest.get(&key).is_none_or(|old| is_newer(r, old)) {
                dns_latest.insert(key, r);
            }
            continue;
        }
        let newer = latest.get(&key).is_none_or(|old| is_newer(r, old));
        if newer {
            latest.insert(key, r);
        }
    }

    let mut operator_pairs: Vec<(u32, bool)> = Vec::new();
    let mut operator_http: Vec<(u32, bool)> = Vec::new();
    // Per operator, the probes behind its pairs: the minimum sample counts probes, not pairs.
    let mut reporting: BTreeMap<u32, BTreeSet<&ProbeId>> = BTreeMap::new();
    let mut targets = Vec::new();
    for target in &record.spec.targets {
        let of_target: Vec<(&Key, &&StoredResult)> =
            latest.iter().filter(|(k, _)| &k.1 == target).collect();
        let v6: Vec<&(&Key, &&StoredResult)> = of_target
            .iter()
            .filter(|(k, _)| k.3 == Family::V6)
            .collect();
        let v6_addresses: BTreeSet<IpAddr> = v6
            .iter()
            .filter_map(|(_, r)| r.result.destination)
            .filter(|a| a.is_ipv6())
            .collect();
        let (aaaa, a) = match Target::parse(target) {
            Ok(Target::Address(address)) => {
                let own = |yes| if yes { Verdict::Yes } else { Verdict::No };
                (
                    Presence::fixed(own(address.is_ipv6()), Source::Address),
                    Presence::fixed(own(address.is_ipv4()), Source::Address),
                )
            }
            _ => {
                let v4_resolved = of_target.iter().any(|(k, r)| {
                    k.3 == Family::V4
                        && r.result
                            .destination
                            .is_some_and(|d| d.is_ipv4() && presence::published_address(d))
                });
                (
                    dns_presence(
                        &dns_latest,
                        &nat64_of,
                        target,
                        TYPE_AAAA,
                        v6_addresses.iter().any(|a| presence::published_address(*a)),
                    ),
                    dns_presence(&dns_latest, &nat64_of, target, TYPE_A, v4_resolved),
                )
            }
        };
        let aaaa_published = aaaa.as_bool();
        // Per probe: reached by any reachability kind over IPv6; HTTP over IPv6 works.
        let mut reached: BTreeMap<&ProbeId, bool> = BTreeMap::new();
        let mut http: BTreeMap<&ProbeId, bool> = BTreeMap::new();
        for (key, r) in &v6 {
            if is_reachability_kind(key.2) {
                let hit = r.result.outcome.reached_destination();
                *reached.entry(&key.0).or_default() |= hit;
            }
            if key.2 == MeasurementKind::Http {
                http.insert(&key.0, http_works(&r.result.outcome));
            }
        }
        let observe = |m: &BTreeMap<&ProbeId, bool>| -> Vec<(u32, bool)> {
            m.iter()
                .map(|(p, ok)| (asn_of.get(p).copied().unwrap_or(0), *ok))
                .collect()
        };
        let reach_obs = observe(&reached);
        let http_obs = observe(&http);
        if aaaa_published == Some(true) {
            operator_pairs.extend(&reach_obs);
            operator_http.extend(&http_obs);
            for p in reached.keys() {
                let asn = asn_of.get(p).copied().unwrap_or(0);
                reporting.entry(asn).or_default().insert(p);
            }
        }
        // Both families, per probe.
        let get = |probe: &ProbeId, kind, family| {
            latest.get(&(probe.clone(), target.clone(), kind, family))
        };
        let probes: BTreeSet<&ProbeId> = of_target.iter().map(|(k, _)| &k.0).collect();
        let mut same_cert = Vec::new();
        let mut same_content = Vec::new();
        for probe in probes {
            let tls = |f| match get(probe, MeasurementKind::Tls, f).map(|r| &r.result.outcome) {
                Some(Outcome::Tls(t)) => t.chain.first().cloned(),
                _ => None,
            };
            if let (Some(a), Some(b)) = (tls(Family::V6), tls(Family::V4)) {
                same_cert.push(a == b);
            }
            let page = |f| match get(probe, MeasurementKind::Http, f).map(|r| &r.result.outcome) {
                Some(Outcome::Http(h)) if h.status.is_some() => {
                    Some((h.status, h.body_bytes, h.body_truncated))
                }
                _ => None,
            };
            if let (Some(a), Some(b)) = (page(Family::V6), page(Family::V4)) {
                same_content.push(a == b);
            }
        }
        targets.push(TargetReport {
            target: target.clone(),
            aaaa_published,
            aaaa,
            a,
            v6_addresses: v6_addresses.into_iter().collect(),
            reachable_v6: share_figure(&reach_obs, &names, rule),
            http_v6_works: share_figure(&http_obs, &names, rule),
            same_certificate_v4_v6: comparison(&same_cert),
            same_content_v4_v6: comparison(&same_content),
            results: counts.remove(target).unwrap_or_default(),
        });
    }

    // Per operator: pairs over AAAA targets, ranked as the national pages rank operators.
    let mut operators = Vec::new();
    if let Some(balanced) = rollup::balanced_share(&operator_pairs) {
        let http_by_asn = rollup::balanced_share(&operator_http)
            .map(|b| {
                b.per_operator
                    .into_iter()
                    .map(|o| (o.asn, o.share))
                    .collect::<BTreeMap<_, _>>()
            })
            .unwrap_or_default();
        // Ranked among the operators with enough probes, in the podium order; the others
        // after them, without share or rank.
        let (ranked, unranked): (Vec<_>, Vec<_>) = balanced
            .per_operator
            .into_iter()
            .partition(|o| rule.allows(reporting.get(&o.asn).map_or(0, BTreeSet::len)));
        let ranks = rollup::rank_ranges(
            &ranked
                .iter()
                .map(|o| (o.share.low, o.share.high))
                .collect::<Vec<_>>(),
        );
        let ordered = ranked
            .into_iter()
            .zip(ranks.into_iter().map(Some))
            .chain(unranked.into_iter().zip(std::iter::repeat(None)));
        for (o, rank) in ordered {
            let sufficient = rank.is_some();
            let (as_name, country) = names.get(&o.asn).cloned().unwrap_or_default();
            let rtts: Vec<Vec<f64>> = latest
                .iter()
                .filter(|(k, _)| {
                    k.2 == MeasurementKind::Ping
                        && k.3 == Family::V6
                        && asn_of.get(&k.0).copied().unwrap_or(0) == o.asn
                })
                .fold(BTreeMap::<&ProbeId, Vec<f64>>::new(), |mut m, (k, r)| {
                    if let Outcome::Ping(p) = &r.result.outcome
                        && let Some(rtt) = p.min_rtt()
                    {
                        m.entry(&k.0).or_default().push(rtt.as_secs_f64() * 1000.0);
                    }
                    m
                })
                .into_values()
                .collect();
            operators.push(OperatorReport {
                rank: rank.map(|r: RankRange| r.best),
                rank_range: rank,
                insufficient_data: !sufficient,
                asn: o.asn,
                as_name,
                country,
                probes: record
                    .probes
                    .iter()
                    .filter(|p| p.asn.unwrap_or(0) == o.asn)
                    .count(),
                reporting_probes: reporting.get(&o.asn).map_or(0, BTreeSet::len),
                v6_reachability: sufficient.then_some(o.share),
                http_v6: http_by_asn.get(&o.asn).cloned().filter(|_| sufficient),
                median_v6_rtt_ms: rollup::median_of_medians(&rtts).filter(|_| sufficient),
                declared: record
                    .declared
                    .iter()
                    .filter(|d| d.asn == o.asn)
                    .cloned()
                    .collect(),
            });
        }
    }
    let measured: BTreeSet<u32> = operators.iter().map(|o| o.asn).collect();
    let newest = cells.iter().map(|c| c.latest.result.started_at).max();
    let period = newest.map(|to| Period {
        from: record.spec.schedule.start.max(record.created_at).min(to),
        to,
    });
    Report {
        methodology_version: METHODOLOGY_VERSION,
        methodology: METHODOLOGY,
        generated_at: now,
        min_probes: rule.min_probes,
        publisher: crate::config::Publisher::default(),
        period,
        dates: HumanDates {
            generated: human_utc(now),
            created: human_utc(record.created_at),
            ended: record.ended_at.map(human_utc),
            published: record.published_at.map(human_utc),
            period_from: period.map(|p| human_utc(p.from)),
            period_to: period.map(|p| human_utc(p.to)),
        },
        campaign: CampaignInfo {
            id: record.id,
            name: record.spec.name.clone(),
            description: record.spec.description.clone(),
            owner: record.owner.clone(),
            status: record.status,
            status_reason: record.status_reason.clone(),
            created_at: record.created_at,
            ended_at: record.ended_at,
            published_at: record.published_at,
            spec: record.spec.clone(),
            spec_text: record.spec_text.clone(),
        },
        progress,
        targets,
        operators,
        declared_unmatched: record
            .declared
            .iter()
            .filter(|d| !measured.contains(&d.asn))
            .cloned()
            .collect(),
        readiness: super::readiness::from_cells(
            &record.spec.targets,
            &record.spec.entities,
            cells,
            |cell| readiness_target.get(&cell.task_id).copied(),
            !readiness_target.is_empty(),
        ),
    }
}

/// A share for the CSV, or "insufficient data" with the probes behind it.
fn share_text(p: Option<&Proportion>, probes: usize) -> String {
    p.map_or_else(
        || format!("insufficient data (n={probes})"),
        |p| num(p.share),
    )
}

fn num(v: f64) -> String {
    format!("{v:.4}")
}

/// One CSV table in long form: `section,target,asn,as_name,country,metric,value,successes,n,
/// ci_low,ci_high,source`. The first rows carry the methodology version and the spec.
pub fn to_csv(report: &Report) -> String {
    let mut out = String::from(
        "section,target,asn,as_name,country,metric,value,successes,n,ci_low,ci_high,source\n",
    );
    let mut row = |section: &str,
                   target: &str,
                   asn: Option<u32>,
                   as_name: Option<&str>,
                   country: Option<&str>,
                   metric: &str,
                   value: String,
                   p: Option<&Proportion>,
                   source: &str| {
        let (s, n, lo, hi) = p.map_or_else(Default::default, |p| {
            (num(p.successes), num(p.n), num(p.low), num(p.high))
        });
        let _ = writeln!(
            out,
            "{section},{},{},{},{},{metric},{},{s},{n},{lo},{hi},{}",
            csv_field(target),
            asn.map(|a| a.to_string()).unwrap_or_default(),
            csv_field(as_name.unwrap_or("")),
            country.unwrap_or(""),
            csv_field(&value),
            csv_field(source),
        );
    };
    let spec = serde_json::to_string(&report.campaign.spec).unwrap_or_default();
    let d = &report.dates;
    // The report's own facts, in this order; absent dates are left out.
    let meta: [(&str, Option<String>); 12] = [
        (
            "methodology_version",
            Some(report.methodology_version.into()),
        ),
        (
            "campaign",
            Some(format!("{} ({})", report.campaign.name, report.campaign.id)),
        ),
        ("campaign_spec", Some(spec)),
        ("generated_at_us", Some(report.generated_at.0.to_string())),
        ("generated", Some(d.generated.clone())),
        ("campaign_created", Some(d.created.clone())),
        ("campaign_ended", d.ended.clone()),
        ("campaign_published", d.published.clone()),
        ("period_from", d.period_from.clone()),
        ("period_to", d.period_to.clone()),
        ("publisher", report.publisher.name.clone()),
        ("min_probes", Some(report.min_probes.to_string())),
    ];
    for (metric, value) in meta {
        if let Some(value) = value {
            row("meta", "", None, None, None, metric, value, None, "");
        }
    }
    for t in &report.targets {
        for (metric, p) in [("aaaa", &t.aaaa), ("a", &t.a)] {
            let source = match p.source {
                Source::Dns => "measured (DNS, probes' resolvers)",
                Source::Address => "address literal",
                Source::Resolved => "resolved by other measurements",
                Source::None => "",
            };
            row(
                "target",
                &t.target,
                None,
                None,
                None,
                &format!("{metric}_published"),
                p.verdict.as_str().into(),
                None,
                source,
            );
            if p.source != Source::Dns {
                continue;
            }
            for (votes, count) in [
                ("yes", p.yes),
                ("no", p.no),
                ("inconclusive", p.inconclusive),
                ("excluded", p.excluded.len() as u64),
            ] {
                row(
                    "target",
                    &t.target,
                    None,
                    None,
                    None,
                    &format!("{metric}_probes_{votes}"),
                    count.to_string(),
                    None,
                    "measured",
                );
            }
            for e in &p.excluded {
                row(
                    "target_excluded",
                    &t.target,
                    None,
                    None,
                    None,
                    &format!("{metric}_excluded_probe"),
                    e.probe.to_string(),
                    None,
                    &e.reason,
                );
            }
        }
        for (metric, figure) in [
            ("reachable_v6", &t.reachable_v6),
            ("http_v6_works", &t.http_v6_works),
        ] {
            if let Some(f) = figure {
                row(
                    "target",
                    &t.target,
                    None,
                    None,
                    None,
                    metric,
                    share_text(f.overall.as_ref(), f.probes),
                    f.overall.as_ref(),
                    "measured, operator-balanced",
                );
                for o in &f.operators {
                    row(
                        "target_operator",
                        &t.target,
                        Some(o.asn),
                        o.as_name.as_deref(),
                        o.country.as_deref(),
                        metric,
                        share_text(o.share.as_ref(), o.probes),
                        o.share.as_ref(),
                        "measured",
                    );
                }
            }
        }
        for (metric, c) in [
            ("same_certificate_v4_v6", &t.same_certificate_v4_v6),
            ("same_content_v4_v6", &t.same_content_v4_v6),
        ] {
            if let Some(c) = c {
                let value = c.share.as_ref().map(|p| num(p.share)).unwrap_or_default();
                row(
                    "target",
                    &t.target,
                    None,
                    None,
                    None,
                    metric,
                    value,
                    c.share.as_ref(),
                    "measured",
                );
            }
        }
    }
    for o in &report.operators {
        let (name, cc) = (o.as_name.as_deref(), o.country.as_deref());
        row(
            "operator",
            "",
            Some(o.asn),
            name,
            cc,
            "rank",
            o.rank_range
                .map(|r| r.to_string())
                .unwrap_or_else(|| "insufficient data".into()),
            None,
            "measured, by interval",
        );
        row(
            "operator",
            "",
            Some(o.asn),
            name,
            cc,
            "probes",
            o.probes.to_string(),
            None,
            "measured",
        );
        row(
            "operator",
            "",
            Some(o.asn),
            name,
            cc,
            "v6_reachability",
            share_text(o.v6_reachability.as_ref(), o.reporting_probes),
            o.v6_reachability.as_ref(),
            "measured",
        );
        if let Some(h) = &o.http_v6 {
            row(
                "operator",
                "",
                Some(o.asn),
                name,
                cc,
                "http_v6",
                num(h.share),
                Some(h),
                "measured",
            );
        }
        if let Some(rtt) = o.median_v6_rtt_ms {
            row(
                "operator",
                "",
                Some(o.asn),
                name,
                cc,
                "median_v6_rtt_ms",
                format!("{rtt:.3}"),
                None,
                "measured",
            );
        }
        for d in &o.declared {
            row(
                "operator",
                "",
                Some(o.asn),
                name,
                cc,
                &d.metric,
                d.value.to_string(),
                None,
                &format!("declared {} ({})", d.as_of, d.source),
            );
        }
    }
    for d in &report.declared_unmatched {
        row(
            "operator",
            "",
            Some(d.asn),
            None,
            None,
            &d.metric,
            d.value.to_string(),
            None,
            &format!("declared {} ({})", d.as_of, d.source),
        );
    }
    if let Some(readiness) = &report.readiness {
        out.push_str(&super::readiness::csv_rows(readiness));
    }
    out
}

/// A share with its interval and sample size: `44.0 % [21.3–69.2] n=3` in English.
fn pct(l: &Language, p: &Proportion) -> String {
    let n = if p.n.fract() == 0.0 {
        l.number(p.n, 0)
    } else {
        l.number(p.n, 1)
    };
    format!(
        "{} <small>[{}–{}] {}</small>",
        esc(&l.percent(p.share, 1)),
        l.number(p.low * 100.0, 1),
        l.number(p.high * 100.0, 1),
        esc(&l.fmt("report.sample_n", &[("n", &n)]))
    )
}

/// A share with its interval, or "insufficient data" with the probes behind it.
fn pct_or_insufficient(l: &Language, p: Option<&Proportion>, probes: usize) -> String {
    p.map_or_else(
        || {
            format!(
                "{} <small>{}</small>",
                esc(l.t("report.insufficient")),
                esc(&l.fmt(
                    "report.sample_n",
                    &[("n", &l.plural("report.probes", probes as u64, &[]))]
                ))
            )
        },
        |p| pct(l, p),
    )
}

fn verdict(l: &Language, v: Verdict) -> &str {
    l.t(match v {
        Verdict::Yes => "report.verdict_yes",
        Verdict::No => "report.verdict_no",
        Verdict::Inconclusive => "report.verdict_inconclusive",
        Verdict::NotMeasured => "report.verdict_not_measured",
    })
}

/// A presence figure's table cell: the verdict, and the probes' votes when DNS made it.
fn presence_cell(l: &Language, p: &Presence) -> String {
    let word = esc(verdict(l, p.verdict));
    match p.source {
        Source::Dns => format!(
            "{word} <small>{}</small>",
            esc(&l.fmt(
                "report.votes",
                &[
                    ("yes", &l.integer(p.yes)),
                    ("no", &l.integer(p.no)),
                    ("inconclusive", &l.integer(p.inconclusive)),
                    ("excluded", &l.integer(p.excluded.len() as u64)),
                ]
            ))
        ),
        Source::Resolved => format!("{word} <small>{}</small>", esc(l.t("report.resolved"))),
        Source::Address | Source::None => word,
    }
}

/// `n` and its noun, singular or plural: "1 probe", "2 probes" (English; [`Language::plural`]
/// for the report's language).
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// An RTT in milliseconds with the precision it deserves: one decimal under 10 ms, whole
/// milliseconds above (sketch medians are within 1 %, so more digits would be noise).
pub fn rtt_ms(ms: f64) -> String {
    rtt_ms_in(crate::i18n::builtin().default_language(), ms)
}

fn rtt_ms_in(l: &Language, ms: f64) -> String {
    let decimals = if ms < 10.0 { 1 } else { 0 };
    l.fmt("number.ms", &[("n", &l.number(ms, decimals))])
}

/// Attribution of the data behind every figure, in the footer of each HTML report: the
/// language's `report.attribution` with its `{dbip}`, `{cc_by}` and `{natural_earth}` links.
fn attribution(l: &Language) -> String {
    esc(l.t("report.attribution"))
        .replace("{dbip}", "<a href=\"https://db-ip.com\">DB-IP</a>")
        .replace(
            "{cc_by}",
            "<a href=\"https://creativecommons.org/licenses/by/4.0/\">CC BY 4.0</a>",
        )
        .replace(
            "{natural_earth}",
            "<a href=\"https://www.naturalearthdata.com\">Natural Earth</a>",
        )
}

/// One row of a [`share_chart`]: a share with its interval, or insufficient data (`None`).
struct ChartRow {
    label: String,
    share: Option<Proportion>,
    probes: usize,
}

const CHART_LABEL_W: usize = 210;
const CHART_PLOT_W: usize = 300;
const CHART_ROW_H: usize = 22;

/// An inline SVG chart of shares with their 95 % intervals as whiskers: no script, no
/// external resource, black and grey strokes that survive a monochrome printer. Rows under
/// the minimum sample are drawn as a dashed empty box saying so, never as a bar. The plot
/// reads left to right in every language (`direction="ltr"`), as the pages' charts do.
fn share_chart(l: &Language, title: &str, rows: &[ChartRow]) -> String {
    let x0 = CHART_LABEL_W;
    let x = |share: f64| x0 as f64 + share.clamp(0.0, 1.0) * CHART_PLOT_W as f64;
    let top = 8;
    let height = top + rows.len() * CHART_ROW_H + 24;
    let width = CHART_LABEL_W + CHART_PLOT_W + 150;
    let mut s = String::new();
    let _ = write!(
        s,
        "<figure class=\"chart\"><svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" \
         viewBox=\"0 0 {width} {height}\" width=\"100%\" style=\"max-width:{width}px\" \
         font-family=\"sans-serif\" font-size=\"11\" direction=\"ltr\"><title>{}</title>",
        esc(title)
    );
    let axis_y = top + rows.len() * CHART_ROW_H;
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let tx = x(tick);
        let _ = write!(
            s,
            "<line x1=\"{tx:.1}\" y1=\"{top}\" x2=\"{tx:.1}\" y2=\"{axis_y}\" stroke=\"#ccc\"/>\
             <text x=\"{tx:.1}\" y=\"{}\" text-anchor=\"middle\" fill=\"#333\">{}</text>",
            axis_y + 14,
            esc(&l.percent(tick, 0))
        );
    }
    for (i, row) in rows.iter().enumerate() {
        let y = top + i * CHART_ROW_H;
        let mid = y + CHART_ROW_H / 2;
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#111\">{}</text>",
            x0 - 6,
            mid + 4,
            esc(&row.label)
        );
        match &row.share {
            Some(p) => {
                let (lo, hi, at) = (x(p.low), x(p.high), x(p.share));
                let _ = write!(
                    s,
                    "<rect class=\"bar\" x=\"{x0}\" y=\"{}\" width=\"{:.1}\" height=\"{}\" \
                     fill=\"#9bb7d4\"/>\
                     <line class=\"whisker\" x1=\"{lo:.1}\" y1=\"{mid}\" x2=\"{hi:.1}\" y2=\"{mid}\" stroke=\"#111\" stroke-width=\"1.5\"/>\
                     <line x1=\"{lo:.1}\" y1=\"{}\" x2=\"{lo:.1}\" y2=\"{}\" stroke=\"#111\" stroke-width=\"1.5\"/>\
                     <line x1=\"{hi:.1}\" y1=\"{}\" x2=\"{hi:.1}\" y2=\"{}\" stroke=\"#111\" stroke-width=\"1.5\"/>\
                     <circle cx=\"{at:.1}\" cy=\"{mid}\" r=\"3\" fill=\"#111\"/>\
                     <text x=\"{}\" y=\"{}\" fill=\"#111\">{} [{}–{}]</text>",
                    y + 5,
                    at - x0 as f64,
                    CHART_ROW_H - 10,
                    mid - 5,
                    mid + 5,
                    mid - 5,
                    mid + 5,
                    x0 + CHART_PLOT_W + 8,
                    mid + 4,
                    esc(&l.percent(p.share, 1)),
                    l.number(p.low * 100.0, 1),
                    l.number(p.high * 100.0, 1),
                );
            }
            None => {
                let _ = write!(
                    s,
                    "<rect class=\"insufficient\" x=\"{x0}\" y=\"{}\" width=\"{CHART_PLOT_W}\" \
                     height=\"{}\" fill=\"none\" stroke=\"#777\" stroke-dasharray=\"4 3\"/>\
                     <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
                    y + 4,
                    CHART_ROW_H - 8,
                    x0 + CHART_PLOT_W / 2,
                    mid + 4,
                    esc(&l.fmt(
                        "report.chart_insufficient",
                        &[("probes", &l.plural("report.probes", row.probes as u64, &[]))]
                    )),
                );
            }
        }
    }
    let _ = write!(
        s,
        "</svg><figcaption>{}</figcaption></figure>",
        esc(&l.fmt("report.chart_caption", &[("title", title)]))
    );
    s
}

fn operator_label(asn: u32, as_name: Option<&str>, country: Option<&str>) -> String {
    let mut label = format!("AS{asn}");
    for part in [as_name, country].into_iter().flatten() {
        label.push(' ');
        label.push_str(part);
    }
    // Long AS names would run into the plot.
    if label.chars().count() > 34 {
        label = label.chars().take(33).collect::<String>() + "…";
    }
    label
}

/// A table row saying there is nothing to show, spanning `columns`.
fn no_data_row(l: &Language, columns: usize, what_key: &str) -> String {
    format!(
        "<tr class=\"no-data\"><td colspan=\"{columns}\">{}</td></tr>",
        esc(&l.fmt("report.no_data_row", &[("what", l.t(what_key))]))
    )
}

/// Logical properties (`start`, `inline-start`) so the same sheet lays out right to left.
const STYLE: &str = "body{font:14px/1.45 sans-serif;max-width:62em;margin:2em auto;padding:0 1em;color:#111}\
header.publisher{display:flex;align-items:center;gap:1em;border-bottom:2px solid #333;padding-bottom:.5em}\
header.publisher img{max-height:56px;max-width:200px}header.publisher .name{font-size:1.2em;font-weight:bold}\
table{border-collapse:collapse;width:100%;margin:1em 0}th,td{border:1px solid #999;padding:.3em .5em;text-align:start;vertical-align:top}\
th{background:#eee}td.num{text-align:end;font-variant-numeric:tabular-nums}small{color:#555}\
tr.no-data td{font-style:italic;color:#555}dl.facts{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}\
dl.facts dt{font-weight:bold}dl.facts dd{margin:0}figure.chart{margin:1em 0}figcaption{font-size:12px;color:#555}\
pre{white-space:pre-wrap;background:#f6f6f6;padding:.5em;font-size:12px;direction:ltr;text-align:left}footer{margin-top:2em;border-top:1px solid #999;font-size:12px;color:#333}\
.ltr{direction:ltr;unicode-bidi:isolate}\
@page{size:A4;margin:18mm 15mm}\
@media print{body{margin:0;max-width:none;font-size:11pt;padding:0}a{color:#111;text-decoration:none}\
h2,h3{break-after:avoid;page-break-after:avoid}tr,figure{break-inside:avoid;page-break-inside:avoid}\
th{background:#eee;-webkit-print-color-adjust:exact;print-color-adjust:exact}\
svg .bar{-webkit-print-color-adjust:exact;print-color-adjust:exact}}\
@media screen and (max-width:640px){body{margin:1em auto}table{display:block;overflow-x:auto}}";

/// The report in English: [`to_html_in`].
pub fn to_html(report: &Report) -> String {
    to_html_in(report, crate::i18n::builtin().default_language())
}

/// A self-contained printable page (no scripts, no external resources but the publisher's
/// logo when configured) in `l`: dates in words, charts in inline SVG, attribution in the
/// footer. Numbers and dates are formatted by [`Language`] (its digits and decimal sign, the
/// month names of its file), deterministically, so the same report prints the same. The
/// campaign's own texts (name, description, spec), operators' names and the methodology
/// text stay as written.
pub fn to_html_in(report: &Report, l: &Language) -> String {
    let c = &report.campaign;
    let date = |t: UnixMicros| esc(&l.date_time(t));
    // Ids stay in ASCII digits in every language: they are typed into URLs and the CLI.
    let probes = |n: u64| l.plural("report.probes", n, &[]);
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"{lang}\" dir=\"{dir}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body>",
        lang = esc(&l.code),
        dir = l.dir.as_str(),
        title = esc(&l.fmt("report.title", &[("name", &c.name)])),
    );
    let publisher = &report.publisher;
    if publisher.name.is_some() || publisher.logo_url.is_some() {
        h.push_str("<header class=\"publisher\">");
        if let Some(logo) = &publisher.logo_url {
            let _ = write!(
                h,
                "<img src=\"{}\" alt=\"{}\">",
                esc(logo),
                esc(publisher.name.as_deref().unwrap_or(l.t("report.logo")))
            );
        }
        if let Some(name) = &publisher.name {
            let _ = write!(h, "<span class=\"name\">{}</span>", esc(name));
        }
        h.push_str("</header>");
    }
    let period = match &report.period {
        Some(p) => esc(&l.fmt(
            "report.period",
            &[("from", &l.date_time(p.from)), ("to", &l.date_time(p.to))],
        )),
        None => esc(l.t("report.no_results_yet")),
    };
    let status_key = format!("report.status_{}", c.status.as_str());
    let _ = write!(
        h,
        "<h1>{name}</h1><p>{desc}</p><dl class=\"facts\">\
         <dt>{t_campaign}</dt><dd>{commissioned}</dd>\
         <dt>{t_status}</dt><dd>{status}{reason}</dd>\
         <dt>{t_period}</dt><dd>{period}</dd>\
         <dt>{t_created}</dt><dd>{created}</dd>\
         <dt>{t_ended}</dt><dd>{ended}</dd>{published}\
         <dt>{t_generated}</dt><dd>{generated}</dd>\
         <dt>{t_methodology}</dt><dd><b>{mv}</b></dd>\
         <dt>{t_min}</dt><dd>{min}</dd></dl>",
        name = esc(&c.name),
        desc = esc(&c.description),
        t_campaign = esc(l.t("report.fact_campaign")),
        commissioned = esc(&l.fmt(
            "report.commissioned",
            &[("id", &c.id.to_string()), ("owner", &c.owner)]
        )),
        t_status = esc(l.t("report.fact_status")),
        status = esc(l.t(&status_key)),
        reason = c
            .status_reason
            .as_deref()
            .map(|r| format!(" ({})", esc(r)))
            .unwrap_or_default(),
        t_period = esc(l.t("report.fact_period")),
        t_created = esc(l.t("report.fact_created")),
        created = date(c.created_at),
        t_ended = esc(l.t("report.fact_ended")),
        ended = c.ended_at.map_or_else(|| esc(l.t("report.not_yet")), date),
        published = c
            .published_at
            .map(|p| format!(
                "<dt>{}</dt><dd>{}</dd>",
                esc(l.t("report.fact_published")),
                date(p)
            ))
            .unwrap_or_default(),
        t_generated = esc(l.t("report.fact_generated")),
        generated = date(report.generated_at),
        t_methodology = esc(l.t("report.fact_methodology")),
        mv = report.methodology_version,
        t_min = esc(l.t("report.fact_min_sample")),
        min = esc(&probes(report.min_probes as u64)),
    );
    let p = &report.progress;
    let failures = if p.failures.is_empty() {
        l.t("report.none").to_owned()
    } else {
        p.failures
            .iter()
            .map(|(class, n)| format!("{} {}", class, l.integer(*n)))
            .collect::<Vec<_>>()
            .join(l.t("common.list_separator"))
    };
    let _ = write!(
        h,
        "<h2>{}</h2><p>{}</p>",
        esc(l.t("report.progress")),
        esc(&l.fmt(
            "report.progress_text",
            &[
                (
                    "assigned",
                    &l.plural("report.probes_assigned", p.probes_assigned as u64, &[])
                ),
                ("connected", &l.integer(p.probes_connected as u64)),
                ("reporting", &l.integer(p.probes_reporting as u64)),
                ("tasks", &l.plural("report.tasks", p.tasks as u64, &[])),
                (
                    "results",
                    &l.plural(
                        "report.results_in",
                        p.results_expected,
                        &[("in", &l.integer(p.results_in))]
                    )
                ),
                ("reached", &l.integer(p.reached)),
                ("failures", &failures),
            ]
        )),
    );
    let th = |keys: &[&str]| -> String {
        keys.iter()
            .map(|k| format!("<th>{}</th>", esc(l.t(k))))
            .collect()
    };
    if let Some(readiness) = &report.readiness {
        h.push_str(&super::readiness::to_html(readiness, l));
    }
    let _ = write!(
        h,
        "<h2>{}</h2><table><tr>{}</tr>",
        esc(l.t("report.targets")),
        th(&[
            "report.col_target",
            "report.col_aaaa",
            "report.col_a",
            "report.col_reachable",
            "report.col_http",
            "report.col_same_cert",
            "report.col_same_content",
        ])
    );
    let no_data = || esc(l.t("report.no_data"));
    let cmp = |c: &Option<Comparison>| {
        c.as_ref()
            .map(|c| {
                esc(&l.fmt(
                    "report.same_of",
                    &[
                        ("same", &l.integer(c.same)),
                        ("probes", &probes(c.compared)),
                    ],
                ))
            })
            .unwrap_or_else(no_data)
    };
    if report.targets.is_empty() {
        h.push_str(&no_data_row(l, 7, "report.none_targets"));
    }
    for t in &report.targets {
        let fig = |f: &Option<ShareFigure>| {
            f.as_ref()
                .map(|f| pct_or_insufficient(l, f.overall.as_ref(), f.probes))
                .unwrap_or_else(no_data)
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&t.target),
            presence_cell(l, &t.aaaa),
            presence_cell(l, &t.a),
            fig(&t.reachable_v6),
            fig(&t.http_v6_works),
            cmp(&t.same_certificate_v4_v6),
            cmp(&t.same_content_v4_v6),
        );
    }
    h.push_str("</table>");
    let excluded: Vec<String> = report
        .targets
        .iter()
        .flat_map(|t| {
            [("AAAA", &t.aaaa), ("A", &t.a)]
                .into_iter()
                .flat_map(move |(ty, p)| {
                    p.excluded.iter().map(move |e| {
                        format!(
                            "<tr><td>{}</td><td>{ty}</td><td>{}</td><td>{}</td></tr>",
                            esc(&t.target),
                            e.probe,
                            esc(&e.reason)
                        )
                    })
                })
        })
        .collect();
    if !excluded.is_empty() {
        let _ = write!(
            h,
            "<h3>{}</h3><table><tr>{}</tr>{}</table>",
            esc(l.t("report.excluded")),
            th(&[
                "report.col_target",
                "report.col_record",
                "report.col_probe",
                "report.col_reason"
            ]),
            excluded.concat()
        );
    }
    let _ = write!(h, "<h3>{}</h3>", esc(l.t("report.reachable_per_operator")));
    for t in &report.targets {
        let Some(f) = &t.reachable_v6 else {
            continue;
        };
        let mut rows = vec![ChartRow {
            label: l.t("report.all_operators").to_owned(),
            share: f.overall.clone(),
            probes: f.probes,
        }];
        rows.extend(f.operators.iter().map(|o| ChartRow {
            label: operator_label(o.asn, o.as_name.as_deref(), o.country.as_deref()),
            share: o.share.clone(),
            probes: o.probes,
        }));
        h.push_str(&share_chart(
            l,
            &l.fmt("report.chart_reachable", &[("target", &t.target)]),
            &rows,
        ));
    }
    let _ = write!(
        h,
        "<table><tr>{}</tr>",
        th(&[
            "report.col_target",
            "report.col_operator",
            "report.col_share"
        ])
    );
    let mut any = false;
    for t in &report.targets {
        for o in t.reachable_v6.iter().flat_map(|f| &f.operators) {
            any = true;
            let _ = write!(
                h,
                "<tr><td>{}</td><td>AS{} {} {}</td><td>{}</td></tr>",
                esc(&t.target),
                o.asn,
                esc(o.as_name.as_deref().unwrap_or("")),
                esc(o.country.as_deref().unwrap_or("")),
                pct_or_insufficient(l, o.share.as_ref(), o.probes)
            );
        }
    }
    if !any {
        h.push_str(&no_data_row(l, 3, "report.none_reachability"));
    }
    let _ = write!(h, "</table><h2>{}</h2>", esc(l.t("report.ranking")));
    if !report.operators.is_empty() {
        let rows: Vec<ChartRow> = report
            .operators
            .iter()
            .map(|o| ChartRow {
                label: operator_label(o.asn, o.as_name.as_deref(), o.country.as_deref()),
                share: o.v6_reachability.clone(),
                probes: o.reporting_probes,
            })
            .collect();
        h.push_str(&share_chart(l, l.t("report.chart_ranking"), &rows));
    }
    let _ = write!(
        h,
        "<table><tr>{}</tr>",
        th(&[
            "report.col_rank",
            "report.col_operator",
            "report.col_probes",
            "report.col_reachability",
            "report.col_http_v6",
            "report.col_rtt",
            "report.col_declared",
        ])
    );
    if report.operators.is_empty() {
        h.push_str(&no_data_row(l, 7, "report.none_operators"));
    }
    for o in &report.operators {
        let declared: Vec<String> = o
            .declared
            .iter()
            .map(|d| {
                format!(
                    "{} = {} ({}, {})",
                    esc(&d.metric),
                    d.value,
                    esc(&d.as_of),
                    esc(&d.source)
                )
            })
            .collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>AS{} {} {}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            o.rank_range
                .map(|r| l.localise_digits(&r.to_string()))
                .unwrap_or_else(|| "—".into()),
            o.asn,
            esc(o.as_name.as_deref().unwrap_or("")),
            esc(o.country.as_deref().unwrap_or("")),
            l.integer(o.probes as u64),
            pct_or_insufficient(l, o.v6_reachability.as_ref(), o.reporting_probes),
            o.http_v6
                .as_ref()
                .map(|p| pct(l, p))
                .unwrap_or_else(no_data),
            o.median_v6_rtt_ms
                .map(|ms| esc(&rtt_ms_in(l, ms)))
                .unwrap_or_else(no_data),
            if declared.is_empty() {
                "—".into()
            } else {
                declared.join("<br>")
            },
        );
    }
    h.push_str("</table>");
    if !report.declared_unmatched.is_empty() {
        let _ = write!(
            h,
            "<h3>{}</h3><table><tr>{}</tr>",
            esc(l.t("report.declared_unmatched")),
            th(&["report.col_operator", "report.col_declared"])
        );
        for d in &report.declared_unmatched {
            let _ = write!(
                h,
                "<tr><td>AS{}</td><td>{} = {} ({}, {})</td></tr>",
                d.asn,
                esc(&d.metric),
                d.value,
                esc(&d.as_of),
                esc(&d.source)
            );
        }
        h.push_str("</table>");
    }
    let _ = write!(
        h,
        "<h2>{}</h2><p>{}</p><p>{}</p>\
         <h2>{}</h2><pre>{}</pre><footer><p>{}</p><p>{}</p></footer></body></html>",
        esc(&l.fmt(
            "report.methodology",
            &[("version", report.methodology_version)]
        )),
        esc(report.methodology).replace('\n', "</p><p>"),
        esc(&l.fmt(
            "report.method_notes",
            &[("min", &probes(report.min_probes as u64))]
        )),
        esc(l.t("report.spec")),
        esc(&c.spec_text),
        attribution(l),
        esc(&l.fmt(
            "report.footer",
            &[
                ("id", &c.id.to_string()),
                ("time", &l.date_time(report.generated_at)),
                ("version", report.methodology_version),
            ]
        )),
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::{CampaignProbe, CampaignRecord, CampaignStatus, CampaignTask, spec};
    use crate::testing::ping_v6;
    use sixmap_shared::TaskId;
    use sixmap_shared::measurement::{ConnectOutcome, ErrorClass, HttpResult, MeasurementError};
    use sixmap_shared::prefixes::Enrichment;
    use std::time::Duration;

    const NOW: UnixMicros = UnixMicros(1_790_000_000_000_000);

    fn record() -> CampaignRecord {
        let text = "name = \"r\"\ntargets = [\"a.example\", \"none.example\"]\n\
            [[measurements]]\nkind = \"ping\"\ntimeout_ms = 2000\n\
            [[measurements]]\nkind = \"http\"\nfamily = \"both\"\nurl = \"http://{target}/\"\ntimeout_ms = 2000\n\
            [[measurements]]\nkind = \"dns\"\nquery_name = \"{target}\"\nquery_type = \"AAAA\"\nsystem_resolver = true\ntimeout_ms = 2000\n\
            [[measurements]]\nkind = \"dns\"\nquery_name = \"{target}\"\nquery_type = \"A\"\nsystem_resolver = true\ntimeout_ms = 2000\n";
        let (spec, tasks) =
            spec::validate(&spec::parse("toml", text).unwrap(), NOW, false).unwrap();
        let probe = |n: u8, asn| CampaignProbe {
            probe: format!("{n:016x}").parse().unwrap(),
            asn: Some(asn),
            as_name: None,
            country: Some("XA".into()),
            assigned_at: NOW,
            nat64_prefix: None,
        };
        CampaignRecord {
            id: 1,
            owner: "o".into(),
            created_at: NOW,
            status: CampaignStatus::Active,
            status_reason: None,
            ended_at: None,
            spec,
            spec_text: text.into(),
            tasks: tasks
                .into_iter()
                .enumerate()
                .map(|(i, task)| CampaignTask {
                    task_id: TaskId::new(i as u64 + 1).unwrap(),
                    task,
                })
                .collect(),
            probes: vec![probe(1, 64500), probe(2, 64500), probe(3, 64501)],
            skipped_over_budget: Default::default(),
            declared: Vec::new(),
            published_at: None,
        }
    }

    /// A result of `task` (1-based, in the record's order) from probe `n`.
    fn result(n: u8, seq: u64, task: u64, outcome: Outcome, v6: bool) -> StoredResult {
        let mut r = ping_v6(
            format!("{n:016x}").parse().unwrap(),
            seq,
            UnixMicros(NOW.0 + seq as i64),
            Some(Duration::from_millis(10)),
            Enrichment::default(),
        );
        r.result.task_id = TaskId::new(task).unwrap();
        r.result.outcome = outcome;
        if !v6 {
            r.result.destination = Some("192.0.2.1".parse().unwrap());
            r.result.family_requested = Family::V4;
            r.result.family_used = Some(Family::V4);
        }
        r
    }

    fn http(status: Option<u16>, body: u64) -> Outcome {
        Outcome::Http(HttpResult {
            connect: ConnectOutcome::Connected,
            status,
            http_version: None,
            dns_ns: None,
            connect_ns: None,
            tls_ns: None,
            first_byte_ns: None,
            total_ns: 1,
            body_bytes: body,
            body_truncated: false,
            failure: None,
        })
    }

    #[test]
    fn figures_follow_the_latest_result_per_probe() {
        let rec = record();
        // Tasks: 1 ping a, 2 ping none, 3 http a v6, 4 http a v4, 5 http none v6, 6 http none v4.
        let labels: Vec<_> = rec
            .tasks
            .iter()
            .map(|t| format!("{} {}", t.task.target, task_label(&t.task.spec)))
            .collect();
        assert_eq!(
            labels[..4],
            [
                "a.example ping v6",
                "none.example ping v6",
                "a.example http v6",
                "a.example http v4"
            ]
        );
        let lost = || {
            ping_v6(
                format!("{:016x}", 3).parse().unwrap(),
                9,
                NOW,
                None,
                Enrichment::default(),
            )
            .result
            .outcome
        };
        let no_name = || {
            Outcome::Failed(MeasurementError {
                class: ErrorClass::Resolution,
                message: "no AAAA".into(),
            })
        };
        let mut results = vec![
            // Probe 1 first failed, then reached a.example: only the latest counts.
            result(1, 1, 1, lost(), true),
            result(
                1,
                2,
                1,
                ping_v6(
                    format!("{:016x}", 1).parse().unwrap(),
                    2,
                    NOW,
                    Some(Duration::from_millis(10)),
                    Enrichment::default(),
                )
                .result
                .outcome,
                true,
            ),
            result(
                2,
                1,
                1,
                ping_v6(
                    format!("{:016x}", 2).parse().unwrap(),
                    1,
                    NOW,
                    Some(Duration::from_millis(30)),
                    Enrichment::default(),
                )
                .result
                .outcome,
                true,
            ),
            result(3, 1, 1, lost(), true),
            result(1, 3, 3, http(Some(200), 100), true),
            result(1, 4, 4, http(Some(200), 100), false),
            result(2, 2, 3, http(Some(200), 100), true),
            result(2, 3, 4, http(Some(200), 99), false),
            result(3, 2, 3, http(None, 0), true),
        ];
        for n in 1..=3u8 {
            let mut r = result(n, 10, 2, no_name(), true);
            r.result.destination = None;
            results.push(r);
        }
        // DNS (tasks 7 AAAA a, 8 AAAA none, 9 A a, 10 A none). Probe 1's resolver works: a has
        // both records, none only an A. Probe 2's resolver fails everything (SERVFAIL, then a
        // timeout). Probe 3 asked none's AAAA only and got NXDOMAIN, unconfirmed by an A answer.
        let dns = |ty: u16, rcode: Option<u16>, records: &[u16]| {
            Outcome::Dns(sixmap_shared::measurement::DnsResult {
                query_name: String::new(),
                query_type: ty,
                transport_used: sixmap_shared::measurement::DnsTransport::Udp,
                rtt_ns: rcode.map(|_| 1),
                response: rcode.map(|rcode| sixmap_shared::measurement::DnsResponse {
                    rcode,
                    flags: 0,
                    answers: records
                        .iter()
                        .map(|t| sixmap_shared::measurement::DnsRecord {
                            name: String::new(),
                            record_type: *t,
                            ttl: 1,
                            data: String::new(),
                        })
                        .collect(),
                }),
                failure: rcode.is_none().then(|| "timeout".into()),
                failure_class: None,
                session: None,
            })
        };
        results.extend([
            result(1, 20, 7, dns(28, Some(0), &[28]), true),
            result(1, 21, 9, dns(1, Some(0), &[1]), true),
            result(1, 22, 8, dns(28, Some(0), &[]), true),
            result(1, 23, 10, dns(1, Some(0), &[1]), true),
            result(2, 20, 7, dns(28, Some(2), &[]), true),
            result(2, 21, 9, dns(1, None, &[]), true),
            result(2, 22, 8, dns(28, Some(2), &[]), true),
            result(2, 23, 10, dns(1, None, &[]), true),
            result(3, 22, 8, dns(28, Some(3), &[]), true),
        ]);
        let progress = crate::campaign::Progress::default();
        let cells = crate::store::fold_cells(results);
        // Every figure published (a minimum of one probe): the figures themselves.
        let report = build(
            &rec,
            &cells,
            progress.clone(),
            NOW,
            MinSample { min_probes: 1 },
        );
        let a = &report.targets[0];
        assert_eq!(a.aaaa_published, Some(true));
        let reach = a.reachable_v6.as_ref().unwrap();
        // AS64500: both probes; AS64501: its one probe reached neither by ping nor by HTTP.
        let by_asn: Vec<_> = reach
            .operators
            .iter()
            .map(|o| {
                let share = o.share.as_ref().unwrap();
                (o.asn, share.successes, share.n)
            })
            .collect();
        assert_eq!(by_asn, [(64500, 2.0, 2.0), (64501, 0.0, 1.0)]);
        assert!((reach.overall.as_ref().unwrap().share - 0.5).abs() < 1e-12);
        let content = a.same_content_v4_v6.as_ref().unwrap();
        assert_eq!((content.compared, content.same), (2, 1));
        assert_eq!(a.aaaa.verdict, Verdict::Yes);
        assert_eq!((a.aaaa.yes, a.aaaa.no, a.aaaa.inconclusive), (1, 0, 0));
        assert_eq!(a.aaaa.excluded.len(), 1, "{:?}", a.aaaa);
        assert_eq!(a.aaaa.excluded[0].probe.to_string(), format!("{:016x}", 2));
        assert_eq!(a.a.verdict, Verdict::Yes);
        let none = &report.targets[1];
        // No from probe 1's working resolver; probe 2 excluded; probe 3 inconclusive.
        assert_eq!(none.aaaa_published, Some(false));
        assert_eq!(
            (none.aaaa.verdict, none.aaaa.no, none.aaaa.inconclusive),
            (Verdict::No, 1, 1)
        );
        assert_eq!(none.aaaa.excluded.len(), 1);
        assert_eq!(none.a.verdict, Verdict::Yes);
        // The resolver's DNS answers are no IPv6 address of the target.
        assert!(none.v6_addresses.is_empty(), "{:?}", none.v6_addresses);
        // Operator ranking counts only targets with AAAA: one pair per probe. 2/2 ([0.34, 1])
        // and 0/1 ([0, 0.79]) overlap: the data cannot order them, both rank 1–2.
        let ranking: Vec<_> = report
            .operators
            .iter()
            .map(|o| {
                (
                    o.rank_range.map(|r| r.to_string()),
                    o.asn,
                    o.v6_reachability.as_ref().unwrap().n,
                    o.probes,
                )
            })
            .collect();
        let both = Some("1–2".to_owned());
        assert_eq!(
            ranking,
            [(both.clone(), 64500, 2.0, 2), (both, 64501, 1.0, 1)]
        );
        assert_eq!(report.operators[0].rank, Some(1));
        assert_eq!(report.operators[0].median_v6_rtt_ms, Some(20.0));
        let csv = to_csv(&report);
        assert!(
            csv.contains("target,a.example,,,,aaaa_published,yes"),
            "{csv}"
        );
        assert!(
            csv.contains("target,none.example,,,,aaaa_published,no,"),
            "{csv}"
        );
        assert!(
            csv.contains("target,a.example,,,,aaaa_probes_excluded,1,"),
            "{csv}"
        );
        assert!(
            csv.contains(&format!(
                "target_excluded,a.example,,,,aaaa_excluded_probe,{:016x},,,,,resolver failed both questions (AAAA: SERVFAIL; A: timeout)",
                2
            )),
            "{csv}"
        );
        let html = to_html(&report);
        assert!(html.contains("a.example"));
        assert!(
            html.contains("yes <small>(1 yes, 0 no, 0 inconclusive, 1 excluded)</small>"),
            "{html}"
        );
        assert!(
            html.contains("Probes excluded from the DNS figures"),
            "{html}"
        );
        assert!(html.contains("<tr><td>1–2</td><td>AS64500"), "{html}");

        // Under the default minimum of three probes: a.example's overall figure (three probes)
        // stands, each operator's (two and one) is insufficient data: n shown, no share, no rank.
        let report = build(&rec, &cells, progress, NOW, MinSample::default());
        assert_eq!(report.min_probes, 3);
        let reach = report.targets[0].reachable_v6.as_ref().unwrap();
        assert!(!reach.insufficient_data && reach.overall.is_some());
        assert_eq!(reach.probes, 3);
        for o in &reach.operators {
            assert!(o.insufficient_data && o.share.is_none(), "{o:?}");
        }
        for o in &report.operators {
            assert!(o.insufficient_data, "{o:?}");
            assert_eq!((o.rank, o.rank_range), (None, None));
            assert!(o.v6_reachability.is_none() && o.median_v6_rtt_ms.is_none());
        }
        let csv = to_csv(&report);
        assert!(csv.contains("meta,,,,,min_probes,3,"), "{csv}");
        assert!(
            csv.contains(
                "target_operator,a.example,64501,,XA,reachable_v6,insufficient data (n=1),"
            ),
            "{csv}"
        );
        assert!(
            csv.contains("operator,,64500,,XA,rank,insufficient data,"),
            "{csv}"
        );
        let html = to_html(&report);
        assert!(
            html.contains("<tr><td>—</td><td>AS64500  XA</td><td class=\"num\">2</td><td>insufficient data <small>n=2 probes</small>"),
            "{html}"
        );
        // AS64501's single probe: singular, and drawn as insufficient, not as a 0 % bar.
        assert!(
            html.contains("insufficient data <small>n=1 probe</small>"),
            "{html}"
        );
        // A probe selected but silent is in the operator's "probes", not in the n its figure
        // is held back for.
        let mut silent = rec.clone();
        let mut extra = silent.probes[0].clone();
        extra.probe = format!("{:016x}", 9).parse().unwrap();
        silent.probes.push(extra);
        let progress = crate::campaign::Progress::default();
        let report = build(&silent, &cells, progress, NOW, MinSample::default());
        let as64500 = report.operators.iter().find(|o| o.asn == 64500).unwrap();
        assert_eq!((as64500.probes, as64500.reporting_probes), (3, 2));
        let html = to_html(&report);
        assert!(
            html.contains(
                "<td class=\"num\">3</td><td>insufficient data <small>n=2 probes</small>"
            ),
            "{html}"
        );
        assert!(
            html.contains("insufficient data (1 probe)</text>"),
            "{html}"
        );
    }

    #[test]
    fn the_report_reads_in_arabic_right_to_left_and_in_french() {
        let catalog = crate::i18n::Catalog::builtin().unwrap();
        let mut rec = record();
        rec.ended_at = Some(UnixMicros(1_796_400_359_000_000));
        rec.status = CampaignStatus::Finished;
        let report = build(
            &rec,
            &reach_cells(),
            Progress {
                probes_assigned: 2,
                tasks: 2,
                results_expected: 3,
                ..Progress::default()
            },
            UnixMicros(1_796_400_359_000_000),
            MinSample { min_probes: 2 },
        );
        let html = to_html_in(&report, catalog.find("ar").unwrap());
        for needle in [
            "<html lang=\"ar\" dir=\"rtl\">",
            "<dt>الحالة</dt><dd>منتهية</dd>",
            "<dt>تاريخ إعداد التقرير</dt><dd>٤ ديسمبر ٢٠٢٦، الساعة ١٦:٠٥ بالتوقيت العالمي</dd>",
            "<dt>الحدّ الأدنى للعيّنة</dt><dd>مسباران</dd>",
            "مسباران مُكلَّفان",
            "<h2>ترتيب المشغّلين</h2>",
            // AS64500's median RTT, 13.83 ms: whole milliseconds, Arabic-Indic digits.
            "<td class=\"num\">١٤ ملّي ثانية</td>",
            "بيانات غير كافية (مسبار واحد)</text>",
            ">١٠٠٪</text>",
            "<a href=\"https://db-ip.com\">DB-IP</a>",
            // Charts read left to right in every language.
            "direction=\"ltr\"",
        ] {
            assert!(html.contains(needle), "{needle} missing:\n{html}");
        }
        assert!(!html.contains("<h2>Operator ranking</h2>"), "{html}");
        let html = to_html_in(&report, catalog.find("fr").unwrap());
        for needle in [
            "<html lang=\"fr\" dir=\"ltr\">",
            "<h2>Classement des opérateurs</h2>",
            "<td class=\"num\">14\u{a0}ms</td>",
            "<dt>Rapport généré</dt><dd>4 décembre 2026, 16 h 05 UTC</dd>",
        ] {
            assert!(html.contains(needle), "{needle} missing:\n{html}");
        }
        // English stays as it was.
        assert!(to_html(&report).starts_with("<!doctype html><html lang=\"en\" dir=\"ltr\">"));
    }

    #[test]
    fn dates_read_as_words_in_utc() {
        assert_eq!(
            human_utc(UnixMicros(1_796_400_359_000_000)),
            "4 December 2026, 16:05 UTC"
        );
        assert_eq!(human_utc(UnixMicros(0)), "1 January 1970, 00:00 UTC");
        assert_eq!(human_utc(UnixMicros(-1)), "31 December 1969, 23:59 UTC");
        assert_eq!(human_utc(NOW), "21 September 2026, 14:13 UTC");
    }

    #[test]
    fn units_and_plurals() {
        assert_eq!(rtt_ms(4.26), "4.3 ms");
        assert_eq!(rtt_ms(9.94), "9.9 ms");
        assert_eq!(rtt_ms(23.4), "23 ms");
        assert_eq!(rtt_ms(123.6), "124 ms");
        assert_eq!(count(1u64, "probe", "probes"), "1 probe");
        assert_eq!(count(0u64, "probe", "probes"), "0 probes");
        assert_eq!(count(2u64, "probe", "probes"), "2 probes");
    }

    /// One reachability result per probe of `record()`: probes 1 and 2 (AS64500) reach
    /// a.example by ping with 4.26 and 23.4 ms, probe 3 (AS64501) does not.
    fn reach_cells() -> Vec<CampaignCell> {
        let rtt = |n: u8, ms: Option<f64>| {
            result(
                n,
                1,
                1,
                ping_v6(
                    format!("{n:016x}").parse().unwrap(),
                    1,
                    NOW,
                    ms.map(Duration::from_secs_f64),
                    Enrichment::default(),
                )
                .result
                .outcome,
                true,
            )
        };
        crate::store::fold_cells(vec![
            rtt(1, Some(0.004_26)),
            rtt(2, Some(0.0234)),
            rtt(3, None),
        ])
    }

    #[test]
    fn a_publishable_page_dates_publisher_charts_attribution() {
        let mut rec = record();
        rec.ended_at = Some(UnixMicros(1_796_400_359_000_000));
        rec.status = CampaignStatus::Finished;
        let mut report = build(
            &rec,
            &reach_cells(),
            Progress {
                probes_assigned: 1,
                tasks: 2,
                results_expected: 1,
                ..Progress::default()
            },
            UnixMicros(1_796_400_359_000_000),
            MinSample { min_probes: 2 },
        );
        report.publisher = crate::config::Publisher {
            name: Some("Regulator <of> Examples".into()),
            logo_url: Some("https://example.org/logo.svg".into()),
        };
        // The period runs from the campaign's start to its newest result (seq 1: NOW + 1 µs).
        assert_eq!(
            report.period,
            Some(Period {
                from: NOW,
                to: UnixMicros(NOW.0 + 1)
            })
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["dates"]["generated"], "4 December 2026, 16:05 UTC");
        assert_eq!(json["dates"]["ended"], "4 December 2026, 16:05 UTC");
        assert_eq!(json["dates"]["period_from"], "21 September 2026, 14:13 UTC");
        assert_eq!(json["generated_at"], 1_796_400_359_000_000i64);
        assert_eq!(json["publisher"]["name"], "Regulator <of> Examples");
        let html = to_html(&report);
        for needle in [
            "<img src=\"https://example.org/logo.svg\" alt=\"Regulator &lt;of&gt; Examples\">",
            "<span class=\"name\">Regulator &lt;of&gt; Examples</span>",
            "<dt>Period measured</dt><dd>21 September 2026, 14:13 UTC to 21 September 2026, 14:13 UTC</dd>",
            "<dt>Ended</dt><dd>4 December 2026, 16:05 UTC</dd>",
            "<dt>Report generated</dt><dd>4 December 2026, 16:05 UTC</dd>",
            "<dt>Minimum sample</dt><dd>2 probes</dd>",
            "1 probe assigned",
            "2 tasks",
            "0 of 1 result in",
            // AS64500's two probes: 4.26 and 23.4 ms, median 13.83: whole milliseconds.
            "<td class=\"num\">14 ms</td>",
            "DB-IP",
            "CC BY 4.0",
            "Natural Earth",
            "@media print",
            "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\"",
            "class=\"whisker\"",
            // AS64501 has one probe under a minimum of two: drawn dashed, not as a bar.
            "insufficient data (1 probe)</text>",
            // none.example was reached by no result: its row says so.
            "<td>none.example</td><td>not measured</td><td>not measured</td><td>no data</td>",
        ] {
            assert!(html.contains(needle), "{needle} missing:\n{html}");
        }
        assert!(!html.contains("<script"), "no script in a printable page");
        // One whisker per figure with a share: the overall and AS64500's in both charts.
        assert_eq!(html.matches("class=\"whisker\"").count(), 3, "{html}");
        let csv = to_csv(&report);
        assert!(
            csv.contains("meta,,,,,generated,\"4 December 2026, 16:05 UTC\","),
            "{csv}"
        );
        assert!(
            csv.contains("meta,,,,,publisher,Regulator <of> Examples,"),
            "{csv}"
        );

        // Nothing measured yet: explicit no-data rows, no chart, no period.
        let empty = build(&rec, &[], Progress::default(), NOW, MinSample::default());
        assert_eq!(empty.period, None);
        let html = to_html(&empty);
        assert!(
            html.contains("<dt>Period measured</dt><dd>no results yet</dd>"),
            "{html}"
        );
        assert!(
            html.contains("No data: no operator has results on a target with AAAA published"),
            "{html}"
        );
        assert!(
            html.contains("No data: no IPv6 reachability results yet"),
            "{html}"
        );
        assert!(!html.contains("<svg"), "{html}");
    }
}
