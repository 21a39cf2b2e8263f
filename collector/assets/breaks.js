// The country page's "Where IPv6 breaks" section: reads /api/v1/maps/countries/CC/breaks
// (failures attributed from the probes' fault paths over the last 30 days) and fills the
// section's figures and tables. Text only, never markup from the data. Served at
// /assets/breaks.js; a file of its own so the page's main inline script stays one piece.
(async () => {
  const code = decodeURIComponent(location.pathname.split("/").pop() || "").toUpperCase();
  if (!/^[A-Z]{2}$/.test(code)) return;
  const api = `/api/v1/maps/countries/${code}/breaks`;
  const link = document.getElementById("breaks-json");
  link.href = api; link.textContent = api;
  let b;
  try { const r = await fetch(api); if (!r.ok) return; b = await r.json(); } catch (e) { return; }
  // num, t and dayText come from i18n.js (loaded before this file).
  const count = n => num(Math.round(n || 0));
  const share = (n, total) => total ? t("number.percent", { n: num(Math.round(100 * n / total)) }) : "–";
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
  const as = asn => asn == null ? t("breaks.unknown_network") : `AS${asn}`;
  // Under the publication minimum the API gives no figure: say so and show nothing else.
  if (b.insufficient_data) {
    document.getElementById("breaks-period").textContent = t("breaks.insufficient",
      { from: dayText(b.from), to: dayText(b.to), fewer_than: plural("common.fewer_than_probes", b.min_probes) });
    for (const id of ["breaks-placements", "breaks-networks", "breaks-responsible"]) {
      const table = document.getElementById(id);
      if (table) table.hidden = true;
    }
    document.getElementById("breaks").hidden = false;
    return;
  }
  document.getElementById("breaks-period").textContent =
    t("breaks.period", { from: dayText(b.from), to: dayText(b.to), total: count(b.total) });
  const places = ["access", "transit", "destination", "unknown"];
  const placeBody = document.querySelector("#breaks-placements tbody");
  for (const p of places) row(placeBody, [t(`breaks.place_${p}`), count(b.placements[p]), share(b.placements[p], b.total)]);
  const netBody = document.querySelector("#breaks-networks tbody");
  for (const n of b.networks) {
    row(netBody, [as(n.asn), count(n.total), ...places.map(p => count(n.placements[p]))]);
  }
  // Networks with fewer probes than the minimum: one unnamed row.
  const few = b.networks_under_minimum;
  if (few) {
    row(netBody, [t("breaks.few_networks", { below: count(b.min_probes) }), count(few.total),
      ...places.map(p => count(few.placements[p]))]);
  }
  if (!b.networks.length && !few) row(netBody, [t("breaks.none"), "", "", "", "", ""]);
  const respBody = document.querySelector("#breaks-responsible tbody");
  for (const r of b.responsible) {
    const where = places.filter(p => r.placements[p] > 0).map(p => t(`breaks.place_${p}`)).join(", ");
    row(respBody, [as(r.asn), count(r.count), where]);
  }
  if (!b.responsible.length) row(respBody, [t("breaks.none"), "", ""]);
  document.getElementById("breaks").hidden = false;
})();
