// Embedding projector: teacher questions, teacher answers and cube outputs of the validation
// set in one 2-D/3-D plotly scatter, with the sentence on hover for text data and, for a few
// rows, a question → output → answer line. Computed by a worker: 202 means poll again.
(function () {
  "use strict";

  const root = document.getElementById("projector");
  const form = document.getElementById("projector-form");
  const statusLine = document.getElementById("projector-status");
  const COLOURS = { question: "#1f77b4", answer: "#2ca02c", output: "#d62728" };
  const POLL_MS = 1000;
  let request = 0;

  function say(text, isError) {
    statusLine.textContent = text;
    statusLine.className = isError ? "errors" : "muted";
  }

  function load() {
    const mine = ++request;
    const params = new URLSearchParams({ method: form.method.value, components: form.components.value });
    say("computing…");
    poll(root.dataset.apiUrl + "?" + params, mine);
  }

  function poll(url, mine) {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((response) => response.json().then((body) => ({ code: response.status, body })))
      .then(({ code, body }) => {
        if (mine !== request) return;
        if (code === 202) { setTimeout(() => poll(url, mine), POLL_MS); return; }
        if (code !== 200) { say(body.detail || "error " + code, true); return; }
        if (body.status === "failed") { say("The computation failed: " + body.error, true); return; }
        draw(body.result);
      })
      .catch((error) => { if (mine === request) say("Could not reach the server: " + error, true); });
  }

  function draw(result) {
    const three = result.components === 3;
    const type = three ? "scatter3d" : "scattergl";
    const traces = Object.entries(result.points).map(([kind, p]) => ({
      type, mode: "markers", name: kind, x: p.x, y: p.y, z: three ? p.z : undefined,
      text: p.text || result.rows.map((row) => "row " + row),
      hovertemplate: kind + ": %{text}<extra></extra>",
      marker: { size: three ? 3 : 5, color: COLOURS[kind], opacity: 0.7 },
    }));
    if (document.getElementById("show-lines").checked && result.lines.length) {
      const line = { x: [], y: [], z: [] };
      for (const i of result.lines) {
        for (const kind of ["question", "output", "answer"]) {
          line.x.push(result.points[kind].x[i]);
          line.y.push(result.points[kind].y[i]);
          if (three) line.z.push(result.points[kind].z[i]);
        }
        line.x.push(null); line.y.push(null); if (three) line.z.push(null);
      }
      traces.push({ type: three ? "scatter3d" : "scatter", mode: "lines", name: "question → output → answer",
                    x: line.x, y: line.y, z: three ? line.z : undefined, hoverinfo: "skip",
                    line: { color: "rgba(80,80,80,0.5)", width: 2 } });
    }
    const explained = result.explained_variance.length
      ? " · variance explained " + result.explained_variance.map((v) => (100 * v).toFixed(1) + "%").join(", ") : "";
    say(`${result.rows.length} of ${result.validation_size} validation rows · ${result.method.toUpperCase()}` +
        ` · checkpoint step ${result.checkpoint_step}${explained}`);
    Plotly.react("projector-plot", traces, {
      margin: { l: 40, r: 10, t: 20, b: 40 }, legend: { orientation: "h" }, uirevision: result.method,
    }, { responsive: true });
  }

  form.addEventListener("submit", (event) => { event.preventDefault(); load(); });
  load();
})();
