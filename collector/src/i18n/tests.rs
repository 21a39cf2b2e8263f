use super::*;
use std::collections::BTreeSet;

fn raw(code: &str) -> Strings {
    let (_, name, text) = BUILTIN.iter().find(|(c, _, _)| *c == code).unwrap();
    parse(Path::new(name), text).unwrap()
}

/// A new English string without its French and Arabic translation fails here (and so CI).
#[test]
fn every_english_key_is_translated_in_french_and_arabic() {
    let english = raw("en");
    assert!(english.len() > 250, "{} keys", english.len());
    for code in ["fr", "ar"] {
        let theirs = raw(code);
        let missing: Vec<&String> = english
            .keys()
            .filter(|k| !theirs.contains_key(*k))
            .collect();
        assert!(missing.is_empty(), "{code}.toml lacks {missing:?}");
        // And they are translations, not copies: most strings differ from English.
        let same = english
            .iter()
            .filter(|(k, v)| theirs.get(*k) == Some(v))
            .count();
        assert!(
            same * 5 < english.len(),
            "{code}: {same} strings as in English"
        );
    }
}

#[test]
fn builtin_languages_and_directions() {
    let catalog = Catalog::builtin().unwrap();
    let langs: Vec<(&str, Dir, &str)> = catalog
        .languages()
        .iter()
        .map(|l| (l.code.as_str(), l.dir, l.name.as_str()))
        .collect();
    assert_eq!(
        langs,
        [
            ("en", Dir::Ltr, "English"),
            ("fr", Dir::Ltr, "Français"),
            ("ar", Dir::Rtl, "العربية")
        ]
    );
    let ar = catalog.find("ar").unwrap();
    assert_eq!(ar.country("DE"), "ألمانيا");
    assert_eq!(catalog.find("fr").unwrap().country("DE"), "Allemagne");
    assert_eq!(catalog.default_language().country("DE"), "Germany");
    assert_eq!(ar.country("ZZ"), "ZZ");
}

/// Every key the pages, their scripts and the report renderer use is in English (so in every
/// language): a key misspelt in code would show as the key itself.
#[test]
fn keys_used_in_pages_scripts_and_reports_exist() {
    let english = raw("en");
    let has =
        |key: &str| english.contains_key(key) || english.contains_key(&format!("{key}.other"));
    let sources = [
        ("dashboard.html", include_str!("../dashboard.html")),
        ("map.html", include_str!("../map.html")),
        ("country.html", include_str!("../country.html")),
        ("i18n.js", include_str!("../../assets/i18n.js")),
        (
            "maps-common.js",
            include_str!("../../assets/maps-common.js"),
        ),
        ("coverage.js", include_str!("../../assets/coverage.js")),
        ("breaks.js", include_str!("../../assets/breaks.js")),
        ("dnsv6.js", include_str!("../../assets/dnsv6.js")),
        ("report.rs", include_str!("../campaign/report.rs")),
    ];
    let sections = [
        "common.",
        "dashboard.",
        "map.",
        "country.",
        "coverage.",
        "breaks.",
        "dnsv6.",
        "report.",
        "number.",
        "date.",
    ];
    let mut used = BTreeSet::new();
    for (file, text) in sources {
        // Every quoted "section.key" and every `name:section.key` of data-i18n-attr.
        for piece in text.split(['"', ':', ';']) {
            let piece = piece.trim();
            if sections.iter().any(|s| piece.starts_with(s))
                && piece.len() < 60
                && piece
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_')
                && !piece.ends_with('.')
                && !piece.ends_with('_')
            {
                used.insert((file, piece.to_owned()));
            }
        }
    }
    assert!(used.len() > 200, "{} keys found", used.len());
    let missing: Vec<_> = used.iter().filter(|(_, k)| !has(k)).collect();
    assert!(missing.is_empty(), "keys not in en.toml: {missing:?}");
    for status in [
        crate::campaign::CampaignStatus::Active,
        crate::campaign::CampaignStatus::Finished,
        crate::campaign::CampaignStatus::Cancelled,
        crate::campaign::CampaignStatus::BudgetSpent,
    ] {
        assert!(
            has(&format!("report.status_{}", status.as_str())),
            "{status:?}"
        );
    }
    for month in 1..=12 {
        assert!(has(&format!("date.month_{month}")));
    }
}

#[test]
fn accept_language_order_follows_q_values() {
    assert_eq!(
        preferences("de-CH, fr;q=0.8, ar;q=0.9, en;q=0, *;q=0.1"),
        ["de-CH", "ar", "fr", "*"]
    );
    assert_eq!(
        preferences("fr;q=0.5, ar;q=0.5"),
        ["fr", "ar"],
        "ties keep order"
    );
    assert_eq!(
        preferences("fr;q=2, ar;q=x, en"),
        ["en"],
        "malformed q skipped"
    );
    assert!(preferences("").is_empty());
}

#[test]
fn negotiation_query_then_header_then_english() {
    let catalog = Catalog::builtin().unwrap();
    let code = |q: Option<&str>, h: Option<&str>| catalog.negotiate(q, h).map(|l| l.code.clone());
    assert_eq!(code(None, None).unwrap(), "en");
    assert_eq!(code(None, Some("de, ar;q=0.9, fr;q=0.8")).unwrap(), "ar");
    assert_eq!(
        code(None, Some("fr-CA, en;q=0.5")).unwrap(),
        "fr",
        "primary subtag"
    );
    assert_eq!(code(None, Some("de, *;q=0.5")).unwrap(), "en");
    assert_eq!(
        code(None, Some("fr;q=0, ar;q=0")).unwrap(),
        "en",
        "q=0 refuses"
    );
    assert_eq!(code(Some("AR"), Some("fr")).unwrap(), "ar", "?lang= wins");
    let err = code(Some("xx"), Some("fr")).unwrap_err();
    assert!(
        err.contains("\"xx\"") && err.contains("en, fr, ar"),
        "{err}"
    );
}

#[test]
fn plural_categories() {
    let cats = |code: &str| -> Vec<&str> {
        [0, 1, 2, 3, 10, 11, 99, 100, 102]
            .iter()
            .map(|n| plural_category(code, *n))
            .collect()
    };
    assert_eq!(
        cats("ar"),
        [
            "zero", "one", "two", "few", "few", "many", "many", "other", "other"
        ]
    );
    assert_eq!(cats("fr")[..3], ["one", "one", "other"]);
    assert_eq!(cats("en")[..3], ["other", "one", "other"]);
}

#[test]
fn numbers_percentages_and_dates_per_language() {
    let catalog = Catalog::builtin().unwrap();
    let [en, fr, ar] = ["en", "fr", "ar"].map(|c| catalog.find(c).unwrap());
    assert_eq!(en.percent(0.4444, 1), "44.4 %");
    assert_eq!(fr.percent(0.4444, 1), "44,4\u{202f}%");
    assert_eq!(ar.percent(0.4444, 1), "٤٤٫٤٪");
    assert_eq!(ar.number(-12.5, 1), "−١٢٫٥");
    assert_eq!(en.number(-0.01, 1), "0.0", "no minus on a rounded zero");
    assert_eq!(ar.integer(2026u64), "٢٠٢٦");
    let t = UnixMicros(1_796_400_359_000_000);
    assert_eq!(en.date_time(t), "4 December 2026, 16:05 UTC");
    assert_eq!(en.date_time(t), crate::campaign::report::human_utc(t));
    assert_eq!(fr.date_time(t), "4 décembre 2026, 16 h 05 UTC");
    assert_eq!(
        ar.date_time(t),
        "٤ ديسمبر ٢٠٢٦، الساعة ١٦:٠٥ بالتوقيت العالمي"
    );
    assert_eq!(en.plural("report.probes", 1, &[]), "1 probe");
    assert_eq!(ar.plural("report.probes", 2, &[]), "مسباران");
    assert_eq!(ar.plural("report.probes", 5, &[]), "٥ مسابير");
    assert_eq!(fr.plural("report.probes", 0, &[]), "0 sonde");
    assert_eq!(
        en.plural("report.results_in", 3, &[("in", "2")]),
        "2 of 3 results in"
    );
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn a_directory_overrides_and_adds_languages() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "fr.toml",
        "[map]\nheading = \"L'IPv6 dans le monde\"\n",
    );
    write(
        dir.path(),
        "de.toml",
        "[language]\nname = \"Deutsch\"\n[map]\nheading = \"IPv6 nach Land\"\n\
         [countries]\nDE = \"Deutschland\"\n",
    );
    write(
        dir.path(),
        "pt-BR.toml",
        "[map]\nheading = \"IPv6 por país\"\n",
    );
    write(dir.path(), "notes.txt", "not a translation");
    let catalog = Catalog::load(Some(dir.path())).unwrap();
    let codes: Vec<&str> = catalog
        .languages()
        .iter()
        .map(|l| l.code.as_str())
        .collect();
    assert_eq!(codes, ["en", "fr", "ar", "de", "pt-BR"]);
    let pt = catalog.find("pt-br").unwrap();
    assert_eq!(
        (pt.name.as_str(), pt.t("language.intl"), pt.t("map.heading")),
        ("pt-BR", "pt-BR", "IPv6 por país"),
        "name and locale default to the code, not to English's"
    );
    let fr = catalog.find("fr").unwrap();
    assert_eq!(fr.t("map.heading"), "L'IPv6 dans le monde");
    assert_eq!(fr.t("map.col_country"), "Pays", "the rest of French stays");
    let de = catalog.find("de-AT").unwrap();
    assert_eq!((de.name.as_str(), de.dir), ("Deutsch", Dir::Ltr));
    assert_eq!(de.t("map.heading"), "IPv6 nach Land");
    assert_eq!(
        de.t("map.col_country"),
        "Country",
        "a missing key falls back to English"
    );
    assert_eq!(de.country("DE"), "Deutschland");
    assert_eq!(
        de.country("FR"),
        "France",
        "country names fall back to English"
    );
    assert_eq!(
        catalog
            .negotiate(None, Some("de-DE,en;q=0.5"))
            .unwrap()
            .code,
        "de"
    );
}

#[test]
fn malformed_files_name_the_file_and_the_key() {
    let cases = [
        (
            "fr.toml",
            "[map]\nheadng = \"x\"\n",
            "`map.headng`",
            "misspelt",
        ),
        ("fr.toml", "[map]\nheading = 3\n", "fr.toml", "heading"),
        ("fr.toml", "[map\n", "fr.toml", "line 1"),
        (
            "ar.toml",
            "[map]\ntip_works = \"IPv6 : {sahre}\"\n",
            "`map.tip_works`",
            "missing [\"share\"]",
        ),
        (
            "de.toml",
            "[language]\ndir = \"up\"\n",
            "`language.dir`",
            "\"up\"",
        ),
        (
            "de.toml",
            "[number]\ndigits = \"0123\"\n",
            "`number.digits`",
            "ten",
        ),
        (
            "de.toml",
            "[number]\ndigits = \"0123456798\"\n",
            "`number.digits`",
            "in order",
        ),
        (
            "fr.toml",
            "[number]\ndecimal = \"<img src=x onerror=alert(1)>\"\n",
            "`number.decimal`",
            "punctuation",
        ),
        (
            "de.toml",
            "[language]\nintl = \"ar_EG\"\n",
            "`language.intl`",
            "BCP 47",
        ),
        (
            "de.toml",
            "[countries]\nGermany = \"x\"\n",
            "`countries.Germany`",
            "alpha-2",
        ),
        ("Deutsch.toml", "", "Deutsch.toml", "not a language code"),
    ];
    for (name, text, key, reason) in cases {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), name, text);
        let err = Catalog::load(Some(dir.path())).unwrap_err().to_string();
        assert!(
            err.contains(name) && err.contains(key) && err.contains(reason),
            "{name} {text:?}: {err}"
        );
    }
    let err = Catalog::load(Some(Path::new("/nonexistent/i18n")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/i18n"), "{err}");
}

#[test]
fn the_config_names_a_bad_translation_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "fr.toml", "[map]\nheadng = \"x\"\n");
    let text = format!("[i18n]\ndir = {:?}\n", dir.path());
    let err = sixmap_shared::config::parse_toml::<crate::config::CollectorConfig>(&text)
        .unwrap()
        .validate(Some(Path::new("collector.toml")))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("i18n.dir") && err.contains("fr.toml") && err.contains("map.headng"),
        "{err}"
    );
}

#[test]
fn pages_get_direction_text_attributes_and_strings() {
    let catalog = Catalog::builtin().unwrap();
    let ar = catalog.find("ar").unwrap();
    let html = "<!doctype html>\n<html lang=\"en\">\n<head><title data-i18n=\"map.page_title\">IPv6 by country</title></head>\
                <body><nav data-i18n-attr=\"aria-label:common.languages\" aria-label=\"Languages\"></nav>\
                <h1 data-i18n=\"map.heading\">IPv6 by country</h1><p>keep</p></body></html>";
    let out = page::localise(html, ar, catalog.languages());
    assert!(out.contains("<html lang=\"ar\" dir=\"rtl\">"), "{out}");
    assert!(
        out.contains("<h1 data-i18n=\"map.heading\">IPv6 حسب الدولة</h1><p>keep</p>"),
        "{out}"
    );
    assert!(out.contains("aria-label=\"اللغات\""), "{out}");
    assert!(out.contains(">IPv6 حسب الدولة · sixmap</title>"), "{out}");
    let start = out
        .find("<script id=\"i18n\" type=\"application/json\">")
        .unwrap();
    let json = &out[start..];
    let json = &json[json.find('>').unwrap() + 1..json.find("</script>").unwrap()];
    let data: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(data["lang"], "ar");
    assert_eq!(data["dir"], "rtl");
    assert_eq!(data["countries"]["FR"], "فرنسا");
    assert_eq!(data["strings"]["number.percent"], "{n}٪");
    assert_eq!(data["languages"][1], serde_json::json!(["fr", "Français"]));
    // English pages keep their text.
    let en = page::localise(html, catalog.default_language(), catalog.languages());
    assert!(en.contains("<h1 data-i18n=\"map.heading\">IPv6 by country</h1>"));
}

#[test]
fn no_string_can_close_the_pages_script() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "fr.toml",
        "[map]\nheading = \"</script><script>alert(1)</script>\"\n",
    );
    let catalog = Catalog::load(Some(dir.path())).unwrap();
    let fr = catalog.find("fr").unwrap();
    let out = page::localise(
        "<html lang=\"en\"><head></head><body><h1 data-i18n=\"map.heading\">x</h1></body></html>",
        fr,
        catalog.languages(),
    );
    assert_eq!(out.matches("<script").count(), 1, "{out}");
    assert!(out.contains("&lt;/script&gt;"), "{out}");
}

#[test]
fn query_lang_is_read_among_other_parameters() {
    assert_eq!(page::query_lang(Some("format=html&lang=fr")), Some("fr"));
    assert_eq!(page::query_lang(Some("lang")), Some(""));
    assert_eq!(page::query_lang(Some("language=fr")), None);
    assert_eq!(page::query_lang(None), None);
}
