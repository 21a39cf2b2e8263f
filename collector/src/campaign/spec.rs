//! Campaign specs: what to measure, against which targets, from which probes, how often and
//! within which budget. A spec comes as TOML or JSON (the same keys); [`validate`] checks it
//! into a [`CampaignSpec`] and the measurement tasks it expands to, and every error names the
//! field (`targets[2]`, `measurements[0].kind`, `schedule.every_s`...) and the problem.
//!
//! Measurement tables take exactly the keys of the collector config's `[[tasks]]` tables
//! (see [`crate::config::TaskTable`]) and are checked by the same code
//! ([`crate::config::table_tasks`]), except that `targets` and `every_s` come from the
//! campaign, `family` may also be `"both"` (one task per family), `url` may contain
//! `{target}`, replaced by each target (a literal IPv6 address in brackets), and so may a
//! `dns` table's `query_name` (no task for address targets: an address is its own answer).
//! A `dns` table with `system_resolver = true` asks each probe's own resolver about the
//! target; the report's "AAAA published" and "A published" come from those answers.

use crate::config::{TaskTable, table_tasks};
use serde::{Deserialize, Serialize};
use sixmap_shared::UnixMicros;
use sixmap_shared::config::ConfigError;
use sixmap_shared::health::TagName;
use sixmap_shared::measurement::{Family, MeasurementKind, MeasurementSpec, Target};
use sixmap_shared::policy::classify;
use sixmap_shared::prefixes::CountryCode;
use std::time::Duration;

/// A spec field that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid campaign spec: `{field}`: {reason}")]
pub struct SpecFieldError {
    pub field: String,
    pub reason: String,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SpecFieldError {
    SpecFieldError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Shortest interval of a periodic campaign: a regulator's campaign runs on many probes, and
/// volunteers' links are not a load generator.
pub const MIN_CAMPAIGN_INTERVAL: Duration = Duration::from_secs(60);
/// The same in lab mode (`lab_mode = true`): lab networks are the operator's own, and a lab
/// test that waits for a campaign's next run (an alert on a target lost mid-campaign) should
/// take seconds, not minutes.
pub const LAB_MIN_CAMPAIGN_INTERVAL: Duration = Duration::from_secs(5);
/// Longest time a one-off campaign's runs may be spread over.
pub const MAX_ONCE_SPREAD: Duration = Duration::from_secs(3600);
/// Default spread of a one-off campaign's runs.
pub const DEFAULT_ONCE_SPREAD: Duration = Duration::from_secs(60);
pub const MAX_TARGETS: usize = 1000;
pub const MAX_MEASUREMENTS: usize = 16;
/// Upper bound on tasks (targets × measurements × families) in one campaign.
pub const MAX_TASKS: usize = 2000;
pub const MAX_NAME_LEN: usize = 200;

/// A spec as written; see the module documentation and `deploy/campaigns/*.toml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecInput {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Host names or addresses.
    #[serde(default)]
    pub targets: Vec<String>,
    /// A file of targets, one per line (`#` comments); read by the CLI, which sends the
    /// targets themselves. The collector refuses it: it reads no files for clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets_file: Option<String>,
    #[serde(default)]
    pub measurements: Vec<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub selection: Selection,
    #[serde(default)]
    pub schedule: ScheduleInput,
    #[serde(default)]
    pub budget: Budget,
    /// Entities (a ministry, an agency) grouping target domains, for the readiness report
    /// (`super::readiness`): an entity's score is the mean of its domains'. Domains not
    /// listed in `targets` are added to them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<Entity>,
}

/// Longest list of entities, and of domains per entity.
pub const MAX_ENTITIES: usize = 200;
pub const MAX_ENTITY_DOMAINS: usize = 100;

/// An entity and its domains (as targets, canonical after validation).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entity {
    pub name: String,
    pub domains: Vec<String>,
}

/// Which probes run the campaign. Empty lists select everything; the criteria combine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// ISO 3166-1 alpha-2 codes of the probes' origin (from the imported prefix data), in
    /// any case at decode (`de` is `DE`, as `probe_country` in queries) and upper case after.
    #[serde(default, deserialize_with = "upper_case")]
    pub countries: Vec<String>,
    /// Origin ASNs of the probes.
    #[serde(default)]
    pub asns: Vec<u32>,
    /// Probe tags the collector computed (e.g. `v6-works`); a probe needs all of them.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Stratification: at most this many probes per operator (origin ASN), picked by a
    /// stable hash of the probe id, connected probes first. Probes without an origin AS are
    /// then left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_operator: Option<u32>,
}

fn upper_case<'de, D: serde::Deserializer<'de>>(decoder: D) -> Result<Vec<String>, D::Error> {
    Ok(Vec::<String>::deserialize(decoder)?
        .into_iter()
        .map(|code| code.to_ascii_uppercase())
        .collect())
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleInput {
    /// RFC 3339 UTC time (`2026-12-01T08:00:00Z`); default: at creation.
    #[serde(default)]
    pub start: Option<String>,
    /// RFC 3339 UTC time after which nothing more runs; default: never (periodic) .
    #[serde(default)]
    pub stop: Option<String>,
    /// Seconds between runs; absent: the campaign runs once.
    #[serde(default)]
    pub every_s: Option<u64>,
    /// Seconds over which the probes' runs are spread (each probe and task at its own offset);
    /// default the interval, or 60 s for a one-off campaign.
    #[serde(default)]
    pub spread_s: Option<u64>,
}

/// Limits on what the campaign may cost volunteers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Probe-tests (one task run on one probe) per hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_hour: Option<u64>,
    /// Probe-tests over the whole campaign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// When the campaign runs, resolved against the time of creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub start: UnixMicros,
    pub stop: Option<UnixMicros>,
    /// `None`: once.
    pub every: Option<Duration>,
    pub spread: Duration,
}

/// A validated spec.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CampaignSpec {
    pub name: String,
    pub description: String,
    pub targets: Vec<String>,
    /// The measurement tables as given (for the report), checked.
    pub measurements: Vec<serde_json::Map<String, serde_json::Value>>,
    pub selection: Selection,
    pub schedule: Schedule,
    pub budget: Budget,
    /// Set for a quick measurement (`POST /api/v1/measurements`): a one-off campaign on
    /// connected probes whose results are followed live; absent for campaigns from specs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quick: Option<Quick>,
    /// Entities grouping targets (names canonical, every domain one of `targets`); absent in
    /// records stored before they existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<Entity>,
}

/// What makes a campaign a quick measurement (`super::quick`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quick {
    /// The `from` entries as given (normalised: `FR`, `AS3215`, `tag:v6-works`).
    pub from: Vec<String>,
    /// Probes asked for (the selection may find fewer).
    pub probes_requested: u32,
    /// When following stops and the ticker ends the measurement.
    pub deadline: UnixMicros,
}

/// One measurement of one target, as a task probes run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignTaskSpec {
    /// The campaign target it measures, as written in the spec.
    pub target: String,
    pub spec: MeasurementSpec,
}

impl CampaignSpec {
    /// Probe-tests one selected probe runs per hour (a one-off campaign's runs all count in
    /// its first hour).
    pub fn tests_per_probe_hour(&self, tasks: usize) -> u64 {
        let tasks = tasks as u64;
        match self.schedule.every {
            None => tasks,
            Some(every) => (tasks * 3600).div_ceil(every.as_secs().max(1)),
        }
    }

    /// Probe-tests one selected probe runs over the whole campaign; `None` if it never stops.
    pub fn tests_per_probe_total(&self, tasks: usize) -> Option<u64> {
        let tasks = tasks as u64;
        match self.schedule.every {
            None => Some(tasks),
            Some(every) => {
                let stop = self.schedule.stop?;
                let span_s =
                    u64::try_from(stop.0.saturating_sub(self.schedule.start.0) / 1_000_000)
                        .unwrap_or(0);
                Some(tasks * (span_s / every.as_secs().max(1) + 1))
            }
        }
    }
}

/// Parses a spec in `format` (`toml` or `json`).
pub fn parse(format: &str, text: &str) -> Result<SpecInput, SpecFieldError> {
    match format {
        "toml" => sixmap_shared::config::parse_toml(text).map_err(|e| invalid("spec", e)),
        "json" => serde_json::from_str(text).map_err(|e| invalid("spec", e.to_string())),
        other => Err(invalid(
            "format",
            format!("{other:?} is not \"toml\" or \"json\""),
        )),
    }
}

/// How far ahead a campaign may be scheduled to start.
pub const MAX_START_AHEAD: Duration = Duration::from_secs(366 * 86_400);
/// The longest a campaign with a stop time may run (ten years).
pub const MAX_DURATION: Duration = Duration::from_secs(3653 * 86_400);

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Reads an RFC 3339 UTC time (`YYYY-MM-DDTHH:MM:SSZ`, optional fraction ignored).
pub fn parse_time(text: &str) -> Option<UnixMicros> {
    let text = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix("+00:00"))?;
    let (date, time) = text.split_once(['T', ' '])?;
    let mut d = date.split('-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    let time = time.split('.').next()?;
    let mut t = time.split(':');
    let hour: i64 = t.next()?.parse().ok()?;
    let minute: i64 = t.next()?.parse().ok()?;
    let second: i64 = t.next()?.parse().ok()?;
    if d.next().is_some() || t.next().is_some() {
        return None;
    }
    // Years 1970..=9999 and real dates only: a year like 9223372036854775807 would wrap
    // the arithmetic below, and 2026-02-30 is no day at all.
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=i64::from(crate::store::filter::days_in_month(year, month as u32))).contains(&day)
        || hour > 23
        || minute > 59
    {
        return None;
    }
    if second > 60 {
        return None;
    }
    // Howard Hinnant's days-from-civil (the inverse of `daily::day_label`).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(UnixMicros(seconds * 1_000_000))
}

/// Checks `input` at time `now`; `lab_mode` allows private and documentation targets.
pub fn validate(
    input: &SpecInput,
    now: UnixMicros,
    lab_mode: bool,
) -> Result<(CampaignSpec, Vec<CampaignTaskSpec>), SpecFieldError> {
    let name = input.name.trim();
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(invalid(
            "name",
            format!("required, 1..={MAX_NAME_LEN} bytes"),
        ));
    }
    if input.targets_file.is_some() {
        return Err(invalid(
            "targets_file",
            "the collector reads no files for clients: list the targets in `targets` \
             (`sixmap-collector campaign create` reads targets_file for you)",
        ));
    }
    check_entity_shape(&input.entities)?;
    let listed = with_entity_domains(&input.targets, &input.entities)?;
    let targets = check_targets(&listed, lab_mode)?;
    let entities = check_entities(&input.entities, &targets)?;
    let schedule = check_schedule(&input.schedule, now, lab_mode)?;
    check_selection(&input.selection)?;
    if input.measurements.is_empty() {
        return Err(invalid(
            "measurements",
            "at least one measurement is required",
        ));
    }
    if input.measurements.len() > MAX_MEASUREMENTS {
        return Err(invalid(
            "measurements",
            format!("at most {MAX_MEASUREMENTS} measurements"),
        ));
    }
    let mut tasks = Vec::new();
    for (i, table) in input.measurements.iter().enumerate() {
        let key = format!("measurements[{i}]");
        tasks.extend(measurement_tasks(table, &key, &targets, &schedule)?);
        if tasks.len() > MAX_TASKS {
            return Err(invalid(
                "measurements",
                format!("more than {MAX_TASKS} tasks (targets × measurements × families)"),
            ));
        }
    }
    let longest = tasks
        .iter()
        .map(|t| t.spec.timeout)
        .max()
        .unwrap_or_default();
    if let Some(every) = schedule.every
        && every < longest
    {
        return Err(invalid(
            "schedule.every_s",
            format!(
                "{} s is shorter than the longest measurement timeout ({} ms)",
                every.as_secs(),
                longest.as_millis()
            ),
        ));
    }
    let spec = CampaignSpec {
        name: name.to_owned(),
        description: input.description.clone(),
        targets,
        measurements: input.measurements.clone(),
        selection: input.selection.clone(),
        schedule,
        budget: input.budget,
        quick: None,
        entities,
    };
    if spec.budget.per_hour == Some(0) || spec.budget.total == Some(0) {
        return Err(invalid(
            "budget",
            "a budget of 0 allows nothing: leave it out or raise it",
        ));
    }
    Ok((spec, tasks))
}

/// The targets followed by the entities' domains not among them (once each): an entity-only
/// spec measures its domains. The target cap comes first, and every name is parsed once
/// (a set of canonical names, not a comparison of each domain with every target).
fn with_entity_domains(
    targets: &[String],
    entities: &[Entity],
) -> Result<Vec<String>, SpecFieldError> {
    let too_many = || {
        invalid(
            "targets",
            format!("at most {MAX_TARGETS} targets, the entities' domains included"),
        )
    };
    if targets.len() > MAX_TARGETS {
        return Err(too_many());
    }
    let canonical = |t: &str| Target::parse(t.trim()).map(|t| t.to_string()).ok();
    let mut listed = targets.to_vec();
    let mut known: std::collections::HashSet<String> =
        targets.iter().filter_map(|t| canonical(t)).collect();
    for domain in entities.iter().flat_map(|e| &e.domains) {
        // One that does not parse joins as it is: `check_targets` names it.
        let added = match canonical(domain) {
            Some(name) => known.insert(name),
            None => true,
        };
        if added {
            if listed.len() == MAX_TARGETS {
                return Err(too_many());
            }
            listed.push(domain.clone());
        }
    }
    Ok(listed)
}

/// Bounds of the entity list, before its domains are parsed.
fn check_entity_shape(entities: &[Entity]) -> Result<(), SpecFieldError> {
    if entities.len() > MAX_ENTITIES {
        return Err(invalid(
            "entities",
            format!("at most {MAX_ENTITIES} entities"),
        ));
    }
    let mut names = std::collections::HashSet::new();
    for (i, entity) in entities.iter().enumerate() {
        let name = entity.name.trim();
        if name.is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
            return Err(invalid(
                format!("entities[{i}].name"),
                format!("required, 1..={MAX_NAME_LEN} bytes, no control characters"),
            ));
        }
        if !names.insert(name) {
            return Err(invalid(
                format!("entities[{i}].name"),
                format!("{name:?} is listed twice"),
            ));
        }
        if entity.domains.is_empty() || entity.domains.len() > MAX_ENTITY_DOMAINS {
            return Err(invalid(
                format!("entities[{i}].domains"),
                format!("1..={MAX_ENTITY_DOMAINS} domains"),
            ));
        }
    }
    Ok(())
}

/// The entities with canonical domain names, each a host-name target.
fn check_entities(entities: &[Entity], targets: &[String]) -> Result<Vec<Entity>, SpecFieldError> {
    let mut out = Vec::with_capacity(entities.len());
    for (i, entity) in entities.iter().enumerate() {
        let mut domains: Vec<String> = Vec::with_capacity(entity.domains.len());
        for (j, domain) in entity.domains.iter().enumerate() {
            let field = format!("entities[{i}].domains[{j}]");
            let target =
                Target::parse(domain.trim()).map_err(|e| invalid(&field, e.to_string()))?;
            if matches!(target, Target::Address(_)) {
                return Err(invalid(&field, "a domain name, not an address"));
            }
            let canonical = target.to_string();
            if !targets.contains(&canonical) {
                return Err(invalid(&field, format!("{canonical} is not a target")));
            }
            if domains.contains(&canonical) {
                return Err(invalid(&field, format!("{canonical} is listed twice")));
            }
            domains.push(canonical);
        }
        out.push(Entity {
            name: entity.name.trim().to_owned(),
            domains,
        });
    }
    Ok(out)
}

fn check_targets(targets: &[String], lab_mode: bool) -> Result<Vec<String>, SpecFieldError> {
    if targets.is_empty() {
        return Err(invalid("targets", "at least one target is required"));
    }
    if targets.len() > MAX_TARGETS {
        return Err(invalid("targets", format!("at most {MAX_TARGETS} targets")));
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(targets.len());
    for (i, text) in targets.iter().enumerate() {
        let field = format!("targets[{i}]");
        let target = Target::parse(text.trim()).map_err(|e| invalid(&field, e.to_string()))?;
        if let Target::Address(address) = target
            && let Some(category) = classify(address)
            && !lab_mode
        {
            return Err(invalid(
                &field,
                format!(
                    "{address} is a {category:?} address, not a public one; only a collector \
                     in lab mode (`lab_mode = true`) accepts such targets"
                ),
            ));
        }
        let canonical = target.to_string();
        if !seen.insert(canonical.clone()) {
            return Err(invalid(&field, format!("{canonical} is listed twice")));
        }
        out.push(canonical);
    }
    Ok(out)
}

fn check_schedule(
    input: &ScheduleInput,
    now: UnixMicros,
    lab_mode: bool,
) -> Result<Schedule, SpecFieldError> {
    let min_every = if lab_mode {
        LAB_MIN_CAMPAIGN_INTERVAL
    } else {
        MIN_CAMPAIGN_INTERVAL
    };
    let time = |field: &str, text: &Option<String>| {
        text.as_deref()
            .map(|t| {
                parse_time(t).ok_or_else(|| {
                    invalid(
                        field,
                        format!(
                            "{:?} is not an RFC 3339 UTC time like 2026-12-01T08:00:00Z \
                             (a real date in 1970..=9999)",
                            t.chars().take(40).collect::<String>()
                        ),
                    )
                })
            })
            .transpose()
    };
    let start = time("schedule.start", &input.start)?
        .unwrap_or(now)
        .max(now);
    not_after(
        "schedule.start",
        start,
        now,
        MAX_START_AHEAD,
        "ahead: create the campaign closer to its start",
    )?;
    let stop = time("schedule.stop", &input.stop)?;
    if let Some(stop) = stop {
        if stop <= start {
            return Err(invalid(
                "schedule.stop",
                "must be after schedule.start (and in the future)",
            ));
        }
        not_after(
            "schedule.stop",
            stop,
            start,
            MAX_DURATION,
            "after the start: campaigns run at most that long",
        )?;
    }
    let every = match input.every_s {
        None => None,
        Some(s) if Duration::from_secs(s) < min_every => {
            return Err(invalid(
                "schedule.every_s",
                format!(
                    "{s} s is shorter than the minimum {} s (leave it out to run once)",
                    min_every.as_secs()
                ),
            ));
        }
        Some(s) => Some(seconds_at_most(
            "schedule.every_s",
            s,
            Duration::from_secs(7 * 86_400),
            "more than a week",
        )?),
    };
    let spread = match (input.spread_s, every) {
        (None, Some(every)) => every,
        (None, None) => DEFAULT_ONCE_SPREAD,
        (Some(s), Some(every)) => seconds_at_most(
            "schedule.spread_s",
            s,
            every,
            &format!("longer than the interval ({} s)", every.as_secs()),
        )?,
        (Some(s), None) => seconds_at_most(
            "schedule.spread_s",
            s,
            MAX_ONCE_SPREAD,
            &format!("more than {} s", MAX_ONCE_SPREAD.as_secs()),
        )?,
    };
    Ok(Schedule {
        start,
        stop,
        every,
        spread,
    })
}

/// `Err` naming `field` when `time` is more than `bound` after `base`: "more than N days
/// {beyond}".
fn not_after(
    field: &str,
    time: UnixMicros,
    base: UnixMicros,
    bound: Duration,
    beyond: &str,
) -> Result<(), SpecFieldError> {
    if time.0 > base.0.saturating_add(micros(bound)) {
        return Err(invalid(
            field,
            format!("more than {} days {beyond}", bound.as_secs() / 86_400),
        ));
    }
    Ok(())
}

/// `seconds` as a duration, or `Err` naming `field` when it is more than `max`: "N s is
/// {beyond}".
fn seconds_at_most(
    field: &str,
    seconds: u64,
    max: Duration,
    beyond: &str,
) -> Result<Duration, SpecFieldError> {
    let duration = Duration::from_secs(seconds);
    if duration > max {
        return Err(invalid(field, format!("{seconds} s is {beyond}")));
    }
    Ok(duration)
}

fn check_selection(selection: &Selection) -> Result<(), SpecFieldError> {
    for (i, country) in selection.countries.iter().enumerate() {
        country
            .parse::<CountryCode>()
            .map_err(|e| invalid(format!("selection.countries[{i}]"), e.to_string()))?;
    }
    for (i, tag) in selection.tags.iter().enumerate() {
        TagName::new(tag).map_err(|e| invalid(format!("selection.tags[{i}]"), e.to_string()))?;
    }
    if let Some(k) = selection.per_operator
        && !(1..=1000).contains(&k)
    {
        return Err(invalid("selection.per_operator", "must be 1..=1000"));
    }
    Ok(())
}

/// The tasks of one measurement table over every target.
fn measurement_tasks(
    table: &serde_json::Map<String, serde_json::Value>,
    key: &str,
    targets: &[String],
    schedule: &Schedule,
) -> Result<Vec<CampaignTaskSpec>, SpecFieldError> {
    for reserved in ["targets", "every_s"] {
        if table.contains_key(reserved) {
            return Err(invalid(
                format!("{key}.{reserved}"),
                "given once for the whole campaign (top-level `targets`, `schedule.every_s`)",
            ));
        }
    }
    let both = table.get("family").and_then(|f| f.as_str()) == Some("both");
    let families: Vec<Option<&str>> = match table.get("family").and_then(|f| f.as_str()) {
        Some("both") => vec![Some("v6"), Some("v4")],
        Some(other) => vec![Some(other)],
        None => vec![None],
    };
    let url = table.get("url").and_then(|u| u.as_str());
    let query_name = table
        .get("query_name")
        .and_then(|q| q.as_str())
        .filter(|q| q.contains("{target}"));
    // A question for the probe host's own resolver is about the campaign's targets only: a
    // fixed name there would measure the volunteers' resolvers, not the targets (probes also
    // refuse private names and types other than A, AAAA and HTTPS).
    if table.get("system_resolver").and_then(|v| v.as_bool()) == Some(true) && query_name.is_none()
    {
        return Err(invalid(
            format!("{key}.query_name"),
            "with system_resolver = true it must contain {target}".to_string(),
        ));
    }
    let mut tasks = Vec::new();
    for target in targets {
        for family in &families {
            // "both" means both families of a name; an address literal has only its own.
            if both
                && let Ok(address) = target.parse::<std::net::IpAddr>()
                && family.is_some_and(|f| (f == "v6") != address.is_ipv6())
            {
                continue;
            }
            let mut object = table.clone();
            object.insert("targets".into(), serde_json::json!([target]));
            // The config's tables need an interval; a one-off campaign's tasks run once
            // whatever this says (the assignment carries no interval).
            let every = schedule.every.map_or(1, |e| e.as_secs());
            object.insert("every_s".into(), serde_json::json!(every));
            match family {
                Some(f) => object.insert("family".into(), serde_json::json!(f)),
                None => object.remove("family"),
            };
            if let Some(name) = query_name {
                // A DNS question about the target: an address literal is its own answer.
                if target.parse::<std::net::IpAddr>().is_ok() {
                    continue;
                }
                object.insert(
                    "query_name".into(),
                    serde_json::json!(name.replace("{target}", target)),
                );
            }
            if let Some(url) = url {
                let host = match target.parse::<std::net::Ipv6Addr>() {
                    Ok(v6) => format!("[{v6}]"),
                    Err(_) => target.clone(),
                };
                object.insert(
                    "url".into(),
                    serde_json::json!(url.replace("{target}", &host)),
                );
            }
            let parsed: TaskTable = serde_json::from_value(serde_json::Value::Object(object))
                .map_err(|e| invalid(key, e.to_string()))?;
            let made = table_tasks(&parsed, key, &|k, reason| {
                ConfigError::invalid(k, None, reason)
            })
            .map_err(|e| match e {
                ConfigError::Invalid { key, reason, .. } => invalid(key, reason),
                other => invalid(key, other.to_string()),
            })?;
            tasks.extend(made.into_iter().map(|task| CampaignTaskSpec {
                target: target.clone(),
                spec: task.spec,
            }));
        }
    }
    Ok(tasks)
}

/// The kind and family of a task, as reports name it (`http v6`).
pub fn task_label(spec: &MeasurementSpec) -> String {
    let family = match spec.family {
        Family::V6 => "v6",
        Family::V4 => "v4",
    };
    format!("{} {family}", spec.measurement_kind())
}

/// Kinds whose success says the target answered over the family used.
pub fn is_reachability_kind(kind: MeasurementKind) -> bool {
    !matches!(
        kind,
        MeasurementKind::Dns | MeasurementKind::Pmtu | MeasurementKind::ExtHeaders
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMicros = UnixMicros(1_790_000_000_000_000);

    const GOOD: &str = r#"
name = "lab"
targets = ["dual.lab", "2001:db8:1::1"]
[[measurements]]
kind = "ping"
timeout_ms = 3000
count = 2
[[measurements]]
kind = "http"
family = "both"
timeout_ms = 3000
url = "http://{target}/"
[schedule]
every_s = 300
"#;

    fn check(
        text: &str,
        lab: bool,
    ) -> Result<(CampaignSpec, Vec<CampaignTaskSpec>), SpecFieldError> {
        validate(&parse("toml", text)?, NOW, lab)
    }

    #[test]
    fn entities_group_targets_and_add_their_domains() {
        let text = format!(
            "{GOOD}\n[[entities]]\nname = \" Ministry of Health \"\n\
             domains = [\"Health.gov.lab\", \"dual.lab\"]\n"
        );
        let (spec, tasks) = check(&text, true).unwrap();
        // The domain joins the targets (canonical, once), and gets its tasks.
        assert_eq!(
            spec.targets,
            ["dual.lab", "2001:db8:1::1", "health.gov.lab"]
        );
        assert!(tasks.iter().any(|t| t.target == "health.gov.lab"));
        assert_eq!(
            spec.entities,
            [Entity {
                name: "Ministry of Health".into(),
                domains: vec!["health.gov.lab".into(), "dual.lab".into()],
            }]
        );
        // Stored records without entities still read.
        let mut json = serde_json::to_value(&spec).unwrap();
        json.as_object_mut().unwrap().remove("entities");
        let back: CampaignSpec = serde_json::from_value(json).unwrap();
        assert!(back.entities.is_empty());
    }

    #[test]
    fn entity_domains_count_toward_the_target_cap_before_they_are_compared() {
        let targets: Vec<String> = (0..MAX_TARGETS).map(|i| format!("t{i}.gov.lab")).collect();
        // Every target listed again by an entity (canonically equal): nothing is added.
        let again = vec![Entity {
            name: "All".into(),
            domains: targets
                .iter()
                .take(MAX_ENTITY_DOMAINS)
                .map(|t| t.to_uppercase())
                .collect(),
        }];
        assert_eq!(with_entity_domains(&targets, &again).unwrap(), targets);
        // One new domain past the cap is refused, naming the targets.
        let new = vec![Entity {
            name: "New".into(),
            domains: vec!["new.gov.lab".into()],
        }];
        let e = with_entity_domains(&targets, &new).unwrap_err();
        assert_eq!(e.field, "targets");
        assert!(e.reason.contains("entities' domains included"), "{e}");
        // Too many targets are refused before any entity domain is looked at.
        let mut over = targets.clone();
        over.push("x.gov.lab".into());
        let e = with_entity_domains(&over, &[]).unwrap_err();
        assert_eq!(e.field, "targets");
        // The largest entity list against the largest target list stays linear: 20 000
        // domains, each parsed once.
        let many: Vec<Entity> = (0..MAX_ENTITIES)
            .map(|i| Entity {
                name: format!("E{i}"),
                domains: (0..MAX_ENTITY_DOMAINS)
                    .map(|j| format!("t{}.gov.lab", (i * MAX_ENTITY_DOMAINS + j) % MAX_TARGETS))
                    .collect(),
            })
            .collect();
        let started = std::time::Instant::now();
        assert_eq!(
            with_entity_domains(&targets, &many).unwrap().len(),
            MAX_TARGETS
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn bad_entities_are_refused_naming_the_field() {
        for (entities, field, reason) in [
            (
                "[[entities]]\nname = \"\"\ndomains = [\"a.lab\"]\n",
                "entities[0].name",
                "required",
            ),
            (
                "[[entities]]\nname = \"X\"\ndomains = []\n",
                "entities[0].domains",
                "1..=",
            ),
            (
                "[[entities]]\nname = \"X\"\ndomains = [\"2001:db8::1\"]\n",
                "entities[0].domains[0]",
                "not an address",
            ),
            (
                "[[entities]]\nname = \"X\"\ndomains = [\"a.lab\", \"A.lab\"]\n",
                "entities[0].domains[1]",
                "twice",
            ),
            (
                "[[entities]]\nname = \"X\"\ndomains = [\"a.lab\"]\n\
                 [[entities]]\nname = \"X\"\ndomains = [\"b.lab\"]\n",
                "entities[1].name",
                "twice",
            ),
            (
                "[[entities]]\nname = \"X\"\ndomains = [\"not a name\"]\n",
                "targets[2]",
                "",
            ),
        ] {
            let e = check(&format!("{GOOD}\n{entities}"), true).unwrap_err();
            assert_eq!(e.field, field, "{entities}: {e}");
            assert!(e.reason.contains(reason), "{entities}: {e}");
        }
    }

    #[test]
    fn dns_questions_about_each_target_go_to_the_probes_resolvers() {
        let text = r#"
name = "dns"
targets = ["www.example.gov", "2001:db8:1::1"]
[[measurements]]
kind = "dns"
query_type = "AAAA"
query_name = "{target}"
system_resolver = true
timeout_ms = 3000
"#;
        let (_, tasks) = check(text, true).unwrap();
        // No question about the address literal.
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].target, "www.example.gov");
        match &tasks[0].spec.kind {
            sixmap_shared::measurement::SpecKind::Dns(d) => {
                assert_eq!(d.query_name(), "www.example.gov");
                assert_eq!(d.query_type(), 28);
                assert!(d.system_resolver());
            }
            other => panic!("{other:?}"),
        }
        let typo = text.replace("system_resolver", "system_resolvers");
        assert!(check(&typo, true).is_err());
        // A fixed name would measure the volunteers' resolvers, not the targets.
        let fixed = text.replace("query_name = \"{target}\"", "query_name = \"router.lan\"");
        let refused = check(&fixed, true).unwrap_err();
        assert_eq!(refused.field, "measurements[0].query_name", "{refused:?}");
    }

    #[test]
    fn readiness_campaigns_take_their_keys_and_refuse_bad_ones() {
        let text = r#"
name = "ministries"
targets = ["example.gov", "finance.example.gov"]
[[measurements]]
kind = "readiness"
timeout_ms = 30000
path = "/en/"
check_mail = false
max_subresource_hosts = 8
"#;
        let (_, tasks) = check(text, true).unwrap();
        assert_eq!(tasks.len(), 2);
        match &tasks[1].spec.kind {
            sixmap_shared::measurement::SpecKind::Readiness(r) => {
                assert_eq!(r.path(), "/en/");
                assert!(!r.check_mail() && r.check_subresources());
                assert_eq!(r.max_subresource_hosts(), 8);
                assert_eq!(r.web_host(), None);
            }
            other => panic!("{other:?}"),
        }
        for (bad, field) in [
            (
                text.replace("max_subresource_hosts = 8", "max_subresource_hosts = 99"),
                "measurements[0].max_subresource_hosts",
            ),
            (
                text.replace("path = \"/en/\"", "path = \"en\""),
                "measurements[0].path",
            ),
            // A key of another kind is refused, not ignored.
            (
                text.replace("check_mail = false", "port = 443"),
                "measurements[0].port",
            ),
            (
                text.replace("\"example.gov\",", "\"2001:db8::1\","),
                "measurements[0].targets",
            ),
        ] {
            let refused = check(&bad, true).unwrap_err();
            assert_eq!(refused.field, field, "{refused:?}");
        }
    }

    #[test]
    fn a_good_spec_expands_into_tasks() {
        let (spec, tasks) = check(GOOD, true).unwrap();
        // The name: ping, http v6, http v4; the IPv6 literal: ping and http v6 only.
        assert_eq!(spec.schedule.every, Some(Duration::from_secs(300)));
        assert_eq!(spec.schedule.spread, Duration::from_secs(300));
        let labels: Vec<_> = tasks
            .iter()
            .map(|t| format!("{} {}", t.target, task_label(&t.spec)))
            .collect();
        assert_eq!(
            labels,
            [
                "dual.lab ping v6",
                "2001:db8:1::1 ping v6",
                "dual.lab http v6",
                "dual.lab http v4",
                "2001:db8:1::1 http v6"
            ]
        );
        assert_eq!(spec.tests_per_probe_hour(tasks.len()), 60);
    }

    #[test]
    fn the_invalid_specs_of_the_issue_name_their_field() {
        // A public address in place of the lab one, so only the change under test is wrong.
        let good = GOOD.replace("2001:db8:1::1", "2001:500:2f::f");
        assert!(check(&good, false).is_ok());
        let cases: Vec<(String, &str, &str)> = vec![
            (
                good.replace("kind = \"ping\"", "kind = \"pingg\""),
                "measurements[0].kind",
                "pingg",
            ),
            (
                good.replace(
                    "targets = [\"dual.lab\", \"2001:500:2f::f\"]",
                    "targets = []",
                ),
                "targets",
                "at least one",
            ),
            (
                good.replace("every_s = 300", "every_s = 5"),
                "schedule.every_s",
                "minimum 60",
            ),
            (
                good.replace("every_s = 300", "every_s = 0"),
                "schedule.every_s",
                "minimum",
            ),
            (
                good.replace("2001:500:2f::f", "10.1.2.3"),
                "targets[1]",
                "lab mode",
            ),
            (
                good.replace("2001:500:2f::f", "fd00::1"),
                "targets[1]",
                "UniqueLocal",
            ),
            (
                good.replace("[schedule]", "[schedule]\nstop = \"2020-01-01T00:00:00Z\""),
                "schedule.stop",
                "after",
            ),
            (
                good.replace(
                    "[schedule]",
                    "[schedule]\nstart = \"9223372036854775807-01-01T00:00:00Z\"",
                ),
                "schedule.start",
                "1970..=9999",
            ),
            (
                good.replace("[schedule]", "[schedule]\nstart = \"2026-02-30T00:00:00Z\""),
                "schedule.start",
                "real date",
            ),
            (
                good.replace("[schedule]", "[schedule]\nstart = \"2099-01-01T00:00:00Z\""),
                "schedule.start",
                "days ahead",
            ),
            (
                good.replace("[schedule]", "[schedule]\nstop = \"9999-01-01T00:00:00Z\""),
                "schedule.stop",
                "days after the start",
            ),
            (
                good.replace("count = 2", "count = 2\nurl = \"x\""),
                "measurements[0].url",
                "not a key of kind ping",
            ),
            (
                good.replace(
                    "[schedule]",
                    "[selection]\ncountries = [\"x1\"]\n[schedule]",
                ),
                "selection.countries[0]",
                "country code",
            ),
        ];
        for (text, field, reason) in cases {
            let err = check(&text, false).unwrap_err();
            assert_eq!(err.field, field, "{err}");
            assert!(err.to_string().contains(reason), "{err}");
        }
        // Country codes in lower case are taken as upper case, as the query API does.
        let lower = good.replace(
            "[schedule]",
            "[selection]\ncountries = [\"de\"]\n[schedule]",
        );
        assert!(check(&lower, false).is_ok());
        let json = r#"{"name": "x", "targets": ["2001:500:2f::f"],
            "measurements": [{"kind": "ping"}], "selection": {"countries": ["de", "Fr"]}}"#;
        assert_eq!(
            parse("json", json).unwrap().selection.countries,
            ["DE", "FR"]
        );
        // Lab mode allows the private target; a documentation address needs it too.
        assert!(check(&good.replace("2001:500:2f::f", "10.1.2.3"), true).is_ok());
        // Lab mode allows a 5 s interval (lab tests wait for a campaign's next run), not less.
        let lab = good.replace("2001:500:2f::f", "10.1.2.3");
        assert!(check(&lab.replace("every_s = 300", "every_s = 5"), true).is_ok());
        let err = check(&lab.replace("every_s = 300", "every_s = 4"), true).unwrap_err();
        assert!(err.to_string().contains("minimum 5"), "{err}");
        let err = check(GOOD, false).unwrap_err();
        assert_eq!(err.field, "targets[1]", "{err}");
    }

    #[test]
    fn json_and_toml_specs_are_the_same() {
        let toml = parse("toml", GOOD).unwrap();
        let json = serde_json::to_string(&toml).unwrap();
        let again = parse("json", &json).unwrap();
        let (a, ta) = validate(&toml, NOW, true).unwrap();
        let (b, tb) = validate(&again, NOW, true).unwrap();
        assert_eq!(ta, tb);
        assert_eq!(a.targets, b.targets);
        let err = parse("json", "{\"name\": \"x\", \"colour\": 1}").unwrap_err();
        assert!(err.reason.contains("colour"), "{err}");
    }

    #[test]
    fn times_parse() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(UnixMicros(0)));
        assert_eq!(
            parse_time("2026-11-23T18:00:00Z"),
            Some(UnixMicros(1_795_456_800_000_000))
        );
        assert_eq!(parse_time("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_time("2026-11-23"), None);
    }

    #[test]
    fn the_templates_are_valid_once_given_targets() {
        for (name, text) in [
            (
                "government-portals",
                include_str!("../../../deploy/campaigns/government-portals.toml"),
            ),
            (
                "operator-ranking",
                include_str!("../../../deploy/campaigns/operator-ranking.toml"),
            ),
        ] {
            let mut input = parse("toml", text).unwrap();
            input.targets.push("www.example.org".into());
            let (spec, tasks) =
                validate(&input, NOW, false).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(spec.selection.per_operator.is_some(), "{name}");
            assert!(!tasks.is_empty(), "{name}");
        }
        // The portals template asks each probe's own resolver for AAAA and A of each portal.
        let mut input = parse(
            "toml",
            include_str!("../../../deploy/campaigns/government-portals.toml"),
        )
        .unwrap();
        input.targets.push("www.example.org".into());
        let (_, tasks) = validate(&input, NOW, false).unwrap();
        let questions: Vec<(u16, bool)> = tasks
            .iter()
            .filter_map(|t| match &t.spec.kind {
                sixmap_shared::measurement::SpecKind::Dns(d)
                    if d.query_name() == "www.example.org" =>
                {
                    Some((d.query_type(), d.system_resolver()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(questions, [(28, true), (1, true)]);
        // The portals template needs the regulator's list.
        let input = parse(
            "toml",
            include_str!("../../../deploy/campaigns/government-portals.toml"),
        )
        .unwrap();
        assert_eq!(validate(&input, NOW, false).unwrap_err().field, "targets");
    }
}
