// Sweeps: the new-sweep form validates its base config and search space as the user types
// (debounced, through /api/v1/sweeps/validate/); the sweep page polls the sweep's API every few
// seconds, ranks its trials and draws the optimisation history and parameter importances.
(function () {
  "use strict";

  const POLL_MS = 3000;
  const DEBOUNCE_MS = 400;
  const csrfMeta = document.querySelector("meta[name=csrf-token]");
  const csrfToken = csrfMeta ? csrfMeta.content : "";

  function el(tag, text, attrs) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    Object.entries(attrs || {}).forEach(([key, value]) => node.setAttribute(key, value));
    return node;
  }

  function fmt(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toPrecision(4);
    // A lattice choice [8, 8, 6] reads as the cube it is; other lists and mappings as JSON.
    if (Array.isArray(value) && value.length && value.every(Number.isInteger)) return value.join("×");
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  async function postJson(url, body) {
    const response = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: await response.json() };
  }

  // --- new sweep ------------------------------------------------------------------------------
  const form = document.getElementById("new-sweep");
  if (form) {
    const validateUrl = form.getAttribute("data-validate-url");
    const errors = document.getElementById("sweep-errors");
    const ok = document.getElementById("sweep-ok");
    const estimate = document.getElementById("sweep-estimate");
    const field = (name) => document.getElementById("id_" + name);
    let timer = null;
    let latest = 0;

    async function validate() {
      const request = ++latest;
      const body = { base_config_yaml: field("base_config_yaml").value, search_space_yaml: field("search_space_yaml").value,
                     method: field("method").value, queue: field("queue").value };
      if (field("dataset").value) body.dataset = Number(field("dataset").value);
      let answer;
      try {
        answer = await postJson(validateUrl, body);
      } catch (error) {
        return;  // offline: the server validates again on submit
      }
      if (request !== latest) return;
      const result = answer.body;
      const issues = result.errors || [];
      errors.replaceChildren(...issues.map((issue) => {
        const item = el("li");
        if (issue.path) item.append(el("code", issue.path), ": ");
        item.append(issue.message);
        return item;
      }));
      errors.hidden = issues.length === 0;
      ok.hidden = !result.valid;
      if (result.valid && result.grid_size) ok.textContent = `Valid: the grid has ${result.grid_size} points.`;
      else if (result.valid) ok.textContent = "The base config and the search space are valid.";
      const e = result.estimate;
      estimate.hidden = !e;
      if (e) {
        const parts = [];
        if (e.parameters !== undefined) parts.push(`${Number(e.parameters).toLocaleString()} parameters`);
        if (e.activation_bytes !== undefined) parts.push(`${(e.activation_bytes / 2 ** 20).toFixed(1)} MiB activations per batch`);
        if (e.seconds_per_epoch !== undefined) {
          parts.push(`≈ ${fmt(e.seconds_per_epoch)} s per epoch on the ${e.queue} queue` +
                     (e.speed_source ? ` (${e.speed_source})` : ""));
        }
        if (e.fits === false) parts.push("does not fit the queue's device memory");
        estimate.textContent = "Base config: " + (parts.length ? parts.join(" · ") : JSON.stringify(e));
      }
    }

    form.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(validate, DEBOUNCE_MS);
    });
    form.addEventListener("change", () => {
      clearTimeout(timer);
      timer = setTimeout(validate, DEBOUNCE_MS);
    });
    validate();
  }

  // --- sweep page -----------------------------------------------------------------------------
  const root = document.getElementById("sweep");
  if (!root) return;
  const apiUrl = root.dataset.apiUrl;
  const runUrl = (id) => root.dataset.runUrl.replace(/0\/$/, id + "/");
  const tbody = document.querySelector("#trials tbody");
  const statusBadge = document.getElementById("sweep-status");
  window.sweepState = { polls: 0, trials: 0, status: null };
  let timer = null;

  function renderTrials(sweep) {
    tbody.replaceChildren(...sweep.trials.map((trial) => {
      const row = el("tr", null, { "data-trial": trial.number, "data-state": trial.state });
      row.append(el("td", trial.rank ? String(trial.rank) : "", { class: "num" }));
      const name = el("td");
      if (trial.run) {
        const link = el("a", `#${trial.number}`, { href: runUrl(trial.run) });
        name.append(link, " ", el("span", `run ${trial.run}`, { class: "muted" }));
      } else {
        name.append(`#${trial.number}`);
      }
      row.append(name);
      const state = el("td");
      state.append(el("span", trial.state === "running" ? (trial.run_status || "running") : trial.state,
                      { class: `badge ${trial.state === "running" ? trial.run_status : trial.state}` }));
      if (trial.reason && trial.state !== "pruned") state.append(" ", el("span", trial.reason, { class: "muted" }));
      row.append(state);
      row.append(el("td", fmt(trial.value !== null ? trial.value : trial.latest), { class: "num" }));
      row.append(el("td", Object.entries(trial.params).map(([k, v]) => `${k}=${fmt(v)}`).join(", "), { class: "params" }));
      row.append(el("td", trial.total_steps ? `${trial.last_step} / ${trial.total_steps}` : "", { class: "num" }));
      return row;
    }));
  }

  function plotHistory(sweep) {
    const history = sweep.history;
    const node = document.getElementById("history-plot");
    if (!window.Plotly) return;
    const layout = { margin: { t: 10, r: 10, b: 40, l: 50 }, xaxis: { title: { text: "trial" }, dtick: 1, rangemode: "tozero" },
                     yaxis: { title: { text: sweep.metric } }, height: 300, showlegend: true,
                     legend: { orientation: "h" } };
    const pruned = sweep.trials.filter((t) => t.state === "pruned" && t.latest !== null);
    Plotly.react(node, [
      { x: history.map((p) => p.number), y: history.map((p) => p.value), mode: "markers", type: "scatter", name: "trial" },
      { x: history.map((p) => p.number), y: history.map((p) => p.best), mode: "lines", type: "scatter", name: "best so far",
        line: { shape: "hv" } },
      { x: pruned.map((t) => t.number), y: pruned.map((t) => t.latest), mode: "markers", type: "scatter",
        name: "pruned (last value)", marker: { symbol: "x" } },
    ], layout, { displaylogo: false, responsive: true });
  }

  function plotImportance(sweep) {
    const node = document.getElementById("importance-plot");
    if (!window.Plotly) return;
    const entries = Object.entries(sweep.importances || {}).sort((a, b) => a[1] - b[1]);
    Plotly.react(node, [{ type: "bar", orientation: "h", x: entries.map((e) => e[1]), y: entries.map((e) => e[0]) }],
                 { margin: { t: 10, r: 10, b: 40, l: 120 }, height: 300, xaxis: { title: { text: "importance" } },
                   annotations: entries.length ? [] : [{ text: "needs two completed trials", showarrow: false,
                                                         xref: "paper", yref: "paper", x: 0.5, y: 0.5 }] },
                 { displaylogo: false, responsive: true });
  }

  async function poll() {
    let sweep;
    try {
      const response = await fetch(apiUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(String(response.status));
      sweep = await response.json();
    } catch (error) {
      timer = setTimeout(poll, POLL_MS * 2);
      return;
    }
    statusBadge.textContent = sweep.status;
    statusBadge.className = `badge ${sweep.status}`;
    const c = sweep.counts;
    document.getElementById("sweep-counts").textContent =
      `${sweep.trials.length} trials: ${c.complete} complete, ${c.running} running, ${c.pruned} pruned, ${c.fail} failed`;
    const error = document.getElementById("sweep-error");
    error.hidden = !sweep.error;
    error.textContent = sweep.error;
    renderTrials(sweep);
    plotHistory(sweep);
    plotImportance(sweep);
    const runs = sweep.trials.filter((t) => t.run).map((t) => t.run);
    const compare = document.getElementById("compare-link");
    compare.hidden = runs.length === 0;
    compare.href = `${root.dataset.compareUrl}?runs=${runs.join(",")}`;
    document.getElementById("stop-card").hidden = !(sweep.status === "running" || sweep.status === "stopping");
    window.sweepState = { polls: window.sweepState.polls + 1, trials: sweep.trials.length, status: sweep.status };
    if (sweep.status === "running" || sweep.status === "stopping") timer = setTimeout(poll, POLL_MS);
  }

  document.querySelectorAll("#stop-card button.stop").forEach((button) => {
    button.addEventListener("click", async () => {
      const mode = button.dataset.mode;
      const question = mode === "cancel" ? "Stop the sweep and cancel its running trials?"
                                         : "Stop the sweep? Running trials will finish; queued ones are cancelled.";
      if (!window.confirm(question)) return;
      await postJson(root.dataset.stopUrl, { mode });
      clearTimeout(timer);
      poll();
    });
  });
  poll();
})();
