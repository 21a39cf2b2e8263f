//! The country shapes of the embedded atlas (Natural Earth 1:110m via `world-atlas`, the same
//! file the pages draw: `assets/countries-110m.json`), decoded once from its TopoJSON, and the
//! geometry both map downloads need: the Natural Earth projection, the cut at ±180°, and the
//! split of a country into its metropolitan part and overseas territories (drawn as insets).
//! `assets/maps-common.js` does the same for the pages; the two are kept alike.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// A point: degrees of longitude and latitude.
pub type Point = [f64; 2];
/// A closed ring of points.
pub type Ring = Vec<Point>;

/// One polygon of a country: its outer ring, then its holes.
#[derive(Debug, Clone)]
pub struct Polygon {
    pub rings: Vec<Ring>,
}

#[derive(Debug, Clone)]
pub struct Country {
    /// ISO 3166 alpha-2 code, when the atlas's numeric id (or name) maps to one.
    pub code: Option<String>,
    /// The atlas's English name (used only where there is no code).
    pub name: String,
    pub polygons: Vec<Polygon>,
}

#[derive(Debug)]
pub struct Atlas {
    pub countries: Vec<Country>,
}

#[derive(Debug, thiserror::Error)]
pub enum AtlasError {
    #[error("the embedded atlas does not parse: {0}")]
    Parse(String),
    #[error("the embedded atlas names arc {0}, which it does not have")]
    Arc(i64),
}

#[derive(Deserialize)]
struct Topology {
    arcs: Vec<Vec<[i64; 2]>>,
    transform: Transform,
    objects: Objects,
}

#[derive(Deserialize)]
struct Transform {
    scale: [f64; 2],
    translate: [f64; 2],
}

#[derive(Deserialize)]
struct Objects {
    countries: Collection,
}

#[derive(Deserialize)]
struct Collection {
    geometries: Vec<Geometry>,
}

#[derive(Deserialize)]
struct Geometry {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    arcs: serde_json::Value,
    id: Option<String>,
    #[serde(default)]
    properties: Properties,
}

#[derive(Deserialize, Default)]
struct Properties {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct Iso {
    numeric_to_alpha2: BTreeMap<String, String>,
    atlas_names: BTreeMap<String, String>,
}

const TOPOJSON: &[u8] = include_bytes!("../../assets/countries-110m.json");
const ISO: &[u8] = include_bytes!("../../assets/iso3166.json");

/// The atlas, decoded at its first use and kept (about 100 kB of points).
pub fn atlas() -> Result<&'static Atlas, &'static AtlasError> {
    static ATLAS: OnceLock<Result<Atlas, AtlasError>> = OnceLock::new();
    ATLAS.get_or_init(decode).as_ref()
}

fn decode() -> Result<Atlas, AtlasError> {
    let topology: Topology =
        serde_json::from_slice(TOPOJSON).map_err(|e| AtlasError::Parse(e.to_string()))?;
    let iso: Iso = serde_json::from_slice(ISO).map_err(|e| AtlasError::Parse(e.to_string()))?;
    // Quantized, delta-encoded arcs to degrees.
    let [sx, sy] = topology.transform.scale;
    let [tx, ty] = topology.transform.translate;
    let arcs: Vec<Vec<Point>> = topology
        .arcs
        .iter()
        .map(|arc| {
            let (mut x, mut y) = (0i64, 0i64);
            arc.iter()
                .map(|[dx, dy]| {
                    x += dx;
                    y += dy;
                    [x as f64 * sx + tx, y as f64 * sy + ty]
                })
                .collect()
        })
        .collect();
    let ring = |indexes: &[i64]| -> Result<Ring, AtlasError> {
        let mut points: Ring = Vec::new();
        for &i in indexes {
            // A negative index is the one's complement of an arc walked backwards.
            let (index, reversed) = if i < 0 { (!i, true) } else { (i, false) };
            let arc = usize::try_from(index)
                .ok()
                .and_then(|k| arcs.get(k))
                .ok_or(AtlasError::Arc(i))?;
            // Consecutive arcs share their joining point.
            points.pop();
            if reversed {
                points.extend(arc.iter().rev());
            } else {
                points.extend(arc.iter());
            }
        }
        Ok(points)
    };
    let parse = |value: &serde_json::Value| -> Result<Vec<Vec<i64>>, AtlasError> {
        serde_json::from_value(value.clone()).map_err(|e| AtlasError::Parse(e.to_string()))
    };
    let mut countries = Vec::new();
    for geometry in topology.objects.countries.geometries {
        let polygons: Vec<Vec<Vec<i64>>> = match geometry.kind.as_str() {
            "Polygon" => vec![parse(&geometry.arcs)?],
            "MultiPolygon" => serde_json::from_value(geometry.arcs.clone())
                .map_err(|e| AtlasError::Parse(e.to_string()))?,
            _ => continue,
        };
        let polygons = polygons
            .iter()
            .map(|rings| {
                Ok(Polygon {
                    rings: rings
                        .iter()
                        .map(|r| ring(r))
                        .collect::<Result<_, AtlasError>>()?,
                })
            })
            .collect::<Result<Vec<_>, AtlasError>>()?;
        let code = match &geometry.id {
            Some(id) => iso.numeric_to_alpha2.get(id).cloned(),
            None => iso.atlas_names.get(&geometry.properties.name).cloned(),
        };
        countries.push(Country {
            code,
            name: geometry.properties.name,
            polygons,
        });
    }
    Ok(Atlas { countries })
}

impl Atlas {
    pub fn country(&self, code: &str) -> Option<&Country> {
        self.countries
            .iter()
            .find(|c| c.code.as_deref() == Some(code))
    }
}

/// Natural Earth I projection (Šavrič et al. 2011, polynomial form): degrees in, unit plane out
/// (y up). The world page's script uses the same.
pub fn natural_earth([lon, lat]: Point) -> Point {
    let l = lon.to_radians();
    let p = lat.to_radians();
    let p2 = p * p;
    let p4 = p2 * p2;
    [
        l * (0.8707 - 0.131979 * p2 + p4 * (-0.013791 + p4 * (0.003971 * p2 - 0.001529 * p4))),
        p * (1.007226 + p2 * (0.015085 + p4 * (-0.044475 + 0.028874 * p2 - 0.005916 * p4))),
    ]
}

/// A ring that crosses ±180° (Fiji, Chukotka) cut there into an eastern and a western ring,
/// so that no edge runs across the whole map (`splitAtAntimeridian` in maps-common.js).
pub fn split_at_antimeridian(ring: &[Point]) -> Vec<Ring> {
    let Some(&first) = ring.first() else {
        return Vec::new();
    };
    let mut u: Ring = vec![first];
    for point in &ring[1..] {
        let prev = u[u.len() - 1][0];
        let mut lon = point[0];
        while lon - prev > 180.0 {
            lon -= 360.0;
        }
        while lon - prev < -180.0 {
            lon += 360.0;
        }
        u.push([lon, point[1]]);
    }
    let last = u[u.len() - 1][0];
    let crosses = u.iter().any(|p| p[0] > 180.0 || p[0] < -180.0);
    if !crosses || (last - u[0][0]).abs() > 1e-9 {
        return vec![ring.to_vec()];
    }
    let m = if u.iter().any(|p| p[0] > 180.0) {
        180.0
    } else {
        -180.0
    };
    // Sutherland–Hodgman against one side of the meridian.
    let clip = |inside: &dyn Fn(f64) -> bool| -> Ring {
        let mut out = Vec::new();
        for pair in u.windows(2) {
            let (p, q) = (pair[0], pair[1]);
            let (pi, qi) = (inside(p[0]), inside(q[0]));
            if pi {
                out.push(p);
            }
            if pi != qi {
                out.push([m, p[1] + (m - p[0]) / (q[0] - p[0]) * (q[1] - p[1])]);
            }
        }
        if let Some(&start) = out.first() {
            out.push(start);
        }
        out
    };
    let near = clip(&|lon| if m > 0.0 { lon <= m } else { lon >= m });
    let beyond: Ring = clip(&|lon| if m > 0.0 { lon >= m } else { lon <= m })
        .into_iter()
        .map(|[lon, lat]| [lon - 2.0 * m, lat])
        .collect();
    [near, beyond]
        .into_iter()
        .filter(|r| r.len() >= 4)
        .collect()
}

/// `[west, south, east, north]` of some rings; `None` without points.
pub fn bounds<'a>(rings: impl IntoIterator<Item = &'a Ring>) -> Option<[f64; 4]> {
    let mut b: Option<[f64; 4]> = None;
    for ring in rings {
        for &[lon, lat] in ring {
            b = Some(match b {
                None => [lon, lat, lon, lat],
                Some([w, s, e, n]) => [w.min(lon), s.min(lat), e.max(lon), n.max(lat)],
            });
        }
    }
    b
}

/// A ring lying entirely west of Greenwich moved by +360°: a country across ±180° (Russia,
/// Fiji, the US with the Aleutians) is drawn whole when that narrows its box (country.html's
/// `shiftRing`).
pub fn shift_ring(ring: &[Point]) -> Ring {
    if ring.iter().all(|p| p[0] < 0.0) {
        ring.iter().map(|&[lon, lat]| [lon + 360.0, lat]).collect()
    } else {
        ring.to_vec()
    }
}

/// One drawable piece of a country: the rings of a polygon after the cut at ±180° (each piece
/// of a cut outer ring is its own part; holes stay with the first), moved east when the
/// country is drawn shifted.
#[derive(Debug, Clone)]
pub struct Part {
    pub rings: Vec<Ring>,
    pub bounds: [f64; 4],
}

/// The parts of a country as its own view draws them, and whether they were moved east.
pub fn parts(country: &Country) -> (Vec<Part>, bool) {
    let mut pieces: Vec<Vec<Ring>> = Vec::new();
    for polygon in &country.polygons {
        let Some((outer, holes)) = polygon.rings.split_first() else {
            continue;
        };
        for (i, piece) in split_at_antimeridian(outer).into_iter().enumerate() {
            let mut rings = vec![piece];
            if i == 0 {
                rings.extend(holes.iter().flat_map(|h| split_at_antimeridian(h)));
            }
            pieces.push(rings);
        }
    }
    let plain = bounds(pieces.iter().flatten());
    let moved: Vec<Vec<Ring>> = pieces
        .iter()
        .map(|rings| rings.iter().map(|r| shift_ring(r)).collect())
        .collect();
    let shifted = bounds(moved.iter().flatten());
    let shift = match (plain, shifted) {
        (Some(p), Some(m)) => m[2] - m[0] < p[2] - p[0],
        _ => false,
    };
    let chosen = if shift { moved } else { pieces };
    let parts = chosen
        .into_iter()
        .filter_map(|rings| {
            let bounds = bounds(rings.iter().take(1))?;
            Some(Part { rings, bounds })
        })
        .collect();
    (parts, shift)
}

/// Width and height of a box in degrees of latitude (longitude shrunk by the cosine of the
/// middle latitude), so boxes at any latitude compare.
fn extent(b: [f64; 4]) -> (f64, f64) {
    let k = ((b[1] + b[3]) / 2.0).to_radians().cos().max(0.05);
    ((b[2] - b[0]) * k, b[3] - b[1])
}

fn area(b: [f64; 4]) -> f64 {
    let (w, h) = extent(b);
    w * h
}

fn union(a: [f64; 4], b: [f64; 4]) -> [f64; 4] {
    [
        a[0].min(b[0]),
        a[1].min(b[1]),
        a[2].max(b[2]),
        a[3].max(b[3]),
    ]
}

/// The distance between two boxes (0 when they touch or overlap), in degrees of latitude.
fn gap(a: [f64; 4], b: [f64; 4]) -> f64 {
    let k = ((a[1] + a[3] + b[1] + b[3]) / 4.0)
        .to_radians()
        .cos()
        .max(0.05);
    let dx = (a[0] - b[2]).max(b[0] - a[2]).max(0.0) * k;
    let dy = (a[1] - b[3]).max(b[1] - a[3]).max(0.0);
    dx.hypot(dy)
}

/// The distance between two boxes in degrees of latitude (0 when they meet).
pub fn gap_to(a: [f64; 4], b: [f64; 4]) -> f64 {
    gap(a, b)
}

/// A part this close to the metropolitan box (degrees) belongs to it whatever it adds…
pub const NEAR_DEGREES: f64 = 2.0;
/// …and a farther one too while the box it makes is at most this much larger.
pub const MAX_GROWTH: f64 = 1.5;
/// A part whose box is at least this share of the largest part's is metropolitan.
pub const MAJOR: f64 = 1.0 / 3.0;
/// Overseas parts this close to each other share an inset.
const CLUSTER_DEGREES: f64 = 4.0;
/// At most this many insets; smaller clusters beyond are left out of the drawing (the
/// figures count their probes all the same).
pub const MAX_INSETS: usize = 4;

/// A country split for drawing: the parts of its metropolitan view and its overseas groups,
/// each drawn in an inset of its own (France's Guiana, the US's Alaska and Hawaii, Norway's
/// Svalbard), so that territories far away do not shrink the country to a dot.
#[derive(Debug, Clone)]
pub struct Layout {
    pub main: Vec<Part>,
    pub insets: Vec<Vec<Part>>,
    /// Overseas groups beyond [`MAX_INSETS`], not drawn.
    pub left_out: usize,
}

impl Layout {
    pub fn main_bounds(&self) -> Option<[f64; 4]> {
        bounds(self.main.iter().flat_map(|p| p.rings.iter().take(1)))
    }
}

/// The metropolitan part is grown from the largest part (by the area of its box), until
/// nothing more joins: a part joins if its box is at least [`MAJOR`] of the largest's (a
/// country in two big pieces, Malaysia, stays whole), lies within [`NEAR_DEGREES`] of the
/// metropolitan box, or grows that box by at most [`MAX_GROWTH`]. The others are overseas,
/// grouped by nearness, the largest groups first.
pub fn layout(parts: Vec<Part>) -> Layout {
    let mut parts = parts;
    parts.sort_by(|a, b| area(b.bounds).total_cmp(&area(a.bounds)));
    let mut rest = parts.into_iter();
    let Some(first) = rest.next() else {
        return Layout {
            main: Vec::new(),
            insets: Vec::new(),
            left_out: 0,
        };
    };
    let largest = area(first.bounds);
    let mut box_ = first.bounds;
    let mut main = vec![first];
    let mut overseas: Vec<Part> = rest.collect();
    loop {
        let before = overseas.len();
        let mut still = Vec::new();
        for part in overseas {
            let grown = union(box_, part.bounds);
            if area(part.bounds) >= MAJOR * largest
                || gap(box_, part.bounds) <= NEAR_DEGREES
                || area(grown) <= MAX_GROWTH * area(box_).max(1.0)
            {
                box_ = grown;
                main.push(part);
            } else {
                still.push(part);
            }
        }
        overseas = still;
        if overseas.len() == before {
            break;
        }
    }
    let mut groups: Vec<([f64; 4], Vec<Part>)> = Vec::new();
    for part in overseas {
        match groups
            .iter_mut()
            .find(|(b, _)| gap(*b, part.bounds) <= CLUSTER_DEGREES)
        {
            Some((b, members)) => {
                *b = union(*b, part.bounds);
                members.push(part);
            }
            None => groups.push((part.bounds, vec![part])),
        }
    }
    groups.sort_by(|a, b| area(b.0).total_cmp(&area(a.0)));
    let left_out = groups.len().saturating_sub(MAX_INSETS);
    Layout {
        main,
        insets: groups
            .into_iter()
            .take(MAX_INSETS)
            .map(|(_, members)| members)
            .collect(),
        left_out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout_of(code: &str) -> Layout {
        let atlas = atlas().unwrap();
        let (parts, _) = parts(atlas.country(code).unwrap());
        layout(parts)
    }

    #[test]
    fn the_atlas_decodes_with_codes() {
        let atlas = atlas().unwrap();
        assert!(atlas.countries.len() > 170, "{}", atlas.countries.len());
        let de = atlas.country("DE").unwrap();
        let b = bounds(de.polygons.iter().flat_map(|p| p.rings.iter())).unwrap();
        // Germany: about 5.9–15.0 °E, 47.3–55.1 °N.
        assert!(
            (5.0..7.0).contains(&b[0]) && (14.0..16.0).contains(&b[2]),
            "{b:?}"
        );
        assert!(
            (47.0..48.0).contains(&b[1]) && (54.5..55.5).contains(&b[3]),
            "{b:?}"
        );
        assert!(atlas.country("XK").is_some(), "Kosovo by its atlas name");
    }

    /// The metropolitan view's box is the metropolitan country's, not one stretched across
    /// oceans by its territories.
    #[test]
    fn territories_do_not_dominate_the_metropolitan_view() {
        let fr = layout_of("FR");
        let b = fr.main_bounds().unwrap();
        assert!(
            b[0] > -6.0 && b[2] < 10.0 && b[1] > 41.0 && b[3] < 52.0,
            "France: {b:?}"
        );
        assert_eq!(fr.insets.len(), 1, "French Guiana in an inset");
        let guiana = bounds(fr.insets[0].iter().flat_map(|p| p.rings.iter())).unwrap();
        assert!(guiana[0] > -55.0 && guiana[2] < -51.0, "{guiana:?}");

        let us = layout_of("US");
        let b = us.main_bounds().unwrap();
        assert!(
            b[0] > -126.0 && b[2] < -66.0 && b[1] > 24.0 && b[3] < 50.0,
            "US: {b:?}"
        );
        // Alaska (with the Aleutians) and Hawaii, each in its own inset.
        assert_eq!(
            us.insets.len(),
            2,
            "{:?}",
            us.insets
                .iter()
                .map(|i| bounds(i.iter().flat_map(|p| p.rings.iter())))
                .collect::<Vec<_>>()
        );

        // Countries of islands near each other, or in two big pieces, stay whole.
        for code in [
            "JP", "GB", "NZ", "ID", "PH", "GR", "DK", "IT", "MY", "NO", "RU", "NL",
        ] {
            let layout = layout_of(code);
            assert!(
                layout.insets.is_empty(),
                "{code}: {} insets",
                layout.insets.len()
            );
        }

        // At 1:110m only France and the US have parts far enough to be insets.
        let atlas = atlas().unwrap();
        let with_insets: Vec<&str> = atlas
            .countries
            .iter()
            .filter(|c| !layout(parts(c).0).insets.is_empty())
            .filter_map(|c| c.code.as_deref())
            .collect();
        assert_eq!(with_insets, ["US", "FR"], "in atlas order");
    }

    #[test]
    fn a_ring_across_the_antimeridian_is_cut_in_two() {
        let ring = vec![
            [170.0, 0.0],
            [-170.0, 0.0],
            [-170.0, 10.0],
            [170.0, 10.0],
            [170.0, 0.0],
        ];
        let pieces = split_at_antimeridian(&ring);
        assert_eq!(pieces.len(), 2, "{pieces:?}");
        let b0 = bounds(pieces[..1].iter()).unwrap();
        let b1 = bounds(pieces[1..].iter()).unwrap();
        assert_eq!((b0[0], b0[2]), (170.0, 180.0));
        assert_eq!((b1[0], b1[2]), (-180.0, -170.0));
    }
}
