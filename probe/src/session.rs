//! The probe's side of the control protocol: enroll once, then keep one session open, send
//! results, apply assignments, and resend whatever the collector has not acknowledged.

use crate::backoff::{Backoff, random_unit};
use crate::batching;
use crate::config::Settings;
use crate::engine::{Engine, Produced, local_addresses};
use crate::identity::{self, Identity, StateError};
use crate::scheduler::Scheduler;
use sixmap_proto::v1::probe_control_client::ProbeControlClient;
use sixmap_proto::v1::{collector_message, probe_message};
use sixmap_proto::{decode, encode, v1};
use sixmap_shared::measurement::{ClockInfo, MeasurementKind, MeasurementResult};
use sixmap_shared::session::{Hello, MAX_BATCH_RESULTS, MAX_MESSAGE_BYTES};
use sixmap_shared::version::{SOFTWARE_VERSION, Version};
use sixmap_shared::{BootEpoch, ResultKey, UnixMicros};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};
use tracing::{debug, error, info, warn};

/// Results kept in memory while the collector is unreachable; the oldest go first beyond this.
pub const MAX_PENDING_RESULTS: usize = 10_000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_BASE: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    State(#[from] StateError),
    /// The collector refused this probe for a reason retrying cannot fix.
    #[error("collector refused the probe: {0}")]
    Refused(String),
    #[error("{0}")]
    Config(String),
}

/// Why a session ended.
#[derive(Debug)]
enum End {
    /// Transient: reconnect after a backoff.
    Retry(String),
    Fatal(ProbeError),
}

fn classify(context: &str, status: tonic::Status) -> End {
    let message = format!("{context}: {} ({:?})", status.message(), status.code());
    match status.code() {
        Code::Unauthenticated | Code::PermissionDenied | Code::FailedPrecondition => {
            End::Fatal(ProbeError::Refused(message))
        }
        _ => End::Retry(message),
    }
}

fn probe_message(kind: probe_message::Kind) -> v1::ProbeMessage {
    v1::ProbeMessage { kind: Some(kind) }
}

async fn connect(collector: &str) -> Result<ProbeControlClient<Channel>, End> {
    let endpoint = Endpoint::from_shared(collector.to_owned())
        .map_err(|e| {
            End::Fatal(ProbeError::Config(format!(
                "collector URL {collector:?}: {e}"
            )))
        })?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| End::Retry(format!("cannot reach collector {collector}: {e}")))?;
    Ok(ProbeControlClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

/// Loads the identity, enrolling first if there is none. Retries while the collector is away.
async fn identity(settings: &Settings) -> Result<Identity, ProbeError> {
    identity::ensure_state_dir(&settings.state_dir)?;
    if let Some(identity) = identity::load_identity(&settings.state_dir)? {
        if identity.collector != settings.collector {
            return Err(ProbeError::Config(format!(
                "the identity in {} was issued by {}, but the config names {}: move identity.toml aside to enroll with the new collector",
                settings.state_dir.display(),
                identity.collector,
                settings.collector
            )));
        }
        return Ok(identity);
    }
    let Some(token) = settings.enrollment_token.clone() else {
        return Err(ProbeError::Config(format!(
            "no identity in {} and no enrollment_token in the config: ask the collector's operator for a token",
            settings.state_dir.display()
        )));
    };
    let mut backoff = Backoff::new(BACKOFF_BASE, BACKOFF_MAX);
    loop {
        let attempt = async {
            let mut client = connect(&settings.collector).await?;
            client
                .enroll(v1::EnrollRequest {
                    token: token.clone(),
                    hostname: settings.hostname.clone(),
                    software_version: SOFTWARE_VERSION.to_owned(),
                })
                .await
                .map(tonic::Response::into_inner)
                .map_err(|s| classify("enrollment", s))
        };
        match attempt.await {
            Ok(response) => {
                let identity = Identity {
                    probe_id: response.probe_id.parse().map_err(|e| {
                        ProbeError::Refused(format!("collector sent a bad probe id: {e}"))
                    })?,
                    probe_secret: response.probe_secret.parse().map_err(|e| {
                        ProbeError::Refused(format!("collector sent a bad secret: {e}"))
                    })?,
                    collector: settings.collector.clone(),
                };
                identity::save_identity(&settings.state_dir, &identity)?;
                info!(probe = %identity.probe_id, "enrolled");
                return Ok(identity);
            }
            Err(End::Fatal(e)) => return Err(e),
            Err(End::Retry(reason)) => {
                let delay = backoff.next_delay(random_unit());
                warn!(%reason, retry_in = ?delay, "enrollment failed");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Runs the probe until a fatal error.
pub async fn run(settings: Settings) -> Result<(), ProbeError> {
    let identity = identity(&settings).await?;
    let boot_epoch = identity::next_boot_epoch(&settings.state_dir)?;
    info!(probe = %identity.probe_id, boot_epoch, collector = %settings.collector, "probe starting");
    let (produced_tx, produced_rx) = mpsc::channel(256);
    let engine = Engine {
        policy: settings.policy,
        icmp_socket: settings.icmp_socket,
    };
    let mut probe = Probe {
        collector: settings.collector,
        identity,
        boot_epoch,
        next_sequence: 1,
        pending: BTreeMap::new(),
        clock_offset_us: None,
        scheduler: Scheduler::new(engine, produced_tx),
        produced: produced_rx,
    };
    probe.run().await
}

#[derive(Debug)]
struct Probe {
    collector: String,
    identity: Identity,
    boot_epoch: BootEpoch,
    next_sequence: u64,
    /// Produced, not yet acknowledged, by sequence number.
    pending: BTreeMap<u64, MeasurementResult>,
    clock_offset_us: Option<i64>,
    scheduler: Scheduler,
    produced: mpsc::Receiver<Produced>,
}

/// Batches sent but not yet acked on one connection. Bounded so the probe never floods a
/// collector that is slow to ack, and keeps reading acks while it uploads a backlog.
const MAX_BATCHES_IN_FLIGHT: usize = 8;

/// Per-connection state.
#[derive(Debug)]
struct Connection {
    out: mpsc::Sender<v1::ProbeMessage>,
    /// Sequence numbers of each unacked batch, by batch id.
    in_flight: BTreeMap<u64, Vec<u64>>,
    /// The same sequence numbers, for quick lookup.
    in_flight_sequences: BTreeSet<u64>,
    next_batch: u64,
    max_batch: usize,
}

impl Connection {
    fn sent(&mut self, batch_id: u64, sequences: Vec<u64>) {
        self.in_flight_sequences.extend(sequences.iter().copied());
        self.in_flight.insert(batch_id, sequences);
    }

    fn acked(&mut self, batch_id: u64) {
        for sequence in self.in_flight.remove(&batch_id).unwrap_or_default() {
            self.in_flight_sequences.remove(&sequence);
        }
    }
}

impl Probe {
    async fn run(&mut self) -> Result<(), ProbeError> {
        let mut backoff = Backoff::new(BACKOFF_BASE, BACKOFF_MAX);
        loop {
            let mut welcomed = false;
            match self.session(&mut welcomed).await {
                End::Fatal(e) => return Err(e),
                End::Retry(reason) => {
                    if welcomed {
                        backoff.reset();
                    }
                    let delay = backoff.next_delay(random_unit());
                    warn!(%reason, retry_in = ?delay, pending = self.pending.len(), "session ended");
                    let sleep = tokio::time::sleep(delay);
                    tokio::pin!(sleep);
                    loop {
                        tokio::select! {
                            _ = &mut sleep => break,
                            Some(produced) = self.produced.recv() => self.accept(produced),
                        }
                    }
                }
            }
        }
    }

    /// Gives a finished measurement its idempotency key and queues it for upload.
    fn accept(&mut self, produced: Produced) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let result = MeasurementResult {
            key: ResultKey {
                probe_id: self.identity.probe_id.clone(),
                boot_epoch: self.boot_epoch,
                sequence,
            },
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
        debug!(key = %result.key, "result produced");
        self.pending.insert(sequence, result);
        while self.pending.len() > MAX_PENDING_RESULTS {
            if let Some((dropped, _)) = self.pending.pop_first() {
                warn!(
                    sequence = dropped,
                    "pending results full: dropped the oldest"
                );
            }
        }
    }

    fn hello(&self) -> Result<Hello, End> {
        let software_version = Version::parse(SOFTWARE_VERSION).ok_or_else(|| {
            End::Fatal(ProbeError::Config(format!(
                "own version {SOFTWARE_VERSION:?} is not major.minor.patch"
            )))
        })?;
        Ok(Hello {
            probe_id: self.identity.probe_id.clone(),
            secret: self.identity.probe_secret.clone(),
            software_version,
            boot_epoch: self.boot_epoch,
            capabilities: vec![MeasurementKind::Ping],
            local_addresses: local_addresses(),
            probe_time: UnixMicros::now(),
        })
    }

    /// One session from connect to end. Sets `welcomed` once the collector accepted us.
    async fn session(&mut self, welcomed: &mut bool) -> End {
        let mut client = match connect(&self.collector).await {
            Ok(client) => client,
            Err(end) => return end,
        };
        let hello = match self.hello() {
            Ok(hello) => hello,
            Err(end) => return end,
        };
        let (out, out_rx) = mpsc::channel(64);
        if out
            .send(probe_message(probe_message::Kind::Hello(encode::hello(
                &hello,
            ))))
            .await
            .is_err()
        {
            return End::Retry("session channel closed".into());
        }
        let mut inbound = match client.session(ReceiverStream::new(out_rx)).await {
            Ok(response) => response.into_inner(),
            Err(status) => return classify("session refused", status),
        };
        let welcome = match inbound.message().await {
            Ok(Some(v1::CollectorMessage {
                kind: Some(collector_message::Kind::Welcome(w)),
            })) => match decode::welcome(&w) {
                Ok(w) => w,
                Err(e) => return End::Retry(format!("bad welcome: {e}")),
            },
            Ok(_) => return End::Retry("collector did not start with a welcome".into()),
            Err(status) => return classify("session refused", status),
        };
        *welcomed = true;
        let received_at = UnixMicros::now();
        // One-way delay is unknown here; the estimate is good to about half an RTT.
        self.clock_offset_us = Some(received_at.0.saturating_sub(welcome.server_time.0));
        info!(
            collector_version = %welcome.collector_version,
            clock_offset_us = self.clock_offset_us,
            pending = self.pending.len(),
            "session established"
        );
        let mut connection = Connection {
            out,
            in_flight: BTreeMap::new(),
            in_flight_sequences: BTreeSet::new(),
            next_batch: 1,
            max_batch: welcome.max_batch_results.clamp(1, MAX_BATCH_RESULTS),
        };
        if let Err(end) = self.send_pending(&mut connection).await {
            return end;
        }
        let mut heartbeat = tokio::time::interval(welcome.heartbeat_interval);
        heartbeat.tick().await;
        loop {
            tokio::select! {
                message = inbound.message() => match message {
                    Ok(Some(message)) => {
                        self.handle(message, &mut connection);
                        if let Err(end) = self.send_pending(&mut connection).await {
                            return end;
                        }
                    }
                    Ok(None) => return End::Retry("collector closed the session".into()),
                    Err(status) => return classify("session", status),
                },
                Some(produced) = self.produced.recv() => {
                    self.accept(produced);
                    if let Err(end) = self.send_pending(&mut connection).await {
                        return end;
                    }
                }
                _ = heartbeat.tick() => {
                    let beat = v1::Heartbeat {
                        probe_time_us: UnixMicros::now().0,
                        pending_results: self.pending.len() as u64,
                    };
                    if connection.out.send(probe_message(probe_message::Kind::Heartbeat(beat))).await.is_err() {
                        return End::Retry("session stream closed".into());
                    }
                }
            }
        }
    }

    /// Sends pending results that are not already on their way, in batches, while the
    /// in-flight window has room.
    async fn send_pending(&self, connection: &mut Connection) -> Result<(), End> {
        let room = MAX_BATCHES_IN_FLIGHT.saturating_sub(connection.in_flight.len());
        if room == 0 {
            return Ok(());
        }
        let unsent = self
            .pending
            .iter()
            .filter(|(sequence, _)| !connection.in_flight_sequences.contains(sequence))
            .map(|(_, result)| encode::result(result))
            .take(room * connection.max_batch)
            .collect();
        let batches = batching::split(unsent, connection.max_batch, batching::BATCH_BYTE_BUDGET);
        for results in batches.into_iter().take(room) {
            let batch_id = connection.next_batch;
            connection.next_batch += 1;
            let sequences = results
                .iter()
                .filter_map(|r| r.key.as_ref().map(|k| k.sequence))
                .collect();
            let batch = v1::ResultBatch { batch_id, results };
            connection
                .out
                .send(probe_message(probe_message::Kind::Results(batch)))
                .await
                .map_err(|_| End::Retry("session stream closed".into()))?;
            connection.sent(batch_id, sequences);
        }
        Ok(())
    }

    fn handle(&mut self, message: v1::CollectorMessage, connection: &mut Connection) {
        match message.kind {
            Some(collector_message::Kind::Assign(wire)) => match decode::assignment(&wire) {
                Ok(assignment) => self.scheduler.assign(assignment),
                // A probe older than the collector's features must say so, not crash.
                Err(e) => warn!(task = wire.task_id, error = %e, "assignment refused"),
            },
            Some(collector_message::Kind::Cancel(cancel)) => {
                if let Ok(task) = sixmap_shared::TaskId::new(cancel.task_id) {
                    self.scheduler.cancel(task, &cancel.reason);
                }
            }
            Some(collector_message::Kind::Ack(wire)) => match decode::ack(&wire) {
                Ok(ack) => {
                    let ours = |key: &ResultKey| {
                        key.probe_id == self.identity.probe_id && key.boot_epoch == self.boot_epoch
                    };
                    // Results of the batch that the ack names neither way stay pending and
                    // are sent again.
                    connection.acked(ack.batch_id);
                    for key in ack.stored.iter().filter(|k| ours(k)) {
                        self.pending.remove(&key.sequence);
                    }
                    for rejection in ack.rejected.iter().filter(|r| ours(&r.key)) {
                        error!(key = %rejection.key, reason = %rejection.reason, "collector rejected a result; dropping it");
                        self.pending.remove(&rejection.key.sequence);
                    }
                    debug!(
                        batch = ack.batch_id,
                        stored = ack.stored.len(),
                        rejected = ack.rejected.len(),
                        "ack"
                    );
                }
                Err(e) => warn!(error = %e, "malformed ack ignored"),
            },
            Some(collector_message::Kind::Welcome(_)) => warn!("unexpected second welcome ignored"),
            None => warn!("empty collector message ignored"),
        }
    }
}
