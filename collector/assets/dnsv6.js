// The country page's "DNS over IPv6" section: reads /api/v1/maps/countries/CC/dns (the DNS
// scorecard of the country's probe networks over the last 30 days; operators below the
// publication minimum are pooled, not named) and fills the section's table. Text only, never
// markup from the data. Served at /assets/dnsv6.js, a file of its own like breaks.js.
(async () => {
  const code = decodeURIComponent(location.pathname.split("/").pop() || "").toUpperCase();
  if (!/^[A-Z]{2}$/.test(code)) return;
  const api = `/api/v1/maps/countries/${code}/dns`;
  const link = document.getElementById("dnsv6-json");
  link.href = api; link.textContent = api;
  let d;
  try { const r = await fetch(api); if (!r.ok) return; d = await r.json(); } catch (e) { return; }
  if (!d.results) return;
  // num and t come from i18n.js (loaded before this file).
  const count = n => num(Math.round(n || 0));
  const share = s => s && s.asked ? t("dnsv6.share", {
    share: t("number.percent", { n: num(Math.round(100 * s.yes / s.asked)) }), n: count(s.asked),
  }) : "–";
  const dns64 = x => x && x.synthesised ? t("dnsv6.dns64_value", {
    correct: count(x.correct), synthesised: count(x.synthesised),
  }) : "–";
  const body = document.querySelector("#dnsv6-operators tbody");
  for (const o of d.operators) {
    const cells = [
      o.as_name ? `AS${o.asn} ${o.as_name}` : `AS${o.asn}`, count(o.probes),
      share(o.resolver_v6), share(o.aaaa), dns64(o.dns64),
      share(o.encrypted.tls && o.encrypted.tls.answered),
      share(o.encrypted.https && o.encrypted.https.answered),
    ];
    const tr = document.createElement("tr");
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      if (i > 0) td.className = "num";
      td.textContent = text;
      tr.appendChild(td);
    });
    body.appendChild(tr);
  }
  document.getElementById("dnsv6-period").textContent =
    t("dnsv6.period", { days: count(d.days), results: count(d.results) });
  if (d.few_probes.operators) {
    document.getElementById("dnsv6-few").textContent = t("dnsv6.few", {
      operators: count(d.few_probes.operators), probes: count(d.few_probes.probes), min: count(d.min_probes),
    });
  }
  document.getElementById("dnsv6").hidden = false;
})();
