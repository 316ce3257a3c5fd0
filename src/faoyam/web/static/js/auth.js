/* Sign in, register, confirm code, password reset. */
(() => {
  "use strict";
  const F = window.faoyam;
  const $ = (sel, root = document) => root.querySelector(sel);

  const looksLikeLocalPhone = (v) => v && !v.includes("@") && /\d/.test(v) && !v.trim().startsWith("+");

  function countryToggle(input, box) {
    if (!input || !box) return;
    const update = () => { box.hidden = !looksLikeLocalPhone(input.value); };
    input.addEventListener("input", update);
    update();
  }

  const next = () => {
    const n = $("#signin-form")?.dataset.next || "/home";
    return n.startsWith("/") && !n.startsWith("//") ? n : "/home";
  };

  /* Sign in --------------------------------------------------------------------------- */
  const signin = $("#signin-form");
  if (signin) {
    countryToggle(signin.elements.login, $("#signin-country"));
    F.bindForm(signin, {
      method: "POST",
      url: "/api/v1/sessions",
      validate: (d) => {
        const e = {};
        if (!d.login.trim()) e.login = F.t("This field is required.");
        if (!d.password) e.password = F.t("This field is required.");
        return e;
      },
      body: (d) => ({
        login: d.login.trim(),
        password: d.password,
        country: looksLikeLocalPhone(d.login) ? (d.country || null) : null,
        code: (d.code || "").trim() || null,
        terminal: F.terminal(),
      }),
      fieldMap: { login: "login", password: "password", code: "code" },
      onSuccess: () => location.assign(next()),
      // Many wrong passwords were tried for this account: a code sent to it is needed too.
      onError: (problem) => {
        if (problem && problem.code === "step-up-required") {
          $("#signin-code").hidden = false;
          signin.elements.code.focus();
        }
      },
    });

    // External sign-in providers, when the server offers any.
    (async () => {
      const res = await F.api("GET", "/api/v1/auth/providers", { reauth: false });
      if (!res.ok || !res.data) return;
      const list = Array.isArray(res.data) ? res.data : (res.data.providers || []);
      if (!list.length) return;
      const box = $("#providers .providers");
      const tmpl = box.dataset.labelTemplate || "{name}";
      for (const p of list) {
        const name = p.name || p.id;
        if (!name) continue;
        const a = document.createElement("a");
        a.className = "btn ghost block";
        a.href = p.url || p.start_url || p.authorize_url || `/auth/${encodeURIComponent(name)}/start`;
        a.textContent = tmpl.replace("{name}", p.label || name);
        a.dataset.provider = name;
        box.appendChild(a);
      }
      $("#providers").hidden = false;
    })();
  }

  /* Register ----------------------------------------------------------------------------- */
  const register = $("#register-form");
  if (register) {
    const method = () => register.querySelector("input[name=method]:checked").value;
    const applyMethod = () => {
      const m = method();
      register.querySelectorAll("[data-method]").forEach((el) => {
        const on = el.dataset.method === m;
        el.hidden = !on;
        el.querySelectorAll("input").forEach((i) => { i.disabled = !on; });
      });
    };
    register.querySelectorAll("input[name=method]").forEach((r) => r.addEventListener("change", applyMethod));
    applyMethod();
    F.strength(register.elements.password, $("#f-password-strength"),
      () => [register.elements.email.value, register.elements.phone.value, register.elements.nickname.value]);
    F.bindForm(register, {
      method: "POST",
      url: "/api/v1/accounts/register",
      validate: (d) => {
        const e = {};
        const req = F.t("This field is required.");
        if (!d.country) e.country = req;
        if (method() === "email" && !(d.email || "").trim()) e.email = req;
        if (method() === "phone" && !(d.phone || "").trim()) e.phone = req;
        if (!(d.nickname || "").trim()) e.nickname = req;
        if (!d.password) e.password = req;
        else if (d.password.length < 8) e.password = F.t("Use at least 8 characters.");
        if (!d.age_confirmed) e.age_confirmed = F.t("problem:age-not-confirmed");
        return e;
      },
      body: (d) => ({
        email: method() === "email" ? d.email.trim() : null,
        phone: method() === "phone" ? d.phone.trim() : null,
        country: d.country,
        nickname: d.nickname,
        password: d.password,
        language: d.language || F.lang,
        age_confirmed: !!d.age_confirmed,
      }),
      // "contact-required" names the email field; show it on whichever is in use.
      fieldMap: () => ({ email: method() === "phone" ? "phone" : "email" }),
      onSuccess: (data) => {
        const q = new URLSearchParams({ pending: data.pending_id, to: data.sent_to });
        location.assign("/register/confirm?" + q.toString());
      },
    });
  }

  /* Confirm code ------------------------------------------------------------------------ */
  const confirm = $("#confirm-form");
  if (confirm) {
    const code = confirm.elements.code;
    code.addEventListener("input", () => { code.value = code.value.replace(/\D/g, "").slice(0, 6); });
    code.focus();
    F.bindForm(confirm, {
      method: "POST",
      url: "/api/v1/accounts/register/confirm",
      validate: (d) => (/^\d{6}$/.test(d.code) ? {} : { code: F.t("problem:wrong-code") }),
      body: (d) => ({ pending_id: d.pending_id, code: d.code, terminal: F.terminal() }),
      onSuccess: () => location.assign("/home"),
    });
  }

  /* Password reset ------------------------------------------------------------------------ */
  const start = $("#reset-start-form");
  const finish = $("#reset-finish-form");
  if (start && finish) {
    countryToggle(start.elements.login, $("#reset-country"));
    let login = null;
    let country = null;
    F.bindForm(start, {
      method: "POST",
      url: "/api/v1/password-reset",
      validate: (d) => (d.login.trim() ? {} : { login: F.t("This field is required.") }),
      body: (d) => {
        login = d.login.trim();
        country = looksLikeLocalPhone(login) ? (d.country || null) : null;
        return { login, country };
      },
      onSuccess: (data) => {
        start.hidden = true;
        finish.hidden = false;
        $("[data-sent]", finish).textContent = data && data.detail && F.lang === "en"
          ? data.detail : F.t("If an account uses this address, a code is on its way.");
        finish.elements.code.focus();
      },
    });
    F.strength(finish.elements.new_password, $("#f-new_password-strength"), () => [login]);
    F.bindForm(finish, {
      method: "POST",
      url: "/api/v1/password-reset/confirm",
      validate: (d) => {
        const e = {};
        if (!/^\d{6}$/.test(d.code)) e.code = F.t("problem:wrong-code");
        if (!d.new_password) e.new_password = F.t("This field is required.");
        return e;
      },
      body: (d) => ({ login, country, code: d.code, new_password: d.new_password }),
      fieldMap: { code: "code", new_password: "new_password" },
      onSuccess: () => { finish.hidden = true; $("#reset-done").hidden = false; },
    });
  }
})();
