//! HTTP API of quick measurements (`quick`), what `sixmap-collector measure` uses:
//!
//! - `POST /api/v1/measurements` with `{"kind", "target", "from": ["FR", "AS3215",
//!   "tag:v6-works"], "probes": N, ...options}` (options: the keys of a campaign's measurement
//!   table): 201 with the measurement's id, probes and deadline; 400 naming the key (a `from`
//!   entry that matches no connected probe is `from[i]`), 403 over the owner's budget, 429 over
//!   the owner's rate. Any API token may start one (admin, campaigner, researcher); its holder
//!   owns it.
//! - `GET /api/v1/measurements/{id}`: the measurement (a campaign record) and its progress.
//! - `GET /api/v1/measurements/{id}/results[?follow=true]`: its results as JSON lines (the
//!   stored results, as `/api/v1/results` gives them), then one last line `{"done": {...}}`
//!   saying how many (probe, task) pairs answered and why it ended. With `follow=true` the
//!   response is streamed (chunked): each result as soon as it is stored, until every probe
//!   answered, the deadline passed, nothing came for [`IDLE`], or the client went.
//!
//! Another owner's measurement (unless the caller is an admin) is a 404, as is a campaign.
//! A followed response is a long response: it holds a permit of the shared budget
//! (`limits::streams`) while it lasts; its store reads run on the readers' pool.

use super::http::{ApiError, bad, blocking, parse_id};
use super::quick::{Request, all_answered};
use super::{CampaignError, CampaignRecord, Campaigns, Writer};
use crate::http_auth::Caller;
use crate::store::{Role, StoredResult};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use sixmap_shared::{ResultKey, UnixMicros};
use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tracing::debug;

/// A followed response ends when no result came for this long.
pub const IDLE: Duration = Duration::from_secs(60);
/// How often a followed response looks for new results.
const POLL: Duration = Duration::from_millis(300);

pub fn router(campaigns: Arc<Campaigns>) -> Router {
    Router::new()
        .route("/api/v1/measurements", post(create))
        .route("/api/v1/measurements/{id}", get(show))
        .route("/api/v1/measurements/{id}/results", get(results))
        .with_state(campaigns)
}

fn writer(caller: &Caller) -> Writer<'_> {
    Writer {
        name: &caller.name,
        admin: caller.role == Role::Admin,
    }
}

async fn create(
    State(c): State<Arc<Campaigns>>,
    caller: Caller,
    body: Result<Json<Request>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body.map_err(|e| bad("body", e.body_text()))?;
    let owner = caller.name.clone();
    let record = blocking(move || c.create_quick(&owner, &request, UnixMicros::now())).await?;
    Ok((StatusCode::CREATED, Json(started(&record))).into_response())
}

/// What starting a quick measurement answers (HTTP's 201 body, gRPC `Measure`'s first
/// document): its id, probes, tasks, deadline and where its results are.
pub fn started(record: &CampaignRecord) -> serde_json::Value {
    let quick = record.spec.quick.as_ref();
    serde_json::json!({
        "id": record.id,
        "status": record.status,
        "target": record.spec.targets.first(),
        "from": quick.map(|q| &q.from),
        "deadline": quick.map(|q| q.deadline),
        "probes": record.probes,
        "tasks": record.tasks,
        "results": format!("/api/v1/measurements/{}/results?follow=true", record.id),
    })
}

async fn show(
    State(c): State<Arc<Campaigns>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?;
    Ok(Json(
        blocking(move || {
            c.quick(id, writer(&caller))?;
            c.show(id, UnixMicros::now())
        })
        .await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultsParams {
    #[serde(default)]
    follow: bool,
}

/// What a results response has sent so far.
#[derive(Debug, Default)]
struct Sent {
    keys: HashSet<ResultKey>,
    answered: HashSet<(sixmap_shared::ProbeId, sixmap_shared::TaskId)>,
}

impl Sent {
    /// The lines of the results not sent yet (marking them sent).
    fn take_new(&mut self, results: Vec<StoredResult>) -> Vec<Bytes> {
        let mut lines = Vec::new();
        for r in results {
            if !self.keys.insert(r.result.key.clone()) {
                continue;
            }
            self.answered
                .insert((r.result.key.probe_id.clone(), r.result.task_id));
            if let Ok(mut line) = serde_json::to_vec(&r) {
                line.push(b'\n');
                lines.push(Bytes::from(line));
            }
        }
        lines
    }

    fn done_line(&self, record: &CampaignRecord, reason: &str) -> Bytes {
        let expected = record.probes.len() * record.tasks.len();
        let mut line = serde_json::json!({ "done": {
            "id": record.id,
            "answered": self.answered.len(),
            "expected": expected,
            "results": self.keys.len(),
            "reason": reason,
        }})
        .to_string();
        line.push('\n');
        Bytes::from(line)
    }
}

fn read_results(c: &Campaigns, id: u64) -> Result<Vec<StoredResult>, CampaignError> {
    let mut out = Vec::new();
    let mut gone = false;
    c.store().campaign_results(id, &mut |r| {
        gone = crate::limits::readers::cancelled();
        out.push(r);
        !gone
    })?;
    if gone {
        return Err(CampaignError::Store(crate::store::StoreError::Cancelled));
    }
    Ok(out)
}

async fn results(
    State(c): State<Arc<Campaigns>>,
    caller: Caller,
    Path(id): Path<String>,
    params: Result<Query<ResultsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let Query(params) = params.map_err(|e| bad("query", e.body_text()))?;
    let worker = c.clone();
    let record = blocking(move || worker.quick(id, writer(&caller))).await?;
    let headers = [(header::CONTENT_TYPE, "application/x-ndjson")];
    if !params.follow {
        let worker = c.clone();
        let stored = blocking(move || read_results(&worker, id)).await?;
        let mut sent = Sent::default();
        let mut body: Vec<u8> = sent.take_new(stored).concat();
        let reason = if all_answered(&record, &sent.answered) {
            "every probe answered"
        } else {
            "not followed"
        };
        body.extend_from_slice(&sent.done_line(&record, reason));
        return Ok((headers, body).into_response());
    }
    // A small channel: the poller waits for the client to read, and stops when the body
    // (so the client) is gone.
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    // A client that takes no line for `IDLE` is taken as gone (the connection's own write
    // timeout usually ends it first).
    tokio::spawn(follow(c, record, tx, IDLE));
    let body = Body::from_stream(ReceiverStream::new(rx).map(Ok::<_, Infallible>));
    Ok((headers, body).into_response())
}

/// Why [`follow`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followed {
    /// It sent the `done` line.
    Done,
    /// The client went away.
    Gone,
    /// The client took nothing for the stall time: the rest, `done` included, was not sent.
    Stalled,
}

/// Sends the measurement's results as they are stored, then the `done` line. Each line waits
/// at most `stall` for room in `tx`: a client that stops reading (but stays) cannot hold the
/// follower, and with it a place in the long-response budget, past that.
pub async fn follow(
    c: Arc<Campaigns>,
    record: CampaignRecord,
    tx: mpsc::Sender<Bytes>,
    stall: Duration,
) -> Followed {
    let id = record.id;
    let send = |line: Bytes| {
        let tx = tx.clone();
        async move {
            match tx.send_timeout(line, stall).await {
                Ok(()) => None,
                Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                    debug!(measurement = id, "results follower stalled");
                    Some(Followed::Stalled)
                }
                Err(mpsc::error::SendTimeoutError::Closed(_)) => Some(Followed::Gone),
            }
        }
    };
    let deadline = record
        .spec
        .quick
        .as_ref()
        .map_or(UnixMicros::now(), |q| q.deadline);
    let mut sent = Sent::default();
    let mut last_new = tokio::time::Instant::now();
    let reason = loop {
        if tx.is_closed() {
            debug!(measurement = id, "results follower gone");
            return Followed::Gone;
        }
        let worker = c.clone();
        let stored =
            crate::limits::readers::read_blocking(move || Ok(read_results(&worker, id))).await;
        let stored = match stored {
            Ok(Ok(stored)) => stored,
            Ok(Err(e)) => break format!("stopped: {e}"),
            Err(e) => break format!("stopped: {e}"),
        };
        let lines = sent.take_new(stored);
        if !lines.is_empty() {
            last_new = tokio::time::Instant::now();
        }
        for line in lines {
            if let Some(ended) = send(line).await {
                return ended;
            }
        }
        if all_answered(&record, &sent.answered) {
            break "every probe answered".to_owned();
        }
        if UnixMicros::now() >= deadline {
            break "deadline passed".to_owned();
        }
        if last_new.elapsed() >= IDLE {
            break format!("no result for {} s", IDLE.as_secs());
        }
        tokio::time::sleep(POLL).await;
    };
    send(sent.done_line(&record, &reason))
        .await
        .unwrap_or(Followed::Done)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fleet, probe, service};
    use super::*;

    /// A quick measurement started now on probe 1 (connected), followed by `follow` into a
    /// channel the test holds or drops.
    fn started(dir: &std::path::Path) -> (Arc<Campaigns>, CampaignRecord) {
        let c = Arc::new(service(dir, &fleet(), None));
        let (tx, rx) = mpsc::channel(8);
        c.connected(&probe(1, None, "").id, tx);
        std::mem::forget(rx);
        let request: super::super::quick::Request = serde_json::from_value(
            serde_json::json!({"kind": "ping", "target": "example.org", "probes": 1}),
        )
        .unwrap();
        let record = c
            .create_quick("alice", &request, UnixMicros::now())
            .unwrap();
        (c, record)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_follower_that_goes_stops_the_poller_and_one_that_stays_waits() {
        let dir = tempfile::tempdir().unwrap();
        let (c, record) = started(dir.path());
        // Nobody reads: the poller ends at once, long before the deadline (25 s).
        let (tx, rx) = mpsc::channel(16);
        drop(rx);
        tokio::time::timeout(
            Duration::from_secs(2),
            follow(c.clone(), record.clone(), tx, IDLE),
        )
        .await
        .expect("the poller stops when its client goes");
        // Someone reads and nothing has come: it keeps waiting, sending nothing.
        let (tx, mut rx) = mpsc::channel(16);
        let poller = tokio::spawn(follow(c, record, tx, IDLE));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!poller.is_finished());
        assert!(rx.try_recv().is_err());
        drop(rx);
        tokio::time::timeout(Duration::from_secs(2), poller)
            .await
            .expect("and stops once that client goes")
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn past_its_deadline_a_follow_sends_what_is_stored_and_ends() {
        let dir = tempfile::tempdir().unwrap();
        let (c, mut record) = started(dir.path());
        let probe_id = record.probes[0].probe.clone();
        let mut r = crate::testing::ping_v6(
            probe_id,
            1,
            UnixMicros::now(),
            Some(Duration::from_millis(1)),
            Default::default(),
        );
        r.result.task_id = record.tasks[0].task_id;
        c.store().insert_results(&[r]).unwrap();
        // A second probe that never answers, and a deadline already gone.
        record.probes.push(record.probes[0].clone());
        record.probes[1].probe = probe(2, None, "").id;
        if let Some(quick) = record.spec.quick.as_mut() {
            quick.deadline = UnixMicros(UnixMicros::now().0 - 1);
        }
        let (tx, mut rx) = mpsc::channel(16);
        tokio::time::timeout(Duration::from_secs(2), follow(c, record.clone(), tx, IDLE))
            .await
            .unwrap();
        let result: serde_json::Value = serde_json::from_slice(&rx.recv().await.unwrap()).unwrap();
        assert_eq!(result["task_id"], record.tasks[0].task_id.get());
        let done: serde_json::Value = serde_json::from_slice(&rx.recv().await.unwrap()).unwrap();
        assert_eq!(done["done"]["answered"], 1, "{done}");
        assert_eq!(done["done"]["expected"], 2, "{done}");
        assert_eq!(done["done"]["reason"], "deadline passed", "{done}");
        assert!(rx.recv().await.is_none());
    }
}
