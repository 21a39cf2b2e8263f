//! The maps as standalone SVG files (`?format=svg` on `/api/v1/maps/countries[/CC]`, issue
//! #20): what the pages show, drawn on the server from the same atlas and the same figures,
//! with title, date, legend, method id and attribution inside the file, so it prints and can be
//! published without a script. Cells under the minimum sample are hatched "insufficient data",
//! never a share's colour. The pages turn the same SVG into a PNG in the browser (a canvas),
//! so no image library is needed here.
//!
//! Text is in the request's language (`crate::i18n`); right-to-left languages set the text's
//! direction and anchor it on the right, the map itself is never mirrored.

pub mod atlas;

use crate::i18n::{Dir, Language};
use crate::rollup::Proportion;
use atlas::{Part, Point, Ring};
use std::fmt::Write;

/// One country's cell on the world map.
#[derive(Debug, Clone)]
pub struct Cell {
    pub country: String,
    pub probes: usize,
    /// `None` under the minimum sample: insufficient data.
    pub share: Option<Proportion>,
}

/// What the world map shows.
#[derive(Debug, Clone)]
pub struct World {
    pub cells: Vec<Cell>,
    /// When the figures are from, already in words.
    pub when: String,
    pub method_id: String,
    pub min_probes: usize,
}

/// A probe's dot on a country map: degrees, and whether IPv6 works for it (`None` when its
/// operator is under the minimum sample).
#[derive(Debug, Clone, Copy)]
pub struct Dot {
    pub lon: f64,
    pub lat: f64,
    pub works: Option<bool>,
}

/// What a country map shows.
#[derive(Debug, Clone)]
pub struct CountryView {
    pub country: String,
    pub probes: usize,
    pub operators: usize,
    /// `None` under the minimum sample.
    pub share: Option<Proportion>,
    pub dots: Vec<Dot>,
    pub when: String,
    pub method_id: String,
    pub min_probes: usize,
}

const NO_DATA: &str = "#cfd4da";
const INSUFFICIENT: &str = "#ece6d3";
/// Sequential, 0 % … 100 % (map.html's `STOPS`).
const STOPS: [[u8; 3]; 5] = [
    [0xff, 0xff, 0xcc],
    [0xa1, 0xda, 0xb4],
    [0x41, 0xb6, 0xc4],
    [0x2c, 0x7f, 0xb8],
    [0x25, 0x34, 0x94],
];
const FONT: &str = "system-ui, 'DejaVu Sans', Arial, sans-serif";

/// The colour of a share on the scale (map.html's `colour`).
pub fn colour(share: f64) -> String {
    let t = share.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let c: Vec<String> = (0..3)
        .map(|k| {
            let v = f64::from(a[k]) + (f64::from(b[k]) - f64::from(a[k])) * f;
            format!("{}", v.round() as u8)
        })
        .collect();
    format!("rgb({})", c.join(","))
}

/// Text for XML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Lines of at most about `width` characters, broken between words.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// An SVG being written: text placed by the reading direction, `W` wide.
struct Doc<'a> {
    out: String,
    lang: &'a Language,
    width: f64,
}

impl Doc<'_> {
    /// A line of text starting at the reading side's margin (`x` from the left for left to
    /// right, from the right for right to left).
    fn text(&mut self, x: f64, y: f64, size: f64, bold: bool, content: &str) {
        let rtl = self.lang.dir == Dir::Rtl;
        let x = if rtl { self.width - x } else { x };
        let _ = writeln!(
            self.out,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="{size}"{}{}>{}</text>"#,
            if bold { r#" font-weight="600""# } else { "" },
            if rtl { r#" direction="rtl""# } else { "" },
            esc(content)
        );
    }

    /// Wrapped text from `y`; returns the `y` after it.
    fn paragraph(&mut self, x: f64, mut y: f64, size: f64, content: &str) -> f64 {
        let per_line = ((self.width - 2.0 * x) / (size * 0.55)) as usize;
        for line in wrap(content, per_line.max(20)) {
            self.text(x, y, size, false, &line);
            y += size * 1.35;
        }
        y
    }
}

fn open(width: f64, height: f64, lang: &Language, title: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" \
font-family=\"{FONT}\" fill=\"#1d2733\" lang=\"{}\">\n<title>{}</title>\n\
<defs><pattern id=\"insufficient\" patternUnits=\"userSpaceOnUse\" width=\"5\" height=\"5\" patternTransform=\"rotate(45)\">\
<rect width=\"5\" height=\"5\" fill=\"{INSUFFICIENT}\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"5\" stroke=\"#8a826a\" stroke-width=\"1.2\"/></pattern>\
<linearGradient id=\"scale\">{stops}</linearGradient><linearGradient id=\"scale-rtl\" x1=\"1\" x2=\"0\">{stops}</linearGradient></defs>\n\
<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n",
        esc(&lang.code),
        esc(title),
        stops = (0..STOPS.len())
            .map(|i| {
                let [r, g, b] = STOPS[i];
                format!(
                    "<stop offset=\"{}\" stop-color=\"#{r:02x}{g:02x}{b:02x}\"/>",
                    i as f64 / (STOPS.len() - 1) as f64
                )
            })
            .collect::<String>()
    )
}

/// `d` of rings through `project`.
fn path_data(rings: &[Ring], project: &dyn Fn(Point) -> Point) -> String {
    let mut d = String::new();
    for ring in rings {
        for (i, &p) in ring.iter().enumerate() {
            let [x, y] = project(p);
            let _ = write!(d, "{}{x:.1},{y:.1}", if i == 0 { "M" } else { "L" });
        }
        d.push('Z');
    }
    d
}

fn interval(lang: &Language, p: &Proportion) -> String {
    lang.fmt(
        "number.interval",
        &[
            // Rounded half away from zero, as the pages' `Math.round` (formatting would
            // round half to even: 62.5 % → 62 here, 63 there).
            ("share", &lang.percent((p.share * 100.0).round() / 100.0, 0)),
            ("low", &lang.number((p.low * 100.0).round(), 0)),
            ("high", &lang.number((p.high * 100.0).round(), 0)),
        ],
    )
}

fn label(lang: &Language, code: &str) -> String {
    let name = lang.country(code);
    if name == code {
        code.to_owned()
    } else {
        format!("{name} ({code})")
    }
}

/// The legend's "insufficient data" and "no data" keys and the method and attribution lines,
/// from `y`; returns the `y` after them.
fn footer(
    doc: &mut Doc,
    mut y: f64,
    method_id: &str,
    min_probes: usize,
    with_no_data: bool,
) -> f64 {
    let lang = doc.lang;
    let rtl = lang.dir == Dir::Rtl;
    let swatch = |doc: &mut Doc, y: f64, fill: &str, dashed: bool| {
        let x = if rtl { doc.width - 16.0 - 22.0 } else { 16.0 };
        let _ = writeln!(
            doc.out,
            r##"<rect x="{x:.1}" y="{:.1}" width="22" height="13" fill="{fill}" stroke="#8a826a"{}/>"##,
            y - 11.0,
            if dashed {
                r#" stroke-dasharray="2 1.5""#
            } else {
                ""
            }
        );
    };
    swatch(doc, y, "url(#insufficient)", true);
    let fewer = lang.plural("common.fewer_than_probes", min_probes as u64, &[]);
    doc.text(
        46.0,
        y,
        12.0,
        false,
        &lang.fmt("svg.insufficient_key", &[("fewer_than", &fewer)]),
    );
    y += 20.0;
    if with_no_data {
        swatch(doc, y, NO_DATA, false);
        doc.text(46.0, y, 12.0, false, lang.t("svg.no_data_key"));
        y += 20.0;
    }
    y += 4.0;
    y = doc.paragraph(
        16.0,
        y,
        11.0,
        &lang.fmt(
            "svg.method",
            &[
                ("method_id", method_id),
                ("min_probes", &lang.integer(min_probes as u64)),
            ],
        ),
    );
    doc.paragraph(
        16.0,
        y,
        10.0,
        &lang.fmt(
            "report.attribution",
            &[
                ("dbip", "DB-IP (db-ip.com)"),
                ("cc_by", "CC BY 4.0"),
                ("natural_earth", "Natural Earth (naturalearthdata.com)"),
            ],
        ),
    )
}

/// The world map: every atlas country filled by its cell (a share's colour, the hatch of
/// insufficient data, or grey), the colour scale, and the countries with figures that the
/// 1:110m atlas cannot draw, listed under it.
pub fn world(map: &World, lang: &Language) -> Result<String, &'static atlas::AtlasError> {
    let atlas = atlas::atlas()?;
    const W: f64 = 960.0;
    const MARGIN: f64 = 10.0;
    let cells: std::collections::BTreeMap<&str, &Cell> =
        map.cells.iter().map(|c| (c.country.as_str(), c)).collect();
    // Project everything but Antarctica, then fit the width.
    let mut shapes: Vec<(&atlas::Country, Vec<Vec<Point>>)> = Vec::new();
    let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for country in &atlas.countries {
        if country.code.as_deref() == Some("AQ") {
            continue;
        }
        let rings: Vec<Vec<Point>> = country
            .polygons
            .iter()
            .flat_map(|p| p.rings.iter())
            .flat_map(|r| atlas::split_at_antimeridian(r))
            .map(|r| {
                r.iter()
                    .map(|&p| {
                        let [x, y] = atlas::natural_earth(p);
                        x0 = x0.min(x);
                        x1 = x1.max(x);
                        y0 = y0.min(-y);
                        y1 = y1.max(-y);
                        [x, -y]
                    })
                    .collect()
            })
            .collect();
        shapes.push((country, rings));
    }
    let scale = (W - 2.0 * MARGIN) / (x1 - x0);
    let top = 70.0;
    let map_height = (y1 - y0) * scale;
    let project = |[x, y]: Point| [MARGIN + (x - x0) * scale, top + (y - y0) * scale];

    let mut body = String::new();
    let mut drawn = std::collections::BTreeSet::new();
    let _ = writeln!(
        body,
        r##"<rect x="{MARGIN}" y="{top}" width="{:.1}" height="{map_height:.1}" fill="#f4f8fb"/>"##,
        W - 2.0 * MARGIN
    );
    body.push_str("<g stroke=\"#fff\" stroke-width=\"0.5\" fill-rule=\"evenodd\">\n");
    for (country, rings) in &shapes {
        let d = path_data(rings, &project);
        let cell = country.code.as_deref().and_then(|c| cells.get(c));
        let (fill, extra, title) = match (cell, country.code.as_deref()) {
            (Some(cell), Some(code)) => {
                drawn.insert(code.to_owned());
                let probes = lang.plural("common.probes", cell.probes as u64, &[]);
                match &cell.share {
                    Some(share) => (
                        colour(share.share),
                        format!(
                            r#" data-country="{code}" data-n="{}" data-share="{:.4}""#,
                            cell.probes, share.share
                        ),
                        format!("{}: {}, {probes}", label(lang, code), interval(lang, share)),
                    ),
                    None => (
                        "url(#insufficient)".to_owned(),
                        format!(
                            r##" data-country="{code}" data-n="{}" class="insufficient" stroke="#8a826a" stroke-dasharray="2 1.5""##,
                            cell.probes
                        ),
                        format!(
                            "{}: {}, {probes}",
                            label(lang, code),
                            lang.t("common.insufficient")
                        ),
                    ),
                }
            }
            (None, Some(code)) => (
                NO_DATA.to_owned(),
                String::new(),
                format!("{}: {}", label(lang, code), lang.t("svg.no_data_key")),
            ),
            (_, None) => (NO_DATA.to_owned(), String::new(), country.name.clone()),
        };
        let _ = writeln!(
            body,
            r#"<path d="{d}" fill="{fill}"{extra}><title>{}</title></path>"#,
            esc(&title)
        );
    }
    body.push_str("</g>\n");

    let title = lang.t("svg.world_title");
    let mut doc = Doc {
        out: String::new(),
        lang,
        width: W,
    };
    doc.text(16.0, 30.0, 20.0, true, title);
    doc.text(
        16.0,
        52.0,
        13.0,
        false,
        &lang.fmt("svg.world_subtitle", &[("when", &map.when)]),
    );
    doc.out.push_str(&body);
    // The colour scale, 0 % on the reading side's start.
    let mut y = top + map_height + 26.0;
    doc.text(16.0, y, 12.0, false, lang.t("map.scale"));
    y += 8.0;
    let rtl = lang.dir == Dir::Rtl;
    let bar_x = if rtl { W - 16.0 - 320.0 } else { 16.0 };
    // Right to left, the scale runs from the right like its ticks.
    let _ = writeln!(
        doc.out,
        r##"<rect x="{bar_x:.1}" y="{y:.1}" width="320" height="13" fill="url(#{})" stroke="#b9c2cc"/>"##,
        if rtl { "scale-rtl" } else { "scale" }
    );
    y += 27.0;
    for i in 0..=4 {
        let share = i as f64 / 4.0;
        let along = 320.0 * share;
        let x = if rtl { W - 16.0 - along } else { 16.0 + along };
        let anchor = match (i, rtl) {
            (0, false) | (4, true) => "start",
            (4, false) | (0, true) => "end",
            _ => "middle",
        };
        let _ = writeln!(
            doc.out,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="11" text-anchor="{anchor}">{}</text>"#,
            esc(&lang.percent(share, 0))
        );
    }
    y += 24.0;
    y = footer(&mut doc, y, &map.method_id, map.min_probes, true);
    // Countries with figures the atlas has no shape for (too small at 1:110m).
    let off: Vec<String> = map
        .cells
        .iter()
        .filter(|c| !drawn.contains(&c.country))
        .map(|c| match &c.share {
            Some(share) => format!("{}: {}", label(lang, &c.country), interval(lang, share)),
            None => format!(
                "{}: {}",
                label(lang, &c.country),
                lang.t("common.insufficient")
            ),
        })
        .collect();
    if !off.is_empty() {
        const LISTED: usize = 20;
        let mut text = off
            .iter()
            .take(LISTED)
            .cloned()
            .collect::<Vec<_>>()
            .join(lang.t("common.list_separator"));
        if off.len() > LISTED {
            text.push_str(&lang.fmt(
                "svg.and_more",
                &[("n", &lang.integer((off.len() - LISTED) as u64))],
            ));
        }
        y = doc.paragraph(
            16.0,
            y + 4.0,
            11.0,
            &lang.fmt("svg.not_on_map", &[("countries", &text)]),
        );
    }
    let height = y + 6.0;
    Ok(open(W, height, lang, title) + &doc.out + "</svg>\n")
}

/// A view of some parts in a `w`×`h` box at (`left`, `top`): equirectangular with true scale
/// along the middle parallel (fine at a country's scale), the parts' box padded and centred.
struct View {
    w0: f64,
    n0: f64,
    k: f64,
    scale: f64,
    left: f64,
    top: f64,
    /// The degrees shown: west, south, east, north.
    shown: [f64; 4],
}

impl View {
    fn fit(b: [f64; 4], left: f64, top: f64, w: f64, h: f64, least: f64) -> Self {
        let pad_lon = ((b[2] - b[0]) * 0.08).max(least);
        let pad_lat = ((b[3] - b[1]) * 0.08).max(least);
        let (mut west, mut east) = (b[0] - pad_lon, b[2] + pad_lon);
        let (mut south, mut north) = ((b[1] - pad_lat).max(-85.0), (b[3] + pad_lat).min(85.0));
        let k = ((south + north) / 2.0).to_radians().cos().max(0.05);
        let scale = (w / ((east - west) * k)).min(h / (north - south));
        let grow_lon = (w / scale / k - (east - west)) / 2.0;
        let grow_lat = (h / scale - (north - south)) / 2.0;
        west -= grow_lon;
        east += grow_lon;
        south -= grow_lat;
        north += grow_lat;
        Self {
            w0: west,
            n0: north,
            k,
            scale,
            left,
            top,
            shown: [west, south, east, north],
        }
    }

    fn project(&self, [lon, lat]: Point) -> Point {
        [
            self.left + (lon - self.w0) * self.k * self.scale,
            self.top + (self.n0 - lat) * self.scale,
        ]
    }

    fn shows(&self, b: [f64; 4]) -> bool {
        b[2] >= self.shown[0]
            && b[0] <= self.shown[2]
            && b[3] >= self.shown[1]
            && b[1] <= self.shown[3]
    }

    fn contains(&self, [lon, lat]: Point) -> bool {
        lon >= self.shown[0] && lon <= self.shown[2] && lat >= self.shown[1] && lat <= self.shown[3]
    }
}

/// Every atlas country's parts that `view` shows, the target's in its own style.
fn land(out: &mut String, view: &View, target: Option<&str>, shift: bool, clip: &str) {
    let Ok(atlas) = atlas::atlas() else {
        return;
    };
    let _ = writeln!(out, r#"<g clip-path="url(#{clip})" fill-rule="evenodd">"#);
    for country in &atlas.countries {
        let is_target = country.code.as_deref() == target && target.is_some();
        let rings: Vec<Ring> = country
            .polygons
            .iter()
            .flat_map(|p| p.rings.iter())
            .flat_map(|r| atlas::split_at_antimeridian(r))
            .map(|r| if shift { atlas::shift_ring(&r) } else { r })
            .filter(|r| atlas::bounds([r]).is_some_and(|b| view.shows(b)))
            .collect();
        if rings.is_empty() {
            continue;
        }
        let style = if is_target {
            r##"fill="#c9d8b6" stroke="#5d6975" stroke-width="1""##
        } else {
            r##"fill="#dfe3e8" stroke="#fff" stroke-width="0.6""##
        };
        let _ = writeln!(
            out,
            r#"<path d="{}" {style}/>"#,
            path_data(&rings, &|p| view.project(p))
        );
    }
    out.push_str("</g>\n");
}

fn dot(out: &mut String, [x, y]: Point, works: Option<bool>) {
    let _ = match works {
        None => writeln!(
            out,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="5" fill="#9e9e9e" stroke="#fff" stroke-width="1.2"/>"##
        ),
        Some(true) => writeln!(
            out,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="6" fill="#1a9850" stroke="#fff" stroke-width="1.2"/>"##
        ),
        Some(false) => writeln!(
            out,
            r##"<rect x="-5.5" y="-5.5" width="11" height="11" transform="translate({x:.1} {y:.1}) rotate(45)" fill="#d73027" stroke="#fff" stroke-width="1.2"/>"##
        ),
    };
}

/// A located probe farther than this from its country's metropolitan box (and outside its
/// insets) is not drawn (`countryLayout` in the page does the same).
pub const FAR_DOT_DEGREES: f64 = 5.0;

/// Pixel sizes of the country view and of its insets.
pub const COUNTRY_W: f64 = 900.0;
pub const COUNTRY_MAP_H: f64 = 500.0;
const INSET_W: f64 = 190.0;
const INSET_H: f64 = 130.0;

/// The boxes (in degrees) a country view draws: the metropolitan view, then each inset.
pub fn country_boxes(code: &str) -> Option<([f64; 4], Vec<[f64; 4]>)> {
    let atlas = atlas::atlas().ok()?;
    let (parts, _) = atlas::parts(atlas.country(code)?);
    let layout = atlas::layout(parts);
    let main = layout.main_bounds()?;
    let insets = layout
        .insets
        .iter()
        .filter_map(|parts| atlas::bounds(parts.iter().flat_map(|p| p.rings.iter().take(1))))
        .collect();
    Some((main, insets))
}

/// One country: its outline and neighbours in the metropolitan view, its overseas parts in
/// insets along the bottom, the probes with a location, the national figure (or "insufficient
/// data") and the keys.
pub fn country(view: &CountryView, lang: &Language) -> Result<String, &'static atlas::AtlasError> {
    let atlas = atlas::atlas()?;
    let code = view.country.as_str();
    let name = label(lang, code);
    let title = lang.fmt("svg.country_title", &[("country", &name)]);
    let mut doc = Doc {
        out: String::new(),
        lang,
        width: COUNTRY_W,
    };
    doc.text(16.0, 30.0, 20.0, true, &title);
    let figure = match &view.share {
        Some(share) => lang.fmt(
            "svg.country_share",
            &[
                ("share", &interval(lang, share)),
                (
                    "probes",
                    &lang.plural("common.probes", view.probes as u64, &[]),
                ),
                (
                    "operators",
                    &lang.plural("common.operators", view.operators as u64, &[]),
                ),
            ],
        ),
        None => lang.fmt(
            "svg.country_insufficient",
            &[
                (
                    "probes",
                    &lang.plural("common.probes", view.probes as u64, &[]),
                ),
                (
                    "fewer_than",
                    &lang.plural("common.fewer_than_probes", view.min_probes as u64, &[]),
                ),
            ],
        ),
    };
    doc.text(16.0, 52.0, 13.0, false, &figure);
    doc.text(16.0, 70.0, 12.0, false, &view.when);
    let top = 82.0;
    let target = atlas.country(code);
    let (parts, shift) = target.map(atlas::parts).unwrap_or_default();
    let layout = atlas::layout(parts);
    let place = |lon: f64, lat: f64| -> Point {
        if shift && lon < 0.0 {
            [lon + 360.0, lat]
        } else {
            [lon, lat]
        }
    };
    let dots: Vec<(Point, Option<bool>)> = view
        .dots
        .iter()
        .map(|d| (place(d.lon, d.lat), d.works))
        .collect();
    let inset_boxes: Vec<[f64; 4]> = layout
        .insets
        .iter()
        .filter_map(|parts: &Vec<Part>| {
            atlas::bounds(parts.iter().flat_map(|p| p.rings.iter().take(1)))
        })
        .collect();
    // The metropolitan view holds the main parts and the dots no inset holds.
    let in_inset = |p: Point| {
        inset_boxes.iter().any(|b| {
            p[0] >= b[0] - 1.0 && p[0] <= b[2] + 1.0 && p[1] >= b[1] - 1.0 && p[1] <= b[3] + 1.0
        })
    };
    let main_box = layout.main_bounds().or_else(|| {
        let free: Vec<Ring> = dots
            .iter()
            .filter(|d| !in_inset(d.0))
            .map(|d| vec![d.0])
            .collect();
        atlas::bounds(free.iter())
    });
    let mut clip_defs = String::new();
    let mut drawing = String::new();
    if let Some(b) = main_box {
        // Dots near the country widen the view; one far away (a probe whose address the
        // prefix data places here, abroad) is not drawn rather than shrink the country.
        let free: Vec<Ring> = dots
            .iter()
            .filter(|d| {
                !in_inset(d.0)
                    && (target.is_none()
                        || atlas::gap_to([d.0[0], d.0[1], d.0[0], d.0[1]], b) <= FAR_DOT_DEGREES)
            })
            .map(|d| vec![d.0])
            .collect();
        let b = atlas::bounds(
            free.iter()
                .chain(std::iter::once(&vec![[b[0], b[1]], [b[2], b[3]]])),
        )
        .unwrap_or(b);
        let least = if target.is_some() { 1.0 } else { 3.0 };
        let main = View::fit(b, 0.0, top, COUNTRY_W, COUNTRY_MAP_H, least);
        let _ = writeln!(
            clip_defs,
            r#"<clipPath id="main"><rect x="0" y="{top}" width="{COUNTRY_W}" height="{COUNTRY_MAP_H}"/></clipPath>"#
        );
        let _ = writeln!(
            drawing,
            r##"<rect x="0" y="{top}" width="{COUNTRY_W}" height="{COUNTRY_MAP_H}" fill="#eaf2f8"/>"##
        );
        land(&mut drawing, &main, Some(code), shift, "main");
        for (p, works) in &dots {
            if !in_inset(*p) && main.contains(*p) {
                dot(&mut drawing, main.project(*p), *works);
            }
        }
        // Insets along the bottom, from the start of the reading direction's opposite side
        // (bottom left: the map is never mirrored).
        for (i, b) in inset_boxes.iter().enumerate() {
            let left = 8.0 + i as f64 * (INSET_W + 8.0);
            let inset_top = top + COUNTRY_MAP_H - INSET_H - 8.0;
            let view = View::fit(*b, left, inset_top, INSET_W, INSET_H, 0.5);
            let id = format!("inset{i}");
            let _ = writeln!(
                clip_defs,
                r#"<clipPath id="{id}"><rect x="{left:.1}" y="{inset_top:.1}" width="{INSET_W}" height="{INSET_H}"/></clipPath>"#
            );
            let _ = writeln!(
                drawing,
                r##"<g class="inset"><rect x="{left:.1}" y="{inset_top:.1}" width="{INSET_W}" height="{INSET_H}" fill="#eaf2f8" stroke="#5d6975" stroke-width="1"/>"##
            );
            land(&mut drawing, &view, Some(code), shift, &id);
            for (p, works) in &dots {
                if view.contains(*p) {
                    dot(&mut drawing, view.project(*p), *works);
                }
            }
            drawing.push_str("</g>\n");
        }
    } else {
        doc.text(16.0, top + 24.0, 12.0, false, lang.t("country.no_outline"));
    }
    doc.out.push_str(&format!("<defs>{clip_defs}</defs>\n"));
    doc.out.push_str(&drawing);
    let mut y = top + COUNTRY_MAP_H + 24.0;
    // The dots' keys, side by side.
    let keys = [
        (Some(true), "country.key_works"),
        (Some(false), "country.key_broken"),
        (None, "country.key_unknown"),
    ];
    let rtl = lang.dir == Dir::Rtl;
    // Keys only for dots there are (a stored day keeps no probe locations).
    let keys = if view.dots.is_empty() {
        &keys[..0]
    } else {
        &keys[..]
    };
    for (i, (works, key)) in keys.iter().enumerate() {
        let x = 24.0 + i as f64 * 290.0;
        let at = if rtl { COUNTRY_W - x } else { x };
        dot(&mut doc.out, [at, y - 4.0], *works);
        doc.text(x + 14.0, y, 12.0, false, lang.t(key));
    }
    if !keys.is_empty() {
        y += 24.0;
    }
    if !layout.insets.is_empty() || layout.left_out > 0 {
        y = doc.paragraph(16.0, y, 11.0, lang.t("svg.insets_note"));
        y += 4.0;
    }
    y = footer(&mut doc, y, &view.method_id, view.min_probes, false);
    let height = y + 6.0;
    Ok(open(COUNTRY_W, height, lang, &title) + &doc.out + "</svg>\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(p: f64) -> Proportion {
        Proportion {
            share: p,
            low: (p - 0.2).max(0.0),
            high: (p + 0.2).min(1.0),
            n: 9.0,
            successes: p * 9.0,
        }
    }

    /// Well-formed XML, by Python's parser (the files are for other programs, not only browsers).
    fn assert_well_formed(svg: &str) {
        use std::io::Write;
        let mut child = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys, xml.dom.minidom; xml.dom.minidom.parseString(sys.stdin.buffer.read())",
            ])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("python3 checks the XML");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(svg.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "not well-formed:\n{svg}");
    }

    /// The `<path>` element of a country on the world map.
    fn path_of<'a>(svg: &'a str, code: &str) -> &'a str {
        let at = svg.find(&format!("data-country=\"{code}\"")).unwrap();
        let start = svg[..at].rfind("<path").unwrap();
        let end = at + svg[at..].find("</path>").unwrap();
        &svg[start..end]
    }

    fn world_of(lang: &Language) -> String {
        world(
            &World {
                cells: vec![
                    Cell {
                        country: "FR".into(),
                        probes: 9,
                        share: Some(share(0.75)),
                    },
                    Cell {
                        country: "BR".into(),
                        probes: 2,
                        share: None,
                    },
                    // No shape at 1:110m: listed under the map.
                    Cell {
                        country: "SG".into(),
                        probes: 4,
                        share: Some(share(0.5)),
                    },
                ],
                when: "Figures as of <now>".into(),
                method_id: "sixmap-map/2".into(),
                min_probes: 3,
            },
            lang,
        )
        .unwrap()
    }

    #[test]
    fn the_world_svg_shows_shares_hatches_small_cells_and_says_how() {
        let catalog = crate::i18n::builtin();
        let en = catalog.find("en").unwrap();
        let svg = world_of(en);
        assert_well_formed(&svg);
        assert!(svg.contains("<title>IPv6 by country</title>"), "{svg}");
        let fr = path_of(&svg, "FR");
        assert!(fr.contains(&format!("fill=\"{}\"", colour(0.75))), "{fr}");
        assert!(fr.contains("France (FR): 75 % (55–95 %), 9 probes"), "{fr}");
        // Brazil, under the minimum: the hatch and the words, never a share.
        let br = path_of(&svg, "BR");
        assert!(
            br.contains("url(#insufficient)") && br.contains("insufficient data"),
            "{br}"
        );
        assert!(!br.contains("data-share") && !br.contains('%'), "{br}");
        assert!(svg.contains("insufficient data (fewer than 3 probes: no share is published)"));
        // Escaped text, the date, the method and the attribution are in the file.
        assert!(svg.contains("Figures as of &lt;now&gt;"), "{svg}");
        assert!(
            svg.contains("Method sixmap-map/2. Minimum sample: 3 probes"),
            "{svg}"
        );
        assert!(
            svg.contains("DB-IP") && svg.contains("CC BY 4.0") && svg.contains("Natural Earth")
        );
        assert!(
            svg.contains("Too small for this map: Singapore (SG): 50 %"),
            "{svg}"
        );
        // No script, nothing fetched: it prints and publishes as is.
        assert!(!svg.contains("<script") && !svg.contains("href"), "{svg}");
        // Every atlas country is drawn (Antarctica left out).
        assert!(svg.matches("<path").count() > 170);

        // Arabic: right to left text, Arabic words and digits; the map is the same map.
        let ar = catalog.find("ar").unwrap();
        let svg_ar = world_of(ar);
        assert_well_formed(&svg_ar);
        assert!(svg_ar.contains("direction=\"rtl\"") && svg_ar.contains("lang=\"ar\""));
        assert!(
            svg_ar.contains("IPv6 حسب الدولة") && svg_ar.contains("٧٥"),
            "{svg_ar}"
        );
        let fill = |path: &str| {
            path.split("fill=")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .to_owned()
        };
        assert_eq!(fill(path_of(&svg_ar, "FR")), fill(fr));
    }

    #[test]
    fn the_country_svg_draws_territories_in_insets() {
        let catalog = crate::i18n::builtin();
        let en = catalog.find("en").unwrap();
        let view = |country: &str, share: Option<Proportion>, dots: Vec<Dot>| CountryView {
            country: country.into(),
            probes: 9,
            operators: 3,
            share,
            dots,
            when: "now".into(),
            method_id: "sixmap-map/2".into(),
            min_probes: 3,
        };
        // A probe in Paris and one in Cayenne (French Guiana).
        let svg = country(
            &view(
                "FR",
                Some(share(0.75)),
                vec![
                    Dot {
                        lon: 2.3,
                        lat: 48.9,
                        works: Some(true),
                    },
                    Dot {
                        lon: -52.3,
                        lat: 4.9,
                        works: Some(false),
                    },
                ],
            ),
            en,
        )
        .unwrap();
        assert_well_formed(&svg);
        assert!(svg.contains("<title>IPv6 in France (FR)</title>"));
        assert!(
            svg.contains("IPv6 works: 75 % (55–95 %) (operator-balanced); 9 probes, 3 operators.")
        );
        assert_eq!(
            svg.matches("class=\"inset\"").count(),
            1,
            "French Guiana's inset"
        );
        assert!(svg.contains("Overseas parts of the country"));
        // Paris is in the main view's upper half, Cayenne's dot in the inset at the bottom.
        let circle = svg.find("<circle cx=").unwrap();
        let y: f64 = svg[circle..]
            .split("cy=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(y < 82.0 + COUNTRY_MAP_H / 2.0, "Paris at y {y}");
        let inset = svg.find("class=\"inset\"").unwrap();
        let red = svg.find("fill=\"#d73027\"").unwrap();
        assert!(red > inset, "Cayenne's dot is drawn in the inset");
        // A probe far abroad is not drawn and does not shrink France to a dot.
        let far = country(
            &view(
                "FR",
                Some(share(0.75)),
                vec![Dot {
                    lon: -150.0,
                    lat: 61.2,
                    works: None,
                }],
            ),
            en,
        )
        .unwrap();
        assert_eq!(
            far.matches("fill=\"#9e9e9e\"").count(),
            1,
            "only the key's grey dot"
        );
        let france = |svg: &str| {
            let at = svg.find("fill=\"#c9d8b6\"").unwrap();
            svg[svg[..at].rfind("<path").unwrap()..at].to_owned()
        };
        assert_eq!(france(&far), france(&svg), "the view stays on France");
        // Without enough probes: the words only.
        let small = country(&view("FR", None, Vec::new()), en).unwrap();
        assert!(
            !small.contains("probe: IPv6 works"),
            "no dot keys without dots"
        );
        assert!(
            small.contains(
                "Insufficient data: 9 probes, fewer than 3 probes; no share is published."
            )
        );
        assert!(!small.contains("75 %"));
        // The US: Alaska and Hawaii in insets.
        let us = country(&view("US", Some(share(0.5)), Vec::new()), en).unwrap();
        assert_well_formed(&us);
        assert_eq!(us.matches("class=\"inset\"").count(), 2);
        let (main, insets) = country_boxes("US").unwrap();
        assert!(main[0] > -126.0 && main[3] < 50.0, "{main:?}");
        assert_eq!(insets.len(), 2);
    }
}
