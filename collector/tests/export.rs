//! Exports read by independent tools: RIPE NCC's ripe-atlas-sagan parses the Atlas export,
//! pyarrow and DuckDB read the Parquet export, Python's csv module reads the CSV; the HTTP
//! endpoint streams what the CLI writes from the store; daily dumps cover each ended day
//! once. The Python packages come from PyPI (`.ci/run` installs them): a missing one fails
//! the test when CI=true and skips it otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use serde_json::Value;
use sixmap_collector::auth;
use sixmap_collector::config::CollectorConfig;
use sixmap_collector::export::sign::OpenDataKey;
use sixmap_collector::export::{self, ExportStats, Format, atlas, remote, samples};
use sixmap_collector::store::{ResultFilter, Role, SledStore, Store, StoredResult};
use sixmap_shared::UnixMicros;
use sixmap_shared::config::parse_toml;
use sixmap_shared::measurement::Outcome;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// 2026-03-01T00:00:00Z.
const DAY0: i64 = 1_772_323_200_000_000;
const DAY_US: i64 = 86_400_000_000;

/// Whether `module` imports; when not, fails under CI=true and skips otherwise.
fn python_has(module: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let message = format!(
            "python3 cannot import {module}: python3 -m pip install ripe-atlas-sagan pyarrow duckdb"
        );
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{message}");
        }
        eprintln!("skipping: {message}");
    }
    ok
}

fn python(script: &str, arg: &Path) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let out = Command::new("python3")
        .arg(&script)
        .arg(arg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Fills `store` with `n` samples, `step_us` apart from DAY0.
fn fill(store: &SledStore, n: u64, step_us: i64) -> Vec<StoredResult> {
    let results: Vec<StoredResult> = (0..n)
        .map(|i| samples::sample(i, 7, UnixMicros(DAY0), step_us))
        .collect();
    for chunk in results.chunks(5000) {
        store.insert_results(chunk).unwrap();
    }
    store.flush().unwrap();
    results
}

fn export_file(store: &dyn Store, format: Format, dir: &Path) -> (PathBuf, ExportStats) {
    let path = dir.join(format!("export.{}", format.extension()));
    let file = std::fs::File::create(&path).unwrap();
    let stats = export::export(store, &ResultFilter::default(), format, file, &mut |_| {}).unwrap();
    (path, stats)
}

fn ms(ns: u64) -> f64 {
    (ns as f64 / 1e3).round() / 1e3
}

#[test]
fn ripe_atlas_sagan_parses_the_atlas_export() {
    if !python_has("ripe.atlas.sagan") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("store")).unwrap();
    let results = fill(&store, 4 * samples::VARIANTS, 60_000_000);
    let (path, stats) = export_file(&store, Format::Atlas, dir.path());
    // tcp and failed have no Atlas form: one of each per cycle of variants.
    assert_eq!(
        stats,
        ExportStats {
            rows: 40,
            skipped: 8
        }
    );
    let summaries: HashMap<String, Value> = python("atlas_sagan.py", &path)
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            (v["key"].as_str().unwrap().to_owned(), v)
        })
        .collect();
    assert_eq!(summaries.len(), 40);
    let mut seen = HashMap::new();
    for stored in &results {
        let r = &stored.result;
        let Some(s) = summaries.get(&r.key.to_string()) else {
            assert!(matches!(r.outcome, Outcome::Tcp(_) | Outcome::Failed(_)));
            continue;
        };
        assert_eq!(s["is_malformed"], false, "{s}");
        assert_eq!(
            s["probe_id"],
            atlas::probe_number(r.key.probe_id.as_str()),
            "{s}"
        );
        assert_eq!(s["measurement_id"], r.task_id.get(), "{s}");
        assert_eq!(s["created"], r.started_at.0 / 1_000_000, "{s}");
        match &r.outcome {
            Outcome::Ping(p) => {
                *seen.entry("ping").or_insert(0) += 1;
                assert_eq!(s["is_error"], false, "{s}");
                assert_eq!(
                    (s["sent"].clone(), s["received"].clone()),
                    (p.sent.into(), p.received.into())
                );
                match p.min_rtt() {
                    Some(min) => {
                        let ours = ms(u64::try_from(min.as_nanos()).unwrap());
                        assert!((s["rtt_min"].as_f64().unwrap() - ours).abs() < 1e-9, "{s}");
                    }
                    None => assert_eq!(s["rtt_min"], Value::Null, "{s}"),
                }
            }
            Outcome::Traceroute(t) => {
                *seen.entry("traceroute").or_insert(0) += 1;
                assert_eq!(s["is_error"], false, "{s}");
                assert_eq!(s["total_hops"], t.hops.len(), "{s}");
                let path: Vec<Vec<Option<String>>> = t
                    .hops
                    .iter()
                    .map(|h| {
                        h.replies
                            .iter()
                            .map(|r| r.as_ref().map(|r| r.from.to_string()))
                            .collect()
                    })
                    .collect();
                assert_eq!(s["ip_path"], serde_json::to_value(&path).unwrap(), "{s}");
                assert_eq!(s["destination_ip_responded"], true, "{s}");
                // An unreachable destination shows as Atlas's port-unreachable error.
                let errors = s["last_hop_errors"].as_array().unwrap();
                assert_eq!(errors.is_empty(), t.reached_destination, "{s}");
            }
            Outcome::Dns(d) => {
                *seen.entry("dns").or_insert(0) += 1;
                match &d.response {
                    Some(response) => {
                        // sagan reports any rcode but NOERROR as an error of the answer.
                        assert_eq!(s["is_error"], false, "{s}");
                        assert_eq!(s["abuf_error"], response.rcode != 0, "{s}");
                        assert_eq!(s["abuf_malformed"], false, "{s}");
                        let rcode = match response.rcode {
                            0 => "NOERROR",
                            3 => "NXDOMAIN",
                            other => panic!("sample rcode {other}"),
                        };
                        assert_eq!(s["rcode"], rcode, "{s}");
                        let answers = s["answers"].as_array().unwrap();
                        assert_eq!(answers.len(), response.answers.len(), "{s}");
                        for (theirs, ours) in answers.iter().zip(&response.answers) {
                            assert_eq!(theirs["ttl"], ours.ttl, "{s}");
                            let data = theirs["data"].as_str().unwrap();
                            match (
                                data.parse::<std::net::IpAddr>(),
                                ours.data.parse::<std::net::IpAddr>(),
                            ) {
                                (Ok(theirs), Ok(ours)) => assert_eq!(theirs, ours, "{s}"),
                                _ => assert_eq!(
                                    data.trim_end_matches('.'),
                                    ours.data.trim_end_matches('.'),
                                    "{s}"
                                ),
                            }
                            assert_eq!(
                                theirs["name"].as_str().unwrap().trim_end_matches('.'),
                                ours.name.trim_end_matches('.'),
                                "{s}"
                            );
                        }
                        assert!((s["rt"].as_f64().unwrap() - ms(d.rtt_ns.unwrap())).abs() < 1e-9);
                    }
                    None => {
                        assert_eq!(s["is_error"], true, "{s}");
                        assert!(
                            s["error_message"].as_str().unwrap().starts_with("Timeout"),
                            "{s}"
                        );
                    }
                }
            }
            Outcome::Http(h) => {
                *seen.entry("http").or_insert(0) += 1;
                assert_eq!(s["is_error"], false, "{s}");
                match h.status {
                    Some(status) => {
                        assert_eq!(s["code"], status, "{s}");
                        assert_eq!(s["response_error"], false, "{s}");
                        assert_eq!(s["body_size"], h.body_bytes, "{s}");
                    }
                    None => {
                        assert_eq!(s["response_error"], true, "{s}");
                        assert_eq!(
                            s["response_error_message"],
                            h.failure.clone().unwrap().as_str()
                        );
                    }
                }
            }
            other => panic!("{other:?} has no Atlas form but was exported"),
        }
    }
    assert_eq!(
        seen,
        HashMap::from([("ping", 12), ("traceroute", 8), ("dns", 12), ("http", 8)])
    );
}

fn jsonl_rows(path: &Path) -> Vec<StoredResult> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn pyarrow_and_duckdb_read_the_parquet_export() {
    if !python_has("pyarrow") || !python_has("duckdb") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let n = 5_000;
    let store = SledStore::open(&dir.path().join("store")).unwrap();
    fill(&store, n, 1_000_000);
    // Small row groups (production: 65,536 rows), so the readers cross group boundaries.
    let parquet = dir.path().join("export.parquet");
    let writer = export::parquet::ParquetWriter::with_row_groups(
        std::fs::File::create(&parquet).unwrap(),
        2048,
    )
    .unwrap();
    let stats = export::export_with(
        &store,
        &ResultFilter::default(),
        Box::new(writer),
        &mut |_| {},
    )
    .unwrap();
    let (jsonl, _) = export_file(&store, Format::Jsonl, dir.path());
    assert_eq!(stats.rows, n);
    let ours = jsonl_rows(&jsonl);
    let read: Value = serde_json::from_str(&python("read_parquet.py", &parquet)).unwrap();
    assert_eq!(read["row_groups"], 3);
    assert_eq!(read["duckdb"], serde_json::json!([n, n, n]));
    let schema = &read["schema"];
    assert_eq!(schema["started_at"], "timestamp[us, tz=UTC]");
    assert_eq!(schema["probe_asn"], "int64");
    assert_eq!(schema["rtt_min_ms"], "double");
    assert_eq!(schema["reached_destination"], "bool");
    assert_eq!(schema["key"], "string");
    let rows = read["rows"].as_array().unwrap();
    assert_eq!(rows.len(), ours.len());
    for (row, stored) in rows.iter().zip(&ours) {
        let r = &stored.result;
        assert_eq!(row["key"], r.key.to_string());
        assert_eq!(row["started_at"], r.started_at.0);
        assert_eq!(row["started_at_us"], r.started_at.0);
        assert_eq!(row["type"], r.outcome.kind().map_or("failed", |k| k.name()));
        assert_eq!(
            row["probe_asn"],
            serde_json::to_value(stored.probe_origin.as_ref().and_then(|o| o.asn)).unwrap()
        );
        assert_eq!(
            row["target_country"],
            serde_json::to_value(
                stored
                    .target_origin
                    .as_ref()
                    .and_then(|o| o.country)
                    .map(|c| c.to_string())
            )
            .unwrap()
        );
        assert_eq!(row["reached_destination"], r.outcome.reached_destination());
        let outcome: sixmap_shared::measurement::Outcome =
            serde_json::from_str(row["outcome"].as_str().unwrap()).unwrap();
        assert_eq!(outcome, r.outcome);
        match &r.outcome {
            Outcome::Ping(p) => match p.min_rtt() {
                Some(min) => {
                    let ms = min.as_nanos() as f64 / 1e6;
                    assert!((row["rtt_min_ms"].as_f64().unwrap() - ms).abs() < 1e-9)
                }
                None => assert_eq!(row["rtt_min_ms"], Value::Null),
            },
            Outcome::Http(h) => {
                assert_eq!(row["http_status"], serde_json::to_value(h.status).unwrap())
            }
            Outcome::Dns(d) => assert_eq!(
                row["dns_answers"],
                serde_json::to_value(d.response.as_ref().map(|r| r.answers.len())).unwrap()
            ),
            Outcome::Failed(e) => assert_eq!(row["error_message"], e.message.as_str()),
            _ => {}
        }
    }
}

#[test]
fn python_csv_reads_the_same_rows_as_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("store")).unwrap();
    fill(&store, 3 * samples::VARIANTS, 60_000_000);
    let (csv, stats) = export_file(&store, Format::Csv, dir.path());
    let (jsonl, _) = export_file(&store, Format::Jsonl, dir.path());
    let ours = jsonl_rows(&jsonl);
    assert_eq!(stats.rows as usize, ours.len());
    let records: Vec<HashMap<String, String>> =
        serde_json::from_str(&python("read_csv.py", &csv)).unwrap();
    assert_eq!(records.len(), ours.len());
    let columns: Vec<&str> = export::row::COLUMNS.iter().map(|c| c.name).collect();
    for (record, stored) in records.iter().zip(&ours) {
        let r = &stored.result;
        let mut names: Vec<&str> = record.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut expected = columns.clone();
        expected.sort_unstable();
        assert_eq!(names, expected);
        assert_eq!(record["key"], r.key.to_string());
        assert_eq!(record["started_at_us"], r.started_at.0.to_string());
        assert_eq!(record["started_at"], export::row::rfc3339(r.started_at.0));
        assert_eq!(
            record["probe_country"],
            stored
                .probe_origin
                .as_ref()
                .and_then(|o| o.country)
                .map(|c| c.to_string())
                .unwrap_or_default()
        );
        assert_eq!(
            serde_json::from_str::<Outcome>(&record["outcome"]).unwrap(),
            r.outcome
        );
        if let Outcome::Failed(e) = &r.outcome {
            // Quotes and commas survive RFC 4180 quoting.
            assert_eq!(record["error_message"], e.message);
            assert_eq!(record["error_class"], "resolution");
        }
    }
}

fn collector_bin() -> &'static str {
    env!("CARGO_BIN_EXE_sixmap-collector")
}

#[tokio::test(flavor = "multi_thread")]
async fn http_export_streams_what_the_cli_writes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (results, token) = {
        let store = SledStore::open(&data).unwrap();
        let results = fill(&store, 5 * samples::VARIANTS, 3_600_000_000);
        let token = auth::create_api_token(&store, Role::Researcher, "lab", UnixMicros::now())
            .unwrap()
            .0;
        (results, token)
    };
    // The CLI from the store, collector stopped.
    let filter = ["--from", "2026-03-01T02:00:00Z", "--probe-country", "de"];
    for format in Format::ALL {
        let out = dir.path().join(format!("cli.{}", format.extension()));
        let status = Command::new(collector_bin())
            .args(["export", "--format", format.name(), "--data-dir"])
            .arg(&data)
            .arg("--output")
            .arg(&out)
            .args(filter)
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
        let stderr = String::from_utf8_lossy(&status.stderr);
        let selected = results
            .iter()
            .filter(|r| r.result.started_at.0 >= DAY0 + 2 * 3_600_000_000)
            .count();
        let (rows, skipped) = if format == Format::Atlas {
            let skipped = results
                .iter()
                .filter(|r| r.result.started_at.0 >= DAY0 + 2 * 3_600_000_000)
                .filter(|r| atlas::to_atlas(&r.result).is_none())
                .count();
            (selected - skipped, skipped)
        } else {
            (selected, 0)
        };
        assert!(
            stderr.contains(&format!(
                "exported {rows} rows (skipped {skipped} without an Atlas form) in"
            )),
            "{stderr}"
        );
    }
    let bad = Command::new(collector_bin())
        .args(["export", "--format", "jsonl", "--data-dir"])
        .arg(&data)
        .args(["--probe-asn", "ASx"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("probe_asn"));

    // Daily dumps on: the collector catches up the ended days at start.
    let text = format!(
        "data_dir = {:?}\ngrpc_listen = \"[::1]:0\"\nhttp_listen = \"[::1]:0\"\n\
         [dumps]\nenabled = true\nformats = [\"csv\"]\n",
        data
    );
    let settings = parse_toml::<CollectorConfig>(&text)
        .unwrap()
        .validate(None)
        .unwrap();
    let running = sixmap_collector::start(settings).await.unwrap();
    let url = format!("http://{}", running.http_addr);
    let first_dump = data.join("dumps/2026-03-01.csv");
    for _ in 0..300 {
        if first_dump.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let dumped = std::fs::read_to_string(&first_dump).expect("the collector wrote no dump");
    let day0 = results
        .iter()
        .filter(|r| r.result.started_at.0 < DAY0 + DAY_US)
        .count();
    assert_eq!(
        dumped.lines().count(),
        1 + day0,
        "header and one line per result"
    );
    let dir_path = dir.path().to_owned();
    tokio::task::spawn_blocking(move || {
        let query = |format: Format| {
            format!(
                "format={}&from={}&probe_country=DE",
                format.name(),
                remote::encode("2026-03-01T02:00:00Z")
            )
        };
        for format in Format::ALL {
            let mut body = Vec::new();
            let stats = remote::fetch(&url, Some(&token), &query(format), &mut body, &mut |_| {})
                .unwrap()
                .expect("the collector sends the counts as trailers");
            let cli = std::fs::read(dir_path.join(format!("cli.{}", format.extension()))).unwrap();
            assert_eq!(body, cli, "{format}: HTTP and CLI differ");
            assert!(stats.rows > 0);
        }
        // The CLI against the running collector writes the same file.
        let out = dir_path.join("remote.parquet");
        let run = Command::new(collector_bin())
            .args([
                "export", "--format", "parquet", "--url", &url, "--token", &token, "--output",
            ])
            .arg(&out)
            .args(filter)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(String::from_utf8_lossy(&run.stderr).contains("exported "));
        assert_eq!(
            std::fs::read(&out).unwrap(),
            std::fs::read(dir_path.join("cli.parquet")).unwrap()
        );
        // No token: raw data is not public.
        let err = remote::fetch(
            &url,
            None,
            &query(Format::Jsonl),
            &mut Vec::new(),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(
            matches!(err, remote::RemoteError::Status { status: 401, .. }),
            "{err}"
        );
        // Bad parameters: 400 naming the parameter.
        for (bad, name) in [
            ("format=xml", "format"),
            ("type=ping", "format"),
            ("format=csv&probee=1", "probee"),
            ("format=csv&probe_asn=ASx", "probe_asn"),
            ("format=csv&from=yesterday", "from"),
        ] {
            let err =
                remote::fetch(&url, Some(&token), bad, &mut Vec::new(), &mut |_| {}).unwrap_err();
            match err {
                remote::RemoteError::Status {
                    status, message, ..
                } => {
                    assert_eq!(status, 400, "{bad}: {message}");
                    assert!(message.contains(name), "{bad}: {message}");
                }
                other => panic!("{bad}: {other}"),
            }
        }
    })
    .await
    .unwrap();
    running.http.abort();
    running.grpc.abort();
}

#[test]
fn daily_dumps_cover_each_ended_day_once() {
    use sixmap_collector::export::dumps::{Dumps, IndexEntry, write_due};
    let dir = tempfile::tempdir().unwrap();
    let key = OpenDataKey::load_or_create_in(&dir.path().join("pki")).unwrap();
    // 3.5 days of results, one every 90 minutes.
    let step = 90 * 60 * 1_000_000;
    let store = SledStore::open(&dir.path().join("store")).unwrap();
    let results = fill(&store, 56, step);
    let dumps = Dumps {
        dir: dir.path().join("dumps"),
        formats: vec![Format::Jsonl, Format::Parquet],
        delay: std::time::Duration::from_secs(3600),
    };
    let per_day = |day: i64| {
        results
            .iter()
            .filter(|r| (r.result.started_at.0 - DAY0).div_euclid(DAY_US) == day)
            .count() as u64
    };
    // March 2 ended 30 minutes ago: within the grace period, so only March 1 is due.
    let now = UnixMicros(DAY0 + 2 * DAY_US + 30 * 60 * 1_000_000);
    let written = write_due(&store, &dumps, &key, now).unwrap();
    let names: Vec<&str> = written.iter().map(|e| e.file.as_str()).collect();
    assert_eq!(names, ["2026-03-01.jsonl", "2026-03-01.parquet"]);
    assert_eq!(written[0].rows, per_day(0));
    // An hour later March 2 is due too; March 1 is not written again.
    let now = UnixMicros(DAY0 + 2 * DAY_US + 90 * 60 * 1_000_000);
    let written = write_due(&store, &dumps, &key, now).unwrap();
    let names: Vec<&str> = written.iter().map(|e| e.file.as_str()).collect();
    assert_eq!(names, ["2026-03-02.jsonl", "2026-03-02.parquet"]);
    assert_eq!(written[1].rows, per_day(1));
    // Nothing new to do at the same time.
    assert!(write_due(&store, &dumps, &key, now).unwrap().is_empty());
    // A lost file is written again, alone; a later clock adds day 2.
    std::fs::remove_file(dumps.dir.join("2026-03-01.jsonl")).unwrap();
    let later = UnixMicros(DAY0 + 3 * DAY_US + 2 * 3_600_000_000);
    let written = write_due(&store, &dumps, &key, later).unwrap();
    let names: Vec<&str> = written.iter().map(|e| e.file.as_str()).collect();
    assert_eq!(
        names,
        ["2026-03-01.jsonl", "2026-03-03.jsonl", "2026-03-03.parquet"]
    );
    // The index lists every file once, with checksums that match the files and their .sha256.
    let index: Vec<IndexEntry> =
        serde_json::from_slice(&std::fs::read(dumps.dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index.len(), 6);
    for entry in &index {
        let bytes = std::fs::read(dumps.dir.join(&entry.file)).unwrap();
        assert_eq!(bytes.len() as u64, entry.bytes);
        let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, entry.sha256, "{}", entry.file);
        let line =
            std::fs::read_to_string(dumps.dir.join(format!("{}.sha256", entry.file))).unwrap();
        assert_eq!(line, format!("{hex}  {}\n", entry.file));
    }
    // A day's JSON Lines dump holds exactly that day's results.
    let day1 = jsonl_rows(&dumps.dir.join("2026-03-02.jsonl"));
    assert_eq!(day1.len() as u64, per_day(1));
    assert!(
        day1.iter()
            .all(|r| (r.result.started_at.0 - DAY0).div_euclid(DAY_US) == 1)
    );
    // No temporary files are left behind.
    for entry in std::fs::read_dir(&dumps.dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(!name.ends_with(".tmp"), "{name}");
    }
}

/// Copies the flat directory `from` to a fresh `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// The documented verification (docs/verify-dumps.sh: openssl 3 and sha256sum only) accepts
/// the signed chain of daily dumps as written, and refuses each kind of change: a file
/// edited, a signature from another key or damaged, a past day re-signed with the real key
/// (the next day's manifest still names the old one), a day removed. The dumps publish no
/// probe address beyond its /48.
#[test]
fn signed_dumps_verify_with_openssl_and_any_change_fails() {
    use sixmap_collector::export::dumps::{Dumps, write_due};
    let dir = tempfile::tempdir().unwrap();
    let key = OpenDataKey::load_or_create_in(&dir.path().join("pki")).unwrap();
    let other = OpenDataKey::load_or_create_in(&dir.path().join("other")).unwrap();
    let store = SledStore::open(&dir.path().join("store")).unwrap();
    let results = fill(&store, 56, 90 * 60 * 1_000_000);
    let dumps = Dumps {
        dir: dir.path().join("dumps"),
        formats: vec![Format::Jsonl, Format::Csv, Format::Atlas],
        delay: std::time::Duration::from_secs(3600),
    };
    // March 1 to 3 are due; March 4 is not over.
    write_due(&store, &dumps, &key, UnixMicros(DAY0 + 4 * DAY_US)).unwrap();
    let pem = dir.path().join("pki").join("open-data.pem");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/verify-dumps.sh");
    let verify = |dumps: &Path| {
        let out = Command::new("sh")
            .arg(&script)
            .arg(&pem)
            .arg(dumps)
            .output()
            .expect("sh, openssl 3 and sha256sum run the documented verification");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = verify(&dumps.dir);
    assert!(ok, "{text}");
    assert!(text.contains("OK: 3 days"), "{text}");
    // The chain: March 2 names March 1's manifest, March 1 names none.
    let march2 = std::fs::read_to_string(dumps.dir.join("2026-03-02.manifest")).unwrap();
    assert!(march2.ends_with("  2026-03-01.manifest\n"), "{march2}");
    // The header, three files and their sidecars, the previous day.
    assert_eq!(march2.lines().count(), 8, "{march2}");
    assert!(
        march2.starts_with("# sixmap open-data manifest 1\n"),
        "{march2}"
    );
    assert!(march2.contains("  2026-03-02.csv.sha256\n"), "{march2}");
    let march1 = std::fs::read_to_string(dumps.dir.join("2026-03-01.manifest")).unwrap();
    assert!(!march1.contains(".manifest"), "{march1}");
    // The Python procedure of docs/export.md (`cryptography`, which aioquic brings to CI).
    if python_has("cryptography") {
        let snippet = "from cryptography.hazmat.primitives.serialization import load_pem_public_key\n\
            import sys\n\
            key = load_pem_public_key(open(sys.argv[1], 'rb').read())\n\
            data = open(sys.argv[2] + '/2026-03-02.manifest', 'rb').read()\n\
            key.verify(open(sys.argv[2] + '/2026-03-02.manifest.sig', 'rb').read(), data)\n";
        let run = |dumps: &Path| {
            Command::new("python3")
                .args(["-c", snippet])
                .arg(&pem)
                .arg(dumps)
                .status()
                .unwrap()
                .success()
        };
        assert!(run(&dumps.dir));
        let bad = dir.path().join("python-bad");
        copy_dir(&dumps.dir, &bad);
        std::fs::write(bad.join("2026-03-02.manifest"), march2.replace('a', "b")).unwrap();
        assert!(!run(&bad), "Python accepted a changed manifest");
    }
    // Running again seals nothing new and changes no signed byte.
    write_due(&store, &dumps, &key, UnixMicros(DAY0 + 4 * DAY_US)).unwrap();
    assert_eq!(
        std::fs::read_to_string(dumps.dir.join("2026-03-02.manifest")).unwrap(),
        march2
    );

    // Probe addresses: only their /48 (`export::public`), in every format.
    for name in [
        "2026-03-01.jsonl",
        "2026-03-01.csv",
        "2026-03-01.atlas.jsonl",
    ] {
        let text = std::fs::read_to_string(dumps.dir.join(name)).unwrap();
        assert!(text.contains("2001:db8:5::"), "{name}");
        for r in &results {
            let source = r.result.source.unwrap().to_string();
            assert!(!text.contains(&source), "{name} shows {source}");
        }
    }

    let case = |name: &str, change: &dyn Fn(&Path)| {
        let copy = dir.path().join(name);
        copy_dir(&dumps.dir, &copy);
        change(&copy);
        let (ok, text) = verify(&copy);
        assert!(!ok, "{name}: verified after the change: {text}");
        text
    };
    let text = case("edited", &|d| {
        let path = d.join("2026-03-02.csv");
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 1;
        std::fs::write(&path, bytes).unwrap();
    });
    assert!(
        text.contains("2026-03-02.manifest: a file differs"),
        "{text}"
    );
    let text = case("other-key", &|d| {
        let manifest = std::fs::read(d.join("2026-03-03.manifest")).unwrap();
        std::fs::write(d.join("2026-03-03.manifest.sig"), other.sign(&manifest)).unwrap();
    });
    assert!(
        text.contains("2026-03-03.manifest: BAD SIGNATURE"),
        "{text}"
    );
    let text = case("damaged-signature", &|d| {
        let path = d.join("2026-03-01.manifest.sig");
        let mut sig = std::fs::read(&path).unwrap();
        sig[10] ^= 1;
        std::fs::write(&path, sig).unwrap();
    });
    assert!(
        text.contains("2026-03-01.manifest: BAD SIGNATURE"),
        "{text}"
    );
    // Someone with the key rewrites a past day and signs it again: that day verifies alone,
    // the next day's manifest still holds the old hash.
    let text = case("resigned", &|d| {
        std::fs::write(d.join("2026-03-01.jsonl"), b"{}\n").unwrap();
        let manifest = std::fs::read_to_string(d.join("2026-03-01.manifest")).unwrap();
        let digest = ring::digest::digest(&ring::digest::SHA256, b"{}\n");
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let manifest: String = manifest
            .lines()
            .map(|l| {
                if l.ends_with("  2026-03-01.jsonl") {
                    format!("{hex}  2026-03-01.jsonl\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        std::fs::write(d.join("2026-03-01.manifest"), &manifest).unwrap();
        std::fs::write(
            d.join("2026-03-01.manifest.sig"),
            key.sign(manifest.as_bytes()),
        )
        .unwrap();
    });
    assert!(
        text.contains("2026-03-02.manifest: a file differs"),
        "{text}"
    );
    let text = case("day-removed", &|d| {
        for name in [
            "2026-03-02.manifest",
            "2026-03-02.manifest.sig",
            "2026-03-02.jsonl",
            "2026-03-02.csv",
            "2026-03-02.atlas.jsonl",
            "2026-03-02.jsonl.sha256",
            "2026-03-02.csv.sha256",
            "2026-03-02.atlas.jsonl.sha256",
        ] {
            std::fs::remove_file(d.join(name)).unwrap();
        }
    });
    assert!(text.contains("2026-03-03.manifest"), "{text}");
    // The sidecars are signed: one edited fails like a data file.
    let text = case("sidecar-edited", &|d| {
        let path = d.join("2026-03-02.csv.sha256");
        let sidecar = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            sidecar.replacen(|c: char| c.is_ascii_hexdigit(), "0", 1),
        )
        .unwrap();
    });
    assert!(
        text.contains("2026-03-02.manifest: a file differs"),
        "{text}"
    );
    // Something else the key signed (a report, here a manifest without its first line) is not
    // taken for a manifest.
    let text = case("not-a-manifest", &|d| {
        let manifest = std::fs::read_to_string(d.join("2026-03-03.manifest")).unwrap();
        let body = manifest.split_once('\n').unwrap().1;
        std::fs::write(d.join("2026-03-03.manifest"), body).unwrap();
        std::fs::write(d.join("2026-03-03.manifest.sig"), key.sign(body.as_bytes())).unwrap();
    });
    assert!(
        text.contains("2026-03-03.manifest: not a sixmap manifest"),
        "{text}"
    );
    // The index is signed.
    let text = case("index-edited", &|d| {
        let index = std::fs::read_to_string(d.join("index.json")).unwrap();
        std::fs::write(
            d.join("index.json"),
            index.replace("2026-03-02", "2026-03-05"),
        )
        .unwrap();
    });
    assert!(text.contains("index.json: BAD SIGNATURE"), "{text}");
    // A file beside a signed day that its manifest does not name, and a day never sealed.
    let text = case("unlisted", &|d| {
        std::fs::write(d.join("2026-03-02.parquet"), b"not signed").unwrap();
    });
    assert!(
        text.contains("2026-03-02.parquet: not named by 2026-03-02.manifest"),
        "{text}"
    );
    let text = case("unsealed", &|d| {
        std::fs::write(d.join("2026-03-09.jsonl"), b"{}\n").unwrap();
    });
    assert!(
        text.contains("2026-03-09.jsonl: its day has no signed manifest"),
        "{text}"
    );
}
