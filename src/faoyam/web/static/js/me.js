/* Me: profile, password, terminals, download my data, delete account. */
(() => {
  "use strict";
  const F = window.faoyam;
  const $ = (sel, root = document) => root.querySelector(sel);

  /* Photo -------------------------------------------------------------------------- */
  const photoForm = $("#photo-form");
  if (photoForm) {
    const input = $("#f-photo");
    const remove = $("#photo-remove");
    const box = $("#avatar-box");
    const setAvatar = (url) => {
      const nick = ($("#f-nickname")?.value || "?").trim();
      if (url) {
        const img = document.createElement("img");
        img.className = "avatar large";
        img.alt = "";
        img.src = url;
        img.dataset.avatar = "";
        box.replaceChildren(img);
      } else {
        const span = document.createElement("span");
        span.className = "avatar large";
        span.dataset.avatar = "";
        span.textContent = (nick[0] || "?").toUpperCase();
        box.replaceChildren(span);
      }
    };
    input.addEventListener("change", async () => {
      F.clearErrors(photoForm);
      const file = input.files && input.files[0];
      if (!file) return;
      if (file.size > Number(input.dataset.maxBytes || 5242880)) {
        F.showFieldError(photoForm, "file", F.t("The picture is too large (at most 5 MB)."));
        input.value = "";
        return;
      }
      const body = new FormData();
      body.append("file", file);
      const label = photoForm.querySelector("label[for=f-photo]");
      label.setAttribute("aria-busy", "true");
      const res = await F.api("PUT", "/api/v1/me/photo", { body });
      label.removeAttribute("aria-busy");
      input.value = "";
      if (res.ok) {
        setAvatar("/api/v1/me/photo?v=" + Date.now());
        remove.hidden = false;
        F.toast(F.t("Photo updated."));
      } else {
        F.showProblem(photoForm, res.problem, { file: "file", body: "file" });
      }
    });
    remove.addEventListener("click", async () => {
      F.clearErrors(photoForm);
      F.busy(remove, true);
      const res = await F.api("DELETE", "/api/v1/me/photo");
      F.busy(remove, false);
      if (res.ok || res.status === 404) {
        setAvatar(null);
        remove.hidden = true;
        F.toast(F.t("Photo removed."));
      } else F.showProblem(photoForm, res.problem);
    });
  }

  /* Nickname, language, country ------------------------------------------------------ */
  const nick = $("#nickname-form");
  if (nick) {
    F.bindForm(nick, {
      method: "PATCH",
      url: "/api/v1/me",
      validate: (d) => (d.nickname.trim() ? {} : { nickname: F.t("This field is required.") }),
      body: (d) => ({ nickname: d.nickname }),
      onSuccess: (data) => {
        nick.elements.nickname.value = data.nickname;
        F.toast(F.t("Saved."));
      },
    });
  }
  const prefs = $("#prefs-form");
  if (prefs) {
    const before = prefs.elements.language.value;
    F.bindForm(prefs, {
      method: "PATCH",
      url: "/api/v1/me",
      body: (d) => ({ language: d.language, country: d.country }),
      onSuccess: (data) => {
        document.cookie = `faoyam_lang=${encodeURIComponent(data.language)}; path=/; max-age=31536000; samesite=lax`;
        if (data.language !== before) location.reload();
        else F.toast(F.t("Saved."));
      },
    });
  }

  /* Email and phone change (a code to the new address; needs a recent sign-in) --------- */
  document.querySelectorAll(".contact-block").forEach((block) => {
    const kind = block.dataset.kind;
    const startForm = $(".contact-start", block);
    const confirmForm = $(".contact-confirm", block);
    const open = $("[data-open]", block);
    const close = () => { startForm.hidden = true; confirmForm.hidden = true; open.hidden = false; };
    open.addEventListener("click", () => {
      startForm.hidden = false;
      open.hidden = true;
      startForm.elements.value.focus();
    });
    block.querySelectorAll("[data-close]").forEach((b) => b.addEventListener("click", close));
    F.bindForm(startForm, {
      method: "POST",
      url: "/api/v1/me/contact",
      validate: (d) => (d.value.trim() ? {} : { value: F.t("This field is required.") }),
      body: (d) => ({ kind, value: d.value.trim() }),
      onSuccess: (data) => {
        startForm.hidden = true;
        confirmForm.hidden = false;
        $("[data-sent]", confirmForm).textContent = F.t("Code sent to {to}.", { to: data.sent_to });
        confirmForm.elements.code.focus();
      },
    });
    F.bindForm(confirmForm, {
      method: "POST",
      url: `/api/v1/me/contact/${kind}/confirm`,
      validate: (d) => (/^\d{6}$/.test(d.code.trim()) ? {} : { code: F.t("problem:wrong-code") }),
      body: (d) => ({ code: d.code.trim() }),
      onSuccess: (data) => {
        $("[data-current]", block).textContent = data[kind] || "";
        confirmForm.elements.code.value = "";
        startForm.elements.value.value = "";
        close();
        F.toast(F.t("Saved."));
      },
    });
  });

  /* Change password -------------------------------------------------------------------- */
  const pw = $("#password-form");
  if (pw) {
    F.strength(pw.elements.new_password, $("#f-new_password-strength"), () => (pw.dataset.hints || "").split(" "));
    F.bindForm(pw, {
      method: "POST",
      url: "/api/v1/me/password",
      validate: (d) => {
        const e = {};
        const req = F.t("This field is required.");
        if (pw.elements.current_password && !d.current_password) e.current_password = req;
        if (!d.new_password) e.new_password = req;
        else if (d.new_password.length < 8) e.new_password = F.t("Use at least 8 characters.");
        if (d.new_password && d.repeat !== d.new_password) e.repeat = F.t("Passwords do not match.");
        return e;
      },
      body: (d) => ({ current_password: d.current_password || null, new_password: d.new_password }),
      fieldMap: { current_password: "current_password", new_password: "new_password" },
      codeFields: { "bad-credentials": "current_password" },
      onSuccess: () => {
        pw.reset();
        $("#f-new_password-strength").hidden = true;
        F.toast(F.t("Password changed. Other terminals were signed out."));
      },
    });
  }

  /* Terminals: revoke --------------------------------------------------------------------- */
  document.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("[data-revoke]");
    if (!btn) return;
    F.busy(btn, true);
    const res = await F.api("DELETE", "/api/v1/me/terminals/" + encodeURIComponent(btn.dataset.revoke));
    if (res.ok || res.status === 404) {
      btn.closest("li")?.remove();
      F.toast(F.t("Signed out of this terminal."));
    } else {
      F.busy(btn, false);
      F.toast(F.problemText(res.problem));
    }
  });

  /* Download my data (R1, R6): needs a recent sign-in, so the re-auth dialog may ask ------- */
  const exp = $("#export-form");
  if (exp) {
    exp.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      F.clearErrors(exp);
      const done = $("[data-done]", exp);
      done.hidden = true;
      const format = exp.querySelector("input[name=format]:checked")?.value || "zip";
      const btn = exp.querySelector("button[type=submit]");
      F.busy(btn, true);
      const res = await F.api("GET", "/api/v1/privacy/export?format=" + format, { raw: true });
      F.busy(btn, false);
      if (!res.ok) { F.showProblem(exp, res.problem); return; }
      const blob = format === "zip"
        ? await res.response.blob()
        : new Blob([JSON.stringify(await res.response.json(), null, 2)], { type: "application/json" });
      const url = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = url;
      a.download = format === "zip" ? "faoyam-export.zip" : "faoyam-export.json";
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      done.textContent = F.t("Your download has started.");
      done.hidden = false;
    });
  }

  /* Delete Account (R3, B17): re-auth with the password, then DELETE /api/v1/me ---------- */
  const del = $("#delete-form");
  if (del) {
    del.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      F.clearErrors(del);
      const pwInput = del.elements.password;
      const errs = {};
      if (pwInput && !pwInput.value) errs.password = F.t("This field is required.");
      if (!del.elements.understand.checked) errs.understand = F.t("This field is required.");
      if (Object.keys(errs).length) {
        Object.entries(errs).forEach(([k, v]) => F.showFieldError(del, k, v));
        return;
      }
      const btn = del.querySelector("button[type=submit]");
      F.busy(btn, true);
      if (pwInput) {
        const r = await F.api("POST", "/api/v1/me/reauth", { json: { password: pwInput.value }, reauth: false });
        if (!r.ok) {
          F.busy(btn, false);
          F.showProblem(del, r.problem, { password: "password" }, { "bad-credentials": "password" });
          return;
        }
      }
      // Accounts without a password (external sign-in) confirm through the re-auth dialog.
      const res = await F.api("DELETE", "/api/v1/me");
      if (res.ok) { location.assign("/goodbye"); return; }
      F.busy(btn, false);
      F.showProblem(del, res.problem);
    });
  }
})();
