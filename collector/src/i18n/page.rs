//! The language of a request ([`Negotiated`]) and the localisation of the embedded pages
//! ([`localise`]): the server fills in the static text so a page reads right before (and
//! without) its script, and hands the script the strings it formats itself.

use super::{Catalog, Language};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The language chosen for a request: `?lang=`, else `Accept-Language`, else English, among
/// the languages of the catalog the collector installed as an `Extension<Arc<Catalog>>`
/// (the built-in ones without it). An unknown `?lang=` is refused with a 400.
#[derive(Debug, Clone)]
pub struct Negotiated {
    catalog: Arc<Catalog>,
    index: usize,
}

impl Negotiated {
    pub fn language(&self) -> &Language {
        &self.catalog.languages[self.index]
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// `Content-Language` and `Vary: Accept-Language`: the same URL answers in several
    /// languages, so caches (ours in public_cache.rs, browsers', proxies') must key on it.
    pub fn headers(&self) -> [(header::HeaderName, HeaderValue); 2] {
        [
            (
                header::CONTENT_LANGUAGE,
                HeaderValue::from_str(&self.language().code)
                    .unwrap_or(HeaderValue::from_static("en")),
            ),
            (header::VARY, HeaderValue::from_static("Accept-Language")),
        ]
    }
}

/// The value of `lang` in a query string, if present (codes are ASCII: no decoding needed
/// beyond `+`, which no code contains).
pub fn query_lang(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(name, _)| *name == "lang")
        .map(|(_, value)| value)
}

impl<S: Send + Sync> FromRequestParts<S> for Negotiated {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let catalog = parts
            .extensions
            .get::<Arc<Catalog>>()
            .cloned()
            .unwrap_or_else(super::builtin);
        let accept = parts
            .headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok());
        let chosen = catalog
            .negotiate(query_lang(parts.uri.query()), accept)
            .map(|l| l.code.clone());
        match chosen {
            Ok(code) => {
                let index = catalog
                    .languages
                    .iter()
                    .position(|l| l.code == code)
                    .unwrap_or(0);
                Ok(Self { catalog, index })
            }
            Err(message) => Err((
                StatusCode::BAD_REQUEST,
                [
                    (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                ],
                message + "\n",
            )
                .into_response()),
        }
    }
}

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `html` (one of the embedded pages) in `lang`:
///
/// - `<html lang="en">` becomes `<html lang="{code}" dir="{ltr|rtl}">`;
/// - the text of each element marked `data-i18n="key"` (plain text up to the next tag) is
///   replaced by the string `key`;
/// - each `data-i18n-attr="name:key; name:key"` sets the attributes named to those strings
///   (they must already be on the element);
/// - a `<script id="i18n" type="application/json">` before `</head>` carries the language,
///   its direction, the strings (but the reports') and the country names, for the page's script (assets/i18n.js)
///   and the language choice the links keep.
pub fn localise(html: &str, lang: &Language, languages: &[Language]) -> String {
    let mut out = html.replacen(
        "<html lang=\"en\">",
        &format!(
            "<html lang=\"{}\" dir=\"{}\">",
            escape(&lang.code),
            lang.dir.as_str()
        ),
        1,
    );
    out = fill_text(&out, lang);
    out = fill_attributes(&out, lang);
    let data = serde_json::json!({
        "lang": lang.code,
        "dir": lang.dir,
        "languages": languages.iter().map(|l| serde_json::json!([l.code, l.name])).collect::<Vec<_>>(),
        // Reports are rendered on the server: their strings stay there.
        "strings": lang
            .strings()
            .iter()
            .filter(|(key, _)| !key.starts_with("report."))
            .collect::<std::collections::BTreeMap<_, _>>(),
        "countries": lang.countries(),
    });
    // `<` escaped so no string can close the script element.
    let json = data.to_string().replace('<', "\\u003c");
    out.replacen(
        "</head>",
        &format!("<script id=\"i18n\" type=\"application/json\">{json}</script>\n</head>"),
        1,
    )
}

const TEXT_MARK: &str = " data-i18n=\"";
const ATTR_MARK: &str = " data-i18n-attr=\"";

fn fill_text(html: &str, lang: &Language) -> String {
    let mut out = String::with_capacity(html.len() + html.len() / 4);
    let mut rest = html;
    while let Some(at) = rest.find(TEXT_MARK) {
        let after = &rest[at + TEXT_MARK.len()..];
        let Some(key_end) = after.find('"') else {
            break;
        };
        let key = &after[..key_end];
        let Some(tag_end) = after.find('>') else {
            break;
        };
        let text_start = at + TEXT_MARK.len() + tag_end + 1;
        let text_len = rest[text_start..]
            .find('<')
            .unwrap_or(rest.len() - text_start);
        out.push_str(&rest[..text_start]);
        out.push_str(&escape(lang.t(key)));
        rest = &rest[text_start + text_len..];
    }
    out.push_str(rest);
    out
}

fn fill_attributes(html: &str, lang: &Language) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(at) = rest.find(ATTR_MARK) {
        // The whole tag around the mark: from its `<` to its `>`.
        let start = rest[..at].rfind('<').unwrap_or(0);
        let Some(end) = rest[at..].find('>').map(|e| at + e) else {
            break;
        };
        let mut tag = rest[start..end].to_owned();
        let spec_start = at + ATTR_MARK.len();
        let spec = rest[spec_start..]
            .split('"')
            .next()
            .unwrap_or("")
            .to_owned();
        for pair in spec.split(';') {
            let Some((name, key)) = pair.split_once(':') else {
                continue;
            };
            let needle = format!(" {}=\"", name.trim());
            if let Some(value_at) = tag.find(&needle) {
                let value_start = value_at + needle.len();
                if let Some(len) = tag[value_start..].find('"') {
                    tag.replace_range(value_start..value_start + len, &escape(lang.t(key.trim())));
                }
            }
        }
        out.push_str(&rest[..start]);
        out.push_str(&tag);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}
