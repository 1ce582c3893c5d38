// Cube view: a 3D scatter of the lattice's cells coloured by state norm (or one channel)
// after each propagation step, and the output's cosine to the target after each step.
//
// GET the cubeview API; 202 means a worker is computing it: poll until it is ready. All
// steps arrive at once, so the slider only restyles the markers' colours (no refetch),
// on one fixed colour scale across steps so brightness is comparable from step to step.
(function () {
  "use strict";

  const root = document.getElementById("cubeview");
  const form = document.getElementById("cube-form");
  const statusLine = document.getElementById("cube-status");
  const exampleText = document.getElementById("cube-example-text");
  const slider = document.getElementById("step-slider");
  const stepLabel = document.getElementById("step-label");
  const channelSelect = document.getElementById("channel");
  const stateDim = JSON.parse(document.getElementById("state-dim").textContent);
  const POLL_MS = 1000;
  let view = null;       // the API's result
  let request = 0;       // a newer request makes older polls stop

  for (let c = 0; c < stateDim; c++) {
    const option = document.createElement("option");
    option.value = String(c);
    option.textContent = "channel " + c;
    channelSelect.appendChild(option);
  }

  function say(text, isError) {
    statusLine.textContent = text;
    statusLine.className = isError ? "errors" : "muted";
  }

  function load(retry) {
    const mine = ++request;
    const params = new URLSearchParams({ example: form.example.value || "0" });
    if (channelSelect.value !== "") params.set("channel", channelSelect.value);
    if (retry) params.set("retry", "1");
    say("computing…");
    poll(root.dataset.apiUrl + "?" + params, mine);
  }

  function poll(url, mine) {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((response) => response.json().then((body) => ({ code: response.status, body })))
      .then(({ code, body }) => {
        if (mine !== request) return;
        if (code === 202) { setTimeout(() => poll(url.replace("&retry=1", ""), mine), POLL_MS); return; }
        if (code !== 200) {
          const message = body.detail || (body.errors || []).map((e) => e.message).join("; ") || "error " + code;
          say(message, true);
          return;
        }
        if (body.status === "failed") { say("The computation failed: " + body.error, true); return; }
        draw(body.result);
      })
      .catch((error) => { if (mine === request) say("Could not reach the server: " + error, true); });
  }

  function draw(result) {
    view = result;
    const example = result.examples[0];
    const all = example.values.flat();
    let cmin = Math.min(...all), cmax = Math.max(...all);
    if (cmin === cmax) cmax = cmin + 1e-6;
    const shown = result.cells_shown;
    const size = Math.max(2, Math.min(14, 60 / Math.cbrt(shown)));
    const what = result.channel === null ? "state norm" : "channel " + result.channel;
    const sampled = result.cells_shown < result.cells
      ? ` · ${shown} of ${result.cells} cells shown (every ${result.strides.join("/")} cells along x/y/z)` : "";
    say(`Validation example ${example.index} (row ${example.row}) · checkpoint step ${result.checkpoint_step}` +
        ` · ${result.steps_run} of ${result.steps} steps run${sampled}`);
    if (example.question !== undefined) {
      exampleText.hidden = false;
      exampleText.textContent = "Q: " + example.question + "  →  A: " + example.answer;
    } else {
      exampleText.hidden = true;
    }
    form.example.max = String(result.validation_size - 1);
    const last = example.values.length - 1;
    slider.max = String(last);
    slider.value = String(last);
    slider.disabled = false;
    stepLabel.textContent = String(last);
    Plotly.react("cube-plot", [{
      type: "scatter3d", mode: "markers", x: result.coords.x, y: result.coords.y, z: result.coords.z,
      marker: { size, color: example.values[last], cmin, cmax, colorscale: "Viridis", opacity: 0.85,
                colorbar: { title: { text: what } } },
      hovertemplate: "cell (%{x}, %{y}, %{z})<br>" + what + " %{marker.color:.4f}<extra></extra>",
    }], {
      title: { text: `Lattice ${result.lattice.join("×")} · ${what}` }, margin: { l: 0, r: 0, t: 40, b: 0 },
      scene: { xaxis: { title: { text: "x" } }, yaxis: { title: { text: "y" } }, zaxis: { title: { text: "z" } },
               aspectmode: "data" },
      uirevision: "cube",
    }, { responsive: true });
    const steps = example.cosine.map((_, i) => i);
    Plotly.react("cosine-plot", [{
      type: "scatter", mode: "lines+markers", x: steps, y: example.cosine, name: "cosine to target",
      hovertemplate: "step %{x}: %{y:.4f}<extra></extra>",
    }], {
      title: { text: "Output's cosine to the target" }, margin: { l: 50, r: 10, t: 40, b: 40 },
      xaxis: { title: { text: "step (0 = the input)" }, dtick: steps.length > 20 ? undefined : 1 },
      yaxis: { title: { text: "cosine" } }, shapes: [marker(last)],
    }, { responsive: true });
  }

  function marker(step) {
    return { type: "line", xref: "x", yref: "paper", x0: step, x1: step, y0: 0, y1: 1,
             line: { color: "#d62728", dash: "dot" } };
  }

  function showStep(step) {
    if (!view) return;
    stepLabel.textContent = String(step);
    Plotly.restyle("cube-plot", { "marker.color": [view.examples[0].values[step]] }, [0]);
    Plotly.relayout("cosine-plot", { shapes: [marker(step)] });
    slider.dataset.shown = String(step);
  }

  slider.addEventListener("input", () => showStep(Number(slider.value)));
  form.addEventListener("submit", (event) => { event.preventDefault(); load(false); });
  statusLine.addEventListener("click", () => { if (statusLine.className === "errors") load(true); });
  load(false);
})();
