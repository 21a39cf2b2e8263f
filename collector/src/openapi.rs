//! The OpenAPI 3.1 description of every HTTP route of the collector, served at
//! `GET /api/v1/openapi.json`. Hand-written (`openapi.json` beside this file); the tests
//! below keep it complete: every route registered in a router under `collector/src` must be
//! in it with its methods, and it must pass `openapi-spec-validator`.

/// The document, as served.
pub const SPEC: &str = include_str!("openapi.json");

#[cfg(test)]
mod tests {
    use super::SPEC;
    use std::collections::BTreeSet;
    use std::path::Path;

    /// Routes described here while other branches build them; once registered they are
    /// checked like any other.
    const PENDING: &[&str] = &["/metrics", "/api/v1/export"];
    const METHODS: &[&str] = &["get", "post", "put", "delete", "patch"];

    /// `(path, method)` of every `.route("…", get(…).post(…))` in the non-test code of `text`.
    fn routes_in(text: &str, found: &mut BTreeSet<(String, String)>) {
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let call = {
                let mut depth = 1;
                let end = rest
                    .char_indices()
                    .find(|&(_, c)| {
                        match c {
                            '(' => depth += 1,
                            ')' => depth -= 1,
                            _ => {}
                        }
                        depth == 0
                    })
                    .map(|(i, _)| i)
                    .expect("a closed .route( call");
                &rest[..end]
            };
            let path = call
                .split('"')
                .nth(1)
                .expect("a route path in quotes")
                .to_owned();
            let after_path = call.splitn(3, '"').nth(2).unwrap_or_default();
            let mut any = false;
            for method in METHODS {
                let used = after_path
                    .match_indices(&format!("{method}("))
                    .any(|(i, _)| {
                        i == 0
                            || !after_path.as_bytes()[i - 1].is_ascii_alphanumeric()
                                && after_path.as_bytes()[i - 1] != b'_'
                    });
                if used {
                    found.insert((path.clone(), (*method).to_owned()));
                    any = true;
                }
            }
            assert!(any, "no method found for route {path}: {call}");
        }
    }

    fn registered() -> BTreeSet<(String, String)> {
        fn walk(dir: &Path, found: &mut BTreeSet<(String, String)>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, found);
                } else if path.extension().is_some_and(|e| e == "rs")
                    && path.file_name().is_some_and(|n| n != "openapi.rs")
                {
                    routes_in(&std::fs::read_to_string(&path).unwrap(), found);
                }
            }
        }
        let mut found = BTreeSet::new();
        walk(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut found,
        );
        found
    }

    fn described() -> BTreeSet<(String, String)> {
        let spec: serde_json::Value = serde_json::from_str(SPEC).unwrap();
        let mut found = BTreeSet::new();
        for (path, item) in spec["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if METHODS.contains(&method.as_str()) {
                    found.insert((path.clone(), method.clone()));
                }
            }
        }
        found
    }

    #[test]
    fn every_route_is_described_and_every_description_is_a_route() {
        let registered = registered();
        // The scan itself must see the routers, or this test would prove nothing.
        for known in [
            ("/api/v1/results", "get"),
            ("/api/v1/query/results", "get"),
            ("/api/v1/enrollment-tokens", "post"),
            ("/api/v1/campaigns/{id}/cancel", "post"),
        ] {
            assert!(
                registered.contains(&(known.0.to_owned(), known.1.to_owned())),
                "the route scan missed {known:?}"
            );
        }
        let described = described();
        let missing: Vec<_> = registered.difference(&described).collect();
        assert!(
            missing.is_empty(),
            "routes not in collector/src/openapi.json: {missing:?}"
        );
        let extra: Vec<_> = described
            .difference(&registered)
            .filter(|(path, _)| !PENDING.contains(&path.as_str()))
            .collect();
        assert!(
            extra.is_empty(),
            "collector/src/openapi.json describes routes no router has: {extra:?}"
        );
    }

    #[test]
    fn the_scan_reads_multi_line_routes() {
        let mut found = BTreeSet::new();
        routes_in(
            ".route(\n  \"/a/{id}\",\n  get(list_things).post(make(x)),\n)\n.route(\"/b\", post(target))\n#[cfg(test)]\n.route(\"/c\", get(x))",
            &mut found,
        );
        let expected: BTreeSet<(String, String)> =
            [("/a/{id}", "get"), ("/a/{id}", "post"), ("/b", "post")]
                .into_iter()
                .map(|(p, m)| (p.to_owned(), m.to_owned()))
                .collect();
        assert_eq!(found, expected);
    }

    /// Validated by the `openapi-spec-validator` package from PyPI (`.ci/run` installs it).
    #[test]
    fn the_description_is_valid_openapi() {
        let script = "import sys, json\n\
            from openapi_spec_validator import validate\n\
            validate(json.load(sys.stdin))\n";
        let probe = std::process::Command::new("python3")
            .args(["-c", "import openapi_spec_validator"])
            .output();
        let available = probe.as_ref().is_ok_and(|o| o.status.success());
        if !available {
            let message = "python3 with openapi-spec-validator is needed \
                (python3 -m pip install openapi-spec-validator)";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{message}");
            }
            eprintln!("skipped: {message}");
            return;
        }
        use std::io::Write;
        let mut child = std::process::Command::new("python3")
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(SPEC.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "openapi.json is not valid OpenAPI:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
