//! Tests only: the audit of public outputs (issue #20). Every output anyone can read without a
//! researcher's token — the maps (JSON, CSV, SVG, HTML pages, coverage, drill-downs) and the campaign reports (HTML, JSON,
//! CSV) — is produced here from probes whose addresses are known, and searched for them: no
//! output may show a probe's address below its /48 (a /64, the full address, the IPv4
//! address) or its hostname, nor a share, RTT or rank for a cell under the minimum sample, nor
//! a national figure from which an operator under it could be worked out by subtraction
//! (published twice, with that operator's probe working and not: nothing may differ).
//! The daily dumps, which publish raw results, have their own test with the signature chain
//! (`collector/tests/export.rs`) and `export::public`'s.

use crate::campaign::{CampaignProbe, CampaignRecord, CampaignStatus, CampaignTask, spec};
use crate::map_view::MapView;
use crate::rollup::MinSample;
use crate::store::{ProbeRecord, SledStore, Store};
use serde_json::Value;
use sixmap_shared::health::{ProbeTag, TagName};
use sixmap_shared::prefixes::Enrichment;
use sixmap_shared::{ProbeId, TaskId, UnixMicros};
use std::io::{Read, Write};
use std::net::IpAddr;
use std::sync::Arc;

/// What identifies probe `n` more finely than a /48: its addresses, their /64, its hostname.
fn secrets(n: u8) -> Vec<String> {
    vec![
        format!("2001:db8:1234:{n}::42"),
        format!("2001:db8:1234:{n}:"),
        format!("192.0.2.{}", 100 + n),
        format!("volunteer-host-{n}"),
    ]
}

fn probe_id(n: u8) -> ProbeId {
    format!("{:016x}", u64::from(n)).parse().unwrap()
}

fn address(n: u8) -> IpAddr {
    format!("2001:db8:1234:{n}::42").parse().unwrap()
}

fn assert_no_secret(what: &str, text: &str, probes: u8) {
    for n in 1..=probes {
        for secret in secrets(n) {
            assert!(!text.contains(&secret), "{what} shows {secret}:\n{text}");
        }
    }
}

/// Every JSON object with a probe count under `min` publishes no share, RTT or rank.
fn assert_no_small_cell(what: &str, value: &Value, min: u64) {
    match value {
        Value::Object(map) => {
            // The smallest count the object gives: a report's operator row is judged by the
            // probes that reported (`reporting_probes`), which the minimum sample reads, not by
            // every probe selected.
            let probes = ["probes", "probe_count", "reporting_probes"]
                .iter()
                .filter_map(|k| map.get(*k).and_then(Value::as_u64))
                .min();
            if let Some(probes) = probes.filter(|p| *p < min) {
                for key in [
                    "v6_works",
                    "share",
                    "overall",
                    "v6_reachability",
                    "median_rtt_v6_ms",
                    "median_rtt_v4_ms",
                    "median_v6_rtt_ms",
                    "median_v4_rtt_ms",
                    "http_v6",
                    "pooled",
                    "rank",
                    "rank_range",
                    "v6_works_previous_method",
                ] {
                    if let Some(v) = map.get(key) {
                        assert!(
                            v.is_null(),
                            "{what}: {key} published for {probes} probes: {value}"
                        );
                    }
                }
            }
            map.values()
                .for_each(|v| assert_no_small_cell(what, v, min));
        }
        Value::Array(items) => items
            .iter()
            .for_each(|v| assert_no_small_cell(what, v, min)),
        _ => {}
    }
}

/// Every SVG element that gives a cell's probe count (`data-n`) under `min` gives no share,
/// and no text of the file gives one for the countries named in `small`.
fn assert_no_small_svg_cell(what: &str, svg: &str, min: u64, small: &[&str], insufficient: &str) {
    for tag in svg.split('<').filter(|t| t.contains("data-n=\"")) {
        let n: u64 = tag
            .split("data-n=\"")
            .nth(1)
            .and_then(|v| v.split('"').next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        if n < min {
            assert!(
                !tag.contains("data-share") && tag.contains("url(#insufficient)"),
                "{what}: a cell of {n} probes: <{tag}"
            );
        }
    }
    for code in small {
        let marks = [
            format!("({code}): "),
            format!(">{code}: "),
            format!(" {code}: "),
        ];
        for line in marks.iter().flat_map(|m| svg.split(m.as_str()).skip(1)) {
            assert!(
                line.starts_with(insufficient),
                "{what}: {code} published: {}",
                &line[..line.len().min(80)]
            );
        }
    }
}

const NOW: UnixMicros = UnixMicros(1_790_000_000_000_000);

/// Probes 1–4 in XA: three in AS64500 (IPv6 works), one in AS64501 (under the minimum of 3),
/// each with its addresses, hostname and a precise location; probe 5 alone in XB.
fn probes(store: &dyn Store, now: UnixMicros) {
    probes_with(store, now, true);
}

/// [`probes`], probe 4's IPv6 (AS64501, alone under the minimum) working or not.
fn probes_with(store: &dyn Store, now: UnixMicros, lone_works: bool) {
    for (n, asn, country) in [
        (1u8, 64500u32, "XA"),
        (2, 64500, "XA"),
        (3, 64500, "XA"),
        (4, 64501, "XA"),
        (5, 64502, "XB"),
        // A country the atlas draws, under the minimum: hatched on the SVG map, no share.
        (6, 64503, "BR"),
    ] {
        let v6 = address(n);
        store
            .create_probe(&ProbeRecord {
                id: probe_id(n),
                hostname: format!("volunteer-host-{n}"),
                enrolled_at: now,
                last_seen: Some(now),
                software_version: None,
                boot_epoch: None,
                local_addresses: vec![v6, format!("192.0.2.{}", 100 + n).parse().unwrap()],
                self_test: None,
                last_v6_success: Some(now),
                tags: if n != 4 || lone_works {
                    vec![ProbeTag {
                        name: TagName::new(crate::tags::Tag::V6Works.name()).unwrap(),
                        since: now,
                    }]
                } else {
                    Vec::new()
                },
                location: None,
                origin: Some(Enrichment {
                    asn: Some(asn),
                    as_name: Some(format!("Operator {asn}")),
                    country: Some(country.parse().unwrap()),
                }),
                owner: None,
                directory_listed: false,
                enrolled_from: Some(v6),
                enrolled_prefix: None,
                certificate_sha256: None,
                revoked_at: None,
            })
            .unwrap();
    }
}

fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    write!(
        client,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    client.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 200"), "{path}: {raw}");
    raw
}

/// The maps as served: world and country JSON and CSV, and the HTML pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maps_show_no_probe_address_nor_small_cell() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
    // The maps read the clock: probes seen now.
    probes(&*store, UnixMicros::now());
    let rule = MinSample { min_probes: 3 };
    let listener = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(crate::limits::serve_http(
        listener,
        crate::http::router(store.clone(), MapView::with_rule(rule))
            .merge(crate::blame::http::router(store.clone(), rule))
            .merge(crate::query::dns_public::router(store.clone(), rule))
            .merge(crate::coverage::router(
                crate::coverage::CoverageState::new(
                    store,
                    Arc::new(sixmap_shared::prefixes::PrefixData::new()),
                    crate::coverage::AsUsers::default(),
                    rule,
                ),
            )),
        crate::limits::Limits::default(),
    ));
    tokio::task::spawn_blocking(move || {
        let json = |raw: &str| -> Value {
            serde_json::from_str(raw.split_once("\r\n\r\n").unwrap().1).unwrap()
        };
        let world = get(addr, "/api/v1/maps/countries");
        assert_no_secret("world JSON", &world, 6);
        let world = json(&world);
        assert_no_small_cell("world JSON", &world, 3);
        // Every published figure names its method.
        assert_eq!(world["method_id"], crate::maps::METHOD_ID);
        // The test means something: XA is published, XB and AS64501 are not.
        let xa = world["countries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["country"] == "XA")
            .unwrap();
        assert!(xa["v6_works"].is_object(), "{world}");
        // The map as an SVG file, in two languages: BR hatched (drawn), XA and XB listed
        // under the map (no shape in the atlas), XB as insufficient data.
        for lang in ["en", "ar"] {
            let svg = get(
                addr,
                &format!("/api/v1/maps/countries?format=svg&lang={lang}"),
            );
            assert_no_secret("world SVG", &svg, 6);
            let catalog = crate::i18n::builtin();
            let words = catalog.find(lang).unwrap().t("common.insufficient");
            assert_no_small_svg_cell("world SVG", &svg, 3, &["XB", "BR"], words);
            assert!(svg.contains("data-country=\"BR\" data-n=\"1\""), "{svg}");
            assert!(svg.contains(crate::maps::METHOD_ID), "{svg}");
        }
        let svg = get(addr, "/api/v1/maps/countries?format=svg");
        assert!(
            svg.contains("XA: 100 %") && svg.contains("XB: insufficient data"),
            "{svg}"
        );
        let csv = get(addr, "/api/v1/maps/countries?format=csv");
        assert_no_secret("world CSV", &csv, 6);
        let xb = csv.lines().find(|l| l.starts_with("XB,")).unwrap();
        assert!(xb.starts_with("XB,1,1,true,,,,"), "{xb}");
        for country in ["XA", "XB", "BR"] {
            let svg = get(
                addr,
                &format!("/api/v1/maps/countries/{country}?format=svg"),
            );
            assert_no_secret("country SVG", &svg, 6);
            assert_eq!(
                svg.contains("Insufficient data"),
                country != "XA",
                "{country}: {svg}"
            );
            assert_eq!(svg.contains("IPv6 works:"), country == "XA", "{svg}");
            // The drill-down of the country's cell and of each operator's.
            let cells = [
                format!("/api/v1/maps/countries/{country}/drilldown"),
                format!("/api/v1/maps/countries/{country}/drilldown/64500"),
                format!("/api/v1/maps/countries/{country}/drilldown/64501"),
            ];
            for path in cells
                .iter()
                .filter(|p| country == "XA" || !p.contains("/drilldown/"))
            {
                let raw = get(addr, path);
                assert_no_secret("drill-down", &raw, 6);
                let cell = json(&raw);
                assert_no_small_cell("drill-down", &cell, 3);
                let small = country != "XA" || path.ends_with("64501");
                assert_eq!(cell["insufficient_data"], small, "{path}: {cell}");
                if small {
                    // Insufficient data only: no n, weights, exclusions or share.
                    for key in ["probes", "weights", "excluded", "v6_works", "n_effective"] {
                        assert!(cell.get(key).is_none(), "{path}: {key} in {cell}");
                    }
                } else {
                    assert!(
                        cell["weights"].is_array() && cell["v6_works"].is_object(),
                        "{cell}"
                    );
                    // No operator under the minimum named, no exact count under it.
                    for w in cell["weights"].as_array().unwrap() {
                        assert!(w["probes"].as_u64().unwrap() >= 3, "{path}: {cell}");
                    }
                    for e in cell["excluded"].as_array().unwrap() {
                        assert!(
                            e["probes"].as_u64().is_none_or(|n| n >= 3),
                            "{path}: {cell}"
                        );
                    }
                }
            }
            let detail = get(addr, &format!("/api/v1/maps/countries/{country}"));
            assert_no_secret("country JSON", &detail, 6);
            // No probe id on the maps: with a location it joins the dumps and the directory.
            for n in 1..=6 {
                let id = probe_id(n).to_string();
                assert!(
                    !detail.contains(&id),
                    "country JSON shows probe {id}:\n{detail}"
                );
            }
            let detail = json(&detail);
            assert_no_small_cell("country JSON", &detail, 3);
            assert_eq!(detail["method_id"], crate::maps::METHOD_ID);
            let csv = get(
                addr,
                &format!("/api/v1/maps/countries/{country}?format=csv"),
            );
            assert_no_secret("operators CSV", &csv, 6);
            for row in csv.lines().filter(|l| l.contains(",64501,")) {
                assert!(row.contains(",true,,,,"), "{row}");
            }
            assert_no_secret("country page", &get(addr, &format!("/map/{country}")), 6);
            let coverage = get(addr, &format!("/api/v1/maps/countries/{country}/coverage"));
            assert_no_secret("coverage JSON", &coverage, 6);
            // Operators under the minimum are counted together, never named: XA's operator
            // with three probes is listed, XB's one-probe operator and XA's AS64501 are not.
            let coverage = json(&coverage);
            let named: Vec<u64> = coverage["operators"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| {
                    assert!(o["probes"].as_u64().unwrap() >= 3, "{coverage}");
                    o["asn"].as_u64().unwrap()
                })
                .collect();
            assert!(!named.contains(&64501), "{coverage}");
            assert_eq!(!named.is_empty(), country == "XA", "{coverage}");
            assert_eq!(coverage["few_probes"]["operators"], 1, "{coverage}");
            // Where IPv6 breaks: nothing for a country under the minimum, no network under
            // it named.
            let breaks = get(addr, &format!("/api/v1/maps/countries/{country}/breaks"));
            assert_no_secret("breaks JSON", &breaks, 6);
            let breaks = json(&breaks);
            assert_eq!(breaks["insufficient_data"], country != "XA", "{breaks}");
            for n in breaks["networks"].as_array().unwrap() {
                assert_ne!(n["asn"], 64501, "{breaks}");
            }
            // DNS over IPv6 per operator: no operator under the minimum named.
            let dns = get(addr, &format!("/api/v1/maps/countries/{country}/dns"));
            assert_no_secret("DNS JSON", &dns, 6);
            let dns = json(&dns);
            for o in dns["operators"].as_array().unwrap() {
                assert!(o["probes"].as_u64().unwrap() >= 3, "{dns}");
            }
        }
        assert_no_secret("map page", &get(addr, "/map"), 6);
        assert_no_secret("dashboard", &get(addr, "/"), 6);
    })
    .await
    .unwrap();
}

/// Every national figure the public routes give, as published from [`probes_with`] plus a
/// stored day of results of the same probes (the series and `?date=`), probe 4's IPv6
/// working or not; the snapshot's time is taken out.
async fn published_nationally(lone_works: bool) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
    probes_with(&*store, UnixMicros::now(), lone_works);
    let day = crate::daily::day_start(NOW);
    let results: Vec<_> = [
        (1u8, 64500u32, "XA"),
        (2, 64500, "XA"),
        (3, 64500, "XA"),
        (4, 64501, "XA"),
    ]
    .into_iter()
    .map(|(n, asn, country)| {
        let works = n != 4 || lone_works;
        crate::testing::ping_v6(
            probe_id(n),
            1,
            UnixMicros(day.0 + 3_600_000_000 + i64::from(n)),
            works.then_some(std::time::Duration::from_millis(20)),
            Enrichment {
                asn: Some(asn),
                as_name: None,
                country: Some(country.parse().unwrap()),
            },
        )
    })
    .collect();
    store.insert_results(&results).unwrap();
    let rule = MinSample { min_probes: 3 };
    crate::daily::refresh(
        &*store,
        &sixmap_shared::prefixes::PrefixData::new(),
        day,
        1,
        rule,
    )
    .unwrap();
    let maps = MapView::with_rule(rule);
    let listener = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(crate::limits::serve_http(
        listener,
        crate::http::router(store.clone(), maps.clone())
            .merge(crate::comparison::router(store, maps, None)),
        crate::limits::Limits::default(),
    ));
    let date = crate::daily::day_label(day);
    tokio::task::spawn_blocking(move || {
        let body = |raw: String| raw.split_once("\r\n\r\n").unwrap().1.to_owned();
        let live: Value = serde_json::from_str(&body(get(addr, "/api/v1/maps/countries"))).unwrap();
        let at = UnixMicros(live["generated_at"].as_i64().unwrap());
        let times = [
            crate::export::row::rfc3339(at.0),
            crate::i18n::builtin().find("en").unwrap().date_time(at),
        ];
        let paths = [
            "/api/v1/maps/countries".to_owned(),
            "/api/v1/maps/countries?format=csv".into(),
            "/api/v1/maps/countries?format=svg".into(),
            "/api/v1/maps/countries/XA".into(),
            "/api/v1/maps/countries/XA?format=csv".into(),
            "/api/v1/maps/countries/XA?format=svg".into(),
            "/api/v1/maps/countries/XA/drilldown".into(),
            "/api/v1/maps/countries/XA/drilldown/64500".into(),
            "/api/v1/maps/countries/XA/series".into(),
            format!("/api/v1/maps/countries?date={date}"),
            format!("/api/v1/maps/countries?date={date}&format=csv"),
            format!("/api/v1/maps/countries?date={date}&format=svg"),
            format!("/api/v1/maps/countries/XA?date={date}"),
            format!("/api/v1/maps/countries/XA?date={date}&format=csv"),
            format!("/api/v1/maps/countries/XA?date={date}&format=svg"),
            "/api/v1/maps/comparison".into(),
            "/api/v1/maps/networks/64500/series".into(),
            "/api/v1/maps/networks/64501/series".into(),
        ];
        paths
            .into_iter()
            .map(|path| {
                let mut text = body(get(addr, &path));
                if let Ok(mut json) = serde_json::from_str::<Value>(&text) {
                    json["generated_at"] = Value::Null;
                    text = json.to_string();
                }
                for time in &times {
                    text = text.replace(time.as_str(), "(as of)");
                }
                (path, text)
            })
            .collect()
    })
    .await
    .unwrap()
}

/// The national share is a mean of the operators' shares: with one operator under the minimum
/// counted in it, anyone could work its share out from the national figure, the operators'
/// count and the named shares. Whether that operator's probe works must change nothing any
/// public route gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_national_figure_gives_an_operator_under_the_minimum_away() {
    let works = published_nationally(true).await;
    let broken = published_nationally(false).await;
    for ((path, a), (_, b)) in works.iter().zip(&broken) {
        assert_eq!(a, b, "{path} depends on an operator under the minimum");
    }
    // The routes answered with figures: XA's national share, today and on the stored day.
    let xa = |i: usize| -> Value { serde_json::from_str(&works[i].1).unwrap() };
    assert_eq!(
        xa(3)["v6_works"]["balanced"]["share"],
        1.0,
        "{}",
        works[3].1
    );
    assert_eq!(
        xa(8)["days"][0]["v6_works"]["balanced"]["share"],
        1.0,
        "{}",
        works[8].1
    );
    assert_eq!(
        xa(12)["v6_works"]["balanced"]["share"],
        1.0,
        "{}",
        works[12].1
    );
    assert!(works[5].1.contains("IPv6 works: 100 %"), "{}", works[5].1);
}

/// A campaign report from the same probes, their results carrying their source addresses:
/// HTML, JSON and CSV as published.
#[test]
fn reports_show_no_probe_address_nor_small_cell() {
    let text = "name = \"r\"\ntargets = [\"a.example\"]\n\
        [[measurements]]\nkind = \"ping\"\ntimeout_ms = 2000\n";
    let (spec, tasks) = spec::validate(&spec::parse("toml", text).unwrap(), NOW, false).unwrap();
    let probe = |n: u8, asn| CampaignProbe {
        probe: probe_id(n),
        asn: Some(asn),
        as_name: Some(format!("Operator {asn}")),
        country: Some("XA".into()),
        assigned_at: NOW,
        nat64_prefix: None,
    };
    let record = CampaignRecord {
        id: 1,
        owner: "o".into(),
        created_at: NOW,
        status: CampaignStatus::Active,
        status_reason: None,
        ended_at: None,
        spec,
        spec_text: text.into(),
        tasks: tasks
            .into_iter()
            .enumerate()
            .map(|(i, task)| CampaignTask {
                task_id: TaskId::new(i as u64 + 1).unwrap(),
                task,
            })
            .collect(),
        probes: vec![
            probe(1, 64500),
            probe(2, 64500),
            probe(3, 64500),
            probe(4, 64501),
        ],
        skipped_over_budget: Default::default(),
        declared: Vec::new(),
        published_at: Some(NOW),
    };
    let results = (1..=4u8).map(|n| {
        let mut r = crate::testing::ping_v6(
            probe_id(n),
            1,
            NOW,
            Some(std::time::Duration::from_millis(u64::from(n) * 3)),
            Enrichment::default(),
        );
        r.result.source = Some(address(n));
        r
    });
    let cells = crate::store::fold_cells(results);
    let report = crate::campaign::report::build(
        &record,
        &cells,
        crate::campaign::Progress::default(),
        NOW,
        MinSample { min_probes: 3 },
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_no_secret("report JSON", &json.to_string(), 4);
    assert_no_small_cell("report JSON", &json, 3);
    assert_no_secret("report HTML", &crate::campaign::report::to_html(&report), 4);
    let csv = crate::campaign::report::to_csv(&report);
    assert_no_secret("report CSV", &csv, 4);
    // AS64501 (one probe) is insufficient data; AS64500 (three) has its share.
    assert!(csv.contains("insufficient data (n=1)"), "{csv}");
}
