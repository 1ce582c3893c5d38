// Compare runs: a queryable runs table, then overlaid curves, config diff, summary table and
// parallel coordinates for the selected runs.
//
// Every piece of state lives in the query string (runs, q, sort, page, columns, keys, x,
// smooth, group_by, agg, pc_keys, pc_metric), so the URL is what a user shares. The server
// does the heavy lifting: it filters and pages the table, and returns each series already
// reduced to its share of a point budget (min/max buckets, spikes kept); zooming a chart
// asks again for just the zoomed range, which comes back at full resolution.
(function () {
  "use strict";

  const root = document.getElementById("compare");
  const urls = {
    runs: root.dataset.runsUrl,
    compare: root.dataset.compareUrl,
    tableCsv: root.dataset.tableCsvUrl,
    curvesCsv: root.dataset.curvesCsvUrl,
    detail: (id) => root.dataset.detailUrl.replace("/0/", "/" + id + "/"),
  };
  const $ = (id) => document.getElementById(id);
  const PAGE_SIZE = 50;
  const MANY_RUNS = 12;     // more runs than this share traces (see bucketTraces)
  const TEAM_BASELINE_COLOR = "#222b36";
  const COLORS = ["#2f6fdf", "#d9534f", "#1f8a4c", "#b7791f", "#7b4bd6", "#0f9aa8", "#c2417a", "#5c6b7a",
                  "#e07b00", "#3d9970"];
  const BASE_COLUMNS = [["name", "Name"], ["status", "Status"], ["dataset", "Dataset"], ["owner", "Owner"],
                        ["tags", "Tags"], ["date", "Created"]];

  const params = new URLSearchParams(location.search);
  const state = {
    runs: (params.get("runs") || "").split(",").map(Number).filter((id) => id > 0),
    q: params.get("q") || "",
    sort: params.get("sort") || "-date",
    page: Number(params.get("page")) || 1,
    columns: params.get("columns") || "",
    keys: params.get("keys") || root.dataset.defaultKeys,
    x: params.get("x") || "step",
    smooth: Number(params.get("smooth")) || 0,
    groupBy: params.get("group_by") || "",
    agg: params.get("agg") || "last",
    pcKeys: params.get("pc_keys") || "",
    pcMetric: params.get("pc_metric") || "",
  };
  let comparison = null;   // the last /compare/ answer
  let compareSeq = 0;      // answers older than the newest request are dropped
  const zoomed = {};       // key -> the zoomed answer's series for that key
  window.compareState = { ready: false, charts: 0, fetches: 0 };

  // ---- URL state ----------------------------------------------------------------------

  function saveState() {
    const out = new URLSearchParams();
    const put = (name, value, empty) => { if (value !== empty && value !== "" && value !== null) out.set(name, value); };
    put("runs", state.runs.join(","), "");
    put("q", state.q, "");
    put("sort", state.sort, "-date");
    put("page", String(state.page), "1");
    put("columns", state.columns, "");
    put("keys", state.keys, root.dataset.defaultKeys);
    put("x", state.x, "step");
    put("smooth", state.smooth ? String(state.smooth) : "", "");
    put("group_by", state.groupBy, "");
    put("agg", state.agg, "last");
    put("pc_keys", state.pcKeys, "");
    put("pc_metric", state.pcMetric, "");
    const query = out.toString().replace(/%2C/g, ",").replace(/%2F/g, "/");
    history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
  }

  async function fetchJson(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error((body.errors && body.errors[0] && body.errors[0].message) || response.statusText);
      error.body = body;
      error.status = response.status;
      throw error;
    }
    return body;
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "text") node.textContent = value;
      else if (name === "className") node.className = value;
      else node.setAttribute(name, value);
    }
    for (const child of children || []) node.append(child);
    return node;
  }

  function fmt(value) {
    if (value === null || value === undefined) return "—";
    if (typeof value === "number") return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(4)));
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  // ---- runs table ---------------------------------------------------------------------

  function extraColumns() {
    return state.columns.split(",").map((c) => c.trim()).filter(Boolean);
  }

  async function loadTable() {
    const query = new URLSearchParams({ q: state.q, sort: state.sort, page: state.page, page_size: PAGE_SIZE });
    if (state.columns) query.set("columns", state.columns);
    $("query-error").hidden = true;
    let page;
    try {
      page = await fetchJson(urls.runs + "?" + query);
    } catch (error) {
      const column = error.body && error.body.errors && error.body.errors[0].column;
      $("query-error").textContent = (column ? "column " + column + ": " : "") + error.message;
      $("query-error").hidden = false;
      return;
    }
    if (page.page > page.pages && state.page > 1) { state.page = page.pages; saveState(); return loadTable(); }
    renderTable(page);
  }

  function renderTable(page) {
    const head = $("runs-head");
    head.replaceChildren(el("th", { text: "" }));
    const columns = BASE_COLUMNS.concat(extraColumns().map((c) => [c, c]));
    for (const [field, label] of columns) {
      const sorted = state.sort.replace(/^-/, "") === field;
      const th = el("th", { text: label + (sorted ? (state.sort.startsWith("-") ? " ▼" : " ▲") : ""),
                            className: "sortable", "data-sort": field });
      th.addEventListener("click", () => {
        state.sort = sorted && !state.sort.startsWith("-") ? "-" + field : field;
        state.page = 1;
        saveState();
        loadTable();
      });
      head.append(th);
    }
    const body = $("runs-body");
    body.replaceChildren();
    for (const run of page.results) {
      const box = el("input", { type: "checkbox", "data-run-id": run.id, "aria-label": "select run " + run.id });
      box.checked = state.runs.includes(run.id);
      box.addEventListener("change", () => toggleRun(run.id, box.checked));
      const name = el("td", {}, [el("a", { href: urls.detail(run.id), text: run.name }),
                                 el("span", { className: "muted", text: " #" + run.id + (run.is_baseline ? " · baseline" : "") })]);
      const row = el("tr", { "data-run-id": run.id }, [
        el("td", {}, [box]), name,
        el("td", {}, [el("span", { className: "badge " + run.status, text: run.status })]),
        el("td", { text: run.dataset }), el("td", { text: run.owner }), el("td", { text: run.tags.join(", ") }),
        el("td", { text: run.created_at.slice(0, 16).replace("T", " ") }),
      ]);
      for (const column of extraColumns()) row.append(el("td", { className: "num", text: fmt(run.columns[column]) }));
      body.append(row);
    }
    $("page-info").textContent = "page " + page.page + " of " + page.pages + " · " + page.count + " runs";
    $("prev-page").disabled = page.page <= 1;
    $("next-page").disabled = page.page >= page.pages;
  }

  function toggleRun(id, on) {
    state.runs = on ? state.runs.concat([id]).filter((v, i, a) => a.indexOf(v) === i) : state.runs.filter((r) => r !== id);
    saveState();
    scheduleCompare();
  }

  // ---- comparison ---------------------------------------------------------------------

  let compareTimer = null;
  function scheduleCompare() {
    clearTimeout(compareTimer);
    compareTimer = setTimeout(loadComparison, 150);
  }

  function keysList() {
    return state.keys.split(",").map((k) => k.trim()).filter(Boolean);
  }

  function budgetFor(series) {
    // 1,000 points per series for a few runs, fewer as runs are added (100 each for 100 runs ×
    // 5 metrics): the total stays near 40,000, which SVG charts draw quickly. Zoom for detail.
    const perSeries = Math.max(100, Math.min(1000, Math.floor(40000 / Math.max(series, 1))));
    return perSeries * Math.max(series, 1);
  }

  function compareQuery(extra) {
    const query = new URLSearchParams({ runs: state.runs.join(","), keys: keysList().join(","), x: state.x });
    query.set("max_points", budgetFor(state.runs.length * keysList().length));
    const group = groupByParam();
    if (group) query.set("group_by", group);
    for (const [name, value] of Object.entries(extra || {})) query.set(name, value);
    return query;
  }

  function groupByParam() {
    return state.groupBy === "seed" ? "seed" : state.groupBy;
  }

  async function loadComparison() {
    const count = state.runs.length;
    $("selected-count").textContent = count ? count + " selected" : "none selected";
    $("comparison").hidden = count === 0;
    updateExports();
    if (!count) { comparison = null; return; }
    const seq = ++compareSeq;
    $("compare-status").textContent = "loading…";
    let body;
    const started = performance.now();
    try {
      body = await fetchJson(urls.compare + "?" + compareQuery());
    } catch (error) {
      if (seq === compareSeq) $("compare-status").textContent = error.message;
      return;
    }
    if (seq !== compareSeq) return;
    window.compareState.fetches += 1;
    comparison = body;
    for (const key of Object.keys(zoomed)) delete zoomed[key];
    $("compare-status").textContent = body.points + " points shown" +
      (body.missing.length ? " · not found: " + body.missing.join(", ") : "");
    const fetched = performance.now();
    window.compareState.chartMs = [];
    await drawCharts();
    if (seq !== compareSeq) return;
    const charted = performance.now();
    drawDiff();
    drawSummary();
    const tabled = performance.now();
    scheduleParcoords();
    const done = performance.now();
    window.compareState.timings = { startedAt: started, fetchMs: fetched - started, drawMs: done - fetched,
                                    chartsMs: charted - fetched, tablesMs: tabled - charted };
    window.compareState.ready = true;
    if (!window.compareState.readyAt) window.compareState.readyAt = performance.now();  // time to interactive
    document.body.dataset.compareReady = String(compareSeq);
  }

  function updateExports() {
    const query = compareQuery({ max_points: 200000 });
    $("export-table").href = urls.tableCsv + "?" + query;
    $("export-curves").href = urls.curvesCsv + "?" + query;
    // Every stored point, not the downsampled curves: the budget and groups do not apply.
    const full = new URLSearchParams({ runs: state.runs.join(","), keys: keysList().join(","), x: state.x, full: "1" });
    $("export-curves-full").href = urls.curvesCsv + "?" + full;
  }

  function runName(run) { return "#" + run.id + " " + run.name; }

  function colorOf(index) { return COLORS[index % COLORS.length]; }

  // TensorBoard's debiased exponential moving average.
  function smooth(values, weight) {
    if (!weight) return values;
    const out = new Array(values.length);
    let last = 0;
    for (let i = 0; i < values.length; i++) {
      last = last * weight + (1 - weight) * values[i];
      out[i] = last / (1 - Math.pow(weight, i + 1));
    }
    return out;
  }

  function xValues(xs) {
    return state.x === "time" ? xs.map((t) => new Date(t * 1000)) : xs;
  }

  function chartTraces(key) {
    const traces = [];
    const grouped = new Set();
    const groups = (comparison.groups || []).filter((group) => group.runs.length > 1 && group.series[key]);
    groups.forEach((group, index) => {
      const band = (zoomed[key] && zoomed[key].groups && zoomed[key].groups[index]) || group.series[key];
      group.runs.forEach((id) => grouped.add(id));
      const color = colorOf(index);
      const mean = smooth(band.mean, state.smooth);
      const x = xValues(band.x);
      traces.push({ x: x, y: mean.map((m, i) => m - band.std[i]), mode: "lines", line: { width: 0 },
                    showlegend: false, hoverinfo: "skip", type: "scatter" });
      traces.push({ x: x, y: mean.map((m, i) => m + band.std[i]), mode: "lines", line: { width: 0 }, fill: "tonexty",
                    fillcolor: color + "33", showlegend: false, hoverinfo: "skip", type: "scatter" });
      traces.push({ x: x, y: mean, mode: "lines", name: group.label + " mean ± std", line: { color: color },
                    type: "scatter", meta: "group" });
    });
    const seriesOf = zoomed[key] ? zoomed[key].series : comparison.series;
    const shown = comparison.runs.filter((run) => !grouped.has(run.id) && seriesOf[String(run.id)] &&
                                                  seriesOf[String(run.id)][key]);
    if (shown.length > MANY_RUNS) return traces.concat(bucketTraces(shown, seriesOf, key, groups.length));
    shown.forEach((run) => {
      const series = seriesOf[String(run.id)][key];
      const color = colorOf(comparison.runs.indexOf(run) + groups.length);
      const x = xValues(series.x);
      if (state.smooth) {
        traces.push({ x: x, y: series.y, mode: "lines", line: { color: color, width: 1 }, opacity: 0.25,
                      showlegend: false, hoverinfo: "skip", type: "scatter" });
      }
      traces.push({ x: x, y: smooth(series.y, state.smooth), mode: "lines", name: runName(run),
                    line: { color: color, width: 1.5 }, type: "scatter", meta: "run-" + run.id });
    });
    return traces;
  }

  // Past a dozen runs, one SVG trace per run makes each chart slow to draw (100 runs × 5
  // charts = 500 traces). Runs then share one trace per colour, separated by gaps; the
  // hover label still names the run.
  function bucketTraces(runs, seriesOf, key, offset) {
    const buckets = COLORS.map(() => ({ x: [], y: [], text: [] }));
    runs.forEach((run, index) => {
      const series = seriesOf[String(run.id)][key];
      const bucket = buckets[(comparison.runs.indexOf(run) + offset) % COLORS.length];
      const y = smooth(series.y, state.smooth);
      const x = xValues(series.x);
      const name = runName(run);
      for (let i = 0; i < x.length; i++) { bucket.x.push(x[i]); bucket.y.push(y[i]); bucket.text.push(name); }
      bucket.x.push(null); bucket.y.push(null); bucket.text.push("");
    });
    return buckets.map((bucket, index) => ({
      x: bucket.x, y: bucket.y, text: bucket.text, mode: "lines", type: "scatter", showlegend: false,
      connectgaps: false, line: { color: COLORS[index], width: 1 },
      hovertemplate: "%{text}<br>%{x}: %{y}<extra></extra>", meta: "runs-" + index,
    })).filter((trace) => trace.x.length);
  }

  function baselineShapes(key) {
    const seen = new Map();
    for (const run of comparison.runs) {
      const values = (comparison.baselines[String(run.id)] || {})[key];
      if (!values) continue;
      for (const kind of ["identity", "linear"]) {
        if (typeof values[kind] === "number") seen.set(kind + ":" + values[kind], [kind, values[kind]]);
      }
    }
    const shapes = [];
    const annotations = [];
    for (const [kind, value] of seen.values()) {
      const color = kind === "identity" ? "#8895a7" : "#b7791f";
      shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, y0: value, y1: value,
                    line: { dash: kind === "identity" ? "dash" : "dot", color: color, width: 1.5 } });
      annotations.push({ xref: "paper", x: 1, y: value, xanchor: "right", yanchor: "bottom", showarrow: false,
                         text: kind + " baseline", font: { size: 10, color: color } });
    }
    // The team's baseline run (when it is not one of the compared runs): a solid line labelled
    // on the left, away from the trainer's baselines on the right.
    for (const baseline of comparison.team_baselines || []) {
      const value = baseline.values[key];
      if (typeof value !== "number") continue;
      shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, y0: value, y1: value,
                    line: { color: TEAM_BASELINE_COLOR, width: 1.5 } });
      annotations.push({ xref: "paper", x: 0, y: value, xanchor: "left", yanchor: "bottom", showarrow: false,
                         text: "team baseline: " + plotlyText(baseline.name), font: { size: 10, color: TEAM_BASELINE_COLOR } });
    }
    return { shapes: shapes, annotations: annotations };
  }

  // Plotly reads tags and entities in annotation text; a run name is user text, shown as typed.
  function plotlyText(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function chartLayout(key, range) {
    const refs = baselineShapes(key);
    const layout = {
      title: { text: key, font: { size: 14 }, x: 0.02, xanchor: "left" },
      margin: { l: 55, r: 15, t: 34, b: 30 },
      xaxis: { title: { text: state.x === "time" ? "" : "step", standoff: 4 }, type: state.x === "time" ? "date" : "linear" },
      yaxis: { exponentformat: "e" },
      showlegend: comparison.runs.length <= 12,
      legend: { orientation: "h", x: 0, y: -0.18, yanchor: "top", font: { size: 11 } },
      shapes: refs.shapes,
      annotations: refs.annotations.concat(hasData(key) ? [] : [{ text: "no data for these runs", showarrow: false,
        xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { color: "#9aa5b1" } }]),
      uirevision: key + "|" + state.x,
    };
    if (range) { layout.xaxis.range = range; layout.xaxis.autorange = false; }
    return layout;
  }

  function hasData(key) {
    return Object.values(comparison.series).some((perKey) => perKey[key] && perKey[key].x.length);
  }

  // Charts are drawn when they come into view (and redrawn in place after that): with 100
  // runs each chart is ~10,000 SVG points, and the ones below the fold need not hold up the
  // ones the user is looking at. drawCharts() resolves once the visible ones are drawn.
  let chartObserver = null;
  let firstLook = null;  // {waiting: Set of new divs, resolve}

  function drawCharts() {
    const container = $("charts");
    const keys = keysList();
    if (!chartObserver) chartObserver = new IntersectionObserver(onChartsSeen, { rootMargin: "100px" });
    for (const div of Array.from(container.children)) {
      if (keys.includes(div.dataset.key)) continue;
      chartObserver.unobserve(div);
      if (div.dataset.drawn) Plotly.purge(div);
      div.remove();
    }
    const fresh = new Set();
    keys.forEach((key, index) => {
      let div = container.querySelector('[data-key="' + CSS.escape(key) + '"]');
      if (!div) {
        div = el("div", { className: "chart", "data-key": key, id: "chart-" + index });
        fresh.add(div);
      }
      container.append(div);  // keep the order of `keys`
      div.dataset.pending = "1";
      if (div.visible) plotChart(div);
    });
    fresh.forEach((div) => chartObserver.observe(div));
    window.compareState.charts = keys.length;
    if (!fresh.size) return Promise.resolve();
    if (firstLook) firstLook.resolve();  // an earlier draw's wait ends here too
    return new Promise((resolve) => { firstLook = { waiting: fresh, resolve: resolve }; });
  }

  function onChartsSeen(entries) {
    for (const entry of entries) {
      entry.target.visible = entry.isIntersecting;
      if (entry.isIntersecting && entry.target.dataset.pending) plotChart(entry.target);
      if (firstLook) firstLook.waiting.delete(entry.target);
    }
    if (firstLook && !firstLook.waiting.size) { firstLook.resolve(); firstLook = null; }
  }

  function plotChart(div) {
    const key = div.dataset.key;
    const started = performance.now();
    if (!div.dataset.drawn) {
      Plotly.newPlot(div, chartTraces(key), chartLayout(key), { responsive: true, displaylogo: false });
      div.on("plotly_relayout", (event) => onZoom(key, div, event));
      div.dataset.drawn = "1";
    } else {
      Plotly.react(div, chartTraces(key), chartLayout(key, zoomed[key] && zoomed[key].range));
    }
    delete div.dataset.pending;
    (window.compareState.chartMs = window.compareState.chartMs || []).push([key, Math.round(performance.now() - started)]);
  }

  // Zoom: fetch the zoomed range of this key only, at full resolution within the budget.
  async function onZoom(key, div, event) {
    let low = event["xaxis.range[0]"];
    let high = event["xaxis.range[1]"];
    if (event["xaxis.range"]) [low, high] = event["xaxis.range"];
    if (event["xaxis.autorange"]) {
      if (zoomed[key]) { delete zoomed[key]; Plotly.react(div, chartTraces(key), chartLayout(key)); }
      return;
    }
    if (low === undefined || high === undefined || !comparison) return;
    const toX = (v) => state.x === "time" ? new Date(String(v).replace(" ", "T") + "Z").getTime() / 1000 : Number(v);
    const query = compareQuery({ keys: key, x_min: toX(low), x_max: toX(high) });
    query.set("max_points", budgetFor(state.runs.length));
    const seq = compareSeq;
    try {
      const body = await fetchJson(urls.compare + "?" + query);
      if (seq !== compareSeq) return;
      zoomed[key] = { series: body.series, groups: body.groups.filter((g) => g.runs.length > 1 && g.series[key])
                        .map((g) => g.series[key]), range: [low, high] };
      Plotly.react(div, chartTraces(key), chartLayout(key, [low, high]));
      div.dataset.zoomFetches = String(Number(div.dataset.zoomFetches || 0) + 1);
    } catch (error) {
      $("compare-status").textContent = "zoom: " + error.message;
    }
  }

  // ---- config diff, summary, parallel coordinates ------------------------------------

  function drawDiff() {
    const table = $("config-diff");
    const runs = comparison.runs;
    const head = el("tr", {}, [el("th", { text: "key" })].concat(runs.map((run) => el("th", { text: runName(run) }))));
    const rows = comparison.config_diff.map((row) => el("tr", { "data-key": row.key },
      [el("td", {}, [el("code", { text: row.key })])].concat(
        runs.map((run) => el("td", { text: fmt(row.values[String(run.id)]) })))));
    table.replaceChildren(el("thead", {}, [head]), el("tbody", {}, rows));
    $("no-diff").hidden = comparison.config_diff.length > 0 || runs.length < 2;
  }

  function drawSummary() {
    const keys = comparison.keys;
    const table = $("summary-table");
    const head = el("tr", {}, [el("th", { text: "run" })].concat(keys.map((key) => el("th", { className: "num", text: key }))));
    const rows = comparison.runs.map((run) => el("tr", { "data-run-id": run.id }, [el("td", { text: runName(run) })].concat(
      keys.map((key) => el("td", { className: "num", text: fmt((comparison.summary[String(run.id)][key] || {})[state.agg]) })))));
    table.replaceChildren(el("thead", {}, [head]), el("tbody", {}, rows));
  }

  function flatten(value, prefix, out) {
    out = out || {};
    if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const [key, child] of Object.entries(value)) flatten(child, prefix ? prefix + "." + key : key, out);
    } else if (Array.isArray(value) && value.some((item) => item && typeof item === "object")) {
      value.forEach((child, index) => flatten(child, prefix ? prefix + "." + index : String(index), out));
    } else {
      out[prefix] = value;
    }
    return out;
  }

  // The parallel-coordinates plot is WebGL, slow to draw without a GPU, and sits below the
  // fold: it is drawn once it scrolls into view, so the charts above are usable first.
  let parcoordsObserver = null;
  function scheduleParcoords() {
    const div = $("parcoords");
    if (!("IntersectionObserver" in window)) { drawParcoords(); return; }
    if (parcoordsObserver) parcoordsObserver.disconnect();
    parcoordsObserver = new IntersectionObserver((entries) => {
      if (!entries.some((entry) => entry.isIntersecting)) return;
      parcoordsObserver.disconnect();
      const started = performance.now();
      drawParcoords();
      window.compareState.parcoordsMs = performance.now() - started;
      div.dataset.drawn = String(Number(div.dataset.drawn || 0) + 1);
    });
    parcoordsObserver.observe(div);
  }

  function drawParcoords() {
    const select = $("pc-metric");
    const metric = keysList().includes(state.pcMetric) ? state.pcMetric
      : (keysList().find((key) => key.startsWith("val/")) || keysList()[0]);
    select.replaceChildren(...keysList().map((key) => el("option", { value: key, text: key })));
    select.value = metric;
    const configs = comparison.runs.map((run) => flatten(run.config, ""));
    const keys = (state.pcKeys ? state.pcKeys.split(",").map((k) => k.trim()).filter(Boolean)
      : comparison.config_diff.map((row) => row.key).filter((key) => key !== "name" && key !== "data.path").slice(0, 6));
    const dimensions = keys.map((key) => {
      const values = configs.map((flat) => flat[key]);
      if (values.every((v) => typeof v === "number")) return { label: key, values: values };
      const labels = Array.from(new Set(values.map((v) => fmt(v)))).sort();
      return { label: key, values: values.map((v) => labels.indexOf(fmt(v))), tickvals: labels.map((_, i) => i),
               ticktext: labels };
    });
    const scores = comparison.runs.map((run) => {
      const value = (comparison.summary[String(run.id)][metric] || {})[state.agg];
      return typeof value === "number" ? value : NaN;
    });
    dimensions.push({ label: metric + " (" + state.agg + ")", values: scores });
    const div = $("parcoords");
    Plotly.react(div, [{ type: "parcoords", dimensions: dimensions,
                         line: { color: scores.map((s) => (Number.isNaN(s) ? 0 : s)), colorscale: "Viridis", showscale: true } }],
                 { margin: { l: 60, r: 60, t: 40, b: 20 } }, { responsive: true, displaylogo: false });
  }

  // ---- wiring -------------------------------------------------------------------------

  function bind() {
    $("query").value = state.q;
    $("columns").value = state.columns;
    $("keys").value = state.keys;
    $("x-axis").value = state.x;
    $("smoothing").value = String(state.smooth);
    $("smoothing-value").textContent = String(state.smooth);
    $("aggregate").value = state.agg;
    $("pc-keys").value = state.pcKeys;
    const custom = state.groupBy && state.groupBy !== "seed";
    $("group-by").value = custom ? "custom" : state.groupBy;
    $("group-key").hidden = !custom;
    $("group-key").value = custom ? state.groupBy : "";

    $("query-form").addEventListener("submit", (event) => {
      event.preventDefault();
      state.q = $("query").value.trim();
      state.columns = $("columns").value.split(",").map((c) => c.trim()).filter(Boolean).join(",");
      state.page = 1;
      saveState();
      loadTable();
    });
    $("prev-page").addEventListener("click", () => { state.page = Math.max(1, state.page - 1); saveState(); loadTable(); });
    $("next-page").addEventListener("click", () => { state.page += 1; saveState(); loadTable(); });
    $("clear-selection").addEventListener("click", () => {
      state.runs = [];
      document.querySelectorAll("#runs-body input[type=checkbox]").forEach((box) => { box.checked = false; });
      saveState();
      loadComparison();
    });
    $("keys").addEventListener("change", () => {
      state.keys = $("keys").value.split(",").map((k) => k.trim()).filter(Boolean).join(",") || root.dataset.defaultKeys;
      saveState();
      scheduleCompare();
    });
    $("x-axis").addEventListener("change", () => { state.x = $("x-axis").value; saveState(); scheduleCompare(); });
    $("smoothing").addEventListener("input", () => {
      state.smooth = Number($("smoothing").value);
      $("smoothing-value").textContent = String(state.smooth);
      saveState();
      if (comparison) drawCharts();
    });
    $("group-by").addEventListener("change", () => {
      const choice = $("group-by").value;
      $("group-key").hidden = choice !== "custom";
      state.groupBy = choice === "custom" ? $("group-key").value.trim() : choice;
      saveState();
      scheduleCompare();
    });
    $("group-key").addEventListener("change", () => { state.groupBy = $("group-key").value.trim(); saveState(); scheduleCompare(); });
    $("aggregate").addEventListener("change", () => {
      state.agg = $("aggregate").value;
      saveState();
      if (comparison) { drawSummary(); drawParcoords(); }
    });
    $("pc-keys").addEventListener("change", () => { state.pcKeys = $("pc-keys").value.trim(); saveState(); if (comparison) drawParcoords(); });
    $("pc-metric").addEventListener("change", () => { state.pcMetric = $("pc-metric").value; saveState(); if (comparison) drawParcoords(); });
  }

  bind();
  loadTable();
  loadComparison();
})();
