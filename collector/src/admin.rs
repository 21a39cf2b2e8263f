//! The admin commands of `sixmap-collector` that work on the store directly: enrollment
//! tokens, API tokens, probe revocation, rollups (with the sled store the collector must be
//! stopped; with ClickHouse it may keep running).

use crate::auth;
use crate::config::{CollectorConfig, StoreSettings};
use crate::store::{ClickHouseStore, SledStore, Store};
use anyhow::{Context, bail};
use clap::Subcommand;
use sixmap_shared::{ProbeId, UnixMicros};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum RollupsCommand {
    /// Recompute every figure and daily rollup from the raw results and replace the stored
    /// ones (a sled store: the collector must be stopped).
    Rebuild {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (shown once; only its hash is stored). The token carries
    /// the fingerprint of the collector's CA, which it creates first if needed.
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// Who the token is for; enrollment caps count probes per owner.
        #[arg(long)]
        owner: String,
        /// Lifetime such as 30m, 12h or 7d (default 7d).
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// List tokens (never their secrets) as JSON lines.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke an unused token by its id (from `token list`).
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProbeCommand {
    /// Revoke a probe: refused at its next hello, with a message saying so.
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiTokenCommand {
    /// Create an API token and print it (shown once; only its hash is stored).
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// admin, campaigner or researcher.
        #[arg(long)]
        role: crate::store::Role,
        /// Who holds it; shown in the audit log.
        #[arg(long)]
        name: String,
    },
    /// List API tokens (never their secrets) as JSON lines.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke an API token by its id.
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        id: String,
    },
}

/// Which store an admin command works on: the collector's config file (its `[store]`,
/// `data_dir` and `pki_dir`), a sled data dir, or both (`--data-dir` overrides the config's).
/// With the sled store the collector must be stopped; with ClickHouse it may keep running.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// The collector's TOML config file.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            store,
            owner,
            expires_in,
        } => {
            let lifetime = match expires_in {
                Some(text) => auth::parse_duration(&text)?,
                None => auth::DEFAULT_TOKEN_LIFETIME,
            };
            let opened = open_admin(&store, true)?;
            let store = &*opened.store;
            let pki = crate::pki::Pki::load_or_create_in(&opened.pki_dir)?;
            let (token, record) = auth::create_enrollment_token(
                store,
                pki.fingerprint(),
                &owner,
                lifetime,
                "cli",
                UnixMicros::now(),
            )?;
            auth::audit(store, "cli", "token create", &record.id, "ok");
            eprintln!(
                "enrollment token {} for {owner:?}, single use, expires in {}: give it to the volunteer privately",
                record.id,
                humantime(lifetime)
            );
            // Alone on stdout, so scripts can take it.
            println!("{token}");
            Ok(())
        }
        TokenCommand::List { store } => {
            let opened = open_admin(&store, false)?;
            let store = &*opened.store;
            for (_, record) in store.enrollment_tokens()? {
                println!("{}", serde_json::to_string(&record.for_listing())?);
            }
            Ok(())
        }
        TokenCommand::Revoke { store, id } => {
            let opened = open_admin(&store, false)?;
            let store = &*opened.store;
            let record = auth::revoke_enrollment_token(store, &id, UnixMicros::now())?;
            auth::audit(store, "cli", "token revoke", &id, "ok");
            println!(
                "enrollment token {} (owner {:?}) revoked",
                record.id, record.owner
            );
            Ok(())
        }
    }
}

pub fn api_token(command: ApiTokenCommand) -> anyhow::Result<()> {
    match command {
        ApiTokenCommand::Create { store, role, name } => {
            let opened = open_admin(&store, true)?;
            let store = &*opened.store;
            let (token, record) = auth::create_api_token(store, role, &name, UnixMicros::now())?;
            auth::audit(store, "cli", "api-token create", &record.id, "ok");
            eprintln!(
                "API token {} for {name:?} with role {role}: send it as `Authorization: Bearer <token>`",
                record.id
            );
            println!("{token}");
            Ok(())
        }
        ApiTokenCommand::List { store } => {
            let opened = open_admin(&store, false)?;
            let store = &*opened.store;
            for (_, record) in store.api_tokens()? {
                println!("{}", serde_json::to_string(&record)?);
            }
            Ok(())
        }
        ApiTokenCommand::Revoke { store, id } => {
            let opened = open_admin(&store, false)?;
            let store = &*opened.store;
            let record = auth::revoke_api_token(store, &id, UnixMicros::now())?;
            auth::audit(store, "cli", "api-token revoke", &id, "ok");
            println!("API token {} ({:?}) revoked", record.id, record.name);
            Ok(())
        }
    }
}

fn humantime(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = match s {
        _ if s.is_multiple_of(86_400) => (s / 86_400, "day"),
        _ if s.is_multiple_of(3600) => (s / 3600, "hour"),
        _ if s.is_multiple_of(60) => (s / 60, "minute"),
        _ => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// The store an admin command works on, and the CA directory that goes with it.
#[derive(Debug)]
pub struct Opened {
    pub store: Arc<dyn Store>,
    pub pki_dir: PathBuf,
    pub data_dir: PathBuf,
}

/// Opens the store named by `--config` and/or `--data-dir`. A sled store is created only when
/// `create` (commands that write); it fails with advice if the collector is running on it.
pub fn open_admin(args: &StoreArgs, create: bool) -> anyhow::Result<Opened> {
    let mut config = match &args.config {
        Some(path) => CollectorConfig::load(path)?,
        None if args.data_dir.is_some() => CollectorConfig::default(),
        None => bail!("give --config (the collector's config file) or --data-dir"),
    };
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    let settings = config.validate(args.config.as_deref())?;
    let data_dir = &settings.data_dir;
    let store: Arc<dyn Store> = match &settings.store {
        StoreSettings::Sled { cache_mb } => {
            if create {
                crate::private_files::create_private_dir(data_dir)
                    .with_context(|| format!("creating {}", data_dir.display()))?;
            } else if !data_dir.join("conf").exists() {
                bail!("{} holds no sixmap store", data_dir.display());
            }
            let store = SledStore::open_with_cache(data_dir, *cache_mb).with_context(|| {
                format!(
                    "opening {} (if a collector is running on it, use its HTTP API with an admin token instead)",
                    data_dir.display()
                )
            })?;
            crate::private_files::restrict_store_files(data_dir)
                .with_context(|| format!("making {} private", data_dir.display()))?;
            Arc::new(store)
        }
        StoreSettings::ClickHouse(clickhouse) => Arc::new(
            ClickHouseStore::open(clickhouse)
                .with_context(|| format!("opening the ClickHouse store at {}", clickhouse.url))?,
        ),
    };
    Ok(Opened {
        store,
        pki_dir: settings.pki_dir,
        data_dir: settings.data_dir,
    })
}

/// `probe revoke`: the probe is refused at its next hello.
pub fn probe(command: ProbeCommand) -> anyhow::Result<()> {
    let ProbeCommand::Revoke { store, id } = command;
    let probe: ProbeId = id.parse().context("probe id")?;
    let opened = open_admin(&store, false)?;
    let store = &*opened.store;
    let record = auth::revoke_probe(store, &probe, UnixMicros::now())?;
    auth::audit(store, "cli", "probe revoke", &id, "ok");
    println!(
        "probe {} revoked: it is refused at its next hello",
        record.id
    );
    Ok(())
}

/// `rollups rebuild`: every figure and daily rollup recomputed from the raw results.
pub fn rollups(command: RollupsCommand) -> anyhow::Result<()> {
    let RollupsCommand::Rebuild { store } = command;
    let opened = open_admin(&store, false)?;
    let (prefixes, _) = crate::enrich::load(&opened.data_dir)?;
    let done =
        crate::figures::fold::rebuild_everything(&*opened.store, &prefixes, UnixMicros::now())?;
    println!("{done}");
    Ok(())
}
