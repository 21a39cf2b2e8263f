//! The admin commands of `sixmap-collector`: enrollment tokens, API tokens, probes, results,
//! rollups. Token, probe and results commands act on a running collector over its HTTP API
//! (`--url`, or `$SIXMAP_COLLECTOR` when no store is named; with an API token), or on the store
//! directly (`--config` / `--data-dir`; with the sled store the collector must be stopped,
//! with ClickHouse it may keep running). Both ways print the same: a table for people, the
//! API's document with `--json`. `table` renders the tables.

pub(crate) mod table;

use crate::auth::{self, Page, PageRequest, ProbeListing};
use crate::client::Client;
use crate::config::{CollectorConfig, StoreSettings};
use crate::store::{
    ApiTokenRecord, ClickHouseStore, EnrollmentTokenRecord, Role, SledStore, Store,
};
use anyhow::{Context, bail};
use clap::Subcommand;
use serde::de::DeserializeOwned;
use sixmap_shared::{ProbeId, UnixMicros};
use std::path::PathBuf;
use std::sync::Arc;
use table::{Table, utc_minute};

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
    ///
    /// Example: sixmap-collector token create --url http://[::1]:7480 --owner uni-a --expires-in 30d
    Create {
        #[command(flatten)]
        target: AdminArgs,
        /// Who the token is for; enrollment caps count probes per owner.
        #[arg(long)]
        owner: String,
        /// Lifetime such as 30m, 12h or 7d (default 7d, at most 366d).
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// List tokens (never their secrets): owner, expiry, and whether used or revoked.
    List {
        #[command(flatten)]
        target: AdminArgs,
        /// Print the API's JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id (from `token list`): no probe can enroll with it.
    Revoke {
        #[command(flatten)]
        target: AdminArgs,
        /// The token's id, as `token list` shows it.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProbeCommand {
    /// List enrolled probes: owner, enrollment, last contact, revocation.
    List {
        #[command(flatten)]
        target: AdminArgs,
        /// Print the API's JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a probe: refused at its next hello, with a message saying so.
    Revoke {
        #[command(flatten)]
        target: AdminArgs,
        /// The probe's id (16 hex digits), as `probe list` shows it.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiTokenCommand {
    /// Create an API token and print it (shown once; only its hash is stored).
    ///
    /// Example: sixmap-collector api-token create --url http://[::1]:7480 --role researcher --name alice
    Create {
        #[command(flatten)]
        target: AdminArgs,
        /// admin, campaigner or researcher.
        #[arg(long)]
        role: Role,
        /// Who holds it; shown in the audit log.
        #[arg(long)]
        name: String,
    },
    /// List API tokens (never their secrets).
    List {
        #[command(flatten)]
        target: AdminArgs,
        /// Print the API's JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API token by its id: refused from its next request on.
    Revoke {
        #[command(flatten)]
        target: AdminArgs,
        /// The API token's id, as `api-token list` shows it.
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
    /// The collector's data directory (a sled store).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Where a token or probe command acts: a running collector (`--url`, or `$SIXMAP_COLLECTOR`
/// when neither `--config` nor `--data-dir` is given), or the store.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// A running collector's HTTP API (http://HOST:PORT): act through it, with an admin API
    /// token, instead of opening the store. Default: $SIXMAP_COLLECTOR, unless --config or
    /// --data-dir is given.
    #[arg(long, alias = "collector", conflicts_with_all = ["config", "data_dir"])]
    url: Option<String>,
    /// API token (`sxa_…`) for the collector's HTTP API: an admin's for tokens and probes, a
    /// researcher's for results. Default: $SIXMAP_API_TOKEN.
    #[arg(long)]
    token: Option<String>,
}

/// An admin command's target, resolved from flags and then the environment (flags win).
enum Target<'a> {
    Remote(Client),
    Store(&'a StoreArgs),
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The target of a token or probe command: a running collector needs an admin token.
fn target(args: &AdminArgs) -> anyhow::Result<Target<'_>> {
    let target = target_of(args)?;
    if let Target::Remote(client) = &target
        && !client.has_token()
    {
        bail!(
            "collector at {}: give an admin API token (--token or $SIXMAP_API_TOKEN)",
            client.url()
        );
    }
    Ok(target)
}

/// Where `args` point; a running collector gets the token the flags or environment give,
/// if any (raw data may be public).
fn target_of(args: &AdminArgs) -> anyhow::Result<Target<'_>> {
    let store_named = args.store.config.is_some() || args.store.data_dir.is_some();
    let url = args.url.clone().or_else(|| {
        (!store_named)
            .then(|| env(crate::client::URL_ENV))
            .flatten()
    });
    let Some(url) = url else {
        if args.token.is_some() {
            bail!("--token is for a running collector: give --url (or $SIXMAP_COLLECTOR) too");
        }
        return Ok(Target::Store(&args.store));
    };
    let token = args.token.clone().or_else(|| env(crate::client::TOKEN_ENV));
    Ok(Target::Remote(Client::new(&url)?.with_token(token)))
}

/// Percent-encodes an id for a URL path, so whatever is typed stays one path segment.
fn segment(id: &str) -> String {
    crate::export::remote::encode(id)
}

fn post_json(
    client: &Client,
    what: &str,
    path: &str,
    body: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let text = client
        .post(path, "application/json", &body.to_string())?
        .into_ok(what)?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "collector at {}: {what}: the answer is not JSON",
            client.url()
        )
    })
}

/// Reads `value[field]` of a collector's answer as `T`, naming the collector if it cannot.
fn field<T: DeserializeOwned>(
    client: &Client,
    value: &serde_json::Value,
    field: &str,
) -> anyhow::Result<T> {
    T::deserialize(&value[field]).with_context(|| {
        format!(
            "collector at {}: unexpected `{field}` in its answer",
            client.url()
        )
    })
}

/// Every page of a listing from a running collector (each answer is bounded; the CLI follows
/// `next` to the end).
fn fetch_all<T: DeserializeOwned>(
    client: &Client,
    path: &str,
    name: &str,
) -> anyhow::Result<Vec<T>> {
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let query = match &after {
            Some(id) => format!("?limit={}&after={}", auth::MAX_LIST_LIMIT, segment(id)),
            None => format!("?limit={}", auth::MAX_LIST_LIMIT),
        };
        let text = client.get(&format!("{path}{query}"))?.into_ok("list")?;
        let page: serde_json::Value = serde_json::from_str(&text).with_context(|| {
            format!(
                "collector at {}: list: the answer is not JSON",
                client.url()
            )
        })?;
        let mut batch: Vec<T> = field(client, &page, name)?;
        let next: Option<String> = field(client, &page, "next")?;
        if batch.is_empty() && next.is_some() {
            bail!(
                "collector at {}: list: an empty page that says more follow",
                client.url()
            );
        }
        items.append(&mut batch);
        match next {
            Some(next) if Some(&next) != after.as_ref() => after = Some(next),
            Some(_) => bail!("collector at {}: list: the same page twice", client.url()),
            None => return Ok(items),
        }
    }
}

/// Every page of a listing from the store.
fn list_all<T>(
    store: &dyn Store,
    list: fn(&dyn Store, &PageRequest) -> Result<Page<T>, auth::AuthError>,
) -> anyhow::Result<Vec<T>> {
    let mut items = Vec::new();
    let mut request = PageRequest {
        after: None,
        limit: Some(auth::MAX_LIST_LIMIT),
    };
    loop {
        let mut page = list(store, &request)?;
        items.append(&mut page.items);
        match page.next {
            Some(next) => request.after = Some(next),
            None => return Ok(items),
        }
    }
}

/// Prints a listing: the API's document (`{name: [...], "next": null}`) or `table`.
fn print_list<T: serde::Serialize>(
    name: &str,
    items: &[T],
    json: bool,
    table: impl FnOnce(&[T]) -> Table,
) -> anyhow::Result<()> {
    if json {
        let document = serde_json::json!({ name: items, "next": null });
        println!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        print!("{}", table(items).render());
    }
    Ok(())
}

fn enrollment_token_table(tokens: &[EnrollmentTokenRecord], now: UnixMicros) -> Table {
    let mut table = Table::new(&["ID", "OWNER", "STATE", "CREATED", "EXPIRES", "CREATED BY"]);
    for t in tokens {
        let state = match (&t.revoked_at, &t.used_by, t.expires_at) {
            (Some(_), _, _) => "revoked".to_owned(),
            (None, Some(probe), _) => format!("used by {probe}"),
            (None, None, Some(expires)) if expires <= now => "expired".to_owned(),
            (None, None, _) => "unused".to_owned(),
        };
        table.row(vec![
            t.id.clone(),
            t.owner.clone(),
            state,
            utc_minute(Some(t.created_at)),
            utc_minute(t.expires_at),
            t.created_by.clone(),
        ]);
    }
    table
}

fn api_token_table(tokens: &[ApiTokenRecord]) -> Table {
    let mut table = Table::new(&["ID", "NAME", "ROLE", "CREATED", "REVOKED"]);
    for t in tokens {
        table.row(vec![
            t.id.clone(),
            t.name.clone(),
            t.role.to_string(),
            utc_minute(Some(t.created_at)),
            utc_minute(t.revoked_at),
        ]);
    }
    table
}

fn probe_table(probes: &[ProbeListing]) -> Table {
    let mut table = Table::new(&[
        "ID",
        "HOSTNAME",
        "OWNER",
        "ENROLLED",
        "LAST SEEN",
        "VERSION",
        "REVOKED",
    ]);
    for p in probes {
        table.row(vec![
            p.id.to_string(),
            p.hostname.clone(),
            p.owner.clone().unwrap_or_else(|| "-".into()),
            utc_minute(Some(p.enrolled_at)),
            utc_minute(p.last_seen),
            p.software_version.clone().unwrap_or_else(|| "-".into()),
            utc_minute(p.revoked_at),
        ]);
    }
    table
}

pub fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            target: args,
            owner,
            expires_in,
        } => {
            let lifetime = match &expires_in {
                Some(text) => auth::parse_duration(text)?,
                None => auth::DEFAULT_TOKEN_LIFETIME,
            };
            let (token, record): (String, EnrollmentTokenRecord) = match target(&args)? {
                Target::Remote(client) => {
                    let body = serde_json::json!({ "owner": owner, "expires_in": expires_in });
                    let made =
                        post_json(&client, "token create", "/api/v1/enrollment-tokens", &body)?;
                    (
                        field(&client, &made, "token")?,
                        field(&client, &made, "record")?,
                    )
                }
                Target::Store(store) => {
                    let opened = open_admin(store, true)?;
                    let store = &*opened.store;
                    let pki = crate::pki::Pki::load_or_create_in(&opened.pki_dir)?;
                    let made = auth::create_enrollment_token(
                        store,
                        pki.fingerprint(),
                        &owner,
                        lifetime,
                        "cli",
                        UnixMicros::now(),
                    )?;
                    auth::audit(store, "cli", "token create", &made.1.id, "ok");
                    made
                }
            };
            eprintln!(
                "enrollment token {} for {owner:?}, single use, expires in {}: give it to the volunteer privately",
                record.id,
                humantime(lifetime)
            );
            // Alone on stdout, so scripts can take it.
            println!("{token}");
            Ok(())
        }
        TokenCommand::List { target: args, json } => {
            let tokens: Vec<EnrollmentTokenRecord> = match target(&args)? {
                Target::Remote(client) => {
                    fetch_all(&client, "/api/v1/enrollment-tokens", "tokens")?
                }
                Target::Store(store) => list_all(
                    &*open_admin(store, false)?.store,
                    auth::list_enrollment_tokens,
                )?,
            };
            print_list("tokens", &tokens, json, |t| {
                enrollment_token_table(t, UnixMicros::now())
            })
        }
        TokenCommand::Revoke { target: args, id } => {
            let record: EnrollmentTokenRecord = match target(&args)? {
                Target::Remote(client) => {
                    let path = format!("/api/v1/enrollment-tokens/{}/revoke", segment(&id));
                    let answer = post_json(&client, "token revoke", &path, &serde_json::json!({}))?;
                    field(&client, &answer, "record")?
                }
                Target::Store(store) => {
                    let opened = open_admin(store, false)?;
                    let store = &*opened.store;
                    let record = auth::revoke_enrollment_token(store, &id, UnixMicros::now())?;
                    auth::audit(store, "cli", "token revoke", &id, "ok");
                    record
                }
            };
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
        ApiTokenCommand::Create {
            target: args,
            role,
            name,
        } => {
            let (token, record): (String, ApiTokenRecord) = match target(&args)? {
                Target::Remote(client) => {
                    let body = serde_json::json!({ "role": role, "name": name });
                    let made = post_json(&client, "api-token create", "/api/v1/api-tokens", &body)?;
                    (
                        field(&client, &made, "token")?,
                        field(&client, &made, "record")?,
                    )
                }
                Target::Store(store) => {
                    let opened = open_admin(store, true)?;
                    let store = &*opened.store;
                    let made = auth::create_api_token(store, role, &name, UnixMicros::now())?;
                    auth::audit(store, "cli", "api-token create", &made.1.id, "ok");
                    made
                }
            };
            eprintln!(
                "API token {} for {name:?} with role {role}: send it as `Authorization: Bearer <token>`",
                record.id
            );
            println!("{token}");
            Ok(())
        }
        ApiTokenCommand::List { target: args, json } => {
            let tokens: Vec<ApiTokenRecord> = match target(&args)? {
                Target::Remote(client) => fetch_all(&client, "/api/v1/api-tokens", "api_tokens")?,
                Target::Store(store) => {
                    list_all(&*open_admin(store, false)?.store, auth::list_api_tokens)?
                }
            };
            print_list("api_tokens", &tokens, json, api_token_table)
        }
        ApiTokenCommand::Revoke { target: args, id } => {
            let record: ApiTokenRecord = match target(&args)? {
                Target::Remote(client) => {
                    let path = format!("/api/v1/api-tokens/{}/revoke", segment(&id));
                    let answer =
                        post_json(&client, "api-token revoke", &path, &serde_json::json!({}))?;
                    field(&client, &answer, "record")?
                }
                Target::Store(store) => {
                    let opened = open_admin(store, false)?;
                    let store = &*opened.store;
                    let record = auth::revoke_api_token(store, &id, UnixMicros::now())?;
                    auth::audit(store, "cli", "api-token revoke", &id, "ok");
                    record
                }
            };
            println!("API token {} ({:?}) revoked", record.id, record.name);
            Ok(())
        }
    }
}

/// `probe list` and `probe revoke` (a revoked probe is refused at its next hello).
pub fn probe(command: ProbeCommand) -> anyhow::Result<()> {
    match command {
        ProbeCommand::List { target: args, json } => {
            let probes: Vec<ProbeListing> = match target(&args)? {
                Target::Remote(client) => fetch_all(&client, "/api/v1/admin/probes", "probes")?,
                Target::Store(store) => {
                    list_all(&*open_admin(store, false)?.store, auth::list_probes)?
                }
            };
            print_list("probes", &probes, json, probe_table)
        }
        ProbeCommand::Revoke { target: args, id } => {
            let probe: ProbeId = id.parse().context("probe id")?;
            let revoked: ProbeId = match target(&args)? {
                Target::Remote(client) => {
                    let path = format!("/api/v1/probes/{}/revoke", segment(probe.as_str()));
                    let answer = post_json(&client, "probe revoke", &path, &serde_json::json!({}))?;
                    field(&client, &answer, "probe")?
                }
                Target::Store(store) => {
                    let opened = open_admin(store, false)?;
                    let store = &*opened.store;
                    let record = auth::revoke_probe(store, &probe, UnixMicros::now())?;
                    auth::audit(store, "cli", "probe revoke", &id, "ok");
                    record.id
                }
            };
            println!("probe {revoked} revoked: it is refused at its next hello");
            Ok(())
        }
    }
}

/// `results`: stored results as JSON lines, newest first, from the store or a running
/// collector (`GET /api/v1/results`: the same documents, at most 10,000).
pub fn results(args: &AdminArgs, probe: Option<ProbeId>, limit: usize) -> anyhow::Result<()> {
    let lines: Vec<String> = match target_of(args)? {
        Target::Remote(client) => {
            let mut path = format!("/api/v1/results?limit={limit}");
            if let Some(probe) = &probe {
                path.push_str(&format!("&probe={}", segment(probe.as_str())));
            }
            let text = client.get(&path)?.into_ok("results")?;
            let body: serde_json::Value = serde_json::from_str(&text).with_context(|| {
                format!(
                    "collector at {}: results: the answer is not JSON",
                    client.url()
                )
            })?;
            let results: Vec<serde_json::Value> = field(&client, &body, "results")?;
            results.iter().map(ToString::to_string).collect()
        }
        Target::Store(store) => {
            let opened = open_admin(store, false)?;
            let query = crate::store::ResultQuery { probe, limit };
            opened
                .store
                .results(&query)?
                .iter()
                .map(serde_json::to_string)
                .collect::<Result<_, _>>()?
        }
    };
    for line in lines {
        println!("{line}");
    }
    Ok(())
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
    /// The minimum sample of `[publication]` (rollups are stored published under it).
    pub publication: crate::rollup::MinSample,
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
                    "opening {} (if a collector is running on it, act through it instead: --url http://HOST:PORT and an admin API token, or $SIXMAP_COLLECTOR and $SIXMAP_API_TOKEN)",
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
        publication: settings.publication,
        pki_dir: settings.pki_dir,
        data_dir: settings.data_dir,
    })
}

/// `rollups rebuild`: every figure and daily rollup recomputed from the raw results.
pub fn rollups(command: RollupsCommand) -> anyhow::Result<()> {
    let RollupsCommand::Rebuild { store } = command;
    if store.config.is_none() {
        // The days are stored published under this minimum; a collector publishing under
        // another makes them again from the operators' parts, and holds network days back.
        eprintln!(
            "note: without --config the days are stored under the default minimum sample \
             (min_probes = {}); give the collector's config to store them under its [publication]",
            crate::rollup::DEFAULT_MIN_PROBES
        );
    }
    let opened = open_admin(&store, false)?;
    let (prefixes, _) = crate::enrich::load(&opened.data_dir)?;
    let done = crate::figures::fold::rebuild_everything(
        &*opened.store,
        &prefixes,
        UnixMicros::now(),
        opened.publication,
    )?;
    println!("{done}");
    Ok(())
}
