/* faoyam PTZ pad: pan, tilt and zoom buttons under a live player (templates/devices/_controls.html).
 *
 * A press sends POST /api/v1/devices/{id}/ptz/move {"channel", "operation", "duration_ms"}
 * (CSRF header through faoyam.api). Holding a button repeats the move every REPEAT_MS with a
 * duration a little longer than that, so the camera keeps moving smoothly and stops by
 * itself within MOVE_MS if the release is lost (a dropped network, a closed tab); releasing
 * after a hold sends "stop". A short tap moves one MOVE_MS step. The device answers with
 * its position, shown under the pad. element.ptz.stats tells tests what was sent.
 */
(() => {
  "use strict";

  const t = (msg, fmt) => (window.faoyam?.t ? window.faoyam.t(msg, fmt) : msg);
  const MOVE_MS = 600;
  const REPEAT_MS = 400;

  function percent(x) { return `${Math.round(x * 100)} %`; }

  function setup(root) {
    const status = root.querySelector("[data-ptz-status]");
    const base = `/api/v1/devices/${root.dataset.device}/ptz`;
    const channel = Number(root.dataset.channel || 0);
    const stats = { sent: [], errors: [], position: null };
    let timer = null, pressedAt = 0, held = null;

    async function send(operation, duration) {
      stats.sent.push(operation);
      const r = await window.faoyam.api("POST", `${base}/move`, { json: { channel, operation, duration_ms: duration } });
      if (r.ok && r.data) {
        stats.position = r.data;
        status.textContent = t("Pan {h}, tilt {v}, zoom {z}", { h: percent(r.data.h), v: percent(r.data.v), z: percent(r.data.z) });
      } else if (!r.ok) {
        stats.errors.push(r.problem?.code || r.status);
        status.textContent = window.faoyam.problemText(r.problem);
        release(false);
      }
      return r;
    }

    function press(btn) {
      const op = btn.dataset.ptzOp;
      if (op === "stop") { release(false); send("stop", 50); return; }
      release(false);
      held = btn;
      btn.setAttribute("aria-pressed", "true");
      pressedAt = performance.now();
      send(op, MOVE_MS);
      timer = setInterval(() => send(op, MOVE_MS), REPEAT_MS);
    }

    function release(sendStop = true) {
      if (!held) return;
      clearInterval(timer);
      timer = null;
      held.setAttribute("aria-pressed", "false");
      held = null;
      if (sendStop && performance.now() - pressedAt > MOVE_MS) send("stop", 50);
    }

    root.querySelectorAll("[data-ptz-op]").forEach((btn) => {
      btn.addEventListener("pointerdown", (e) => { e.preventDefault(); btn.setPointerCapture?.(e.pointerId); press(btn); });
      btn.addEventListener("pointerup", () => release());
      btn.addEventListener("pointercancel", () => release());
      btn.addEventListener("lostpointercapture", () => release());
      // Keyboard: Enter/Space make a click without pointer events: one step.
      btn.addEventListener("click", (e) => { if (e.detail === 0) { const op = btn.dataset.ptzOp; send(op, op === "stop" ? 50 : MOVE_MS); } });
    });
    window.addEventListener("blur", () => release());
    root.ptz = { stats, send };
  }

  document.addEventListener("DOMContentLoaded", () => document.querySelectorAll("[data-ptz]").forEach(setup));
})();
