// kimi-sdk.js — a dependency-free ES module for the kimi-gateway app API.
// Works in browsers and in Node 20+ (global fetch, ReadableStream, TextDecoder).
//
//   import { KimiClient } from './kimi-sdk.js';
//   const kimi = new KimiClient({ baseURL: 'https://api.example.com', apiKey: 'k' });
//   const { message } = await kimi.chat('Hello');

/**
 * The one error type of the SDK.
 * @property {number} status      HTTP status (0 when the request never got an answer)
 * @property {number|null} retryAfter  seconds to wait, for 429
 * @property {string|null} requestId   the gateway's X-Request-Id, for support
 */
export class KimiError extends Error {
  constructor(message, { status = 0, retryAfter = null, requestId = null, body = null } = {}) {
    super(message);
    this.name = 'KimiError';
    this.status = status;
    this.retryAfter = retryAfter;
    this.requestId = requestId;
    this.body = body;
  }
}

/**
 * An incremental parser for text/event-stream (WHATWG HTML §9.2.6): events
 * split across reads, LF / CR / CRLF line ends, `:` comments, multi-line data.
 */
export class SSEParser {
  constructor() {
    this.buffer = '';
    this.data = [];
    this.event = null;
    this.pendingCR = false;
  }

  /**
   * @param {string} text  decoded text, any piece of the stream
   * @returns {{event: string|null, data: string}[]} events completed by it
   */
  feed(text) {
    const out = [];
    let s = this.buffer + text;
    if (this.pendingCR && s.startsWith('\n')) s = s.slice(1);
    this.pendingCR = false;
    let start = 0;
    for (let i = 0; i < s.length; i++) {
      const c = s[i];
      if (c !== '\n' && c !== '\r') continue;
      this.#line(s.slice(start, i), out);
      if (c === '\r') {
        if (i + 1 < s.length) { if (s[i + 1] === '\n') i++; } else this.pendingCR = true;
      }
      start = i + 1;
    }
    this.buffer = s.slice(start);
    return out;
  }

  #line(line, out) {
    if (line === '') {
      if (this.data.length) out.push({ event: this.event, data: this.data.join('\n') });
      this.data = [];
      this.event = null;
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
  }
}

/** A client for one gateway. */
export class KimiClient {
  /**
   * @param {object} [options]
   * @param {string} [options.baseURL='']  the gateway's origin ('' = same origin)
   * @param {string} [options.apiKey]      sent as x-api-key when set
   * @param {typeof fetch} [options.fetch] a fetch implementation (default: global fetch)
   */
  constructor({ baseURL = '', apiKey = '', fetch: fetchImpl } = {}) {
    this.baseURL = baseURL.replace(/\/+$/, '');
    this.apiKey = apiKey;
    this.fetch = fetchImpl || globalThis.fetch.bind(globalThis);
  }

  #headers(json) {
    const h = {};
    if (json) h['Content-Type'] = 'application/json';
    if (this.apiKey) h['x-api-key'] = this.apiKey;
    return h;
  }

  async #request(method, path, body, signal) {
    let res;
    try {
      // FormData (a document upload) sets its own multipart Content-Type.
      const form = typeof FormData !== 'undefined' && body instanceof FormData;
      res = await this.fetch(this.baseURL + path, {
        method, signal, headers: this.#headers(body !== undefined && !form),
        body: body === undefined ? undefined : (form ? body : JSON.stringify(body)),
      });
    } catch (e) {
      if (e && e.name === 'AbortError') throw e;
      throw new KimiError(`Cannot reach the gateway: ${e && e.message ? e.message : e}`, { status: 0 });
    }
    if (!res.ok) throw await KimiClient.#error(res);
    return res;
  }

  static async #error(res) {
    let body = null;
    let message = `HTTP ${res.status}`;
    try {
      body = await res.json();
      if (typeof body.error === 'string') message = body.error;
      else if (body.error && body.error.message) message = body.error.message;
    } catch { /* not JSON: keep the status line */ }
    const ra = res.headers.get('retry-after');
    return new KimiError(message, {
      status: res.status, body,
      retryAfter: ra !== null && ra !== '' && !Number.isNaN(Number(ra)) ? Number(ra) : null,
      requestId: res.headers.get('x-request-id'),
    });
  }

  /** @returns {Promise<object>} the gateway's /health document */
  async health() {
    return (await this.#request('GET', '/health')).json();
  }

  /**
   * This key's usage today and this month (UTC), its budget and limits.
   * @returns {Promise<{key: string|null, today: object, month: object, budget: object, limits: object}>}
   */
  async usage() {
    return (await (await this.#request('GET', '/api/usage')).json()).data;
  }

  /** @returns {Promise<{id: string, context_length: number, default: boolean}[]>} the models this key may use */
  async models() {
    return (await (await this.#request('GET', '/api/chat/models')).json()).data;
  }

  /**
   * One question, one answer.
   * @param {string} message
   * @param {{model?: string, system?: string, temperature?: number, max_tokens?: number, signal?: AbortSignal}} [opts]
   * @returns {Promise<{message: string, usage: object, model: string}>}
   */
  async chat(message, opts = {}) {
    const { signal, ...rest } = opts;
    return KimiClient.#timed(await this.#request('POST', '/api/chat/completion', { message, ...rest }, signal));
  }

  /** The answer's data, with `serverTiming: {gateway, upstream}` (ms) from the gateway's Server-Timing header. */
  static async #timed(res) {
    const data = (await res.json()).data;
    const timing = {};
    for (const part of (res.headers.get('server-timing') || '').split(',')) {
      const m = /^\s*(\w+);dur=([\d.]+)/.exec(part);
      if (m) timing[m[1]] = Number(m[2]);
    }
    if (data && Object.keys(timing).length) data.serverTiming = timing;
    return data;
  }

  /**
   * A conversation: the whole history, answered by the assistant's next turn.
   * @param {{role: string, content: string}[]} messages
   * @param {{model?: string, temperature?: number, max_tokens?: number, signal?: AbortSignal}} [opts]
   * @returns {Promise<{message: string, usage: object, model: string}>}
   */
  async chatWithHistory(messages, opts = {}) {
    const { signal, ...rest } = opts;
    return KimiClient.#timed(await this.#request('POST', '/api/chat/history', { messages, ...rest }, signal));
  }

  /**
   * A streamed answer. Resolves with the whole text and usage when the
   * stream ends; `signal` (an AbortController's) cancels it, and the gateway
   * stops the upstream generation when it sees the client leave.
   * @param {string|{role: string, content: string}[]} messagesOrText
   * @param {{model?: string, system?: string, temperature?: number,
   *          onMessage?: (delta: string, text: string) => void,
   *          onReasoning?: (delta: string) => void,
   *          onComplete?: (result: {message: string, usage: object|null}) => void,
   *          onError?: (error: KimiError) => void,
   *          signal?: AbortSignal}} [opts]
   * @returns {Promise<{message: string, usage: object|null}>}
   */
  async chatStream(messagesOrText, opts = {}) {
    const { onMessage, onReasoning, onComplete, onError, signal, ...rest } = opts;
    // Usage and reasoning events come only when asked for (a Node-era
    // client that reads every event's `content` must not get them).
    return this.#stream(() => this.#request('POST', '/api/chat/stream',
      { messages: messagesOrText, include: ['usage', 'reasoning'], ...rest }, signal),
    { onMessage, onReasoning, onComplete, onError });
  }

  /**
   * A question about a long document, processed once by the gateway (a
   * document it has seen is answered from its cache: `document.cached`).
   * @param {File|Blob|string} fileOrId  the document, or the id of a file uploaded earlier through /v1/files
   * @param {string} message
   * @param {{model?: string, system?: string, history?: {role: string, content: string}[],
   *          max_tokens?: number, stream?: boolean, filename?: string,
   *          onDocument?: (info: {document: object, model: string}) => void,
   *          onMessage?: (delta: string, text: string) => void,
   *          onComplete?: (result: object) => void, onError?: (error: KimiError) => void,
   *          signal?: AbortSignal}} [opts]  `model` defaults to "auto": the smallest model whose context holds it
   * @returns {Promise<{message: string, usage: object, model: string,
   *          document: {fileId: string|null, filename: string, tokens: number, cached: boolean}, estimate?: number}>}
   *          (`fileId` is the id asked about, null for an uploaded document: its extraction upload is deleted)
   */
  async askDocument(fileOrId, message, opts = {}) {
    const { onDocument, onMessage, onReasoning, onComplete, onError, signal, stream, history, filename, ...rest } = opts;
    let body;
    if (typeof fileOrId === 'string') {
      body = { fileId: fileOrId, message, stream: Boolean(stream), history, include: ['usage', 'reasoning'], ...rest };
    } else {
      body = new FormData();
      body.append('message', message);
      for (const [k, v] of Object.entries(rest)) if (v !== undefined) body.append(k, String(v));
      if (history) body.append('history', JSON.stringify(history));
      if (stream) { body.append('stream', 'true'); body.append('include', 'usage,reasoning'); }
      body.append('file', fileOrId, filename || fileOrId.name || 'document');
    }
    const call = () => this.#request('POST', '/api/chat/document', body, signal);
    if (stream) return this.#stream(call, { onDocument, onMessage, onReasoning, onComplete, onError });
    try {
      const result = (await (await call()).json()).data;
      if (onComplete) onComplete(result);
      return result;
    } catch (e) {
      if (e && e.name === 'AbortError') throw e;
      const err = e instanceof KimiError ? e : new KimiError(String(e && e.message ? e.message : e));
      if (onError) onError(err);
      throw err;
    }
  }

  /** Reads an app-API stream to its end: `{document}`, `{content}`, `{reasoning}`, `{usage}`, `{error}`, `[DONE]`. */
  async #stream(call, { onDocument, onMessage, onReasoning, onComplete, onError }) {
    let text = '';
    let usage = null;
    let lead = {};
    try {
      const res = await call();
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      const parser = new SSEParser();
      let done = false;
      while (!done) {
        const { value, done: end } = await reader.read();
        if (end) break;
        for (const ev of parser.feed(decoder.decode(value, { stream: true }))) {
          if (ev.data === '[DONE]') { done = true; break; }
          let obj;
          try { obj = JSON.parse(ev.data); } catch { continue; }
          if (typeof obj.content === 'string') {
            text += obj.content;
            if (onMessage) onMessage(obj.content, text);
          } else if (obj.document) {
            lead = obj;
            if (onDocument) onDocument(obj);
          } else if (typeof obj.reasoning === 'string') {
            if (onReasoning) onReasoning(obj.reasoning);
          } else if (obj.usage) {
            usage = obj.usage;
          } else if (obj.error !== undefined) {
            throw new KimiError(typeof obj.error === 'string' ? obj.error : JSON.stringify(obj.error),
              { status: res.status, requestId: res.headers.get('x-request-id') });
          }
        }
      }
      if (done) await reader.cancel().catch(() => {});
      else throw new KimiError('The stream ended before it was complete', { status: res.status });
      const result = { message: text, usage, ...lead };
      if (onComplete) onComplete(result);
      return result;
    } catch (e) {
      if (e && e.name === 'AbortError') throw e; // the caller asked for it: not an error
      const err = e instanceof KimiError ? e : new KimiError(String(e && e.message ? e.message : e));
      if (onError) onError(err);
      throw err;
    }
  }
}

export default KimiClient;
