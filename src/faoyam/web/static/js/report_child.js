/* The child-report form (CH2): a static file, as the Content-Security-Policy runs no inline script. */
document.getElementById("child-report").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget, status = form.querySelector(".form-status");
  const body = Object.fromEntries([...new FormData(form)].filter(([, v]) => v !== ""));
  const r = await fetch(form.dataset.api, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)});
  const data = await r.json().catch(() => ({}));
  status.hidden = false;
  status.textContent = r.ok ? form.dataset.done : (data.detail || data.title || "");
});
