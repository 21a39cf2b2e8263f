//! The campaign HTTP API as the CLI's client sees it: status codes and errors naming the field.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use sixmap_collector::auth;
use sixmap_collector::client::Client;
use sixmap_collector::config::CollectorConfig;
use sixmap_collector::store::Role;
use sixmap_collector::testing::clickhouse::test_store;
use sixmap_shared::UnixMicros;
use sixmap_shared::config::parse_toml;

#[tokio::test(flavor = "multi_thread")]
async fn http_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    // A campaigner's API token, made before the collector opens the store.
    let (store_lines, _clickhouse, store) = test_store(dir.path());
    let token = {
        auth::create_api_token(&*store, Role::Campaigner, "regulator", UnixMicros::now())
            .unwrap()
            .0
    };
    drop(store);
    let text = format!(
        "data_dir = {:?}\ngrpc_listen = \"[::1]:0\"\nhttp_listen = \"[::1]:0\"\n{store_lines}",
        dir.path()
    );
    let settings = parse_toml::<CollectorConfig>(&text)
        .unwrap()
        .validate(None)
        .unwrap();
    let running = sixmap_collector::start(settings).await.unwrap();
    let anonymous = Client::new(&format!("http://{}", running.http_addr)).unwrap();
    let client = anonymous.clone().with_token(Some(token));
    tokio::task::spawn_blocking(move || {
        let json = |body: &str| serde_json::from_str::<serde_json::Value>(body).unwrap();
        // Campaign writes need a campaigner's token.
        let reply = anonymous
            .post("/api/v1/campaigns", "application/json", "{}")
            .unwrap();
        assert_eq!(reply.status, 401, "{}", reply.body);
        // A spec as a JSON object; no probe is enrolled, so the selection is empty.
        let spec = serde_json::json!({
            "owner": "regulator",
            "spec": {
                "name": "x",
                "targets": ["2001:500:2f::f"],
                "measurements": [{"kind": "ping", "timeout_ms": 5000}],
            },
        });
        let reply = client
            .post("/api/v1/campaigns", "application/json", &spec.to_string())
            .unwrap();
        assert_eq!(reply.status, 400, "{}", reply.body);
        assert_eq!(json(&reply.body)["field"], "selection", "{}", reply.body);
        // Outside lab mode a private target is refused, before any probe is looked at.
        let private = spec.to_string().replace("2001:500:2f::f", "192.168.1.1");
        let reply = client
            .post("/api/v1/campaigns", "application/json", &private)
            .unwrap();
        assert_eq!(reply.status, 400);
        let body = json(&reply.body);
        assert_eq!(body["field"], "targets[0]");
        assert!(body["error"].as_str().unwrap().contains("lab_mode"), "{body}");
        // TOML text, with a typo'd key.
        let toml = serde_json::json!({"owner": "r", "format": "toml", "spec": "name = \"x\"\ntargetz = []\n"});
        let reply = client
            .post("/api/v1/campaigns", "application/json", &toml.to_string())
            .unwrap();
        assert_eq!(reply.status, 400);
        assert!(reply.body.contains("targetz"), "{}", reply.body);
        let reply = client
            .post("/api/v1/campaigns", "application/json", "{\"spec\": 1}")
            .unwrap();
        assert_eq!(reply.status, 400, "{}", reply.body);
        // A plan answers as a create would, and needs the same token.
        let reply = client
            .post("/api/v1/campaigns/plan", "application/json", &spec.to_string())
            .unwrap();
        assert_eq!(reply.status, 400, "{}", reply.body);
        assert_eq!(json(&reply.body)["field"], "selection", "{}", reply.body);
        let reply = anonymous
            .post("/api/v1/campaigns/plan", "application/json", &spec.to_string())
            .unwrap();
        assert_eq!(reply.status, 401, "{}", reply.body);
        assert_eq!(client.get("/api/v1/campaigns/42").unwrap().status, 404);
        assert_eq!(
            client.get("/api/v1/campaigns/42/report?format=docx").unwrap().status,
            400
        );
        // PDF is a format; the campaign is what is missing.
        assert_eq!(
            client.get("/api/v1/campaigns/42/report?format=pdf").unwrap().status,
            404
        );
        let list = client.get("/api/v1/campaigns").unwrap();
        assert_eq!((list.status, json(&list.body)["campaigns"].as_array().unwrap().len()), (200, 0));
    })
    .await
    .unwrap();
}
