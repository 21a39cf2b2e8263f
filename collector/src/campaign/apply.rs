//! `campaign apply SPEC` (issue #21, campaigns as code): the spec file is the campaign. The
//! caller's newest campaign of the spec's `name` is the one it describes; none: it is created.
//!
//! What may change on a campaign that exists, and why the rest may not:
//! - `description`, `budget` (checked against the campaign's probes and tasks as they are) and
//!   `schedule.stop` (end it sooner or later): none of them changes which probes run which
//!   tasks, so results stay comparable across the change.
//! - Everything else (`targets`, `measurements`, `selection`, `schedule.start`, `every_s`,
//!   `spread_s`) defines the tasks, the probes or the slots the results were counted against;
//!   changing it would make one campaign two. Refused (409), naming the keys: cancel it and
//!   apply again, or give the spec another name.
//! - An ended campaign (cancelled, finished) changes no more: applying the same spec again
//!   changes nothing and says so; a different spec creates a new campaign of that name.

use super::spec::{self, CampaignSpec, SpecInput};
use super::{CampaignError, CampaignRecord, Campaigns, lock};
use serde::Serialize;
use sixmap_shared::UnixMicros;
use tracing::info;

/// Keys of a spec that may change on a campaign that exists.
pub const CHANGEABLE: [&str; 3] = ["description", "budget", "schedule.stop"];

/// What applying a spec did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "applied", rename_all = "snake_case")]
pub enum Applied {
    /// No campaign of that name was the caller's: it was created.
    Created { campaign: Box<CampaignRecord> },
    /// The campaign was changed: `changed` lists the keys.
    Updated {
        campaign: Box<CampaignRecord>,
        changed: Vec<String>,
    },
    /// The spec says what the campaign already is.
    Unchanged { campaign: Box<CampaignRecord> },
}

/// The keys (`targets`, `schedule.stop`...) in which two validated specs differ, in the
/// spec's order. Validated, not as written: `["de"]` and `["DE"]`, TOML and JSON, a key
/// spelt out with its default value, all say the same campaign. `schedule.start` is the
/// exception: validation puts an unstated or past start at "now", so the starts the two texts
/// state (`old_start`, `new_start`) are compared instead.
fn differences(
    old: &CampaignSpec,
    old_start: Option<UnixMicros>,
    new: &CampaignSpec,
    new_start: Option<UnixMicros>,
) -> Vec<String> {
    let value = |spec: &CampaignSpec| serde_json::to_value(spec).unwrap_or_default();
    let (old_value, new_value) = (value(old), value(new));
    let mut out = Vec::new();
    for key in [
        "name",
        "description",
        "targets",
        "measurements",
        "selection",
        "schedule",
        "budget",
    ] {
        if key == "schedule" {
            if old_start != new_start {
                out.push("schedule.start".to_owned());
            }
            if old.schedule.stop != new.schedule.stop {
                out.push("schedule.stop".to_owned());
            }
            if old.schedule.every != new.schedule.every {
                out.push("schedule.every_s".to_owned());
            }
            if old.schedule.spread != new.schedule.spread {
                out.push("schedule.spread_s".to_owned());
            }
        } else if old_value.get(key) != new_value.get(key) {
            out.push(key.to_owned());
        }
    }
    out
}

/// The start a spec's text states (`None`: unstated, "at creation"), from its parsed input.
fn stated_start(input: &SpecInput) -> Option<UnixMicros> {
    input.schedule.start.as_deref().and_then(spec::parse_time)
}

/// The stored spec's text read back, in the format it came in (unknown: either).
fn stored_input(record: &CampaignRecord, format: &str) -> Option<SpecInput> {
    let other = if format == "json" { "toml" } else { "json" };
    spec::parse(format, &record.spec_text)
        .or_else(|_| spec::parse(other, &record.spec_text))
        .ok()
}

/// Held through each apply (see [`Campaigns::apply`]).
static APPLYING: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Campaigns {
    /// Creates the campaign `text` describes, or brings the caller's campaign of that name in
    /// line with it (see the module documentation); blocking (store I/O).
    pub fn apply(
        &self,
        owner: &str,
        format: &str,
        text: &str,
        now: UnixMicros,
    ) -> Result<Applied, CampaignError> {
        let owner = owner.trim();
        let input = spec::parse(format, text)?;
        // Checked whole first: an invalid spec is refused the same whether it creates or updates.
        let (new, _) = spec::validate(&input, now, self.lab_mode)?;
        // One apply at a time: two at once would both find no campaign of the name and create
        // two, or update from copies read before the other's write.
        let _applying = APPLYING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let existing = self
            .all()?
            .into_iter()
            .filter(|r| r.owner == owner && r.spec.quick.is_none() && r.spec.name == new.name)
            .max_by_key(|r| r.id);
        let Some(mut record) = existing else {
            let created = self.create(owner, format, text, now)?;
            return Ok(Applied::Created {
                campaign: Box::new(created),
            });
        };
        let changed = match stored_input(&record, format) {
            Some(old) => differences(&record.spec, stated_start(&old), &new, stated_start(&input)),
            // A stored text this collector cannot read back (written by an older one): only
            // an identical text counts as unchanged.
            None if record.spec_text == text => Vec::new(),
            None => vec!["spec".to_owned()],
        };
        if changed.is_empty() {
            return Ok(Applied::Unchanged {
                campaign: Box::new(record),
            });
        }
        if !record.is_active() {
            // Its results stay with it; the changed spec is a campaign of its own, as after
            // "cancel it and apply again".
            let created = self.create(owner, format, text, now)?;
            info!(
                campaign = created.id,
                ended = record.id,
                owner,
                "campaign created by apply after an ended one"
            );
            return Ok(Applied::Created {
                campaign: Box::new(created),
            });
        }
        let fixed: Vec<&String> = changed
            .iter()
            .filter(|k| !CHANGEABLE.contains(&k.as_str()))
            .collect();
        if !fixed.is_empty() {
            let fixed: Vec<&str> = fixed.iter().map(|k| k.as_str()).collect();
            return Err(CampaignError::Unchangeable(format!(
                "campaign {} ({:?}) is running: {} cannot change on it (they decide its tasks, \
                 probes and slots); only {} may. Cancel it and apply again, or give the spec \
                 another name",
                record.id,
                record.spec.name,
                fixed.join(", "),
                CHANGEABLE.join(", ")
            )));
        }
        {
            let _guard = lock(&self.records);
            // The changes go onto the record as it is now: since it was read, the ticker may
            // have assigned probes, its owner published it, a cancel ended it.
            let current = self.load(record.id)?;
            if !current.is_active() {
                return Err(CampaignError::Ended(
                    record.id,
                    current.status.as_str().to_owned(),
                ));
            }
            record = current;
            // Validation bounded `stop` from "now"; a campaign runs at most MAX_DURATION from
            // its own start, however often it is applied.
            if let Some(stop) = new.schedule.stop
                && stop.0.saturating_sub(record.spec.schedule.start.0)
                    > i64::try_from(spec::MAX_DURATION.as_micros()).unwrap_or(i64::MAX)
            {
                return Err(CampaignError::Spec(spec::SpecFieldError {
                    field: "schedule.stop".into(),
                    reason: format!(
                        "more than {} days after the campaign's start: campaigns run at most \
                         that long",
                        spec::MAX_DURATION.as_secs() / 86_400
                    ),
                }));
            }
            record.spec.description = new.description;
            record.spec.budget = new.budget;
            record.spec.schedule.stop = new.schedule.stop;
            self.check_budget(&record)?;
            record.spec_text = text.to_owned();
            self.save(&record)?;
            self.store.flush()?;
        }
        info!(campaign = record.id, owner, changed = ?changed, "campaign updated by apply");
        Ok(Applied::Updated {
            campaign: Box::new(record),
            changed,
        })
    }

    /// The spec's own budgets against the campaign's probes and tasks as they are.
    fn check_budget(&self, record: &CampaignRecord) -> Result<(), CampaignError> {
        let (spec, probes) = (&record.spec, record.probes.len() as u64);
        let hourly = spec.tests_per_probe_hour(record.tasks.len()) * probes;
        if let Some(limit) = spec.budget.per_hour
            && hourly > limit
        {
            return Err(CampaignError::OverBudget(format!(
                "`budget.per_hour`: the campaign's {probes} probes and {} tasks make {hourly} \
                 probe-tests per hour, more than {limit}",
                record.tasks.len()
            )));
        }
        if let (Some(limit), Some(per_probe)) = (
            spec.budget.total,
            spec.tests_per_probe_total(record.tasks.len()),
        ) && per_probe * probes > limit
        {
            return Err(CampaignError::OverBudget(format!(
                "`budget.total`: the schedule makes {} probe-tests in all, more than {limit}",
                per_probe * probes
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{NOW, fleet, service};
    use super::*;

    const SPEC: &str = "name = \"portals\"\ntargets = [\"example.org\"]\n\
        [[measurements]]\nkind = \"ping\"\ntimeout_ms = 2000\n[schedule]\nevery_s = 3600\n";

    fn kind(applied: &Applied) -> (&'static str, u64) {
        match applied {
            Applied::Created { campaign } => ("created", campaign.id),
            Applied::Updated { campaign, .. } => ("updated", campaign.id),
            Applied::Unchanged { campaign } => ("unchanged", campaign.id),
        }
    }

    #[test]
    fn apply_creates_then_is_idempotent_then_updates_what_may_change() {
        let dir = tempfile::tempdir().unwrap();
        let c = service(dir.path(), &fleet(), None);
        let created = c.apply("alice", "toml", SPEC, NOW).unwrap();
        let (what, id) = kind(&created);
        assert_eq!(what, "created");
        // The same spec again, even later and in other words (JSON): nothing changes.
        let later = UnixMicros(NOW.0 + 60_000_000);
        assert_eq!(
            kind(&c.apply("alice", "toml", SPEC, later).unwrap()),
            ("unchanged", id)
        );
        let json = r#"{"name": "portals", "targets": ["example.org"],
            "measurements": [{"kind": "ping", "timeout_ms": 2000}], "schedule": {"every_s": 3600}}"#;
        assert_eq!(
            kind(&c.apply("alice", "json", json, later).unwrap()),
            ("unchanged", id)
        );
        // Other words for the same campaign: a default spelt out, keys in another order.
        let spelt = format!("description = \"\"\n{SPEC}");
        assert_eq!(
            kind(&c.apply("alice", "toml", &spelt, later).unwrap()),
            ("unchanged", id)
        );
        assert_eq!(c.all().unwrap().len(), 1);
        let before = c.get(id).unwrap();

        // Description, budget and stop may change; the tasks and probes stay.
        let changed = format!(
            "description = \"v2\"\n{}",
            SPEC.replace(
                "[schedule]\n",
                "[budget]\nper_hour = 100\n[schedule]\nstop = \"2030-12-31T00:00:00Z\"\n",
            )
        );
        let applied = c.apply("alice", "toml", &changed, later).unwrap();
        match &applied {
            Applied::Updated { campaign, changed } => {
                assert_eq!(campaign.id, id);
                assert_eq!(changed, &["description", "schedule.stop", "budget"]);
            }
            other => panic!("{other:?}"),
        }
        let after = c.get(id).unwrap();
        assert_eq!(after.spec.description, "v2");
        assert_eq!(after.spec.budget.per_hour, Some(100));
        assert!(after.spec.schedule.stop.is_some());
        assert_eq!(after.tasks, before.tasks);
        assert_eq!(after.probes, before.probes);
        assert_eq!(after.spec_text, changed);
        assert_eq!(
            kind(&c.apply("alice", "toml", &changed, later).unwrap()),
            ("unchanged", id)
        );

        // A stop more than MAX_DURATION after the campaign's own start: refused, though it
        // is within MAX_DURATION of "now" (applying again must not stretch a campaign).
        // NOW is 2026-09-21: 2037-06-01 is over ten years after the start, and under ten
        // years after a "now" 300 days on.
        let far = spec::parse_time("2037-06-01T00:00:00Z").unwrap();
        let much_later = UnixMicros(NOW.0 + 300 * 86_400_000_000);
        let max = i64::try_from(spec::MAX_DURATION.as_micros()).unwrap();
        assert!(far.0 - before.spec.schedule.start.0 > max && far.0 - much_later.0 < max);
        let stretched = changed.replace("2030-12-31T00:00:00Z", "2037-06-01T00:00:00Z");
        let e = c
            .apply("alice", "toml", &stretched, much_later)
            .unwrap_err();
        assert!(e.to_string().contains("schedule.stop"), "{e}");

        // A budget the running campaign already exceeds: refused, nothing saved.
        let tight = changed.replace("per_hour = 100", "per_hour = 1");
        let e = c.apply("alice", "toml", &tight, later).unwrap_err();
        assert!(matches!(e, CampaignError::OverBudget(_)), "{e}");
        assert_eq!(c.get(id).unwrap().spec.budget.per_hour, Some(100));

        // Targets and the interval decide tasks and slots: refused, naming them (the spread
        // follows the interval when unstated, so it changes too).
        let other = changed
            .replace("example.org", "example.net")
            .replace("every_s = 3600", "every_s = 600");
        let e = c.apply("alice", "toml", &other, later).unwrap_err();
        assert!(matches!(e, CampaignError::Unchangeable(_)), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("targets, schedule.every_s, schedule.spread_s cannot change"),
            "{text}"
        );
        assert_eq!(c.get(id).unwrap().spec.targets, ["example.org"]);

        // Another owner's campaign of the same name is not theirs to change: they get their own.
        let (what, bobs) = kind(&c.apply("bob", "toml", SPEC, later).unwrap());
        assert_eq!(what, "created");
        assert_ne!(bobs, id);

        // An ended campaign: the same spec is still "unchanged", a different one a new campaign.
        c.cancel(
            id,
            super::super::Writer {
                name: "alice",
                admin: false,
            },
            "",
            later,
        )
        .unwrap();
        assert_eq!(
            kind(&c.apply("alice", "toml", &changed, later).unwrap()),
            ("unchanged", id)
        );
        let (what, again) = kind(&c.apply("alice", "toml", SPEC, later).unwrap());
        assert_eq!(what, "created");
        assert_ne!(again, id);
        assert_eq!(
            kind(&c.apply("alice", "toml", SPEC, later).unwrap()),
            ("unchanged", again)
        );
        // An invalid spec is refused before anything is looked up.
        let e = c
            .apply("alice", "toml", &SPEC.replace("3600", "5"), later)
            .unwrap_err();
        assert!(matches!(e, CampaignError::Spec(_)), "{e}");
    }
}
