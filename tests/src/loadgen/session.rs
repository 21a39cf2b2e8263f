//! One simulated probe's `Session` stream: TLS with its client certificate, hello, the
//! collector's welcome and assignments, then result batches (ingest) or heartbeats (idle).

use super::enroll::Identity;
use super::results::{Factory, Rng, TaskIds};
use sixmap_probe::collector_tls;
use sixmap_proto::v1::{collector_message, probe_message};
use sixmap_proto::{decode, encode, v1};
use sixmap_shared::measurement::MeasurementKind;
use sixmap_shared::session::{Hello, MAX_MESSAGE_BYTES};
use sixmap_shared::version::{SOFTWARE_VERSION, Version};
use sixmap_shared::{ProbeId, ResultKey, UnixMicros};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("probe {probe}: {what}")]
    Failed { probe: ProbeId, what: String },
}

/// An open session after the greeting.
#[derive(Debug)]
pub struct Session {
    pub probe: ProbeId,
    out: mpsc::Sender<v1::ProbeMessage>,
    inbound: tonic::Streaming<v1::CollectorMessage>,
    pub tasks: TaskIds,
    pub heartbeat: Duration,
    pub max_batch: usize,
    boot_epoch: u64,
}

fn message(kind: probe_message::Kind) -> v1::ProbeMessage {
    v1::ProbeMessage { kind: Some(kind) }
}

/// What one probe did during an ingest run.
#[derive(Debug, Default, Clone)]
pub struct IngestTally {
    pub batches: u64,
    pub sent: u64,
    pub acked: u64,
    pub rejected: u64,
    /// Ack latency of each batch, microseconds.
    pub latencies_us: Vec<u64>,
    /// A first rejection reason, to show what is wrong.
    pub rejection: Option<String>,
}

impl Session {
    fn fail(&self, what: impl Into<String>) -> SessionError {
        SessionError::Failed {
            probe: self.probe.clone(),
            what: what.into(),
        }
    }

    /// Connects with the probe's certificate, says hello and waits for the welcome and an
    /// assignment of every kind the results need (`need_tasks`).
    pub async fn open(
        collector: SocketAddr,
        identity: &Identity,
        boot_epoch: u64,
        need_tasks: bool,
    ) -> Result<Self, SessionError> {
        let fail = |what: String| SessionError::Failed {
            probe: identity.probe_id.clone(),
            what,
        };
        let tls = identity.tls().map_err(|e| fail(e.to_string()))?;
        let url = format!("https://{collector}");
        let client = collector_tls::connect(&url, tls, |endpoint| {
            endpoint
                .connect_timeout(Duration::from_secs(60))
                .http2_keep_alive_interval(Duration::from_secs(30))
                .keep_alive_timeout(Duration::from_secs(20))
        })
        .await
        .map_err(|e| fail(e.to_string()))?;
        let mut client = client
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let hello = Hello {
            probe_id: identity.probe_id.clone(),
            software_version: Version::parse(SOFTWARE_VERSION)
                .ok_or_else(|| fail(format!("own version {SOFTWARE_VERSION} does not parse")))?,
            boot_epoch,
            capabilities: MeasurementKind::ALL.to_vec(),
            local_addresses: vec![IpAddr::from([
                0x2a02, 0x8109, 0x1c40, 0x1d00, 0x1e2f, 0x3aff, 0xfe4b, 0x08a1,
            ])],
            probe_time: UnixMicros::now(),
            location: None,
        };
        // Room for a full in-flight window plus a heartbeat.
        let (out, rx) = mpsc::channel(64);
        out.send(message(probe_message::Kind::Hello(encode::hello(&hello))))
            .await
            .map_err(|_| fail("session channel closed before hello".into()))?;
        let inbound = client
            .session(ReceiverStream::new(rx))
            .await
            .map_err(|s| fail(format!("session refused: {:?}: {}", s.code(), s.message())))?
            .into_inner();
        let mut session = Self {
            probe: identity.probe_id.clone(),
            out,
            inbound,
            tasks: TaskIds::default(),
            heartbeat: Duration::from_secs(30),
            max_batch: 0,
            boot_epoch,
        };
        let greeting = async {
            while session.max_batch == 0 || (need_tasks && !session.tasks.missing().is_empty()) {
                let msg = session
                    .inbound
                    .message()
                    .await
                    .map_err(|s| session.fail(format!("{:?}: {}", s.code(), s.message())))?
                    .ok_or_else(|| session.fail("session ended during the greeting"))?;
                match msg.kind {
                    Some(collector_message::Kind::Welcome(w)) => {
                        session.heartbeat =
                            Duration::from_secs(u64::from(w.heartbeat_interval_s.max(1)));
                        session.max_batch = w.max_batch_results.max(1) as usize;
                    }
                    Some(collector_message::Kind::Assign(a)) => {
                        if let Ok(assignment) = decode::assignment(&a) {
                            session
                                .tasks
                                .insert(assignment.spec.measurement_kind(), a.task_id);
                        }
                    }
                    _ => {}
                }
            }
            Ok::<_, SessionError>(())
        };
        match tokio::time::timeout(Duration::from_secs(120), greeting).await {
            Ok(Ok(())) => Ok(session),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(session.fail(format!(
                "no welcome and assignments of {:?} within 120 s: does the collector's config assign them ([[tasks]])?",
                session.tasks.missing()
            ))),
        }
    }

    /// Sends batches of `batch_size` results with at most `window` unacked, until `stop`;
    /// then waits (at most 60 s) for the acks still due.
    pub async fn ingest(
        mut self,
        factory: &Factory,
        seed: u64,
        batch_size: usize,
        window: usize,
        start: tokio::sync::watch::Receiver<bool>,
        stop: Instant,
    ) -> Result<IngestTally, SessionError> {
        let mut start = start;
        let _ = start.wait_for(|go| *go).await;
        let mut rng = Rng::new(seed);
        let mut tally = IngestTally::default();
        let mut in_flight: HashMap<u64, (Instant, u64)> = HashMap::new();
        let mut sequence = 0u64;
        let mut batch_id = 0u64;
        let batch_size = batch_size.clamp(1, self.max_batch);
        let key_of = |sequence: u64| {
            encode::result_key(&ResultKey {
                probe_id: self.probe.clone(),
                boot_epoch: self.boot_epoch,
                sequence,
            })
        };
        let drain_deadline = stop + Duration::from_secs(60);
        loop {
            let sending = Instant::now() < stop;
            if sending && in_flight.len() < window.max(1) {
                batch_id += 1;
                let now = UnixMicros::now();
                let mut results = Vec::with_capacity(batch_size);
                for _ in 0..batch_size {
                    sequence += 1;
                    let result = factory
                        .result(&mut rng, key_of(sequence), &self.tasks, now)
                        .ok_or_else(|| self.fail("no task assigned for a kind of the mix"))?;
                    results.push(result);
                }
                let batch = v1::ResultBatch {
                    batch_id,
                    results,
                    losses: Vec::new(),
                };
                in_flight.insert(batch_id, (Instant::now(), batch_size as u64));
                tally.batches += 1;
                tally.sent += batch_size as u64;
                if self
                    .out
                    .send(message(probe_message::Kind::Results(batch)))
                    .await
                    .is_err()
                {
                    return Err(self.fail("session stream closed while sending"));
                }
                continue;
            }
            if in_flight.is_empty() {
                break;
            }
            let wait = if sending { stop } else { drain_deadline };
            let next = tokio::time::timeout_at(wait.into(), self.inbound.message()).await;
            let msg = match next {
                Err(_) if sending => continue,
                Err(_) => {
                    return Err(self.fail(format!(
                        "{} batches still unacked 60 s after the end",
                        in_flight.len()
                    )));
                }
                Ok(Err(status)) => {
                    return Err(self.fail(format!(
                        "session closed: {:?}: {}",
                        status.code(),
                        status.message()
                    )));
                }
                Ok(Ok(None)) => return Err(self.fail("session ended by the collector")),
                Ok(Ok(Some(msg))) => msg,
            };
            if let Some(collector_message::Kind::Ack(ack)) = msg.kind {
                let Some((sent_at, _)) = in_flight.remove(&ack.batch_id) else {
                    return Err(self.fail(format!("ack for unknown batch {}", ack.batch_id)));
                };
                tally
                    .latencies_us
                    .push(sent_at.elapsed().as_micros().min(u128::from(u64::MAX)) as u64);
                tally.acked += ack.stored.len() as u64;
                tally.rejected += ack.rejected.len() as u64;
                if tally.rejection.is_none() {
                    tally.rejection = ack.rejected.first().map(|r| r.reason.clone());
                }
            }
        }
        Ok(tally)
    }

    /// Holds the session with heartbeats until `stop` fires; false if the collector ended it.
    pub async fn idle(mut self, mut stop: tokio::sync::watch::Receiver<bool>) -> bool {
        let mut beat = tokio::time::interval(self.heartbeat);
        beat.tick().await;
        loop {
            tokio::select! {
                // The only change ever sent is the stop (a dropped sender is one too).
                _ = stop.changed() => return true,
                _ = beat.tick() => {
                    let heartbeat = v1::Heartbeat {
                        probe_time_us: UnixMicros::now().0,
                        pending_results: 0,
                        pending_bytes: 0,
                    };
                    if self.out.send(message(probe_message::Kind::Heartbeat(heartbeat))).await.is_err() {
                        return false;
                    }
                }
                msg = self.inbound.message() => match msg {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => return false,
                },
            }
        }
    }
}
