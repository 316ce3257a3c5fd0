/* AudioWorklet of talk.js: the microphone's samples (Float32, the context's rate) as
 * signed 16-bit little-endian PCM, mono, in messages of CHUNK samples (20 ms at 48 kHz).
 * Runs on the audio thread; the main thread forwards each message to the WebSocket. */
const CHUNK_MS = 20;

class TalkCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.size = Math.round(sampleRate * CHUNK_MS / 1000);
    this.buf = new Int16Array(this.size);
    this.fill = 0;
  }

  process(inputs) {
    const input = inputs[0];
    if (input && input.length) {
      const ch = input[0];
      for (let i = 0; i < ch.length; i++) {
        const s = Math.max(-1, Math.min(1, ch[i]));
        this.buf[this.fill++] = s < 0 ? s * 0x8000 : s * 0x7fff;
        if (this.fill === this.size) {
          this.port.postMessage(this.buf.buffer, [this.buf.buffer]);
          this.buf = new Int16Array(this.size);
          this.fill = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor("talk-capture", TalkCapture);
