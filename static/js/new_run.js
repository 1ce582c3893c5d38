// New run: fill the YAML editor from a stored config, and validate it against the trainer's
// schema as the user types (debounced). The server validates again on submit.
(function () {
  "use strict";

  const form = document.getElementById("new-run");
  const editor = document.getElementById("id_config_yaml");
  const picker = document.getElementById("id_stored_config");
  const errorList = document.getElementById("config-errors");
  const okNote = document.getElementById("config-ok");
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
        body: JSON.stringify({ config_yaml: editor.value }),
      });
      const body = await response.json();
      if (request !== latestRequest) return;  // an older answer arriving late
      showIssues(body.errors || []);
    } catch (error) {
      console.warn("validation request failed", error);
    }
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
