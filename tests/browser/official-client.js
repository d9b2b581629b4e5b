// Pipecat's own browser client with its WebSocket transport, as an app would use it.
// tests/test_serve_browser.py bundles this file with esbuild and drives it in Chromium.
import { PipecatClient } from "@pipecat-ai/client-js";
import { WavMediaManager, WebSocketTransport } from "@pipecat-ai/websocket-transport";

const seen = (window.official = {
  ready: null, transcripts: [], outputs: [], llmText: "", botStarted: 0, botStopped: 0, metrics: [], errors: [],
});

const client = new PipecatClient({
  // WavMediaManager records and plays in the page itself (no Daily call needed):
  // 512-sample microphone chunks at 16 kHz; the bot plays at 24 kHz.
  transport: new WebSocketTransport({ mediaManager: new WavMediaManager(512, 16000), recorderSampleRate: 16000 }),
  enableMic: true,
  enableCam: false,
  callbacks: {
    onBotReady: (data) => { seen.ready = data; },
    onUserTranscript: (data) => seen.transcripts.push(data),
    onBotOutput: (data) => seen.outputs.push(data.text),
    onBotLlmText: (data) => { seen.llmText += data.text; },
    onBotStartedSpeaking: () => { seen.botStarted++; },
    onBotStoppedSpeaking: () => { seen.botStopped++; },
    onMetrics: (data) => seen.metrics.push(data),
    onError: (message) => seen.errors.push(message.data),
  },
});

window.officialClient = {
  connect: (wsUrl) => client.connect({ wsUrl }).then(() => "connected"),
  sendText: (text) => client.sendText(text),
  ping: () => client.sendClientRequest("ping", {}),
  disconnect: () => client.disconnect(),
};
