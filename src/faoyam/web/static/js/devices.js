/* Devices: add a device, device settings, sharing, invitations. */
(() => {
  "use strict";
  const F = window.faoyam;
  const $ = (sel, root = document) => root.querySelector(sel);
  const enc = encodeURIComponent;

  /* Add a device (B3) ----------------------------------------------------------------- */
  const add = $("#add-device-form");
  if (add) {
    // Preselect this browser's time zone when the page did not choose one.
    const tzSelect = add.elements.time_zone;
    if (!tzSelect.value) {
      try {
        const mine = Intl.DateTimeFormat().resolvedOptions().timeZone;
        if (mine && [...tzSelect.options].some((o) => o.value === mine)) tzSelect.value = mine;
      } catch { /* no Intl time zone: the user chooses */ }
    }
    F.bindForm(add, {
      method: "POST",
      url: "/api/v1/devices",
      validate: (d) => {
        const e = {};
        const req = F.t("This field is required.");
        if (!d.serial.trim()) e.serial = req;
        if (!d.safety_code.trim()) e.safety_code = req;
        if (d.wifi_password && !d.wifi_ssid.trim()) e.wifi_ssid = req;
        return e;
      },
      body: (d) => {
        const out = { serial: d.serial.trim().toUpperCase(), safety_code: d.safety_code.trim(), dst: !!d.dst };
        if (d.name.trim()) out.name = d.name.trim();
        if (d.wifi_ssid.trim()) out.wifi_ssid = d.wifi_ssid.trim();
        if (d.wifi_password) out.wifi_password = d.wifi_password;
        if (d.device_password) out.device_password = d.device_password;
        if (d.time_zone) out.time_zone = d.time_zone;
        return out;
      },
      codeFields: { "unknown-serial": "serial", "wrong-safety-code": "safety_code", "already-yours": "serial",
                    "bound-elsewhere": "serial", "model-mismatch": "serial", "device-offline": "wifi_password" },
      onSuccess: (device) => location.assign("/devices/" + enc(device.id)),
    });
  }

  /* Device settings ---------------------------------------------------------------------- */
  const deviceEl = $("#device");
  const deviceId = deviceEl?.dataset.device || $("#sharing")?.dataset.device;
  const base = deviceId ? "/api/v1/devices/" + enc(deviceId) : null;

  const nameForm = $("#device-name-form");
  if (nameForm) {
    F.bindForm(nameForm, {
      method: "PATCH",
      url: base,
      validate: (d) => (d.name.trim() ? {} : { name: F.t("This field is required.") }),
      body: (d) => ({ name: d.name.trim() }),
      onSuccess: (dev) => {
        document.querySelectorAll("[data-device-name], .appbar-title").forEach((el) => { el.textContent = dev.name; });
        F.toast(F.t("Saved."));
      },
    });
  }

  const coverForm = $("#cover-form");
  if (coverForm) {
    const input = $("#f-cover");
    const remove = $("#cover-remove");
    const box = $("#cover-box");
    const showCover = (url) => {
      box.querySelectorAll("img, svg.icon").forEach((el) => el.remove());
      if (url) {
        const img = document.createElement("img");
        img.src = url;
        img.alt = "";
        box.prepend(img);
      }
    };
    input.addEventListener("change", async () => {
      F.clearErrors(coverForm);
      const file = input.files && input.files[0];
      if (!file) return;
      const body = new FormData();
      body.append("file", file);
      const res = await F.api("PUT", base + "/cover", { body });
      input.value = "";
      if (res.ok) {
        showCover(base + "/cover?v=" + Date.now());
        remove.hidden = false;
        F.toast(F.t("Saved."));
      } else F.showProblem(coverForm, res.problem, { body: "file" });
    });
    remove.addEventListener("click", async () => {
      const res = await F.api("DELETE", base + "/cover");
      if (res.ok || res.status === 404) {
        showCover(null);
        remove.hidden = true;
        F.toast(F.t("Saved."));
      } else F.showProblem(coverForm, res.problem);
    });
  }

  /* Channels of an NVR: a name and a cover each. */
  document.querySelectorAll("#channels .channel-form").forEach((form) => {
    const index = form.dataset.channel;
    const url = base + "/channels/" + enc(index);
    F.bindForm(form, {
      method: "PATCH",
      url,
      validate: (d) => (d.name.trim() ? {} : { name: F.t("This field is required.") }),
      body: (d) => ({ name: d.name.trim() }),
      onSuccess: () => F.toast(F.t("Saved.")),
    });
    const input = form.querySelector('input[type="file"]');
    input.addEventListener("change", async () => {
      F.clearErrors(form);
      const file = input.files && input.files[0];
      if (!file) return;
      const body = new FormData();
      body.append("file", file);
      const res = await F.api("PUT", url + "/cover", { body });
      input.value = "";
      if (!res.ok) return F.showProblem(form, res.problem, { body: "file" });
      const box = form.closest(".channel").querySelector("[data-channel-cover-box]");
      box.querySelectorAll("img, svg.icon").forEach((el) => el.remove());
      const img = document.createElement("img");
      img.src = url + "/cover?v=" + Date.now();
      img.alt = "";
      box.prepend(img);
      F.toast(F.t("Saved."));
    });
  });

  const timeForm = $("#device-time-form");
  if (timeForm) {
    F.bindForm(timeForm, {
      method: "PATCH",
      url: base,
      body: (d) => ({ time_zone: d.time_zone || null, dst: !!d.dst }),
      onSuccess: () => F.toast(F.t("Saved.")),
    });
  }

  const pwForm = $("#device-password-form");
  if (pwForm) {
    F.bindForm(pwForm, {
      method: "PUT",
      url: base + "/password",
      validate: (d) => (d.password ? {} : { password: F.t("This field is required.") }),
      body: (d) => ({ password: d.password }),
      onSuccess: () => { pwForm.reset(); F.toast(F.t("Saved.")); },
    });
    $("#device-password-reset").addEventListener("click", async (ev) => {
      F.clearErrors(pwForm);
      F.busy(ev.currentTarget, true);
      const res = await F.api("POST", base + "/password/reset");
      F.busy(ev.currentTarget, false);
      if (res.ok) F.toast(F.t("Saved."));
      else F.showProblem(pwForm, res.problem);
    });
  }

  const wifiForm = $("#device-wifi-form");
  if (wifiForm) {
    F.bindForm(wifiForm, {
      method: "PUT",
      url: base + "/wifi",
      validate: (d) => (d.ssid.trim() ? {} : { ssid: F.t("This field is required.") }),
      body: (d) => ({ ssid: d.ssid.trim(), password: d.password || null }),
      fieldMap: { ssid: "ssid", password: "password" },
      onSuccess: () => { wifiForm.elements.password.value = ""; F.toast(F.t("Saved.")); },
    });
  }

  const del = $("#device-delete");
  if (del) {
    const dialog = $("#device-delete-dialog");
    del.addEventListener("click", () => dialog.showModal());
    dialog.querySelector("[data-action=cancel]").addEventListener("click", () => dialog.close());
    dialog.querySelector("[data-action=delete]").addEventListener("click", async (ev) => {
      const btn = ev.currentTarget;
      F.busy(btn, true);
      const res = await F.api("DELETE", base);
      if (res.ok) { location.assign("/home"); return; }
      F.busy(btn, false);
      const err = dialog.querySelector(".form-error");
      err.textContent = F.problemText(res.problem);
      err.hidden = false;
    });
  }

  /* Sharing (B9): the owner's side --------------------------------------------------------- */
  const shareForm = $("#share-form");
  if (shareForm) {
    const perms = () => [...shareForm.querySelectorAll("input[type=checkbox][name^=perm-]:checked")].map((c) => c.value);
    F.bindForm(shareForm, {
      method: "POST",
      url: base + "/shares",
      validate: (d) => {
        const e = {};
        if (!d.contact.trim()) e.contact = F.t("This field is required.");
        if (!perms().length) e.permissions = F.t("Choose at least one permission.");
        return e;
      },
      body: (d) => ({ contact: d.contact.trim(), permissions: perms() }),
      codeFields: { "no-account": "contact", "already-shared": "contact" },
      onSuccess: () => location.reload(),
    });
  }

  const linkForm = $("#link-form");
  if (linkForm) {
    F.bindForm(linkForm, {
      method: "POST",
      url: base + "/share-links",
      body: (d) => {
        const out = { hours: Number(d.hours) || 24 };
        if (d.label.trim()) out.label = d.label.trim();
        return out;
      },
      onSuccess: (link) => {
        const box = $("#link-created");
        $("#link-url").value = location.origin + "/s/" + link.token;
        box.hidden = false;
        linkForm.reset();
        $("#link-url").select();
      },
    });
    $("#link-copy").addEventListener("click", async () => {
      const url = $("#link-url").value;
      try { await navigator.clipboard.writeText(url); } catch { $("#link-url").select(); document.execCommand?.("copy"); }
      F.toast(F.t("Copied."));
    });
  }

  /* Buttons that act on one row ----------------------------------------------------------- */
  const rowAction = (attr, method, url, after) => {
    document.addEventListener("click", async (ev) => {
      const btn = ev.target.closest(`[${attr}]`);
      if (!btn) return;
      F.busy(btn, true);
      const res = await F.api(method, url(btn.getAttribute(attr)));
      if (res.ok) after(btn, res.data);
      else { F.busy(btn, false); F.toast(F.problemText(res.problem)); }
    });
  };
  const removeRow = (btn) => { btn.closest("li")?.remove(); F.toast(F.t("Saved.")); };
  rowAction("data-revoke-share", "DELETE", (id) => `${base}/shares/${enc(id)}`, removeRow);
  rowAction("data-revoke-link", "DELETE", (id) => `${base}/share-links/${enc(id)}`, removeRow);

  /* Sharing (B9): the invitee's side ------------------------------------------------------- */
  rowAction("data-accept", "POST", (id) => `/api/v1/device-shares/${enc(id)}/accept`, () => location.reload());
  rowAction("data-decline", "POST", (id) => `/api/v1/device-shares/${enc(id)}/decline`, removeRow);
  rowAction("data-leave", "DELETE", (id) => `/api/v1/device-shares/${enc(id)}`, (btn) => {
    if ($("#device")) location.assign("/home");
    else removeRow(btn);
  });
})();
