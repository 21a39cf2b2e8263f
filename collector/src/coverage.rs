//! Coverage per country (issue #20): which operators have probes there and how many, and the
//! largest networks with none, so a regulator knows where to recruit volunteers.
//!
//! "Largest" is by users when the operator gives a per-AS user-count file (`[coverage]
//! users_csv`: `asn,country,users`, e.g. from APNIC's per-AS estimates or the regulator's own
//! subscriber counts), else by the IPv6 address space each AS originates in the country
//! according to the imported prefix data (`import-prefixes`): the sum over its prefixes,
//! each placed in the country of its first address, counted in /48s. Announced space is a
//! rough proxy for size (a large block may serve few users), which is why a user count, when
//! given, comes first. Computed once per process from the prefix data (fixed until restart)
//! and per request from the probe list (O(probes)).
//!
//! `GET /api/v1/maps/countries/{country}/coverage`: public like the maps (`http_auth`). It
//! names operators and counts, never a probe's address or id.

use crate::rollup::MinSample;
use crate::store::{ProbeRecord, Store, StoreError};
use axum::extract::{Path, RawQuery, State};

use axum::Router;
use axum::response::Response;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use sixmap_shared::UnixMicros;
use sixmap_shared::config::ConfigError;
use sixmap_shared::prefixes::{CountryCode, PrefixData};
use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, OnceLock};

/// Networks listed without a probe, largest first.
pub const UNCOVERED_LIMIT: usize = 20;
/// A probe is active when seen in the last 24 hours, as on the maps.
const ACTIVE_US: i64 = 24 * 3_600_000_000;
/// Largest user-count file read (a line per AS of the world is ~2 MB).
const MAX_USERS_BYTES: u64 = 64 << 20;

pub const METHOD: &str = "Probes: enrolled and not revoked, placed by the origin country and AS of their address in the \
imported prefix data; active: seen in the last 24 h. Operators with fewer probes than the publication minimum are counted \
together and not named (one volunteer's probe must not point at that person). Networks without a probe: every AS originating IPv6 space in the country \
(each prefix counted in the country of its first address, summed in /48s), or listed for the country in the configured per-AS \
user-count file; ranked by users when that file gives them, else by announced IPv6 space, which is only a proxy for size.";

/// `[coverage]` in the collector config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoverageConfig {
    /// Optional CSV `asn,country,users` (header line optional): users per AS and country.
    pub users_csv: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum CoverageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} line {line}: {reason}")]
    Line {
        path: PathBuf,
        line: u64,
        reason: String,
    },
}

impl CoverageConfig {
    /// Reads the user-count file, if any; errors name the key, file and line.
    pub fn load(&self, source: Option<&FsPath>) -> Result<AsUsers, ConfigError> {
        let Some(path) = &self.users_csv else {
            return Ok(AsUsers::default());
        };
        let file = std::fs::File::open(path).map_err(|e| {
            ConfigError::invalid(
                "coverage.users_csv",
                source,
                format!("{}: {e}", path.display()),
            )
        })?;
        parse_users(
            std::io::BufReader::new(std::io::Read::take(file, MAX_USERS_BYTES)),
            path,
        )
        .map_err(|e| ConfigError::invalid("coverage.users_csv", source, e.to_string()))
    }
}

/// Users per (country, AS), from the optional file.
#[derive(Debug, Clone, Default)]
pub struct AsUsers(HashMap<(CountryCode, u32), u64>);

/// Parses `asn,country,users` lines (`AS` prefix on the number allowed; a first line that is a
/// header, blank lines and `#` comments skipped).
pub fn parse_users(reader: impl BufRead, path: &FsPath) -> Result<AsUsers, CoverageError> {
    let mut users = HashMap::new();
    for (n, line) in reader.lines().enumerate() {
        let line_no = n as u64 + 1;
        let line = line.map_err(|source| CoverageError::Io {
            path: path.to_owned(),
            source,
        })?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: String| CoverageError::Line {
            path: path.to_owned(),
            line: line_no,
            reason,
        };
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if n == 0
            && fields
                .first()
                .is_some_and(|f| f.eq_ignore_ascii_case("asn"))
        {
            continue;
        }
        let [asn, country, count] = fields[..] else {
            return Err(bad(format!(
                "{} fields, expected asn,country,users",
                fields.len()
            )));
        };
        let asn: u32 = asn
            .strip_prefix("AS")
            .unwrap_or(asn)
            .parse()
            .map_err(|_| bad(format!("{asn:?} is not an AS number")))?;
        let country: CountryCode = country
            .parse()
            .map_err(|_| bad(format!("{country:?} is not a country code")))?;
        let count: u64 = count
            .parse()
            .map_err(|_| bad(format!("{count:?} is not a count of users")))?;
        users.insert((country, asn), count);
    }
    Ok(AsUsers(users))
}

/// One AS's announced space in one country.
#[derive(Debug, Clone, Default, PartialEq)]
struct Space {
    name: String,
    /// /64s of IPv6 (prefixes longer than /64 count for nothing).
    v6_64s: u64,
    v4_addresses: u64,
}

/// Announced space per country and AS, from the prefix data.
#[derive(Debug, Default)]
pub struct AddressSpace(HashMap<CountryCode, BTreeMap<u32, Space>>);

/// Sums each AS's prefixes per country (the country of the prefix's first address).
pub fn address_space(prefixes: &PrefixData) -> AddressSpace {
    let mut out: HashMap<CountryCode, BTreeMap<u32, Space>> = HashMap::new();
    for (network, len, info) in prefixes.asn.iter() {
        let Some((country, _, _)) = prefixes.country.lookup(network) else {
            continue;
        };
        let space = out
            .entry(*country)
            .or_default()
            .entry(info.asn)
            .or_insert_with(|| Space {
                name: info.name.to_string(),
                ..Space::default()
            });
        if network.is_ipv4() {
            space.v4_addresses = space
                .v4_addresses
                .saturating_add(1u64 << (32 - u32::from(len.min(32))));
        } else if len <= 64 {
            space.v6_64s = space
                .v6_64s
                .saturating_add(1u64.checked_shl(64 - u32::from(len)).unwrap_or(u64::MAX));
        }
    }
    AddressSpace(out)
}

/// An operator with probes in the country.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Covered {
    pub asn: u32,
    pub as_name: Option<String>,
    pub probes: usize,
    pub active: usize,
    /// Its announced IPv6 space in the country, in /48s; null without prefix data for it.
    pub v6_slash48s: Option<f64>,
    pub users: Option<u64>,
}

/// Operators with fewer probes than the publication rule's minimum, counted together and not
/// named: a one-person network with one volunteer's probe would otherwise point at that person.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct FewProbes {
    /// Each of them has fewer probes than this.
    pub below: usize,
    pub operators: usize,
    pub probes: usize,
    pub active: usize,
}

/// A network of the country with no probe.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Uncovered {
    pub asn: u32,
    pub as_name: Option<String>,
    pub v6_slash48s: f64,
    pub v4_addresses: u64,
    pub users: Option<u64>,
}

/// `GET /api/v1/maps/countries/{country}/coverage`.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    pub country: CountryCode,
    pub generated_at: UnixMicros,
    pub method: &'static str,
    /// `users` (the configured file) or `announced_v6_space`.
    pub ranked_by: &'static str,
    pub probes: usize,
    pub active_probes: usize,
    /// Operators with at least the publication rule's minimum of probes, most probes first.
    pub operators: Vec<Covered>,
    /// The other operators with probes, together.
    pub few_probes: FewProbes,
    /// The largest networks without any probe (at most [`UNCOVERED_LIMIT`]).
    pub uncovered: Vec<Uncovered>,
    /// How many networks of the country have no probe in all.
    pub uncovered_total: usize,
}

fn slash48s(v6_64s: u64) -> f64 {
    v6_64s as f64 / 65_536.0
}

fn name(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// The coverage of `country` from the probe list, the announced space and the user counts.
pub fn coverage(
    country: CountryCode,
    probes: &[ProbeRecord],
    space: &AddressSpace,
    users: &AsUsers,
    rule: MinSample,
    now: UnixMicros,
) -> Coverage {
    let empty = BTreeMap::new();
    let spaces = space.0.get(&country).unwrap_or(&empty);
    let users_of = |asn: u32| users.0.get(&(country, asn)).copied();
    let mut covered: BTreeMap<u32, Covered> = BTreeMap::new();
    for probe in probes.iter().filter(|p| p.revoked_at.is_none()) {
        let Some(origin) = &probe.origin else {
            continue;
        };
        let (Some(asn), Some(c)) = (origin.asn, origin.country) else {
            continue;
        };
        if c != country {
            continue;
        }
        let entry = covered.entry(asn).or_insert_with(|| Covered {
            asn,
            as_name: origin
                .as_name
                .clone()
                .or_else(|| spaces.get(&asn).and_then(|s| name(&s.name))),
            probes: 0,
            active: 0,
            v6_slash48s: spaces.get(&asn).map(|s| slash48s(s.v6_64s)),
            users: users_of(asn),
        });
        entry.probes += 1;
        if probe
            .last_seen
            .is_some_and(|seen| seen.0 >= now.0.saturating_sub(ACTIVE_US))
        {
            entry.active += 1;
        }
    }
    let by_users = users.0.keys().any(|(c, _)| *c == country);
    let mut uncovered: BTreeMap<u32, Uncovered> = spaces
        .iter()
        .filter(|(asn, _)| !covered.contains_key(asn))
        .map(|(&asn, s)| {
            (
                asn,
                Uncovered {
                    asn,
                    as_name: name(&s.name),
                    v6_slash48s: slash48s(s.v6_64s),
                    v4_addresses: s.v4_addresses,
                    users: users_of(asn),
                },
            )
        })
        .collect();
    // Networks the user file names that announce nothing in the prefix data still count.
    for (&(c, asn), &count) in &users.0 {
        if c == country && !covered.contains_key(&asn) {
            uncovered.entry(asn).or_insert(Uncovered {
                asn,
                as_name: None,
                v6_slash48s: 0.0,
                v4_addresses: 0,
                users: Some(count),
            });
        }
    }
    let mut uncovered: Vec<Uncovered> = uncovered.into_values().collect();
    if by_users {
        uncovered.sort_by(|a, b| {
            b.users
                .cmp(&a.users)
                .then(b.v6_slash48s.total_cmp(&a.v6_slash48s))
                .then(a.asn.cmp(&b.asn))
        });
    } else {
        // Without IPv6 space, IPv4 space orders the rest.
        uncovered.sort_by(|a, b| {
            b.v6_slash48s
                .total_cmp(&a.v6_slash48s)
                .then(b.v4_addresses.cmp(&a.v4_addresses))
                .then(a.asn.cmp(&b.asn))
        });
    }
    let uncovered_total = uncovered.len();
    uncovered.truncate(UNCOVERED_LIMIT);
    let (mut operators, few): (Vec<Covered>, Vec<Covered>) =
        covered.into_values().partition(|o| rule.allows(o.probes));
    operators.sort_by(|a, b| b.probes.cmp(&a.probes).then(a.asn.cmp(&b.asn)));
    let few_probes = FewProbes {
        below: rule.min_probes,
        operators: few.len(),
        probes: few.iter().map(|o| o.probes).sum(),
        active: few.iter().map(|o| o.active).sum(),
    };
    Coverage {
        country,
        generated_at: now,
        method: METHOD,
        ranked_by: if by_users {
            "users"
        } else {
            "announced_v6_space"
        },
        probes: operators.iter().map(|o| o.probes).sum::<usize>() + few_probes.probes,
        active_probes: operators.iter().map(|o| o.active).sum::<usize>() + few_probes.active,
        operators,
        few_probes,
        uncovered,
        uncovered_total,
    }
}

/// What the route needs: the store, the prefix data (summed on first use) and user counts.
#[derive(Debug, Clone)]
pub struct CoverageState {
    store: Arc<dyn Store>,
    prefixes: Arc<PrefixData>,
    space: Arc<OnceLock<AddressSpace>>,
    users: Arc<AsUsers>,
    rule: MinSample,
}

impl CoverageState {
    /// Starts summing the address space per AS and country in the background (one pass over
    /// the prefix table), so no request waits for it behind a reader thread.
    pub fn new(
        store: Arc<dyn Store>,
        prefixes: Arc<PrefixData>,
        users: AsUsers,
        rule: MinSample,
    ) -> Self {
        let space = Arc::new(OnceLock::new());
        let (building, table) = (space.clone(), prefixes.clone());
        let spawned = std::thread::Builder::new()
            .name("coverage-space".into())
            .spawn(move || {
                building.get_or_init(|| address_space(&table));
            });
        if let Err(e) = spawned {
            // The first request builds it instead.
            tracing::warn!(error = %e, "coverage: address space not built ahead");
        }
        Self {
            store,
            prefixes,
            space,
            users: Arc::new(users),
            rule,
        }
    }
}

pub fn router(state: CoverageState) -> Router {
    Router::new()
        .route(
            "/api/v1/maps/countries/{country}/coverage",
            get(country_coverage),
        )
        .with_state(state)
}

async fn country_coverage(
    State(state): State<CoverageState>,
    Path(country): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let code = match crate::http::country_route::country_of(&country, query.as_deref()) {
        Ok(code) => code,
        Err(refused) => return refused,
    };
    let work = move || -> Result<Coverage, StoreError> {
        let probes = state.store.probes()?;
        let space = state.space.get_or_init(|| address_space(&state.prefixes));
        Ok(coverage(
            code,
            &probes,
            space,
            &state.users,
            state.rule,
            UnixMicros::now(),
        ))
    };
    crate::http::country_route::json_or_503("coverage", code, work).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use sixmap_shared::prefixes::{AddressFormat, Enrichment};

    const NOW: UnixMicros = UnixMicros(1_790_000_000_000_000);

    fn prefixes() -> PrefixData {
        let mut data = PrefixData::new();
        // Four operators in XA (a /29, a /32, a /40 and IPv4 only), one in XB.
        let asn = "2001:db8::,2001:dbf:ffff:ffff:ffff:ffff:ffff:ffff,64500,Big Telecom\n\
            2001:dc0::,2001:dc0:ffff:ffff:ffff:ffff:ffff:ffff,64501,Middle Net\n\
            2001:dc1::,2001:dc1:00ff:ffff:ffff:ffff:ffff:ffff,64502,Small ISP\n\
            2001:dc2::,2001:dc2:ffff:ffff:ffff:ffff:ffff:ffff,64510,Elsewhere\n";
        data.load_asn_csv(asn.as_bytes(), AddressFormat::Text)
            .unwrap();
        let v4 = "198.51.100.0,198.51.100.255,64503,Legacy Only\n";
        data.load_asn_csv(v4.as_bytes(), AddressFormat::Text)
            .unwrap();
        let country = "2001:db8::,2001:dc1:ffff:ffff:ffff:ffff:ffff:ffff,XA\n\
            2001:dc2::,2001:dc2:ffff:ffff:ffff:ffff:ffff:ffff,XB\n\
            198.51.100.0,198.51.100.255,XA\n";
        data.load_country_csv(country.as_bytes(), AddressFormat::Text)
            .unwrap();
        data
    }

    fn probe(n: u64, asn: u32, country: &str, seen: UnixMicros, revoked: bool) -> ProbeRecord {
        ProbeRecord {
            last_seen: Some(seen),
            origin: Some(Enrichment {
                asn: Some(asn),
                as_name: None,
                country: Some(country.parse().unwrap()),
            }),
            revoked_at: revoked.then_some(seen),
            ..ProbeRecord::new(format!("{n:016x}").parse().unwrap(), format!("p{n}"), seen)
        }
    }

    #[test]
    fn operators_with_probes_and_the_largest_without() {
        let space = address_space(&prefixes());
        let old = UnixMicros(NOW.0 - 3 * ACTIVE_US);
        let probes = [
            probe(1, 64501, "XA", NOW, false),
            probe(2, 64501, "XA", old, false),
            probe(3, 64502, "XA", NOW, false),
            // Revoked: no longer covers Big Telecom.
            probe(4, 64500, "XA", NOW, true),
            probe(5, 64510, "XB", NOW, false),
        ];
        let xa: CountryCode = "XA".parse().unwrap();
        let rule = MinSample { min_probes: 1 };
        let c = coverage(xa, &probes, &space, &AsUsers::default(), rule, NOW);
        assert_eq!(c.ranked_by, "announced_v6_space");
        assert_eq!((c.probes, c.active_probes), (3, 2));
        let ops: Vec<_> = c
            .operators
            .iter()
            .map(|o| (o.asn, o.probes, o.active, o.as_name.as_deref()))
            .collect();
        assert_eq!(
            ops,
            [
                (64501, 2, 1, Some("Middle Net")),
                (64502, 1, 1, Some("Small ISP"))
            ]
        );
        assert_eq!(
            c.operators[0].v6_slash48s,
            Some(65_536.0),
            "a /32 is 65536 /48s"
        );
        assert_eq!(c.operators[1].v6_slash48s, Some(256.0), "a /40 is 256 /48s");
        // Big Telecom's /29 first, then the IPv4-only network; XB's operator is not XA's.
        let missing: Vec<_> = c
            .uncovered
            .iter()
            .map(|u| (u.asn, u.v6_slash48s, u.v4_addresses))
            .collect();
        assert_eq!(missing, [(64500, 524_288.0, 0), (64503, 0.0, 256)]);
        assert_eq!(c.uncovered_total, 2);
        assert_eq!(c.few_probes.operators, 0);

        // Under the publication rule, an operator with fewer probes is counted, not named,
        // and is not listed as uncovered either.
        let strict = MinSample { min_probes: 2 };
        let c = coverage(xa, &probes, &space, &AsUsers::default(), strict, NOW);
        let named: Vec<_> = c.operators.iter().map(|o| o.asn).collect();
        assert_eq!(named, [64501]);
        assert_eq!(
            c.few_probes,
            FewProbes {
                below: 2,
                operators: 1,
                probes: 1,
                active: 1
            }
        );
        assert_eq!((c.probes, c.active_probes), (3, 2));
        assert!(c.uncovered.iter().all(|u| u.asn != 64502));

        // With user counts, users order the list, and a network the file names without
        // announced space is listed too.
        let users = parse_users(
            "asn,country,users\nAS64503,XA,900000\n64500,XA,10000\n64999,XA,50000\n64510,XB,1\n"
                .as_bytes(),
            FsPath::new("users.csv"),
        )
        .unwrap();
        let c = coverage(xa, &probes, &space, &users, rule, NOW);
        assert_eq!(c.ranked_by, "users");
        let missing: Vec<_> = c.uncovered.iter().map(|u| (u.asn, u.users)).collect();
        assert_eq!(
            missing,
            [
                (64503, Some(900_000)),
                (64999, Some(50_000)),
                (64500, Some(10_000))
            ]
        );
    }

    #[test]
    fn user_files_name_the_bad_line() {
        let err = parse_users(
            "asn,country,users\n64500,XA,10\n64501,XA,many\n".as_bytes(),
            FsPath::new("u.csv"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("u.csv line 3") && err.contains("many"),
            "{err}"
        );
        let err = parse_users("64500,XA\n".as_bytes(), FsPath::new("u.csv"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1") && err.contains("2 fields"), "{err}");
    }
}
