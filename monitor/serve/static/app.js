// Uproar archive dashboard: plain JS, no dependencies. Every value from the API is untrusted
// text from the internet: it is only ever placed with textContent / createTextNode (never as
// HTML), always through shown() (no bidi controls, zero-width or control characters, so a
// right-to-left override cannot spoof what is shown), and only http(s) links are made clickable.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const PAGE = 50;
// Complaint severity levels (Jin & Aletras 2021), as models/base.py names them.
const SEVERITY_WORDS = ["no complaint", "no explicit reproach", "disapproval", "accusation", "blame"];
const state = { offset: 0, params: null };

function $(selector) { return document.querySelector(selector); }

// Format characters (Cf: bidi controls, zero-width, BOM…) removed, control characters (Cc)
// other than newline and tab made spaces: monitor/untrusted.py's displayable(), for the browser.
const FORMAT = /\p{Cf}/gu;
const CONTROL = /[^\P{Cc}\n\t]/gu;
function shown(value) {
  return String(value ?? "").replace(FORMAT, "").replace(CONTROL, " ");
}

// The raw payload as JSON, with the same characters written as \uXXXX escapes (still visible).
function shownJson(value) {
  const hex = (ch) => [...Array(ch.length).keys()]
    .map((i) => "\\u" + ch.charCodeAt(i).toString(16).padStart(4, "0")).join("");
  return JSON.stringify(value, null, 2).replace(/[\p{Cf}\p{Cc}]/gu, (ch) =>
    (ch === "\n" ? ch : hex(ch)));
}

// el("td", {className: "x"}, "text", otherNode): strings become text nodes.
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(shown(child)));
  }
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  return node;
}

function safeLink(url, label) {
  let ok = false;
  try { ok = ["http:", "https:"].includes(new URL(url).protocol); } catch (e) { ok = false; }
  if (!ok) return el("span", {}, label);
  // The parsed href: anything invisible in the URL is percent-encoded, never shown raw.
  return el("a", { href: new URL(url).href, rel: "noopener noreferrer nofollow", target: "_blank" },
    label);
}

function showError(message) {
  const box = $("#error");
  box.textContent = shown(message);
  box.hidden = !message;
}

async function api(path, params) {
  const query = params ? "?" + new URLSearchParams(params).toString() : "";
  const headers = {};
  const token = sessionStorage.getItem("uproar-token");
  if (token) headers.Authorization = "Bearer " + token;
  const response = await fetch(path + query, { headers });
  if (response.status === 401) {
    $("#token-box").hidden = false;
    throw new Error("This server needs a token: enter it above.");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    throw new Error(detail || response.statusText);
  }
  return body;
}

function formParams() {
  const params = {};
  for (const [key, value] of new FormData($("#search-form")).entries()) {
    if (String(value).trim() !== "") params[key] = String(value).trim();
  }
  return params;
}

// A search lives in the page's URL (?text=…&since=…), so it can be bookmarked, shared and
// gone back to. The form's defaults (since=30d, sort, by) are kept in the URL too.
function paramsFromQuery(query) {
  const params = {};
  for (const [key, value] of new URLSearchParams(query).entries()) {
    if (String(value).trim() !== "") params[key] = String(value).trim();
  }
  return params;
}

function queryFromParams(params) {
  return "?" + new URLSearchParams(params).toString();
}

function fillForm(params) {
  const form = $("#search-form");
  for (const field of form.elements) {
    if (!field.name) continue;
    if (field.name in params) field.value = params[field.name];
    else if (field.tagName === "SELECT") field.selectedIndex = 0;
    else field.value = field.defaultValue;  // since: 30d, the one default window
  }
}

// The raw payload panel: the JSON, or why there is none.
function rawText(raw) {
  if (raw === null || raw === undefined || (typeof raw === "object" && !Object.keys(raw).length)) {
    return "none: the source sent nothing beyond the fields above (a replayed mention), " +
      "or archive.retention.raw_payloads removed it";
  }
  return shownJson(raw);
}

function time(value) { return value ? String(value).replace("T", " ").replace(/(\.\d+)?(Z|\+00:00)$/, "") : ""; }

function engagement(m) {
  const e = m.engagement || {};
  return (e.likes || 0) + (e.reposts || 0) + (e.replies || 0) + (e.score || 0);
}

// -- search ---------------------------------------------------------------------------------

async function runSearch(offset) {
  showError("");
  state.offset = offset;
  const params = state.params;
  const { by, ...filters } = params;
  try {
    const page = await api("/api/mentions", { ...filters, offset, limit: PAGE });
    renderResults(page);
    $("#empty").textContent = shown(page.empty || "");
    $("#empty").hidden = !page.empty;
    if (offset === 0) {
      const chartFilters = { ...filters };
      delete chartFilters.sort;
      const [vol, sentiment] = await Promise.all([
        api("/api/stats/volume", { ...chartFilters, by: by || "day" }),
        "sentiment" in chartFilters ? Promise.resolve([]) :
          api("/api/stats/sentiment", { ...chartFilters, by: by || "day" }),
      ]);
      drawVolume(vol);
      drawSentiment(sentiment);
    }
  } catch (err) {
    showError(err.message);
  }
}

function renderResults(page) {
  const body = $("#results tbody");
  body.replaceChildren();
  for (const m of page.items) {
    const c = m.classification;
    const row = el("tr", { className: "mention-row" },
      el("td", {}, time(m.created_at)),
      el("td", {}, m.source),
      el("td", {}, (m.brands || []).join(", ")),
      el("td", {}, m.author ? m.author.handle : ""),
      el("td", { className: "mention-text" }, m.text),
      el("td", { className: "sentiment " + (c ? c.sentiment : "") }, c ? c.sentiment : ""),
      el("td", {}, c ? c.complaint.toFixed(2) : ""),
      el("td", {}, engagement(m)));
    row.dataset.id = String(m.id);
    row.tabIndex = 0;
    row.addEventListener("click", () => showMention(m.id));
    row.addEventListener("keydown", (e) => { if (e.key === "Enter") showMention(m.id); });
    body.append(row);
  }
  const first = page.items.length ? page.offset + 1 : 0;
  $("#result-count").textContent =
    `${first}–${page.offset + page.items.length}` + (page.next_offset === null ? "" : " (more)");
  $("#prev-page").disabled = page.offset === 0;
  $("#next-page").disabled = page.next_offset === null;
}

// -- charts (inline SVG) ----------------------------------------------------------------------

const W = 640, H = 200, PAD = { l: 44, r: 10, t: 10, b: 28 };

function lineChart(figure, buckets, series) {
  figure.querySelectorAll("svg, .legend, .empty").forEach((n) => n.remove());
  if (!buckets.length) {
    figure.append(el("p", { className: "empty" }, "no mentions in this range"));
    return;
  }
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  const x = (i) => PAD.l + (buckets.length === 1 ? 0.5 : i / (buckets.length - 1)) * (W - PAD.l - PAD.r);
  const y = (v) => H - PAD.b - (v / max) * (H - PAD.t - PAD.b);
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", width: W, height: H });
  chart.append(svg("line", { x1: PAD.l, y1: H - PAD.b, x2: W - PAD.r, y2: H - PAD.b, class: "axis" }));
  chart.append(svg("line", { x1: PAD.l, y1: PAD.t, x2: PAD.l, y2: H - PAD.b, class: "axis" }));
  for (const v of [0, max]) {
    const label = svg("text", { x: PAD.l - 4, y: y(v) + 4, "text-anchor": "end", class: "tick" });
    label.textContent = String(v);
    chart.append(label);
  }
  for (const i of [0, buckets.length - 1]) {
    const label = svg("text", { x: x(i), y: H - 8, "text-anchor": i ? "end" : "start", class: "tick" });
    label.textContent = time(buckets[i]).slice(0, 16);
    chart.append(label);
  }
  for (const s of series) {
    const points = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    chart.append(svg("polyline", { points, class: "series " + s.className }));
  }
  const legend = el("div", { className: "legend" });
  for (const s of series) legend.append(el("span", { className: "key " + s.className }, s.name));
  figure.append(chart, legend);
}

function drawVolume(rows) {
  const byBucket = new Map();
  for (const r of rows) {
    const t = byBucket.get(r.bucket) || { mentions: 0, complaints: 0 };
    t.mentions += r.mentions;
    t.complaints += r.complaints;
    byBucket.set(r.bucket, t);
  }
  const buckets = [...byBucket.keys()].sort();
  lineChart($("#volume-chart"), buckets, [
    { name: "mentions", className: "mentions", values: buckets.map((b) => byBucket.get(b).mentions) },
    { name: "complaints", className: "complaints", values: buckets.map((b) => byBucket.get(b).complaints) },
  ]);
}

function drawSentiment(rows) {
  const buckets = rows.map((r) => r.bucket);
  const series = ["negative", "neutral", "positive"].map((name) => (
    { name, className: name, values: rows.map((r) => r[name]) }));
  // How angry, not only how negative: complaints that accuse or blame (severity 3-4).
  series.push({ name: "accusing or blaming complaints", className: "severe",
    values: rows.map((r) => r.severe_complaints ?? 0) });
  lineChart($("#sentiment-chart"), buckets, series);
}

// -- mention detail -------------------------------------------------------------------------

async function showMention(id) {
  showError("");
  try {
    const m = await api(`/api/mentions/${encodeURIComponent(id)}`);
    const c = m.classification;
    $("#detail-id").textContent = String(m.id);
    const fields = [
      ["source", `${m.source} ${m.source_id}`],
      ["link", safeLink(m.url, m.url)],
      ["author", `${m.author.handle} (${m.author.name}), ${m.author.followers ?? "?"} followers`],
      ["posted", time(m.created_at)],
      ["fetched", time(m.fetched_at)],
      ["brands", (m.brands || []).join(", ")],
      ["engagement", `${m.engagement.likes} likes, ${m.engagement.reposts} reposts, ${m.engagement.replies} replies`],
      ["sentiment", c ? `${c.sentiment} (complaint ${c.complaint.toFixed(2)}, ${c.model ?? ""} ${c.model_version ?? ""})` : "not classified"],
      ["complaint severity", c && c.severity != null ? `${c.severity} ${SEVERITY_WORDS[c.severity] ?? ""}` : "not rated"],
    ];
    $("#detail-fields").replaceChildren(...fields.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
    $("#detail-text").textContent = shown(m.text);
    $("#detail-raw").textContent = shown(rawText(m.raw));
    $("#detail").hidden = false;
  } catch (err) {
    showError(err.message);
  }
}

// -- stories --------------------------------------------------------------------------------

async function loadStories() {
  showError("");
  try {
    const since = (state.params && state.params.since) || $("#search-form").elements.since.value;
    const page = await api("/api/stories", { limit: 100, since });
    const body = $("#stories tbody");
    body.replaceChildren();
    for (const s of page.items) {
      const row = el("tr", { className: "story-row" },
        el("td", {}, s.id), el("td", {}, s.brand), el("td", {}, s.title),
        el("td", {}, time(s.first_seen)), el("td", {}, time(s.last_seen)),
        el("td", {}, s.mention_count), el("td", {}, s.growth_per_hour.toFixed(2)),
        el("td", {}, s.key_phrases.slice(0, 3).join(", ")));
      row.tabIndex = 0;
      row.addEventListener("click", () => showStory(s.id));
      body.append(row);
    }
    if (!page.items.length) {
      body.append(el("tr", {}, el("td", { colSpan: 8, className: "empty" },
        page.empty || "no stories")));
    }
  } catch (err) {
    showError(err.message);
  }
}

function timelineEvents(story) {
  const events = [
    [story.first_seen, `first seen (${story.brand})`],
    [story.last_seen, `last seen: ${story.mention_count} mentions, ` +
      `${story.rate_per_hour.toFixed(1)}/h, growth ${story.growth_per_hour.toFixed(2)}`],
  ];
  for (const i of story.incidents) {
    events.push([i.opened_at, `alert #${i.id} opened (${i.severity}): ${i.title}`]);
    for (const g of i.signals) {
      events.push([g.at, `signal ${g.kind} (${g.severity}): ${g.count} vs ${g.expected.toFixed(1)} expected`]);
    }
    if (i.acknowledged_at) events.push([i.acknowledged_at, `alert #${i.id} acknowledged by ${i.acknowledged_by ?? "?"}`]);
    if (i.resolved_at) events.push([i.resolved_at, `alert #${i.id} resolved`]);
  }
  return events.sort((a, b) => String(a[0]).localeCompare(String(b[0])));
}

async function showStory(id) {
  try {
    const s = await api(`/api/stories/${encodeURIComponent(id)}`);
    $("#story-title").textContent = shown(`#${s.id} ${s.title}`);
    $("#story-meta").textContent = shown(`${s.brand}: ${s.mention_count} mentions from ` +
      Object.entries(s.sources).map(([k, v]) => `${k} ${v}`).join(", ") +
      `; reach ${Math.round(s.total_reach)}; phrases: ${s.key_phrases.join(", ")}`);
    lineChart($("#story-chart"), s.hourly.map((r) => r.bucket), [
      { name: "mentions", className: "mentions", values: s.hourly.map((r) => r.mentions) },
    ]);
    $("#story-timeline").replaceChildren(...timelineEvents(s).map(([at, what]) =>
      el("li", {}, `${time(at)} ${what}`)));
    $("#story-posts").replaceChildren(...s.posts.map((m) => {
      const item = el("li", { className: "story-post" },
        el("span", { className: "meta" }, `${time(m.created_at)} ${m.author.handle} (${engagement(m)})`),
        " ", el("span", { className: "mention-text" }, m.text));
      item.addEventListener("click", () => showMention(m.id));
      return item;
    }));
    $("#story").hidden = false;
  } catch (err) {
    showError(err.message);
  }
}

// -- wiring ---------------------------------------------------------------------------------

function switchView(name) {
  for (const button of document.querySelectorAll("nav button")) {
    button.classList.toggle("active", button.dataset.view === name);
  }
  $("#view-search").hidden = name !== "search";
  $("#view-stories").hidden = name !== "stories";
  if (name === "stories") loadStories();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.params = formParams();
    const query = queryFromParams(state.params);
    if (query !== location.search) history.pushState(state.params, "", query);
    runSearch(0);
  });
  // Back and forward: the search that URL holds.
  window.addEventListener("popstate", () => {
    fillForm(paramsFromQuery(location.search));
    state.params = formParams();
    runSearch(0);
  });
  $("#next-page").addEventListener("click", () => runSearch(state.offset + PAGE));
  $("#prev-page").addEventListener("click", () => runSearch(Math.max(0, state.offset - PAGE)));
  $("#detail-close").addEventListener("click", () => { $("#detail").hidden = true; });
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("uproar-token", $("#token").value);
    $("#token-box").hidden = true;
    if (state.params) runSearch(state.offset);
  });
  for (const button of document.querySelectorAll("nav button")) {
    button.addEventListener("click", () => switchView(button.dataset.view));
  }
  // A link from an alert: /#story/12 opens story 12 (a merged story's id opens its survivor).
  const linked = /^#story\/(\d+)$/.exec(window.location.hash);
  // On load: the URL's search (a bookmark, a shared link), else the default one, at once.
  fillForm(paramsFromQuery(location.search));
  state.params = formParams();
  history.replaceState(state.params, "", queryFromParams(state.params) + window.location.hash);
  runSearch(0);
  if (linked) {
    switchView("stories");
    showStory(linked[1]);
  }
  document.body.dataset.ready = "1";
});
