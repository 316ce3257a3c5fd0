/* faoyam web app: the small client library every page uses (no build step).
 *
 *   faoyam.t(msg, {name: value})      the page's translation of an English message
 *   faoyam.api(method, url, opts)     fetch the JSON API with the CSRF header; answers
 *                                     403 "reauth-required" by asking for the password
 *                                     (the re-auth dialog) and trying once more
 *   faoyam.bindForm(form, opts)       submit a form with fetch; RFC 9457 problem
 *                                     details appear next to their fields; what the
 *                                     user typed stays where it is
 *   faoyam.toast(msg)                 a short message at the bottom
 *   faoyam.strength(input, meter)     the live password strength hint
 *   faoyam.terminal()                 what this browser says about itself for the
 *                                     terminals list (B2): OS, browser, install id
 */
(() => {
  "use strict";

  const messages = (() => {
    try { return JSON.parse(document.getElementById("i18n-messages")?.textContent || "{}"); }
    catch { return {}; }
  })();
  const lang = document.documentElement.lang || "en";

  function t(msg, fmt) {
    let s = Object.prototype.hasOwnProperty.call(messages, msg) ? messages[msg] : msg;
    if (fmt) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in fmt ? String(fmt[k]) : m));
    return s;
  }

  function csrf() {
    return document.querySelector('meta[name="csrf-token"]')?.content || "";
  }

  /* Problem details ------------------------------------------------------------ */

  function problemText(problem) {
    if (!problem) return t("Something went wrong. Please try again.");
    const key = "problem:" + (problem.code || "");
    // English pages show the API's own detail (it is specific); other languages the
    // translation of its stable code, when there is one.
    if (lang !== "en" && Object.prototype.hasOwnProperty.call(messages, key)) return messages[key];
    return problem.detail || problem.title || t("Something went wrong. Please try again.");
  }

  function fieldText(problem, err) {
    if (/^Field required/i.test(err.message || "")) return t("This field is required.");
    const key = "problem:" + (problem.code || "");
    if (lang !== "en" && (problem.errors || []).length === 1 && problem.code !== "invalid"
        && Object.prototype.hasOwnProperty.call(messages, key)) return messages[key];
    return err.message || problemText(problem);
  }

  /* Toast ------------------------------------------------------------------------ */

  let toastTimer = null;
  function toast(msg) {
    const el = document.getElementById("toast");
    if (!el) return;
    el.textContent = msg;
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el.hidden = true; }, 4000);
  }

  /* Re-authentication (R8) ----------------------------------------------------------- */

  function reauth() {
    const dialog = document.getElementById("reauth-dialog");
    if (!dialog) return Promise.resolve(false);
    const form = dialog.querySelector("form");
    const pw = form.querySelector("input[name=password]");
    const code = form.querySelector("input[name=code]");
    const pwBox = form.querySelector("[data-reauth=password]");
    const codeBox = form.querySelector("[data-reauth=code]");
    const askCode = form.querySelector("[data-action=code]");
    const cancel = form.querySelector("[data-action=cancel]");
    let useCode = false;
    clearErrors(form);
    pw.value = "";
    code.value = "";
    pwBox.hidden = false;
    codeBox.hidden = true;
    askCode.hidden = false;
    return new Promise((resolve) => {
      let done = false;
      const finish = (ok) => {
        if (done) return;
        done = true;
        form.removeEventListener("submit", onSubmit);
        cancel.removeEventListener("click", onCancel);
        askCode.removeEventListener("click", onAskCode);
        dialog.removeEventListener("close", onClose);
        if (dialog.open) dialog.close();
        resolve(ok);
      };
      const onCancel = () => finish(false);
      const onClose = () => finish(false);
      const onAskCode = async () => {
        clearErrors(form);
        busy(askCode, true);
        const res = await api("POST", "/api/v1/me/reauth/code", { reauth: false });
        busy(askCode, false);
        if (!res.ok) { showProblem(form, res.problem); return; }
        useCode = true;
        pwBox.hidden = true;
        codeBox.hidden = false;
        askCode.hidden = true;
        codeBox.querySelector("[data-sent]").textContent = t("Code sent to {to}.", { to: res.data.sent_to });
        code.focus();
      };
      const onSubmit = async (ev) => {
        ev.preventDefault();
        clearErrors(form);
        const input = useCode ? code : pw;
        if (!input.value.trim()) { showFieldError(form, input.name, t("This field is required.")); return; }
        const btn = form.querySelector("button[type=submit]");
        busy(btn, true);
        const json = useCode ? { code: code.value.trim() } : { password: pw.value };
        const res = await api("POST", "/api/v1/me/reauth", { json, reauth: false });
        busy(btn, false);
        if (res.ok) { pw.value = ""; code.value = ""; finish(true); }
        else showProblem(form, res.problem, useCode ? { password: "code" } : { password: "password" },
                         { "bad-credentials": useCode ? "code" : "password" });
      };
      form.addEventListener("submit", onSubmit);
      cancel.addEventListener("click", onCancel);
      askCode.addEventListener("click", onAskCode);
      dialog.addEventListener("close", onClose);
      dialog.showModal();
      pw.focus();
    });
  }

  /* The API ------------------------------------------------------------------------- */

  async function api(method, url, opts = {}) {
    const headers = { Accept: "application/json, application/problem+json", ...(opts.headers || {}) };
    let body = opts.body;
    if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.json);
    }
    if (method !== "GET" && method !== "HEAD") {
      const token = csrf();
      if (token) headers["X-CSRF-Token"] = token;
    }
    let response;
    try {
      response = await fetch(url, { method, headers, body, credentials: "same-origin" });
    } catch (err) {
      return { ok: false, status: 0, problem: { detail: t("Cannot reach the server. Check your connection and try again."), code: "network" } };
    }
    if (response.ok) {
      if (opts.raw) return { ok: true, status: response.status, response };
      const text = response.status === 204 ? "" : await response.text();
      let data = null;
      try { data = text ? JSON.parse(text) : null; } catch { data = text; }
      return { ok: true, status: response.status, data };
    }
    let problem = null;
    try { problem = await response.json(); } catch { problem = { status: response.status }; }
    if (response.status === 403 && problem && problem.code === "reauth-required" && opts.reauth !== false) {
      if (await reauth()) return api(method, url, { ...opts, reauth: false });
    }
    return { ok: false, status: response.status, problem };
  }

  /* Forms ---------------------------------------------------------------------------- */

  function busy(btn, on) {
    if (!btn) return;
    btn.disabled = on;
    btn.setAttribute("aria-busy", on ? "true" : "false");
  }

  function clearErrors(form) {
    form.querySelectorAll(".field-error").forEach((el) => { el.hidden = true; el.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
    form.querySelectorAll(".form-error").forEach((el) => { el.hidden = true; el.textContent = ""; });
  }

  function showFieldError(form, name, text) {
    const input = form.querySelector(`[name="${CSS.escape(name)}"]`);
    let slot = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
    if (!slot && input) slot = input.closest(".field")?.querySelector(".field-error");
    if (!slot) return false;
    slot.textContent = text;
    slot.hidden = false;
    if (input) {
      input.setAttribute("aria-invalid", "true");
      if (slot.id) input.setAttribute("aria-describedby", slot.id);
    }
    return true;
  }

  /* Show a problem on a form: field errors next to their fields (``fieldMap`` renames
     API field names to form field names), the rest at the top of the form. */
  function showProblem(form, problem, fieldMap = {}, codeFields = {}) {
    let errors = (problem && problem.errors) || [];
    // Problems without field errors that still belong to one field (e.g. a wrong safety code).
    if (!errors.length && problem && codeFields[problem.code]) {
      errors = [{ field: codeFields[problem.code], message: problemText(problem) }];
    }
    let placed = 0;
    let firstInvalid = null;
    for (const err of errors) {
      const apiField = String(err.field || "");
      const name = fieldMap[apiField] || fieldMap[apiField.split(".").pop()] || apiField.split(".").pop();
      if (showFieldError(form, name, fieldText(problem, err))) {
        placed++;
        firstInvalid = firstInvalid || form.querySelector(`[name="${CSS.escape(name)}"]`);
      }
    }
    const general = form.querySelector(".form-error");
    if (general && (placed === 0 || placed < errors.length)) {
      general.textContent = problemText(problem);
      general.hidden = false;
    } else if (general && placed > 1) {
      general.textContent = t("Please check the highlighted fields.");
      general.hidden = false;
    }
    (firstInvalid || general)?.focus?.();
    if (firstInvalid && typeof firstInvalid.scrollIntoView === "function") firstInvalid.scrollIntoView({ block: "center" });
  }

  function formJson(form) {
    const out = {};
    for (const el of form.elements) {
      if (!el.name || el.disabled || el.dataset.skip !== undefined) continue;
      if (el.type === "checkbox") out[el.name] = el.checked;
      else if (el.type === "radio") { if (el.checked) out[el.name] = el.value; }
      else if (el.type === "file" || el.type === "submit" || el.type === "button") continue;
      else out[el.name] = el.value;
    }
    return out;
  }

  /* bindForm(form, {method, url, body(data) -> json, fieldMap, codeFields: {problem code: field},
                     validate(data) -> {field: msg}, onSuccess(result, data)}) */
  function bindForm(form, opts) {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clearErrors(form);
      const data = formJson(form);
      if (opts.validate) {
        const errs = opts.validate(data) || {};
        const names = Object.keys(errs);
        if (names.length) {
          names.forEach((n) => showFieldError(form, n, errs[n]));
          form.querySelector(`[name="${CSS.escape(names[0])}"]`)?.focus();
          return;
        }
      }
      const btn = ev.submitter || form.querySelector("button[type=submit]");
      busy(btn, true);
      const method = typeof opts.method === "function" ? opts.method(data) : (opts.method || form.dataset.method || "POST");
      const url = typeof opts.url === "function" ? opts.url(data) : (opts.url || form.dataset.url || form.action);
      const json = opts.body ? opts.body(data) : data;
      const res = await api(method, url, { json });
      busy(btn, false);
      if (res.ok) {
        if (opts.onSuccess) await opts.onSuccess(res.data, data, res);
      } else {
        const fieldMap = typeof opts.fieldMap === "function" ? opts.fieldMap(data) : (opts.fieldMap || {});
        showProblem(form, res.problem, fieldMap, opts.codeFields || {});
        if (opts.onError) opts.onError(res.problem, data);
      }
    });
  }

  /* Password strength (the server's rule: /web/password-strength) --------------------- */

  const LEVELS = ["Too weak", "Weak", "Fair", "Good", "Strong"];

  function localScore(pw) {
    // Used only when the server cannot be asked: a rough estimate.
    if (!pw) return 0;
    let pool = 0;
    if (/[a-z]/.test(pw)) pool += 26;
    if (/[A-Z]/.test(pw)) pool += 26;
    if (/\d/.test(pw)) pool += 10;
    if (/[^a-zA-Z0-9]/.test(pw)) pool += 33;
    let bits = pw.length * Math.log2(Math.max(pool, 1));
    if (/^(.)\1+$/.test(pw) || /password|123456|qwerty|letmein/i.test(pw)) bits /= 3;
    return bits < 28 ? 0 : bits < 40 ? 1 : bits < 55 ? 2 : bits < 70 ? 3 : 4;
  }

  function strength(input, meter, hints = () => []) {
    if (!input || !meter) return;
    const text = meter.querySelector(".strength-text");
    let timer = null;
    let seq = 0;
    const paint = (score, ok, note) => {
      meter.dataset.score = String(score);
      meter.hidden = false;
      let s = t(LEVELS[score]);
      if (note) s += " · " + note;
      text.textContent = s;
      meter.dataset.ok = ok ? "true" : "false";
    };
    input.addEventListener("input", () => {
      clearTimeout(timer);
      const pw = input.value;
      if (!pw) { meter.hidden = true; return; }
      if (pw.length < 8) { paint(0, false, t("Use at least 8 characters.")); return; }
      const mine = ++seq;
      timer = setTimeout(async () => {
        const res = await api("POST", "/web/password-strength", { json: { password: pw, hints: hints().filter(Boolean) }, reauth: false });
        if (mine !== seq) return;
        if (res.ok && res.data) {
          const d = res.data;
          let note = "";
          if (!d.ok) note = (lang === "en" && d.warning) ? d.warning : t("Add more words, numbers or symbols to make it harder to guess.");
          paint(d.score, d.ok, note);
        } else {
          const sc = localScore(pw);
          paint(sc, sc >= 3, "");
        }
      }, 250);
    });
  }

  /* This terminal (B2): OS and browser; a random install id kept in this browser. -------- */

  function terminal() {
    const ua = navigator.userAgent;
    let os = null;
    let m;
    if ((m = ua.match(/Android ([\d.]+)/))) os = "Android " + m[1];
    else if ((m = ua.match(/(?:iPhone|CPU) OS ([\d_]+)/))) os = "iOS " + m[1].replace(/_/g, ".");
    else if (/Windows NT/.test(ua)) os = "Windows";
    else if (/CrOS/.test(ua)) os = "ChromeOS";
    else if (/Mac OS X/.test(ua)) os = "macOS";
    else if (/Linux/.test(ua)) os = "Linux";
    let browser = "Browser";
    if ((m = ua.match(/Edg\/(\d+)/))) browser = "Edge " + m[1];
    else if ((m = ua.match(/OPR\/(\d+)/))) browser = "Opera " + m[1];
    else if ((m = ua.match(/(?:HeadlessChrome|Chrome|Chromium)\/(\d+)/))) browser = "Chrome " + m[1];
    else if ((m = ua.match(/Firefox\/(\d+)/))) browser = "Firefox " + m[1];
    else if ((m = ua.match(/Version\/(\d+).*Safari/))) browser = "Safari " + m[1];
    let installId = null;
    try {
      installId = localStorage.getItem("faoyam.install");
      if (!installId) {
        installId = (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2));
        localStorage.setItem("faoyam.install", installId);
      }
    } catch { installId = null; }
    return { os, model: browser + " (web)", install_id: installId, gps_permission: false };
  }

  /* Small conveniences ---------------------------------------------------------------- */

  // A field's error goes away as soon as the user changes that field.
  const clearFieldError = (ev) => {
    const el = ev.target;
    if (!el.name || !el.form) return;
    const slot = el.form.querySelector(`[data-error-for="${CSS.escape(el.name)}"]`)
      || el.closest(".field")?.querySelector(".field-error");
    if (slot && !slot.hidden) { slot.hidden = true; slot.textContent = ""; }
    el.removeAttribute("aria-invalid");
  };
  document.addEventListener("input", clearFieldError);
  document.addEventListener("change", clearFieldError);

  // Show/hide password buttons: <button type=button data-toggle-password="#id">
  document.addEventListener("click", (ev) => {
    const btn = ev.target.closest("[data-toggle-password]");
    if (!btn) return;
    const input = document.querySelector(btn.dataset.togglePassword);
    if (!input) return;
    input.type = input.type === "password" ? "text" : "password";
    btn.setAttribute("aria-pressed", input.type === "text" ? "true" : "false");
  });

  // Sign out: <button data-signout>
  document.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("[data-signout]");
    if (!btn) return;
    busy(btn, true);
    const res = await api("DELETE", "/api/v1/sessions/current", { reauth: false });
    if (res.ok || res.status === 401) location.assign("/");
    else { busy(btn, false); toast(problemText(res.problem)); }
  });

  if ("serviceWorker" in navigator && window.isSecureContext && !navigator.webdriver) {
    window.addEventListener("load", () => { navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(() => {}); });
  }

  window.faoyam = { t, lang, csrf, api, bindForm, showProblem, showFieldError, clearErrors, problemText, toast, busy,
                    strength, terminal, reauth, formJson };
})();
