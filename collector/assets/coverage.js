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
  // num, t and countryName come from i18n.js (loaded before this file).
  const count = n => n == null ? "–" : num(Math.round(n));
  const withBody = document.querySelector("#coverage-with tbody");
  for (const o of c.operators) row(withBody, [name(o), count(o.probes), count(o.active)]);
  // Operators under the publication minimum are counted together, never named.
  const few = c.few_probes;
  if (few && few.operators) {
    row(withBody, [t("coverage.few", { below: count(few.below), operators: count(few.operators) }),
      count(few.probes), count(few.active)]);
  }
  if (!c.operators.length && !(few && few.operators)) row(withBody, [t("coverage.no_probe"), count(0), count(0)]);
  const withoutBody = document.querySelector("#coverage-without tbody");
  for (const u of c.uncovered) row(withoutBody, [name(u), count(u.v6_slash48s), count(u.users)]);
  if (!c.uncovered.length) row(withoutBody, [t("coverage.none_known"), "", ""]);
  document.getElementById("coverage-rank").textContent =
    t(c.ranked_by === "users" ? "coverage.ranked_users" : "coverage.ranked_space")
    + (c.uncovered_total > c.uncovered.length
      ? " " + t("coverage.largest_shown", { shown: count(c.uncovered.length), total: count(c.uncovered_total) })
      : "");
  document.getElementById("coverage").hidden = false;
  // Another source beside ours (APNIC, when imported): docs/methodology.md says why they differ.
  try {
    const r = await fetch("/api/v1/maps/comparison");
    const cmp = r.ok ? await r.json() : null;
    const row = cmp && cmp.other_source && cmp.countries.find(x => x.country === code);
    if (row && row.apnic_capable != null) {
      const pc = x => t("number.percent", { n: num(Math.round(x * 100)) });
      const ours = row.ours ? t("coverage.ours_share", { share: pc(row.ours.share) }) : t("coverage.ours_insufficient");
      const p = document.getElementById("comparison");
      const vars = { capable: pc(row.apnic_capable), as_of: /^\d{4}-\d{2}-\d{2}$/.test(cmp.other_source.as_of) ? dayText(cmp.other_source.as_of) : cmp.other_source.as_of, ours };
      p.textContent = (row.apnic_preferred != null
        ? t("coverage.apnic_preferred", { ...vars, preferred: pc(row.apnic_preferred) })
        : t("coverage.apnic", vars)) +
        (row.difference_pp != null
          ? " " + t("coverage.difference", { points: (row.difference_pp > 0 ? "+" : "") + num(row.difference_pp, 1) })
          : "") +
        " " + t("coverage.see_method");
      p.hidden = false;
    }
  } catch (e) { /* the comparison is optional */ }
})();
