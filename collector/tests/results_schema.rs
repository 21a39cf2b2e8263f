//! docs/results-schema.md cannot drift: every JSON example in it is read into the
//! collector's `StoredResult` and written back to the same JSON, and every outcome kind has
//! an example and a section.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use sixmap_collector::store::StoredResult;
use sixmap_shared::measurement::MeasurementKind;
use std::collections::BTreeSet;

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/results-schema.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The bodies of the doc's ```json blocks.
fn json_blocks(text: &str) -> Vec<&str> {
    text.split("```json\n")
        .skip(1)
        .map(|rest| rest.split("\n```").next().unwrap())
        .collect()
}

#[test]
fn every_example_is_a_stored_result_and_every_kind_has_one() {
    let doc = doc();
    let blocks = json_blocks(&doc);
    assert!(!blocks.is_empty(), "no examples found");
    let mut kinds = BTreeSet::new();
    for block in blocks {
        let written: serde_json::Value =
            serde_json::from_str(block).unwrap_or_else(|e| panic!("{e}: not JSON:\n{block}"));
        let stored: StoredResult = serde_json::from_value(written.clone())
            .unwrap_or_else(|e| panic!("{e}: not a StoredResult:\n{block}"));
        stored
            .result
            .validate()
            .unwrap_or_else(|e| panic!("{e}: invalid result:\n{block}"));
        // Back to the same JSON: the doc shows no field the store does not have, and
        // leaves none out.
        assert_eq!(
            serde_json::to_value(&stored).unwrap(),
            written,
            "example differs from what the store writes:\n{block}"
        );
        kinds.insert(
            stored
                .result
                .outcome
                .kind()
                .map_or("failed", MeasurementKind::name)
                .to_owned(),
        );
    }
    let expected: BTreeSet<String> = MeasurementKind::ALL
        .into_iter()
        .map(|k| k.name().to_owned())
        .chain(["failed".to_owned()])
        .collect();
    assert_eq!(kinds, expected, "an outcome kind without an example");
    for kind in &expected {
        assert!(
            doc.contains(&format!("### `{kind}`")),
            "no section for outcome kind {kind}"
        );
    }
}
