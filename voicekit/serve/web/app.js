// voicekit's web client. It speaks the same wire as Pipecat's WebSocket transport:
// binary messages, each a protobuf pipecat.Frame holding microphone audio (16-bit PCM),
// bot audio (24 kHz mono 16-bit PCM) or an RTVI JSON message.
"use strict";

const RTVI_VERSION = "2.1.0";
const BOT_RATE = 24000;

// Counters for people and for tests (read window.voicekit).
const stats = (window.voicekit = {
  state: "idle", botReady: false, profile: "", micDevice: "", micRate: 0, micFrames: 0, userTranscripts: 0, userFinals: 0,
  botTexts: 0, botOutputs: 0, botAudioFrames: 0, botAudioBytes: 0, interruptions: 0, metrics: 0,
  errors: [], closeCode: null, closeReason: "",
});

// --- protobuf: just enough of pipecat.Frame ------------------------------------------

function pushVarint(out, value) {
  while (value > 0x7f) {
    out.push((value % 128) | 0x80);
    value = Math.floor(value / 128);
  }
  out.push(value);
}

function lengthDelimited(field, bytes) {
  const head = [];
  pushVarint(head, (field << 3) | 2);
  pushVarint(head, bytes.length);
  const out = new Uint8Array(head.length + bytes.length);
  out.set(head, 0);
  out.set(bytes, head.length);
  return out;
}

function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

function varintField(field, value) {
  const out = [];
  pushVarint(out, field << 3);
  pushVarint(out, value);
  return Uint8Array.from(out);
}

function encodeAudio(int16, sampleRate) {
  const pcm = new Uint8Array(int16.buffer, int16.byteOffset, int16.byteLength);
  const inner = concat([lengthDelimited(3, pcm), varintField(4, sampleRate), varintField(5, 1)]);
  return lengthDelimited(2, inner);
}

function encodeMessage(msg) {
  return lengthDelimited(4, lengthDelimited(1, new TextEncoder().encode(JSON.stringify(msg))));
}

function readVarint(buf, pos) {
  let value = 0, scale = 1, byte;
  do {
    if (pos >= buf.length) throw new Error("truncated varint");
    byte = buf[pos++];
    value += (byte & 0x7f) * scale;
    scale *= 128;
  } while (byte & 0x80);
  return [value, pos];
}

function readFields(buf) {
  const fields = {};
  let pos = 0;
  while (pos < buf.length) {
    let key, size;
    [key, pos] = readVarint(buf, pos);
    const field = Math.floor(key / 8), wire = key & 7;
    if (wire === 0) [fields[field], pos] = readVarint(buf, pos);
    else if (wire === 2) {
      [size, pos] = readVarint(buf, pos);
      fields[field] = buf.subarray(pos, pos + size);
      pos += size;
    } else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else throw new Error("unsupported wire type " + wire);
  }
  return fields;
}

function decodeFrame(buf) {
  const outer = readFields(buf);
  if (outer[2]) {
    const audio = readFields(outer[2]);
    const bytes = audio[3] || new Uint8Array(0);
    const copy = bytes.slice(); // aligned copy for Int16Array
    return { kind: "audio", pcm: new Int16Array(copy.buffer, 0, copy.byteLength >> 1) };
  }
  if (outer[4]) {
    const data = readFields(outer[4])[1];
    return { kind: "message", msg: JSON.parse(new TextDecoder().decode(data || new Uint8Array(0))) };
  }
  return { kind: "other" };
}

// --- page -------------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);
let ws = null, mic = null, player = null, userLine = null, botLine = null, lastId = 0;

function setStatus(text) { $("status").textContent = text; }

function showError(text) {
  stats.errors.push(text);
  $("error").textContent = text;
}

function addLine(who, cls) {
  const line = document.createElement("div");
  line.className = "line " + cls;
  const label = document.createElement("span");
  label.className = "who";
  label.textContent = who;
  const text = document.createElement("span");
  line.append(label, text);
  const log = $("log");
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.append(line);
  if (atBottom) log.scrollTop = log.scrollHeight; // follow the conversation unless the user scrolled up
  return text;
}

function send(type, data) {
  if (ws && ws.readyState === WebSocket.OPEN) {
    const msg = { label: "rtvi-ai", type, id: String(++lastId) };
    if (data !== undefined) msg.data = data;
    ws.send(encodeMessage(msg));
  }
}

// --- bot audio --------------------------------------------------------------------------

function startPlayer() {
  const ctx = new AudioContext();
  player = { ctx, next: 0, sources: new Set() };
}

function playBot(pcm) {
  if (!player || !pcm.length) return;
  const { ctx } = player;
  const buffer = ctx.createBuffer(1, pcm.length, BOT_RATE);
  const channel = buffer.getChannelData(0);
  for (let i = 0; i < pcm.length; i++) channel[i] = pcm[i] / 32768;
  const source = ctx.createBufferSource();
  source.buffer = buffer;
  source.connect(ctx.destination);
  // a little cushion when (re)starting, then back to back
  const at = player.next > ctx.currentTime ? player.next : ctx.currentTime + 0.06;
  source.start(at);
  player.next = at + buffer.duration;
  player.sources.add(source);
  source.onended = () => player && player.sources.delete(source);
}

function stopBot() {
  if (!player) return;
  for (const source of player.sources) {
    try { source.stop(); } catch (e) { /* already stopped */ }
  }
  player.sources.clear();
  player.next = 0;
}

// --- microphone -------------------------------------------------------------------------

async function listMics() {
  // device names are known only once the page may use a microphone
  const select = $("mic");
  const chosen = select.value;
  const devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "audioinput");
  select.replaceChildren(new Option("default", ""));
  devices.forEach((d, i) => {
    if (d.deviceId && d.deviceId !== "default") select.add(new Option(d.label || `microphone ${i + 1}`, d.deviceId));
  });
  if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
}

async function startMic() {
  const deviceId = $("mic").value;
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: {
      channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true,
      ...(deviceId ? { deviceId: { exact: deviceId } } : {}),
    },
  });
  stats.micDevice = stream.getAudioTracks()[0]?.label || "";
  listMics().catch(() => {});
  let ctx, source;
  try {
    ctx = new AudioContext({ sampleRate: 16000 }); // the browser resamples the microphone
    source = ctx.createMediaStreamSource(stream);
  } catch (e) {
    if (ctx) ctx.close();
    ctx = new AudioContext(); // some browsers only capture at the device rate: the server resamples
    source = ctx.createMediaStreamSource(stream);
  }
  await ctx.audioWorklet.addModule("mic-worklet.js");
  const node = new AudioWorkletNode(ctx, "mic-capture");
  const rate = ctx.sampleRate;
  stats.micRate = rate;
  node.port.onmessage = (event) => {
    const frame = event.data;
    let sum = 0;
    for (let i = 0; i < frame.length; i += 8) sum += Math.abs(frame[i]);
    $("meter").firstElementChild.style.width = Math.min(100, (sum / (frame.length / 8)) / 50) + "%";
    if (ws && ws.readyState === WebSocket.OPEN && stats.state !== "connecting") {
      ws.send(encodeAudio(frame, rate));
      stats.micFrames++;
    }
  };
  source.connect(node);
  mic = { stream, ctx, node };
}

function stopMic() {
  if (!mic) return;
  mic.stream.getTracks().forEach((track) => track.stop());
  mic.node.port.onmessage = null;
  mic.ctx.close();
  mic = null;
}

// --- RTVI -------------------------------------------------------------------------------

function onMessage(msg) {
  if (msg.label !== "rtvi-ai") return;
  const data = msg.data || {};
  switch (msg.type) {
    case "bot-ready":
      stats.botReady = true;
      stats.state = "ready";
      stats.profile = (data.about && data.about.profile) || "";
      $("profile").textContent = stats.profile ? `profile ${stats.profile}` : "";
      setStatus("connected: speak, or type below");
      $("text").disabled = $("send").disabled = false;
      break;
    case "user-transcription":
      stats.userTranscripts++;
      if (!userLine) userLine = addLine("You", "user");
      userLine.textContent = data.text;
      userLine.className = data.final ? "" : "interim";
      if (data.final) { stats.userFinals++; userLine = null; }
      break;
    case "bot-llm-started":
      botLine = addLine("Bot", "bot");
      break;
    case "bot-llm-text":
      stats.botTexts++;
      if (!botLine) botLine = addLine("Bot", "bot");
      botLine.textContent += data.text;
      break;
    case "bot-output":
      stats.botOutputs++;
      if (data.aggregated_by === "turn" && botLine && !botLine.textContent) botLine.textContent = data.text;
      break;
    case "bot-interrupted": {
      stats.interruptions++;
      stopBot();
      if (botLine) {
        const cut = document.createElement("span");
        cut.className = "cut";
        cut.textContent = "(interrupted)";
        botLine.after(cut);
      }
      break;
    }
    case "bot-stopped-speaking":
      botLine = null;
      break;
    case "metrics": {
      stats.metrics++;
      showMetrics([...(data.ttfb || []), ...(data.processing || [])]);
      break;
    }
    case "error":
      showError(data.error || "error");
      break;
    case "error-response":
      showError(data.error || "request failed");
      break;
  }
}

// What each RTVI metric measures, in words; processors are "role:backend" or "voicekit:figure".
const METRIC_NAMES = {
  stt: "speech end → text", llm: "text → first word", output: "first sentence → first audio",
  voice_to_voice: "you stop → bot speaks", turn: "whole turn", engine: "voicekit's own share",
};

function showMetrics(all) {
  const box = $("metrics");
  box.replaceChildren();
  for (const m of all) {
    const [kind, name] = m.processor.split(":");
    const key = kind === "voicekit" ? name : kind;
    const ms = m.value * 1000;
    const span = document.createElement("span");
    span.className = "figure";
    span.title = m.processor;
    span.textContent = `${METRIC_NAMES[key] || m.processor} ${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms` +
      (kind !== "voicekit" && name ? ` (${name})` : "");
    box.append(span);
  }
}

async function onFrame(event) {
  let frame;
  try {
    frame = decodeFrame(new Uint8Array(await event.data.arrayBuffer()));
  } catch (e) {
    showError("bad frame from the server: " + e.message);
    return;
  }
  if (frame.kind === "audio") {
    stats.botAudioFrames++;
    stats.botAudioBytes += frame.pcm.byteLength;
    playBot(frame.pcm);
  } else if (frame.kind === "message") {
    onMessage(frame.msg);
  }
}

// --- connect / disconnect ---------------------------------------------------------------

async function connect() {
  $("error").textContent = "";
  stats.state = "connecting";
  stats.botReady = false;
  setStatus("connecting…");
  $("connect").textContent = "Disconnect";
  $("connect").classList.add("live");
  startPlayer();
  const token = new URLSearchParams(location.search).get("token");
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws` +
    (token ? `?token=${encodeURIComponent(token)}` : "");
  ws = new WebSocket(url);
  ws.binaryType = "blob";
  ws.onmessage = onFrame;
  ws.onclose = (event) => {
    stats.closeCode = event.code;
    stats.closeReason = event.reason;
    if (stats.state !== "idle") {
      setStatus(`disconnected (${event.code}${event.reason ? ": " + event.reason : ""})`);
      teardown();
    }
  };
  ws.onopen = () => {
    stats.state = "waiting";
    send("client-ready", {
      version: RTVI_VERSION,
      about: { library: "voicekit-web", platform: navigator.platform || "web" },
    });
  };
  try {
    await startMic();
  } catch (e) {
    showError("microphone unavailable (" + e.message + "): you can still type");
  }
}

function teardown() {
  stats.state = "idle";
  stopMic();
  stopBot();
  if (player) { player.ctx.close(); player = null; }
  $("connect").textContent = "Connect";
  $("connect").classList.remove("live");
  $("text").disabled = $("send").disabled = true;
  userLine = botLine = null;
}

function disconnect() {
  if (ws) {
    send("disconnect-bot", {});
    ws.close(1000, "bye");
    ws = null;
  }
  setStatus("not connected");
  teardown();
}

$("connect").addEventListener("click", () => (stats.state === "idle" ? connect() : disconnect()));
$("mic").addEventListener("change", async () => {
  if (!mic) return; // used at the next connection
  stopMic();
  try {
    await startMic();
  } catch (e) {
    showError("that microphone cannot be used (" + e.message + ")");
  }
});
if (navigator.mediaDevices && navigator.mediaDevices.enumerateDevices) listMics().catch(() => {});
$("say").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  send("send-text", { content: text, options: { run_immediately: true, audio_response: true } });
  $("text").value = "";
});
