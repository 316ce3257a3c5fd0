/* faoyam live player: fragmented MP4 over WebSocket into Media Source Extensions.
 * No build step; one player per element marked [data-live-player] (templates/devices/_player.html).
 *
 * The media worker sends (see docs/live-view.md):
 *   text    {"type": "init", "mime": "video/mp4; codecs=\"avc1.640028,mp4a.40.2\"", "tracks": [...]}
 *   binary  the init segment, then fragments (moof+mdat), starting at a keyframe
 * and closes with a code that says what to do next (CLOSE below).
 *
 * What the player does about the things that go wrong with MSE live video:
 *   - it follows the live edge: when the buffered end is more than LIVE_EDGE_MAX seconds
 *     ahead of the playback position (a stall, a background tab, a slow start), it jumps
 *     to LIVE_EDGE_TARGET behind the end, and plays a little faster when slightly behind;
 *   - it removes what is more than KEEP_BEHIND seconds behind the playback position, so
 *     memory stays bounded however long it plays; on QuotaExceededError it removes all
 *     it can and tries again, and starts over if nothing can go;
 *   - a new init segment with another codec uses SourceBuffer.changeType (or a new
 *     MediaSource where changeType does not exist);
 *   - it tells the web app whether it plays HEVC (hevc=1|0 on the URL request), which then
 *     picks the stream: an H.265 camera as it is, or its H.264 sub-stream, or the media
 *     worker's H.264 transcode (docs/live-view.md); if what arrives still does not play,
 *     it asks once more with fallback=1, then says plainly which codec it cannot play;
 *   - it reconnects with backoff and a fresh URL from data-url-endpoint (the web app
 *     checks authorization again); it stops for good when access was revoked.
 * Sound is off at first (browsers allow muted autoplay); a button turns it on.
 */
(() => {
  "use strict";

  // The page's translations (app.js; strings listed in web/templating.py JS_MESSAGES).
  const t = (msg, fmt) => (window.faoyam?.t ? window.faoyam.t(msg, fmt) : msg);

  const CLOSE = { ENDED: 1000, GOING_AWAY: 1001, BAD_TOKEN: 4401, FORBIDDEN: 4403, OFFLINE: 4404, EXPIRED: 4410, TOO_SLOW: 4429 };
  const LIVE_EDGE_MAX = 1.0;    // s behind the buffered end before jumping forward
  const LIVE_EDGE_TARGET = 0.25; // s behind the end to land at
  const CATCH_UP = 0.5;         // s behind: play 10 % faster until back under it
  const KEEP_BEHIND = 6;        // s of buffer kept behind the playback position
  const BACKOFF = [0.5, 1, 2, 4, 8, 15, 30]; // s, with ±25 % jitter
  // HEVC as cameras send it (Main profile, level 3.1–5.1; hvc1 and hev1 sample entries)
  const HEVC_TYPES = ['video/mp4; codecs="hvc1.1.6.L93.B0"', 'video/mp4; codecs="hev1.1.6.L93.B0"',
    'video/mp4; codecs="hvc1.1.6.L153.B0"'];
  const playsHevc = () => !!window.MediaSource && HEVC_TYPES.some((type) => MediaSource.isTypeSupported(type));

  function concat(parts) {
    if (parts.length === 1) return parts[0];
    const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
    let pos = 0;
    for (const p of parts) { out.set(p, pos); pos += p.byteLength; }
    return out;
  }

  class LivePlayer {
    constructor(root) {
      this.root = root;
      this.video = root.querySelector("video");
      this.statusEl = root.querySelector(".live-status");
      this.badge = root.querySelector(".live-badge");
      this.endpoint = root.dataset.urlEndpoint;
      this.nextUrl = root.dataset.initialUrl || null;
      this.stream = root.dataset.stream || "main";
      this.hevc = playsHevc();
      // the page's first URL assumed no HEVC; a browser that plays it asks for the camera's own
      if (this.hevc && "hevcChoice" in root.dataset) this.nextUrl = null;
      this.fallback = false;   // set once what was sent did not play: the server picks again
      this.served = null;      // the stream the last fetched URL opens (main, sub, main.h264 …)
      this.ws = null;
      this.ms = null;
      this.sb = null;
      this.mime = null;
      this.queue = [];         // Uint8Array chunks and {changeType: mime} markers, in order
      this.attempt = 0;
      this.stopped = false;
      this.stats = { messages: 0, bytes: 0, jumps: 0, quota: 0, inits: 0, connects: 0, removed: 0, errors: [],
        hevc: this.hevc, stream: null, mime: null };
      root.livePlayer = this;  // for tests and the curious: el.livePlayer.stats, .liveLag()
      this.bindControls();
      this.video.addEventListener("playing", () => { this.attempt = 0; this.setState("playing", ""); });
      this.video.addEventListener("error", () => this.mediaError("video: " + (this.video.error?.message || "error")));
      this.connect();
    }

    /* Controls ------------------------------------------------------------------- */

    bindControls() {
      const audio = this.root.querySelector("[data-live-audio]");
      audio?.addEventListener("click", () => {
        this.video.muted = !this.video.muted;
        const on = !this.video.muted;
        audio.setAttribute("aria-pressed", String(on));
        const label = on ? t("Sound off") : t("Sound on");
        audio.setAttribute("aria-label", label);
        audio.title = label;
        audio.querySelector("[data-muted]")?.toggleAttribute("hidden", on);
        audio.querySelector("[data-unmuted]")?.toggleAttribute("hidden", !on);
        if (on) this.video.play().catch(() => {});
      });
      const full = this.root.querySelector("[data-live-fullscreen]");
      full?.addEventListener("click", () => {
        const frame = this.root.querySelector(".live-frame") || this.root;
        if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
        else if (frame.requestFullscreen) frame.requestFullscreen().catch(() => {});
        else if (this.video.webkitEnterFullscreen) this.video.webkitEnterFullscreen(); // iOS Safari
      });
    }

    setState(state, text) {
      this.root.dataset.state = state;
      if (this.statusEl) this.statusEl.textContent = text;
      if (this.badge) this.badge.hidden = state !== "playing";
    }

    /* Connection ----------------------------------------------------------------- */

    async freshUrl() {
      const sep = this.endpoint.includes("?") ? "&" : "?";
      const what = `stream=${encodeURIComponent(this.stream)}&hevc=${this.hevc ? 1 : 0}${this.fallback ? "&fallback=1" : ""}`;
      const r = await fetch(`${this.endpoint}${sep}${what}`,
        { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" });
      if ([401, 403, 404, 410].includes(r.status)) { const e = new Error("not allowed"); e.fatal = true; throw e; }
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const body = await r.json();
      this.served = this.stats.stream = body.stream || null;
      return body.url;
    }

    async connect() {
      if (this.stopped) return;
      let url = this.nextUrl;
      this.nextUrl = null;
      if (!url) {
        try { url = await this.freshUrl(); }
        catch (e) {
          if (e.fatal) this.fail("revoked", t("You can no longer watch this camera."));
          else this.retry(t("Reconnecting…"));
          return;
        }
      }
      if (this.stopped) return;
      if (this.root.dataset.state !== "offline") this.setState("connecting", this.stats.connects ? t("Reconnecting…") : t("Connecting…"));
      this.stats.connects++;
      const ws = new WebSocket(url);
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      ws.onmessage = (ev) => { if (this.ws === ws) this.onMessage(ev); };
      ws.onclose = (ev) => { if (this.ws === ws) this.onClose(ev); };
    }

    onClose(ev) {
      this.ws = null;
      if (this.stopped) return;
      if (ev.code === CLOSE.FORBIDDEN || ev.code === CLOSE.BAD_TOKEN) {
        this.fail("revoked", t("You can no longer watch this camera."));
        return;
      }
      this.resetMedia();
      if (this.switching) { this.switching = false; this.connect(); return; }
      if (ev.code === CLOSE.EXPIRED) { this.connect(); return; } // a fresh URL at once
      if (ev.code === CLOSE.OFFLINE) this.retry(t("The camera is offline or not sending video. Trying again…"), "offline");
      else this.retry(t("Reconnecting…"));
    }

    retry(text, state = "reconnecting") {
      this.setState(state, text);
      const base = BACKOFF[Math.min(this.attempt, BACKOFF.length - 1)];
      this.attempt++;
      setTimeout(() => this.connect(), base * (750 + Math.random() * 500));
    }

    reconnectNow() {
      if (this.ws) { this.ws.close(); } // onClose resets and reconnects
      else { this.resetMedia(); this.connect(); }
    }

    fail(state, text) {
      this.stopped = true;
      const ws = this.ws;
      this.ws = null;
      ws?.close();
      this.resetMedia();
      this.setState(state, text);
    }

    /* Messages ------------------------------------------------------------------- */

    onMessage(ev) {
      if (typeof ev.data === "string") {
        let msg;
        try { msg = JSON.parse(ev.data); } catch { return; }
        if (msg.type === "init") this.onInit(msg);
        return;
      }
      this.stats.messages++;
      this.stats.bytes += ev.data.byteLength;
      if (!this.mime) return; // no usable description yet: nothing can take these bytes
      this.queue.push(new Uint8Array(ev.data));
      this.pump();
    }

    onInit(msg) {
      if (!window.MediaSource) {
        this.fail("unsupported", t("Your browser does not support live video (Media Source Extensions)."));
        return;
      }
      this.codecs = (msg.tracks || []).map((tr) => tr.codec).join(", ") || msg.mime;
      if (!MediaSource.isTypeSupported(msg.mime)) { this.cannotPlay(); return; }
      this.stats.inits++;
      this.stats.mime = msg.mime;
      if (this.sb && this.mime !== msg.mime) {
        if (typeof this.sb.changeType === "function") this.queue.push({ changeType: msg.mime });
        else this.resetMedia();
      }
      this.mime = msg.mime;
      if (!this.ms) this.openMedia(msg.mime);
    }

    /* What arrived does not play here (e.g. HEVC the device did not announce): ask the web
       app once more with fallback=1 (it then sends H.264: the sub-stream or the transcode),
       and if that does not play either, say which codec this browser cannot play. */
    cannotPlay() {
      if (this.fallback) {
        this.fail("unsupported", t("This browser cannot play this camera's video format ({codec}).", { codec: this.codecs }));
        return;
      }
      this.fallback = true;
      this.mime = null;
      if (this.ws) { this.switching = true; this.ws.close(); } // onClose reconnects at once
      else { this.resetMedia(); this.connect(); }
    }

    /* Media Source --------------------------------------------------------------- */

    openMedia(mime) {
      const ms = new MediaSource();
      this.ms = ms;
      const objectUrl = URL.createObjectURL(ms);
      ms.addEventListener("sourceopen", () => {
        URL.revokeObjectURL(objectUrl);
        if (this.ms !== ms) return;
        try {
          const sb = ms.addSourceBuffer(mime);
          sb.mode = "segments"; // the fragments' own timestamps place them
          sb.addEventListener("updateend", () => { if (this.sb === sb) this.afterUpdate(); });
          sb.addEventListener("error", () => { if (this.sb === sb) this.mediaError("SourceBuffer error"); });
          this.sb = sb;
        } catch (e) {
          // isTypeSupported said yes, the decoder says no (an HEVC profile it lacks)
          if (e.name === "NotSupportedError") this.cannotPlay(); else this.mediaError(e);
          return;
        }
        this.pump();
      }, { once: true });
      this.video.src = objectUrl;
      this.video.play().catch(() => {}); // muted autoplay; resolves once data arrives
    }

    resetMedia() {
      this.queue = [];
      this.sb = null;
      this.mime = null;
      if (this.ms) {
        this.ms = null;
        this.video.pause();
        this.video.removeAttribute("src");
        this.video.load();
      }
    }

    pump() {
      const sb = this.sb;
      if (!sb || sb.updating || !this.queue.length || this.ms?.readyState !== "open") return;
      while (this.queue.length && this.queue[0].changeType) {
        const { changeType } = this.queue.shift();
        try { sb.changeType(changeType); } catch (e) { this.mediaError(e); return; }
      }
      const parts = [];
      while (this.queue.length && !this.queue[0].changeType) parts.push(this.queue.shift());
      if (!parts.length) return;
      const data = concat(parts);
      try {
        sb.appendBuffer(data);
      } catch (e) {
        if (e.name === "QuotaExceededError") {
          this.stats.quota++;
          this.queue.unshift(data);
          if (!this.evict(0.2)) this.reconnectNow(); // nothing left to remove: start over
        } else {
          this.mediaError(e);
        }
      }
    }

    afterUpdate() {
      this.followLiveEdge();
      if (!this.evict(KEEP_BEHIND)) this.pump();
      if (this.video.paused && this.video.buffered.length) this.video.play().catch(() => {});
    }

    /* Seconds between the playback position and the newest buffered frame. */
    liveLag() {
      const b = this.video.buffered;
      return b.length ? b.end(b.length - 1) - this.video.currentTime : NaN;
    }

    followLiveEdge() {
      const b = this.video.buffered;
      if (!b.length) return;
      const start = b.start(b.length - 1), end = b.end(b.length - 1);
      const now = this.video.currentTime;
      if (end - now > LIVE_EDGE_MAX || now < start) {
        this.video.currentTime = Math.max(start, end - LIVE_EDGE_TARGET);
        this.stats.jumps++;
      }
      this.video.playbackRate = end - this.video.currentTime > CATCH_UP ? 1.1 : 1.0;
    }

    /* Remove buffer more than `keep` s behind the playback position; true if removing. */
    evict(keep) {
      const sb = this.sb, b = sb?.buffered;
      if (!sb || sb.updating || !b.length) return false;
      const until = this.video.currentTime - keep;
      const slack = keep >= KEEP_BEHIND ? 2 : 0; // remove in steps of seconds, not every frame
      if (b.start(0) >= until - slack) return false;
      try { sb.remove(b.start(0), until); } catch { return false; }
      this.stats.removed++;
      return true;
    }

    mediaError(e) {
      this.stats.errors.push(String(e && e.message ? e.message : e));
      if (this.stopped) return;
      const ws = this.ws;
      this.ws = null;
      ws?.close();
      this.resetMedia();
      this.retry(t("The video stopped with an error. Trying again…"), "error");
    }
  }

  function start() {
    document.querySelectorAll("[data-live-player]").forEach((el) => { if (!el.livePlayer) new LivePlayer(el); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
  window.faoyamLive = { LivePlayer, CLOSE };
})();
