// The JS SDK under Node's own test runner, against a running stack
// (nginx + gateway + simulator). KIMI_GATEWAY_URL and KIMI_SIM_URL are set
// by Tests/e2e/test_sdk_node.py, which starts the stack.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KimiClient, KimiError, SSEParser } from '../../static/kimi-sdk.js';

const BASE = process.env.KIMI_GATEWAY_URL;
const SIM = process.env.KIMI_SIM_URL;
const kimi = new KimiClient({ baseURL: BASE });

async function simState(id) {
  const r = await fetch(`${SIM}/sim/stats`);
  return (await r.json()).byId[id];
}

test('SSEParser: events split across reads, CRLF, comments, multi-line data', () => {
  const p = new SSEParser();
  const pieces = ['data: {"a"', ':1}\r', '\n\r\n: keep-alive\n\n', 'data: x\ndata: y\n', '\n', 'event: e\rdata: z\r\r'];
  const events = pieces.flatMap((s) => p.feed(s));
  assert.deepEqual(events.map((e) => e.data), ['{"a":1}', 'x\ny', 'z']);
  assert.equal(events[2].event, 'e');
});

test('health and models', async () => {
  const h = await kimi.health();
  assert.equal(h.status, 'healthy');
  const models = await kimi.models();
  assert.ok(models.some((m) => m.id === 'moonshot-v1-8k' && m.default));
});

test('chat answers one message', async () => {
  const r = await kimi.chat('hello from node [sim:tokens=7]', { temperature: 0.2 });
  assert.equal(r.message.split(' ').length, 7);
  assert.equal(r.usage.completion_tokens, 7);
});

test('chatWithHistory answers a conversation', async () => {
  const r = await kimi.chatWithHistory([
    { role: 'user', content: 'one' }, { role: 'assistant', content: 'two' }, { role: 'user', content: 'three [sim:tokens=4]' },
  ], { model: 'moonshot-v1-32k' });
  assert.equal(r.model, 'moonshot-v1-32k');
  assert.equal(r.message.split(' ').length, 4);
});

test('chatStream delivers deltas that add up to the answer', async () => {
  const prompt = 'stream from node [sim:tokens=25]';
  const deltas = [];
  let completed = null;
  const r = await kimi.chatStream(prompt, { onMessage: (d) => deltas.push(d), onComplete: (x) => { completed = x; } });
  const whole = await kimi.chat(prompt);
  assert.equal(deltas.length, 25);
  assert.equal(deltas.join(''), whole.message);
  assert.equal(r.message, whole.message);
  assert.equal(r.usage.completion_tokens, 25);
  assert.deepEqual(completed, r);
});

test('errors are KimiError with status and message', async () => {
  await assert.rejects(kimi.chat(''), (e) => e instanceof KimiError && e.status === 400 && /must not be empty/.test(e.message));
  await assert.rejects(kimi.chat('x', { model: 'gpt-4' }), (e) => e.status === 400 && /not allowed/.test(e.message));
  await assert.rejects(kimi.chat('x [sim:error=503]'), (e) => e.status === 502);
  await assert.rejects(kimi.chat('x [sim:error=429]'), (e) => e.status === 429 && e.retryAfter === 2 && typeof e.requestId === 'string');
  // The upstream key now cools down for its Retry-After: the gateway answers
  // 429 with Retry-After, as the upstream would, and sends nothing upstream.
  let seen = null;
  await assert.rejects(kimi.chatStream('x', { onError: (e) => { seen = e; } }), KimiError);
  assert.ok(seen.status === 429 && seen.retryAfter >= 1, `status ${seen.status}`);
  await new Promise((r) => setTimeout(r, (seen.retryAfter + 0.2) * 1000));
});

test('an error inside a stream rejects with KimiError', async () => {
  await assert.rejects(kimi.chatStream('cut [sim:tokens=20,cut=4]'), (e) => e instanceof KimiError && /before \[DONE\]/.test(e.message));
});

test('an unreachable gateway is KimiError status 0', async () => {
  const dead = new KimiClient({ baseURL: 'http://127.0.0.1:9' });
  await assert.rejects(dead.health(), (e) => e instanceof KimiError && e.status === 0);
});

test('abort cancels a stream and the gateway sees the client leave', async () => {
  const id = `node-abort-${Date.now()}`;
  const ac = new AbortController();
  let n = 0;
  await assert.rejects(
    kimi.chatStream(`[sim:tokens=400,delay=30,id=${id}]`, { signal: ac.signal, onMessage: () => { if (++n === 5) ac.abort(); } }),
    (e) => e.name === 'AbortError',
  );
  let state;
  for (let i = 0; i < 100 && state !== 'client-left'; i++) {
    await new Promise((r) => setTimeout(r, 100));
    state = await simState(id);
  }
  assert.equal(state, 'client-left');
});

test('askDocument: a Blob asked twice is extracted once; streamed answers lead with the document', async () => {
  const doc = new Blob([`Node SDK document ${Date.now()} ${Math.random()}. The answer is forty-two.`], { type: 'text/plain' });
  const first = await kimi.askDocument(doc, 'What is the answer? [sim:tokens=5]', { filename: 'answer.txt' });
  assert.equal(first.document.cached, false);
  assert.equal(first.document.filename, 'answer.txt');
  assert.equal(first.model, 'moonshot-v1-8k');
  assert.ok(first.estimate > 0 && first.message.split(' ').length === 5);
  let lead = null;
  // The same bytes under the same name (the cache keys the declared type too).
  const second = await kimi.askDocument(doc, 'Again? [sim:tokens=3]', { filename: 'answer.txt', stream: true, onDocument: (d) => { lead = d; } });
  assert.equal(lead.document.cached, true);
  assert.equal(second.document.cached, true);
  assert.equal(second.message.split(' ').length, 3);
  // An uploaded document's extraction upload is gone upstream: no id to show.
  assert.equal(first.document.fileId, null);
  // By the id of a file uploaded through /v1/files.
  const form = new FormData();
  form.append('purpose', 'file-extract');
  form.append('file', doc, 'kept.txt');
  const file = await (await fetch(`${BASE}/v1/files`, { method: 'POST', body: form })).json();
  const byId = await kimi.askDocument(file.id, 'And by id? [sim:tokens=2]');
  assert.equal(byId.document.fileId, file.id);
  assert.equal(byId.document.filename, 'kept.txt');
});
