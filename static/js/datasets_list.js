// Datasets: say at once when a chosen file is over the upload limit, before sending it.
(function () {
  "use strict";

  const form = document.getElementById("upload");
  const input = form.querySelector("input[type=file]");
  const message = document.getElementById("size-limit");
  const maxBytes = Number(form.getAttribute("data-max-bytes"));

  input.addEventListener("change", () => {
    const file = input.files[0];
    const tooBig = Boolean(file && maxBytes && file.size > maxBytes);
    message.hidden = !tooBig;
    if (tooBig) {
      message.textContent = `The file is ${(file.size / 1e6).toFixed(1)} MB; the limit is ${(maxBytes / 1e6).toFixed(0)} MB.`;
    }
    form.querySelector("button[type=submit]").disabled = tooBig;
  });
})();
