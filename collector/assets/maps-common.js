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

// ---- Downloads --------------------------------------------------------------------------

// The map as the server draws it (`?format=svg`, collector/src/map_svg), in this page's language.
const svgUrl = api => `${api}${api.includes("?") ? "&" : "?"}format=svg&lang=${encodeURIComponent(LANG)}`;

// A PNG of the server's SVG, made here: the SVG drawn into a canvas at `scale` times its size
// (no image library on the collector). Resolves to the PNG's Blob.
async function svgToPng(url, scale = 2) {
  const img = new Image();
  await new Promise((ok, fail) => {
    img.onload = ok;
    img.onerror = () => fail(new Error(url));
    img.src = url;
  });
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(img.naturalWidth * scale);
  canvas.height = Math.round(img.naturalHeight * scale);
  canvas.getContext("2d").drawImage(img, 0, 0, canvas.width, canvas.height);
  return new Promise((ok, fail) => canvas.toBlob(b => (b ? ok(b) : fail(new Error("canvas.toBlob"))), "image/png"));
}

// Points the SVG link at the server's SVG and makes the PNG button save its PNG as `name`.png.
function mapDownloads(svgLink, pngButton, api, name) {
  const url = svgUrl(api);
  svgLink.href = url;
  svgLink.setAttribute("download", `${name}.svg`);
  pngButton.onclick = async () => {
    try {
      const blob = await svgToPng(url);
      const a = Object.assign(document.createElement("a"), { href: URL.createObjectURL(blob), download: `${name}.png` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    } catch (e) {
      pngButton.after(Object.assign(document.createElement("span"), { className: "error small", textContent: " " + t("svg.png_failed", { error: isolate(e.message) }) }));
    }
  };
}

// ---- Overseas territories ------------------------------------------------------------------
// A country is drawn as its metropolitan part plus insets for far territories (France's Guiana,
// the US's Alaska and Hawaii, Norway's Svalbard), by the rule of collector/src/map_svg/atlas.rs
// (`layout`), kept alike: grown from the largest part until nothing joins, a part joins if its
// box is MAJOR of the largest's, within NEAR degrees, or grows the box at most GROWTH times;
// the rest are grouped by nearness into insets.

const LAYOUT = { NEAR: 2, GROWTH: 1.5, MAJOR: 1 / 3, CLUSTER: 4, MAX_INSETS: 4 };
const boxOf = ring => ring.reduce((b, [lon, lat]) =>
  [Math.min(b[0], lon), Math.min(b[1], lat), Math.max(b[2], lon), Math.max(b[3], lat)], [Infinity, Infinity, -Infinity, -Infinity]);
const boxUnion = (a, b) => [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[2], b[2]), Math.max(a[3], b[3])];
const boxArea = b => (b[2] - b[0]) * Math.max(Math.cos((b[1] + b[3]) / 2 * Math.PI / 180), 0.05) * (b[3] - b[1]);
function boxGap(a, b) {
  const k = Math.max(Math.cos((a[1] + a[3] + b[1] + b[3]) / 4 * Math.PI / 180), 0.05);
  const dx = Math.max(a[0] - b[2], b[0] - a[2], 0) * k, dy = Math.max(a[1] - b[3], b[1] - a[3], 0);
  return Math.hypot(dx, dy);
}

// `geometry`'s parts (each polygon's outer ring cut at ±180°, holes with the first piece),
// moved east as `shift` says: { main: [rings], insets: [[rings]], mainBox, insetBoxes }.
function countryLayout(geometry, shift) {
  const polygons = !geometry ? [] : geometry.type === "Polygon" ? [geometry.coordinates]
    : geometry.type === "MultiPolygon" ? geometry.coordinates : [];
  const parts = [];
  for (const [outer, ...holes] of polygons) {
    splitAtAntimeridian(outer).forEach((piece, i) => {
      const rings = [piece, ...(i ? [] : holes.flatMap(splitAtAntimeridian))].map(shift);
      parts.push({ rings, box: boxOf(rings[0]) });
    });
  }
  parts.sort((a, b) => boxArea(b.box) - boxArea(a.box));
  if (!parts.length) return { main: [], mainBox: null, insets: [], insetBoxes: [] };
  const largest = boxArea(parts[0].box), main = [parts[0]];
  let box = parts[0].box, overseas = parts.slice(1), before;
  do { // until nothing more joins
    before = overseas.length;
    const still = [];
    for (const part of overseas) {
      const grown = boxUnion(box, part.box);
      if (boxArea(part.box) >= LAYOUT.MAJOR * largest || boxGap(box, part.box) <= LAYOUT.NEAR ||
          boxArea(grown) <= LAYOUT.GROWTH * Math.max(boxArea(box), 1)) {
        box = grown; main.push(part);
      } else still.push(part);
    }
    overseas = still;
  } while (overseas.length !== before);
  const groups = [];
  for (const part of overseas) {
    const group = groups.find(g => boxGap(g.box, part.box) <= LAYOUT.CLUSTER);
    if (group) { group.box = boxUnion(group.box, part.box); group.parts.push(part); }
    else groups.push({ box: part.box, parts: [part] });
  }
  groups.sort((a, b) => boxArea(b.box) - boxArea(a.box));
  const insets = groups.slice(0, LAYOUT.MAX_INSETS);
  return { main: main.flatMap(p => p.rings), mainBox: box, insets: insets.map(g => g.parts.flatMap(p => p.rings)), insetBoxes: insets.map(g => g.box) };
}
