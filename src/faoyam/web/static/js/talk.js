/* faoyam talk-back: the browser's microphone to a doorbell (templates/devices/_controls.html).
 *
 * Press "Talk": the page asks for the microphone (getUserMedia), captures it with an
 * AudioWorklet (talk-worklet.js: 16-bit PCM at the AudioContext's rate, 20 ms chunks),
 * fetches a one-use media URL from data-url-endpoint (the web app checks the user may talk
 * through this doorbell) and opens that WebSocket to the media worker:
 *   send  text {"type": "start", "rate": <sample rate>}
 *   recv  text {"type": "ready", "codec": "pcma", "rate": 8000} — the doorbell is listening
 *   send  binary PCM chunks … then text {"type": "stop"}
 * The worker encodes G.711 for the doorbell (docs/decisions/talk-back.md). Press again to
 * stop. Close codes say what went wrong (CLOSE below); an expired URL is fetched again once.
 * element.talk.stats tells tests what happened.
 */
(() => {
  "use strict";

  const t = (msg, fmt) => (window.faoyam?.t ? window.faoyam.t(msg, fmt) : msg);
  const CLOSE = { ENDED: 1000, GOING_AWAY: 1001, BAD_REQUEST: 4400, BAD_TOKEN: 4401, FORBIDDEN: 4403,
                  OFFLINE: 4404, EXPIRED: 4410, NOT_SUPPORTED: 4422 };
  const MESSAGES = {
    [CLOSE.FORBIDDEN]: "You can no longer talk through this doorbell.",
    [CLOSE.BAD_TOKEN]: "You can no longer talk through this doorbell.",
    [CLOSE.OFFLINE]: "The doorbell did not answer. Check that it is online and try again.",
    [CLOSE.NOT_SUPPORTED]: "This device cannot talk back.",
  };

  function setup(root) {
    const button = root.querySelector("[data-talk-button]");
    const label = root.querySelector("[data-talk-label]");
    const status = root.querySelector("[data-talk-status]");
    const stats = { state: "idle", chunks: 0, bytes: 0, closeCode: null, rate: null, errors: [] };
    let session = null;

    function show(state, text) {
      stats.state = state;
      root.dataset.state = state;
      const on = state === "connecting" || state === "talking";
      button.setAttribute("aria-pressed", on ? "true" : "false");
      label.textContent = on ? t("Stop talking") : t("Talk");
      if (text !== undefined) status.textContent = text;
    }

    async function microphone() {
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true } });
      const audio = new AudioContext();
      await audio.audioWorklet.addModule("/static/js/talk-worklet.js");
      const source = audio.createMediaStreamSource(stream);
      const node = new AudioWorkletNode(audio, "talk-capture", { numberOfInputs: 1, numberOfOutputs: 1, channelCount: 1,
                                                               channelCountMode: "explicit" });
      const mute = audio.createGain();
      mute.gain.value = 0; // the graph must reach the destination for the worklet to run; nothing is heard here
      source.connect(node).connect(mute).connect(audio.destination);
      return { stream, audio, node };
    }

    async function open(s, retried) {
      const r = await window.faoyam.api("GET", root.dataset.urlEndpoint);
      if (s !== session) return;
      if (!r.ok) { stop(); show("error", window.faoyam.problemText(r.problem)); stats.errors.push(r.problem?.code || r.status); return; }
      const ws = new WebSocket(r.data.url);
      ws.binaryType = "arraybuffer";
      s.ws = ws;
      ws.onopen = () => ws.send(JSON.stringify({ type: "start", rate: s.mic.audio.sampleRate }));
      ws.onmessage = (ev) => {
        if (typeof ev.data !== "string") return;
        let msg = null;
        try { msg = JSON.parse(ev.data); } catch { return; }
        if (msg.type === "ready" && s === session) {
          s.ready = true;
          show("talking", t("Talking… the doorbell plays your voice."));
        }
      };
      ws.onclose = (ev) => {
        stats.closeCode = ev.code;
        if (s !== session) return;
        if (ev.code === CLOSE.EXPIRED && !retried) { s.ready = false; open(s, true); return; }
        stop();
        if (MESSAGES[ev.code]) show("error", t(MESSAGES[ev.code]));
        else if (ev.code !== CLOSE.ENDED) show("error", t("Talking stopped. Try again."));
      };
    }

    async function start() {
      const s = { ws: null, mic: null, ready: false };
      session = s;
      show("connecting", t("Connecting to the doorbell…"));
      try {
        s.mic = await microphone();
      } catch (err) {
        stats.errors.push(String(err && err.name));
        if (s === session) { session = null; show("error", t("Allow the microphone to talk to the visitor.")); }
        return;
      }
      if (s !== session) { release(s); return; }
      stats.rate = s.mic.audio.sampleRate;
      s.mic.node.port.onmessage = (ev) => {
        if (!s.ready || !s.ws || s.ws.readyState !== WebSocket.OPEN) return;
        s.ws.send(ev.data);
        stats.chunks += 1;
        stats.bytes += ev.data.byteLength;
      };
      await open(s, false);
    }

    function release(s) {
      if (s.ws && s.ws.readyState === WebSocket.OPEN) {
        s.ws.send(JSON.stringify({ type: "stop" }));
        s.ws.close(1000);
      } else if (s.ws && s.ws.readyState === WebSocket.CONNECTING) {
        s.ws.close();
      }
      if (s.mic) {
        s.mic.stream.getTracks().forEach((track) => track.stop());
        s.mic.audio.close();
      }
    }

    function stop() {
      const s = session;
      session = null;
      if (s) release(s);
      show("idle", t("Press Talk and speak: the doorbell plays your voice."));
    }

    button.addEventListener("click", () => { if (session) stop(); else start(); });
    window.addEventListener("pagehide", () => { if (session) stop(); });
    root.talk = { stats, start, stop };
  }

  document.addEventListener("DOMContentLoaded", () => document.querySelectorAll("[data-talk]").forEach(setup));
})();
