//! Runs assigned tasks on their schedule, independent of the connection: results produced
//! while disconnected wait in the session's pending queue.

use crate::engine::{Engine, Produced};
use sixmap_shared::measurement::{ErrorClass, Outcome};
use sixmap_shared::session::Assignment;
use sixmap_shared::{TaskId, UnixMicros};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// Measurements allowed to run at the same time on this probe by default, whatever is
/// assigned (`max_concurrent_measurements` in the probe config).
pub const MAX_CONCURRENT_MEASUREMENTS: usize = crate::safety::DEFAULT_MAX_CONCURRENT;
/// Tasks a probe keeps assigned at once: each costs a timer and a little memory, and a
/// compromised collector must not exhaust a Raspberry Pi by assigning millions.
pub const MAX_ASSIGNED_TASKS: usize = 4096;

#[derive(Debug)]
pub struct Scheduler {
    engine: Engine,
    out: mpsc::Sender<Produced>,
    running: HashMap<TaskId, (Assignment, JoinHandle<()>)>,
    permits: Arc<Semaphore>,
}

impl Scheduler {
    pub fn new(engine: Engine, out: mpsc::Sender<Produced>) -> Self {
        Self::with_limit(engine, out, MAX_CONCURRENT_MEASUREMENTS)
    }

    /// A scheduler running at most `max_concurrent` measurements at a time (at least one).
    pub fn with_limit(engine: Engine, out: mpsc::Sender<Produced>, max_concurrent: usize) -> Self {
        Self {
            engine,
            out,
            running: HashMap::new(),
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
        }
    }

    /// Starts a task, or keeps it running if the same assignment is already running (the
    /// collector re-sends assignments on every reconnect).
    pub fn assign(&mut self, assignment: Assignment) {
        if let Some((current, handle)) = self.running.get(&assignment.task_id)
            && *current == assignment
            && !handle.is_finished()
        {
            debug!(task = %assignment.task_id, "assignment unchanged");
            return;
        }
        if !self.running.contains_key(&assignment.task_id) {
            self.running.retain(|_, (_, handle)| !handle.is_finished());
            if self.running.len() >= MAX_ASSIGNED_TASKS {
                let error = crate::context::failure(
                    sixmap_shared::measurement::ErrorClass::Policy,
                    format!(
                        "task refused: the probe already runs its maximum of {MAX_ASSIGNED_TASKS} tasks"
                    ),
                );
                warn!(task = %assignment.task_id, reason = %error.message, "task refused by the probe's safety policy");
                let refused = Produced::refused(assignment.task_id, &assignment.spec, error);
                let out = self.out.clone();
                tokio::spawn(async move {
                    let _ = out.send(refused).await;
                });
                return;
            }
        }
        info!(task = %assignment.task_id, target = %assignment.spec.target, kind = %assignment.spec.measurement_kind(), "task assigned");
        let handle = tokio::spawn(run_task(
            self.engine.clone(),
            assignment.clone(),
            self.out.clone(),
            self.permits.clone(),
        ));
        if let Some((_, old)) = self
            .running
            .insert(assignment.task_id, (assignment, handle))
        {
            old.abort();
        }
    }

    /// Reports a task the probe will not run at all (its assignment could not be accepted),
    /// so the collector learns why no results come. Any earlier version of the task stops.
    pub fn refuse(&mut self, task: TaskId, error: sixmap_shared::measurement::MeasurementError) {
        self.cancel(task, "replaced by an assignment the probe refused");
        warn!(%task, reason = %error.message, "task refused");
        let refused = Produced::refused_as(task, sixmap_shared::measurement::Family::V6, error);
        let out = self.out.clone();
        tokio::spawn(async move {
            let _ = out.send(refused).await;
        });
    }

    pub fn cancel(&mut self, task: TaskId, reason: &str) {
        if let Some((_, handle)) = self.running.remove(&task) {
            handle.abort();
            info!(%task, reason, "task cancelled");
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        for (_, handle) in self.running.values() {
            handle.abort();
        }
    }
}

async fn run_task(
    engine: Engine,
    assignment: Assignment,
    out: mpsc::Sender<Produced>,
    permits: Arc<Semaphore>,
) {
    if let Some(not_before) = assignment.not_before {
        tokio::time::sleep(not_before.saturating_since(UnixMicros::now())).await;
    }
    let mut ticks = assignment.interval.map(|every| {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });
    loop {
        if let Some(ticks) = ticks.as_mut() {
            ticks.tick().await;
        }
        let produced = {
            let Ok(_permit) = permits.acquire().await else {
                return;
            };
            engine.run(assignment.task_id, &assignment.spec).await
        };
        if let Outcome::Failed(e) = &produced.outcome
            && e.class == ErrorClass::Policy
        {
            log_refusal(&assignment, &e.message);
        }
        if out.send(produced).await.is_err() || ticks.is_none() {
            return;
        }
    }
}

/// A refusal repeats at every run of a periodic task (and across tasks with the same target):
/// logged once per class, then summarised (`lograte`), never once per run.
fn log_refusal(assignment: &Assignment, reason: &str) {
    let kind = assignment.spec.measurement_kind().to_string();
    let target = assignment.spec.target.to_string();
    match crate::lograte::check(&crate::lograte::class_of(&kind, &target, reason)) {
        crate::lograte::Verdict::First => {
            warn!(task = %assignment.task_id, %kind, %target, %reason, "task refused by the probe's safety policy");
        }
        crate::lograte::Verdict::Summary { repeated, over } => {
            warn!(task = %assignment.task_id, %kind, %target, %reason, repeated, over_s = over.as_secs(), "task refused by the probe's safety policy (repeated {repeated} times)");
        }
        crate::lograte::Verdict::Suppressed => {
            debug!(task = %assignment.task_id, %reason, "task refused again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sixmap_shared::measurement::{Family, MeasurementSpec, PingSpec, SpecKind, Target};
    use std::time::Duration;

    fn assignment(task: u64, every: Option<u64>) -> Assignment {
        Assignment {
            task_id: TaskId::new(task).unwrap(),
            // Refused by the default policy before any packet: fast and needs no privileges.
            spec: MeasurementSpec::new(
                Target::Address("::1".parse().unwrap()),
                Family::V6,
                Duration::from_secs(1),
                SpecKind::Ping(PingSpec::new(1, 0, 0).unwrap()),
            )
            .unwrap(),
            interval: every.map(Duration::from_secs),
            not_before: None,
        }
    }

    fn scheduler() -> (Scheduler, mpsc::Receiver<Produced>) {
        let (tx, rx) = mpsc::channel(16);
        let engine = Engine::default();
        (Scheduler::new(engine, tx), rx)
    }

    #[tokio::test(start_paused = true)]
    async fn periodic_tasks_repeat_until_cancelled() {
        let (mut scheduler, mut rx) = scheduler();
        scheduler.assign(assignment(7, Some(60)));
        for _ in 0..3 {
            let produced = rx.recv().await.unwrap();
            assert_eq!(produced.task_id.get(), 7);
            assert!(
                matches!(&produced.outcome, Outcome::Failed(e) if e.class == ErrorClass::Policy)
            );
        }
        scheduler.cancel(TaskId::new(7).unwrap(), "test");
        let more = tokio::time::timeout(Duration::from_secs(600), rx.recv()).await;
        assert!(more.is_err(), "a cancelled task produced {more:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn one_shot_tasks_run_once_and_reassigning_does_not_restart() {
        let (mut scheduler, mut rx) = scheduler();
        scheduler.assign(assignment(1, None));
        scheduler.assign(assignment(2, Some(3600)));
        let mut seen = vec![
            rx.recv().await.unwrap().task_id.get(),
            rx.recv().await.unwrap().task_id.get(),
        ];
        seen.sort_unstable();
        assert_eq!(seen, vec![1, 2]);
        // The collector re-sends assignments on reconnect: an unchanged periodic task must not
        // run again before its interval.
        scheduler.assign(assignment(2, Some(3600)));
        let early = tokio::time::timeout(Duration::from_secs(1800), rx.recv()).await;
        assert!(
            early.is_err(),
            "re-assignment restarted the task: {early:?}"
        );
        let next = rx.recv().await.unwrap();
        assert_eq!(next.task_id.get(), 2);
    }
}
