//! The rules: pure functions from what the collector keeps (probe records, stored daily
//! rollups) and the time to the alerts that hold now. [`evaluate`] reads their inputs: the
//! probe records (O(probes)) and the watched groups' stored days (O(groups × days)); never
//! a result.

use super::{Alert, alert_id};
use crate::campaign::CampaignRecord;
use crate::campaign::spec::is_reachability_kind;
use crate::config::{Rule, RuleKind};
use crate::daily::{self, CountryDay};
use crate::rollup::Proportion;
use crate::store::{CampaignCell, ProbeRecord, Store, StoreError, failure_class};
use serde_json::json;
use sixmap_shared::UnixMicros;
use sixmap_shared::measurement::Family;
use std::collections::BTreeMap;
use std::time::Duration;

const DAY_US: i64 = 86_400_000_000;

/// How long after its threshold an outage still raises an alert: an alert dropped from a
/// full outbox is not raised again for a probe that has been gone for months.
pub const OFFLINE_WINDOW: Duration = Duration::from_secs(7 * 86_400);

/// Every rule's alerts at `now`, for a collector serving since `up_since` (see
/// [`probe_offline`]).
pub fn evaluate(
    store: &dyn Store,
    rules: &[Rule],
    now: UnixMicros,
    up_since: UnixMicros,
) -> Result<Vec<Alert>, StoreError> {
    let mut alerts = Vec::new();
    let mut probes: Option<Vec<ProbeRecord>> = None;
    let mut two_days = None;
    for rule in rules {
        match &rule.kind {
            RuleKind::ProbeOffline { after } => {
                if probes.is_none() {
                    probes = Some(store.probes()?);
                }
                let probes = probes.as_deref().unwrap_or_default();
                alerts.extend(probe_offline(&rule.id, *after, probes, now, up_since));
            }
            RuleKind::TargetLostV6 {
                campaigns,
                min_probes,
            } => {
                for (id, json) in store.campaigns()? {
                    if !campaigns.is_empty() && !campaigns.contains(&id) {
                        continue;
                    }
                    let record: CampaignRecord =
                        serde_json::from_slice(&json).map_err(|e| StoreError::Corrupt {
                            key: format!("campaigns/{id}"),
                            reason: e.to_string(),
                        })?;
                    if !record.is_active() {
                        continue;
                    }
                    let mut cells = Vec::new();
                    store.campaign_cells(id, &mut |cell| {
                        cells.push(cell);
                        true
                    })?;
                    let seen = observations(&record, &cells, now);
                    alerts.extend(target_lost_v6(&rule.id, id, &seen, *min_probes, now));
                }
            }
            RuleKind::PmtuBlackHole {
                networks,
                min_tests,
            }
            | RuleKind::ExtHeaderDrop {
                networks,
                min_tests,
            } => {
                let (before, newest) = match &two_days {
                    Some(days) => days,
                    None => two_days.insert((
                        daily::groups_on(store, UnixMicros(now.0 - 2 * DAY_US))?,
                        daily::groups_on(store, UnixMicros(now.0 - DAY_US))?,
                    )),
                };
                let pmtu = matches!(rule.kind, RuleKind::PmtuBlackHole { .. });
                // Every network with a figure yesterday, or the ones named.
                let watched: Vec<u32> = if networks.is_empty() {
                    newest
                        .keys()
                        .filter_map(|k| k.strip_prefix("asn:")?.parse().ok())
                        .collect()
                } else {
                    networks.clone()
                };
                for asn in watched {
                    let key = format!("asn:{asn}");
                    let Some(after) = newest.get(&key) else {
                        continue;
                    };
                    alerts.extend(new_path_problems(
                        &rule.id,
                        pmtu,
                        asn,
                        before.get(&key),
                        after,
                        *min_tests,
                        now,
                    ));
                }
            }
            RuleKind::ShareDrop {
                countries,
                networks,
                points,
                min_probes,
            } => {
                // The two days compared (`share_drop`), every group's, read once per
                // evaluation: O(groups), whatever the length of the stored series.
                let (before, newest) = match &two_days {
                    Some(days) => days,
                    None => two_days.insert((
                        daily::groups_on(store, UnixMicros(now.0 - 2 * DAY_US))?,
                        daily::groups_on(store, UnixMicros(now.0 - DAY_US))?,
                    )),
                };
                let days_of = |key: &str| -> Vec<CountryDay> {
                    [before.get(key), newest.get(key)]
                        .into_iter()
                        .flatten()
                        .cloned()
                        .collect()
                };
                for country in countries {
                    let subject = format!("country:{country}");
                    let link = format!("/api/v1/maps/countries/{country}/series");
                    alerts.extend(share_drop(
                        &rule.id,
                        &subject,
                        &link,
                        &days_of(&country.to_string()),
                        *points,
                        *min_probes,
                        now,
                    ));
                }
                for asn in networks {
                    let subject = format!("asn:{asn}");
                    let link = format!("/api/v1/maps/networks/{asn}/series");
                    alerts.extend(share_drop(
                        &rule.id,
                        &subject,
                        &link,
                        &days_of(&subject),
                        *points,
                        *min_probes,
                        now,
                    ));
                }
            }
        }
    }
    Ok(alerts)
}

/// Probes not seen for more than `after` (never seen: since enrollment), unrevoked, within
/// [`OFFLINE_WINDOW`] of the threshold. Only absence while this collector serves counts
/// (from `up_since`): after the collector itself was down for hours, its probes get that
/// long to reconnect instead of all being reported at once. One alert per outage: its id
/// holds the last-seen time, so the same outage never raises two (after a restart too) and
/// the next one raises a new one.
pub fn probe_offline(
    rule: &str,
    after: Duration,
    probes: &[ProbeRecord],
    now: UnixMicros,
    up_since: UnixMicros,
) -> Vec<Alert> {
    let after_us = i64::try_from(after.as_micros()).unwrap_or(i64::MAX);
    let window_us = i64::try_from(OFFLINE_WINDOW.as_micros()).unwrap_or(i64::MAX);
    probes
        .iter()
        .filter(|p| p.revoked_at.is_none())
        .filter_map(|p| {
            let since = p.last_seen.unwrap_or(p.enrolled_at);
            let gone = now.0.saturating_sub(since.0);
            let watched = now.0.saturating_sub(since.0.max(up_since.0));
            if watched <= after_us || gone > after_us.saturating_add(window_us) {
                return None;
            }
            let hours = gone as f64 / 3.6e9;
            Some(Alert {
                id: alert_id(rule, &format!("probe:{}:{}", p.id, since.0)),
                rule: rule.to_owned(),
                kind: "probe_offline".into(),
                subject: format!("probe:{}", p.id),
                created_at: now,
                summary: format!("probe {} ({}) not seen for {hours:.1} h", p.id, p.hostname),
                evidence: json!({
                    "probe": p.id.as_str(),
                    "hostname": p.hostname,
                    // The owner goes to the webhook only; `GET /api/v1/alerts` removes it.
                    "owner": p.owner,
                    "last_seen": p.last_seen,
                    "enrolled_at": p.enrolled_at,
                    "offline_hours": hours,
                    "threshold_hours": after.as_secs_f64() / 3600.0,
                    "origin": p.origin,
                }),
                links: vec![
                    format!("/api/v1/probes/{}/tags", p.id),
                    "/api/v1/probes".into(),
                ],
            })
        })
        .collect()
}

/// An alert when the group's operator-balanced IPv6 share fell by more than `points`
/// percentage points from the day before its newest stored day, beyond both days' 95 %
/// intervals (the day before's lower bound above the newest day's upper bound), with at
/// least `min_probes` probes on each day. The newest day compared is yesterday, the last
/// complete UTC day: today's figures are rewritten as results arrive, and a few hours of them
/// against a whole day would be a drop that is only a partial day (a stale series raises
/// nothing). The id holds the newest day: one alert per drop.
pub fn share_drop(
    rule: &str,
    subject: &str,
    link: &str,
    days: &[CountryDay],
    points: f64,
    min_probes: usize,
    now: UnixMicros,
) -> Option<Alert> {
    let today = now.0.div_euclid(DAY_US);
    let newest = days
        .iter()
        .filter(|d| d.day_number < today)
        .max_by_key(|d| d.day_number)?;
    if newest.day_number < today - 1 {
        return None;
    }
    let before = days
        .iter()
        .find(|d| d.day_number == newest.day_number - 1)?;
    // A day without shares (insufficient data where it was computed) raises nothing.
    let (Some(was), Some(is)) = (&before.v6_works, &newest.v6_works) else {
        return None;
    };
    let (was, is) = (&was.balanced, &is.balanced);
    let drop = (was.share - is.share) * 100.0;
    let enough = before.probes >= min_probes && newest.probes >= min_probes;
    if !(enough && drop > points && was.low > is.high) {
        return None;
    }
    Some(Alert {
        id: alert_id(rule, &format!("{subject}:{}", newest.day)),
        rule: rule.to_owned(),
        kind: "share_drop".into(),
        subject: subject.to_owned(),
        created_at: now,
        summary: format!(
            "{subject}: IPv6 share {:.1} % on {} after {:.1} % on {} (−{drop:.1} points)",
            is.share * 100.0,
            newest.day,
            was.share * 100.0,
            before.day
        ),
        evidence: json!({
            "drop_points": drop,
            "threshold_points": points,
            "min_probes": min_probes,
            "before": {"day": before.day, "probes": before.probes, "operators": before.operators, "v6_works": before.v6_works},
            "after": {"day": newest.day, "probes": newest.probes, "operators": newest.operators, "v6_works": newest.v6_works},
        }),
        links: vec![link.to_owned()],
    })
}

/// The path problems of a network that are new yesterday (the last complete UTC day): with
/// `pmtu`, PMTU black holes (some of its PMTU tests found one), else each extension header
/// (`hbh`, `dst`, `frag`) it dropped. New means the day before had at least `min_tests` tests
/// of the same kind from the network and none found it; yesterday needs `min_tests` too. A
/// day without such tests says nothing either way, so a problem seen after a gap in testing
/// raises nothing (it may be old). One alert per network, problem and day: the id holds them.
pub fn new_path_problems(
    rule: &str,
    pmtu: bool,
    asn: u32,
    before: Option<&CountryDay>,
    after: &CountryDay,
    min_tests: u64,
    now: UnixMicros,
) -> Vec<Alert> {
    let today = now.0.div_euclid(DAY_US);
    let Some(before) = before else {
        return Vec::new();
    };
    if after.day_number != today - 1 || before.day_number != after.day_number - 1 {
        return Vec::new();
    }
    let problems: Vec<(&str, Option<&Proportion>, Option<&Proportion>)> = if pmtu {
        vec![(
            "pmtu_black_hole",
            before.pmtu_black_holes.as_ref(),
            after.pmtu_black_holes.as_ref(),
        )]
    } else {
        crate::figures::EXT_HEADERS
            .iter()
            .map(|h| {
                (
                    *h,
                    before.ext_header_drops.get(*h),
                    after.ext_header_drops.get(*h),
                )
            })
            .collect()
    };
    let enough = |p: &Proportion| p.n >= min_tests as f64;
    let subject = format!("asn:{asn}");
    problems
        .into_iter()
        .filter_map(|(problem, was, is)| {
            let (was, is) = (was?, is?);
            if !(enough(was) && enough(is) && was.successes == 0.0 && is.successes > 0.0) {
                return None;
            }
            let what = if pmtu {
                "a PMTU black hole".to_owned()
            } else {
                format!("extension header {problem} dropped")
            };
            Some(Alert {
                id: alert_id(rule, &format!("{subject}:{problem}:{}", after.day)),
                rule: rule.to_owned(),
                kind: if pmtu {
                    "pmtu_black_hole"
                } else {
                    "ext_header_drop"
                }
                .into(),
                subject: subject.clone(),
                created_at: now,
                summary: format!(
                    "AS{asn}: {what} on {} in {} of {} tests, none in {} tests on {}",
                    after.day, is.successes, is.n, was.n, before.day
                ),
                evidence: json!({
                    "network": asn,
                    "problem": problem,
                    "min_tests": min_tests,
                    "after": {"day": after.day, "tests": is.n, "found": is.successes, "share": is},
                    "before": {"day": before.day, "tests": was.n, "found": was.successes},
                }),
                links: vec![format!("/api/v1/maps/networks/{asn}/series")],
            })
        })
        .collect()
}

/// One probe's IPv6 reachability cell of a campaign target (task and probe), as
/// [`target_lost_v6`] needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub target: String,
    pub probe: String,
    /// Results of the cell that reached the target, ever.
    pub reached: u64,
    /// Whether its newest result reached it; else the failure class.
    pub latest_failure: Option<&'static str>,
    pub latest_at: UnixMicros,
    /// Whether the newest result is recent (`observations`): a probe gone for good keeps its
    /// last result, which must not keep a lost target "working", nor count as a failure.
    pub fresh: bool,
}

/// The IPv6 reachability cells of `record` (tasks over IPv6 of a kind that reaches its
/// target: not DNS, PMTU or extension headers). A cell is fresh when its newest result is
/// within two of the campaign's intervals (at least an hour; a day for a one-off campaign)
/// of `now`.
pub fn observations(
    record: &CampaignRecord,
    cells: &[CampaignCell],
    now: UnixMicros,
) -> Vec<Observation> {
    let window = record
        .spec
        .schedule
        .every
        .map_or(Duration::from_secs(86_400), |every| {
            (every * 2).max(Duration::from_secs(3600))
        });
    let since = UnixMicros(
        now.0
            .saturating_sub(i64::try_from(window.as_micros()).unwrap_or(i64::MAX)),
    );
    let tasks: std::collections::HashMap<_, _> =
        record.tasks.iter().map(|t| (t.task_id, t)).collect();
    cells
        .iter()
        .filter_map(|cell| {
            let task = tasks.get(&cell.task_id)?;
            let spec = &task.task.spec;
            (spec.family == Family::V6 && is_reachability_kind(spec.measurement_kind())).then(
                || Observation {
                    target: task.task.target.clone(),
                    probe: cell.probe_id.to_string(),
                    reached: cell.reached,
                    latest_failure: failure_class(&cell.latest.result.outcome),
                    latest_at: cell.latest.result.started_at,
                    fresh: cell.latest.result.started_at >= since,
                },
            )
        })
        .collect()
}

/// A campaign target that was reached over IPv6 (some result ever reached it) and is no
/// longer: the newest IPv6 result of every probe measuring it failed, from at least
/// `min_probes` probes. `lost` says what: `aaaa` when every newest failure is a name
/// resolution failure (the AAAA record went), else `reachability`. The id holds the count
/// of results that ever reached the target, which stays put while it is lost and grows when
/// it comes back: one alert per loss.
pub fn target_lost_v6(
    rule: &str,
    campaign: u64,
    seen: &[Observation],
    min_probes: usize,
    now: UnixMicros,
) -> Vec<Alert> {
    let mut by_target: BTreeMap<&str, Vec<&Observation>> = BTreeMap::new();
    for o in seen {
        by_target.entry(&o.target).or_default().push(o);
    }
    let mut alerts = Vec::new();
    for (target, cells) in by_target {
        // Over every cell, stale ones too: the id must not change as probes go quiet.
        let reached: u64 = cells.iter().map(|o| o.reached).sum();
        let mut probes: BTreeMap<&str, (&'static str, UnixMicros)> = BTreeMap::new();
        let mut works = false;
        for o in cells.iter().filter(|o| o.fresh) {
            match o.latest_failure {
                None => works = true,
                Some(class) => {
                    let entry = probes.entry(&o.probe).or_insert((class, o.latest_at));
                    if o.latest_at > entry.1 {
                        *entry = (class, o.latest_at);
                    }
                }
            }
        }
        if reached == 0 || works || probes.len() < min_probes {
            continue;
        }
        let lost = if probes.values().all(|(class, _)| *class == "resolution") {
            "aaaa"
        } else {
            "reachability"
        };
        let subject = format!("campaign:{campaign}:target:{target}");
        let failures: BTreeMap<&str, serde_json::Value> = probes
            .iter()
            .map(|(p, (class, at))| (*p, json!({"class": class, "at": at})))
            .collect();
        alerts.push(Alert {
            id: alert_id(rule, &format!("{subject}:{reached}")),
            rule: rule.to_owned(),
            kind: "target_lost_v6".into(),
            subject,
            created_at: now,
            summary: format!(
                "campaign {campaign}: {target} lost its IPv6 {lost} from all {} probes measuring it",
                probes.len()
            ),
            evidence: json!({
                "campaign": campaign,
                "target": target,
                "lost": lost,
                "probes": probes.len(),
                "reached_before": reached,
                "latest_failures": failures,
            }),
            links: vec![
                format!("/api/v1/campaigns/{campaign}"),
                format!("/api/v1/campaigns/{campaign}/report"),
            ],
        });
    }
    alerts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::Shares;
    use crate::rollup::Proportion;

    const H: i64 = 3_600_000_000;

    fn probe(id: &str, last_seen: Option<i64>) -> ProbeRecord {
        serde_json::from_value(json!({
            "id": id, "hostname": "pi", "enrolled_at": 0, "last_seen": last_seen,
            "software_version": null, "boot_epoch": null, "local_addresses": [],
            "owner": "alice@example.org",
        }))
        .unwrap()
    }

    #[test]
    fn offline_probes_raise_one_alert_per_outage() {
        let id = "0123456789abcdef";
        let after = Duration::from_secs(2 * 3600);
        let probes = [probe(id, Some(100 * H))];
        assert!(probe_offline("r", after, &probes, UnixMicros(102 * H), UnixMicros(0)).is_empty());
        let first = probe_offline("r", after, &probes, UnixMicros(102 * H + 1), UnixMicros(0));
        let later = probe_offline("r", after, &probes, UnixMicros(110 * H), UnixMicros(0));
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].id, later[0].id, "same outage, same id");
        assert_eq!(first[0].evidence["owner"], "alice@example.org");
        assert_eq!(first[0].links[0], format!("/api/v1/probes/{id}/tags"));
        // Seen again, gone again: a new outage.
        let again = [probe(id, Some(200 * H))];
        assert_ne!(
            probe_offline("r", after, &again, UnixMicros(203 * H), UnixMicros(0))[0].id,
            first[0].id
        );
        // Past the window: nothing.
        assert!(
            probe_offline(
                "r",
                after,
                &probes,
                UnixMicros(102 * H + 7 * 24 * H + 1),
                UnixMicros(0)
            )
            .is_empty()
        );
        // A collector up since 101 h counts the absence from then: alerted an hour later,
        // with the same id.
        let up = UnixMicros(101 * H);
        assert!(probe_offline("r", after, &probes, UnixMicros(102 * H + 1), up).is_empty());
        let late = probe_offline("r", after, &probes, UnixMicros(103 * H + 1), up);
        assert_eq!(late[0].id, first[0].id);
        let mut revoked = probe(id, Some(100 * H));
        revoked.revoked_at = Some(UnixMicros(101 * H));
        assert!(
            probe_offline("r", after, &[revoked], UnixMicros(110 * H), UnixMicros(0)).is_empty()
        );
    }

    fn share(share: f64, low: f64, high: f64) -> Proportion {
        Proportion {
            share,
            low,
            high,
            n: 100.0,
            successes: share * 100.0,
        }
    }

    fn day(n: i64, probes: usize, p: Proportion) -> CountryDay {
        serde_json::from_value(json!({
            "day": format!("d{n}"), "day_number": n, "probes": probes, "operators": 3,
            "v6_works": Shares { balanced: p.clone(), pooled: p },
            "median_rtt_v6_ms": null, "median_rtt_v4_ms": null,
        }))
        .unwrap()
    }

    #[test]
    fn share_drop_needs_the_points_the_intervals_and_the_sample() {
        let now = UnixMicros(20_002 * DAY_US + 5);
        let check = |days: &[CountryDay], min: usize| {
            share_drop("r", "country:DE", "/l", days, 10.0, min, now)
        };
        let before = day(20_000, 20, share(0.60, 0.55, 0.65));
        let fell = day(20_001, 20, share(0.40, 0.35, 0.45));
        let alert = check(&[before.clone(), fell.clone()], 5).unwrap();
        assert!((alert.evidence["drop_points"].as_f64().unwrap() - 20.0).abs() < 1e-9);
        assert_eq!(alert.evidence["before"]["probes"], 20);
        assert_eq!(
            alert.id,
            check(&[before.clone(), fell.clone()], 5).unwrap().id
        );
        // Overlapping intervals: within the noise.
        assert!(
            check(
                &[before.clone(), day(20_001, 20, share(0.40, 0.35, 0.56))],
                5
            )
            .is_none()
        );
        // Too small a drop.
        assert!(
            check(
                &[before.clone(), day(20_001, 20, share(0.52, 0.50, 0.54))],
                5
            )
            .is_none()
        );
        // Too few probes.
        assert!(check(&[before.clone(), fell.clone()], 21).is_none());
        // Not consecutive days, or a stale series.
        assert!(check(&[day(19_999, 20, share(0.6, 0.55, 0.65)), fell.clone()], 5).is_none());
        let stale = UnixMicros(20_003 * DAY_US);
        assert!(
            share_drop(
                "r",
                "c",
                "/l",
                &[before.clone(), fell.clone()],
                10.0,
                5,
                stale
            )
            .is_none()
        );
        // Today's partial figures are not compared: the same fall on the running day is
        // nothing yet.
        let running = UnixMicros(20_001 * DAY_US + 5);
        assert!(share_drop("r", "c", "/l", &[before, fell], 10.0, 5, running).is_none());
    }

    #[test]
    fn a_path_problem_is_new_when_the_day_before_tested_without_it() {
        let now = UnixMicros(20_002 * DAY_US + 5);
        let count = |found: f64, n: f64| Proportion {
            share: found / n,
            low: 0.0,
            high: 1.0,
            n,
            successes: found,
        };
        let with = |n: i64, pmtu: Option<Proportion>, hbh: Option<Proportion>| {
            let mut d = day(n, 10, share(0.6, 0.5, 0.7));
            d.pmtu_black_holes = pmtu;
            if let Some(hbh) = hbh {
                d.ext_header_drops.insert("hbh".into(), hbh);
            }
            d
        };
        let clean = with(20_000, Some(count(0.0, 8.0)), Some(count(0.0, 4.0)));
        let holes = with(20_001, Some(count(2.0, 8.0)), Some(count(1.0, 4.0)));
        let pmtu = new_path_problems("r", true, 64500, Some(&clean), &holes, 3, now);
        assert_eq!(pmtu.len(), 1, "{pmtu:#?}");
        assert_eq!(pmtu[0].kind, "pmtu_black_hole");
        assert_eq!(pmtu[0].subject, "asn:64500");
        assert_eq!(pmtu[0].evidence["after"]["found"], 2.0);
        assert_eq!(pmtu[0].links[0], "/api/v1/maps/networks/64500/series");
        // The same day evaluated again: the same alert.
        assert_eq!(
            new_path_problems(
                "r",
                true,
                64500,
                Some(&clean),
                &holes,
                3,
                UnixMicros(now.0 + 9)
            )[0]
            .id,
            pmtu[0].id
        );
        let eh = new_path_problems("r", false, 64500, Some(&clean), &holes, 3, now);
        assert_eq!(eh.len(), 1, "{eh:#?}");
        assert_eq!(eh[0].kind, "ext_header_drop");
        assert_eq!(eh[0].evidence["problem"], "hbh");
        assert_ne!(eh[0].id, pmtu[0].id);
        // Seen the day before too: not new.
        let old = with(20_000, Some(count(1.0, 8.0)), Some(count(2.0, 4.0)));
        assert!(new_path_problems("r", true, 64500, Some(&old), &holes, 3, now).is_empty());
        assert!(new_path_problems("r", false, 64500, Some(&old), &holes, 3, now).is_empty());
        // No tests, or too few, the day before: nothing known, nothing raised.
        let untested = with(20_000, None, None);
        assert!(new_path_problems("r", true, 64500, Some(&untested), &holes, 3, now).is_empty());
        assert!(new_path_problems("r", true, 64500, None, &holes, 3, now).is_empty());
        assert!(new_path_problems("r", false, 64500, Some(&clean), &holes, 5, now).is_empty());
        // Not yesterday's figures (a stale series, or today's partial day).
        let later = UnixMicros(20_003 * DAY_US);
        assert!(new_path_problems("r", true, 64500, Some(&clean), &holes, 3, later).is_empty());
    }

    /// The rules read the stored daily rollups: a network whose PMTU tests found no black
    /// hole the day before yesterday and some yesterday raises one alert; another network
    /// that had them both days, or that is not watched, raises none.
    #[test]
    fn path_problem_rules_read_the_stored_days() {
        use crate::config::Rule;
        use crate::store::SledStore;
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let now = UnixMicros(20_002 * DAY_US + 3600 * 1_000_000);
        let put = |asn: u32, n: i64, found: f64, drops: f64| {
            let count = |hits: f64| json!({"share": hits / 6.0, "low": 0.0, "high": 1.0, "n": 6.0, "successes": hits});
            let t = UnixMicros(n * DAY_US);
            let mut d = serde_json::to_value(day(n, 10, share(0.6, 0.5, 0.7))).unwrap();
            d["day"] = json!(daily::day_label(t));
            d["pmtu_black_holes"] = count(found);
            d["ext_header_drops"] = json!({"frag": count(drops), "hbh": count(0.0)});
            store
                .put_rollup(
                    &daily::day_label(t),
                    &format!("asn:{asn}"),
                    &serde_json::to_vec(&d).unwrap(),
                )
                .unwrap();
        };
        put(64500, 20_000, 0.0, 0.0);
        put(64500, 20_001, 3.0, 2.0);
        put(64501, 20_000, 1.0, 0.0);
        put(64501, 20_001, 3.0, 0.0);
        let rules = [
            Rule {
                id: "pmtu".into(),
                kind: RuleKind::PmtuBlackHole {
                    networks: vec![],
                    min_tests: 5,
                },
            },
            Rule {
                id: "eh".into(),
                kind: RuleKind::ExtHeaderDrop {
                    networks: vec![64501],
                    min_tests: 5,
                },
            },
        ];
        let alerts = evaluate(&store, &rules, now, UnixMicros(0)).unwrap();
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        assert_eq!(alerts[0].rule, "pmtu");
        assert_eq!(alerts[0].subject, "asn:64500");
        // AS64500's new frag drop raises with the network watched (every network).
        let every = [Rule {
            id: "eh".into(),
            kind: RuleKind::ExtHeaderDrop {
                networks: vec![],
                min_tests: 5,
            },
        }];
        let eh = evaluate(&store, &every, now, UnixMicros(0)).unwrap();
        assert_eq!(eh.len(), 1, "{eh:#?}");
        assert_eq!(eh[0].evidence["problem"], "frag");
        assert_eq!(eh[0].subject, "asn:64500");
    }

    fn seen(
        target: &str,
        probe: &str,
        reached: u64,
        failure: Option<&'static str>,
        at: i64,
    ) -> Observation {
        Observation {
            target: target.into(),
            probe: probe.into(),
            reached,
            latest_failure: failure,
            latest_at: UnixMicros(at),
            fresh: true,
        }
    }

    #[test]
    fn a_target_lost_from_every_probe_after_working_raises_one_alert_per_loss() {
        let now = UnixMicros(100);
        let lost = [
            seen("a.example", "p1", 3, Some("resolution"), 10),
            seen("a.example", "p2", 0, Some("resolution"), 11),
            // Another target still works from one probe; a third never worked.
            seen("b.example", "p1", 2, Some("timeout"), 10),
            seen("b.example", "p2", 2, None, 12),
            seen("c.example", "p1", 0, Some("timeout"), 10),
        ];
        let alerts = target_lost_v6("r", 7, &lost, 1, now);
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        assert_eq!(alerts[0].subject, "campaign:7:target:a.example");
        assert_eq!(alerts[0].evidence["lost"], "aaaa");
        assert_eq!(alerts[0].evidence["probes"], 2);
        assert_eq!(alerts[0].links[1], "/api/v1/campaigns/7/report");
        // Still lost later (newer failures): the same alert.
        let later = [
            seen("a.example", "p1", 3, Some("timeout"), 50),
            seen("a.example", "p2", 0, Some("resolution"), 51),
        ];
        let again = target_lost_v6("r", 7, &later, 1, UnixMicros(200));
        assert_eq!(again[0].id, alerts[0].id);
        assert_eq!(again[0].evidence["lost"], "reachability");
        // Back, then lost again: a new alert.
        let relapse = [seen("a.example", "p1", 5, Some("timeout"), 90)];
        assert_ne!(target_lost_v6("r", 7, &relapse, 1, now)[0].id, alerts[0].id);
        // Too few probes failing.
        assert!(target_lost_v6("r", 7, &lost[..2], 3, now).is_empty());
        // A probe gone for good whose last result was a success does not keep a target
        // "working"; the fresh failures decide, and the id (its reached count) stays.
        let mut gone = lost.to_vec();
        gone.push(Observation {
            fresh: false,
            ..seen("a.example", "p3", 4, None, 1)
        });
        let alerts_gone = target_lost_v6("r", 7, &gone, 1, now);
        assert_eq!(alerts_gone.len(), 1, "{alerts_gone:#?}");
        assert_eq!(alerts_gone[0].evidence["probes"], 2);
        assert_eq!(
            alerts_gone[0].id,
            target_lost_v6("r", 7, &gone, 1, UnixMicros(300))[0].id
        );
    }

    #[test]
    fn target_lost_v6_reads_campaign_cells_from_the_store() {
        use crate::campaign::Campaigns;
        use crate::config::Rule;
        use crate::store::{SledStore, StoredResult};
        use sixmap_shared::measurement::{ErrorClass, MeasurementError, Outcome};
        use std::sync::Arc;

        const NOW: UnixMicros = UnixMicros(1_790_000_000_000_000);
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
        let ids = ["00000000000000a1", "00000000000000a2"];
        for id in ids {
            let mut p = probe(id, Some(NOW.0));
            p.enrolled_at = NOW;
            store.create_probe(&p).unwrap();
        }
        let spec = "name = \"t\"\ntargets = [\"example.org\"]\n\
                    [[measurements]]\nkind = \"ping\"\ntimeout_ms = 5000\n";
        let record = Campaigns::new(store.clone(), false, None)
            .create("reg", "toml", spec, NOW)
            .unwrap();
        let task = record.tasks[0].task_id;
        let result = |probe: &str, sequence: u64, reached: bool| {
            let mut r: StoredResult = crate::export::samples::sample(0, 1, NOW, 0);
            r.result.key.probe_id = probe.parse().unwrap();
            r.result.key.sequence = sequence;
            r.result.task_id = task;
            r.result.started_at = UnixMicros(NOW.0 + sequence as i64);
            if !reached {
                r.result.outcome = Outcome::Failed(MeasurementError {
                    class: ErrorClass::Resolution,
                    message: "no AAAA".into(),
                });
                r.result.destination = None;
                r.result.family_used = None;
            }
            r
        };
        let rules = [Rule {
            id: "lost".into(),
            kind: RuleKind::TargetLostV6 {
                campaigns: vec![],
                min_probes: 2,
            },
        }];
        let later = UnixMicros(NOW.0 + 10);
        store
            .insert_results(&[result(ids[0], 1, true), result(ids[1], 1, true)])
            .unwrap();
        assert!(
            evaluate(&*store, &rules, later, UnixMicros(0))
                .unwrap()
                .is_empty()
        );
        // One probe loses it: the other still reaches it.
        store.insert_results(&[result(ids[0], 2, false)]).unwrap();
        assert!(
            evaluate(&*store, &rules, later, UnixMicros(0))
                .unwrap()
                .is_empty()
        );
        store.insert_results(&[result(ids[1], 2, false)]).unwrap();
        let alerts = evaluate(&*store, &rules, later, UnixMicros(0)).unwrap();
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        assert_eq!(
            alerts[0].subject,
            format!("campaign:{}:target:example.org", record.id)
        );
        assert_eq!(alerts[0].evidence["lost"], "aaaa");
        assert_eq!(alerts[0].evidence["reached_before"], 2);
    }
}
