//! Published campaign reports, tried as a hostile caller would: only the owner or an admin
//! publishes (audited), the public URL of an unpublished campaign is the same 404 as of one
//! that does not exist, and a published report is served without a token as HTML, JSON,
//! CSV and PDF (printed by headless Chromium where installed; CI installs it), under the
//! long-response budget like other public routes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use sixmap_collector::auth;
use sixmap_collector::client::Client;
use sixmap_collector::config::CollectorConfig;
use sixmap_collector::store::{ProbeRecord, Role};
use sixmap_collector::testing::clickhouse::test_store;
use sixmap_shared::UnixMicros;
use sixmap_shared::config::parse_toml;
use sixmap_shared::prefixes::Enrichment;
use std::path::Path;
use std::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";
const NAME: &str = "Portails publics 2026";

fn probe(n: u8) -> ProbeRecord {
    ProbeRecord {
        last_seen: Some(UnixMicros::now()),
        origin: Some(Enrichment {
            asn: Some(64500),
            as_name: Some("Example Net".into()),
            country: "FR".parse().ok(),
        }),
        ..ProbeRecord::new(
            format!("{n:016x}").parse().unwrap(),
            format!("p{n}"),
            UnixMicros::now(),
        )
    }
}

/// The text of a PDF, by poppler's `pdftotext`.
fn pdf_text(pdf: &[u8]) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.pdf");
    std::fs::write(&file, pdf).unwrap();
    let out = Command::new("pdftotext")
        .arg(&file)
        .arg("-")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn only_owners_publish_and_unpublished_reports_are_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let (store_lines, _clickhouse, store) = test_store(dir.path());
    let now = UnixMicros::now();
    let regulator = auth::create_api_token(&*store, Role::Campaigner, "regulator", now)
        .unwrap()
        .0;
    let other = auth::create_api_token(&*store, Role::Campaigner, "other", now)
        .unwrap()
        .0;
    let admin = auth::create_api_token(&*store, Role::Admin, "ops", now)
        .unwrap()
        .0;
    store.create_probe(&probe(1)).unwrap();
    drop(store);
    // One long response per source: a second report at once from the same client waits.
    let text = format!(
        "data_dir = {:?}\ngrpc_listen = \"[::1]:0\"\nhttp_listen = \"[::1]:0\"\n{store_lines}\n\
         [publication]\nmin_probes = 1\npublisher = \"Autorité des Exemples\"\n\
         [limits]\nmax_streams_per_source = 1\nsource_exempt = []\n",
        dir.path()
    );
    let settings = parse_toml::<CollectorConfig>(&text)
        .unwrap()
        .validate(None)
        .unwrap();
    let running = sixmap_collector::start(settings).await.unwrap();
    let base = format!("http://{}", running.http_addr);
    let anonymous = Client::new(&base).unwrap();
    let regulator_token = regulator.clone();
    let owner = anonymous.clone().with_token(Some(regulator));
    let intruder = anonymous.clone().with_token(Some(other));
    let ops = anonymous.clone().with_token(Some(admin));
    tokio::task::spawn_blocking(move || {
        let json = |body: &str| serde_json::from_str::<serde_json::Value>(body).unwrap();
        let spec = serde_json::json!({
            "spec": {
                "name": NAME,
                "targets": ["2001:500:2f::f"],
                "measurements": [{"kind": "ping", "timeout_ms": 5000}],
            },
        });
        let reply = owner
            .post("/api/v1/campaigns", "application/json", &spec.to_string())
            .unwrap();
        assert_eq!(reply.status, 201, "{}", reply.body);
        let id = json(&reply.body)["id"].as_u64().unwrap();
        let second = owner
            .post("/api/v1/campaigns", "application/json", &spec.to_string())
            .unwrap();
        let unpublished = json(&second.body)["id"].as_u64().unwrap();

        // Before publication: the public URLs are the same 404 as a campaign that never was.
        let missing = anonymous.get("/reports/999999").unwrap();
        assert_eq!(missing.status, 404);
        for path in [
            format!("/reports/{id}"),
            format!("/reports/{id}.json"),
            format!("/reports/{id}.pdf"),
        ] {
            let reply = anonymous.get(&path).unwrap();
            assert_eq!((reply.status, &reply.body), (404, &missing.body), "{path}");
        }
        // Publishing: not anonymously, not by another owner; audited either way.
        let publish = format!("/api/v1/campaigns/{id}/publish");
        assert_eq!(
            anonymous
                .post(&publish, "application/json", "")
                .unwrap()
                .status,
            401
        );
        let refused = intruder.post(&publish, "application/json", "").unwrap();
        assert_eq!(refused.status, 403, "{}", refused.body);
        assert_eq!(
            anonymous.get(&format!("/reports/{id}")).unwrap().status,
            404
        );
        let done = owner.post(&publish, "application/json", "").unwrap();
        assert_eq!(done.status, 200, "{}", done.body);
        assert_eq!(json(&done.body)["url"], format!("/reports/{id}"));
        let first_date = json(&done.body)["published_at"].clone();
        assert!(first_date.is_i64(), "{}", done.body);
        // An admin may publish too; again keeps the first date.
        let list = json(&owner.get("/api/v1/campaigns").unwrap().body);
        let published: Vec<(u64, bool)> = list["campaigns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["id"].as_u64().unwrap(), c["published_at"].is_i64()))
            .collect();
        assert_eq!(published, [(id, true), (unpublished, false)], "{list}");
        let again = ops.post(&publish, "application/json", "").unwrap();
        assert_eq!(json(&again.body)["published_at"], first_date);
        let audit = ops.get("/api/v1/audit").unwrap();
        assert_eq!(audit.status, 200, "{}", audit.body);
        let entries: Vec<(String, String)> = json(&audit.body)["entries"]
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .filter(|e| e["target"].as_str().unwrap_or("").ends_with("/publish"))
            .map(|e| {
                (
                    e["identity"].as_str().unwrap().to_owned(),
                    e["outcome"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert!(
            entries
                .iter()
                .any(|(who, outcome)| who.contains("other") && outcome == "denied (403)")
                && entries
                    .iter()
                    .any(|(who, outcome)| who.contains("regulator") && outcome == "ok (200)"),
            "{entries:?} in {}",
            audit.body
        );

        // After: public without a token, in every format; the other campaign stays hidden.
        // The public cache may keep the 404 of a moment ago for its freshness period.
        std::thread::sleep(
            sixmap_collector::public_cache::FRESH_FOR + std::time::Duration::from_millis(100),
        );
        let html = anonymous.get(&format!("/reports/{id}")).unwrap();
        assert_eq!(html.status, 200, "{}", html.body);
        assert!(html.body.contains(NAME) && html.body.contains("Autorité des Exemples"));
        assert!(html.body.contains("<dt>Published</dt>"), "{}", html.body);
        // In the reader's language: Arabic, right to left; an unknown language is a 400.
        let arabic = anonymous.get(&format!("/reports/{id}?lang=ar")).unwrap();
        assert_eq!(arabic.status, 200, "{}", arabic.body);
        assert!(
            arabic.body.contains("<html lang=\"ar\" dir=\"rtl\">")
                && arabic.body.contains("<dt>تاريخ النشر</dt>")
                && arabic.body.contains(NAME),
            "{}",
            arabic.body
        );
        let unknown = anonymous.get(&format!("/reports/{id}?lang=xx")).unwrap();
        assert_eq!(unknown.status, 400, "{}", unknown.body);
        let report = anonymous.get(&format!("/reports/{id}.json")).unwrap();
        assert_eq!(json(&report.body)["campaign"]["published_at"], first_date);
        let csv = anonymous.get(&format!("/reports/{id}.csv")).unwrap();
        assert!(csv.body.starts_with("section,target,"), "{}", csv.body);
        for path in [
            format!("/reports/{unpublished}"),
            format!("/reports/0{id}"),
            format!("/reports/+{id}"),
            format!("/reports/{id}.exe"),
            format!("/reports/{id}.json.pdf"),
        ] {
            let reply = anonymous.get(&path).unwrap();
            assert_eq!((reply.status, &reply.body), (404, &missing.body), "{path}");
        }

        let pdf = anonymous.get(&format!("/reports/{id}.pdf")).unwrap();
        if !Path::new(CHROMIUM).exists() {
            assert!(
                std::env::var("CI").is_err(),
                "CI must make PDFs: install chromium"
            );
            assert_eq!(pdf.status, 503, "{}", pdf.body);
            assert!(pdf.body.contains("chromium"), "{}", pdf.body);
            eprintln!("PDF checks skipped: needs {CHROMIUM}");
            return;
        }
        assert_eq!(pdf.status, 200, "{}", pdf.body);
        assert!(
            pdf.bytes.starts_with(b"%PDF-"),
            "{:?}",
            &pdf.bytes[..16.min(pdf.bytes.len())]
        );
        match pdf_text(&pdf.bytes) {
            Some(text) => {
                assert!(text.contains(NAME), "{text}");
                assert!(text.contains("Period measured"), "{text}");
            }
            None => assert!(
                std::env::var("CI").is_err(),
                "CI must check the PDF's text: install poppler-utils"
            ),
        }
        // The Arabic PDF, kept for the eye (its path is printed).
        let pdf = anonymous
            .get(&format!("/reports/{id}.pdf?lang=ar"))
            .unwrap();
        assert!(pdf.bytes.starts_with(b"%PDF-"), "{}", pdf.body);
        let kept = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-ar.pdf");
        std::fs::write(&kept, &pdf.bytes).unwrap();
        eprintln!("Arabic report: {}", kept.display());
        if let Some(text) = pdf_text(&pdf.bytes) {
            assert!(text.contains(NAME) && text.contains("sixmap"), "{text}");
        }
        // The token route prints the same.
        let pdf = owner
            .get(&format!(
                "/api/v1/campaigns/{unpublished}/report?format=pdf"
            ))
            .unwrap();
        assert!(pdf.bytes.starts_with(b"%PDF-"), "{}", pdf.body);
        // So does the CLI, which publishes too.
        let out = tempfile::tempdir().unwrap();
        let file = out.path().join("report.pdf");
        let cli = |args: &[&str]| {
            let run = Command::new(env!("CARGO_BIN_EXE_sixmap-collector"))
                .arg("campaign")
                .args(args)
                .args(["--collector", &base, "--token", &regulator_token])
                .output()
                .unwrap();
            assert!(
                run.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&run.stderr)
            );
            String::from_utf8_lossy(&run.stderr).into_owned()
        };
        let id_text = unpublished.to_string();
        cli(&[
            "report",
            &id_text,
            "--format",
            "pdf",
            "--output",
            file.to_str().unwrap(),
        ]);
        assert!(std::fs::read(&file).unwrap().starts_with(b"%PDF-"));
        let said = cli(&["publish", &id_text]);
        assert!(
            said.contains(&format!("{base}/reports/{unpublished}")),
            "{said}"
        );
        let listed = Command::new(env!("CARGO_BIN_EXE_sixmap-collector"))
            .args([
                "campaign",
                "list",
                "--collector",
                &base,
                "--token",
                &regulator_token,
            ])
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
        assert!(
            listed.contains(&format!("{unpublished}\tactive, published\t")),
            "{listed}"
        );

        // A PDF is a long response: a second one at once from the same source waits its turn
        // (the limit set above), as exports and other reports do.
        let first = {
            let owner = owner.clone();
            std::thread::spawn(move || {
                owner.get(&format!("/api/v1/campaigns/{id}/report?format=pdf"))
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(300));
        let busy = anonymous.get(&format!("/reports/{id}.csv")).unwrap();
        assert_eq!(busy.status, 503, "{}", busy.body);
        assert!(busy.body.contains("long responses"), "{}", busy.body);
        assert_eq!(first.join().unwrap().unwrap().status, 200);
    })
    .await
    .unwrap();
}
