//! The `ProbeControl` gRPC service: enrollment and probe sessions.

use crate::config::Settings;
use crate::enrich;
use crate::ingest::ingest_batch;
use crate::store::{ProbeRecord, Store, StoreError, TagEvent};
use crate::tags::{self, TagInputs};
use sixmap_proto::v1::probe_control_server::ProbeControl;
use sixmap_proto::v1::{collector_message, probe_message};
use sixmap_proto::{decode, encode, v1};
use sixmap_shared::prefixes::{Enrichment, PrefixData};
use sixmap_shared::session::{Assignment, Hello, MAX_BATCH_RESULTS, Welcome};
use sixmap_shared::version::SOFTWARE_VERSION;
use sixmap_shared::{ProbeId, ProbeSecret, UnixMicros};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, warn};

/// A probe must say hello this soon after opening a session.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_HOSTNAME_LEN: usize = 64;

#[derive(Debug, Clone)]
pub struct ControlService {
    store: Arc<dyn Store>,
    settings: Arc<Settings>,
    prefixes: Arc<PrefixData>,
    /// One permit per admitted session (`limits.grpc_max_sessions`), held until it ends.
    sessions: Arc<tokio::sync::Semaphore>,
}

fn internal(e: StoreError) -> Status {
    warn!(error = %e, "store failure");
    Status::unavailable(format!("collector storage unavailable: {e}"))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Status> {
    crate::store::run_blocking(work).await.map_err(internal)
}

impl ControlService {
    pub fn new(store: Arc<dyn Store>, settings: Arc<Settings>, prefixes: Arc<PrefixData>) -> Self {
        Self {
            sessions: Arc::new(tokio::sync::Semaphore::new(
                settings.limits.grpc_max_sessions,
            )),
            store,
            settings,
            prefixes,
        }
    }

    /// The probe's origin: from its first global IPv6 address, else the address its session
    /// comes from (global ones only: private space says nothing about an operator).
    fn probe_origin(&self, hello: &Hello, peer: Option<IpAddr>) -> Option<Enrichment> {
        let global = |a: &IpAddr| sixmap_shared::policy::classify(*a).is_none();
        hello
            .local_addresses
            .iter()
            .filter(|a| a.is_ipv6())
            .chain(peer.iter())
            .filter(|a| global(a))
            .find_map(|a| enrich::lookup(&self.prefixes, *a))
    }

    fn token_valid(&self, token: &str) -> bool {
        self.settings.enrollment_tokens.iter().any(|t| {
            t.len() == token.len()
                && t.bytes()
                    .zip(token.bytes())
                    .fold(0, |a, (x, y)| a | (x ^ y))
                    == 0
        })
    }

    /// Checks identity and version; returns the probe's updated record.
    async fn admit(&self, hello: &Hello, peer: Option<IpAddr>) -> Result<ProbeRecord, Status> {
        let store = self.store.clone();
        let id = hello.probe_id.clone();
        let record = blocking(move || store.probe(&id))
            .await?
            .ok_or_else(|| {
                Status::unauthenticated(format!(
                    "unknown probe {}: it is not enrolled with this collector (enroll again with a token)",
                    hello.probe_id
                ))
            })?;
        if !record.secret.matches(&hello.secret) {
            return Err(Status::unauthenticated(format!(
                "wrong secret for probe {}",
                hello.probe_id
            )));
        }
        if hello.software_version < self.settings.min_probe_version {
            return Err(Status::failed_precondition(format!(
                "probe version {} is older than the minimum {} this collector accepts: upgrade sixmap-probe",
                hello.software_version, self.settings.min_probe_version
            )));
        }
        let version = hello.software_version.to_string();
        let (boot_epoch, addresses) = (hello.boot_epoch, hello.local_addresses.clone());
        let location = hello.location;
        let origin = self.probe_origin(hello, peer);
        let (updated, _) = update_probe(&self.store, &record.id, move |r| {
            r.software_version = Some(version);
            r.boot_epoch = Some(boot_epoch);
            r.local_addresses = addresses;
            r.location = location;
            r.origin = origin;
        })
        .await?;
        Ok(updated)
    }

    /// The tasks this probe runs now, recorded as assigned before they are sent.
    async fn assignments_for(&self, probe: &ProbeId) -> Result<Vec<Assignment>, Status> {
        let store = self.store.clone();
        let settings = self.settings.clone();
        let probe = probe.clone();
        blocking(move || {
            settings
                .default_tasks
                .iter()
                .map(|task| {
                    let task_id = store.task_id(&task.definition())?;
                    store.record_assignment(&probe, task_id)?;
                    Ok(Assignment {
                        task_id,
                        spec: task.spec.clone(),
                        interval: Some(task.every),
                        not_before: None,
                    })
                })
                .collect()
        })
        .await
    }
}

/// Applies `change` to a probe's record, marks it seen now, recomputes its tags (recording
/// any change in the tag history) and saves it. Returns the record and whether tags changed.
async fn update_probe(
    store: &Arc<dyn Store>,
    probe: &ProbeId,
    change: impl FnOnce(&mut ProbeRecord) + Send + 'static,
) -> Result<(ProbeRecord, bool), Status> {
    let store = store.clone();
    let probe = probe.clone();
    blocking(move || {
        let Some(mut record) = store.probe(&probe)? else {
            return Err(StoreError::Backend(format!("probe {probe} vanished from the store")));
        };
        let now = UnixMicros::now();
        change(&mut record);
        record.last_seen = Some(now);
        let inputs = TagInputs {
            local_addresses: &record.local_addresses,
            self_test: record.self_test.as_ref(),
            last_v6_success: record.last_v6_success,
        };
        let new_tags = tags::compute(&inputs, &record.tags, now);
        let diff = tags::diff(&record.tags, &new_tags);
        let changed = !diff.added.is_empty() || !diff.removed.is_empty();
        if changed {
            info!(probe = %probe, added = ?diff.added, removed = ?diff.removed, "probe tags changed");
            store.record_tag_event(
                &probe,
                &TagEvent {
                    at: now,
                    added: diff.added,
                    removed: diff.removed,
                },
            )?;
        }
        record.tags = new_tags;
        store.update_probe(&record)?;
        Ok((record, changed))
    })
    .await
}

type SessionStream = Pin<Box<dyn Stream<Item = Result<v1::CollectorMessage, Status>> + Send>>;

fn message(kind: collector_message::Kind) -> Result<v1::CollectorMessage, Status> {
    Ok(v1::CollectorMessage { kind: Some(kind) })
}

#[tonic::async_trait]
impl ProbeControl for ControlService {
    async fn enroll(
        &self,
        request: Request<v1::EnrollRequest>,
    ) -> Result<Response<v1::EnrollResponse>, Status> {
        let request = request.into_inner();
        if self.settings.enrollment_tokens.is_empty() {
            return Err(Status::failed_precondition(
                "enrollment is disabled on this collector: no enrollment_tokens configured",
            ));
        }
        if !self.token_valid(&request.token) {
            return Err(Status::permission_denied("enrollment token not accepted"));
        }
        if request.hostname.len() > MAX_HOSTNAME_LEN {
            return Err(Status::invalid_argument(format!(
                "invalid field `hostname`: longer than {MAX_HOSTNAME_LEN} bytes"
            )));
        }
        let random = |e: sixmap_shared::IdError| Status::internal(e.to_string());
        let record = ProbeRecord {
            id: ProbeId::random().map_err(random)?,
            secret: ProbeSecret::random().map_err(random)?,
            hostname: request.hostname,
            enrolled_at: UnixMicros::now(),
            last_seen: None,
            software_version: Some(request.software_version),
            boot_epoch: None,
            local_addresses: Vec::new(),
            self_test: None,
            last_v6_success: None,
            tags: Vec::new(),
            location: None,
            origin: None,
        };
        let store = self.store.clone();
        let to_store = record.clone();
        blocking(move || {
            store.create_probe(&to_store)?;
            store.flush()
        })
        .await?;
        info!(probe = %record.id, hostname = %record.hostname, "probe enrolled");
        Ok(Response::new(v1::EnrollResponse {
            probe_id: record.id.to_string(),
            probe_secret: record.secret.expose().to_owned(),
        }))
    }

    type SessionStream = SessionStream;

    async fn session(
        &self,
        request: Request<Streaming<v1::ProbeMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let peer = request.remote_addr().map(|a| a.ip());
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
            .await
            .map_err(|_| {
                Status::deadline_exceeded("no hello within 10 s of opening the session")
            })??;
        let hello = match first.and_then(|m| m.kind) {
            Some(probe_message::Kind::Hello(hello)) => decode::hello(&hello)
                .map_err(|e| Status::invalid_argument(format!("hello: {e}")))?,
            _ => {
                return Err(Status::invalid_argument(
                    "the first session message must be hello",
                ));
            }
        };
        let record = self.admit(&hello, peer).await?;
        // Counted after admission: sessions that never say a valid hello end within
        // HELLO_TIMEOUT, so only admitted ones hold resources for long.
        let Ok(session_permit) = self.sessions.clone().try_acquire_owned() else {
            warn!(probe = %record.id, limit = self.settings.limits.grpc_max_sessions, "session refused: at the session limit");
            return Err(Status::resource_exhausted(format!(
                "the collector serves its maximum of {} probe sessions; retry later",
                self.settings.limits.grpc_max_sessions
            )));
        };
        let assignments = self.assignments_for(&record.id).await?;
        info!(
            probe = %record.id,
            version = %hello.software_version,
            boot_epoch = hello.boot_epoch,
            tasks = assignments.len(),
            "probe session started"
        );

        let (tx, rx) = mpsc::channel(64);
        let welcome = Welcome {
            server_time: UnixMicros::now(),
            collector_version: SOFTWARE_VERSION.to_owned(),
            heartbeat_interval: self.settings.heartbeat_interval,
            max_batch_results: MAX_BATCH_RESULTS,
        };
        let mut greeting = vec![message(collector_message::Kind::Welcome(encode::welcome(
            &welcome,
        )))];
        greeting.push(message(collector_message::Kind::Tags(encode::tags(
            &record.tags,
        ))));
        greeting.extend(
            assignments
                .iter()
                .map(|a| message(collector_message::Kind::Assign(encode::assignment(a)))),
        );
        // The greeting is sent from the session task: the stream is only read once this
        // function returned, so sending more than the channel holds here would deadlock.
        let store = self.store.clone();
        let prefixes = self.prefixes.clone();
        tokio::spawn(async move {
            let _session_permit = session_permit;
            for item in greeting {
                if tx.send(item).await.is_err() {
                    return;
                }
            }
            serve_session(store, prefixes, record.id, inbound, tx).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Handles a probe's messages after hello until the stream ends or breaks a rule.
async fn serve_session(
    store: Arc<dyn Store>,
    prefixes: Arc<PrefixData>,
    probe: ProbeId,
    mut inbound: Streaming<v1::ProbeMessage>,
    tx: mpsc::Sender<Result<v1::CollectorMessage, Status>>,
) {
    let outcome = session_loop(&store, &prefixes, &probe, &mut inbound, &tx).await;
    match outcome {
        Ok(()) => info!(probe = %probe, "probe session ended"),
        Err(status) => {
            warn!(probe = %probe, code = ?status.code(), message = status.message(), "probe session closed with error");
            let _ = tx.send(Err(status)).await;
        }
    }
}

/// Sends a probe its current tags; false if the session is gone.
async fn send_tags(
    tx: &mpsc::Sender<Result<v1::CollectorMessage, Status>>,
    record: &ProbeRecord,
) -> bool {
    tx.send(message(collector_message::Kind::Tags(encode::tags(
        &record.tags,
    ))))
    .await
    .is_ok()
}

async fn session_loop(
    store: &Arc<dyn Store>,
    prefixes: &Arc<PrefixData>,
    probe: &ProbeId,
    inbound: &mut Streaming<v1::ProbeMessage>,
    tx: &mpsc::Sender<Result<v1::CollectorMessage, Status>>,
) -> Result<(), Status> {
    while let Some(msg) = inbound.message().await? {
        match msg.kind {
            Some(probe_message::Kind::Hello(_)) => {
                return Err(Status::invalid_argument("hello sent twice in one session"));
            }
            Some(probe_message::Kind::Heartbeat(_)) => {
                // Tags are recomputed on heartbeats too: v6-works expires and v6-stable-*
                // matures with time alone.
                let (record, changed) = update_probe(store, probe, |_| {}).await?;
                if changed && !send_tags(tx, &record).await {
                    return Ok(());
                }
            }
            Some(probe_message::Kind::SelfTest(wire)) => {
                let self_test = decode::self_test(&wire)
                    .map_err(|e| Status::invalid_argument(format!("self_test: {e}")))?;
                let (record, changed) =
                    update_probe(store, probe, move |r| r.self_test = Some(self_test)).await?;
                if changed && !send_tags(tx, &record).await {
                    return Ok(());
                }
            }
            Some(probe_message::Kind::Results(batch)) => {
                let store_for_batch = store.clone();
                let session_probe = probe.clone();
                let prefixes = prefixes.clone();
                let outcome = blocking(move || {
                    ingest_batch(&*store_for_batch, &prefixes, &session_probe, &batch)
                })
                .await?;
                let (ack, stats) = outcome.map_err(|e| Status::invalid_argument(e.to_string()))?;
                for rejection in &ack.rejected {
                    warn!(probe = %probe, key = %rejection.key, reason = %rejection.reason, "result rejected");
                }
                tracing::debug!(probe = %probe, new = stats.new, duplicate = stats.duplicate, rejected = stats.rejected, losses = stats.losses_new, "batch stored");
                if tx
                    .send(message(collector_message::Kind::Ack(encode::ack(&ack))))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
                if let Some(success) = stats.last_v6_success {
                    let (record, changed) = update_probe(store, probe, move |r| {
                        r.last_v6_success = r.last_v6_success.max(Some(success));
                    })
                    .await?;
                    if changed && !send_tags(tx, &record).await {
                        return Ok(());
                    }
                }
            }
            None => return Err(Status::invalid_argument("empty or unknown session message")),
        }
    }
    Ok(())
}
