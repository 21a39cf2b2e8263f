//! The hosts a page loads its subresources from, read from its HTML by a small bounded
//! scanner: `<script src>`, `<link href>` with a stylesheet or icon `rel`, `<img src>`,
//! `<iframe src>`. Only absolute (`https://host/…`) and protocol-relative (`//host/…`) URLs
//! name a host; relative URLs are the page's own host, which the web check already covers.
//! A URL keeps its port here; `web` fetches only from the web's ports (80, 443, the page's own).
//!
//! The input is whatever a server sent, so the scanner never indexes out of bounds, never
//! recurses, reads at most [`MAX_ATTRIBUTE`] bytes of a value, and stops after `max_hosts`
//! distinct hosts (saying it did). It is not an HTML parser: inline script and style bodies
//! and comments are skipped so that markup quoted inside them is not taken for the page's.

use sixmap_shared::measurement::{HttpUrl, MAX_READINESS_URL_LEN, Target};
use std::net::IpAddr;

/// Longest attribute value read; longer URLs are not what a page loads its resources from.
const MAX_ATTRIBUTE: usize = 2048;

/// One distinct host and the first URL on the page that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Lower case name, or an address literal without brackets.
    pub host: String,
    pub url: HttpUrl,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scan {
    pub hosts: Vec<Reference>,
    /// More distinct hosts were referenced than `max_hosts`.
    pub truncated: bool,
}

/// The distinct hosts of the page's subresources in order of first appearance. `https` is
/// the page's own scheme, given to protocol-relative URLs.
pub fn subresource_hosts(html: &[u8], https: bool, max_hosts: usize) -> Scan {
    let mut scan = Scan::default();
    let mut at = 0;
    while let Some(offset) = html.get(at..).and_then(|rest| find(rest, b"<")) {
        let start = at + offset + 1;
        let rest = html.get(start..).unwrap_or_default();
        if rest.starts_with(b"!--") {
            // A comment ends at the first "-->" (or the page does).
            at = start + find(rest, b"-->").map_or(rest.len(), |end| end + 3);
            continue;
        }
        let name_len = rest
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        let name = rest.get(..name_len).unwrap_or_default();
        let (attributes, tag_len) = attributes(rest.get(name_len..).unwrap_or_default());
        at = start + name_len + tag_len;
        let url = if name.eq_ignore_ascii_case(b"script")
            || name.eq_ignore_ascii_case(b"img")
            || name.eq_ignore_ascii_case(b"iframe")
        {
            attribute(&attributes, b"src")
        } else if name.eq_ignore_ascii_case(b"link") && loads_resource(&attributes) {
            attribute(&attributes, b"href")
        } else {
            None
        };
        if let Some(reference) = url.and_then(|value| absolute(value, https))
            && !scan.hosts.iter().any(|h| h.host == reference.host)
        {
            if scan.hosts.len() == max_hosts {
                scan.truncated = true;
                break;
            }
            scan.hosts.push(reference);
        }
        // Script and style bodies are not markup: skip to their end tag.
        for raw in [&b"script"[..], b"style"] {
            if name.eq_ignore_ascii_case(raw) {
                let rest = html.get(at..).unwrap_or_default();
                at += find_ignore_case(
                    rest,
                    if raw == b"script" {
                        b"</script"
                    } else {
                        b"</style"
                    },
                )
                .unwrap_or(rest.len());
            }
        }
    }
    scan
}

/// A `<link>` whose `rel` loads something the page shows: a stylesheet or an icon.
fn loads_resource(attributes: &[(&[u8], &[u8])]) -> bool {
    attribute(attributes, b"rel").is_some_and(|rel| {
        rel.split(|b| b.is_ascii_whitespace()).any(|token| {
            token.eq_ignore_ascii_case(b"stylesheet")
                || token.eq_ignore_ascii_case(b"icon")
                || token.eq_ignore_ascii_case(b"apple-touch-icon")
        })
    })
}

fn attribute<'a>(attributes: &[(&[u8], &'a [u8])], name: &[u8]) -> Option<&'a [u8]> {
    attributes
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

/// The attributes of a start tag, from just after its name; and the bytes up to and
/// including the closing `>` (the rest of the input when there is none).
/// A tag's attributes as (name, value) byte slices of the page.
type Attributes<'a> = Vec<(&'a [u8], &'a [u8])>;

fn attributes(tag: &[u8]) -> (Attributes<'_>, usize) {
    let mut found = Vec::new();
    let mut i = 0;
    loop {
        while tag
            .get(i)
            .is_some_and(|b| b.is_ascii_whitespace() || *b == b'/')
        {
            i += 1;
        }
        match tag.get(i) {
            None => return (found, tag.len()),
            Some(b'>') => return (found, i + 1),
            Some(_) => {}
        }
        let name_start = i;
        while tag
            .get(i)
            .is_some_and(|b| !b.is_ascii_whitespace() && !matches!(b, b'=' | b'>' | b'/'))
        {
            i += 1;
        }
        let name = tag.get(name_start..i).unwrap_or_default();
        while tag.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        if tag.get(i) != Some(&b'=') {
            found.push((name, &b""[..]));
            // A stray character that is no name at all: step over it so the loop advances.
            if i == name_start {
                i += 1;
            }
            continue;
        }
        i += 1;
        while tag.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        let value = match tag.get(i) {
            Some(&quote @ (b'"' | b'\'')) => {
                let start = i + 1;
                let rest = tag.get(start..).unwrap_or_default();
                let len = rest.iter().position(|b| *b == quote).unwrap_or(rest.len());
                i = start + len + 1;
                rest.get(..len).unwrap_or_default()
            }
            _ => {
                let start = i;
                while tag
                    .get(i)
                    .is_some_and(|b| !b.is_ascii_whitespace() && *b != b'>')
                {
                    i += 1;
                }
                tag.get(start..i).unwrap_or_default()
            }
        };
        found.push((name, value));
    }
}

/// An absolute or protocol-relative URL of a value, with its host; `None` for relative URLs,
/// other schemes, and anything that is not a well-formed URL with a host.
fn absolute(value: &[u8], https: bool) -> Option<Reference> {
    if value.len() > MAX_ATTRIBUTE {
        return None;
    }
    let text = std::str::from_utf8(value).ok()?.trim();
    // The one character reference that commonly appears in URLs in attributes.
    let text = text.replace("&amp;", "&");
    let lower = text.get(..8).unwrap_or(&text).to_ascii_lowercase();
    let url = if lower.starts_with("https://") {
        format!("https://{}", text.get(8..)?)
    } else if lower.starts_with("http://") {
        format!("http://{}", text.get(7..)?)
    } else if let Some(rest) = text.strip_prefix("//") {
        format!("{}://{rest}", if https { "https" } else { "http" })
    } else {
        return None;
    };
    let url = HttpUrl::parse(&url).ok()?;
    // The URL goes into the result as written out again (scheme added, `?` after the host
    // given its `/`): one longer than the result allows is dropped, not let fail the whole
    // measurement's validation.
    if url.to_string().len() > MAX_READINESS_URL_LEN {
        return None;
    }
    let host = url.host.to_ascii_lowercase();
    let host = match host.parse::<IpAddr>() {
        Ok(address) => address.to_string(),
        Err(_) => match Target::hostname(&host).ok()? {
            Target::Hostname(h) => h,
            Target::Address(_) => return None,
        },
    };
    Some(Reference { host, url })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn find_ignore_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(html: &str, max: usize) -> (Vec<String>, bool) {
        let scan = subresource_hosts(html.as_bytes(), true, max);
        (
            scan.hosts.into_iter().map(|r| r.host).collect(),
            scan.truncated,
        )
    }

    #[test]
    fn finds_the_hosts_of_scripts_styles_icons_images_and_frames() {
        let page = r#"<!doctype html><html><head>
            <LINK REL="stylesheet" HREF="https://CSS.example.net/a.css">
            <link rel="shortcut icon" href='//icons.example.net/favicon.ico'>
            <link rel="canonical" href="https://canonical.example.net/">
            <link rel=preconnect href=https://preconnect.example.net>
            <script src=https://js.example.net/app.js?a=1&amp;b=2 async></script>
            <script>document.write('<img src="https://inline.example.net/x.png">')</script>
            <style>.a { background: url("https://style-body.example.net/") } /* <img src=https://css-comment.example.net/> */</style>
            <!-- <img src="https://commented.example.net/x.png"> -->
            </head><body>
            <img alt="x" src="/local.png"><img src="relative.png">
            <img src="https://[2001:db8::7]:8443/x.png"><img src="http://192.0.2.7/logo.png">
            <iframe src="https://frame.example.net/embed"></iframe>
            <a href="https://link.example.net/">not a subresource</a>
            <img src="https://css.example.net/again.png">
            <img src="ftp://ftp.example.net/x"><img src="javascript:alert(1)">
            </body></html>"#;
        let (found, truncated) = hosts(page, 32);
        assert_eq!(
            found,
            [
                "css.example.net",
                "icons.example.net",
                "js.example.net",
                "2001:db8::7",
                "192.0.2.7",
                "frame.example.net",
            ]
        );
        assert!(!truncated);
        let scan = subresource_hosts(page.as_bytes(), true, 32);
        assert_eq!(
            scan.hosts[1].url.to_string(),
            "https://icons.example.net/favicon.ico"
        );
        assert_eq!(scan.hosts[2].url.path, "/app.js?a=1&b=2");
        assert_eq!(
            hosts(page, 2),
            (
                vec!["css.example.net".into(), "icons.example.net".into()],
                true
            )
        );
        // Protocol-relative URLs take the page's scheme.
        let scan = subresource_hosts(b"<img src=//a.example/x>", false, 4);
        assert!(!scan.hosts[0].url.https);
    }

    #[test]
    fn hostile_html_never_panics_and_stays_bounded() {
        let huge_value = format!("<img src=\"https://{}.example/\">", "a".repeat(100_000));
        let many_hosts: String = (0..5000)
            .map(|i| format!("<img src=https://h{i}.example/>"))
            .collect();
        for page in [
            "",
            "<",
            "<<<<>>>>",
            "<img",
            "<img src",
            "<img src=",
            "<img src=\"",
            "<img src='https://a.example/",
            "<script src=https://a.example/x>",
            "<script>never closed <img src=https://b.example/>",
            "<!--",
            "<!-- <img src=https://c.example/",
            "<img = = = src=https://d.example/ =>",
            "<img src=https://[::1/>",
            "<img src=https://é.example/>",
            "<img src=https://a..b/>",
            "<img src=https://a.example:99999/>",
            "<img src=https://user@e.example/>",
            "<img/src=https://f.example/>",
            &huge_value,
            &many_hosts,
        ] {
            let scan = subresource_hosts(page.as_bytes(), true, 16);
            assert!(scan.hosts.len() <= 16, "{page:.40}");
        }
        // A value within MAX_ATTRIBUTE whose URL, written out, is longer than a result's URL
        // may be: dropped.
        let query = format!(
            "<img src=https://long.example?{}>",
            "q".repeat(MAX_ATTRIBUTE - 21)
        );
        assert_eq!(query.len() - "<img src=>".len(), MAX_ATTRIBUTE);
        assert!(hosts(&query, 4).0.is_empty());
        let relative = format!(
            "<img src=//long.example/{}>",
            "p".repeat(MAX_ATTRIBUTE - 15)
        );
        assert!(hosts(&relative, 4).0.is_empty());
        let (found, truncated) = hosts(&many_hosts, 16);
        assert_eq!((found.len(), truncated), (16, true));
        assert_eq!(hosts("<img/src=https://f.example/>", 4).0, ["f.example"]);
        assert!(hosts("<img src=https://user@e.example/>", 4).0.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap fuzz: pseudo-random bytes biased towards the characters the scanner acts on.
        let alphabet = b"<>!-=\"' /imgsrcIPTlinkhref:./ahttps[]@\x00\xff";
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2000 {
            let len = (state % 300) as usize;
            let mut page = Vec::with_capacity(len);
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                page.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            let scan = subresource_hosts(&page, true, 8);
            assert!(scan.hosts.len() <= 8);
        }
    }
}
