//! How far a campaign has got: results in, reached, failures by class, and the results
//! expected so far (one-off: every probe x task; periodic: the slots that passed).

use crate::store::CampaignCell;
use serde::{Deserialize, Serialize};
use sixmap_shared::UnixMicros;
use std::collections::{BTreeMap, HashSet};

use super::slots::{every_us, first_slot};
use super::{CampaignRecord, Campaigns};

/// How far a campaign has got.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub probes_assigned: usize,
    pub probes_connected: usize,
    pub probes_reporting: usize,
    pub tasks: usize,
    /// Runs due so far (one-off: every probe × task).
    pub results_expected: u64,
    pub results_in: u64,
    /// Results whose destination answered.
    pub reached: u64,
    /// Results that did not reach the destination, by class: `unreached` when the
    /// measurement ran but nothing answered, else the class of the failure to run
    /// (`resolution`, `network`, `policy`...).
    pub failures: BTreeMap<String, u64>,
    pub skipped_over_budget: usize,
    pub complete: bool,
}

impl Campaigns {
    /// Progress of a campaign from its cells (per task and probe: `Store::campaign_cells`).
    pub fn progress(
        &self,
        record: &CampaignRecord,
        cells: &[CampaignCell],
        now: UnixMicros,
    ) -> Progress {
        let mut p = Progress {
            probes_assigned: record.probes.len(),
            probes_connected: record
                .probes
                .iter()
                .filter(|c| self.is_connected(&c.probe))
                .count(),
            tasks: record.tasks.len(),
            skipped_over_budget: record.skipped_over_budget.len(),
            ..Progress::default()
        };
        let mut reporting = HashSet::new();
        let mut answered = HashSet::new();
        for cell in cells {
            let Some(task) = record.task(cell.task_id) else {
                continue;
            };
            p.results_in += cell.results;
            reporting.insert(cell.probe_id.clone());
            answered.insert((cell.probe_id.clone(), task.task_id));
            p.reached += cell.reached;
            for (class, n) in &cell.failures {
                *p.failures.entry(class.clone()).or_default() += n;
            }
        }
        p.probes_reporting = reporting.len();
        let pairs = (record.probes.len() * record.tasks.len()) as u64;
        match record.spec.schedule.every {
            None => {
                p.results_expected = pairs;
                p.complete = answered.len() as u64 >= pairs;
            }
            Some(every) => {
                let until = record
                    .ended_at
                    .or(record.spec.schedule.stop)
                    .map_or(now, |t| t.min(now));
                // Slots passed since each probe was given the campaign, per task.
                let every = every_us(every);
                p.results_expected = record
                    .probes
                    .iter()
                    .flat_map(|probe| record.tasks.iter().map(move |t| (probe, t.task_id)))
                    .map(|(probe, task)| {
                        let first = first_slot(record, &probe.probe, task);
                        // A probe that joined later starts at its next slot.
                        let first = if first < probe.assigned_at.0 {
                            first + ((probe.assigned_at.0 - first) / every + 1) * every
                        } else {
                            first
                        };
                        if until.0 < first {
                            0
                        } else {
                            ((until.0 - first) / every + 1) as u64
                        }
                    })
                    .sum();
                p.complete = !record.is_active();
            }
        }
        p
    }
}
