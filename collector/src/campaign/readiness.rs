//! Government IPv6 readiness scores (issue #20; the rule is `docs/readiness.md`): per domain
//! from the probes' `readiness` results, per entity (a ministry grouping domains, the spec's
//! `[[entities]]`) from its domains, and per UTC day for the trend. Pure: every score can be
//! recomputed by hand from the results export.
//!
//! One probe's result of one domain gives four components, each `passed / (passed + failed)`
//! over its checks; a check that could not be decided (a resolver failure, a step not tried)
//! is inconclusive: counted and shown, never a failure. A domain's component is the median of
//! the probes' conclusive values, and its score the mean of its conclusive, applicable
//! components (equal weights, renormalised when one is missing).

use super::spec::Entity;
use crate::store::{CampaignCell, StoredResult, is_newer};
use serde::Serialize;
use sixmap_shared::measurement::{
    ConnectOutcome, LookupStatus, Outcome, Presence, ReadinessResult,
};
use sixmap_shared::{ProbeId, UnixMicros};
use std::collections::{BTreeMap, BTreeSet};

/// Bumped whenever a score's definition changes; carried by every readiness figure.
pub const READINESS_METHOD: &str = "sixmap-readiness/1";

/// Weights of the components (equal; renormalised over the components a domain has).
pub const WEIGHTS: [(Component, f64); 4] = [
    (Component::Dns, 0.25),
    (Component::Mail, 0.25),
    (Component::Web, 0.25),
    (Component::Page, 0.25),
];

/// At most this many days in a trend: the calendar days up to the newest with a result.
pub const MAX_TREND_DAYS: usize = 366;
/// At most this many results of the campaign are read for a trend, of every kind (a campaign
/// may measure more than readiness, and a request's work must be bounded whatever it
/// measured); beyond it the trend says it is partial.
pub const MAX_TREND_RESULTS: usize = 200_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    /// NS names with AAAA answering authoritatively over IPv6.
    Dns,
    /// MX hosts with AAAA accepting TCP/25 over IPv6.
    Mail,
    /// AAAA, HTTPS over IPv6, same certificate and content as over IPv4.
    Web,
    /// IPv6-only page readiness: the page's subresource hosts with AAAA, served over IPv6.
    Page,
}

impl Component {
    pub const ALL: [Component; 4] = [Self::Dns, Self::Mail, Self::Web, Self::Page];

    /// The component's number in stored figure rows (`figures::readiness`): never reused.
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dns => "dns",
            Self::Mail => "mail",
            Self::Web => "web",
            Self::Page => "page",
        }
    }
}

/// Why a check failed (or why a component does not apply). The report words them in the
/// reader's language (`readiness.reason_*` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The name has no AAAA record.
    NoAaaa,
    /// An NS name's IPv6 address gave no authoritative answer.
    NoAnswerV6,
    /// TCP/25 over IPv6 did not connect.
    SmtpV6,
    /// The page over HTTPS over IPv6 got no 2xx/3xx response.
    HttpsV6,
    /// Another leaf certificate over IPv6 than over IPv4.
    OtherCertificate,
    /// Another page over IPv6 than over IPv4 (body SHA-256).
    OtherContent,
    /// A subresource host with AAAA whose resource did not load over IPv6.
    NotServedV6,
    /// The domain's page does not load over IPv6, so neither do its subresources.
    PageNotV6,
    /// Not applicable: the domain has no NS records (not a zone apex).
    NoNs,
    /// Not applicable: no MX (or a null MX: the domain takes no mail).
    NoMx,
}

impl Reason {
    const ALL: [Reason; 10] = [
        Self::NoAaaa,
        Self::NoAnswerV6,
        Self::SmtpV6,
        Self::HttpsV6,
        Self::OtherCertificate,
        Self::OtherContent,
        Self::NotServedV6,
        Self::PageNotV6,
        Self::NoNs,
        Self::NoMx,
    ];

    /// The reason's number in stored figure rows (`figures::readiness`): never reused.
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoAaaa => "no_aaaa",
            Self::NoAnswerV6 => "no_answer_v6",
            Self::SmtpV6 => "smtp_v6",
            Self::HttpsV6 => "https_v6",
            Self::OtherCertificate => "other_certificate",
            Self::OtherContent => "other_content",
            Self::NotServedV6 => "not_served_v6",
            Self::PageNotV6 => "page_not_v6",
            Self::NoNs => "no_ns",
            Self::NoMx => "no_mx",
        }
    }
}

/// One failed check as a probe saw it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Failure {
    pub component: Component,
    pub host: String,
    pub reason: Reason,
    /// The probe's own words (an error text, a connect outcome), bounded by the result's
    /// validation.
    pub detail: Option<String>,
}

/// A component's checks in one result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub passed: u32,
    pub failed: u32,
    pub inconclusive: u32,
    /// The component does not apply (no MX, no NS records) or was not measured.
    pub not_applicable: Option<Reason>,
    /// Not measured by the spec (mail or subresources not asked for).
    pub not_measured: bool,
}

impl Tally {
    fn pass(&mut self) {
        self.passed += 1;
    }
    fn fail(&mut self) {
        self.failed += 1;
    }
    fn unsure(&mut self) {
        self.inconclusive += 1;
    }
    fn applies(&self) -> bool {
        self.not_applicable.is_none() && !self.not_measured
    }
    /// `passed / (passed + failed)`; `None` when nothing was decided or it does not apply.
    pub fn score(&self) -> Option<f64> {
        let decided = self.passed + self.failed;
        (self.applies() && decided > 0).then(|| f64::from(self.passed) / f64::from(decided))
    }
}

/// One probe's view of one domain.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub tallies: BTreeMap<Component, Tally>,
    pub failures: Vec<Failure>,
}

impl Observation {
    pub fn score(&self, component: Component) -> Option<f64> {
        self.tallies.get(&component).and_then(Tally::score)
    }
}

fn https_ok(status: Option<u16>) -> bool {
    status.is_some_and(|s| (200..400).contains(&s))
}

/// The checks of one readiness result (docs/readiness.md, "Per probe").
pub fn observe(r: &ReadinessResult) -> Observation {
    let mut failures = Vec::new();
    let mut fail = |tally: &mut Tally, component, host: &str, reason, detail: Option<&String>| {
        tally.fail();
        failures.push(Failure {
            component,
            host: host.to_owned(),
            reason,
            detail: detail.cloned(),
        });
    };

    // DNS: each NS name.
    let mut dns = Tally::default();
    match r.dns.ns_lookup.status {
        LookupStatus::Found => {
            for server in &r.dns.servers {
                match (server.has_aaaa, server.answers_over_v6) {
                    (Presence::Yes, Some(true)) => dns.pass(),
                    (Presence::No, _) => {
                        fail(&mut dns, Component::Dns, &server.name, Reason::NoAaaa, None)
                    }
                    (Presence::Yes, Some(false)) => fail(
                        &mut dns,
                        Component::Dns,
                        &server.name,
                        Reason::NoAnswerV6,
                        server.detail.as_ref(),
                    ),
                    _ => dns.unsure(),
                }
            }
            if r.dns.servers.is_empty() {
                dns.unsure();
            }
        }
        LookupStatus::NoData | LookupStatus::NxDomain => dns.not_applicable = Some(Reason::NoNs),
        LookupStatus::Failed => dns.unsure(),
    }

    // Mail: each MX host.
    let mut mail = Tally::default();
    match &r.mail {
        None => mail.not_measured = true,
        Some(m) if m.null_mx => mail.not_applicable = Some(Reason::NoMx),
        Some(m) => match m.mx_lookup.status {
            LookupStatus::Found => {
                for mx in &m.exchangers {
                    match (mx.has_aaaa, mx.smtp_v6) {
                        (Presence::Yes, Some(ConnectOutcome::Connected)) => mail.pass(),
                        (Presence::No, _) => {
                            fail(&mut mail, Component::Mail, &mx.name, Reason::NoAaaa, None)
                        }
                        (Presence::Yes, Some(outcome)) => {
                            let words = mx
                                .detail
                                .clone()
                                .unwrap_or_else(|| outcome.words().to_owned());
                            fail(
                                &mut mail,
                                Component::Mail,
                                &mx.name,
                                Reason::SmtpV6,
                                Some(&words),
                            )
                        }
                        _ => mail.unsure(),
                    }
                }
                if m.exchangers.is_empty() {
                    mail.unsure();
                }
            }
            LookupStatus::NoData | LookupStatus::NxDomain => {
                mail.not_applicable = Some(Reason::NoMx)
            }
            LookupStatus::Failed => mail.unsure(),
        },
    }

    // Web: AAAA, HTTPS over IPv6, same certificate, same content. Without AAAA all four
    // fail; with AAAA published that check passes and, when the fetch over IPv6 was tried
    // and nothing came back, the other three fail: the site is not served over IPv6. Only
    // what was tried is scored: a fetch not made (the packet allowance, the probe's own
    // target policy) or stopped for a reason that says nothing of the site is inconclusive.
    let w = &r.web;
    let mut web = Tally::default();
    let v6_works = https_ok(w.https_v6_status);
    let v6_untried =
        w.https_v6_status.is_none() && (w.v6_inconclusive || w.https_v6_connect.is_none());
    match w.aaaa {
        Presence::Inconclusive => web.inconclusive += 4,
        Presence::No => {
            fail(&mut web, Component::Web, &w.host, Reason::NoAaaa, None);
            web.failed += 3;
        }
        Presence::Yes if v6_untried => {
            web.pass();
            web.inconclusive += 3;
        }
        Presence::Yes if !v6_works => {
            web.pass();
            let detail = w
                .v6_error
                .clone()
                .or_else(|| w.https_v6_status.map(|s| format!("HTTP {s}")));
            fail(
                &mut web,
                Component::Web,
                &w.host,
                Reason::HttpsV6,
                detail.as_ref(),
            );
            web.failed += 2;
        }
        Presence::Yes => {
            web.pass();
            web.pass();
            for (same, reason) in [
                (w.same_certificate, Reason::OtherCertificate),
                (w.same_content, Reason::OtherContent),
            ] {
                match same {
                    Some(true) => web.pass(),
                    Some(false) => fail(&mut web, Component::Web, &w.host, reason, None),
                    // IPv4 gave nothing to compare with: not the IPv6 side's fault.
                    None => web.unsure(),
                }
            }
        }
    }

    // Page: every subresource host other than the page's own.
    let mut page = Tally::default();
    match &r.subresources {
        None => page.not_measured = true,
        Some(_) if w.aaaa == Presence::Inconclusive => page.unsure(),
        Some(_) if w.aaaa == Presence::Yes && v6_untried => page.unsure(),
        Some(_) if !v6_works => fail(&mut page, Component::Page, &w.host, Reason::PageNotV6, None),
        Some(s) if s.html_from.is_none() => page.unsure(),
        Some(s) => {
            let others: Vec<_> = s.hosts.iter().filter(|h| !h.same_host).collect();
            for host in &others {
                match (host.has_aaaa, host.fetched_v6) {
                    (Presence::Yes, Some(true)) => page.pass(),
                    (Presence::No, _) => fail(
                        &mut page,
                        Component::Page,
                        &host.host,
                        Reason::NoAaaa,
                        Some(&host.url),
                    ),
                    (Presence::Yes, Some(false)) => {
                        let detail = match &host.detail {
                            Some(d) => format!("{}: {d}", host.url),
                            None => host.url.clone(),
                        };
                        fail(
                            &mut page,
                            Component::Page,
                            &host.host,
                            Reason::NotServedV6,
                            Some(&detail),
                        )
                    }
                    _ => page.unsure(),
                }
            }
            // A page loading nothing from elsewhere is as ready as the page itself.
            if others.is_empty() {
                page.pass();
            }
        }
    }
    let tallies = BTreeMap::from([
        (Component::Dns, dns),
        (Component::Mail, mail),
        (Component::Web, web),
        (Component::Page, page),
    ]);
    Observation { tallies, failures }
}

/// A component of a domain over its probes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentScore {
    /// The median of the probes' conclusive values; `None` when none was conclusive or the
    /// component does not apply.
    pub score: Option<f64>,
    /// Probes with a conclusive value, and those whose checks were all inconclusive.
    pub probes: usize,
    pub inconclusive_probes: usize,
    /// Checks summed over the probes.
    pub passed: u64,
    pub failed: u64,
    pub inconclusive: u64,
    /// Why it does not apply (every probe agreeing), or `not_measured`.
    pub not_applicable: Option<Reason>,
    pub not_measured: bool,
}

/// A failure and how many probes saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureFigure {
    pub component: Component,
    pub host: String,
    pub reason: Reason,
    /// One probe's words (the first in probe order).
    pub detail: Option<String>,
    pub probes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainScore {
    pub domain: String,
    /// The entities listing it.
    pub entities: Vec<String>,
    /// Probes with a readiness result of it.
    pub probes: usize,
    /// Weighted mean of the conclusive, applicable components; `None` without any.
    pub score: Option<f64>,
    pub dns: ComponentScore,
    pub mail: ComponentScore,
    pub web: ComponentScore,
    pub page: ComponentScore,
    /// Components left out of the score because they were inconclusive.
    pub inconclusive: Vec<Component>,
    pub failures: Vec<FailureFigure>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntityScore {
    pub name: String,
    pub domains: Vec<String>,
    /// Mean of its domains' scores (those with one).
    pub score: Option<f64>,
    /// Domains without a score (no result yet, or nothing conclusive).
    pub domains_without_score: Vec<String>,
}

/// One day of the trend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendDay {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub domains: BTreeMap<String, Option<f64>>,
    pub entities: BTreeMap<String, Option<f64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trend {
    pub days: Vec<TrendDay>,
    /// Results were left unread past [`MAX_TREND_RESULTS`], or days past [`MAX_TREND_DAYS`].
    pub partial: bool,
}

/// The readiness section of a campaign report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadinessReport {
    pub method: &'static str,
    pub weights: BTreeMap<Component, f64>,
    pub domains: Vec<DomainScore>,
    pub entities: Vec<EntityScore>,
    /// Per UTC day; empty until read from the stored results (`Campaigns::report`).
    pub trend: Option<Trend>,
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

fn component_score(observations: &[&Observation], component: Component) -> ComponentScore {
    let mut values = Vec::new();
    let mut c = ComponentScore {
        score: None,
        probes: 0,
        inconclusive_probes: 0,
        passed: 0,
        failed: 0,
        inconclusive: 0,
        not_applicable: None,
        not_measured: false,
    };
    let mut reasons = BTreeSet::new();
    let mut measured = false;
    for o in observations {
        let Some(t) = o.tallies.get(&component) else {
            continue;
        };
        c.passed += u64::from(t.passed);
        c.failed += u64::from(t.failed);
        c.inconclusive += u64::from(t.inconclusive);
        measured |= !t.not_measured;
        if let Some(reason) = t.not_applicable {
            reasons.insert(reason);
        }
        match t.score() {
            Some(v) => {
                values.push(v);
                c.probes += 1;
            }
            None if t.applies() => c.inconclusive_probes += 1,
            None => {}
        }
    }
    c.score = median(&mut values);
    c.not_measured = !measured;
    // "Does not apply" only when no probe found the component to apply.
    if values.is_empty() && c.inconclusive_probes == 0 {
        c.not_applicable = reasons.into_iter().next();
    }
    c
}

/// The domain's figures from its probes' observations (one per probe).
pub fn domain_score(
    domain: &str,
    entities: &[Entity],
    observations: &[&Observation],
) -> DomainScore {
    let [dns, mail, web, page] = [
        Component::Dns,
        Component::Mail,
        Component::Web,
        Component::Page,
    ]
    .map(|c| component_score(observations, c));
    let mut weighted = 0.0;
    let mut weight = 0.0;
    let mut inconclusive = Vec::new();
    for ((component, w), c) in WEIGHTS.iter().zip([&dns, &mail, &web, &page]) {
        match c.score {
            Some(v) => {
                weighted += w * v;
                weight += w;
            }
            None if c.not_applicable.is_none() && !c.not_measured && !observations.is_empty() => {
                inconclusive.push(*component)
            }
            None => {}
        }
    }
    let mut failures: BTreeMap<(Component, String, Reason), (Option<String>, usize)> =
        BTreeMap::new();
    for o in observations {
        // A probe counts once per failure, however many times it saw it.
        let seen: BTreeSet<_> = o.failures.iter().collect();
        for f in seen {
            let entry = failures
                .entry((f.component, f.host.clone(), f.reason))
                .or_insert((f.detail.clone(), 0));
            entry.1 += 1;
        }
    }
    DomainScore {
        domain: domain.to_owned(),
        entities: entities
            .iter()
            .filter(|e| e.domains.iter().any(|d| d == domain))
            .map(|e| e.name.clone())
            .collect(),
        probes: observations.len(),
        score: (weight > 0.0).then(|| weighted / weight),
        dns,
        mail,
        web,
        page,
        inconclusive,
        failures: failures
            .into_iter()
            .map(
                |((component, host, reason), (detail, probes))| FailureFigure {
                    component,
                    host,
                    reason,
                    detail,
                    probes,
                },
            )
            .collect(),
    }
}

/// Each entity from its domains' scores.
pub fn entity_scores(entities: &[Entity], domains: &[DomainScore]) -> Vec<EntityScore> {
    entities
        .iter()
        .map(|e| {
            let scores: Vec<(&String, Option<f64>)> = e
                .domains
                .iter()
                .map(|d| {
                    let score = domains
                        .iter()
                        .find(|s| &s.domain == d)
                        .and_then(|s| s.score);
                    (d, score)
                })
                .collect();
            let known: Vec<f64> = scores.iter().filter_map(|(_, s)| *s).collect();
            EntityScore {
                name: e.name.clone(),
                domains: e.domains.clone(),
                score: (!known.is_empty()).then(|| known.iter().sum::<f64>() / known.len() as f64),
                domains_without_score: scores
                    .iter()
                    .filter(|(_, s)| s.is_none())
                    .map(|(d, _)| (*d).clone())
                    .collect(),
            }
        })
        .collect()
}

fn readiness_of(r: &StoredResult) -> Option<&ReadinessResult> {
    match &r.result.outcome {
        Outcome::Readiness(x) => Some(x),
        _ => None,
    }
}

/// The readiness section from a campaign's cells (each probe's latest result per task), or
/// `None` when the campaign has no readiness measurement. `target_of` names a cell's target
/// (the campaign's task table), `None` for tasks of other kinds.
pub fn from_cells<'a>(
    targets: &[String],
    entities: &[Entity],
    cells: &'a [CampaignCell],
    target_of: impl Fn(&CampaignCell) -> Option<&'a str>,
    has_readiness: bool,
) -> Option<ReadinessReport> {
    if !has_readiness {
        return None;
    }
    // Each probe's newest result per domain (over the domain's readiness tasks).
    let mut latest: BTreeMap<(&str, &ProbeId), &StoredResult> = BTreeMap::new();
    for cell in cells {
        let Some(target) = target_of(cell) else {
            continue;
        };
        if readiness_of(&cell.latest).is_none() {
            continue;
        }
        let key = (target, &cell.probe_id);
        if latest
            .get(&key)
            .is_none_or(|old| is_newer(&cell.latest, old))
        {
            latest.insert(key, &cell.latest);
        }
    }
    let domains = scores_of(targets, entities, &latest);
    Some(ReadinessReport {
        method: READINESS_METHOD,
        weights: WEIGHTS.into_iter().collect(),
        entities: entity_scores(entities, &domains),
        domains,
        trend: None,
    })
}

fn scores_of(
    targets: &[String],
    entities: &[Entity],
    latest: &BTreeMap<(&str, &ProbeId), &StoredResult>,
) -> Vec<DomainScore> {
    targets
        .iter()
        .map(|domain| {
            let observations: Vec<Observation> = latest
                .iter()
                .filter(|((d, _), _)| *d == domain.as_str())
                .filter_map(|(_, r)| readiness_of(r).map(observe))
                .collect();
            let refs: Vec<&Observation> = observations.iter().collect();
            domain_score(domain, entities, &refs)
        })
        .collect()
}

/// UTC day number of a time (days since 1970-01-01).
pub fn day_number(t: UnixMicros) -> i64 {
    t.0.div_euclid(1_000_000).div_euclid(86_400)
}

/// UTC day `YYYY-MM-DD` of a day number.
fn day_text(days: i64) -> String {
    let (y, m, d) = crate::export::row::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The first day number a trend ending on day `newest` shows ([`MAX_TREND_DAYS`] days).
pub fn trend_start(newest: i64) -> i64 {
    let span = i64::try_from(MAX_TREND_DAYS).unwrap_or(i64::MAX);
    newest.saturating_sub(span - 1)
}

/// A result's checks per component (`Observation::tallies`).
pub type Checks = BTreeMap<Component, Tally>;

/// Where a result sorts among one probe's: start time, then boot epoch and sequence (the
/// order of `store::is_newer` within a probe; `figures::Order`).
pub type Order = (i64, u64, u64);

/// The order of a stored result.
pub fn order_of(r: &StoredResult) -> Order {
    (
        r.result.started_at.0,
        r.result.key.boot_epoch,
        r.result.key.sequence,
    )
}

/// Collects a trend from observations visited one by one (in any order): per UTC day, each
/// probe's newest result of each domain that day, scored like the report. Fed either by
/// results read from the store (`add`, bounded: at most [`MAX_TREND_RESULTS`] results are
/// read, the caller stops visiting when `add` says so) or by the per-day rows kept at ingest
/// (`add_observed`, `figures::readiness`); the newest [`MAX_TREND_DAYS`] days are shown.
#[derive(Debug, Default)]
pub struct TrendBuilder {
    /// (day, domain, probe) → newest result that day: its order and its checks.
    newest: BTreeMap<(i64, String, ProbeId), (Order, Checks)>,
    /// The day of the campaign's newest result of a readiness task (of any outcome): the
    /// trend ends there.
    last_day: Option<i64>,
    /// Days after this one (a probe's clock ahead; a hostile probe) are left out: one result
    /// dated years ahead would otherwise move the window past every real day.
    today: Option<i64>,
    seen: usize,
    partial: bool,
}

impl TrendBuilder {
    /// A trend of the days up to `now`'s UTC day.
    pub fn until(now: UnixMicros) -> Self {
        Self {
            today: Some(day_number(now)),
            ..Self::default()
        }
    }

    fn after_today(&self, day: i64) -> bool {
        self.today.is_some_and(|today| day > today)
    }

    /// Takes one result of the campaign's task for `target`; false once the bound is reached
    /// (stop visiting).
    pub fn add(&mut self, target: &str, result: StoredResult) -> bool {
        if !self.skip() {
            return false;
        }
        let day = day_number(result.result.started_at);
        self.saw_day(day);
        let Some(readiness) = readiness_of(&result) else {
            return true;
        };
        self.add_observed(
            day,
            target,
            &result.result.key.probe_id,
            order_of(&result),
            observe(readiness).tallies,
        );
        true
    }

    /// Takes one probe's newest result of `target` on day number `day` (its order and its
    /// checks), as the kept rows hold it; an older one of the same day is replaced.
    pub fn add_observed(
        &mut self,
        day: i64,
        target: &str,
        probe: &ProbeId,
        order: Order,
        tallies: BTreeMap<Component, Tally>,
    ) {
        if self.after_today(day) {
            return;
        }
        self.saw_day(day);
        let key = (day, target.to_owned(), probe.clone());
        match self.newest.get(&key) {
            Some((old, _)) if *old >= order => {}
            _ => {
                self.newest.insert(key, (order, tallies));
            }
        }
    }

    /// Counts one thing read toward the bound: a result that is not a readiness task's (the
    /// scan), or one probe's entry of a kept row; false once the bound is reached (stop
    /// visiting).
    pub fn skip(&mut self) -> bool {
        self.seen += 1;
        if self.seen > MAX_TREND_RESULTS {
            self.partial = true;
            return false;
        }
        true
    }

    /// A result of a readiness task on day `day` exists (whatever its outcome): the trend
    /// runs up to the newest such day.
    pub fn saw_day(&mut self, day: i64) {
        if self.after_today(day) {
            return;
        }
        self.last_day = Some(self.last_day.map_or(day, |d| d.max(day)));
    }

    /// Marks the trend partial: days before the newest [`MAX_TREND_DAYS`] were left unread.
    pub fn older_days_left(&mut self) {
        self.partial = true;
    }

    pub fn finish(self, targets: &[String], entities: &[Entity]) -> Trend {
        let mut by_day: BTreeMap<i64, BTreeMap<&str, Vec<Observation>>> = BTreeMap::new();
        for ((day, domain, _), (_, tallies)) in &self.newest {
            by_day
                .entry(*day)
                .or_default()
                .entry(domain.as_str())
                .or_default()
                .push(Observation {
                    tallies: tallies.clone(),
                    failures: Vec::new(),
                });
        }
        // The calendar days up to the newest one with a result: older ones are left out.
        let from = trend_start(self.last_day.unwrap_or(0));
        let partial = self.partial || by_day.keys().next().is_some_and(|first| *first < from);
        let days = by_day
            .into_iter()
            .filter(|(day, _)| *day >= from)
            .map(|(day, of_day)| {
                let domains: Vec<DomainScore> = targets
                    .iter()
                    .filter_map(|t| {
                        let observations = of_day.get(t.as_str())?;
                        let refs: Vec<&Observation> = observations.iter().collect();
                        Some(domain_score(t, entities, &refs))
                    })
                    .collect();
                let entity = entity_scores(entities, &domains);
                TrendDay {
                    day: day_text(day),
                    domains: domains
                        .iter()
                        .map(|d| (d.domain.clone(), d.score))
                        .collect(),
                    entities: entity.into_iter().map(|e| (e.name, e.score)).collect(),
                }
            })
            .collect();
        Trend { days, partial }
    }
}

fn num(v: f64) -> String {
    format!("{v:.4}")
}

/// The readiness rows of the report's long-form CSV (its 12 columns: `section,target,asn,
/// as_name,country,metric,value,successes,n,ci_low,ci_high,source`): `readiness_domain`
/// (score and components, `n` the probes), `readiness_failure` (metric `component:reason`,
/// value the host, `n` the probes that saw it, source the probe's words),
/// `readiness_entity` and `readiness_trend` (metric `score_on_YYYY-MM-DD`).
pub fn csv_rows(r: &ReadinessReport) -> String {
    use super::escape::csv_field;
    let mut out = String::new();
    let mut row =
        |section: &str, target: &str, metric: &str, value: String, n: String, source: &str| {
            out.push_str(&format!(
                "{section},{},,,,{},{},,{n},,,{}\n",
                csv_field(target),
                csv_field(metric),
                csv_field(&value),
                csv_field(source)
            ));
        };
    let score_text = |s: Option<f64>| s.map(num).unwrap_or_default();
    for d in &r.domains {
        let probes = d.probes.to_string();
        row(
            "readiness_domain",
            &d.domain,
            "score",
            score_text(d.score),
            probes.clone(),
            r.method,
        );
        for (component, c) in [
            (Component::Dns, &d.dns),
            (Component::Mail, &d.mail),
            (Component::Web, &d.web),
            (Component::Page, &d.page),
        ] {
            let value = match (c.score, c.not_applicable, c.not_measured) {
                (Some(v), _, _) => num(v),
                (None, Some(reason), _) => format!("not applicable ({})", reason.as_str()),
                (None, None, true) => "not measured".into(),
                (None, None, false) => "inconclusive".into(),
            };
            row(
                "readiness_domain",
                &d.domain,
                component.as_str(),
                value,
                c.probes.to_string(),
                &format!(
                    "checks passed {}, failed {}, inconclusive {}",
                    c.passed, c.failed, c.inconclusive
                ),
            );
        }
        for f in &d.failures {
            row(
                "readiness_failure",
                &d.domain,
                &format!("{}:{}", f.component.as_str(), f.reason.as_str()),
                f.host.clone(),
                f.probes.to_string(),
                f.detail.as_deref().unwrap_or(""),
            );
        }
    }
    for e in &r.entities {
        row(
            "readiness_entity",
            &e.name,
            "score",
            score_text(e.score),
            e.domains.len().to_string(),
            &e.domains.join(" "),
        );
    }
    if let Some(trend) = &r.trend {
        for day in &trend.days {
            let metric = format!("score_on_{}", day.day);
            for (name, score) in day.entities.iter().chain(&day.domains) {
                row(
                    "readiness_trend",
                    name,
                    &metric,
                    score_text(*score),
                    String::new(),
                    "",
                );
            }
        }
    }
    out
}

/// The readiness section of the HTML report, in the reader's language.
pub fn to_html(r: &ReadinessReport, l: &crate::i18n::Language) -> String {
    use std::fmt::Write;
    let esc = super::escape::esc;
    let score = |s: Option<f64>| {
        s.map_or_else(|| esc(l.t("readiness.no_score")), |v| esc(&l.percent(v, 1)))
    };
    let th = |keys: &[&str]| -> String {
        keys.iter()
            .map(|k| format!("<th>{}</th>", esc(l.t(k))))
            .collect()
    };
    let component_name = |c: Component| {
        l.t(match c {
            Component::Dns => "readiness.col_dns",
            Component::Mail => "readiness.col_mail",
            Component::Web => "readiness.col_web",
            Component::Page => "readiness.col_page",
        })
    };
    let cell = |c: &ComponentScore| match (c.score, c.not_applicable, c.not_measured) {
        (Some(v), _, _) => esc(&l.percent(v, 1)),
        (None, Some(reason), _) => format!(
            "{} ({})",
            esc(l.t("readiness.not_applicable")),
            esc(l.t(&format!("readiness.reason_{}", reason.as_str())))
        ),
        (None, None, true) => esc(l.t("readiness.not_measured")),
        (None, None, false) => esc(l.t("readiness.inconclusive")),
    };
    let mut h = String::new();
    let _ = write!(
        h,
        "<section class=\"readiness\"><h2>{}</h2><p>{}</p>",
        esc(l.t("readiness.title")),
        esc(&l.fmt("readiness.intro", &[("method", r.method)])),
    );
    if !r.entities.is_empty() {
        let _ = write!(
            h,
            "<h3>{}</h3><table><tr>{}</tr>",
            esc(l.t("readiness.entities")),
            th(&[
                "readiness.col_entity",
                "readiness.col_score",
                "readiness.domains"
            ])
        );
        for e in &r.entities {
            let mut domains = esc(&e.domains.join(", "));
            if !e.domains_without_score.is_empty() {
                let _ = write!(
                    domains,
                    "<br><small>{}</small>",
                    esc(&l.fmt(
                        "readiness.without_score",
                        &[("domains", &e.domains_without_score.join(", "))]
                    ))
                );
            }
            let _ = write!(
                h,
                "<tr><th scope=\"row\">{}</th><td class=\"num\">{}</td><td>{domains}</td></tr>",
                esc(&e.name),
                score(e.score),
            );
        }
        h.push_str("</table>");
    }
    let _ = write!(
        h,
        "<h3>{}</h3><table><tr>{}</tr>",
        esc(l.t("readiness.domains")),
        th(&[
            "readiness.col_domain",
            "readiness.col_entity",
            "readiness.col_score",
            "readiness.col_dns",
            "readiness.col_mail",
            "readiness.col_web",
            "readiness.col_page",
            "readiness.col_probes",
            "readiness.col_failures",
        ])
    );
    if r.domains.iter().all(|d| d.probes == 0) {
        let _ = write!(
            h,
            "<tr class=\"no-data\"><td colspan=\"9\">{}</td></tr>",
            esc(l.t("readiness.no_domains"))
        );
    }
    for d in &r.domains {
        let mut failures: Vec<String> = d
            .failures
            .iter()
            .map(|f| {
                let reason_key = format!("readiness.reason_{}", f.reason.as_str());
                let reason = l.t(&reason_key);
                let mut line = esc(&l.fmt(
                    "readiness.failure",
                    &[
                        ("component", component_name(f.component)),
                        ("host", &f.host),
                        ("reason", reason),
                    ],
                ));
                if let Some(detail) = &f.detail {
                    let _ = write!(line, " <small>({})</small>", esc(detail));
                }
                let probes = l.plural("report.probes", f.probes as u64, &[]);
                let _ = write!(
                    line,
                    " <small>{}</small>",
                    esc(&l.fmt("readiness.failure_probes", &[("probes", &probes)]))
                );
                line
            })
            .collect();
        if failures.is_empty() && d.probes > 0 {
            failures.push(esc(l.t("readiness.none_failed")));
        }
        if !d.inconclusive.is_empty() {
            let names: Vec<&str> = d.inconclusive.iter().map(|c| component_name(*c)).collect();
            failures.push(format!(
                "<small>{}</small>",
                esc(&l.fmt("readiness.left_out", &[("components", &names.join(", "))]))
            ));
        }
        let _ = write!(
            h,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td class=\"num\"><b>{}</b></td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&d.domain),
            esc(&d.entities.join(", ")),
            score(d.score),
            cell(&d.dns),
            cell(&d.mail),
            cell(&d.web),
            cell(&d.page),
            l.integer(d.probes as u64),
            failures.join("<br>"),
        );
    }
    h.push_str("</table>");
    if let Some(trend) = r.trend.as_ref().filter(|t| !t.days.is_empty()) {
        // Columns: the entities, or (without entities) the first 12 domains.
        let columns: Vec<(&str, bool)> = if r.entities.is_empty() {
            r.domains
                .iter()
                .take(12)
                .map(|d| (d.domain.as_str(), false))
                .collect()
        } else {
            r.entities.iter().map(|e| (e.name.as_str(), true)).collect()
        };
        let _ = write!(
            h,
            "<h3>{}</h3><table><tr><th>{}</th>",
            esc(l.t("readiness.trend")),
            esc(l.t("readiness.col_day"))
        );
        for (name, _) in &columns {
            let _ = write!(h, "<th>{}</th>", esc(name));
        }
        h.push_str("</tr>");
        for day in &trend.days {
            let _ = write!(h, "<tr><td>{}</td>", esc(&l.localise_digits(&day.day)));
            for (name, entity) in &columns {
                let of = if *entity { &day.entities } else { &day.domains };
                let value = of.get(*name).copied().flatten();
                let _ = write!(
                    h,
                    "<td class=\"num\">{}</td>",
                    value.map_or_else(|| "—".to_owned(), |v| esc(&l.percent(v, 1)))
                );
            }
            h.push_str("</tr>");
        }
        h.push_str("</table>");
        if trend.partial {
            let _ = write!(
                h,
                "<p><small>{}</small></p>",
                esc(l.t("readiness.trend_partial"))
            );
        }
    }
    h.push_str("</section>");
    h
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use sixmap_shared::measurement::{
        DnsReadiness, Family, Lookup, MailExchangerCheck, MailReadiness, NameServerCheck,
        SubresourceHost, SubresourceReadiness, WebReadiness,
    };
    use std::net::{Ipv4Addr, Ipv6Addr};

    const V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

    fn lookup(status: LookupStatus) -> Lookup {
        Lookup {
            status,
            detail: None,
        }
    }

    fn ns(name: &str, has_aaaa: Presence, answers: Option<bool>) -> NameServerCheck {
        NameServerCheck {
            name: name.into(),
            has_aaaa,
            address: (has_aaaa == Presence::Yes).then_some(V6),
            answers_over_v6: answers,
            detail: answers.is_some_and(|a| !a).then(|| "timed out".into()),
        }
    }

    fn mx(name: &str, has_aaaa: Presence, smtp: Option<ConnectOutcome>) -> MailExchangerCheck {
        MailExchangerCheck {
            name: name.into(),
            preference: 10,
            has_aaaa,
            address: (has_aaaa == Presence::Yes).then_some(V6),
            smtp_v6: smtp,
            detail: None,
        }
    }

    fn sub(host: &str, has_aaaa: Presence, fetched: Option<bool>) -> SubresourceHost {
        SubresourceHost {
            host: host.into(),
            same_host: false,
            has_aaaa,
            url: format!("https://{host}/x.js"),
            fetched_v6: fetched,
            status_v6: fetched.filter(|f| *f).map(|_| 200),
            detail: fetched
                .is_some_and(|f| !f)
                .then(|| "connection refused".into()),
        }
    }

    /// good.gov.lab of the readiness lab: everything ready.
    pub(crate) fn good() -> ReadinessResult {
        ReadinessResult {
            resolver: None,
            dns64_prefix: None,
            dns: DnsReadiness {
                ns_lookup: lookup(LookupStatus::Found),
                servers: vec![
                    ns("ns1.good.gov.lab", Presence::Yes, Some(true)),
                    ns("ns2.good.gov.lab", Presence::Yes, Some(true)),
                ],
            },
            mail: Some(MailReadiness {
                mx_lookup: lookup(LookupStatus::Found),
                null_mx: false,
                exchangers: vec![mx(
                    "mail.good.gov.lab",
                    Presence::Yes,
                    Some(ConnectOutcome::Connected),
                )],
            }),
            web: WebReadiness {
                host: "good.gov.lab".into(),
                aaaa: Presence::Yes,
                a: Presence::Yes,
                aaaa_lookup: lookup(LookupStatus::Found),
                a_lookup: lookup(LookupStatus::Found),
                v6_address: Some(V6),
                v4_address: Some(Ipv4Addr::new(192, 0, 2, 1)),
                https_v6_connect: Some(ConnectOutcome::Connected),
                https_v4_connect: Some(ConnectOutcome::Connected),
                https_v6_status: Some(200),
                https_v4_status: Some(200),
                v6_certificate_verified: Some(true),
                v6_error: None,
                v4_error: None,
                same_certificate: Some(true),
                same_content: Some(true),
                v6_body_bytes: Some(100),
                v4_body_bytes: Some(100),
                final_url: None,
                v6_inconclusive: false,
            },
            subresources: Some(SubresourceReadiness {
                html_from: Some(Family::V6),
                hosts: vec![
                    SubresourceHost {
                        same_host: true,
                        ..sub("good.gov.lab", Presence::Yes, Some(true))
                    },
                    sub("static.good.gov.lab", Presence::Yes, Some(true)),
                ],
                truncated: false,
            }),
        }
    }

    /// partial.gov.lab: a script host without AAAA, an image host not serving over IPv6, an
    /// MX without AAAA.
    pub(crate) fn partial() -> ReadinessResult {
        let mut r = good();
        r.mail = Some(MailReadiness {
            mx_lookup: lookup(LookupStatus::Found),
            null_mx: false,
            exchangers: vec![mx("mail.partial.gov.lab", Presence::No, None)],
        });
        r.subresources = Some(SubresourceReadiness {
            html_from: Some(Family::V6),
            hosts: vec![
                sub("static.good.gov.lab", Presence::Yes, Some(true)),
                sub("cdn.v4.lab", Presence::No, None),
                sub("img.partial.gov.lab", Presence::Yes, Some(false)),
            ],
            truncated: false,
        });
        r
    }

    /// v4only.gov.lab: no AAAA, one NS of two without AAAA, no MX.
    pub(crate) fn v4only() -> ReadinessResult {
        let mut r = good();
        r.dns.servers[1] = ns("ns2.v4only.gov.lab", Presence::No, None);
        r.mail = Some(MailReadiness {
            mx_lookup: lookup(LookupStatus::NoData),
            null_mx: false,
            exchangers: Vec::new(),
        });
        let w = &mut r.web;
        w.host = "v4only.gov.lab".into();
        w.aaaa = Presence::No;
        w.aaaa_lookup = lookup(LookupStatus::NoData);
        w.v6_address = None;
        w.https_v6_connect = None;
        w.https_v6_status = None;
        w.v6_certificate_verified = None;
        w.same_certificate = None;
        w.same_content = None;
        w.v6_body_bytes = None;
        r.subresources = Some(SubresourceReadiness {
            html_from: Some(Family::V4),
            hosts: Vec::new(),
            truncated: false,
        });
        r
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn each_probe_result_scores_its_components() {
        for (r, dns, mail, web, page) in [
            (good(), Some(1.0), Some(1.0), Some(1.0), Some(1.0)),
            (partial(), Some(1.0), Some(0.0), Some(1.0), Some(1.0 / 3.0)),
            (v4only(), Some(0.5), None, Some(0.0), Some(0.0)),
        ] {
            let o = observe(&r);
            for (c, want) in [
                (Component::Dns, dns),
                (Component::Mail, mail),
                (Component::Web, web),
                (Component::Page, page),
            ] {
                let got = o.score(c);
                assert!(
                    match want {
                        Some(w) => close(got, w),
                        None => got.is_none(),
                    },
                    "{} {c:?}: {got:?}, want {want:?}",
                    r.web.host
                );
            }
        }
        let o = observe(&partial());
        let failed: Vec<(Component, &str, Reason)> = o
            .failures
            .iter()
            .map(|f| (f.component, f.host.as_str(), f.reason))
            .collect();
        assert_eq!(
            failed,
            [
                (Component::Mail, "mail.partial.gov.lab", Reason::NoAaaa),
                (Component::Page, "cdn.v4.lab", Reason::NoAaaa),
                (Component::Page, "img.partial.gov.lab", Reason::NotServedV6),
            ]
        );
        assert_eq!(
            observe(&v4only()).tallies[&Component::Mail].not_applicable,
            Some(Reason::NoMx)
        );
    }

    #[test]
    fn a_different_certificate_or_page_over_ipv6_halves_the_web() {
        let mut r = good();
        r.web.same_certificate = Some(false);
        r.web.same_content = Some(false);
        let o = observe(&r);
        assert!(close(o.score(Component::Web), 0.5));
        let reasons: Vec<Reason> = o.failures.iter().map(|f| f.reason).collect();
        assert_eq!(reasons, [Reason::OtherCertificate, Reason::OtherContent]);
        // Nothing over IPv6 at all: the web and the page fail, AAAA alone passes.
        let mut r = good();
        r.web.https_v6_status = None;
        r.web.v6_error = Some("connection refused".into());
        r.web.same_certificate = None;
        r.web.same_content = None;
        let o = observe(&r);
        assert!(close(o.score(Component::Web), 0.25));
        assert!(close(o.score(Component::Page), 0.0));
        assert!(
            o.failures.iter().any(|f| f.reason == Reason::HttpsV6
                && f.detail.as_deref() == Some("connection refused"))
        );
    }

    #[test]
    fn inconclusive_checks_are_not_failures() {
        // A resolver that failed everything: nothing is a failure, nothing is scored.
        let mut r = good();
        r.dns.ns_lookup = lookup(LookupStatus::Failed);
        r.dns.servers.clear();
        r.mail.as_mut().unwrap().mx_lookup = lookup(LookupStatus::Failed);
        r.mail.as_mut().unwrap().exchangers.clear();
        r.web.aaaa = Presence::Inconclusive;
        r.web.same_certificate = None;
        let o = observe(&r);
        assert!(o.failures.is_empty(), "{:?}", o.failures);
        for c in [
            Component::Dns,
            Component::Mail,
            Component::Web,
            Component::Page,
        ] {
            assert_eq!(o.score(c), None, "{c:?}");
        }
        let d = domain_score("x.lab", &[], &[&o]);
        assert_eq!(d.score, None);
        assert_eq!(
            d.inconclusive,
            [
                Component::Dns,
                Component::Mail,
                Component::Web,
                Component::Page
            ]
        );
        // One NS inconclusive, one fine: DNS is 1 over the decided one; a comparison IPv4
        // could not make is inconclusive, not a failure.
        let mut r = good();
        r.dns.servers[1] = ns("ns2.good.gov.lab", Presence::Inconclusive, None);
        r.web.same_content = None;
        let o = observe(&r);
        assert!(close(o.score(Component::Dns), 1.0));
        assert!(close(o.score(Component::Web), 1.0));
        assert_eq!(o.tallies[&Component::Dns].inconclusive, 1);
        assert_eq!(o.tallies[&Component::Web].inconclusive, 1);
        // A fetch over IPv6 not made (packet allowance, the probe's target policy) or
        // stopped for a reason that says nothing of the site: AAAA alone is scored, and
        // the page is inconclusive, not failed.
        for (connect, inconclusive) in [(None, false), (Some(ConnectOutcome::Connected), true)] {
            let mut r = good();
            r.web.https_v6_connect = connect;
            r.web.https_v6_status = None;
            r.web.v6_inconclusive = inconclusive;
            r.web.v6_error = Some("not run: the measurement's packet allowance was spent".into());
            r.web.same_certificate = None;
            r.web.same_content = None;
            let o = observe(&r);
            assert!(o.failures.is_empty(), "{:?}", o.failures);
            assert!(close(o.score(Component::Web), 1.0));
            assert_eq!(o.tallies[&Component::Web].inconclusive, 3);
            assert_eq!(o.score(Component::Page), None);
        }
    }

    #[test]
    fn domains_take_the_median_over_probes_and_entities_the_mean_of_domains() {
        // Three probes of partial.gov.lab, one of which sees its image host work.
        let mut lucky = partial();
        lucky.subresources.as_mut().unwrap().hosts[2] =
            sub("img.partial.gov.lab", Presence::Yes, Some(true));
        let obs = [observe(&partial()), observe(&partial()), observe(&lucky)];
        let refs: Vec<&Observation> = obs.iter().collect();
        let entities = [Entity {
            name: "Ministry".into(),
            domains: vec!["partial.gov.lab".into(), "v4only.gov.lab".into()],
        }];
        let d = domain_score("partial.gov.lab", &entities, &refs);
        assert!(close(d.page.score, 1.0 / 3.0));
        assert!(close(d.score, (1.0 + 0.0 + 1.0 + 1.0 / 3.0) / 4.0));
        assert_eq!(d.entities, ["Ministry"]);
        let img = d
            .failures
            .iter()
            .find(|f| f.host == "img.partial.gov.lab")
            .unwrap();
        assert_eq!((img.reason, img.probes), (Reason::NotServedV6, 2));
        // Two probes: the mean of the two.
        let d2 = domain_score("partial.gov.lab", &entities, &refs[1..]);
        assert!(close(d2.page.score, (1.0 / 3.0 + 2.0 / 3.0) / 2.0));
        // No MX: scored over the three other components.
        let v4 = observe(&v4only());
        let d4 = domain_score("v4only.gov.lab", &entities, &[&v4]);
        assert_eq!(d4.mail.not_applicable, Some(Reason::NoMx));
        assert!(close(d4.score, 0.5 / 3.0));
        let e = entity_scores(&entities, &[d.clone(), d4.clone()]);
        assert!(close(
            e[0].score,
            (d.score.unwrap() + d4.score.unwrap()) / 2.0
        ));
        // A domain without results is listed, not counted as 0.
        let empty = domain_score("v4only.gov.lab", &entities, &[]);
        assert_eq!(empty.score, None);
        let e = entity_scores(&entities, &[d.clone(), empty]);
        assert!(close(e[0].score, d.score.unwrap()));
        assert_eq!(e[0].domains_without_score, ["v4only.gov.lab"]);
    }

    #[test]
    fn the_trend_scores_each_day_from_that_days_newest_results() {
        const DAY: i64 = 86_400_000_000;
        let start = UnixMicros(1_790_000_000_000_000 - 1_790_000_000_000_000 % DAY);
        let at = |i: u64, probe: u64, t: i64, r: ReadinessResult| {
            let mut s = crate::export::samples::sample(i, 1, start, 0);
            s.result.key.probe_id = crate::export::samples::sample(probe, 3, start, 0)
                .result
                .key
                .probe_id;
            s.result.key.sequence = i + 1;
            s.result.started_at = UnixMicros(start.0 + t);
            s.result.outcome = Outcome::Readiness(Box::new(r));
            s
        };
        let entities = [Entity {
            name: "Ministry".into(),
            domains: vec!["a.lab".into()],
        }];
        let mut trend = TrendBuilder::default();
        // Day 1: probe 0 partial then (later that day) good; day 2: probe 0 v4only.
        assert!(trend.add("a.lab", at(2, 0, 3_600_000_000, good())));
        assert!(trend.add("a.lab", at(1, 0, 60_000_000, partial())));
        assert!(trend.add("a.lab", at(3, 0, DAY + 60, v4only())));
        // Results of other kinds are skipped.
        assert!(trend.add("a.lab", crate::export::samples::sample(9, 1, start, 0)));
        let t = trend.finish(&["a.lab".into()], &entities);
        assert!(!t.partial);
        let days: Vec<(&str, Option<f64>, Option<f64>)> = t
            .days
            .iter()
            .map(|d| (d.day.as_str(), d.domains["a.lab"], d.entities["Ministry"]))
            .collect();
        assert_eq!(days.len(), 2);
        assert!(close(days[0].1, 1.0) && close(days[0].2, 1.0), "{days:?}");
        assert!(close(days[1].1, 0.5 / 3.0), "{days:?}");
        assert!(days[0].0 < days[1].0);

        // Every result read counts toward the bound, readiness or not.
        let mut trend = TrendBuilder::default();
        for _ in 0..MAX_TREND_RESULTS - 1 {
            assert!(trend.skip());
        }
        assert!(trend.add("a.lab", at(1, 0, 60, good())));
        assert!(!trend.add("a.lab", at(2, 0, 120, good())));
        let t = trend.finish(&["a.lab".into()], &entities);
        assert!(t.partial);
        assert_eq!(t.days.len(), 1);
    }

    #[test]
    fn the_html_section_says_what_failed_in_english_and_arabic() {
        let entities = [Entity {
            name: "Ministry <of> Health".into(),
            domains: vec!["partial.gov.lab".into()],
        }];
        let obs = observe(&partial());
        let domains = vec![domain_score("partial.gov.lab", &entities, &[&obs])];
        let report = ReadinessReport {
            method: READINESS_METHOD,
            weights: WEIGHTS.into_iter().collect(),
            entities: entity_scores(&entities, &domains),
            domains,
            trend: None,
        };
        let catalog = crate::i18n::Catalog::builtin().unwrap();
        let en = to_html(&report, catalog.find("en").unwrap());
        assert!(en.contains("Government IPv6 readiness"), "{en}");
        assert!(en.contains("IPv6-only page: cdn.v4.lab: no AAAA"), "{en}");
        assert!(en.contains("Mail: mail.partial.gov.lab: no AAAA"), "{en}");
        assert!(en.contains("Ministry &lt;of&gt; Health"), "{en}");
        assert!(!en.contains("<of>"), "{en}");
        let ar = to_html(&report, catalog.find("ar").unwrap());
        assert!(ar.contains("جاهزية الجهات الحكومية"), "{ar}");
        assert!(ar.contains("cdn.v4.lab: لا يوجد AAAA"), "{ar}");
        // Arabic-Indic digits in the scores.
        assert!(ar.contains('٪') || ar.contains('%'), "{ar}");
        let csv = csv_rows(&report);
        assert!(
            csv.contains("readiness_failure,partial.gov.lab,,,,page:no_aaaa,cdn.v4.lab,,1,,,https://cdn.v4.lab/x.js\n"),
            "{csv}"
        );
        assert!(
            csv.contains(
                "readiness_entity,Ministry <of> Health,,,,score,0.5833,,1,,,partial.gov.lab\n"
            ),
            "{csv}"
        );
    }
}
