// The page's language (collector/src/i18n): strings, numbers, dates and country names. The
// server put the static text in place and the strings of the chosen language in the
// <script id="i18n"> element; this formats what the page's script writes. Classic script:
// these names are page globals, loaded before maps-common.js and the page's own script.
"use strict";

const I18N = (() => {
  const el = document.getElementById("i18n");
  try { return JSON.parse(el.textContent); } catch (e) { return { lang: "en", dir: "ltr", languages: [], strings: {}, countries: {} }; }
})();
const LANG = I18N.lang;
// The locale for Intl (numbers, dates, plurals): [language] intl of the translation file,
// e.g. "ar-u-nu-arab" so Arabic pages write Arabic-Indic digits as the reports do.
// A tag the browser refuses (the server checks its shape, not what this browser knows)
// falls back to the language code, then English, so the pages never stop at "Loading…".
const LOCALE = [I18N.strings["language.intl"], LANG, "en"].find(tag => {
  try { return tag && Intl.NumberFormat.supportedLocalesOf([tag]).length > 0; } catch (e) { return false; }
}) || "en";

// The string `key` with its {placeholders} filled; the key itself if missing (never blank).
function t(key, vars) {
  const text = I18N.strings[key] ?? key;
  return vars ? text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m)) : text;
}

// Numbers in the page's language (Arabic: Arabic-Indic digits, French: a decimal comma).
const numberFormats = new Map();
function num(x, digits = 0) {
  if (!numberFormats.has(digits)) {
    numberFormats.set(digits, new Intl.NumberFormat(LOCALE, { minimumFractionDigits: digits, maximumFractionDigits: digits }));
  }
  return numberFormats.get(digits).format(x);
}

// `key.<plural category>` for n (CLDR rules via Intl: Arabic has six), `.other` if absent.
const pluralRules = new Intl.PluralRules(LOCALE);
function plural(key, n, vars) {
  const category = pluralRules.select(n);
  const text = I18N.strings[`${key}.${category}`] ?? I18N.strings[`${key}.other`] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) =>
    name === "n" ? num(n) : vars && name in vars ? String(vars[name]) : m);
}

const countryName = code => I18N.countries[code] || code;

// Text in another direction (an API's English error, an address) kept whole inside a
// sentence: Unicode first-strong isolate … pop directional isolate.
const isolate = text => `\u2068${text}\u2069`;

// A moment in UTC, in words of the page's language, e.g. "4 déc. 2026, 16:05 UTC".
const dateTimeFormat = new Intl.DateTimeFormat(LOCALE, { dateStyle: "medium", timeStyle: "short", timeZone: "UTC" });
const dateTime = date => t("common.utc_time", { time: dateTimeFormat.format(date) });
const dayFormat = new Intl.DateTimeFormat(LOCALE, { dateStyle: "medium", timeZone: "UTC" });
const dayText = isoDay => dayFormat.format(new Date(isoDay + "T00:00:00Z"));

// Links within the collector keep an explicit ?lang= choice; the language menu offers the others.
function keepLanguage() {
  const chosen = new URLSearchParams(location.search).get("lang");
  if (chosen) {
    for (const a of document.querySelectorAll("a[href^='/']")) {
      if (a.hasAttribute("download") || a.getAttribute("href").startsWith("/api/")) continue;
      const url = new URL(a.href);
      url.searchParams.set("lang", chosen);
      a.href = url.pathname + url.search;
    }
  }
  const menu = document.getElementById("languages");
  if (!menu) return;
  I18N.languages.forEach(([code, name], i) => {
    if (i) menu.append(" · ");
    if (code === LANG) {
      menu.append(Object.assign(document.createElement("b"), { textContent: name, lang: code }));
    } else {
      const url = new URL(location.href);
      url.searchParams.set("lang", code);
      menu.append(Object.assign(document.createElement("a"), { href: url.pathname + url.search, textContent: name, lang: code, hreflang: code }));
    }
  });
}
const withLanguage = path => {
  const chosen = new URLSearchParams(location.search).get("lang");
  return chosen ? `${path}?lang=${encodeURIComponent(chosen)}` : path;
};
document.addEventListener("DOMContentLoaded", keepLanguage);
