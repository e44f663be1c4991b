// The test console: every call goes through kimi-sdk.js, model output is
// only ever set as textContent (it is untrusted input).
import { KimiClient, KimiError } from './kimi-sdk.js';

const $ = (id) => document.getElementById(id);
const KEY_STORE = 'kimi-gateway.apiKey';
const history = [];
let controller = null;

const keyInput = $('apiKey');
keyInput.value = sessionStorage.getItem(KEY_STORE) || '';
keyInput.addEventListener('change', () => {
  sessionStorage.setItem(KEY_STORE, keyInput.value.trim());
  loadModels();
});

function client() {
  return new KimiClient({ baseURL: '', apiKey: keyInput.value.trim() });
}

function showError(err) {
  const box = $('error');
  box.hidden = false;
  box.textContent = describe(err);
}

function clearError() {
  $('error').hidden = true;
  $('error').textContent = '';
}

function describe(err) {
  if (!(err instanceof KimiError)) return `Unexpected error: ${err && err.message ? err.message : err}`;
  switch (true) {
    case err.status === 401: return `401 — API key missing or invalid. Enter a valid key in the settings. (${err.message})`;
    case err.status === 403: return `403 — ${err.message}`;
    case err.status === 429: return `429 — Rate limited. Try again in ${err.retryAfter ?? 'a few'} seconds. (${err.message})`;
    case err.status === 502 || err.status === 503: return `${err.status} — The upstream Kimi API is unavailable: ${err.message}`;
    case err.status === 504: return `504 — The upstream Kimi API timed out: ${err.message}`;
    case err.status === 0: return `The gateway cannot be reached: ${err.message}`;
    default: return `${err.status} — ${err.message}`;
  }
}

async function checkHealth() {
  const pill = $('health');
  try {
    const h = await client().health();
    pill.textContent = `${h.status} · v${h.version}`;
    pill.className = 'pill pill-ok';
    const up = $('upstream');
    up.textContent = `upstream: ${h.upstream}`;
    up.classList.toggle('simulated', Boolean(h.simulated));
  } catch (e) {
    pill.textContent = 'unreachable';
    pill.className = 'pill pill-bad';
    $('upstream').textContent = describe(e);
  }
}

async function loadModels() {
  const select = $('model');
  try {
    const models = await client().models();
    select.replaceChildren(...models.map((m) => {
      const o = document.createElement('option');
      o.value = m.id;
      o.textContent = `${m.id} (${Math.round(m.context_length / 1024)}k)`;
      o.selected = Boolean(m.default);
      return o;
    }));
    clearError();
  } catch (e) {
    const o = document.createElement('option');
    o.value = '';
    o.textContent = 'models unavailable';
    select.replaceChildren(o);
    showError(e);
  }
}

function bubble(role, text) {
  const empty = $('messages').querySelector('.empty');
  if (empty) empty.remove();
  const div = document.createElement('div');
  div.className = `msg ${role}`;
  const span = document.createElement('span');
  span.className = 'text';
  span.textContent = text;
  div.append(span);
  $('messages').append(div);
  div.scrollIntoView({ block: 'end' });
  return div;
}

function meta(div, { usage, firstMs, totalMs, model, stopped, serverTiming }) {
  const m = document.createElement('span');
  m.className = 'meta';
  const parts = [];
  if (model) parts.push(model);
  if (usage) parts.push(`tokens: ${usage.prompt_tokens ?? '?'} in / ${usage.completion_tokens ?? '?'} out`);
  if (firstMs !== undefined) parts.push(`first token ${firstMs} ms`);
  parts.push(`total ${totalMs} ms`);
  // The gateway's own share of the time (its Server-Timing header).
  if (serverTiming && serverTiming.gateway !== undefined) parts.push(`gateway ${serverTiming.gateway} ms, upstream ${serverTiming.upstream} ms`);
  if (stopped) parts.push('stopped');
  m.textContent = parts.join(' · ');
  div.append(m);
}

/** Document mode: the file's questions, the model the gateway chose, its token estimate, cached or not. */
function documentMeta(div, { model, document, totalMs, firstMs }) {
  const m = window.document.createElement('div');
  m.className = 'meta';
  const parts = [`model ${model} (auto)`];
  if (document) {
    parts.push(`≈${document.tokens} tokens`);
    parts.push(document.cached ? 'cached' : 'extracted');
  }
  if (firstMs !== undefined) parts.push(`first token ${firstMs} ms`);
  parts.push(`total ${totalMs} ms`);
  m.textContent = parts.join(' · ');
  div.append(m);
}
/** The key's usage and remaining budget (`GET /api/usage`), refreshed after each answer. */
async function showUsage() {
  const box = $('usage');
  try {
    const u = await client().usage();
    const n = (v) => Number(v).toLocaleString('en');
    const lines = [
      `${u.key ? `key ${u.key}` : 'no key'} · today ${n(u.today.totalTokens)} tokens (${n(u.today.requests)} requests)`,
      `this month ${n(u.month.totalTokens)} tokens`,
    ];
    if (u.budget.remainingToday !== null) lines.push(`budget left today ${n(u.budget.remainingToday)} of ${n(u.budget.tokensPerDay)}`);
    if (u.budget.remainingMonth !== null) lines.push(`budget left this month ${n(u.budget.remainingMonth)} of ${n(u.budget.tokensPerMonth)}`);
    if (u.limits.tokensPerMinute) lines.push(`limit ${n(u.limits.tokensPerMinute)} tokens/min`);
    box.textContent = lines.join('\n');
  } catch (e) {
    box.textContent = `usage unavailable: ${describe(e)}`;
  }
}

function setBusy(busy) {
  $('send').disabled = busy;
  $('stop').disabled = !busy;
}

function renderEmpty() {
  const p = document.createElement('p');
  p.className = 'empty';
  p.textContent = 'No messages yet. Ask something below.';
  $('messages').replaceChildren(p);
}

/** A user bubble, an empty assistant bubble to fill, and a fresh AbortController. */
function beginTurn(userText) {
  bubble('user', userText);
  const reply = bubble('assistant', '');
  controller = new AbortController();
  setBusy(true);
  return { reply, out: reply.querySelector('.text'), started: performance.now() };
}

async function askDocument(text) {
  const file = $('document').files[0];
  if (!file) { showError(new KimiError('Pick a document first.', { status: 400 })); return; }
  const stream = $('stream').checked;
  const system = $('system').value.trim() || undefined;
  const { reply, out, started } = beginTurn(`${text}  [${file.name}]`);
  let firstMs;
  try {
    const result = await client().askDocument(file, text, {
      stream, system, history: [...history], signal: controller.signal,
      onMessage: (_delta, full) => {
        if (firstMs === undefined) firstMs = Math.round(performance.now() - started);
        out.textContent = full;
      },
    });
    out.textContent = result.message;
    history.push({ role: 'user', content: text }, { role: 'assistant', content: result.message });
    documentMeta(reply, { model: result.model, document: result.document, firstMs, totalMs: Math.round(performance.now() - started) });
    showUsage();
  } catch (e) {
    if (!(e && e.name === 'AbortError')) {
      if (!out.textContent) reply.remove();
      showError(e);
    }
  } finally {
    controller = null;
    setBusy(false);
  }
}

async function send(text) {
  clearError();
  const mode = document.querySelector('input[name="mode"]:checked').value;
  if (mode === 'document') return askDocument(text);
  const multi = mode === 'multi';
  const stream = $('stream').checked;
  const model = $('model').value || undefined;
  const system = $('system').value.trim() || undefined;
  if (!multi) { history.length = 0; renderEmpty(); }
  const turn = [...history, { role: 'user', content: text }];
  if (system && multi) turn.unshift({ role: 'system', content: system });
  const { reply, out, started } = beginTurn(text);
  let firstMs;
  try {
    let result;
    if (stream) {
      reply.classList.add('streaming');
      result = await client().chatStream(multi ? turn : text, {
        model, system: multi ? undefined : system, signal: controller.signal,
        onMessage: (_delta, full) => {
          if (firstMs === undefined) firstMs = Math.round(performance.now() - started);
          out.textContent = full;
          reply.scrollIntoView({ block: 'end' });
        },
      });
    } else if (multi) {
      result = await client().chatWithHistory(turn, { model, signal: controller.signal });
    } else {
      result = await client().chat(text, { model, system, signal: controller.signal });
    }
    out.textContent = result.message;
    history.push({ role: 'user', content: text }, { role: 'assistant', content: result.message });
    meta(reply, { usage: result.usage, firstMs, totalMs: Math.round(performance.now() - started), model: result.model || model,
                  serverTiming: result.serverTiming });
    showUsage();
  } catch (e) {
    if (e && e.name === 'AbortError') {
      meta(reply, { firstMs, totalMs: Math.round(performance.now() - started), stopped: true });
      if (out.textContent) history.push({ role: 'user', content: text }, { role: 'assistant', content: out.textContent });
    } else {
      if (!out.textContent) reply.remove();
      showError(e);
    }
  } finally {
    reply.classList.remove('streaming');
    controller = null;
    setBusy(false);
  }
}

$('composer').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = $('input').value.trim();
  if (!text || controller) return;
  $('input').value = '';
  send(text);
});
$('input').addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) $('composer').requestSubmit();
});
$('stop').addEventListener('click', () => { if (controller) controller.abort(); });
$('clear').addEventListener('click', () => { history.length = 0; renderEmpty(); clearError(); });
for (const radio of document.querySelectorAll('input[name="mode"]')) {
  radio.addEventListener('change', () => {
    const doc = document.querySelector('input[name="mode"]:checked').value === 'document';
    $('documentBox').hidden = !doc;
    $('model').disabled = doc; // the gateway picks the model by the document's size
    history.length = 0;
    renderEmpty();
  });
}
$('document').addEventListener('change', () => { history.length = 0; renderEmpty(); });

renderEmpty();
checkHealth();
loadModels();
