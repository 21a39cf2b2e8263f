// The country page's coverage section ("Where probes are missing, and another source"):
// reads /api/v1/maps/countries/CC/coverage and /api/v1/maps/comparison and fills the section's
// tables and line. Text only, never markup from the data. Served at /assets/coverage.js; a file
// of its own so the page's main inline script stays one piece.
(async () => {
  const code = decodeURIComponent(location.pathname.split("/").pop() || "").toUpperCase();
  if (!/^[A-Z]{2}$/.test(code)) return;
  const api = `/api/v1/maps/countries/${code}/coverage`;
  const link = document.getElementById("coverage-json");
  link.href = api; link.textContent = api;
  let c;
  try { const r = await fetch(api); if (!r.ok) return; c = await r.json(); } catch (e) { return; }
  const row = (body, cells) => {
    const tr = document.createElement("tr");
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      if (i > 0) td.className = "num";
      td.textContent = text;
      tr.appendChild(td);
    });
    body.appendChild(tr);
  };
  const name = o => o.as_name ? `${o.as_name} (AS${o.asn})` : `AS${o.asn}`;
  const num = n => n == null ? "–" : Math.round(n).toLocaleString();
  const withBody = document.querySelector("#coverage-with tbody");
  for (const o of c.operators) row(withBody, [name(o), String(o.probes), String(o.active)]);
  if (!c.operators.length) row(withBody, ["No probe yet", "0", "0"]);
  const withoutBody = document.querySelector("#coverage-without tbody");
  for (const u of c.uncovered) row(withoutBody, [name(u), num(u.v6_slash48s), num(u.users)]);
  if (!c.uncovered.length) row(withoutBody, ["None known from the prefix data", "", ""]);
  document.getElementById("coverage-rank").textContent = (c.ranked_by === "users"
    ? "Networks are ranked by their users (the collector's per-AS user counts)."
    : "Networks are ranked by the IPv6 space they announce here, a rough proxy for size.")
    + (c.uncovered_total > c.uncovered.length ? ` The ${c.uncovered.length} largest of ${c.uncovered_total} shown.` : "");
  document.getElementById("coverage").hidden = false;
  // Another source beside ours (APNIC, when imported): docs/methodology.md says why they differ.
  try {
    const r = await fetch("/api/v1/maps/comparison");
    const cmp = r.ok ? await r.json() : null;
    const row = cmp && cmp.other_source && cmp.countries.find(x => x.country === code);
    if (row && row.apnic_capable != null) {
      const pc = x => `${Math.round(x * 100)} %`;
      const ours = row.ours ? `${pc(row.ours.share)} of probes here (operator-balanced)` : "insufficient data here";
      const p = document.getElementById("comparison");
      p.textContent = `Other source: APNIC Labs measured ${pc(row.apnic_capable)} of users IPv6-capable` +
        (row.apnic_preferred != null ? ` and ${pc(row.apnic_preferred)} preferring IPv6` : "") +
        ` (as of ${cmp.other_source.as_of}); ours: ${ours}.` +
        (row.difference_pp != null ? ` Difference: ${row.difference_pp > 0 ? "+" : ""}${row.difference_pp} points.` : "") +
        " Different people and questions: see the methodology.";
      p.hidden = false;
    }
  } catch (e) { /* the comparison is optional */ }
})();
