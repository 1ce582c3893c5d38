// New run: fill the YAML editor from a stored config, and validate it against the trainer's
// schema as the user types (debounced). The server validates again on submit. With the chosen
// queue (and dataset) the answer carries the pre-flight estimate, shown under the editor.
(function () {
  "use strict";

  const form = document.getElementById("new-run");
  const editor = document.getElementById("id_config_yaml");
  const picker = document.getElementById("id_stored_config");
  const errorList = document.getElementById("config-errors");
  const okNote = document.getElementById("config-ok");
  const estimateNote = document.getElementById("config-estimate");
  const queueSelect = document.getElementById("id_queue");
  const datasetSelect = document.getElementById("id_dataset");
  const storedConfigs = JSON.parse(document.getElementById("stored-configs").textContent);
  // getAttribute, not form.dataset: the form has a field named "dataset" that shadows it.
  const validateUrl = form.getAttribute("data-validate-url");
  const csrfToken = document.querySelector("meta[name=csrf-token]").content;
  const DEBOUNCE_MS = 400;
  let timer = null;
  let latestRequest = 0;

  function showIssues(issues) {
    errorList.replaceChildren(...issues.map((issue) => {
      const item = document.createElement("li");
      if (issue.path) {
        const path = document.createElement("code");
        path.textContent = issue.path;
        item.append(path, ": ");
      }
      item.append(issue.message);
      return item;
    }));
    errorList.hidden = issues.length === 0;
    okNote.hidden = issues.length !== 0 || editor.value.trim() === "";
  }

  async function validate() {
    const request = ++latestRequest;
    try {
      const response = await fetch(validateUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken },
        body: JSON.stringify({ config_yaml: editor.value, queue: queueSelect ? queueSelect.value : undefined,
                               dataset: datasetSelect && datasetSelect.value ? Number(datasetSelect.value) : undefined }),
      });
      const body = await response.json();
      if (request !== latestRequest) return;  // an older answer arriving late
      showIssues(body.errors || []);
      showEstimate(body.estimate);
    } catch (error) {
      console.warn("validation request failed", error);
    }
  }

  function bytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return n.toFixed(i ? 1 : 0) + " " + units[i];
  }

  function duration(s) {
    if (s < 1) return (1000 * s).toFixed(0) + " ms";
    if (s < 120) return s.toFixed(1) + " s";
    if (s < 7200) return (s / 60).toFixed(1) + " min";
    return (s / 3600).toFixed(1) + " h";
  }

  function showEstimate(estimate) {
    if (!estimateNote) return;
    if (!estimate) { estimateNote.hidden = true; return; }
    const parts = [
      estimate.parameters.toLocaleString("en") + " parameters",
      bytes(estimate.activation_bytes) + " of activations per batch",
      "≈ " + (estimate.seconds_per_epoch !== undefined ? duration(estimate.seconds_per_epoch) : "— (unknown)") +
        " per epoch on the " + estimate.queue + " queue" +
        (estimate.speed_source ? " (" + estimate.speed_source + ")" : ""),
    ];
    let text = "Estimate: " + parts.join(" · ");
    if (estimate.fits === false) {
      text += ` · needs ${bytes(estimate.memory_bytes)}, more than the queue's ${bytes(estimate.memory_budget_bytes)}`;
    }
    estimateNote.textContent = text;
    estimateNote.className = estimate.fits === false ? "errors" : "help";
    estimateNote.hidden = false;
  }

  for (const select of [queueSelect, datasetSelect]) {
    if (select) select.addEventListener("change", () => { if (editor.value.trim() !== "") validate(); });
  }

  editor.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(validate, DEBOUNCE_MS);
  });

  if (picker) {
    picker.addEventListener("change", () => {
      const yaml = storedConfigs[picker.value];
      if (yaml !== undefined) {
        editor.value = yaml;
        validate();
      }
    });
  }

  if (editor.value.trim() !== "") validate();
})();
