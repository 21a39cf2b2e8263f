//! The probe's side of the control protocol: with the identity from `enroll`, keep one session
//! open, send results, apply assignments, and resend whatever the collector has not
//! acknowledged.

use crate::backoff::Backoff;
use crate::config::Settings;
use crate::engine::{Engine, Produced, local_addresses};
use crate::enroll::Enrolled;
use crate::failover::{Refusal, Rotation};
use crate::identity;
pub use crate::link::ProbeError;
use crate::link::{BACKOFF_BASE, BACKOFF_MAX, End, classify, connect, pause, rotation};
use crate::metrics::metrics;
use crate::outbox::Outbox;
use crate::scheduler::Scheduler;
use crate::status::{self, ProbeStatus};
use sixmap_proto::{decode, encode};
use sixmap_shared::health::{ProbeTag, SelfTest};
use sixmap_shared::measurement::{ClockInfo, MeasurementKind, MeasurementResult};
use sixmap_shared::session::{
    CollectorMessage, Heartbeat, Hello, MAX_BATCH_RESULTS, ProbeMessage, ReceivedCollectorMessage,
};
use sixmap_shared::version::{SOFTWARE_VERSION, Version};
use sixmap_shared::{BootEpoch, UnixMicros};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, error, info, warn};

/// Results written to the outbox in one atomic write and flush, at most.
const MAX_GROUP_COMMIT: usize = 256;
/// How often the self-test runs again.
const SELF_TEST_INTERVAL: Duration = Duration::from_secs(6 * 3600);
/// How long the collector may take to answer a hello.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the probe until a fatal error.
pub async fn run(settings: Settings) -> Result<(), ProbeError> {
    // First, so an owner can watch a probe that is still waiting to enroll.
    if let Some(addr) = settings.metrics_listen {
        let bound = crate::metrics::start(addr).await.map_err(|e| {
            ProbeError::Config(format!("metrics_listen: cannot listen on {addr}: {e}"))
        })?;
        info!(%bound, "metrics served at http://{bound}/metrics");
    }
    let enrolled = crate::enroll::load_or_enroll(&settings).await?;
    let collectors = rotation(&settings)?;
    // The outbox's lock first, the boot epoch after (inside `open`): a start that fails on
    // the lock (a second probe process) must not use up an epoch.
    let outbox = Outbox::open(
        &settings.state_dir,
        &enrolled.identity.probe_id,
        || identity::next_boot_epoch(&settings.state_dir),
        settings.outbox_max_bytes,
        UnixMicros::now(),
    )?;
    let boot_epoch = outbox.next_key().boot_epoch;
    info!(probe = %enrolled.identity.probe_id, boot_epoch, collectors = %settings.collectors.join(", "), "probe starting");
    let stats = outbox.stats();
    info!(
        results = stats.results,
        bytes = stats.bytes,
        loss_records = stats.loss_records,
        "outbox opened"
    );
    let (produced_tx, produced_rx) = mpsc::channel(1024);
    let engine = Engine {
        policy: settings.policy,
        icmp_socket: settings.icmp_socket,
        extra_ca_file: settings.extra_ca_file.clone(),
        budget: Some(std::sync::Arc::new(
            crate::safety::PacketBudget::per_minute(settings.packet_budget_per_minute),
        )),
        pacer: None,
        stop_set: None,
    };
    let (self_test_tx, self_test_rx) = watch::channel(None);
    tokio::spawn(self_test_loop(
        settings.self_test_aaaa_name.clone(),
        settings.first_collector().to_owned(),
        self_test_tx,
    ));
    let now = UnixMicros::now();
    let mut probe = Probe {
        collectors,
        state_dir: settings.state_dir,
        enrolled,
        boot_epoch,
        outbox,
        clock_offset_us: None,
        scheduler: Scheduler::with_limit(engine, produced_tx, settings.max_concurrent_measurements),
        produced: produced_rx,
        self_test: self_test_rx,
        link: Link {
            connected: false,
            since: now,
            last_error: None,
        },
        last_result_at: None,
        tags: Vec::new(),
        location: settings.location,
    };
    probe.write_status();
    probe.run().await
}

/// Runs the self-test now and then every `SELF_TEST_INTERVAL`.
async fn self_test_loop(
    aaaa_name: String,
    collector: String,
    out: watch::Sender<Option<SelfTest>>,
) {
    loop {
        let result = crate::selftest::run(&aaaa_name, Some(&collector), UnixMicros::now()).await;
        debug!(?result, "self-test done");
        if out.send(Some(result)).is_err() {
            return;
        }
        tokio::time::sleep(SELF_TEST_INTERVAL).await;
    }
}

#[derive(Debug)]
struct Probe {
    /// The collectors and the one in use.
    collectors: Rotation,
    state_dir: PathBuf,
    /// Who this probe is and the TLS configuration of its sessions.
    enrolled: Enrolled,
    boot_epoch: BootEpoch,
    outbox: Outbox,
    clock_offset_us: Option<i64>,
    scheduler: Scheduler,
    produced: mpsc::Receiver<Produced>,
    self_test: watch::Receiver<Option<SelfTest>>,
    link: Link,
    last_result_at: Option<UnixMicros>,
    tags: Vec<ProbeTag>,
    location: Option<sixmap_shared::session::CoarseLocation>,
}

/// Whether a session is up, since when, and why the last one ended: what `status.json` says
/// of the connection.
#[derive(Debug)]
struct Link {
    connected: bool,
    since: UnixMicros,
    last_error: Option<String>,
}

impl Link {
    fn up(&mut self, at: UnixMicros) {
        self.connected = true;
        self.since = at;
        self.last_error = None;
    }

    fn down(&mut self, at: UnixMicros) {
        if self.connected {
            self.connected = false;
            self.since = at;
        }
    }
}

/// Batches sent but not yet acked on one connection. Bounded so the probe never floods a
/// collector that is slow to ack, and keeps reading acks while it uploads a backlog.
const MAX_BATCHES_IN_FLIGHT: usize = 8;

/// Per-connection state.
#[derive(Debug)]
struct Connection {
    out: mpsc::Sender<ProbeMessage>,
    max_batch: usize,
}

impl Probe {
    async fn run(&mut self) -> Result<(), ProbeError> {
        let mut backoff = Backoff::new(BACKOFF_BASE, BACKOFF_MAX);
        loop {
            let mut welcomed = false;
            let end = self.session(&mut welcomed).await;
            // Batches in flight go back to waiting: whatever this collector did not ack is
            // sent again, to it or to the next one.
            self.outbox.disconnected();
            metrics().connected.set(0);
            let stage = if welcomed {
                "after_welcome"
            } else {
                "before_welcome"
            };
            metrics().session_failures.with(&[stage]).inc();
            self.link.down(UnixMicros::now());
            if welcomed {
                backoff.reset();
            }
            let collector = self.collectors.current().to_owned();
            let next = match end {
                End::Retry(reason) => Ok((
                    reason,
                    pause(&mut backoff, self.collectors.failed(welcomed)),
                )),
                // Other collectors of the list may still accept (see `failover`).
                End::Fatal(ProbeError::Refused(reason)) => match self.collectors.refused() {
                    Refusal::TryNext(p) => Ok((reason, pause(&mut backoff, p))),
                    Refusal::GiveUp => Err(ProbeError::Refused(reason)),
                },
                End::Fatal(e) => Err(e),
            };
            match next {
                Err(e) => {
                    if let ProbeError::Revoked(message) = &e {
                        // Remembered, so a restart (systemd, reboot) does not knock again.
                        identity::mark_revoked(&self.state_dir, message)?;
                    }
                    self.link.last_error = Some(e.to_string());
                    self.write_status();
                    return Err(e);
                }
                Ok((reason, delay)) => {
                    let stats = self.outbox.stats();
                    warn!(%reason, %collector, next = %self.collectors.current(), retry_in = ?delay, outbox_results = stats.results, "session ended");
                    self.link.last_error = Some(reason);
                    self.write_status();
                    let sleep = tokio::time::sleep(delay);
                    tokio::pin!(sleep);
                    let mut status_tick = tokio::time::interval(status::WRITE_INTERVAL);
                    loop {
                        tokio::select! {
                            _ = &mut sleep => break,
                            Some(produced) = self.produced.recv() => self.accept(produced)?,
                            _ = status_tick.tick() => self.write_status(),
                        }
                    }
                }
            }
        }
    }

    /// Writes a finished measurement, and any others already waiting, to the outbox with one
    /// flush. Only then do they count as produced.
    fn accept(&mut self, first: Produced) -> Result<(), ProbeError> {
        let now = UnixMicros::now();
        self.stage(first, now);
        let mut staged = 1;
        for _ in 1..MAX_GROUP_COMMIT {
            match self.produced.try_recv() {
                Ok(produced) => {
                    self.stage(produced, now);
                    staged += 1;
                }
                Err(_) => break,
            }
        }
        self.outbox.commit()?;
        metrics().results_produced.add(staged);
        self.publish_outbox();
        self.last_result_at = Some(now);
        Ok(())
    }

    /// The outbox's figures as metrics gauges.
    fn publish_outbox(&self) {
        let stats = self.outbox.stats();
        let m = metrics();
        m.outbox_results.set_u64(stats.results);
        m.outbox_bytes.set_u64(stats.bytes);
        m.outbox_loss_records.set_u64(stats.loss_records);
    }

    fn stage(&mut self, produced: Produced, now: UnixMicros) {
        metrics().measured(&produced.outcome);
        let result = MeasurementResult {
            key: self.outbox.next_key(),
            task_id: produced.task_id,
            started_at: produced.started_at,
            duration_us: produced.duration_us,
            family_requested: produced.family_requested,
            family_used: produced.family_used,
            source: produced.source,
            destination: produced.destination,
            software_version: SOFTWARE_VERSION.to_owned(),
            clock: ClockInfo {
                state: produced.clock_state,
                offset_us: self.clock_offset_us,
            },
            outcome: produced.outcome,
        };
        self.outbox.stage(&result, now);
    }

    fn write_status(&self) {
        self.publish_outbox();
        let status = ProbeStatus {
            pid: std::process::id(),
            updated_at: UnixMicros::now(),
            probe_id: self.enrolled.identity.probe_id.to_string(),
            collector: self.collectors.current().to_owned(),
            collectors: self.collectors.all().to_vec(),
            boot_epoch: self.boot_epoch,
            connected: self.link.connected,
            since: self.link.since,
            last_error: self.link.last_error.clone(),
            last_result_at: self.last_result_at,
            outbox: self.outbox.stats(),
            clock_offset_us: self.clock_offset_us,
            global_v6_addresses: status::global_v6(&local_addresses()),
            self_test: self.self_test.borrow().clone(),
            tags: self.tags.clone(),
        };
        if let Err(e) = status::write(&self.state_dir, &status) {
            warn!(error = %e, "cannot write the status file");
        }
    }

    fn hello(&self) -> Result<Hello, End> {
        let software_version = Version::parse(SOFTWARE_VERSION).ok_or_else(|| {
            End::Fatal(ProbeError::Config(format!(
                "own version {SOFTWARE_VERSION:?} is not major.minor.patch"
            )))
        })?;
        Ok(Hello {
            probe_id: self.enrolled.identity.probe_id.clone(),
            software_version,
            boot_epoch: self.boot_epoch,
            capabilities: MeasurementKind::ALL.to_vec(),
            local_addresses: local_addresses(),
            probe_time: UnixMicros::now(),
            location: self.location,
        })
    }

    /// One session from connect to end. Sets `welcomed` once the collector accepted us.
    async fn session(&mut self, welcomed: &mut bool) -> End {
        let collector = self.collectors.current().to_owned();
        metrics().use_collector(self.collectors.all(), &collector);
        debug!(%collector, "connecting");
        let mut client = match connect(&collector, self.enrolled.tls.clone()).await {
            Ok(client) => client,
            Err(end) => return end,
        };
        let hello = match self.hello() {
            Ok(hello) => hello,
            Err(end) => return end,
        };
        let (out, out_rx) = mpsc::channel(64);
        if out.send(ProbeMessage::Hello(hello)).await.is_err() {
            return End::Retry("session channel closed".into());
        }
        // A collector that accepts the stream but never answers must not stall the probe.
        // The edge of the stream: messages are encoded here on the way out and decoded once on
        // the way in.
        let outbound = ReceiverStream::new(out_rx).map(|m| encode::probe_message(&m));
        let opening = async {
            let mut inbound = match client.session(outbound).await {
                Ok(response) => response.into_inner(),
                Err(status) => return Err(classify("session refused", status)),
            };
            match inbound.message().await {
                Ok(Some(first)) => match decode::collector_message(first) {
                    Ok(CollectorMessage::Welcome(w)) => Ok((inbound, w)),
                    Ok(_) => Err(End::Retry("collector did not start with a welcome".into())),
                    // The field path names the message (`welcome.heartbeat_interval_s`).
                    Err(e) => Err(End::Retry(format!("bad first message: {e}"))),
                },
                Ok(None) => Err(End::Retry("collector did not start with a welcome".into())),
                Err(status) => Err(classify("session refused", status)),
            }
        };
        let (mut inbound, welcome) = match tokio::time::timeout(WELCOME_TIMEOUT, opening).await {
            Ok(Ok(opened)) => opened,
            Ok(Err(end)) => return end,
            Err(_) => {
                return End::Retry(format!(
                    "no welcome from the collector within {} s",
                    WELCOME_TIMEOUT.as_secs()
                ));
            }
        };
        *welcomed = true;
        let received_at = UnixMicros::now();
        // One-way delay is unknown here; the estimate is good to about half an RTT.
        self.clock_offset_us = Some(received_at.0.saturating_sub(welcome.server_time.0));
        self.link.up(received_at);
        metrics().connected.set(1);
        metrics().sessions_established.inc();
        info!(
            %collector,
            collector_version = %welcome.collector_version,
            clock_offset_us = self.clock_offset_us,
            outbox_results = self.outbox.stats().results,
            "session established"
        );
        self.write_status();
        let mut connection = Connection {
            out,
            max_batch: welcome.max_batch_results.clamp(1, MAX_BATCH_RESULTS),
        };
        // The current self-test goes first; later ones as they complete.
        self.self_test.mark_changed();
        if let Err(end) = self.send_pending(&mut connection).await {
            return end;
        }
        let mut heartbeat = tokio::time::interval(welcome.heartbeat_interval);
        heartbeat.tick().await;
        let mut status_tick = tokio::time::interval(status::WRITE_INTERVAL);
        loop {
            tokio::select! {
                message = inbound.message() => match message {
                    Ok(Some(message)) => {
                        let handled = match decode::collector_message(message) {
                            Ok(message) => self.handle(message),
                            Err(e) => {
                                warn!(error = %e, "malformed collector message ignored");
                                Ok(())
                            }
                        };
                        if let Err(end) = handled {
                            return end;
                        }
                        if let Err(end) = self.send_pending(&mut connection).await {
                            return end;
                        }
                    }
                    Ok(None) => return End::Retry("collector closed the session".into()),
                    Err(status) => return classify("session", status),
                },
                Some(produced) = self.produced.recv() => {
                    if let Err(e) = self.accept(produced) {
                        return End::Fatal(e);
                    }
                    if let Err(end) = self.send_pending(&mut connection).await {
                        return end;
                    }
                }
                changed = self.self_test.changed() => {
                    let test = self.self_test.borrow_and_update().clone();
                    if let (Ok(()), Some(test)) = (changed, test)
                        && connection.out.send(ProbeMessage::SelfTest(test)).await.is_err()
                    {
                        return End::Retry("session stream closed".into());
                    }
                }
                _ = heartbeat.tick() => {
                    let stats = self.outbox.stats();
                    let beat = Heartbeat {
                        probe_time: UnixMicros::now(),
                        pending_results: stats.results,
                        pending_bytes: stats.bytes,
                    };
                    if connection.out.send(ProbeMessage::Heartbeat(beat)).await.is_err() {
                        return End::Retry("session stream closed".into());
                    }
                }
                _ = status_tick.tick() => self.write_status(),
            }
        }
    }

    /// Sends what waits in the outbox, in batches, while the in-flight window has room.
    async fn send_pending(&mut self, connection: &mut Connection) -> Result<(), End> {
        loop {
            let batch = self
                .outbox
                .next_batch(
                    connection.max_batch,
                    MAX_BATCHES_IN_FLIGHT,
                    UnixMicros::now(),
                )
                .map_err(|e| End::Fatal(e.into()))?;
            let Some(batch) = batch else {
                return Ok(());
            };
            connection
                .out
                .send(ProbeMessage::Results(batch))
                .await
                .map_err(|_| End::Retry("session stream closed".into()))?;
        }
    }

    fn handle(&mut self, message: ReceivedCollectorMessage) -> Result<(), End> {
        match message {
            CollectorMessage::Assign(Ok(assignment)) => self.scheduler.assign(assignment),
            // A probe older than the collector's features, or a spec outside the probe's
            // bounds, must say so, not crash: reported as a result when the task id is usable,
            // so the collector sees the refusal.
            CollectorMessage::Assign(Err((Some(task), e))) => self.scheduler.refuse(
                task,
                crate::context::failure(
                    sixmap_shared::measurement::ErrorClass::Policy,
                    format!("assignment refused by the probe: {e}"),
                ),
            ),
            CollectorMessage::Assign(Err((None, e))) => warn!(error = %e, "assignment refused"),
            CollectorMessage::Cancel(cancel) => {
                self.scheduler.cancel(cancel.task_id, &cancel.reason)
            }
            CollectorMessage::Ack(ack) => {
                for rejection in &ack.rejected {
                    error!(key = %rejection.key, reason = %rejection.reason, "collector rejected a result; dropping it");
                }
                debug!(
                    batch = ack.batch_id,
                    stored = ack.stored.len(),
                    rejected = ack.rejected.len(),
                    losses = ack.stored_losses.len(),
                    "ack"
                );
                // Results of the batch that the ack names neither way stay in the outbox and
                // are sent again.
                self.outbox.acked(&ack).map_err(|e| End::Fatal(e.into()))?;
                metrics().results_acked.add(ack.stored.len() as u64);
                metrics().results_rejected.add(ack.rejected.len() as u64);
                self.publish_outbox();
            }
            CollectorMessage::Tags(tags) => {
                info!(tags = ?tags.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), "tags from the collector");
                self.tags = tags;
                self.write_status();
            }
            CollectorMessage::Welcome(_) => warn!("unexpected second welcome ignored"),
        }
        Ok(())
    }
}
