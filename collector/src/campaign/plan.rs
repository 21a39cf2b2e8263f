//! `campaign plan`: what creating a spec would do, without creating anything — the probes it
//! would select per operator, the probe-tests per hour and in all, and how much of the spec's
//! and the owner's budgets that uses. The same selection and arithmetic as
//! [`Campaigns::create`], so a plan that fits is a campaign that would be accepted (unless
//! probes or other campaigns change in between).

use super::selection::{empty_selection, select};
use super::{CampaignError, Campaigns, lock, spec};
use serde::Serialize;
use sixmap_shared::UnixMicros;
use std::collections::BTreeMap;

/// The probes a plan would give one operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanOperator {
    pub asn: Option<u32>,
    pub as_name: Option<String>,
    pub countries: Vec<String>,
    pub probes: Vec<String>,
}

/// What a spec would cost, and whether its budgets allow it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub name: String,
    pub targets: usize,
    pub tasks: usize,
    pub probes: usize,
    pub operators: Vec<PlanOperator>,
    /// Probe-tests (one task on one probe) per hour; a one-off campaign's all count in its
    /// first hour.
    pub tests_per_hour: u64,
    /// Over the whole campaign; `None`: it never stops.
    pub tests_total: Option<u64>,
    pub budget_per_hour: Option<u64>,
    pub budget_total: Option<u64>,
    /// The owner's hourly limit across active campaigns, and what they already commit.
    pub owner_limit: Option<u64>,
    pub owner_committed: u64,
    /// Why creating it would be refused over budget; `None`: it fits.
    pub refusal: Option<String>,
}

impl Campaigns {
    /// The plan of a spec for `owner`; blocking (reads probes and campaigns), writes nothing.
    pub fn plan(
        &self,
        owner: &str,
        format: &str,
        text: &str,
        now: UnixMicros,
    ) -> Result<Plan, CampaignError> {
        let input = spec::parse(format, text)?;
        let (spec, tasks) = spec::validate(&input, now, self.lab_mode)?;
        let probes = self.store.probes()?;
        let chosen = select(&spec, &probes, now);
        if chosen.is_empty() {
            return Err(empty_selection(&spec, &probes).into());
        }
        let mut operators: BTreeMap<Option<u32>, PlanOperator> = BTreeMap::new();
        for p in &chosen {
            let origin = p.origin.as_ref();
            let asn = origin.and_then(|o| o.asn);
            let op = operators.entry(asn).or_insert_with(|| PlanOperator {
                asn,
                as_name: origin.and_then(|o| o.as_name.clone()),
                countries: Vec::new(),
                probes: Vec::new(),
            });
            if let Some(country) = origin.and_then(|o| o.country).map(|c| c.to_string())
                && !op.countries.contains(&country)
            {
                op.countries.push(country);
            }
            op.probes.push(p.id.to_string());
        }
        let n = chosen.len() as u64;
        let tests_per_hour = spec.tests_per_probe_hour(tasks.len()) * n;
        let tests_total = spec.tests_per_probe_total(tasks.len()).map(|t| t * n);
        let owner_committed: u64 = {
            let _guard = lock(&self.records);
            self.all()?
                .iter()
                .filter(|r| r.is_active() && r.owner == owner.trim())
                .map(|r| r.spec.tests_per_probe_hour(r.tasks.len()) * r.probes.len() as u64)
                .sum()
        };
        let mut refusal = None;
        if let Some(limit) = spec.budget.per_hour
            && tests_per_hour > limit
        {
            refusal = Some(format!(
                "budget.per_hour: {tests_per_hour} probe-tests per hour, more than {limit}"
            ));
        } else if let (Some(limit), Some(total)) = (spec.budget.total, tests_total)
            && total > limit
        {
            refusal = Some(format!(
                "budget.total: {total} probe-tests in all, more than {limit}"
            ));
        } else if let Some(limit) = self.owner_hourly_limit
            && owner_committed + tests_per_hour > limit
        {
            refusal = Some(format!(
                "owner {owner:?}: {owner_committed} probe-tests per hour committed, this adds \
                 {tests_per_hour}, the limit is {limit}"
            ));
        }
        Ok(Plan {
            name: spec.name.clone(),
            targets: spec.targets.len(),
            tasks: tasks.len(),
            probes: chosen.len(),
            operators: operators.into_values().collect(),
            tests_per_hour,
            tests_total,
            budget_per_hour: spec.budget.per_hour,
            budget_total: spec.budget.total,
            owner_limit: self.owner_hourly_limit,
            owner_committed,
            refusal,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{NOW, SPEC, fleet, service};

    #[test]
    fn a_plan_shows_the_selection_and_budgets_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let c = service(dir.path(), &fleet(), Some(10));
        let spec = format!("{SPEC}[selection]\ncountries = [\"XA\"]\nper_operator = 2\n");
        let plan = c.plan("reg", "toml", &spec, NOW).unwrap();
        assert!(c.all().unwrap().is_empty(), "a plan creates nothing");
        let per_op: Vec<_> = plan
            .operators
            .iter()
            .map(|o| (o.asn, o.probes.len()))
            .collect();
        assert_eq!(per_op, [(Some(64500), 2), (Some(64501), 1)]);
        assert_eq!(plan.operators[0].countries, ["XA"]);
        assert_eq!((plan.probes, plan.tasks, plan.tests_per_hour), (3, 1, 3));
        assert_eq!(plan.tests_total, Some(3));
        assert_eq!(plan.refusal, None);
        // The same picks as creating it would make.
        let created = c.create("reg", "toml", &spec, NOW).unwrap();
        let mut planned: Vec<String> = plan
            .operators
            .iter()
            .flat_map(|o| o.probes.clone())
            .collect();
        let mut made: Vec<String> = created.probes.iter().map(|p| p.probe.to_string()).collect();
        planned.sort();
        made.sort();
        assert_eq!(planned, made);
        // Now 3 are committed: a plan for 36 more an hour is over the owner's 10.
        let periodic = format!("{SPEC}[schedule]\nevery_s = 600\n");
        let over = c.plan("reg", "toml", &periodic, NOW).unwrap();
        assert_eq!(over.owner_committed, 3);
        assert!(over.refusal.unwrap().contains("the limit is 10"));
        assert_eq!(over.tests_total, None);
        // A spec budget too small is named; a selection of nothing is the same error as create.
        let small = format!("{SPEC}[budget]\nper_hour = 2\n");
        assert!(
            c.plan("other", "toml", &small, NOW)
                .unwrap()
                .refusal
                .unwrap()
                .starts_with("budget.per_hour")
        );
        let nobody = format!("{SPEC}[selection]\ncountries = [\"XC\"]\n");
        let e = c.plan("reg", "toml", &nobody, NOW).unwrap_err().to_string();
        assert!(e.contains("selection.countries"), "{e}");
    }
}
