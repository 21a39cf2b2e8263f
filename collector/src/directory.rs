//! The opt-in public probe directory (issue #21): probes whose owners agreed to be listed,
//! with what a volunteer or researcher needs to pick them and nothing that locates a home.
//!
//! - `GET /api/v1/directory?page=N&per_page=M` (no token; behind the public cache): listed,
//!   unrevoked probes by id, `per_page` at most [`MAX_PER_PAGE`]. Each entry: id, origin
//!   country and network (ASN and name), tags, whether it is online, when it enrolled and was
//!   last seen, and what it measures (IPv6, IPv4, from its self-test). **Never** an address,
//!   a prefix, a hostname, a location or an owner: the ASN is the finest network shown, far
//!   coarser than a /48.
//! - `GET /directory`: the page over that API (plain HTML and JS, text translatable).
//! - `GET /api/v1/directory/mine` (any API token): the caller's own probes (those enrolled
//!   with an enrollment token whose owner is the API token's name), listed or not, with their
//!   hostname too — the owner's view.
//! - `POST /api/v1/directory/{id}` with `{"listed": true|false}` (any API token): the owner
//!   (or an admin) lists or unlists one of their probes. Another owner's probe and an unknown
//!   id are the same 404, so ids reveal nothing.
//!
//! Probes are off the directory unless their owner says otherwise (`directory_listed`).

use crate::http_auth::Caller;
use crate::store::{ProbeRecord, Role, Store, StoreError};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sixmap_shared::{ProbeId, UnixMicros};
use std::sync::Arc;
use tracing::info;

/// Most entries in one page.
pub const MAX_PER_PAGE: usize = 100;
/// Entries in a page that does not say.
pub const DEFAULT_PER_PAGE: usize = 50;
/// A probe seen this recently is online (heartbeats come every minute or so).
pub const ONLINE_WITHIN_US: i64 = 10 * 60 * 1_000_000;

const PAGE: &str = include_str!("directory.html");

/// Why a directory request failed.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("`{0}`: {1}")]
    BadParam(&'static str, String),
    /// Unknown, or another owner's: the same answer.
    #[error("no probe {0} of yours")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IntoResponse for DirectoryError {
    fn into_response(self) -> Response {
        let status = match &self {
            DirectoryError::BadParam(..) => StatusCode::BAD_REQUEST,
            DirectoryError::NotFound(_) => StatusCode::NOT_FOUND,
            DirectoryError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

/// One probe as the public directory shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub id: String,
    pub country: Option<String>,
    pub asn: Option<u32>,
    pub as_name: Option<String>,
    pub tags: Vec<String>,
    pub online: bool,
    pub enrolled_at: UnixMicros,
    pub last_seen: Option<UnixMicros>,
    /// Families it measures over, from its latest self-test: `IPv6`, `IPv4`.
    pub measures: Vec<&'static str>,
}

/// What the directory shows of `probe` at `now` (only fields that locate nothing finer than
/// its network).
pub fn entry(probe: &ProbeRecord, now: UnixMicros) -> Entry {
    let origin = probe.origin.as_ref();
    let mut measures = Vec::new();
    if let Some(test) = &probe.self_test {
        if test.default_route_v6 {
            measures.push("IPv6");
        }
        if test.default_route_v4 {
            measures.push("IPv4");
        }
    }
    Entry {
        id: probe.id.to_string(),
        country: origin.and_then(|o| o.country).map(|c| c.to_string()),
        asn: origin.and_then(|o| o.asn),
        as_name: origin.and_then(|o| o.as_name.clone()),
        tags: probe.tags.iter().map(|t| t.name.to_string()).collect(),
        online: probe
            .last_seen
            .is_some_and(|seen| now.0.saturating_sub(seen.0) < ONLINE_WITHIN_US),
        enrolled_at: probe.enrolled_at,
        last_seen: probe.last_seen,
        measures,
    }
}

/// A page of the directory.
#[derive(Debug, Serialize)]
pub struct Page {
    pub page: usize,
    pub per_page: usize,
    /// Listed probes in all.
    pub total: usize,
    pub probes: Vec<Entry>,
}

/// Page `page` (from 1) of the listed, unrevoked probes among `probes`, by id.
pub fn page(
    probes: &[ProbeRecord],
    now: UnixMicros,
    page: usize,
    per_page: usize,
) -> Result<Page, DirectoryError> {
    if page == 0 {
        return Err(DirectoryError::BadParam("page", "starts at 1".into()));
    }
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(DirectoryError::BadParam(
            "per_page",
            format!("must be 1..={MAX_PER_PAGE}"),
        ));
    }
    let mut listed: Vec<&ProbeRecord> = probes
        .iter()
        .filter(|p| p.directory_listed && p.revoked_at.is_none())
        .collect();
    listed.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    let total = listed.len();
    let probes = listed
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .map(|p| entry(p, now))
        .collect();
    Ok(Page {
        page,
        per_page,
        total,
        probes,
    })
}

/// Whether `caller` owns `probe` (its enrollment token's owner is the API token's name).
fn owns(name: &str, probe: &ProbeRecord) -> bool {
    probe.owner.as_deref() == Some(name)
}

/// The owner's view: `name`'s probes, listed or not, with their hostname.
pub fn mine(
    store: &dyn Store,
    name: &str,
    now: UnixMicros,
) -> Result<Vec<serde_json::Value>, DirectoryError> {
    let mut probes: Vec<ProbeRecord> = store
        .probes()?
        .into_iter()
        .filter(|p| owns(name, p))
        .collect();
    probes.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    Ok(probes
        .iter()
        .map(|p| {
            let mut value = serde_json::to_value(entry(p, now)).unwrap_or_default();
            value["hostname"] = serde_json::json!(p.hostname);
            value["listed"] = serde_json::json!(p.directory_listed);
            value["revoked"] = serde_json::json!(p.revoked_at.is_some());
            value
        })
        .collect())
}

/// Lists (or unlists) probe `id` for its owner `name` (or an admin).
pub fn set_listed(
    store: &dyn Store,
    name: &str,
    admin: bool,
    id: &str,
    listed: bool,
) -> Result<ProbeRecord, DirectoryError> {
    let shown: String = id.chars().take(40).collect();
    let not_found = || DirectoryError::NotFound(format!("{shown:?}"));
    let probe_id: ProbeId = id.parse().map_err(|_| not_found())?;
    let _writing = crate::store::probe_record_lock(&probe_id);
    let mut record = store.probe(&probe_id)?.ok_or_else(not_found)?;
    // A revoked probe is in no directory, and its record is the operator's now.
    if !(admin || owns(name, &record)) || record.revoked_at.is_some() {
        return Err(not_found());
    }
    if record.directory_listed != listed {
        record.directory_listed = listed;
        store.update_probe(&record)?;
        store.flush()?;
        info!(probe = %record.id, listed, by = name, "probe directory listing changed");
    }
    Ok(record)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageParams {
    page: Option<usize>,
    per_page: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListedBody {
    listed: bool,
}

pub fn router(store: Arc<dyn Store>) -> Router {
    let listing = Listing {
        store,
        snapshot: Arc::new(std::sync::Mutex::new(None)),
    };
    Router::new()
        .route("/directory", get(page_html))
        .route("/api/v1/directory", get(list))
        .route("/api/v1/directory/mine", get(own))
        .route("/api/v1/directory/{id}", post(set))
        .with_state(listing)
}

/// How long the public listing's read of every probe serves: the public cache keys on the URI,
/// so pages asked in many spellings (`page=01`, parameters reordered) each miss it; they share
/// this one read instead of each reading every probe.
const SNAPSHOT_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(2);

/// The public listing's state: the store and its last read of every probe.
#[derive(Clone)]
struct Listing {
    store: Arc<dyn Store>,
    snapshot: Arc<std::sync::Mutex<Option<Snapshot>>>,
}

/// Every probe record as read at an instant.
type Snapshot = (std::time::Instant, Arc<Vec<ProbeRecord>>);

impl Listing {
    /// Drops the snapshot: the next listing reads the store.
    fn forget(&self) {
        *self
            .snapshot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// Every probe record, read at most once per [`SNAPSHOT_FRESH_FOR`]; blocking.
    fn probes(&self) -> Result<Arc<Vec<ProbeRecord>>, DirectoryError> {
        let mut snapshot = self
            .snapshot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, probes)) = snapshot.as_ref()
            && at.elapsed() < SNAPSHOT_FRESH_FOR
        {
            return Ok(probes.clone());
        }
        let probes = Arc::new(self.store.probes()?);
        *snapshot = Some((std::time::Instant::now(), probes.clone()));
        Ok(probes)
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, DirectoryError> + Send + 'static,
) -> Result<T, DirectoryError> {
    crate::limits::readers::read_blocking(move || Ok(work())).await?
}

/// Scripts, data and styles from this collector only, as the map pages (`http::pages`).
const PAGE_CSP: &str = "default-src 'none'; script-src 'self' 'unsafe-inline'; \
style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
form-action 'none'";

async fn page_html() -> Response {
    ([(header::CONTENT_SECURITY_POLICY, PAGE_CSP)], Html(PAGE)).into_response()
}

async fn list(
    State(listing): State<Listing>,
    params: Result<Query<PageParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Page>, DirectoryError> {
    let Query(params) = params.map_err(|e| DirectoryError::BadParam("query", e.body_text()))?;
    let (n, per_page) = (
        params.page.unwrap_or(1),
        params.per_page.unwrap_or(DEFAULT_PER_PAGE),
    );
    Ok(Json(
        blocking(move || page(&listing.probes()?, UnixMicros::now(), n, per_page)).await?,
    ))
}

async fn own(
    State(listing): State<Listing>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, DirectoryError> {
    let probes = blocking(move || mine(&*listing.store, &caller.name, UnixMicros::now())).await?;
    Ok(Json(serde_json::json!({ "probes": probes })))
}

async fn set(
    State(listing): State<Listing>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<ListedBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Entry>, DirectoryError> {
    let Json(body) = body.map_err(|e| DirectoryError::BadParam("body", e.body_text()))?;
    let admin = caller.role == Role::Admin;
    let record = blocking(move || {
        let changed = set_listed(&*listing.store, &caller.name, admin, &id, body.listed);
        // The owner sees the change in the public listing at once.
        listing.forget();
        changed
    })
    .await?;
    Ok(Json(entry(&record, UnixMicros::now())))
}

/// `sixmap-collector directory …`: the directory from the command line, over a running
/// collector's HTTP API.
#[derive(Debug, clap::Subcommand)]
pub enum DirectoryCommand {
    /// The public directory: listed probes with country, network, tags and status.
    List {
        #[command(flatten)]
        remote: Remote,
        /// Page to show, from 1.
        #[arg(long, default_value_t = 1)]
        page: usize,
        /// Probes per page (at most 100).
        #[arg(long, default_value_t = DEFAULT_PER_PAGE)]
        per_page: usize,
        /// Print the collector's JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Your probes (enrolled with tokens made for your name) and whether each is listed.
    Mine {
        #[command(flatten)]
        remote: Remote,
        /// Print the collector's JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// List one of your probes in the public directory.
    OptIn {
        #[command(flatten)]
        remote: Remote,
        /// The probe's id (16 hex digits), as `directory mine` shows it.
        id: String,
    },
    /// Take one of your probes off the public directory.
    OptOut {
        #[command(flatten)]
        remote: Remote,
        /// The probe's id (16 hex digits), as `directory mine` shows it.
        id: String,
    },
}

/// Which collector, and as whom.
#[derive(Debug, clap::Args)]
pub struct Remote {
    /// The collector's HTTP API. Default: $SIXMAP_COLLECTOR, else http://[::1]:7480.
    #[arg(long = "url", alias = "collector")]
    collector: Option<String>,
    /// API token (`sxa_…`; not needed for `list`). Default: $SIXMAP_API_TOKEN.
    #[arg(long)]
    token: Option<String>,
}

impl Remote {
    fn client(&self) -> anyhow::Result<crate::client::Client> {
        let env = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        let url = self
            .collector
            .clone()
            .or_else(|| env(crate::client::URL_ENV))
            .unwrap_or_else(|| "http://[::1]:7480".to_owned());
        let token = self.token.clone().or_else(|| env(crate::client::TOKEN_ENV));
        Ok(crate::client::Client::new(&url)?.with_token(token))
    }
}

/// Table lines of directory entries (public fields, plus `listed` when `mine`).
fn table(probes: &[serde_json::Value], mine: bool) -> String {
    let mut out = format!(
        "{:<16}  {:<2}  {:<28}  {:<7}  {:<9}  {}{}\n",
        "PROBE",
        "CC",
        "NETWORK",
        "STATUS",
        "MEASURES",
        "TAGS",
        if mine { "  LISTED  HOSTNAME" } else { "" }
    );
    let words = |v: &serde_json::Value| -> String {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    for p in probes {
        let network = match p["asn"].as_u64() {
            Some(asn) => format!("AS{asn} {}", p["as_name"].as_str().unwrap_or("")),
            None => "-".to_owned(),
        };
        let network: String = network.trim().chars().take(28).collect();
        out.push_str(&format!(
            "{:<16}  {:<2}  {network:<28}  {:<7}  {:<9}  {}",
            p["id"].as_str().unwrap_or("?"),
            p["country"].as_str().unwrap_or("-"),
            if p["online"].as_bool() == Some(true) {
                "online"
            } else {
                "offline"
            },
            words(&p["measures"]),
            words(&p["tags"]),
        ));
        if mine {
            out.push_str(&format!(
                "  {:<6}  {}",
                if p["listed"].as_bool() == Some(true) {
                    "yes"
                } else {
                    "no"
                },
                p["hostname"].as_str().unwrap_or("")
            ));
        }
        out.push('\n');
    }
    out
}

/// Runs one `directory` subcommand.
pub fn run(command: DirectoryCommand) -> anyhow::Result<()> {
    match command {
        DirectoryCommand::List {
            remote,
            page,
            per_page,
            json,
        } => {
            let body = remote
                .client()?
                .get(&format!(
                    "/api/v1/directory?page={page}&per_page={per_page}"
                ))?
                .into_ok("directory list")?;
            let value: serde_json::Value = serde_json::from_str(&body)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                let probes = value["probes"].as_array().cloned().unwrap_or_default();
                print!("{}", table(&probes, false));
                eprintln!(
                    "{} probes listed; page {page} of {}",
                    value["total"],
                    value["total"]
                        .as_u64()
                        .unwrap_or(0)
                        .div_ceil(per_page.max(1) as u64)
                        .max(1)
                );
            }
            Ok(())
        }
        DirectoryCommand::Mine { remote, json } => {
            let body = remote
                .client()?
                .get("/api/v1/directory/mine")?
                .into_ok("directory mine")?;
            let value: serde_json::Value = serde_json::from_str(&body)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                let probes = value["probes"].as_array().cloned().unwrap_or_default();
                print!("{}", table(&probes, true));
            }
            Ok(())
        }
        DirectoryCommand::OptIn { remote, id } => set_remote(&remote, &id, true),
        DirectoryCommand::OptOut { remote, id } => set_remote(&remote, &id, false),
    }
}

/// Lists or unlists probe `id` on the collector.
fn set_remote(remote: &Remote, id: &str, listed: bool) -> anyhow::Result<()> {
    let client = remote.client()?;
    let segment: String = id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(64)
        .collect();
    let body = serde_json::json!({ "listed": listed }).to_string();
    client
        .post(
            &format!("/api/v1/directory/{segment}"),
            "application/json",
            &body,
        )?
        .into_ok("directory")?;
    eprintln!(
        "probe {segment} {} the public directory ({}/directory)",
        if listed { "is listed in" } else { "is off" },
        client.url().trim_end_matches('/')
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;

    const NOW: UnixMicros = UnixMicros(1_790_000_000_000_000);

    /// A probe of `owner` with everything that must never be public filled in.
    fn probe(n: u8, owner: &str, listed: bool) -> ProbeRecord {
        let mut p: ProbeRecord = serde_json::from_value(serde_json::json!({
            "id": format!("{n:016x}"), "hostname": "kitchen-pi.home.example",
            "enrolled_at": NOW.0 - 86_400_000_000, "last_seen": NOW.0 - 60_000_000,
            "software_version": "0.1.0", "boot_epoch": 3,
            "local_addresses": ["2001:db8:1234:5678::42", "192.0.2.42"],
            "location": {"latitude_e1": 488, "longitude_e1": 23},
            "origin": {"asn": 64500, "as_name": "Example Net", "country": "FR"},
            "owner": owner,
            "enrolled_from": "2001:db8:1234:5678::42",
            "enrolled_prefix": ["2001:db8:1234::", 48],
            "self_test": {
                "tested_at": NOW.0, "default_route_v6": true, "default_route_v4": false,
                "v4_addresses": ["192.0.2.42"], "v6_route_interface": "eth0",
                "v6_route_interface_kind": "ethernet", "v6_route_mtu": 1500,
                "aaaa_name": "example.org", "aaaa_resolved": true, "nat64_prefix": null,
                "clat": false
            },
            "tags": [{"name": "v6-works", "since": NOW.0}],
        }))
        .unwrap();
        p.directory_listed = listed;
        p
    }

    #[test]
    fn the_public_page_shows_listed_probes_only_and_no_address() {
        let probes = vec![
            probe(3, "alice", true),
            probe(1, "alice", true),
            probe(2, "bob", false),
            {
                let mut revoked = probe(4, "bob", true);
                revoked.revoked_at = Some(NOW);
                revoked
            },
        ];
        let shown = page(&probes, NOW, 1, 10).unwrap();
        assert_eq!(shown.total, 2);
        let ids: Vec<&str> = shown.probes.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["0000000000000001", "0000000000000003"]);
        let e = &shown.probes[0];
        assert_eq!(
            (e.country.as_deref(), e.asn, e.online),
            (Some("FR"), Some(64500), true)
        );
        assert_eq!(e.tags, ["v6-works"]);
        assert_eq!(e.measures, ["IPv6"]);
        // Nothing finer than the network: no address, prefix, hostname, place or owner.
        let json = serde_json::to_string(&shown).unwrap();
        for secret in [
            "2001:db8", "192.0.2", "kitchen", "488", "latitude", "alice", "eth0",
        ] {
            assert!(!json.contains(secret), "{secret} in {json}");
        }
        // Offline after ten minutes without a heartbeat.
        let later = UnixMicros(NOW.0 + ONLINE_WITHIN_US);
        assert!(!page(&probes, later, 1, 10).unwrap().probes[0].online);
    }

    #[test]
    fn pages_are_bounded() {
        let probes: Vec<_> = (1..=5).map(|n| probe(n, "alice", true)).collect();
        let second = page(&probes, NOW, 2, 2).unwrap();
        assert_eq!(second.probes.len(), 2);
        assert_eq!(second.probes[0].id, "0000000000000003");
        assert_eq!(page(&probes, NOW, 3, 2).unwrap().probes.len(), 1);
        assert!(
            page(&probes, NOW, usize::MAX, 100)
                .unwrap()
                .probes
                .is_empty()
        );
        for (n, per_page) in [(1, MAX_PER_PAGE + 1), (1, usize::MAX), (1, 0), (0, 10)] {
            let e = page(&probes, NOW, n, per_page).unwrap_err();
            assert!(matches!(e, DirectoryError::BadParam(..)), "{e}");
        }
    }

    #[test]
    fn owners_list_and_unlist_only_their_own_probes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        for p in [probe(1, "alice", false), probe(2, "bob", false)] {
            store.create_probe(&p).unwrap();
        }
        let listed = |store: &SledStore| page(&store.probes().unwrap(), NOW, 1, 10).unwrap().total;
        // Off by default.
        assert_eq!(listed(&store), 0);
        set_listed(&store, "alice", false, "0000000000000001", true).unwrap();
        assert_eq!(listed(&store), 1);
        // Bob's probe, an unknown id and garbage: the same "not found" for alice.
        for id in [
            "0000000000000002",
            "00000000000000ff",
            "../../etc",
            &"x".repeat(10_000),
        ] {
            let e = set_listed(&store, "alice", false, id, true).unwrap_err();
            assert!(matches!(e, DirectoryError::NotFound(_)), "{id}: {e}");
            assert!(e.to_string().len() < 80, "the id is cut in messages: {e}");
        }
        assert_eq!(listed(&store), 1);
        // An admin may; the owner's view shows theirs only, listed or not, with hostnames.
        set_listed(&store, "ops", true, "0000000000000002", true).unwrap();
        assert_eq!(listed(&store), 2);
        let alice = mine(&store, "alice", NOW).unwrap();
        assert_eq!(alice.len(), 1);
        assert_eq!(alice[0]["id"], "0000000000000001");
        assert_eq!(alice[0]["listed"], true);
        assert_eq!(alice[0]["hostname"], "kitchen-pi.home.example");
        assert!(mine(&store, "carol", NOW).unwrap().is_empty());
        // Unlisted: gone from the public page at once.
        set_listed(&store, "alice", false, "0000000000000001", false).unwrap();
        let left = page(&store.probes().unwrap(), NOW, 1, 10).unwrap();
        assert_eq!(left.total, 1);
        assert_eq!(left.probes[0].id, "0000000000000002");
    }

    #[test]
    fn the_access_table_opens_the_list_and_page_and_keeps_the_rest_to_tokens() {
        use crate::http_auth::{Access, Need, required};
        use axum::http::Method;
        let closed = Access {
            raw_data_public: false,
            maps_public: false,
            metrics_public: false,
        };
        assert_eq!(
            required(&Method::GET, "/api/v1/directory", closed),
            Need::Public
        );
        assert_eq!(required(&Method::GET, "/directory", closed), Need::Public);
        assert_eq!(
            required(&Method::GET, "/api/v1/directory/mine", closed),
            Need::AnyToken
        );
        assert_eq!(
            required(&Method::POST, "/api/v1/directory/0000000000000001", closed),
            Need::AnyToken
        );
        assert_eq!(
            required(&Method::POST, "/api/v1/directory", closed),
            Need::AnyToken
        );
    }
}
