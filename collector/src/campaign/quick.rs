//! Quick measurements (issue #21): "ping X from FR, AS3215 and tag:v6-works, 10 probes", run
//! at once on connected probes and followed live.
//!
//! A quick measurement **is a campaign**: a one-off schedule starting now with no spread, one
//! target, one measurement table, and [`Quick`] in its spec (the `from` entries, the probes
//! asked for, the deadline). So it goes through the campaigns' own budgets (the owner's hourly
//! limit; `Campaigns::create_selected`), task ids, assignment over the live sessions
//! (`registry`), results indexed under its id (cells, progress, report), the ticker (which
//! ends it at its deadline and cancels what probes still hold) and the probes' own policy and
//! packet budget. What differs is the selection: only probes connected to this collector,
//! any `from` entry matching (a union: "from FR and from AS3215"), spread across operators
//! round-robin, at most [`MAX_PROBES`]; and a per-owner rate ([`MAX_PER_MINUTE`]).

use super::selection::stable_hash;
use super::spec::{self, CampaignTaskSpec, ScheduleInput, SpecFieldError, SpecInput};
use super::{CampaignError, CampaignRecord, Campaigns, lock};
use crate::store::ProbeRecord;
use serde::Deserialize;
use sixmap_shared::health::TagName;
use sixmap_shared::prefixes::CountryCode;
use sixmap_shared::{ProbeId, TaskId, UnixMicros};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;
use tracing::info;

/// Most probes one quick measurement may use.
pub const MAX_PROBES: u32 = 50;
/// Probes used when the request does not say.
pub const DEFAULT_PROBES: u32 = 10;
/// Most `from` entries in one request.
pub const MAX_FROM: usize = 10;
/// Quick measurements one owner may start per minute: each one sends packets from
/// volunteers' links at once, so a script in a loop must not turn them into a load generator.
pub const MAX_PER_MINUTE: usize = 10;
/// Time after the longest measurement timeout for results to be uploaded and stored.
pub const UPLOAD_GRACE: Duration = Duration::from_secs(20);
/// Longest a quick measurement is followed, whatever its timeouts say.
pub const MAX_DEADLINE: Duration = Duration::from_secs(180);
/// Timeout of a measurement table that names none.
const DEFAULT_TIMEOUT_MS: u64 = 5000;
/// Owners remembered by the rate; beyond, the oldest entries are forgotten first.
const MAX_OWNERS: usize = 10_000;

/// What makes a campaign a quick measurement: part of the spec it is stored in.
pub use super::spec::Quick;

/// A `from` entry (where to measure from): a country, an origin AS or a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Country(CountryCode),
    Asn(u32),
    Tag(TagName),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Country(c) => write!(f, "{c}"),
            Source::Asn(a) => write!(f, "AS{a}"),
            Source::Tag(t) => write!(f, "tag:{t}"),
        }
    }
}

impl Source {
    /// `FR` (any case), `AS3215` (any case), `tag:v6-works`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let shown: String = text.chars().take(40).collect();
        if let Some(tag) = text.strip_prefix("tag:") {
            return TagName::new(tag)
                .map(Source::Tag)
                .map_err(|e| format!("{shown:?}: {e}"));
        }
        if text.len() > 2 && text[..2].eq_ignore_ascii_case("as") {
            return text[2..]
                .parse::<u32>()
                .ok()
                .filter(|&asn| asn > 0)
                .map(Source::Asn)
                .ok_or_else(|| format!("{shown:?} is not an AS number like AS3215"));
        }
        if text.len() == 2 {
            return text
                .to_ascii_uppercase()
                .parse::<CountryCode>()
                .map(Source::Country)
                .map_err(|e| format!("{shown:?}: {e}"));
        }
        Err(format!(
            "{shown:?} is not a country code (FR), an AS number (AS3215) or a tag (tag:v6-works)"
        ))
    }

    fn matches(&self, probe: &ProbeRecord) -> bool {
        let origin = probe.origin.as_ref();
        match self {
            Source::Country(c) => origin.and_then(|o| o.country) == Some(*c),
            Source::Asn(a) => origin.and_then(|o| o.asn) == Some(*a),
            Source::Tag(t) => probe.tags.iter().any(|pt| &pt.name == t),
        }
    }
}

/// A quick measurement as requested: `{kind, target, from, probes, ...kind options}`, the
/// options being the keys of a campaign's measurement table (`count`, `port`, `family`...).
#[derive(Debug, Clone, Deserialize)]
pub struct Request {
    pub target: String,
    #[serde(default)]
    pub from: Vec<String>,
    pub probes: Option<u32>,
    /// `kind` and its options.
    #[serde(flatten)]
    pub measurement: serde_json::Map<String, serde_json::Value>,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> CampaignError {
    CampaignError::Spec(SpecFieldError {
        field: field.into(),
        reason: reason.into(),
    })
}

/// Checks a request's bounds and turns it into a campaign spec (one target, one
/// measurement, once, now) with its tasks, and the parsed `from` entries.
pub fn spec_of(
    request: &Request,
    now: UnixMicros,
    lab_mode: bool,
) -> Result<(spec::CampaignSpec, Vec<CampaignTaskSpec>, Vec<Source>), CampaignError> {
    let probes = request.probes.unwrap_or(DEFAULT_PROBES);
    if !(1..=MAX_PROBES).contains(&probes) {
        return Err(invalid("probes", format!("must be 1..={MAX_PROBES}")));
    }
    if request.from.len() > MAX_FROM {
        return Err(invalid("from", format!("at most {MAX_FROM} entries")));
    }
    let from = request
        .from
        .iter()
        .enumerate()
        .map(|(i, text)| Source::parse(text).map_err(|e| invalid(format!("from[{i}]"), e)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut table = request.measurement.clone();
    let kind = match table.get("kind") {
        Some(serde_json::Value::String(kind)) => kind.clone(),
        _ => return Err(invalid("kind", "required: ping, traceroute, dns, tcp, ...")),
    };
    table
        .entry("timeout_ms")
        .or_insert_with(|| serde_json::json!(DEFAULT_TIMEOUT_MS));
    // `dns example.org`: the probes' own resolvers asked for the name, as one would with dig.
    if kind == "dns" && !table.contains_key("query_name") {
        table.insert("query_name".into(), serde_json::json!("{target}"));
        table
            .entry("system_resolver")
            .or_insert(serde_json::json!(true));
    }
    let target = request.target.trim();
    let input = SpecInput {
        name: format!(
            "quick {kind} {}",
            target.chars().take(100).collect::<String>()
        ),
        description: String::new(),
        targets: vec![target.to_owned()],
        targets_file: None,
        measurements: vec![table],
        selection: Default::default(),
        // Once, now, no spread: every probe runs it as soon as it gets it.
        schedule: ScheduleInput {
            spread_s: Some(0),
            ..ScheduleInput::default()
        },
        budget: Default::default(),
        entities: Vec::new(),
    };
    let (mut spec, tasks) = spec::validate(&input, now, lab_mode).map_err(|e| {
        // The request's keys are the spec's without their place in it.
        let field = e
            .field
            .strip_prefix("measurements[0].")
            .or_else(|| e.field.strip_prefix("targets[0]").map(|_| "target"))
            .unwrap_or(&e.field)
            .to_owned();
        invalid(field, e.reason)
    })?;
    if tasks.is_empty() {
        return Err(invalid(
            "target",
            "this measurement makes no task for this target (a DNS question about an address?)",
        ));
    }
    let longest = tasks
        .iter()
        .map(|t| t.spec.timeout)
        .max()
        .unwrap_or_default();
    let wait = (longest + UPLOAD_GRACE).min(MAX_DEADLINE);
    spec.quick = Some(Quick {
        from: from.iter().map(ToString::to_string).collect(),
        probes_requested: probes,
        deadline: UnixMicros(now.0.saturating_add(wait.as_micros() as i64)),
    });
    Ok((spec, tasks, from))
}

/// Picks up to `n` of `connected` probes matching any of `from` (all of them when `from` is
/// empty), spread across operators: one per origin AS in turn (probes without an origin AS
/// form one group), each operator's probes in an order hashed with `seed`, so repeated
/// measurements do not always load the same volunteer. An entry that matches no connected
/// probe is an error naming it.
pub fn select(
    connected: &[ProbeRecord],
    known: &[ProbeRecord],
    from: &[Source],
    n: u32,
    seed: u64,
) -> Result<Vec<ProbeRecord>, CampaignError> {
    for (i, entry) in from.iter().enumerate() {
        if !connected.iter().any(|p| entry.matches(p)) {
            let offline = known.iter().filter(|p| entry.matches(p)).count();
            let reason = if offline == 0 {
                format!("no known probe matches {entry}")
            } else {
                format!("{offline} known probes match {entry} but none is connected now")
            };
            return Err(invalid(format!("from[{i}]"), reason));
        }
    }
    if connected.is_empty() {
        return Err(invalid(
            "from",
            "no probe is connected to this collector now",
        ));
    }
    let mut by_asn: BTreeMap<Option<u32>, Vec<&ProbeRecord>> = BTreeMap::new();
    for p in connected
        .iter()
        .filter(|p| from.is_empty() || from.iter().any(|e| e.matches(p)))
    {
        by_asn
            .entry(p.origin.as_ref().and_then(|o| o.asn))
            .or_default()
            .push(p);
    }
    let mut groups: Vec<VecDeque<&ProbeRecord>> = by_asn
        .into_values()
        .map(|mut group| {
            group.sort_by_key(|p| stable_hash(&[&seed.to_be_bytes(), p.id.as_str().as_bytes()]));
            group.into()
        })
        .collect();
    // Which operator comes first changes with the seed too, so N smaller than the number of
    // operators does not always leave out the same ones.
    let rotate = (seed % groups.len().max(1) as u64) as usize;
    groups.rotate_left(rotate);
    let mut chosen = Vec::new();
    while chosen.len() < n as usize {
        let before = chosen.len();
        for group in &mut groups {
            if chosen.len() == n as usize {
                break;
            }
            if let Some(p) = group.pop_front() {
                chosen.push(p.clone());
            }
        }
        if chosen.len() == before {
            break;
        }
    }
    Ok(chosen)
}

/// Recent quick measurements per owner (their start times), for [`MAX_PER_MINUTE`].
#[derive(Debug, Default)]
pub struct OwnerRate {
    starts: HashMap<String, VecDeque<i64>>,
}

impl OwnerRate {
    /// Takes a place for `owner` at `now`, or says when one frees up.
    fn take(&mut self, owner: &str, now: UnixMicros) -> Result<(), Duration> {
        const MINUTE: i64 = 60_000_000;
        if self.starts.len() >= MAX_OWNERS {
            self.starts
                .retain(|_, s| s.back().is_some_and(|&t| now.0 - t < MINUTE));
        }
        let starts = self.starts.entry(owner.to_owned()).or_default();
        while starts.front().is_some_and(|&t| now.0 - t >= MINUTE) {
            starts.pop_front();
        }
        if starts.len() >= MAX_PER_MINUTE {
            let oldest = starts.front().copied().unwrap_or(now.0);
            let wait = MINUTE - (now.0 - oldest);
            return Err(Duration::from_micros(u64::try_from(wait).unwrap_or(0)));
        }
        starts.push_back(now.0);
        Ok(())
    }

    /// Returns the place taken last by `owner`: the measurement was refused after all.
    fn give_back(&mut self, owner: &str) {
        if let Some(starts) = self.starts.get_mut(owner) {
            starts.pop_back();
        }
    }
}

impl Campaigns {
    /// Starts a quick measurement for `owner`; blocking (store I/O). Nothing is sent unless
    /// the request is valid, the owner within its rate and budgets, and every `from` entry
    /// matches a connected probe.
    pub fn create_quick(
        &self,
        owner: &str,
        request: &Request,
        now: UnixMicros,
    ) -> Result<CampaignRecord, CampaignError> {
        let (spec, tasks, from) = spec_of(request, now, self.lab_mode)?;
        let known = self.store.probes()?;
        let connected: Vec<ProbeRecord> = known
            .iter()
            .filter(|p| p.revoked_at.is_none() && self.is_connected(&p.id))
            .cloned()
            .collect();
        let requested = spec
            .quick
            .as_ref()
            .map_or(DEFAULT_PROBES, |q| q.probes_requested);
        let seed = stable_hash(&[owner.as_bytes(), &now.0.to_be_bytes()]);
        let chosen = select(&connected, &known, &from, requested, seed)?;
        lock(&self.quick_rate)
            .take(owner.trim(), now)
            .map_err(|wait| {
                CampaignError::TooMany(format!(
                    "{owner:?} may start {MAX_PER_MINUTE} quick measurements a minute; retry in \
                     {} s",
                    wait.as_secs().max(1)
                ))
            })?;
        let text = serde_json::json!({
            "target": request.target,
            "from": request.from,
            "probes": requested,
            "measurement": request.measurement,
        })
        .to_string();
        let record = self
            .create_selected(owner, spec, tasks, chosen, &text, now)
            .inspect_err(|_| lock(&self.quick_rate).give_back(owner.trim()))?;
        info!(
            campaign = record.id,
            owner,
            probes = record.probes.len(),
            "quick measurement started"
        );
        Ok(record)
    }

    /// The quick measurement `id` as `by` may see it: another owner's (unless `by` is an
    /// admin) and campaigns that are no quick measurement are "not found", so ids reveal
    /// nothing.
    pub fn quick(&self, id: u64, by: super::Writer<'_>) -> Result<CampaignRecord, CampaignError> {
        let record = self.load(id)?;
        if record.spec.quick.is_none() || by.check(&record).is_err() {
            return Err(CampaignError::NotFound(id));
        }
        Ok(record)
    }
}

/// Whether every chosen probe answered every task of `record`, given the (probe, task) pairs
/// that have a result.
pub fn all_answered(record: &CampaignRecord, answered: &HashSet<(ProbeId, TaskId)>) -> bool {
    record.probes.iter().all(|p| {
        record
            .tasks
            .iter()
            .all(|t| answered.contains(&(p.probe.clone(), t.task_id)))
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{NOW, fleet, probe, service};
    use super::*;

    fn request(json: serde_json::Value) -> Request {
        serde_json::from_value(json).unwrap()
    }

    fn field(e: CampaignError) -> String {
        match e {
            CampaignError::Spec(e) => format!("{}: {}", e.field, e.reason),
            other => panic!("not a field error: {other}"),
        }
    }

    #[test]
    fn from_entries_parse_and_name_what_is_wrong() {
        assert_eq!(
            Source::parse("fr").unwrap(),
            Source::Country("FR".parse().unwrap())
        );
        assert_eq!(Source::parse("as3215").unwrap(), Source::Asn(3215));
        assert_eq!(Source::parse("AS3215").unwrap().to_string(), "AS3215");
        assert_eq!(
            Source::parse("tag:v6-works").unwrap().to_string(),
            "tag:v6-works"
        );
        for bad in ["France", "A5", "ASx", "AS0", "tag:", "tag:UPPER", "F1", ""] {
            assert!(Source::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn requests_are_bounded_and_errors_name_the_key() {
        let ok = request(serde_json::json!({
            "kind": "ping", "target": "example.org", "from": ["XA"], "probes": 3, "count": 2
        }));
        let (spec, tasks, from) = spec_of(&ok, NOW, false).unwrap();
        assert_eq!((tasks.len(), from.len()), (1, 1));
        let quick = spec.quick.unwrap();
        assert_eq!(quick.probes_requested, 3);
        // The default 5 s timeout, then the upload grace.
        assert_eq!(quick.deadline.0 - NOW.0, 25_000_000);
        assert!(spec.schedule.every.is_none());
        let with = |patch: serde_json::Value| {
            let mut json = serde_json::json!({"kind": "ping", "target": "example.org"});
            for (k, v) in patch.as_object().unwrap() {
                json[k] = v.clone();
            }
            field(spec_of(&request(json), NOW, false).unwrap_err())
        };
        assert!(with(serde_json::json!({"probes": 51})).starts_with("probes:"));
        assert!(with(serde_json::json!({"probes": 0})).starts_with("probes:"));
        let many: Vec<String> = (0..11).map(|i| format!("AS{}", i + 1)).collect();
        assert!(with(serde_json::json!({ "from": many })).starts_with("from:"));
        assert!(with(serde_json::json!({"from": ["XA", "Narnia"]})).starts_with("from[1]:"));
        assert!(with(serde_json::json!({"kind": "pong"})).starts_with("kind:"));
        assert!(with(serde_json::json!({"count": 100000})).starts_with("count:"));
        assert!(with(serde_json::json!({"frobnicate": 1})).contains("frobnicate"));
        // A documentation address is no public target outside lab mode.
        assert!(with(serde_json::json!({"target": "2001:db8::1"})).starts_with("target:"));
        // dns defaults to the probes' own resolver asking about the target.
        let dns = request(serde_json::json!({"kind": "dns", "target": "example.org"}));
        let (_, tasks, _) = spec_of(&dns, NOW, false).unwrap();
        let debug = format!("{:?}", tasks[0].spec);
        assert!(debug.contains("example.org"), "{debug}");
    }

    #[test]
    fn selection_is_a_union_spread_across_operators() {
        let fleet = fleet();
        let xa: Source = Source::parse("XA").unwrap();
        let xb: Source = Source::parse("XB").unwrap();
        // Four XA probes of two operators and one without an AS: 2 probes → two groups.
        let two = select(&fleet, &fleet, std::slice::from_ref(&xa), 2, 7).unwrap();
        let groups: HashSet<_> = two
            .iter()
            .map(|p| p.origin.as_ref().and_then(|o| o.asn))
            .collect();
        assert_eq!(groups.len(), 2, "{two:?}");
        assert!(two.iter().all(|p| xa.matches(p)));
        // XB or AS64501: the union.
        let union = select(&fleet, &fleet, &[xb.clone(), Source::Asn(64501)], 10, 7).unwrap();
        let mut asns: Vec<_> = union
            .iter()
            .map(|p| p.origin.as_ref().and_then(|o| o.asn))
            .collect();
        asns.sort();
        assert_eq!(asns, [Some(64501), Some(64502)]);
        // No entry: every connected probe, up to n.
        assert_eq!(
            select(&fleet, &fleet, &[], 50, 1).unwrap().len(),
            fleet.len()
        );
        assert_eq!(select(&fleet, &fleet, &[], 3, 1).unwrap().len(), 3);
        // An entry that matches nothing connected is named, with whether probes are offline.
        let connected: Vec<_> = fleet.iter().filter(|p| !xb.matches(p)).cloned().collect();
        let e = field(select(&connected, &fleet, &[xa.clone(), xb], 5, 1).unwrap_err());
        assert_eq!(
            e,
            "from[1]: 1 known probes match XB but none is connected now"
        );
        let e = field(select(&connected, &fleet, &[Source::Asn(3215)], 5, 1).unwrap_err());
        assert_eq!(e, "from[0]: no known probe matches AS3215");
        let e = field(select(&[], &fleet, &[], 5, 1).unwrap_err());
        assert!(e.starts_with("from: no probe is connected"), "{e}");
    }

    #[test]
    fn owners_are_rate_limited_each_on_their_own() {
        let mut rate = OwnerRate::default();
        for _ in 0..MAX_PER_MINUTE {
            rate.take("a", NOW).unwrap();
        }
        let wait = rate.take("a", UnixMicros(NOW.0 + 1_000_000)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(59));
        rate.take("b", NOW).unwrap();
        rate.take("a", UnixMicros(NOW.0 + 60_000_000)).unwrap();
    }

    #[tokio::test]
    async fn a_quick_measurement_goes_to_connected_probes_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = fleet();
        let c = service(dir.path(), &fleet, None);
        // Probes 1 (AS64500) and 4 (AS64501) in XA, 5 in XB connected; 2 and 3 not.
        let mut streams = Vec::new();
        for n in [1u8, 4, 5] {
            let (tx, rx) = tokio::sync::mpsc::channel(8);
            c.connected(&probe(n, None, "XA").id, tx);
            streams.push((n, rx));
        }
        let ask = request(serde_json::json!({
            "kind": "ping", "target": "example.org", "from": ["XA"], "probes": 5
        }));
        let record = c.create_quick("alice", &ask, NOW).unwrap();
        let mut chosen: Vec<_> = record.probes.iter().map(|p| p.asn).collect();
        chosen.sort();
        assert_eq!(chosen, [Some(64500), Some(64501)]);
        for (n, rx) in &mut streams {
            let got = rx.try_recv();
            match (n, got) {
                (1 | 4, Ok(sixmap_shared::session::CollectorMessage::Assign(a))) => {
                    assert_eq!(a.interval, None);
                    assert_eq!(a.not_before, None, "runs at once");
                    assert_eq!(a.task_id, record.tasks[0].task_id);
                }
                (5, Err(_)) => {}
                (n, got) => panic!("probe {n}: {got:?}"),
            }
        }
        assert!(
            c.store
                .is_assigned(&probe(1, None, "").id, record.tasks[0].task_id)
                .unwrap()
        );
        // Another owner does not see it; its owner and an admin do; a campaign is no quick
        // measurement.
        let bob = super::super::Writer {
            name: "bob",
            admin: false,
        };
        assert!(matches!(
            c.quick(record.id, bob),
            Err(CampaignError::NotFound(_))
        ));
        let alice = super::super::Writer {
            name: "alice",
            admin: false,
        };
        assert_eq!(c.quick(record.id, alice).unwrap().id, record.id);
        let admin = super::super::Writer {
            name: "ops",
            admin: true,
        };
        assert!(c.quick(record.id, admin).is_ok());
        let plain = c
            .create("alice", "toml", super::super::tests::SPEC, NOW)
            .unwrap();
        assert!(matches!(
            c.quick(plain.id, alice),
            Err(CampaignError::NotFound(_))
        ));
        // (The campaign went to every connected probe.)
        for (_, rx) in &mut streams {
            while rx.try_recv().is_ok() {}
        }
        // An entry with no connected probe: refused, nothing stored or sent.
        let before = c.all().unwrap().len();
        let nowhere = request(serde_json::json!({
            "kind": "ping", "target": "example.org", "from": ["XA", "XC"]
        }));
        let e = field(c.create_quick("alice", &nowhere, NOW).unwrap_err());
        assert_eq!(e, "from[1]: no known probe matches XC");
        assert_eq!(c.all().unwrap().len(), before);
        assert!(streams.iter_mut().all(|(_, rx)| rx.try_recv().is_err()));
        // The ticker ends it at its deadline, with cancels to its probes.
        let late = UnixMicros(record.spec.quick.as_ref().unwrap().deadline.0 + 1);
        c.tick(late).unwrap();
        let ended = c.get(record.id).unwrap();
        assert_eq!(ended.status, super::super::CampaignStatus::Finished);
        let (_, rx) = &mut streams[0];
        assert!(matches!(
            rx.try_recv(),
            Ok(sixmap_shared::session::CollectorMessage::Cancel(_))
        ));
    }

    #[test]
    fn another_owners_quick_measurement_is_not_found_anywhere() {
        let dir = tempfile::tempdir().unwrap();
        let c = service(dir.path(), &fleet(), None);
        for n in 1..=2u8 {
            let (tx, rx) = tokio::sync::mpsc::channel(8);
            c.connected(&probe(n, None, "").id, tx);
            std::mem::forget(rx);
        }
        let ask =
            request(serde_json::json!({"kind": "ping", "target": "example.org", "probes": 1}));
        let id = c.create_quick("alice", &ask, NOW).unwrap().id;
        let who = |name, admin| super::super::Writer { name, admin };
        let listed = |by| c.summaries(by).unwrap().iter().any(|s| s.id == id);
        assert!(listed(who("alice", false)));
        assert!(listed(who("root", true)));
        assert!(!listed(who("bob", false)), "bob lists alice's measurement");
        let bob = who("bob", false);
        assert!(matches!(
            c.show_for(id, bob, NOW),
            Err(CampaignError::NotFound(_))
        ));
        assert!(matches!(
            c.report_for(id, bob, NOW),
            Err(CampaignError::NotFound(_))
        ));
        assert!(c.show_for(id, who("alice", false), NOW).is_ok());
        assert!(c.report_for(id, who("root", true), NOW).is_ok());
    }

    #[test]
    fn quick_measurements_spend_the_owners_budget_and_rate() {
        let dir = tempfile::tempdir().unwrap();
        // Owner limit: 3 probe-tests per hour across active campaigns.
        let c = service(dir.path(), &fleet(), Some(3));
        for n in 1..=6u8 {
            let (tx, rx) = tokio::sync::mpsc::channel(8);
            c.connected(&probe(n, None, "").id, tx);
            std::mem::forget(rx);
        }
        let ask = |probes: u32| {
            request(serde_json::json!({"kind": "ping", "target": "example.org", "probes": probes}))
        };
        let e = c.create_quick("alice", &ask(4), NOW).unwrap_err();
        assert!(matches!(e, CampaignError::OverBudget(_)), "{e}");
        // Refused over budget: no place taken in the rate.
        let mut started = 0;
        let mut at = NOW;
        while started < MAX_PER_MINUTE {
            let r = c.create_quick("alice", &ask(1), at).unwrap();
            // Ended at once, so the hourly budget does not fill up; the rate counts it still.
            c.cancel(
                r.id,
                super::super::Writer {
                    name: "alice",
                    admin: false,
                },
                "",
                at,
            )
            .unwrap();
            started += 1;
            at = UnixMicros(at.0 + 1);
        }
        let e = c.create_quick("alice", &ask(1), at).unwrap_err();
        assert!(matches!(e, CampaignError::TooMany(_)), "{e}");
        assert!(c.create_quick("bob", &ask(1), at).is_ok());
    }
}
