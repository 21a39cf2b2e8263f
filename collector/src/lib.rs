//! sixmap collector: accepts probe sessions over gRPC, stores every result, serves the JSON
//! API and the dashboard.

pub mod admin;
pub mod alerts;
pub mod auth;
pub mod blame;
pub mod campaign;
pub mod client;
pub mod commit;
pub mod comparison;
pub mod config;
pub mod control;
pub mod coverage;
pub mod daily;
pub mod directory;
pub mod enrich;
pub mod enroll;
pub mod epochs;
pub mod export;
pub mod fatal;
pub mod figures;
pub mod health;
pub mod http;
pub mod http_auth;
pub mod i18n;
pub mod ingest;
pub mod limits;
pub mod map_svg;
pub mod map_view;
pub mod maps;
pub mod metrics;
pub mod openapi;
pub mod pki;
pub mod private_files;
pub mod public_cache;
#[cfg(test)]
mod publication_audit;
pub mod query;
pub mod rollup;
pub mod store;
pub mod tags;
#[doc(hidden)]
pub mod testing;

use crate::config::{Settings, StoreSettings};
use crate::control::ControlService;
use crate::store::{ClickHouseStore, SledStore, Store};
use sixmap_proto::v1::campaign_service_server::CampaignServiceServer;
use sixmap_proto::v1::probe_control_server::ProbeControlServer;
use sixmap_proto::v1::query_service_server::QueryServiceServer;
use sixmap_shared::prefixes::PrefixData;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;
use tracing::info;

use sixmap_shared::session::MAX_MESSAGE_BYTES;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("collector CA: {0}")]
    Pki(#[from] pki::PkiError),
    #[error("prefix data: {0}")]
    Prefixes(#[from] enrich::EnrichError),
    #[error("open-data signing key: {0}")]
    Sign(#[from] export::sign::SignError),
    #[error("imported comparison figures: {0}")]
    Comparison(#[from] comparison::ComparisonError),
    #[error(transparent)]
    Config(#[from] sixmap_shared::config::ConfigError),
    #[error("cannot listen on {addr} ({what}): {source}")]
    Listen {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A started collector: its bound addresses and the tasks serving them.
#[derive(Debug)]
pub struct Running {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub grpc: JoinHandle<Result<(), tonic::transport::Error>>,
    pub http: JoinHandle<std::io::Result<()>>,
    /// Reports a broken store; `serve` exits non-zero on it (see [`fatal`]).
    pub fatal: fatal::Fatal,
    /// The long-response budget and the readers' pool, for tests and the soak.
    pub shared: limits::Shared,
    /// The gRPC port's connection counts.
    pub grpc_gate: limits::grpc::GrpcGate,
}

/// Connections the kernel queues for `accept` (capped by `net.core.somaxconn`). The default
/// of 128 fills under a flood of connects, and the kernel then drops SYNs: legitimate
/// clients pay each drop with a 1 s retransmission (the soak's map visitor saw p99 ≈ 1 s).
const LISTEN_BACKLOG: u32 = 4096;

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    let failed = |source| StartError::Listen { what, addr, source };
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(failed)?;
    // As std's bind does: a restarted collector rebinds while old connections linger.
    socket.set_reuseaddr(true).map_err(failed)?;
    socket.bind(addr).map_err(failed)?;
    socket.listen(LISTEN_BACKLOG).map_err(failed)
}

/// Days of rollups recomputed at start, and how often today's and yesterday's are redone.
const ROLLUP_BACKFILL_DAYS: i64 = 30;
const ROLLUP_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Keeps the stored daily rollups current (see [`daily`]).
async fn refresh_rollups(
    store: Arc<dyn Store>,
    prefixes: Arc<PrefixData>,
    rule: rollup::MinSample,
) {
    let mut days = ROLLUP_BACKFILL_DAYS;
    loop {
        let now = sixmap_shared::UnixMicros::now();
        let worker = store.clone();
        let prefixes = prefixes.clone();
        match store::run_blocking(move || daily::refresh(&*worker, &prefixes, now, days, rule))
            .await
        {
            Ok(stored) => tracing::debug!(days, stored, "daily rollups refreshed"),
            Err(e) => tracing::warn!(error = %e, "daily rollups not refreshed"),
        }
        days = 2;
        tokio::time::sleep(ROLLUP_EVERY).await;
    }
}

/// Opens the configured store: sled in `data_dir`, or ClickHouse (schema created or migrated).
pub fn open_store(
    settings: &StoreSettings,
    data_dir: &std::path::Path,
) -> Result<Arc<dyn Store>, store::StoreError> {
    Ok(match settings {
        StoreSettings::Sled { cache_mb } => {
            let private = |e: std::io::Error| {
                store::StoreError::Backend(format!("data directory {}: {e}", data_dir.display()))
            };
            private_files::create_private_dir(data_dir).map_err(private)?;
            let store = SledStore::open_with_cache(data_dir, *cache_mb)?;
            private_files::restrict_store_files(data_dir).map_err(private)?;
            Arc::new(store)
        }
        StoreSettings::ClickHouse(config) => Arc::new(ClickHouseStore::open(config)?),
    })
}

/// Opens the store, binds both listeners and starts serving.
pub async fn start(settings: Settings) -> Result<Running, StartError> {
    let data_dir = settings.data_dir.clone();
    let store_settings = settings.store.clone();
    let store: Arc<dyn Store> =
        tokio::task::spawn_blocking(move || open_store(&store_settings, &data_dir))
            .await
            .map_err(|e| store::StoreError::Backend(e.to_string()))??;
    start_with_store(settings, store).await
}

/// [`start`] on a store opened by the caller (tests wrap one to inject failures).
pub async fn start_with_store(
    settings: Settings,
    store: Arc<dyn Store>,
) -> Result<Running, StartError> {
    let data_dir = settings.data_dir.clone();
    let (prefixes, reports) = tokio::task::spawn_blocking(move || enrich::load(&data_dir))
        .await
        .map_err(|e| store::StoreError::Backend(e.to_string()))??;
    for report in &reports {
        info!(file = %report.path.display(), kind = ?report.kind, records = report.counts.records, prefixes = report.counts.prefixes, "prefix data loaded");
    }
    if reports.is_empty() {
        info!(
            "no prefix data imported: results are stored without origin AS and country (see `sixmap-collector import-prefixes`)"
        );
    }
    let prefixes = Arc::new(prefixes);
    // Figures are built (if the store has none yet) before any probe can store a result: a
    // rebuild must not race ingest (`figures::fold`).
    let keeps_figures = store.keeps_figures();
    if keeps_figures {
        let (s, p) = (store.clone(), prefixes.clone());
        tokio::task::spawn_blocking(move || {
            figures::fold::ensure(&*s, &p, sixmap_shared::UnixMicros::now())
        })
        .await
        .map_err(|e| store::StoreError::Backend(e.to_string()))??;
    }
    let pki_dir = settings.pki_dir.clone();
    let pki = Arc::new(
        tokio::task::spawn_blocking(move || pki::Pki::load_or_create_in(&pki_dir))
            .await
            .map_err(|e| store::StoreError::Backend(e.to_string()))??,
    );
    // The open-data signing key lives with the CA (`export::sign`).
    let key_dir = settings.pki_dir.clone();
    let open_data_key = Arc::new(
        tokio::task::spawn_blocking(move || export::sign::OpenDataKey::load_or_create_in(&key_dir))
            .await
            .map_err(|e| store::StoreError::Backend(e.to_string()))??,
    );
    info!(key = open_data_key.key_id(), "open-data signing key loaded");
    let tls = pki.server_config(&settings.tls.public_names)?;
    let public_names: Vec<String> = settings
        .tls
        .public_names
        .iter()
        .map(ToString::to_string)
        .collect();
    info!(ca_fingerprint = %pki.fingerprint(), ?public_names, "collector CA loaded");
    let grpc_listener = bind("gRPC", settings.grpc_listen).await?;
    let http_listener = bind("HTTP", settings.http_listen).await?;
    let local = |l: &TcpListener, what, addr| {
        l.local_addr()
            .map_err(|source| StartError::Listen { what, addr, source })
    };
    let grpc_addr = local(&grpc_listener, "gRPC", settings.grpc_listen)?;
    let http_addr = local(&http_listener, "HTTP", settings.http_listen)?;

    let access = settings.access;
    if let Some(dumps) = &settings.dumps {
        config::check_dumps_dir(dumps)?;
    }
    let dumps = settings.dumps.clone();
    let publication = settings.publication;
    let alerts = settings.alerts.clone();
    let publisher = settings.publisher.clone();
    let languages = settings.i18n.clone();
    let coverage_users = settings.coverage_users.clone();
    let coverage_prefixes = prefixes.clone();
    // APNIC's per-economy figures, if imported (`import-apnic`): shown beside ours.
    // A damaged import hides the comparison, not the collector: it says so and serves on.
    let apnic = comparison::load(&settings.data_dir).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "the APNIC import is unreadable: the comparison is not shown (import it again)");
        None
    });
    let server_limits = settings.limits.clone();
    let campaigns = Arc::new(
        campaign::Campaigns::new(
            store.clone(),
            settings.lab_mode,
            settings.campaign_owner_hourly_limit,
        )
        .with_publication(publication)
        .with_publisher(publisher)
        .with_signer(open_data_key.clone()),
    );
    let fatal = fatal::Fatal::default();
    // Sessions hand the folder each stored batch's figure deltas (`figures::feed`).
    let feed = Arc::new(figures::feed::Feed::default());
    let shared = limits::Shared::new(&server_limits);
    let campaign_service = CampaignServiceServer::new(
        campaign::grpc::CampaignGrpc::new(campaigns.clone(), store.clone())
            .with_limits(&shared)
            .with_write_timeout(server_limits.stream_write_timeout),
    );
    let gate = limits::grpc::GrpcGate::new(&server_limits);
    let seen = gate.request_seen();
    let query_service = QueryServiceServer::new(
        query::grpc::QueryGrpc::new(store.clone(), access.raw_data_public)
            .with_limits(&shared, server_limits.stream_write_timeout),
    );
    let service = ProbeControlServer::new(
        ControlService::new(
            store.clone(),
            Arc::new(settings),
            prefixes.clone(),
            pki.clone(),
        )
        .with_campaigns(campaigns.clone())
        .with_fatal(fatal.clone(), server_limits.store_flush_timeout)
        .with_figures_feed(feed.clone()),
    )
    // One message-size limit, the probe's too: larger messages are refused by tonic with
    // OUT_OF_RANGE when received and RESOURCE_EXHAUSTED when sent, and the stream ends.
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let streams = u32::try_from(server_limits.grpc_streams_per_connection).unwrap_or(u32::MAX);
    let tcp_keepalive = server_limits.tcp_keepalive;
    let handshake_timeout = server_limits.grpc_handshake_timeout;
    let grpc = tokio::spawn(
        tonic::transport::Server::builder()
            .timeout(server_limits.grpc_request_timeout)
            .concurrency_limit_per_connection(server_limits.grpc_streams_per_connection)
            .max_concurrent_streams(Some(streams))
            .http2_keepalive_interval(Some(server_limits.grpc_keepalive_interval))
            .http2_keepalive_timeout(Some(server_limits.grpc_keepalive_timeout))
            // Headers of a gRPC call are small; 16 KiB bounds what a client can make us hold.
            .http2_max_header_list_size(Some(16 * 1024))
            // Every service marks its caller's connection as having made a call (the
            // first-call deadline of anonymous connections, `limits::grpc`).
            .add_service(InterceptedService::new(service, seen.clone()))
            .add_service(InterceptedService::new(campaign_service, seen.clone()))
            .add_service(InterceptedService::new(query_service, seen))
            // TLS 1.3 with client certificates (`pki`), within the handshake deadline; TCP
            // keepalive and TCP_NODELAY are set there too.
            .serve_with_incoming(pki::tls_incoming_gated(
                grpc_listener,
                tls,
                tcp_keepalive,
                handshake_timeout,
                gate.clone(),
            )),
    );
    if keeps_figures {
        // Folds new results into the figures and refreshes the rollups of changed days.
        tokio::spawn(figures::fold::run(
            store.clone(),
            prefixes,
            feed,
            publication,
        ));
    } else {
        tokio::spawn(refresh_rollups(store.clone(), prefixes, publication));
    }
    tokio::spawn(campaign::run_ticker(campaigns.clone()));
    if let Some(dumps) = dumps {
        tokio::spawn(export::dumps::run(
            store.clone(),
            dumps,
            open_data_key.clone(),
        ));
    }
    let alert_webhooks = alerts.destinations();
    let alert_rules = alerts.written.clone();
    alerts::spawn(store.clone(), alerts);
    let map_view = map_view::MapView::with_rule(publication);
    let comparison = comparison::router(store.clone(), map_view.clone(), apnic);
    tokio::spawn(map_view::run(map_view.clone(), store.clone()));
    let router = http_auth::protect(
        http::router(store.clone(), map_view)
            .merge(campaign::http::public_router(campaigns.clone()))
            .merge(directory::router(store.clone()))
            .merge(blame::http::router(store.clone(), publication))
            .merge(query::dns_public::router(store.clone(), publication))
            // Maps, the probe list, the probe directory and published reports: one
            // computation per moment for all callers.
            .layer(axum::middleware::from_fn_with_state(
                public_cache::PublicCache::default(),
                public_cache::serve,
            ))
            .merge(campaign::quick_http::router(campaigns.clone()))
            .merge(campaign::http::router(campaigns))
            .merge(metrics::router())
            .merge(query::router(store.clone()))
            .merge(export::http::router(store.clone()))
            .merge(export::sign::router(open_data_key))
            .merge(comparison)
            .merge(coverage::router(coverage::CoverageState::new(
                store.clone(),
                coverage_prefixes,
                coverage_users,
                publication,
            )))
            .merge(health::router(store.clone(), fatal.clone()))
            .merge(alerts::http::router(store.clone(), alert_webhooks.clone()))
            .merge(alerts::rules_api::router(
                store.clone(),
                alert_rules,
                alert_webhooks,
            )),
        store,
        pki,
        access,
    )
    // The languages of pages and reports (`i18n::Negotiated` reads them per request).
    .layer(axum::Extension(languages));
    // Outermost, so refusals by the limits and the access table are counted too.
    let app = limits::http_layers_with(router, &server_limits, &shared)
        .layer(axum::middleware::from_fn(metrics::track_http));
    let http = tokio::spawn(limits::serve_http(
        http_listener,
        app,
        server_limits.clone(),
    ));
    info!(%grpc_addr, %http_addr, "collector serving");
    Ok(Running {
        grpc_addr,
        http_addr,
        grpc,
        http,
        fatal,
        shared,
        grpc_gate: gate,
    })
}
