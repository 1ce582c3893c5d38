// Runs list: the table is rendered by the server; this keeps each row's status and queue
// position current by polling the REST API (cheap for one page of runs) and adds new runs.
(function () {
  "use strict";

  const table = document.getElementById("runs");
  const apiUrl = table.dataset.apiUrl;
  const detailUrl = table.dataset.detailUrl;  // ".../0/", the 0 replaced by the run id
  const POLL_MS = 3000;

  function queueText(run) {
    if (run.status === "queued" && run.queue_position !== null && run.queue_position !== undefined) {
      return "#" + run.queue_position + " in the " + (run.queue || "") + " queue";
    }
    return "";
  }

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text;
    return td;
  }

  function newRow(run) {
    const row = document.createElement("tr");
    row.dataset.runId = run.id;
    const name = document.createElement("td");
    const link = document.createElement("a");
    link.href = detailUrl.replace("/0/", "/" + run.id + "/");
    link.textContent = run.name || "run " + run.id;
    name.appendChild(link);
    const status = document.createElement("td");
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.dataset.role = "status";
    status.appendChild(badge);
    const queue = cell("");
    queue.dataset.role = "queue";
    const progress = cell("");
    progress.className = "num";
    progress.dataset.role = "progress";
    row.append(name, status, queue, progress, cell(run.queue || ""), cell(new Date(run.created_at).toLocaleString()));
    return row;
  }

  function update(run) {
    let row = table.querySelector(`tr[data-run-id="${run.id}"]`);
    if (!row) {
      row = newRow(run);
      table.tBodies[0].prepend(row);
      const empty = document.getElementById("no-runs");
      if (empty) empty.hidden = true;
    }
    const badge = row.querySelector("[data-role=status]");
    badge.textContent = run.status;
    badge.className = "badge " + run.status;
    row.querySelector("[data-role=queue]").textContent = queueText(run);
    row.querySelector("[data-role=progress]").textContent = run.total_steps ? `${run.last_step} / ${run.total_steps}` : "";
  }

  async function poll() {
    if (document.visibilityState !== "visible") return;
    try {
      const response = await fetch(apiUrl, { credentials: "same-origin" });
      if (!response.ok) return;
      const body = await response.json();
      const runs = Array.isArray(body) ? body : body.results || [];
      runs.slice().reverse().forEach(update);
    } catch (error) {
      console.warn("could not refresh runs", error);
    }
  }

  setInterval(poll, POLL_MS);
  poll();
})();
