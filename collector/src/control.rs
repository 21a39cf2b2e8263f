//! The `ProbeControl` gRPC service: probe sessions, and the enrollment front end (the flow
//! itself is [`crate::enroll`]).

use crate::auth;
use crate::commit::GroupCommit;
use crate::config::Settings;
use crate::enrich;
use crate::enroll::{EnrollError, Enroller};
use crate::ingest::{BatchStats, write_batch};
use crate::metrics::{RejectReason, metrics};
use crate::pki::Pki;
use crate::store::{ProbeRecord, Store, StoreError, TagEvent};
use crate::tags::{self, TagInputs};
use sixmap_proto::v1::probe_control_server::ProbeControl;
use sixmap_proto::{decode, encode, v1};
use sixmap_shared::digest::sha256_hex;
use sixmap_shared::prefixes::{Enrichment, PrefixData};
use sixmap_shared::session::{
    Assignment, CollectorMessage, Hello, MAX_BATCH_RESULTS, ProbeMessage, Welcome,
};
use sixmap_shared::version::SOFTWARE_VERSION;
use sixmap_shared::{ProbeId, UnixMicros};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, warn};

/// A probe must say hello this soon after opening a session.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct ControlService {
    store: Arc<dyn Store>,
    settings: Arc<Settings>,
    prefixes: Arc<PrefixData>,
    /// Campaign tasks for probes saying hello, and the registry of live sessions.
    campaigns: Option<Arc<crate::campaign::Campaigns>>,
    pki: Arc<Pki>,
    /// One permit per admitted session (`limits.grpc_max_sessions`), held until it ends.
    sessions: Arc<tokio::sync::Semaphore>,
    /// The flushes that make sessions' batches durable before their acks, shared.
    commits: Arc<GroupCommit>,
    /// The enrollment flow ([`crate::enroll`]).
    enroller: Arc<Enroller>,
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
    pub fn new(
        store: Arc<dyn Store>,
        settings: Arc<Settings>,
        prefixes: Arc<PrefixData>,
        pki: Arc<Pki>,
    ) -> Self {
        Self {
            sessions: Arc::new(tokio::sync::Semaphore::new(
                settings.limits.grpc_max_sessions,
            )),
            commits: GroupCommit::new(store.clone()),
            enroller: Arc::new(Enroller::new(
                store.clone(),
                pki.clone(),
                prefixes.clone(),
                settings.enrollment_caps,
            )),
            store,
            settings,
            prefixes,
            campaigns: None,
            pki,
        }
    }

    /// Store writes and flushes that fail (or hang past `flush_timeout`) are reported to
    /// `fatal` (see [`crate::commit`]).
    pub fn with_fatal(
        self,
        fatal: crate::fatal::Fatal,
        flush_timeout: std::time::Duration,
    ) -> Self {
        self.commits.report_failures_to(fatal, flush_timeout);
        self
    }

    /// Sessions hand each stored batch's figure deltas to `feed`, the folder's.
    pub fn with_figures_feed(self, feed: Arc<crate::figures::feed::Feed>) -> Self {
        self.commits.hand_figures_to(feed);
        self
    }

    /// Adds campaign tasks to probes' sessions (see [`crate::campaign::Campaigns::greet`]).
    pub fn with_campaigns(mut self, campaigns: Arc<crate::campaign::Campaigns>) -> Self {
        self.campaigns = Some(campaigns);
        self
    }

    /// The probe's origin: from its first global IPv6 address, else the address its session
    /// comes from (global ones only: private space says nothing about an operator).
    fn probe_origin(&self, hello: &Hello, peer: Option<IpAddr>) -> Option<Enrichment> {
        // In lab mode the lab's documentation and private addresses stand for operators.
        let lab_mode = self.settings.lab_mode;
        let global = |a: &IpAddr| lab_mode || sixmap_shared::policy::classify(*a).is_none();
        hello
            .local_addresses
            .iter()
            .filter(|a| a.is_ipv6())
            .chain(peer.iter())
            .filter(|a| global(a))
            .find_map(|a| enrich::lookup(&self.prefixes, *a))
    }

    /// Checks identity and version; returns the probe's updated record.
    async fn admit(
        &self,
        record: ProbeRecord,
        hello: &Hello,
        peer: Option<IpAddr>,
    ) -> Result<ProbeRecord, Status> {
        if hello.probe_id != record.id {
            return Err(Status::permission_denied(format!(
                "hello names probe {} but the client certificate belongs to probe {}: a probe speaks only for itself",
                hello.probe_id, record.id
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
        // Skipped or regressed boot epochs are flagged as a loss of unknown count.
        if let Some(gap) =
            crate::epochs::gap(&record.id, record.boot_epoch, boot_epoch, UnixMicros::now())
        {
            let store = self.store.clone();
            blocking(move || crate::epochs::record(&*store, gap)).await?;
        }
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

type PeerCerts = Option<Arc<Vec<rustls::pki_types::CertificateDer<'static>>>>;

/// The peer's address and client certificates, from the TLS connection the request came on.
fn connection<T>(request: &Request<T>) -> (Option<IpAddr>, PeerCerts) {
    (request.remote_addr().map(|a| a.ip()), request.peer_certs())
}

/// The status a revoked probe gets; the probe stops on it (it is `PermissionDenied`).
fn revoked(record: &ProbeRecord) -> Option<Status> {
    auth::revocation_message(record).map(Status::permission_denied)
}

/// The status of a failed enrollment: the probe tells a refusal (stop, ask for a new token)
/// from a collector that cannot answer now (retry) by it.
fn enroll_status(e: EnrollError) -> Status {
    match e {
        EnrollError::Invalid { .. } => Status::invalid_argument(e.to_string()),
        EnrollError::Token(_) | EnrollError::Revoked(_) => Status::permission_denied(e.to_string()),
        EnrollError::Cap(_) => Status::resource_exhausted(e.to_string()),
        EnrollError::Internal(message) => Status::internal(message),
        EnrollError::Store(e) => internal(e),
    }
}

/// **The one place where a connection becomes a probe identity.** The TLS layer has already
/// checked that the client certificate chains to the collector's CA (see
/// [`crate::pki::Pki::server_config`]); this maps the certificate to the probe it was issued
/// to, by the SHA-256 of its DER, recorded at enrollment ([`crate::store::AuthStore::bind_certificate`]).
/// Nothing the probe says (hello, result keys) can change who it is. Refuses connections
/// without a certificate, certificates this collector does not know (e.g. issued before its
/// store was wiped) and revoked probes, each with a message saying what to do.
pub async fn probe_identity(
    store: &Arc<dyn Store>,
    peer_certs: PeerCerts,
) -> Result<ProbeRecord, Status> {
    let leaf = peer_certs
        .as_deref()
        .and_then(|certs| certs.first())
        .ok_or_else(|| {
            Status::unauthenticated(
                "no client certificate: a session needs the certificate this probe received at enrollment",
            )
        })?;
    let fingerprint = sha256_hex(leaf);
    let store = store.clone();
    let lookup = fingerprint.clone();
    let record = blocking(move || {
        let Some(id) = store.certificate_probe(&lookup)? else {
            return Ok(None);
        };
        store.probe(&id)
    })
    .await?
    .ok_or_else(|| {
        Status::unauthenticated(format!(
            "unknown probe certificate {}: it is not enrolled with this collector (enroll again with a token)",
            &fingerprint[..16]
        ))
    })?;
    match revoked(&record) {
        Some(status) => Err(status),
        None => Ok(record),
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
        let _writing = crate::store::probe_record_lock(&probe);
        let Some(mut record) = store.probe(&probe)? else {
            return Err(StoreError::Backend(format!("probe {probe} vanished from the store")));
        };
        if record.revoked_at.is_some() {
            // Revoked while connected: the session ends at its next heartbeat or batch.
            return Ok(Err(record));
        }
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
        Ok(Ok((record, changed)))
    })
    .await?
    .map_err(|record| revoked(&record).unwrap_or_else(|| Status::internal("revocation state")))
}

type SessionStream = Pin<Box<dyn Stream<Item = Result<v1::CollectorMessage, Status>> + Send>>;

/// The edge of a session's outbound stream: what the session and the campaign registry send
/// (domain messages, on one bounded channel, so a probe that does not read holds them back),
/// encoded for the wire, then the status the session ended with, if it failed.
struct Outbound {
    messages: mpsc::Receiver<CollectorMessage>,
    /// Resolves with the error the session ended with; dropped unsent when it ended well.
    failure: Option<oneshot::Receiver<Status>>,
    done: bool,
}

impl Stream for Outbound {
    type Item = Result<v1::CollectorMessage, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        // Messages queued before a failure go first, as they were sent first.
        let drained = match self.messages.poll_recv(cx) {
            Poll::Ready(Some(message)) => {
                return Poll::Ready(Some(Ok(encode::collector_message(&message))));
            }
            Poll::Ready(None) => true,
            Poll::Pending => false,
        };
        if let Some(failure) = self.failure.as_mut() {
            match Pin::new(failure).poll(cx) {
                Poll::Ready(Ok(status)) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(status)));
                }
                Poll::Ready(Err(_)) => self.failure = None,
                Poll::Pending => return Poll::Pending,
            }
        }
        if drained {
            self.done = true;
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

#[tonic::async_trait]
impl ProbeControl for ControlService {
    async fn enroll(
        &self,
        request: Request<v1::EnrollRequest>,
    ) -> Result<Response<v1::EnrollResponse>, Status> {
        let (peer, _) = connection(&request);
        // Bounds and characters of every field first: nothing unchecked reaches the logs.
        let request = decode::enroll_request(request.get_ref()).map_err(|e| {
            metrics().enrollment("invalid");
            Status::invalid_argument(format!("invalid field `{}`: {}", e.field, e.reason))
        })?;
        let enroller = self.enroller.clone();
        // The whole flow in one blocking step (`enroll`): token, caps, certificate, records.
        let enrolled = crate::store::run_blocking(move || {
            Ok(enroller.enroll(&request, peer, UnixMicros::now()))
        })
        .await
        .map_err(internal)?
        .map_err(enroll_status)?;
        Ok(Response::new(v1::EnrollResponse {
            probe_id: enrolled.probe.to_string(),
            probe_secret: String::new(),
            certificate_der: enrolled.certificate_der,
            ca_certificate_der: self.pki.ca_der().to_vec(),
        }))
    }

    type SessionStream = SessionStream;

    async fn session(
        &self,
        request: Request<Streaming<v1::ProbeMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let (peer, certs) = connection(&request);
        let record = probe_identity(&self.store, certs).await?;
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
            .await
            .map_err(|_| {
                Status::deadline_exceeded("no hello within 10 s of opening the session")
            })??;
        let first = first.map(decode::probe_message).transpose();
        let hello = match first.map_err(|e| Status::invalid_argument(e.to_string()))? {
            Some(ProbeMessage::Hello(hello)) => hello,
            _ => {
                return Err(Status::invalid_argument(
                    "the first session message must be hello",
                ));
            }
        };
        let record = self.admit(record, &hello, peer).await?;
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
        let (failed, failure) = oneshot::channel();
        let welcome = Welcome {
            server_time: UnixMicros::now(),
            collector_version: SOFTWARE_VERSION.to_owned(),
            heartbeat_interval: self.settings.heartbeat_interval,
            max_batch_results: MAX_BATCH_RESULTS,
        };
        let mut greeting = vec![
            CollectorMessage::Welcome(welcome),
            CollectorMessage::Tags(record.tags.clone()),
        ];
        greeting.extend(assignments.into_iter().map(CollectorMessage::Assign));
        // The greeting is sent from the session task: the stream is only read once this
        // function returned, so sending more than the channel holds here would deadlock.
        let store = self.store.clone();
        let prefixes = self.prefixes.clone();
        let campaigns = self.campaigns.clone();
        let open_session = metrics().session();
        let commits = self.commits.clone();
        tokio::spawn(async move {
            let _session_permit = session_permit;
            let _open_session = open_session;
            for item in greeting {
                if tx.send(item).await.is_err() {
                    return;
                }
            }
            // After the welcome, which a probe needs first: campaign tasks, then pushes.
            if let Some(campaigns) = &campaigns {
                match campaigns.greet(&record, &tx).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => {
                        let _ = failed.send(internal(e));
                        return;
                    }
                }
            }
            serve_session(
                store,
                commits,
                prefixes,
                record.id.clone(),
                inbound,
                tx.clone(),
                failed,
            )
            .await;
            if let Some(campaigns) = campaigns {
                campaigns.disconnected(&record.id, &tx);
            }
        });
        Ok(Response::new(Box::pin(Outbound {
            messages: rx,
            failure: Some(failure),
            done: false,
        })))
    }
}

/// Handles a probe's messages after hello until the stream ends or breaks a rule.
async fn serve_session(
    store: Arc<dyn Store>,
    commits: Arc<GroupCommit>,
    prefixes: Arc<PrefixData>,
    probe: ProbeId,
    mut inbound: Streaming<v1::ProbeMessage>,
    tx: mpsc::Sender<CollectorMessage>,
    failed: oneshot::Sender<Status>,
) {
    let outcome = session_loop(&store, &commits, &prefixes, &probe, &mut inbound, &tx).await;
    match outcome {
        Ok(()) => info!(probe = %probe, "probe session ended"),
        Err(status) => {
            warn!(probe = %probe, code = ?status.code(), message = status.message(), "probe session closed with error");
            let _ = failed.send(status);
        }
    }
}

/// Sends a probe its current tags; false if the session is gone.
async fn send_tags(tx: &mpsc::Sender<CollectorMessage>, record: &ProbeRecord) -> bool {
    tx.send(CollectorMessage::Tags(record.tags.clone()))
        .await
        .is_ok()
}

/// Adds one stored batch's counts to the metrics.
fn count_batch(stats: &BatchStats) {
    let m = metrics();
    m.results_stored.with(&["new"]).add(stats.new as u64);
    m.results_stored
        .with(&["duplicate"])
        .add(stats.duplicate as u64);
    for (reason, count) in [
        (RejectReason::Malformed, stats.rejected_malformed),
        (RejectReason::ForeignProbe, stats.rejected_foreign_probe),
        (RejectReason::UnassignedTask, stats.rejected_unassigned_task),
    ] {
        if count > 0 {
            m.results_rejected.with(&[reason.label()]).add(count as u64);
        }
    }
    m.loss_records.add(stats.losses_new as u64);
    m.lost_results.add(stats.lost_results);
}

/// How much newer a v6 success must be before a session writes it to the probe's record.
const V6_SUCCESS_EVERY_US: i64 = 60_000_000;

async fn session_loop(
    store: &Arc<dyn Store>,
    commits: &Arc<GroupCommit>,
    prefixes: &Arc<PrefixData>,
    probe: &ProbeId,
    inbound: &mut Streaming<v1::ProbeMessage>,
    tx: &mpsc::Sender<CollectorMessage>,
) -> Result<(), Status> {
    // The newest v6 success written to the probe's record by this session: rewriting the
    // record for every batch cost as much as storing the batch, and v6-works looks at a day.
    let mut v6_recorded: Option<UnixMicros> = None;
    while let Some(wire) = inbound.message().await? {
        // Decoded once, here; a result batch item by item, so its errors are in the batch.
        let message =
            decode::probe_message(wire).map_err(|e| Status::invalid_argument(e.to_string()))?;
        match message {
            ProbeMessage::Hello(_) => {
                return Err(Status::invalid_argument("hello sent twice in one session"));
            }
            ProbeMessage::Heartbeat(_) => {
                // Tags are recomputed on heartbeats too: v6-works expires and v6-stable-*
                // matures with time alone.
                let (record, changed) = update_probe(store, probe, |_| {}).await?;
                if changed && !send_tags(tx, &record).await {
                    return Ok(());
                }
            }
            ProbeMessage::SelfTest(self_test) => {
                let (record, changed) =
                    update_probe(store, probe, move |r| r.self_test = Some(self_test)).await?;
                if changed && !send_tags(tx, &record).await {
                    return Ok(());
                }
            }
            ProbeMessage::Results(batch) => {
                let received_at = std::time::Instant::now();
                let m = metrics();
                m.batches.inc();
                let batch_len = batch.result_count as u64;
                m.results_received.add(batch_len);
                let store_for_batch = store.clone();
                let session_probe = probe.clone();
                let prefixes = prefixes.clone();
                let feed = commits.figures_feed();
                let outcome = commits
                    .write(move || {
                        write_batch(
                            &*store_for_batch,
                            &prefixes,
                            &session_probe,
                            batch,
                            feed.as_deref(),
                        )
                    })
                    .await
                    .map_err(internal)?;
                let (ack, stats) = outcome.map_err(|e| {
                    m.results_rejected
                        .with(&[RejectReason::Malformed.label()])
                        .add(batch_len);
                    Status::invalid_argument(e.to_string())
                })?;
                count_batch(&stats);
                // Durable before the ack: one flush shared with every session waiting.
                commits.flush().await.map_err(internal)?;
                for rejection in &ack.rejected {
                    warn!(probe = %probe, key = %rejection.key, reason = %rejection.reason, "result rejected");
                }
                tracing::debug!(probe = %probe, new = stats.new, duplicate = stats.duplicate, rejected = stats.rejected, losses = stats.losses_new, "batch stored");
                if tx.send(CollectorMessage::Ack(ack)).await.is_err() {
                    return Ok(());
                }
                m.acks_sent.inc();
                m.ack_latency.observe_duration(received_at.elapsed());
                if let Some(success) = stats.last_v6_success.filter(|s| {
                    v6_recorded.is_none_or(|r| s.0 >= r.0.saturating_add(V6_SUCCESS_EVERY_US))
                }) {
                    v6_recorded = Some(success);
                    let (record, changed) = update_probe(store, probe, move |r| {
                        r.last_v6_success = r.last_v6_success.max(Some(success));
                    })
                    .await?;
                    if changed && !send_tags(tx, &record).await {
                        return Ok(());
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    fn outbound(
        capacity: usize,
    ) -> (
        Outbound,
        mpsc::Sender<CollectorMessage>,
        oneshot::Sender<Status>,
    ) {
        let (tx, rx) = mpsc::channel(capacity);
        let (failed, failure) = oneshot::channel();
        let out = Outbound {
            messages: rx,
            failure: Some(failure),
            done: false,
        };
        (out, tx, failed)
    }

    fn tags() -> CollectorMessage {
        CollectorMessage::Tags(Vec::new())
    }

    #[tokio::test]
    async fn a_failed_session_ends_its_stream_with_the_status_after_what_was_queued() {
        let (mut out, tx, failed) = outbound(4);
        tx.send(tags()).await.unwrap();
        tx.send(tags()).await.unwrap();
        failed.send(Status::invalid_argument("bad")).unwrap();
        // `tx` stays alive, as the registry's copy may: the status must not wait for it.
        for _ in 0..2 {
            let wire = out.next().await.unwrap().unwrap();
            assert!(matches!(
                wire.kind,
                Some(v1::collector_message::Kind::Tags(_))
            ));
        }
        let status = tokio::time::timeout(Duration::from_secs(5), out.next())
            .await
            .expect("the status waited for every sender to go")
            .unwrap()
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(out.next().await.is_none());
        drop(tx);
    }

    #[tokio::test]
    async fn a_session_that_ended_well_ends_its_stream_once_every_sender_is_gone() {
        let (mut out, tx, failed) = outbound(4);
        let registry = tx.clone();
        tx.send(tags()).await.unwrap();
        drop(failed);
        drop(tx);
        assert!(out.next().await.unwrap().is_ok());
        // The registry may still push to the probe.
        let waiting = tokio::time::timeout(Duration::from_millis(50), out.next()).await;
        assert!(waiting.is_err(), "the stream ended while a sender lived");
        registry.try_send(tags()).unwrap();
        assert!(out.next().await.unwrap().is_ok());
        drop(registry);
        assert!(out.next().await.is_none());
    }
}
