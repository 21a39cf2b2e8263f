#!/usr/bin/env bash
# Regenerates the vendored map files in this directory from the npm registry.
#
#   collector/assets/refresh.sh            # the pinned versions below
#
# Needs npm (and the node that comes with it). Each package is fetched with `npm pack`
# (which checks the registry's integrity hash) into a temporary directory and unpacked there;
# nothing is installed. Outputs, all embedded in the collector binary and served under
# /assets/<name>:
#
#   countries-110m.json      world-atlas: Natural Earth 1:110m countries, TopoJSON, verbatim
#   topojson-client.min.js   topojson-client: dist/topojson-client.min.js, verbatim
#   iso3166.json             built here from i18n-iso-countries (codes.json, langs/en.json):
#     numeric_to_alpha2  ISO 3166-1 numeric ("528", as world-atlas ids) -> alpha-2 ("NL")
#     names              alpha-2 -> English name; where the package lists several names the
#                        first is taken (the package's own default, "official")
#     atlas_names        atlas features without an id whose name is exactly one of those
#                        English names -> alpha-2 (in world-atlas 2.0.2: Kosovo -> XK)
#   country-names.json       built here from i18n-iso-countries langs/{en,fr,ar}.json: per
#                            language, alpha-2 -> name (first name where several); not served
#                            as an asset but embedded by the i18n module (collector/src/i18n),
#                            which puts the page's language's names into each page and report
#
# Update the versions, run, check `git diff --stat`, update README.md (versions, sizes) and
# run `cargo test -p sixmap-collector --test dashboard`.
set -euo pipefail

WORLD_ATLAS=2.0.2
TOPOJSON_CLIENT=3.1.0
I18N_ISO_COUNTRIES=7.14.0

out="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

for pkg in "world-atlas@$WORLD_ATLAS" "topojson-client@$TOPOJSON_CLIENT" "i18n-iso-countries@$I18N_ISO_COUNTRIES"; do
  name="${pkg%@*}"
  mkdir "$name"
  tarball="$(npm pack --silent "$pkg")"
  tar -xzf "$tarball" -C "$name" --strip-components=1
done

cp world-atlas/countries-110m.json "$out/countries-110m.json"
cp topojson-client/dist/topojson-client.min.js "$out/topojson-client.min.js"

node - "$out/iso3166.json" "$I18N_ISO_COUNTRIES" <<'JS'
const fs = require("fs");
const [out, version] = process.argv.slice(2);
const codes = require("./i18n-iso-countries/codes.json"); // [alpha2, alpha3, numeric, iso 3166-2]
const en = require("./i18n-iso-countries/langs/en.json").countries;
const atlas = require("./world-atlas/countries-110m.json").objects.countries.geometries;
const sorted = entries => Object.fromEntries(entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
const names = sorted(Object.entries(en).map(([code, n]) => [code, Array.isArray(n) ? n[0] : n]));
const byName = new Map(Object.entries(names).map(([code, n]) => [n, code]));
const atlasNames = sorted(atlas
  .filter(g => g.id === undefined && byName.has(g.properties.name))
  .map(g => [g.properties.name, byName.get(g.properties.name)]));
const body = {
  source: `i18n-iso-countries ${version} (MIT): codes.json and langs/en.json; built by refresh.sh`,
  numeric_to_alpha2: sorted(codes.map(([alpha2, , numeric]) => [numeric, alpha2])),
  names,
  atlas_names: atlasNames,
};
fs.writeFileSync(out, JSON.stringify(body, null, 1) + "\n");
JS

# Country names in the languages of deploy/i18n (collector/src/i18n): one compact file.
node - "$out/country-names.json" "$I18N_ISO_COUNTRIES" <<'JS'
const fs = require("fs");
const [out, version] = process.argv.slice(2);
const langs = ["en", "fr", "ar"];
const body = { source: `i18n-iso-countries ${version} (MIT, widdix GmbH): langs/{${langs.join(",")}}.json; built by refresh.sh` };
for (const lang of langs) {
  const names = require(`./i18n-iso-countries/langs/${lang}.json`).countries;
  body[lang] = Object.fromEntries(Object.entries(names)
    .map(([code, n]) => [code, Array.isArray(n) ? n[0] : n])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
fs.writeFileSync(out, JSON.stringify(body) + "\n");
JS

ls -l "$out"
