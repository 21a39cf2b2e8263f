// Shared by the map pages (/map and /map/CC): number formats, fetching, and the atlas's rings.
// Needs i18n.js before it.
// Loaded before each page's own script; classic script, so these names are page globals.
"use strict";

// In the page's language (i18n.js, loaded first): digits by Intl, patterns from [number].
const pct = x => t("number.percent", { n: num(Math.round(x * 100)) });
const interval = p => t("number.interval", { share: pct(p.share), low: num(Math.round(p.low * 100)), high: num(Math.round(p.high * 100)) });
const ms = x => x == null ? "—" : t("number.ms", { n: num(x, 1) });
const signedMs = x => x == null ? "—" : (x > 0 ? "+" : x < 0 ? "−" : "") + t("number.ms", { n: num(Math.abs(x), 1) });

async function getJson(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

function rings(geometry) {
  if (!geometry) return [];
  const all = geometry.type === "Polygon" ? geometry.coordinates
    : geometry.type === "MultiPolygon" ? geometry.coordinates.flat() : [];
  return all.flatMap(splitAtAntimeridian);
}

// The atlas has rings that cross the ±180° meridian (Fiji, Chukotka): cut them there into an
// eastern and a western ring, so that no edge runs across the whole map.
function splitAtAntimeridian(ring) {
  const u = [ring[0]];
  for (let i = 1; i < ring.length; i++) {
    let lon = ring[i][0];
    const prev = u[i - 1][0];
    while (lon - prev > 180) lon -= 360;
    while (lon - prev < -180) lon += 360;
    u.push([lon, ring[i][1]]);
  }
  const last = u[u.length - 1][0];
  if (!u.some(([lon]) => lon > 180 || lon < -180) || Math.abs(last - u[0][0]) > 1e-9) return [ring];
  const m = u.some(([lon]) => lon > 180) ? 180 : -180;
  const clip = inside => { // Sutherland–Hodgman against one side of the meridian
    const out = [];
    for (let i = 0; i + 1 < u.length; i++) {
      const [p, q] = [u[i], u[i + 1]], [pi, qi] = [inside(p[0]), inside(q[0])];
      if (pi) out.push(p);
      if (pi !== qi) out.push([m, p[1] + (m - p[0]) / (q[0] - p[0]) * (q[1] - p[1])]);
    }
    if (out.length) out.push(out[0]);
    return out;
  };
  const beyond = clip(lon => (m > 0 ? lon >= m : lon <= m)).map(([lon, lat]) => [lon - 2 * m, lat]);
  return [clip(lon => (m > 0 ? lon <= m : lon >= m)), beyond].filter(r => r.length >= 4);
}
