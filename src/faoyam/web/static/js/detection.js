/* The motion-detection settings page (templates/devices/detection.html): the zone grid
   becomes row bit masks (bit c = column c), all cells ticked = null (the whole picture). */
(() => {
  "use strict";
  const form = document.getElementById("detection-form");
  if (!form) return;
  const { bindForm, toast, t } = window.faoyam;
  const cells = [...form.querySelectorAll("#zones input[type=checkbox]")];
  const range = form.querySelector("#f-sensitivity");
  const shown = form.querySelector("#sensitivity-value");
  range.addEventListener("input", () => { shown.textContent = range.value; });
  form.querySelector("#zones-all").addEventListener("click", () => cells.forEach((c) => { c.checked = true; }));
  form.querySelector("#zones-none").addEventListener("click", () => cells.forEach((c) => { c.checked = false; }));

  function zones() {
    if (cells.every((c) => c.checked)) return null;
    const rows = [];
    for (const c of cells) {
      const r = Number(c.dataset.row);
      rows[r] = (rows[r] || 0) | (c.checked ? 1 << Number(c.dataset.col) : 0);
    }
    return rows.map((m) => m || 0);
  }

  bindForm(form, {
    method: "PUT",
    body: (data) => ({ enabled: data.enabled, sensitivity: Number(data.sensitivity), stream: data.stream, zones: zones() }),
    onSuccess: () => toast(t("Saved.")),
  });
})();
