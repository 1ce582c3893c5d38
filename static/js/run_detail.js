// Run detail: live charts, status, log tail, checkpoints.
//
// Charts are created once from GET /api/v1/runs/<id>/metrics/ and then only ever extended
// in place (Plotly.extendTraces / addTraces) as websocket events arrive, so the user's zoom
// and legend selection survive every update (layout.uirevision stays constant as well).
// After a reconnect the page backfills from the REST API with since_step=<cursor>, the way
// zulip's event queue resumes; per-key "last step" bookkeeping drops duplicate points.
(function () {
  "use strict";

  const root = document.getElementById("run");
  const runId = Number(root.dataset.runId);
  const urls = {
    run: root.dataset.apiUrl,
    metrics: root.dataset.metricsUrl,
    cancel: root.dataset.cancelUrl,
    checkpoints: root.dataset.checkpointsUrl,
    websocket: (location.protocol === "https:" ? "wss://" : "ws://") + location.host + root.dataset.wsPath,
  };
  const FINISHED = ["succeeded", "failed", "cancelled", "interrupted"];
  const VAL_METRICS = ["val/qa_cosine", "val/recall@1", "val/recall@5", "val/mrr"];
  const LOG_LINES_KEPT = 300;

  const charts = {};        // chart name -> {div, traceOfKey: {key: index}, ready}
  const lastStep = {};      // metric key -> last step drawn (duplicate guard)
  let cursor = 0;           // highest step seen in any event: the backfill cursor
  let status = root.dataset.status;
  let finishing = false;    // the final backfill after the run ended has been scheduled

  // ---- charts -----------------------------------------------------------------------

  function chartNameFor(key) {
    if (key === "train/loss" || key.startsWith("train/loss/")) return "loss";
    if (key === "lr") return "lr";
    if (key === "perf/samples_per_s") return "throughput";
    for (const metric of VAL_METRICS) {
      if (key === metric || key === "baseline/identity/" + metric || key === "baseline/linear/" + metric) {
        return metric;
      }
    }
    return null;
  }

  function traceFor(key) {
    const trace = { x: [], y: [], type: "scatter", mode: "lines", name: key, meta: key };
    if (key === "train/loss") trace.name = "total";
    else if (key.startsWith("train/loss/")) trace.name = key.slice("train/loss/".length);
    else if (key.startsWith("baseline/identity/")) Object.assign(trace, { name: "identity baseline", line: { dash: "dash", color: "#8895a7" } });
    else if (key.startsWith("baseline/linear/")) Object.assign(trace, { name: "linear baseline", line: { dash: "dot", color: "#b7791f" } });
    else if (VAL_METRICS.includes(key)) Object.assign(trace, { name: "this run", mode: "lines+markers" });
    return trace;
  }

  function layoutFor(div) {
    return {
      title: { text: div.dataset.title, font: { size: 14 } },
      uirevision: "run-" + runId,  // constant: user zoom/legend state is never reset
      margin: { l: 55, r: 15, t: 36, b: 40 },
      xaxis: { title: { text: "step" } },
      yaxis: { type: div.dataset.yType || "linear", exponentformat: "e" },
      legend: { orientation: "h", y: -0.22 },
      showlegend: true,
    };
  }

  function setUpCharts() {
    for (const div of document.querySelectorAll("[data-chart]")) {
      charts[div.dataset.chart] = { div: div, traceOfKey: {} };
      Plotly.newPlot(div, [], layoutFor(div), { responsive: true, displaylogo: false });
    }
  }

  // points: [{key, step, value}]; appends only what is new, grouped per chart in one call.
  function drawPoints(points) {
    const perChart = {};
    for (const point of points) {
      if (point.value === null || point.value === undefined) continue;
      if (lastStep[point.key] !== undefined && point.step <= lastStep[point.key]) continue;
      const name = chartNameFor(point.key);
      if (!name || !charts[name]) continue;
      lastStep[point.key] = point.step;
      cursor = Math.max(cursor, point.step);
      const byKey = (perChart[name] = perChart[name] || {});
      (byKey[point.key] = byKey[point.key] || { x: [], y: [] });
      byKey[point.key].x.push(point.step);
      byKey[point.key].y.push(point.value);
    }
    for (const name of Object.keys(perChart)) extendChart(charts[name], perChart[name]);
  }

  function extendChart(chart, byKey) {
    for (const key of Object.keys(byKey).sort()) {
      if (chart.traceOfKey[key] === undefined) {
        Plotly.addTraces(chart.div, traceFor(key));
        chart.traceOfKey[key] = chart.div.data.length - 1;
      }
    }
    const keys = Object.keys(byKey);
    Plotly.extendTraces(
      chart.div,
      { x: keys.map((key) => byKey[key].x), y: keys.map((key) => byKey[key].y) },
      keys.map((key) => chart.traceOfKey[key])
    );
  }

  // REST shape {key: [[step, value], ...]} -> points, in step order.
  function pointsFromSeries(series) {
    const points = [];
    for (const key of Object.keys(series)) {
      for (const [step, value] of series[key]) points.push({ key: key, step: step, value: value });
    }
    return points.sort((a, b) => a.step - b.step);
  }

  function pointsFromMetrics(step, metrics) {
    return Object.keys(metrics || {}).map((key) => ({ key: key, step: step, value: metrics[key] }));
  }

  // ---- websocket with backoff and backfill -----------------------------------------

  let socket = null;
  let retryDelay = 500;
  let backfilling = false;
  let pending = [];         // events that arrive while a backfill is in flight
  const connection = document.getElementById("connection");

  function connect() {
    socket = new WebSocket(urls.websocket);
    socket.onopen = () => {
      retryDelay = 500;
      showConnection("live", true);
      backfill();
    };
    socket.onmessage = (message) => {
      const event = JSON.parse(message.data);
      if (backfilling) pending.push(event);
      else handleEvent(event);
    };
    socket.onclose = (closed) => {
      if (FINISHED.includes(status)) { showConnection("run finished"); return; }
      if (closed.code === 4401) { showConnection("signed out: reload the page"); return; }
      if (closed.code === 4404) { showConnection("run not found"); return; }
      const delay = retryDelay;
      retryDelay = Math.min(retryDelay * 2, 15000);
      showConnection("reconnecting in " + Math.round(delay / 1000) + " s");
      setTimeout(connect, delay);
    };
  }

  async function backfill() {
    backfilling = true;
    try {
      // One step of overlap: an eval at the cursor step may have been missed; duplicates are dropped.
      const since = Math.max(cursor - 1, 0);
      const response = await fetch(urls.metrics + "?since_step=" + since, { credentials: "same-origin" });
      if (response.ok) drawPoints(pointsFromSeries(await response.json()));
      await refreshRun();
    } catch (error) {
      console.warn("backfill failed", error);
    } finally {
      backfilling = false;
      const queued = pending;
      pending = [];
      queued.forEach(handleEvent);
    }
  }

  function handleEvent(event) {
    if (event.type === "step") {
      const steps = event.points && event.points.length ? event.points : [event];
      drawPoints(steps.flatMap((point) => pointsFromMetrics(point.step, point.metrics)));
    } else if (event.type === "eval") {
      drawPoints(pointsFromMetrics(event.step, event.metrics));
    } else if (event.type === "status") {
      showStatus(event);
    } else if (event.type === "log") {
      appendLog(event);
    } else if (event.type === "checkpoint") {
      refreshCheckpoints();
    }
  }

  function showConnection(text, live) {
    connection.textContent = text;
    connection.classList.toggle("live", Boolean(live));
  }

  // ---- status, queue position, cancel ----------------------------------------------

  function showStatus(run) {
    if (run.status) {
      status = run.status;
      const badge = document.getElementById("status");
      badge.textContent = status;
      badge.className = "badge " + status;
      root.dataset.status = status;
    }
    const queue = document.getElementById("queue-position");
    const position = run.queue_position;
    queue.hidden = !(status === "queued" && position !== null && position !== undefined);
    if (!queue.hidden) queue.textContent = "position " + position + " in the queue";
    const cancel = document.getElementById("cancel");
    if (cancel) cancel.hidden = FINISHED.includes(status);
    if (run.error) {
      const error = document.getElementById("error");
      error.textContent = run.error;
      error.hidden = false;
    }
    if (FINISHED.includes(status) && !finishing) {
      // Pick up anything still in flight once, then stop listening.
      finishing = true;
      setTimeout(() => backfill().then(refreshCheckpoints).then(() => socket && socket.close()), 300);
    }
  }

  async function refreshRun() {
    const response = await fetch(urls.run, { credentials: "same-origin" });
    if (response.ok) showStatus(await response.json());
  }

  async function cancelRun(button) {
    button.disabled = true;
    const response = await fetch(urls.cancel, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": document.querySelector("meta[name=csrf-token]").content },
    });
    if (!response.ok) button.disabled = false;
    await refreshRun();
  }

  // While queued nothing about this run changes, but runs ahead of it start: poll the position.
  setInterval(() => { if (status === "queued") refreshRun(); }, 4000);

  // ---- log tail and checkpoints ------------------------------------------------------

  function appendLog(event) {
    const log = document.getElementById("log");
    const when = event.time ? new Date(event.time * 1000).toLocaleTimeString() : "";
    log.textContent += `${when} ${event.level || "info"} ${event.message}\n`;
    const lines = log.textContent.split("\n");
    if (lines.length > LOG_LINES_KEPT) log.textContent = lines.slice(-LOG_LINES_KEPT).join("\n");
    log.scrollTop = log.scrollHeight;
  }

  async function refreshCheckpoints() {
    const response = await fetch(urls.checkpoints, { credentials: "same-origin" });
    if (!response.ok) return;
    const body = await response.json();
    const items = Array.isArray(body) ? body : body.results || [];
    const rows = document.getElementById("checkpoints");
    rows.replaceChildren(...items.map(checkpointRow));
    document.getElementById("no-checkpoints").hidden = items.length > 0;
  }

  function checkpointRow(checkpoint) {
    const row = document.createElement("tr");
    const link = document.createElement("a");
    link.href = checkpoint.download_url || checkpoint.url || "#";
    link.textContent = "download";
    const size = checkpoint.size ?? checkpoint.size_bytes ?? 0;
    for (const text of ["step " + checkpoint.step, (size / 1e6).toFixed(2) + " MB"]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.appendChild(cell);
    }
    const cell = document.createElement("td");
    cell.appendChild(link);
    row.appendChild(cell);
    return row;
  }

  // ---- start ---------------------------------------------------------------------------

  async function start() {
    setUpCharts();
    const cancel = document.getElementById("cancel");
    if (cancel) cancel.addEventListener("click", () => cancelRun(cancel));
    const response = await fetch(urls.metrics, { credentials: "same-origin" });
    if (response.ok) drawPoints(pointsFromSeries(await response.json()));
    connect();
  }

  // Exposed for the browser test and for curious users in the console.
  window.cubelabRun = { charts: charts, lastStep: lastStep, cursor: () => cursor, status: () => status };
  start();
})();
