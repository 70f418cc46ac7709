(() => {
  "use strict";
  const D = JSON.parse(document.getElementById("alti-data").textContent);
  const M = D.methods, S = D.samples, $ = (id) => document.getElementById(id);
  const sortNeeds = Object.fromEntries(D.sorts.map((s) => [s[0], s[2]]));
  const state = { sort: "dataset", a: M[0], b: M[Math.min(1, M.length - 1)], best: false, q: "", mis: false,
                  page: 1, size: D.pageSize, shown: new Set(M) };
  const ENTITIES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;" };
  const esc = (t) => String(t).replace(/[&<>"']/g, (c) => ENTITIES[c]);
  // as alti.export.display_token: space markers removed, a lone one shown as a visible space
  const shownToken = (t) =>
    t.replaceAll("\u0120", "").replaceAll("\u2581", "").replaceAll("\u010a", "\\n") ||
    (/^[\u0120\u2581]+$/.test(t) ? "\u2423" : t);
  const curves = (k) => k === "comprehensiveness" || k === "sufficiency";
  const directed = (k) => k === "length" || curves(k) || k in D.contextSorts;
  const count = (n) => n.toLocaleString("en");

  function readHash() {
    const h = new URLSearchParams(location.hash.slice(1));
    const sort = h.get("sort");
    if (sortNeeds[sort] !== undefined && (D.hasCurves || !curves(sort))) state.sort = sort;
    if (M.includes(h.get("a"))) state.a = h.get("a");
    if (M.includes(h.get("b"))) state.b = h.get("b");
    state.best = h.get("best") === "1";
    state.q = h.get("q") || "";
    state.mis = h.get("mis") === "1";
    const size = parseInt(h.get("size"), 10);
    if (D.pageSizes.includes(size)) state.size = size;
    state.page = Math.max(1, parseInt(h.get("page"), 10) || 1);
    if (h.has("methods")) state.shown = new Set(h.get("methods").split(",").filter((m) => M.includes(m)));
  }
  function writeHash() {
    const h = new URLSearchParams();
    h.set("sort", state.sort);
    const needs = sortNeeds[state.sort];
    if (needs >= 1) h.set("a", state.a);
    if (needs >= 2) h.set("b", state.b);
    if (state.best) h.set("best", "1");
    if (state.q) h.set("q", state.q);
    if (state.mis) h.set("mis", "1");
    if (state.size !== D.pageSize) h.set("size", String(state.size));
    if (state.page > 1) h.set("page", String(state.page));
    if (state.shown.size !== M.length) h.set("methods", M.filter((m) => state.shown.has(m)).join(","));
    history.replaceState(null, "", "#" + h.toString());
  }
  function orderKey() {
    const needs = sortNeeds[state.sort];
    const parts = [state.sort];
    if (needs === 1) parts.push(M.indexOf(state.a));
    if (needs === 2) parts.push(...[M.indexOf(state.a), M.indexOf(state.b)].sort((x, y) => x - y));
    if (state.best && directed(state.sort)) parts.push("best");
    return parts.join(":");
  }
  function listed() {
    const needle = state.q.toLowerCase().trim();
    const ranked = D.orders[orderKey()] || D.orders.dataset;
    return ranked.filter((i) => (!needle || S[i][6].includes(needle)) && (!state.mis || S[i][4] === 1));
  }
  function percent(p) { return p === null ? "?" : (100 * p).toFixed(1) + "%"; }
  function sortValue(i) {
    if (state.sort === "disagreement") {
      const [x, y] = [M.indexOf(state.a), M.indexOf(state.b)].sort((p, q) => p - q);
      if (x === y) return "";
      const v = D.values["disagreement:" + x + ":" + y][i];
      return " · ρ(" + esc(M[x]) + ", " + esc(M[y]) + ") = " + (v === null ? "undefined" : v.toFixed(3));
    }
    if (curves(state.sort)) {
      const v = D.values[state.sort + ":" + M.indexOf(state.a)][i];
      return " · " + state.sort.slice(0, 4) + ". " + esc(state.a) + " = " + (v === null ? "–" : v.toFixed(4));
    }
    if (state.sort in D.contextSorts) {
      const v = D.values[state.sort + ":" + M.indexOf(state.a)][i];
      return " · " + esc(D.contextSorts[state.sort]) + " " + esc(state.a) + " = " + (v === null ? "–" : v.toFixed(4));
    }
    return "";
  }
  function card(i) {
    const [id, pred, gold, conf, mis, len, , tokens, rows] = S[i];
    const lm = D.tokens;
    const name = (t) => lm ? "'" + esc(shownToken(t)) + "'" : esc(t);
    let verdict = "";
    if (gold !== null) {
      const mark = '<span class="verdict">' + (mis === 1 ? "✗" : "✓") + "</span>";
      verdict = " · " + (lm ? "target " : "gold ") + name(gold) + " " + mark;
    }
    const out = [
      '<article class="sample' + (mis === 1 ? " miss" : "") + '" data-i="' + i + '" data-id="' + esc(id) + '">',
      '<header><span class="id">#' + esc(id) + "</span> · predicted " + name(pred) + " (" + percent(conf) + ")",
      verdict + " · " + len + " tokens" + sortValue(i) + '</header><table class="alti">',
    ];
    M.forEach((m, r) => {
      if (!state.shown.has(m)) return;
      const [colours, scores] = rows[r];
      const values = scores.split(" ");
      const spans = tokens.map((t, k) =>
        '<span class="tok k' + colours[k] + '" title="' + esc(t) + ": " + values[k] + '">' +
        esc(shownToken(t)) + "</span>");
      out.push('<tr><th scope="row">' + esc(m) + "</th><td>" + spans.join(" ") + "</td></tr>");
    });
    out.push("</table></article>");
    return out.join("");
  }
  function render() {
    const list = listed();
    const pages = Math.max(1, Math.ceil(list.length / state.size));
    state.page = Math.min(state.page, pages);
    const start = (state.page - 1) * state.size, slice = list.slice(start, start + state.size);
    $("samples").innerHTML = slice.length ? slice.map(card).join("") : '<p class="note">No sample matches.</p>';
    const range = count(start + 1) + "–" + count(start + slice.length);
    let where = list.length ? "samples " + range + " of " + count(list.length) : "0 samples";
    if (list.length !== S.length) where += " listed (" + count(S.length) + " in the run)";
    document.querySelectorAll(".pager").forEach((p) => {
      p.querySelector(".where").textContent = where + " · page " + count(state.page) + " of " + count(pages);
      p.querySelector(".first").disabled = p.querySelector(".prev").disabled = state.page <= 1;
      p.querySelector(".next").disabled = p.querySelector(".last").disabled = state.page >= pages;
    });
    syncControls();
    writeHash();
  }
  function syncControls() {
    const needs = sortNeeds[state.sort];
    $("sort").value = state.sort;
    $("a").value = state.a;
    $("b").value = state.b;
    $("a-label").hidden = needs < 1;
    $("b-label").hidden = needs < 2;
    $("best-label").hidden = !directed(state.sort);
    $("best-text").textContent = state.sort === "length" ? "shortest first" : "best first";
    $("best").checked = state.best;
    if ($("q").value !== state.q) $("q").value = state.q;
    $("mis").checked = state.mis;
    $("size").value = String(state.size);
    document.querySelectorAll("#shown input").forEach((box) => { box.checked = state.shown.has(box.value); });
  }
  function setup() {
    const option = (value, text, extra = "") =>
      '<option value="' + esc(value) + '"' + extra + ">" + esc(text) + "</option>";
    const noCurves = ' disabled title="write the run with alti attribute --curves"';
    $("sort").innerHTML = D.sorts.map(([key, title]) => option(key, title, curves(key) && !D.hasCurves ? noCurves : ""))
      .join("");
    $("a").innerHTML = $("b").innerHTML = M.map((m) => option(m, m)).join("");
    $("size").innerHTML = D.pageSizes.map((n) => option(n, n)).join("");
    $("shown").innerHTML = M.map((m) => '<label><input type="checkbox" value="' + esc(m) + '"> ' + esc(m) + "</label>")
      .join(" ");
    const again = (change) => (event) => { change(event); render(); };
    const first = (change) => again((event) => { change(event); state.page = 1; });
    $("sort").addEventListener("change", first(() => { state.sort = $("sort").value; }));
    $("a").addEventListener("change", first(() => { state.a = $("a").value; }));
    $("b").addEventListener("change", first(() => { state.b = $("b").value; }));
    $("best").addEventListener("change", first(() => { state.best = $("best").checked; }));
    $("mis").addEventListener("change", first(() => { state.mis = $("mis").checked; }));
    $("size").addEventListener("change", first(() => { state.size = parseInt($("size").value, 10); }));
    $("shown").addEventListener("change", again((e) => {
      if (e.target.checked) state.shown.add(e.target.value); else state.shown.delete(e.target.value);
    }));
    let timer = null;
    $("q").addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(first(() => { state.q = $("q").value; }), 150);
    });
    document.querySelectorAll(".pager").forEach((p) => {
      const bottom = p.classList.contains("bottom");
      const go = (page) => () => { state.page = page(); render(); if (bottom) $("list").scrollIntoView(); };
      p.querySelector(".first").addEventListener("click", go(() => 1));
      p.querySelector(".prev").addEventListener("click", go(() => state.page - 1));
      p.querySelector(".next").addEventListener("click", go(() => state.page + 1));
      p.querySelector(".last").addEventListener("click", go(() => Infinity));
    });
    window.addEventListener("hashchange", () => { readHash(); render(); });
  }
  setup();
  readHash();
  render();
  window.altiReport = { state, render, listed };
})();
