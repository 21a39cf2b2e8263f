//! The research query service over HTTP and gRPC, against a real sled store behind the
//! collector's access middleware: every filter narrows, pages visit each result once while
//! results arrive, bad parameters are named, tokens are checked, and a gRPC stream stops
//! scanning when its client leaves.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use sixmap_collector::auth;
use sixmap_collector::client::Client;
use sixmap_collector::http_auth::{self, Access};
use sixmap_collector::pki::Pki;
use sixmap_collector::query::grpc::QueryGrpc;
use sixmap_collector::store::{Role, SledStore, Store, StoredResult};
use sixmap_proto::v1;
use sixmap_proto::v1::query_service_client::QueryServiceClient;
use sixmap_proto::v1::query_service_server::QueryServiceServer;
use sixmap_shared::blame::{Blame, BlameHop, Failure, Placement};
use sixmap_shared::prefixes::Enrichment;
use sixmap_shared::{TaskId, UnixMicros};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tonic::Code;

/// Which results a filter should keep.
type Keep = Box<dyn Fn(&StoredResult) -> bool>;

const PROBES: [&str; 3] = ["00000000000000aa", "00000000000000bb", "00000000000000cc"];
const CAMPAIGN: u64 = 4;
const CAMPAIGN_TASK: u64 = 9;

fn origin(asn: u32, country: &str) -> Enrichment {
    Enrichment {
        asn: Some(asn),
        as_name: Some(format!("AS{asn} Example")),
        country: Some(country.parse().unwrap()),
    }
}

/// Result `i` of a varied set: three probes in two countries and three ASes, three
/// destinations in two ASes, some of the campaign's task, one in six unanswered.
fn result(i: u64) -> StoredResult {
    let probe = PROBES[(i % 3) as usize].parse().unwrap();
    let rtt = (!i.is_multiple_of(6)).then(|| Duration::from_millis(5 + i % 40));
    let probe_origin = match i % 3 {
        0 => origin(3320, "DE"),
        1 => origin(1136, "NL"),
        _ => origin(3320, "DE"),
    };
    let mut r = sixmap_collector::testing::ping_v6(
        probe,
        i,
        UnixMicros(1_700_000_000_000_000 + 1_000_000 * i as i64),
        rtt,
        probe_origin,
    );
    let (destination, target_origin): (IpAddr, _) = match i % 4 {
        0 => ("2001:db8:1::1".parse().unwrap(), origin(64_496, "US")),
        1 => ("2001:db8:2::1".parse().unwrap(), origin(64_497, "FR")),
        _ => (sixmap_collector::testing::DESTINATION, origin(3333, "NL")),
    };
    r.result.destination = Some(destination);
    r.target_origin = Some(target_origin);
    if i.is_multiple_of(5) {
        r.result.task_id = TaskId::new(CAMPAIGN_TASK).unwrap();
    }
    // Every other result with a fault attribution, as ingest stores one beside a failure.
    if i.is_multiple_of(2) {
        r.blame = Some(Blame {
            failure: Failure::V6Broken,
            placement: Placement::Transit,
            responsible_asn: Some(64_510),
            last_answering: Some(BlameHop {
                hop_limit: 3,
                address: Some("2001:db8:20::1".parse().unwrap()),
                asn: Some(64_510),
            }),
            first_silent: Some(BlameHop {
                hop_limit: 4,
                address: None,
                asn: None,
            }),
            boundary: false,
            probe_asn: r.probe_origin.as_ref().and_then(|o| o.asn),
            probe_country: r.probe_origin.as_ref().and_then(|o| o.country),
            destination_asn: Some(3333),
        });
    }
    r
}

struct Served {
    store: Arc<SledStore>,
    researcher: String,
    campaigner: String,
    base: String,
    _dir: tempfile::TempDir,
}

/// The query routes behind the collector's access middleware, on a real sled store with
/// results 0..n.
async fn serve(n: u64) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let (researcher, _) =
        auth::create_api_token(&*store, Role::Researcher, "lab", UnixMicros::now()).unwrap();
    let (campaigner, _) =
        auth::create_api_token(&*store, Role::Campaigner, "reg", UnixMicros::now()).unwrap();
    store
        .link_campaign_task(TaskId::new(CAMPAIGN_TASK).unwrap(), CAMPAIGN)
        .unwrap();
    store
        .insert_results(&(0..n).map(result).collect::<Vec<_>>())
        .unwrap();
    let pki = Arc::new(Pki::load_or_create(dir.path()).unwrap());
    let dynamic: Arc<dyn Store> = store.clone();
    let app = http_auth::protect(
        sixmap_collector::query::router(dynamic.clone()),
        dynamic,
        pki,
        Access {
            raw_data_public: false,
            maps_public: true,
            metrics_public: true,
        },
    );
    let listener = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Served {
        store,
        researcher,
        campaigner,
        base,
        _dir: dir,
    }
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Follows `next_cursor` from the first page; the sequences seen, in order, and the pages.
fn all_pages(client: &Client, query: &str) -> (Vec<u64>, usize) {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/query/results?{query}&cursor={c}"),
            None => format!("/api/v1/query/results?{query}"),
        };
        let reply = client.get(&path).unwrap();
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        let body = json(&reply.body);
        pages += 1;
        for r in body["results"].as_array().unwrap() {
            seen.push(r["key"]["sequence"].as_u64().unwrap());
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return (seen, pages),
        }
        assert!(pages < 1000, "pagination does not end");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn http_filters_pages_errors_and_access() {
    const N: u64 = 60;
    let served = serve(N).await;
    let anonymous = Client::new(&served.base).unwrap();
    let client = anonymous
        .clone()
        .with_token(Some(served.researcher.clone()));
    let campaigner = anonymous
        .clone()
        .with_token(Some(served.campaigner.clone()));
    let store = served.store.clone();
    tokio::task::spawn_blocking(move || {
        // Access: raw data is not public here; the description is.
        let reply = anonymous.get("/api/v1/query/results").unwrap();
        assert_eq!(reply.status, 401, "{}", reply.body);
        assert_eq!(
            anonymous
                .get("/api/v1/query/aggregates?group_by=day")
                .unwrap()
                .status,
            401
        );
        assert_eq!(campaigner.get("/api/v1/query/results").unwrap().status, 403);
        let spec = anonymous.get("/api/v1/openapi.json").unwrap();
        assert_eq!(spec.status, 200);
        assert!(
            json(&spec.body)["paths"]
                .get("/api/v1/query/results")
                .is_some()
        );

        // Every filter narrows to exactly the results it names.
        let all: Vec<StoredResult> = (0..N).map(result).collect();
        let t0 = 1_700_000_000_000_000i64;
        let cases: Vec<(String, Keep)> = vec![
            ("type=ping".into(), Box::new(|_| true)),
            ("type=dns".into(), Box::new(|_| false)),
            (
                format!("probe={}", PROBES[1]),
                Box::new(|r| r.result.key.probe_id.as_str() == PROBES[1]),
            ),
            (
                format!("task={CAMPAIGN_TASK}"),
                Box::new(|r| r.result.key.sequence % 5 == 0),
            ),
            (
                format!("campaign={CAMPAIGN}"),
                Box::new(|r| r.result.key.sequence % 5 == 0),
            ),
            (
                "probe_asn=AS1136".into(),
                Box::new(|r| r.result.key.sequence % 3 == 1),
            ),
            (
                "probe_country=DE".into(),
                Box::new(|r| r.result.key.sequence % 3 != 1),
            ),
            (
                "target_asn=64497".into(),
                Box::new(|r| r.result.key.sequence % 4 == 1),
            ),
            (
                "target_country=nl".into(),
                Box::new(|r| r.result.key.sequence % 4 >= 2),
            ),
            (
                "target=2001:db8::/33".into(),
                Box::new(|r| r.result.key.sequence % 4 < 2),
            ),
            (
                "target=2001:db8:2::1".into(),
                Box::new(|r| r.result.key.sequence % 4 == 1),
            ),
            (
                format!("from={}&to={}", t0 + 10_000_000, t0 + 20_000_000),
                Box::new(|r| (10..20).contains(&r.result.key.sequence)),
            ),
            (
                "from=2023-11-14T22:13:30Z&probe_country=NL&target_asn=3333".into(),
                Box::new(|r| {
                    r.result.started_at.0 >= 1_700_000_010_000_000
                        && r.result.key.sequence % 3 == 1
                        && r.result.key.sequence % 4 >= 2
                }),
            ),
        ];
        for (query, keep) in &cases {
            let expected: Vec<u64> = all
                .iter()
                .filter(|r| keep(r))
                .map(|r| r.result.key.sequence)
                .collect();
            let (seen, _) = all_pages(&client, &format!("{query}&limit=7"));
            assert_eq!(seen, expected, "filter {query}");
        }

        // Results as stored, with their enrichment and a cursor for the next page.
        let reply = client.get("/api/v1/query/results?limit=2").unwrap();
        let body = json(&reply.body);
        let first: StoredResult = serde_json::from_value(body["results"][0].clone()).unwrap();
        assert_eq!(first, all[0]);
        assert!(body["next_cursor"].is_string(), "{body}");

        // Pages while results arrive: later results show up on later pages, each once.
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut added = N;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/query/results?limit=9&cursor={c}"),
                None => "/api/v1/query/results?limit=9".to_owned(),
            };
            let body = json(&client.get(&path).unwrap().body);
            seen.extend(
                body["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["key"]["sequence"].as_u64().unwrap()),
            );
            if added < N + 20 {
                store
                    .insert_results(&(added..added + 5).map(result).collect::<Vec<_>>())
                    .unwrap();
                added += 5;
            }
            match body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, (0..N + 20).collect::<Vec<_>>());

        // Bad parameters: 400 naming the parameter.
        for (query, parameter) in [
            ("limit=0", "limit"),
            ("limit=10001", "limit"),
            ("limit=many", "limit"),
            ("cursor=junk", "cursor"),
            ("probe=xyz", "probe"),
            ("probe_asn=ASx", "probe_asn"),
            ("target=2001:db8::/200", "target"),
            ("type=pingg", "type"),
            ("from=yesterday", "from"),
            ("from=2026-02-01&to=2026-01-01", "from"),
            ("probes=00000000000000aa", "probes"),
            ("type=ping&type=dns", "type"),
        ] {
            let reply = client
                .get(&format!("/api/v1/query/results?{query}"))
                .unwrap();
            assert_eq!(reply.status, 400, "{query}: {}", reply.body);
            let body = json(&reply.body);
            assert_eq!(body["parameter"], parameter, "{query}: {body}");
            assert!(
                body["error"].as_str().unwrap().contains(parameter),
                "{body}"
            );
        }
        for (query, parameter) in [
            ("", "group_by"),
            ("group_by=city", "group_by"),
            ("group_by=day&side=middle", "side"),
            ("group_by=day&limit=5", "limit"),
        ] {
            let reply = client
                .get(&format!("/api/v1/query/aggregates?{query}"))
                .unwrap();
            assert_eq!(reply.status, 400, "{query}: {}", reply.body);
            assert_eq!(json(&reply.body)["parameter"], parameter, "{}", reply.body);
        }

        // Aggregates: every selected result is counted once, in its group.
        let reply = client
            .get(&format!(
                "/api/v1/query/aggregates?group_by=asn&campaign={CAMPAIGN}"
            ))
            .unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        let body = json(&reply.body);
        let rows = body["rows"].as_array().unwrap();
        let campaign_total = (0..N + 20).filter(|i| i % 5 == 0).count() as u64;
        assert_eq!(body["results"], campaign_total);
        assert_eq!(
            rows.iter()
                .map(|r| r["count"].as_u64().unwrap())
                .sum::<u64>(),
            campaign_total
        );
        assert_eq!(body["truncated"], false);
        let nl = rows.iter().find(|r| r["asn"] == 1136).unwrap();
        let expected_nl: Vec<u64> = (0..N + 20).filter(|i| i % 5 == 0 && i % 3 == 1).collect();
        assert_eq!(nl["count"], expected_nl.len() as u64);
        let answered = expected_nl.iter().filter(|i| *i % 6 != 0).count() as u64;
        assert_eq!(nl["success"], answered, "{nl}");

        // The DNS scorecard: served beside the aggregates with the same filter parameters;
        // these results are pings, so it scores nothing.
        let reply = client.get("/api/v1/query/dns-scorecard").unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        let body = json(&reply.body);
        assert_eq!(body["results"], 0, "{body}");
        assert_eq!(body["rows"], serde_json::json!([]), "{body}");
        assert_eq!(body["truncated"], false, "{body}");
        let reply = client
            .get("/api/v1/query/dns-scorecard?probe_asn=not-a-number")
            .unwrap();
        assert_eq!(reply.status, 400, "{}", reply.body);
        assert_eq!(
            json(&reply.body)["parameter"],
            "probe_asn",
            "{}",
            reply.body
        );
        // It sums whole days (at most 90) from its own tallies: other filters are refused.
        for (query, parameter) in [("days=91", "days"), ("days=7&task=1", "task")] {
            let reply = client
                .get(&format!("/api/v1/query/dns-scorecard?{query}"))
                .unwrap();
            assert_eq!(reply.status, 400, "{}", reply.body);
            assert_eq!(json(&reply.body)["parameter"], parameter, "{}", reply.body);
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_streams_filtered_results_and_stops_when_the_client_leaves() {
    const N: u64 = 3000;
    let served = serve(N).await;
    let service = QueryGrpc::new(served.store.clone(), false);
    let stats = service.stats();
    let listener = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(QueryServiceServer::new(service))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    // Small HTTP/2 windows, so a stream nobody reads cannot take the whole store into the
    // transport's buffers: its scan then holds, however fast the store reads.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .initial_stream_window_size(16 * 1024)
        .initial_connection_window_size(64 * 1024)
        .connect()
        .await
        .unwrap();
    let mut client = QueryServiceClient::new(channel);
    let with_token = |query: v1::ResultQuery, token: &str| {
        let mut request = tonic::Request::new(query);
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    };

    // Without a token, or with a campaigner's: refused.
    let err = client
        .stream_results(v1::ResultQuery::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = client
        .stream_results(with_token(v1::ResultQuery::default(), &served.campaigner))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // A bad field is named.
    let bad = v1::ResultQuery {
        filter: Some(v1::ResultFilter {
            probe_country: "Germany".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = client
        .stream_results(with_token(bad, &served.researcher))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("probe_country"), "{}", err.message());

    // A filtered stream: every matching result, in order, decoded as stored.
    let query = v1::ResultQuery {
        filter: Some(v1::ResultFilter {
            probe: PROBES[2].into(),
            target_asn: Some(3333),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut stream = client
        .stream_results(with_token(query.clone(), &served.researcher))
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    let mut last_cursor = String::new();
    let mut with_blame = 0;
    while let Some(item) = stream.message().await.unwrap() {
        let decoded = sixmap_proto::decode::query_result(&item).unwrap();
        let expected = result(decoded.result.key.sequence);
        assert_eq!(decoded.result, expected.result);
        assert_eq!(decoded.probe_origin, expected.probe_origin);
        assert_eq!(decoded.target_origin, expected.target_origin);
        // The attribution the HTTP API shows travels on gRPC too.
        assert_eq!(decoded.blame, expected.blame);
        if decoded.blame.is_some() {
            with_blame += 1;
        }
        got.push(decoded.result.key.sequence);
        last_cursor = decoded.cursor;
    }
    let expected: Vec<u64> = (0..N).filter(|i| i % 3 == 2 && i % 4 >= 2).collect();
    assert_eq!(got, expected);
    assert_eq!(with_blame, expected.iter().filter(|i| *i % 2 == 0).count());
    assert!(with_blame > 0 && with_blame < got.len());
    // Resuming after the last result finds nothing more; a limit stops early.
    let resumed = v1::ResultQuery {
        cursor: last_cursor,
        ..query.clone()
    };
    let mut stream = client
        .stream_results(with_token(resumed, &served.researcher))
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_none());
    let limited = v1::ResultQuery { limit: 3, ..query };
    let mut stream = client
        .stream_results(with_token(limited, &served.researcher))
        .await
        .unwrap()
        .into_inner();
    let mut n = 0;
    while stream.message().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 3);

    // A client that reads 5 of 3000 results and goes away: the scan stops soon after.
    let before = stats.results_streamed.load(Ordering::Relaxed);
    let mut stream = client
        .stream_results(with_token(v1::ResultQuery::default(), &served.researcher))
        .await
        .unwrap()
        .into_inner();
    for _ in 0..5 {
        stream.message().await.unwrap().unwrap();
    }
    drop(stream);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while stats.active_streams.load(Ordering::Relaxed) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the scan goes on after its client left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let streamed = stats.results_streamed.load(Ordering::Relaxed) - before;
    // What may be read past the client: the 32-slot channel plus what HTTP/2's 64 KiB flow
    // window and the transport buffers hold (a few hundred small results, more or less
    // depending on when the reset arrives); a scan that ignored the client would read all.
    assert!(
        streamed < N / 3,
        "{streamed} results read for a client that took 5 (buffer 32, HTTP/2 window)"
    );

    // Streams that are not read hold their scans; past the cap new ones are refused.
    let mut held = Vec::new();
    for _ in 0..sixmap_collector::query::grpc::MAX_STREAMS {
        held.push(
            client
                .stream_results(with_token(v1::ResultQuery::default(), &served.researcher))
                .await
                .unwrap()
                .into_inner(),
        );
    }
    let err = client
        .stream_results(with_token(v1::ResultQuery::default(), &served.researcher))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    drop(held);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while stats.active_streams.load(Ordering::Relaxed) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "held scans did not end"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Aggregates over gRPC: the same groups as over HTTP.
    let mut request = tonic::Request::new(v1::AggregateQuery {
        filter: None,
        group_by: "country".into(),
        side: "target".into(),
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", served.researcher).parse().unwrap(),
    );
    let reply = client.aggregate(request).await.unwrap().into_inner();
    let rows: Vec<(Option<String>, u64)> = reply
        .rows
        .iter()
        .map(|r| (r.country.clone(), r.count))
        .collect();
    let per = |m: u64| (0..N).filter(|i| i % 4 == m).count() as u64;
    assert_eq!(
        rows,
        vec![
            (Some("FR".into()), per(1)),
            (Some("NL".into()), per(2) + per(3)),
            (Some("US".into()), per(0)),
        ]
    );
    assert!(!reply.truncated);
    let mut bad = tonic::Request::new(v1::AggregateQuery {
        group_by: "planet".into(),
        ..Default::default()
    });
    bad.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", served.researcher).parse().unwrap(),
    );
    let err = client.aggregate(bad).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("group_by"), "{}", err.message());
}

/// The collector as started by `sixmap-collector run`: the query routes, the description
/// and the gRPC service are wired in, behind the same tokens.
#[tokio::test(flavor = "multi_thread")]
async fn a_running_collector_serves_the_query_service() {
    use sixmap_collector::config::CollectorConfig;
    use sixmap_probe::collector_tls;
    use sixmap_shared::config::parse_toml;

    let dir = tempfile::tempdir().unwrap();
    let (researcher, fingerprint) = {
        let store = SledStore::open(dir.path()).unwrap();
        store
            .insert_results(&(1..=25).map(result).collect::<Vec<_>>())
            .unwrap();
        let (token, _) =
            auth::create_api_token(&store, Role::Researcher, "lab", UnixMicros::now()).unwrap();
        let pki = Pki::load_or_create(dir.path()).unwrap();
        (token, pki.fingerprint().to_owned())
    };
    let text = format!(
        "data_dir = {:?}\ngrpc_listen = \"[::1]:0\"\nhttp_listen = \"[::1]:0\"\n",
        dir.path()
    );
    let settings = parse_toml::<CollectorConfig>(&text)
        .unwrap()
        .validate(None)
        .unwrap();
    let running = sixmap_collector::start(settings).await.unwrap();

    let anonymous = Client::new(&format!("http://{}", running.http_addr)).unwrap();
    let client = anonymous.clone().with_token(Some(researcher.clone()));
    tokio::task::spawn_blocking(move || {
        assert_eq!(anonymous.get("/api/v1/openapi.json").unwrap().status, 200);
        assert_eq!(anonymous.get("/api/v1/query/results").unwrap().status, 401);
        let reply = client.get("/api/v1/query/results?limit=10").unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(json(&reply.body)["results"].as_array().unwrap().len(), 10);
        let reply = client.get("/api/v1/query/aggregates?group_by=day").unwrap();
        assert_eq!(json(&reply.body)["results"], 25, "{}", reply.body);
    })
    .await
    .unwrap();

    let url = format!("https://{}", running.grpc_addr);
    let pinned = collector_tls::enrollment_config(&fingerprint).unwrap();
    let mut query =
        QueryServiceClient::new(collector_tls::channel(&url, pinned, |e| e).await.unwrap());
    let err = query
        .stream_results(v1::ResultQuery::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err}");
    let mut request = tonic::Request::new(v1::ResultQuery::default());
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {researcher}").parse().unwrap(),
    );
    let mut stream = query.stream_results(request).await.unwrap().into_inner();
    let mut n = 0;
    while stream.message().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 25);
}
