/* A channel's recording page: save the settings (mode, schedule grid, streams, where, how
 * long) and delete recordings — one, a range, or all — after a confirmation.
 * The page's own texts come from data attributes (already in the page's language). */
(() => {
  "use strict";
  const F = window.faoyam;
  const root = document.getElementById("recording");
  if (!root) return;
  const base = `/api/v1/devices/${encodeURIComponent(root.dataset.device)}/channels/${root.dataset.channel}`;
  const $ = (sel, r = document) => r.querySelector(sel);

  /* Settings ---------------------------------------------------------------------- */
  const form = $("#recording-form");
  const always = $("#f-always");
  const cells = [...form.querySelectorAll("input[data-day]")];
  const syncGrid = () => cells.forEach((c) => { c.disabled = always.checked; });
  always.addEventListener("change", () => {
    if (!always.checked) cells.forEach((c) => { c.checked = true; });
    syncGrid();
  });
  syncGrid();

  function settings() {
    const el = form.elements;
    let schedule = null;
    if (!always.checked) {
      schedule = [0, 0, 0, 0, 0, 0, 0];
      for (const c of cells) if (c.checked) schedule[+c.dataset.day] += 2 ** +c.dataset.hour;
    }
    const quota = el.quota_gb.value.trim();
    return {
      mode: form.querySelector("input[name=mode]:checked")?.value || "off",
      schedule,
      streams: el.sub.checked ? ["main", "sub"] : ["main"],
      destination: el.destination.value,
      retention_days: Number(el.retention_days.value),
      quota_bytes: quota ? Math.round(Number(quota) * 1e9) : null,
      pre_roll_s: Number(el.pre_roll_s.value),
      post_roll_s: Number(el.post_roll_s.value),
    };
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    F.clearErrors(form);
    const btn = form.querySelector("button[type=submit]");
    F.busy(btn, true);
    const res = await F.api("PUT", base + "/recording", { json: settings() });
    F.busy(btn, false);
    if (!res.ok) { F.showProblem(form, res.problem); return; }
    root.dataset.savedState = res.data.status.state;
    F.toast(root.dataset.saved);
  });

  /* Deleting (R3 "videos") ---------------------------------------------------------- */
  const dialog = $("#recording-confirm");
  let pending = null;
  function confirmThen(text, action) {
    pending = action;
    $("[data-confirm-text]", dialog).textContent = text;
    $(".form-error", dialog).hidden = true;
    dialog.showModal();
  }
  $("[data-action=cancel]", dialog).addEventListener("click", () => dialog.close());
  $("[data-action=delete]", dialog).addEventListener("click", async (ev) => {
    const btn = ev.currentTarget;
    F.busy(btn, true);
    const res = await pending();
    F.busy(btn, false);
    if (!res.ok) {
      const err = $(".form-error", dialog);
      err.textContent = F.problemText(res.problem);
      err.hidden = false;
      return;
    }
    dialog.close();
    const n = res.status === 204 ? 1 : res.data.deleted;
    F.toast(root.dataset.deleted.replace("{n}", n));
    setTimeout(() => location.reload(), 600);
  });

  document.querySelectorAll("[data-delete-one]").forEach((b) => b.addEventListener("click", () =>
    confirmThen(root.dataset.confirmOne, () => F.api("DELETE", `${base}/recordings/${encodeURIComponent(b.dataset.deleteOne)}`))));

  $("#delete-all").addEventListener("click", () =>
    confirmThen(root.dataset.confirmAll, () => F.api("DELETE", base + "/recordings")));

  const range = $("#delete-range-form");
  range.addEventListener("submit", (ev) => {
    ev.preventDefault();
    F.clearErrors(range);
    const start = range.elements.start.value, end = range.elements.end.value;
    if (!start || !end) { range.elements.end.reportValidity(); return; }
    // datetime-local is the browser's local time; the API takes instants with their offset.
    const q = new URLSearchParams({ start: new Date(start).toISOString(), end: new Date(end).toISOString() });
    confirmThen(root.dataset.confirmRange, () => F.api("DELETE", `${base}/recordings?${q}`));
  });
})();
