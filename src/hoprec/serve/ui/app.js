// hoprec /ui: plain JavaScript over the service's JSON routes. No framework, nothing from a CDN.
// Every piece of data reaches the page through textContent (never innerHTML).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { user: null, cards: new Map(), session: [], facets: null, timer: null, drawerItem: null };

const SOURCES = {
  "model": ["personal", "the model's scores from this customer's history", false],
  "model+events": ["personal + new events", "the model's scores plus events received since training", false],
  "session": ["session fallback", "cold start: item-to-item scores from the items given or the new events", true],
  "segment": ["segment fallback", "cold start: the most popular items in this customer's segment", true],
  "popular": ["popular fallback", "cold start: everyone's most popular items (no history, no segment)", true],
  "bought_after": ["bought after", "items often bought within 14 days after this one", false],
  "co_purchase": ["co-purchase", "items often in the same basket", false],
  "similar": ["similar", "", false], "complementary": ["complementary", "", false],
};

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function status(msg) { $("status").textContent = msg || ""; }

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const res = await fetch(path, init);
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const detail = typeof data.detail === "string" ? data.detail : data.detail && JSON.stringify(data.detail);
    throw new Error(data.error || detail || `${res.status} ${res.statusText}`);
  }
  return data;
}

// ------------------------------------------------------------------ item cards
async function cards(ids) {
  const missing = [...new Set(ids.map(String))].filter((i) => !state.cards.has(i));
  for (let s = 0; s < missing.length; s += 200) {
    const q = missing.slice(s, s + 200).map((i) => "ids=" + encodeURIComponent(i)).join("&");
    const data = await api("/items?" + q);
    for (const c of data.items) state.cards.set(String(c.item_id), c);
  }
  return ids.map((i) => state.cards.get(String(i)) || { item_id: i, title: String(i) });
}

function itemTitle(card) {
  return el("span", { class: "title", text: card.title, title: "open " + card.title,
    dataset: { testid: "item-link" }, onclick: () => openItem(card.item_id) });
}

// ------------------------------------------------------------------ recommendation lists
async function renderRecs(list, answer, baseline, opts = {}) {
  list.replaceChildren();
  if (!answer.items.length) { list.append(el("p", { class: "empty", text: "No item passes these rules." })); return; }
  const cs = await cards(answer.items.map((x) => x.item_id));
  const top = Math.max(...answer.items.map((x) => x.score).filter(Number.isFinite), 1e-9);
  const basePos = new Map((baseline || []).map((x, i) => [String(x.item_id), i]));
  answer.items.forEach((rec, i) => {
    const card = cs[i];
    let move = null;
    if (baseline) {
      const was = basePos.get(String(rec.item_id));
      if (was === undefined) move = el("span", { class: "move new", text: "new", title: "not in the default list" });
      else if (was > i) move = el("span", { class: "move up", text: "↑" + (was - i) });
      else if (was < i) move = el("span", { class: "move down", text: "↓" + (i - was) });
    }
    const reasons = (rec.reasons || []).map((r) => el("li", { dataset: { testid: "reason" } },
      r.text, el("span", { class: "att", text: ` (${percent(r.attribution)})`, title: "share of this item's evidence" })));
    const share = Number.isFinite(rec.score) ? Math.max(0, Math.min(1, rec.score / top)) : 0;
    list.append(el("li", { dataset: { testid: "rec-item", item: String(rec.item_id) } },
      itemTitle(card), el("span", { class: "id", text: String(rec.item_id) }),
      card.category ? el("span", { class: "chip", text: card.category }) : null, move,
      opts.add ? el("button", { class: "mini", type: "button", text: "+ add", title: "add to the session",
        dataset: { testid: "rec-add" }, onclick: () => addToSession(rec.item_id) }) : null,
      el("div", { class: "scorebar" }, el("span", { style: `width:${(100 * share).toFixed(1)}%` })),
      el("span", { class: "score", text: "score " + rec.score.toFixed(4) }),
      reasons.length ? el("ul", { class: "reasons" }, reasons[0]) : null,
      reasons.length > 1 ? el("details", { class: "more" }, el("summary", { text: `${reasons.length - 1} more reason${reasons.length > 2 ? "s" : ""}` }),
        el("ul", { class: "reasons" }, reasons.slice(1))) : null));
  });
}

function percent(share) {
  const v = 100 * share;
  return v >= 1 || v === 0 ? `${Math.round(v)}%` : "<1%";
}

function sourceBadge(node, source, context) {
  let [label, , fallback] = SOURCES[source] || [source, "", false];
  if (context === "session" && source === "session") [label, fallback] = ["session: item-to-item", false];
  node.replaceChildren(el("span", { class: "badge" + (fallback ? " fallback" : ""), text: label,
    dataset: { source } }));
}

// ------------------------------------------------------------------ customer
function options() {
  const o = { k: Number($("opt-k").value) || 10, explain: true };
  const cats = [...$("opt-categories").selectedOptions].map((x) => x.value);
  const filters = {};
  if (cats.length) filters.categories = cats;
  if ($("opt-available").checked) filters.available_only = true;
  if (Object.keys(filters).length) o.filters = filters;
  const cap = Number($("opt-cap").value);
  if ($("opt-diversity").checked) o.diversity = { lambda: Number($("opt-lambda").value), ...(cap ? { max_per_category: cap } : {}) };
  else if (cap) o.diversity = { lambda: 1, max_per_category: cap };
  if ($("opt-exclude").value) o.exclude_purchased = $("opt-exclude").value === "true";
  return o;
}

async function loadUser(userId) {
  state.user = userId;
  status("");
  $("user-input").value = userId;
  history.replaceState(null, "", "#user=" + encodeURIComponent(userId));
  try {
    const k = Number($("opt-k").value) || 10;
    const [hist, base] = await Promise.all([
      api(`/users/${encodeURIComponent(userId)}/history?limit=1000`),
      api("/recommend", { user_id: userId, k, explain: true }),
    ]);
    renderSummary(hist, base);
    await renderTimeline(hist);
    state.base = base;
    sourceBadge($("source-badge"), base.source);
    $("source-text").textContent = (SOURCES[base.source] || ["", ""])[1] + (base.message ? ` — ${base.message}` : "");
    await renderRecs($("recs-base"), base, null);
    await refreshOptions();
  } catch (e) { status("error: " + e.message); }
}

async function refreshOptions() {
  if (state.user === null) return;
  try {
    const ans = await api("/recommend", { user_id: state.user, ...options() });
    await renderRecs($("recs-opts"), ans, state.base ? state.base.items : null);
    status(ans.message && ans.message !== state.base.message ? ans.message : "");
  } catch (e) {
    $("recs-opts").replaceChildren(el("p", { class: "empty", text: e.message }));
  }
}

function renderSummary(hist, base) {
  const parts = [el("b", { text: String(hist.user_id) })];
  if (!hist.known && !hist.n_events) parts.push(" is not in the model (cold): ", el("b", { text: (SOURCES[base.source] || [base.source])[0] }), " served them.");
  else if (!hist.known) parts.push(" is new since training: events received ", el("b", { text: String(hist.n_events) }), ".");
  else parts.push(` — ${hist.n_events} events before ${hist.as_of.slice(0, 10)}` + (hist.n_new ? `, ${hist.n_new} since` : ""));
  if (hist.segment) parts.push(el("span", { class: "chip", text: hist.segment }));
  $("user-summary").replaceChildren(el("p", {}, parts));
}

async function renderTimeline(hist) {
  const box = $("timeline");
  box.replaceChildren();
  if (!hist.events.length) {
    box.append(el("p", { class: "empty", text: "No history: a cold customer. The list on the right comes from a fallback." }));
    return;
  }
  const times = hist.events.map((e) => Date.parse(e.time));
  const t0 = Math.min(...times), t1 = Math.max(...times), span = Math.max(t1 - t0, 1);
  const lanes = new Map();
  hist.events.forEach((e, i) => {
    const key = e.category || "(no category)";
    if (!lanes.has(key)) lanes.set(key, []);
    lanes.get(key).push([e, times[i]]);
  });
  const order = [...lanes.keys()].sort((a, b) => lanes.get(b).length - lanes.get(a).length).slice(0, 14);
  for (const key of order) {
    const track = el("div", { class: "track" });
    for (const [e, t] of lanes.get(key)) {
      track.append(el("button", { class: "dot" + (e.weight < 0 ? " neg" : "") + (e.new ? " fresh" : ""), type: "button",
        style: `left:${(100 * (t - t0) / span).toFixed(2)}%`, title: `${e.title} — ${e.kind}, ${e.time.slice(0, 10)}`,
        "aria-label": e.title, onclick: () => openItem(e.item_id) }));
    }
    box.append(el("div", { class: "lane", dataset: { testid: "history-lane" } },
      el("span", { class: "name", text: key, title: key }), track, el("span", { class: "count", text: String(lanes.get(key).length) })));
  }
  if (hist.truncated) box.prepend(el("p", { class: "hint", text: `the latest ${hist.events.length} of ${hist.n_events} events` }));
  if (lanes.size > order.length) box.append(el("p", { class: "hint", text: `… and ${lanes.size - order.length} more categories` }));
  box.append(el("div", { class: "axis" }, el("span"), el("div", { class: "ends" },
    el("span", { text: new Date(t0).toISOString().slice(0, 10) }), el("span", { text: new Date(t1).toISOString().slice(0, 10) })), el("span")));
  const recent = hist.events.slice(-8).reverse();
  const cs = await cards(recent.map((e) => e.item_id));
  box.append(el("div", { class: "recent" }, el("h3", { text: "Latest events" }),
    el("ul", { class: "plain" }, recent.map((e, i) => el("li", {}, el("span", { class: "score", text: e.time.slice(0, 10) + " " + e.kind + " " }),
      itemTitle(cs[i]), e.new ? el("span", { class: "chip", text: "since training" }) : null)))));
}

// ------------------------------------------------------------------ item drawer
async function openItem(itemId) {
  state.drawerItem = itemId;
  const drawer = $("drawer");
  drawer.hidden = false;
  const [card] = await cards([itemId]);
  const rows = [["id", card.item_id], ["category", card.category], ["brand", card.brand],
    ["price", card.price], ["in stock", card.available === undefined ? undefined : (card.available ? "yes" : "no")]]
    .filter(([, v]) => v !== undefined && v !== null);
  $("drawer-card").replaceChildren(el("h2", { text: card.title }),
    el("dl", {}, rows.map(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })])));
  for (const kind of ["similar", "complementary"]) {
    const list = $(kind + "-list");
    list.replaceChildren(el("p", { class: "empty", text: "loading…" }));
    try {
      const ans = await api(`/items/${encodeURIComponent(itemId)}/similar?kind=${kind}&k=8`);
      $(kind + "-source").textContent = "from " + (ans.source === "model" ? "the model's item-item scores"
        : (SOURCES[ans.source] || [ans.source])[0]);
      await renderRecs(list, ans, null, { add: true });
    } catch (e) { list.replaceChildren(el("p", { class: "empty", text: e.message })); }
  }
}

// ------------------------------------------------------------------ session playground
function addToSession(itemId) {
  state.session.push(itemId);
  refreshSession();
}

async function refreshSession() {
  const box = $("session-items");
  box.replaceChildren();
  if (!state.session.length) {
    box.append(el("p", { class: "empty", text: "Nothing yet." }));
    $("session-recs").replaceChildren();
    $("session-badge").textContent = "";
    return;
  }
  const cs = await cards(state.session);
  state.session.forEach((id, i) => box.append(el("span", { class: "session-chip", dataset: { testid: "session-chip" } },
    cs[i].title, el("button", { type: "button", text: "×", title: "remove", onclick: () => { state.session.splice(i, 1); refreshSession(); } }))));
  try {
    const ans = await api("/recommend/session", { item_ids: state.session, k: 10, explain: true });
    sourceBadge($("session-badge"), ans.source, "session");
    await renderRecs($("session-recs"), ans, null, { add: true });
  } catch (e) { status("session: " + e.message); }
}

let searchTimer = null;
function searchProducts() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(async () => {
    const q = $("product-search").value;
    const data = await api("/items/search?limit=12&q=" + encodeURIComponent(q));
    for (const c of data.items) state.cards.set(String(c.item_id), c);
    $("product-results").replaceChildren(...data.items.map((c) => el("li", { dataset: { testid: "product-result" } },
      el("button", { class: "mini", type: "button", text: "+ add", dataset: { testid: "product-add" }, onclick: () => addToSession(c.item_id) }),
      " ", itemTitle(c), el("span", { class: "id", text: String(c.item_id) }), c.category ? el("span", { class: "chip", text: c.category }) : null)));
  }, 150);
}

// ------------------------------------------------------------------ start
async function start() {
  try {
    const ready = await api("/health/ready");
    $("model-info").textContent = `model ${ready.model} · as of ${String(ready.as_of).slice(0, 10)} · ` +
      `${ready.n_users.toLocaleString()} customers · ${ready.n_items.toLocaleString()} products`;
  } catch (e) { $("model-info").textContent = "service not ready: " + e.message; return; }
  const [examples, facets] = await Promise.all([api("/users/search?limit=4"), api("/items/facets")]);
  state.facets = facets;
  $("user-examples").replaceChildren(...examples.users.map((u) => el("button", { class: "link", type: "button",
    text: String(u.user_id), onclick: () => loadUser(String(u.user_id)) })),
  el("button", { class: "link", type: "button", text: "a new visitor", onclick: () => loadUser("visitor-" + Date.now()) }));
  $("opt-categories").replaceChildren(...facets.categories.map((c) => el("option", { value: c.name, text: `${c.name} (${c.items})` })));
  $("opt-categories").disabled = !facets.categories.length;
  $("opt-available").disabled = !facets.available;
  $("user-form").addEventListener("submit", (ev) => { ev.preventDefault(); loadUser($("user-input").value.trim()); });
  $("user-input").addEventListener("input", async () => {
    const q = $("user-input").value.trim();
    if (!q) return;
    const data = await api("/users/search?limit=10&q=" + encodeURIComponent(q));
    $("user-suggestions").replaceChildren(...data.users.map((u) => el("option", { value: String(u.user_id) })));
  });
  for (const id of ["opt-k", "opt-diversity", "opt-lambda", "opt-cap", "opt-categories", "opt-exclude", "opt-available"]) {
    $(id).addEventListener("change", () => { clearTimeout(state.timer); state.timer = setTimeout(refreshOptions, 120); });
  }
  $("opt-lambda").addEventListener("input", () => { $("opt-lambda-out").textContent = $("opt-lambda").value; });
  $("product-search").addEventListener("input", searchProducts);
  $("session-clear").addEventListener("click", () => { state.session = []; refreshSession(); });
  $("drawer-close").addEventListener("click", () => { $("drawer").hidden = true; });
  $("drawer-add").addEventListener("click", () => addToSession(state.drawerItem));
  searchProducts();
  const m = location.hash.match(/user=([^&]+)/);
  if (m) loadUser(decodeURIComponent(m[1]));
}

start();
