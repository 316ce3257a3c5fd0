/* faoyam playback page: recorded video through the live player's MSE code, a timeline to
 * drag and zoom, a calendar of days with recordings, speeds, clip download (docs/playback.md).
 *
 * The player is live-player.js's LivePlayer with four differences:
 *   - it connects to the media worker's playback stream at an instant (?at=unix ms) and only
 *     once one is chosen; a seek is a new connection (the worker starts at the keyframe at or
 *     before the instant, so the picture is there within a second);
 *   - it does not chase a live edge: the video plays at the chosen speed (playbackRate), and
 *     the player reports its position four times a second, so the worker sends only a few
 *     seconds ahead of it (a paused player costs nothing);
 *   - the worker's {"type": "piece", "t", "wall"} messages map the video's time to the
 *     wall-clock instant it shows (gaps in the recording are skipped over);
 *   - {"type": "end"} (the recordings run out) is the end, not a reason to reconnect.
 */
(() => {
  "use strict";

  const t = (msg, fmt) => (window.faoyam?.t ? window.faoyam.t(msg, fmt) : msg);
  const SPEEDS = [1, 2, 4, 8];
  const HOUR = 3600e3, DAY = 86400e3;
  const URL_MAX_AGE = 20e3; // ms: a media token unused for 30 s is spent; fetch anew before then

  const pad = (n) => String(n).padStart(2, "0");
  const clock = (ms, withDate) => {
    const d = new Date(ms);
    const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    return withDate ? `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}` : time;
  };
  const localInput = (ms) => { const d = new Date(ms); return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${clock(ms)}`; };
  const isoDay = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;

  function makePlayerClass(Base) {
    return class PlaybackPlayer extends Base {
      connect() {
        if (!this.root.dataset.at) return; // nothing chosen yet
        return super.connect();
      }

      async freshUrl() {
        const body = await this.page.mediaUrls(true);
        if (!body) { const e = new Error("not allowed"); e.fatal = true; throw e; }
        this.served = this.stats.stream = this.root.dataset.stream || "main";
        return `${body.stream}?at=${this.root.dataset.at}`;
      }

      onMessage(ev) {
        if (typeof ev.data === "string") {
          let msg;
          try { msg = JSON.parse(ev.data); } catch { return; }
          if (msg.type === "piece") { this.pieces.push(msg); return; }
          if (msg.type === "end") { this.ended = true; return; }
        }
        super.onMessage(ev);
      }

      onClose(ev) {
        if (this.ended && ev.code === 1000) { // play out what is buffered, then say so
          this.ws = null;
          if (!this.pieces.length) this.setState("ended", t("Nothing was recorded after this time."));
          return;
        }
        super.onClose(ev);
      }

      followLiveEdge() { this.video.playbackRate = this.speed || 1; }

      setSpeed(speed) {
        this.speed = speed;
        this.video.playbackRate = speed;
        this.report();
      }

      report() {
        const ws = this.ws;
        if (ws && ws.readyState === 1) {
          ws.send(JSON.stringify({ type: "position", t: this.video.currentTime || 0, speed: this.speed || 1 }));
        }
      }

      seekTo(ms) {
        this.root.dataset.at = String(Math.round(ms));
        this.pieces = [];
        this.ended = false;
        this.stopped = false;
        this.attempt = 0;
        const ws = this.ws;
        this.ws = null;
        ws?.close();
        this.resetMedia();
        this.stats.seeks = (this.stats.seeks || 0) + 1;
        this.connect();
      }

      /* The wall-clock instant (unix ms) the video shows now, or null. */
      wallNow() {
        const now = this.video.currentTime;
        let piece = null;
        for (const p of this.pieces || []) if (p.t <= now + 1e-3) piece = p;
        return piece ? piece.wall + (now - piece.t) * 1000 : null;
      }
    };
  }

  class PlaybackPage {
    constructor(root) {
      this.root = root;
      this.api = root.dataset.api;
      this.endpoint = root.dataset.urlEndpoint;
      this.stream = root.dataset.stream || "main";
      this.tz = Intl.DateTimeFormat().resolvedOptions().timeZone || root.dataset.tz || "UTC";
      this.span = HOUR;
      this.viewStart = Date.now() - this.span * 0.9;
      this.data = { intervals: [], events: [] };
      this.urls = null;
      this.month = new Date();
      root.playbackPage = this;
      root.querySelector("video").addEventListener("waiting", () => {
        if (this.player.ended && !this.player.ws) this.player.setState("ended", t("End of the recordings."));
      });
      const fig = root.querySelector("[data-playback-player]");
      fig.dataset.urlEndpoint = this.endpoint;
      fig.dataset.stream = this.stream;
      const Player = makePlayerClass(window.faoyamLive.LivePlayer);
      Player.prototype.page = this;
      this.player = new Player(fig);
      this.player.pieces = [];
      this.player.speed = 1;
      fig.playbackPlayer = this.player;
      this.bind();
      setInterval(() => this.player.report(), 250);
      setInterval(() => this.drawCursor(), 250);
      this.load().then(() => this.autostart());
      this.loadDays();
    }

    /* The media worker's playback URLs (one token for the stream, thumbnails, clips). */
    async mediaUrls(fresh = false) {
      if (!fresh && this.urls && Date.now() - this.urls.at < URL_MAX_AGE) return this.urls;
      const r = await fetch(`${this.endpoint}?stream=${encodeURIComponent(this.stream)}`,
        { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" });
      if ([401, 403, 404, 410].includes(r.status)) return null;
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      this.urls = { ...(await r.json()), at: Date.now() };
      return this.urls;
    }

    bind() {
      const q = (s) => this.root.querySelector(s);
      this.timeline = q("[data-timeline]");
      this.track = q("[data-track]");
      this.ticks = q("[data-ticks]");
      this.cursor = q("[data-cursor]");
      this.hover = q("[data-hover]");
      this.rangeEl = q("[data-range]");
      this.clockEl = this.root.querySelector("[data-clock]");
      this.root.querySelectorAll("[data-speed]").forEach((b) => b.addEventListener("click", () => {
        const s = Number(b.dataset.speed);
        this.player.setSpeed(SPEEDS.includes(s) ? s : 1);
        this.root.querySelectorAll("[data-speed]").forEach((o) => {
          o.classList.toggle("active", o === b); o.setAttribute("aria-pressed", String(o === b));
        });
      }));
      const play = q("[data-play]");
      play.addEventListener("click", () => {
        const v = this.player.video;
        if (v.paused) v.play().catch(() => {}); else v.pause();
      });
      const v = this.player.video;
      v.addEventListener("pause", () => { play.textContent = t("Play"); });
      v.addEventListener("play", () => { play.textContent = t("Pause"); });
      this.root.querySelectorAll("[data-zoom]").forEach((b) => b.addEventListener("click", () => {
        this.zoom(Number(b.dataset.zoom));
      }));
      this.root.querySelectorAll("[data-pan]").forEach((b) => b.addEventListener("click", () => {
        this.viewStart += Number(b.dataset.pan) * this.span * 0.5; this.load();
      }));
      this.bindDrag();
      this.timeline.addEventListener("wheel", (e) => {
        e.preventDefault();
        this.zoom(e.deltaY > 0 ? DAY : HOUR, this.timeAt(e.clientX));
      }, { passive: false });
      this.timeline.addEventListener("keydown", (e) => {
        if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
          this.viewStart += (e.key === "ArrowLeft" ? -1 : 1) * this.span * 0.1; this.load();
        }
      });
      this.root.querySelectorAll("[data-month]").forEach((b) => b.addEventListener("click", () => {
        this.month = new Date(this.month.getFullYear(), this.month.getMonth() + Number(b.dataset.month), 1);
        this.loadDays();
      }));
      this.root.querySelectorAll("[data-clip-mark]").forEach((b) => b.addEventListener("click", () => {
        const now = this.player.wallNow();
        if (now != null) q(`[data-clip-${b.dataset.clipMark}]`).value = localInput(now);
      }));
      q("[data-clip-download]").addEventListener("click", () => this.download());
    }

    bindDrag() {
      let down = null;
      this.timeline.addEventListener("pointerdown", (e) => {
        down = { x: e.clientX, start: this.viewStart, moved: false };
        this.timeline.setPointerCapture(e.pointerId);
      });
      this.timeline.addEventListener("pointermove", (e) => {
        if (down) {
          const dx = e.clientX - down.x;
          if (Math.abs(dx) > 4) down.moved = true;
          if (down.moved) {
            this.timeline.classList.add("dragging");
            this.viewStart = down.start - (dx / this.timeline.clientWidth) * this.span;
            this.draw();
          }
        } else {
          this.showHover(e.clientX);
        }
      });
      this.timeline.addEventListener("pointerleave", () => { this.hover.hidden = true; });
      this.timeline.addEventListener("pointerup", (e) => {
        const was = down;
        down = null;
        this.timeline.classList.remove("dragging");
        if (!was) return;
        if (was.moved) this.load();
        else this.seek(this.timeAt(e.clientX));
      });
    }

    timeAt(clientX) {
      const box = this.timeline.getBoundingClientRect();
      return this.viewStart + ((clientX - box.left) / box.width) * this.span;
    }

    zoom(span, around) {
      const centre = around ?? (this.player.wallNow() ?? this.viewStart + this.span / 2);
      this.span = span;
      this.viewStart = centre - span / 2;
      this.root.querySelectorAll("[data-zoom]").forEach((o) => {
        const on = Number(o.dataset.zoom) === span;
        o.classList.toggle("active", on); o.setAttribute("aria-pressed", String(on));
      });
      this.load();
    }

    /* Seek to the instant, or to the next recording after it when it is in a gap. */
    seek(ms) {
      const inside = this.data.intervals.find((i) => Date.parse(i.start) <= ms && ms < Date.parse(i.end));
      const next = this.data.intervals.find((i) => Date.parse(i.start) > ms);
      const at = inside ? ms : next ? Date.parse(next.start) : ms;
      this.player.seekTo(at);
      this.drawCursor(at);
    }

    async load() {
      // the view and half a view either side (dragging shows them at once); an hour view is
      // 2 h, exact, a day view 2 days in buckets of 8 min (recordings/timeline.py)
      const from = Math.floor(this.viewStart - this.span / 2), to = Math.ceil(this.viewStart + 1.5 * this.span);
      this.draw();
      try {
        const r = await fetch(`${this.api}/timeline?from=${from}&to=${to}&stream=${this.stream}`,
          { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (!r.ok) return;
        this.data = await r.json();
      } catch { return; }
      this.draw();
    }

    autostart() {
      const last = this.data.intervals[this.data.intervals.length - 1];
      if (!last) { this.player.setState("idle", t("Nothing was recorded in this hour. Choose a day in the calendar.")); return; }
      const end = Date.parse(last.end), start = Date.parse(last.start);
      this.seek(Math.max(start, end - 60e3));
    }

    x(ms) { return ((ms - this.viewStart) / this.span) * 100; }

    draw() {
      const spans = [];
      for (const iv of this.data.intervals || []) {
        const a = Math.max(this.x(Date.parse(iv.start)), -1), b = Math.min(this.x(Date.parse(iv.end)), 101);
        if (b > a) spans.push(`<span style="left:${a}%;width:${Math.max(b - a, 0.15)}%"></span>`);
      }
      for (const ev of this.data.events || []) {
        const a = this.x(Date.parse(ev.start)), b = this.x(Date.parse(ev.end));
        if (b > -1 && a < 101) spans.push(`<span class="ev" data-event="${ev.events}" style="left:${a}%;width:${Math.max(b - a, 0.4)}%"></span>`);
      }
      this.track.innerHTML = spans.join("");
      const step = this.span <= HOUR ? 10 * 60e3 : 3 * HOUR;
      const ticks = [];
      for (let ms = Math.ceil(this.viewStart / step) * step; ms < this.viewStart + this.span; ms += step) {
        const d = new Date(ms);
        ticks.push(`<span style="left:${this.x(ms)}%">${pad(d.getHours())}:${pad(d.getMinutes())}</span>`);
      }
      this.ticks.innerHTML = ticks.join("");
      this.rangeEl.textContent = `${clock(this.viewStart, true)} – ${clock(this.viewStart + this.span, false)}`;
      this.drawCursor();
    }

    drawCursor(at) {
      const now = at ?? this.player.wallNow();
      if (now == null) { this.cursor.hidden = true; return; }
      const x = this.x(now);
      this.cursor.hidden = x < 0 || x > 100;
      this.cursor.style.left = `${x}%`;
      if (this.clockEl) this.clockEl.textContent = clock(now, true);
      this.root.dataset.position = String(Math.round(now));
    }

    async showHover(clientX) {
      const ms = this.timeAt(clientX);
      const inside = (this.data.intervals || []).some((i) => Date.parse(i.start) <= ms && ms < Date.parse(i.end));
      this.hover.hidden = !inside;
      if (!inside) return;
      const box = this.timeline.getBoundingClientRect();
      this.hover.style.left = `${clientX - box.left}px`;
      this.hover.querySelector("[data-hover-time]").textContent = clock(ms, false);
      const urls = await this.mediaUrls().catch(() => null);
      // one picture per 10 s of timeline: the worker caches what it decoded
      const at = Math.floor(ms / 10e3) * 10e3;
      if (urls) this.hover.querySelector("[data-thumb]").src = `${urls.base}/thumb.jpg?at=${at}&width=160`;
    }

    async loadDays() {
      const first = new Date(this.month.getFullYear(), this.month.getMonth(), 1);
      const last = new Date(this.month.getFullYear(), this.month.getMonth() + 1, 0);
      const title = this.root.querySelector("[data-month-title]");
      title.textContent = first.toLocaleDateString(document.documentElement.lang || undefined, { year: "numeric", month: "long" });
      let days = [];
      try {
        const r = await fetch(`${this.api}/days?from=${isoDay(first)}&to=${isoDay(last)}&tz=${encodeURIComponent(this.tz)}&stream=${this.stream}`,
          { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (r.ok) days = (await r.json()).days;
      } catch { /* the calendar stays empty */ }
      const has = new Set(days);
      const cells = [];
      const lead = (first.getDay() + 6) % 7; // Monday first
      for (let i = 0; i < lead; i++) cells.push("<span></span>");
      for (let d = 1; d <= last.getDate(); d++) {
        const iso = isoDay(new Date(first.getFullYear(), first.getMonth(), d));
        cells.push(`<button type="button" data-day="${iso}" class="${has.has(iso) ? "has" : ""}"${has.has(iso) ? "" : " disabled"}>${d}</button>`);
      }
      const grid = this.root.querySelector("[data-days]");
      grid.innerHTML = cells.join("");
      grid.querySelectorAll("button.has").forEach((b) => b.addEventListener("click", async () => {
        grid.querySelectorAll("button.selected").forEach((o) => o.classList.remove("selected"));
        b.classList.add("selected");
        const [y, m, d] = b.dataset.day.split("-").map(Number);
        this.span = DAY;
        this.viewStart = new Date(y, m - 1, d).getTime();
        this.zoom(DAY, this.viewStart + DAY / 2);
        await this.load();
        const firstRec = (this.data.intervals || []).find((i) => Date.parse(i.end) > this.viewStart);
        if (firstRec) this.seek(Math.max(Date.parse(firstRec.start), this.viewStart));
      }));
    }

    async download() {
      const q = (s) => this.root.querySelector(s);
      const status = q("[data-clip-status]");
      const from = new Date(q("[data-clip-from]").value).getTime(), to = new Date(q("[data-clip-to]").value).getTime();
      if (!(from < to)) { status.textContent = t("Choose a start before the end."); return; }
      const urls = await this.mediaUrls(true).catch(() => null);
      if (!urls) { status.textContent = t("You can no longer watch this camera."); return; }
      const a = document.createElement("a");
      a.href = `${urls.base}/clip.mp4?from=${from}&to=${to}`;
      a.download = "";
      document.body.appendChild(a);
      a.click();
      a.remove();
      status.textContent = t("Your download has started.");
    }
  }

  function start() {
    document.querySelectorAll("[data-playback]").forEach((el) => { if (!el.playbackPage) new PlaybackPage(el); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
