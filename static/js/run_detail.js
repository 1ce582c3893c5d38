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
    logs: root.dataset.logsUrl,
    websocket: (location.protocol === "https:" ? "wss://" : "ws://") + location.host + root.dataset.wsPath,
  };
  const FINISHED = ["succeeded", "failed", "cancelled", "interrupted"];
  const VAL_METRICS = ["val/qa_cosine", "val/recall@1", "val/recall@5", "val/mrr"];
  const LOG_LINES_KEPT = 300;

  const charts = {};        // chart name -> {div, traceOfKey: {key: trace index}}
  const seen = {};          // metric key -> Set of steps drawn (duplicate guard)
  const lastStep = {};      // metric key -> highest step drawn
  let cursor = 0;           // highest step seen, from REST or websocket
  let confirmed = 0;        // every point up to this step was in the database when last fetched
  let needUntil = 0;        // after a reconnect: backfill again until confirmed reaches this step
  let status = root.dataset.status;
  let finishing = false;    // the last backfill after the run ended has been scheduled
  let statusEvents = 0;     // live status messages so far: a REST answer older than one is stale

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
      uirevision: "run-" + runId,  // constant: user zoom/legend state is never reset
      margin: { l: 55, r: 15, t: 34, b: 10 },
      xaxis: { title: { text: "step", standoff: 4 }, automargin: true },
      yaxis: { type: div.dataset.yType || "linear", rangemode: div.dataset.yRangemode || "normal", exponentformat: "e" },
      legend: { orientation: "h", x: 0, y: -0.2, yanchor: "top", font: { size: 11 } },
      title: { text: div.dataset.title, font: { size: 14 }, x: 0.02, xanchor: "left" },
      showlegend: true,
      annotations: [{ text: "no data yet", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5,
                      font: { color: "#9aa5b1" } }],
    };
  }

  function setUpCharts() {
    for (const div of document.querySelectorAll("[data-chart]")) {
      charts[div.dataset.chart] = { div: div, traceOfKey: {} };
      Plotly.newPlot(div, [], layoutFor(div), { responsive: true, displaylogo: false });
    }
  }

  // points: [{key, step, value}]. New steps are appended with one extendTraces call per
  // chart; a step older than what is drawn (a gap filled by a backfill) is slotted into
  // place with restyle of that one trace. Either way the chart itself is never re-created.
  function drawPoints(points) {
    const appends = {};
    const inserts = {};
    for (const point of points) {
      const name = chartNameFor(point.key);
      if (!name || !charts[name] || point.value === null || point.value === undefined) continue;
      const steps = (seen[point.key] = seen[point.key] || new Set());
      if (steps.has(point.step)) continue;
      steps.add(point.step);
      cursor = Math.max(cursor, point.step);
      const late = lastStep[point.key] !== undefined && point.step < lastStep[point.key];
      const target = late ? inserts : appends;
      const byKey = (target[name] = target[name] || {});
      (byKey[point.key] = byKey[point.key] || { x: [], y: [] });
      byKey[point.key].x.push(point.step);
      byKey[point.key].y.push(point.value);
      if (!late) lastStep[point.key] = point.step;
    }
    for (const name of Object.keys(appends)) extendChart(charts[name], appends[name]);
    for (const name of Object.keys(inserts)) insertIntoChart(charts[name], inserts[name]);
  }

  function extendChart(chart, byKey) {
    if (chart.div.layout.annotations && chart.div.layout.annotations.length) {
      Plotly.relayout(chart.div, { annotations: [] });  // drop "no data yet"; axes untouched
    }
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

  function insertIntoChart(chart, byKey) {
    for (const key of Object.keys(byKey)) {
      const index = chart.traceOfKey[key];
      const trace = chart.div.data[index];
      const pairs = trace.x.map((step, i) => [step, trace.y[i]]);
      byKey[key].x.forEach((step, i) => pairs.push([step, byKey[key].y[i]]));
      pairs.sort((a, b) => a[0] - b[0]);
      Plotly.restyle(chart.div, { x: [pairs.map((p) => p[0])], y: [pairs.map((p) => p[1])] }, [index]);
    }
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
  //
  // As in zulip: subscribe first, then fetch the state, then apply what arrived meanwhile.
  // The worker pushes a step to the websocket slightly before it writes it to the
  // database, so after a (re)connect the page keeps backfilling until the database has
  // caught up with the first step it saw live: no gap, and `seen` drops duplicates.

  let socket = null;
  let retryDelay = 500;
  let backfilling = false;
  let pending = [];         // events that arrive while a backfill is in flight
  let awaitingFirstLive = false;
  let opened = false;       // the socket has been open before: the next open is a reconnect
  const connection = document.getElementById("connection");

  function connect() {
    socket = new WebSocket(urls.websocket);
    socket.onopen = () => {
      const reconnected = opened;
      opened = true;
      retryDelay = 500;
      awaitingFirstLive = true;
      showConnection("live", true);
      backfill();
      if (reconnected) refreshLog().catch((error) => console.warn("log refresh failed", error));
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
      retryDelay = Math.min(retryDelay * 2, 15000);  // exponential backoff, capped
      showConnection("reconnecting in " + (delay / 1000).toFixed(1) + " s");
      setTimeout(connect, delay);
    };
  }

  async function backfill() {
    backfilling = true;
    try {
      // The run first: every point up to its last_step is already stored when the metrics are read.
      const before = statusEvents;
      const run = await fetchJson(urls.run);
      const query = confirmed > 0 ? "?since_step=" + confirmed : "";
      drawPoints(pointsFromSeries(await fetchJson(urls.metrics + query)));
      confirmed = Math.max(confirmed, run.last_step || 0);
      showRun(run, before === statusEvents);
    } catch (error) {
      console.warn("backfill failed", error);
    } finally {
      backfilling = false;
      const queued = pending;
      pending = [];
      queued.forEach(handleEvent);
    }
    if (needUntil > confirmed && !FINISHED.includes(status)) setTimeout(backfill, 1000);
  }

  // A safety net for messages the channel layer dropped (a slow tab): a small incremental
  // backfill now and then, which also keeps the one after the run ends small.
  setInterval(() => { if (status === "running" && !backfilling) backfill(); }, 30000);

  async function fetchJson(url) {
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) throw new Error(url + " answered " + response.status);
    return response.json();
  }

  function handleEvent(event) {
    if (event.type === "step") {
      const steps = event.points && event.points.length ? event.points : [event];
      if (awaitingFirstLive) {
        awaitingFirstLive = false;
        needUntil = Math.max(needUntil, steps[0].step - 1);
        if (needUntil > confirmed && !backfilling) setTimeout(backfill, 1000);
      }
      drawPoints(steps.flatMap((point) => pointsFromMetrics(point.step, point.metrics)));
    } else if (event.type === "eval") {
      drawPoints(pointsFromMetrics(event.step, event.metrics));
    } else if (event.type === "status") {
      statusEvents += 1;
      showStatus(event);
    } else if (event.type === "log") {
      appendLog(event);
    } else if (event.type === "checkpoint") {
      addCheckpoint(event);  // the event carries its download URL: no request needed
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
    // Live status messages carry no queue position; the REST answers (polled while queued) do.
    const queue = document.getElementById("queue-position");
    if (status !== "queued") queue.hidden = true;
    else if (run.queue_position !== undefined) {
      queue.hidden = run.queue_position === null;
      queue.textContent = "position " + run.queue_position + " in the queue";
    }
    const cancel = document.getElementById("cancel");
    if (cancel) cancel.hidden = FINISHED.includes(status);
    // Why it ended ("completed", "pruned", "cancelled by carol"): the REST answer calls it
    // end_reason, the status message reason; shown once the run has ended.
    const reason = run.reason || run.end_reason;
    const endReason = document.getElementById("end-reason");
    if (reason && FINISHED.includes(status)) {
      endReason.textContent = reason;
      endReason.hidden = false;
    }
    if (run.error) {
      const error = document.getElementById("error");
      error.textContent = run.error;
      error.hidden = false;
    }
    if (FINISHED.includes(status) && !finishing) {
      // The worker stored everything before it recorded the end: one last backfill, then stop listening.
      finishing = true;
      setTimeout(() => backfill().then(refreshCheckpoints).then(() => socket && socket.close()), 300);
    }
  }

  async function refreshRun() {
    const before = statusEvents;
    const run = await fetchJson(urls.run);
    showRun(run, before === statusEvents);
  }

  // The full run from the REST API: status plus what the worker records when it starts.
  // `current` is false when a live status message arrived while the request was in flight:
  // the answer may predate it (e.g. still `running` after `cancelled`), so its status is ignored.
  function showRun(run, current) {
    if (current) showStatus(run);
    const codes = (items) => items.map((text) => {
      const code = document.createElement("code");
      code.textContent = text;
      return code;
    });
    const fill = (id, nodes) => {
      if (!nodes.length) return;
      const target = document.getElementById(id);
      target.replaceChildren(...nodes.flatMap((node, i) => (i ? [", ", node] : [node])));
    };
    if (run.code_version) document.getElementById("repro-code-version").textContent = run.code_version;
    if (run.seed !== null && run.seed !== undefined) document.getElementById("repro-seed").textContent = run.seed;
    fill("repro-packages", codes(Object.entries(run.package_versions || {}).map(([name, v]) => `${name}==${v}`)));
    fill("repro-teachers", codes((run.teachers || []).map((t) => t.name + (t.revision ? "@" + t.revision : ""))));
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

  function logLine(entry) {
    const when = entry.time ? new Date(entry.time * 1000).toISOString().slice(11, 19) : "";
    return `${when} ${entry.level || "info"} ${entry.message}\n`;
  }

  function appendLog(event) {
    const log = document.getElementById("log");
    log.textContent += logLine(event);
    const lines = log.textContent.split("\n");
    if (lines.length > LOG_LINES_KEPT) log.textContent = lines.slice(-LOG_LINES_KEPT).join("\n");
    log.scrollTop = log.scrollHeight;
  }

  // Log messages sent while the socket was down are only in the database: reload the tail.
  async function refreshLog() {
    const entries = await fetchJson(urls.logs);
    const log = document.getElementById("log");
    log.textContent = entries.slice(-LOG_LINES_KEPT).map(logLine).join("");
    log.scrollTop = log.scrollHeight;
  }

  async function refreshCheckpoints() {
    const response = await fetch(urls.checkpoints, { credentials: "same-origin" });
    if (!response.ok) return;
    const items = await response.json();
    const rows = document.getElementById("checkpoints");
    rows.replaceChildren(...items.map(checkpointRow));
    document.getElementById("no-checkpoints").hidden = items.length > 0;
  }

  function addCheckpoint(checkpoint) {
    const rows = document.getElementById("checkpoints");
    if (rows.querySelector(`a[href="${checkpoint.download_url}"]`)) return;
    rows.appendChild(checkpointRow(checkpoint));
    document.getElementById("no-checkpoints").hidden = true;
  }

  function checkpointRow(checkpoint) {
    const row = document.createElement("tr");
    const texts = ["step " + checkpoint.step + (checkpoint.best ? " (best)" : ""),
                   (checkpoint.size_bytes / 1e6).toFixed(2) + " MB"];
    for (const text of texts) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.appendChild(cell);
    }
    const link = document.createElement("a");
    link.href = checkpoint.download_url;
    link.textContent = "download";
    const cell = document.createElement("td");
    cell.appendChild(link);
    row.appendChild(cell);
    return row;
  }

  // ---- start ---------------------------------------------------------------------------

  function start() {
    setUpCharts();
    const cancel = document.getElementById("cancel");
    if (cancel) cancel.addEventListener("click", () => cancelRun(cancel));
    connect();  // its first open loads every point so far (subscribe first, then fetch)
  }

  // Exposed for the browser test and for curious users in the console.
  window.cubelabRun = {
    charts: charts, cursor: () => cursor, confirmed: () => confirmed, status: () => status, socket: () => socket,
  };
  start();
})();
