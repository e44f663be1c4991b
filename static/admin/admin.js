// The admin console (issue #31): keys as data over /api/admin/keys, budgets
// from each key's budgetUse, tokens per day from /api/admin/usage, the
// upstream pool from /health. Everything the gateway returns is set as
// textContent (key names and notes come from other admins); the admin key
// lives in sessionStorage only.
const $ = (id) => document.getElementById(id);
const KEY_STORE = 'kimi-gateway.adminKey';
let keys = [];
let editing = null; // the key being edited, or null when creating

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const headers = { 'x-api-key': sessionStorage.getItem(KEY_STORE) || '' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let r;
  try {
    r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, `The gateway cannot be reached: ${e.message}`);
  }
  let json = null;
  try { json = await r.json(); } catch { /* not JSON: said below */ }
  if (!r.ok) {
    const message = json && (typeof json.error === 'string' ? json.error : json.error && json.error.message);
    throw new ApiError(r.status, message || `HTTP ${r.status}`);
  }
  return json;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function showError(box, err) {
  box.hidden = !err;
  box.textContent = err ? (err.status ? `${err.status} — ${err.message}` : String(err.message || err)) : '';
}

// MARK: sign in

async function signIn(key) {
  sessionStorage.setItem(KEY_STORE, key);
  try {
    await loadKeys();
  } catch (e) {
    sessionStorage.removeItem(KEY_STORE);
    const why = e.status === 401 ? 'That key is not valid.'
      : e.status === 403 ? 'That key is not an admin key.' : e.message;
    showError($('signInError'), { message: `${e.status ? e.status + ' — ' : ''}${why}` });
    return;
  }
  showError($('signInError'), null);
  $('signIn').hidden = true;
  $('console').hidden = false;
  $('signOut').hidden = false;
  loadMe();
  loadHealth();
}

function signOut() {
  sessionStorage.removeItem(KEY_STORE);
  location.reload();
}

async function loadMe() {
  try {
    const me = (await api('GET', '/api/keys/me')).data;
    $('who').textContent = `signed in as ${me.name}`;
  } catch { $('who').textContent = ''; }
}

// MARK: upstream pool

async function loadHealth() {
  const pill = $('health');
  let h;
  try {
    const r = await fetch('/health', { cache: 'no-store' });
    h = await r.json();
  } catch (e) {
    pill.textContent = 'unreachable';
    pill.className = 'pill pill-bad';
    return;
  }
  pill.textContent = `${h.status} · v${h.version}`;
  pill.className = `pill ${h.status === 'healthy' ? 'pill-ok' : h.status === 'degraded' ? 'pill-warn' : 'pill-bad'}`;
  $('poolState').textContent = `${h.upstream}${h.simulated ? ' (simulator)' : ''} · state: ${h.state && h.state.backend}`;
  const rows = $('poolRows');
  rows.replaceChildren();
  for (const state of ['healthy', 'cooling', 'disabled']) {
    for (const k of (h.keys && h.keys[state]) || []) {
      rows.append(el('tr', {},
        el('td', { text: k.name }), el('td', { class: 'mono', text: k.fingerprint }),
        el('td', {}, el('span', { class: `tag tag-${state}`, text: state })),
        el('td', { text: k.reason || '' }), el('td', { text: k.retryInSeconds === undefined ? '' : `${k.retryInSeconds} s` })));
    }
  }
}

// MARK: keys

async function loadKeys() {
  // body[data-busy] while the table is being reloaded (what the UI test waits out).
  document.body.dataset.busy = '1';
  try {
    keys = (await api('GET', '/api/admin/keys')).data;
    renderKeys();
  } finally {
    delete document.body.dataset.busy;
  }
}

function limitsText(k) {
  const parts = [];
  const r = k.rateLimit;
  if (r && r.maxRequests) parts.push(`${r.maxRequests} req / ${r.windowMs / 1000} s`);
  if (r && r.tokensPerMinute) parts.push(`${r.tokensPerMinute} tok/min`);
  if (k.maxConcurrent) parts.push(`${k.maxConcurrent} at once`);
  return parts.join(' · ') || 'defaults';
}

const BUDGETS = [['day', 'tokens today'], ['month', 'tokens this month'], ['costDay', 'spent today'], ['costMonth', 'spent this month']];

function budgetCell(k) {
  const cell = el('td', { class: 'budgets' });
  const use = k.budgetUse || {};
  for (const [name, label] of BUDGETS) {
    const b = use[name];
    if (!b) continue;
    const money = name.startsWith('cost');
    const fmt = (v) => (money ? Number(v).toFixed(4).replace(/0+$/, '').replace(/\.$/, '') : Number(v).toLocaleString('en'));
    const meter = el('meter', { min: '0', max: String(b.limit), value: String(Math.min(b.used, b.limit)),
      low: String(b.limit * 0.7), high: String(b.limit * 0.9), optimum: '0', 'data-budget': name });
    cell.append(el('div', { class: 'budget', title: `renews ${b.renewsAt}` }, meter,
      el('span', { text: `${fmt(b.used)} / ${fmt(b.limit)} ${label} · ${fmt(b.left)} left` })));
  }
  if (!cell.childElementCount) cell.textContent = 'none';
  return cell;
}

function when(iso) {
  if (!iso) return '—';
  return iso.replace('T', ' ').replace(/:\d\dZ$/, ' UTC');
}

function renderKeys() {
  const showRevoked = $('showRevoked').checked;
  const rows = $('keyRows');
  rows.replaceChildren();
  const shown = keys.filter((k) => showRevoked || k.state !== 'revoked');
  $('keyCount').textContent = `${shown.length} shown of ${keys.length}`;
  for (const k of shown) {
    const state = k.source === 'config' ? 'config' : k.state;
    const actions = el('td', { class: 'actions' });
    actions.append(el('button', { type: 'button', class: 'link', text: 'Usage', 'data-action': 'usage', onclick: () => showChart(k) }));
    if (k.source !== 'config' && k.state !== 'revoked') {
      actions.append(
        el('button', { type: 'button', class: 'link', text: 'Edit', 'data-action': 'edit', onclick: () => openForm(k) }),
        el('button', { type: 'button', class: 'link', text: 'Rotate', 'data-action': 'rotate', onclick: () => rotate(k) }),
        el('button', { type: 'button', class: 'link danger', text: 'Revoke', 'data-action': 'revoke', onclick: () => revoke(k) }));
    }
    const name = el('td', {}, el('strong', { text: k.name }));
    if (k.note) name.append(el('div', { class: 'note', text: k.note }));
    name.append(el('div', { class: 'mono note', text: k.id }));
    rows.append(el('tr', { 'data-id': k.id, 'data-name': k.name },
      name, el('td', { text: k.role }), el('td', { text: (k.models || []).join(', ') || 'all' }),
      el('td', { text: limitsText(k) }), budgetCell(k), el('td', { text: when(k.lastUsedAt) }),
      el('td', { text: when(k.expiresAt) }),
      el('td', {}, el('span', { class: `tag tag-${state}`, text: state })), actions));
  }
}

// MARK: create and edit

const form = () => $('keyForm');

function openForm(k) {
  editing = k || null;
  const f = form();
  f.reset();
  showError($('keyFormError'), null);
  $('keyFormTitle').textContent = k ? `Edit ${k.name}` : 'New key';
  $('keySave').textContent = k ? 'Save' : 'Create';
  if (k) {
    const r = k.rateLimit || {};
    const b = k.budget || {};
    const set = (name, v) => { f.elements[name].value = v === undefined || v === null ? '' : String(v); };
    set('name', k.name); set('role', k.role); set('models', (k.models || []).join(', '));
    set('maxRequests', r.maxRequests); set('windowMs', r.windowMs); set('tokensPerMinute', r.tokensPerMinute);
    set('maxConcurrent', k.maxConcurrent); set('tokensPerDay', b.tokensPerDay); set('tokensPerMonth', b.tokensPerMonth);
    set('costPerDay', b.costPerDay); set('costPerMonth', b.costPerMonth); set('note', k.note);
    set('expiresAt', k.expiresAt ? k.expiresAt.replace(/:\d\dZ$/, '').replace('Z', '') : '');
    f.elements.enabled.checked = k.state !== 'disabled';
  }
  $('keyDialog').showModal();
}

function formBody() {
  const f = form().elements;
  const num = (name) => (f[name].value.trim() === '' ? null : Number(f[name].value));
  const body = { name: f.name.value.trim(), role: f.role.value };
  const models = f.models.value.split(',').map((s) => s.trim()).filter(Boolean);
  body.models = models.length ? models : null;
  const rate = {};
  if (num('maxRequests') !== null) rate.maxRequests = num('maxRequests');
  if (num('windowMs') !== null) rate.windowMs = num('windowMs');
  if (num('tokensPerMinute') !== null) rate.tokensPerMinute = num('tokensPerMinute');
  body.rateLimit = Object.keys(rate).length ? rate : null;
  const budget = {};
  for (const n of ['tokensPerDay', 'tokensPerMonth', 'costPerDay', 'costPerMonth']) if (num(n) !== null) budget[n] = num(n);
  body.budget = Object.keys(budget).length ? budget : null;
  body.maxConcurrent = num('maxConcurrent');
  body.expiresAt = f.expiresAt.value ? `${f.expiresAt.value.length === 16 ? f.expiresAt.value + ':00' : f.expiresAt.value}Z` : null;
  body.note = f.note.value.trim() || null;
  if (editing) body.enabled = f.enabled.checked;
  else for (const k of Object.keys(body)) if (body[k] === null) delete body[k];
  return body;
}

async function saveForm(event) {
  event.preventDefault();
  try {
    if (editing) {
      await api('PATCH', `/api/admin/keys/${encodeURIComponent(editing.id)}`, formBody());
    } else {
      const created = (await api('POST', '/api/admin/keys', formBody())).data;
      showSecret(`New key: ${created.name}`, created.key);
    }
  } catch (e) {
    showError($('keyFormError'), e);
    return;
  }
  $('keyDialog').close();
  await refresh();
}

function showSecret(title, secret) {
  $('secretTitle').textContent = title;
  $('secret').textContent = secret;
  $('copySecret').textContent = 'Copy';
  $('secretBox').hidden = false;
  $('secretBox').scrollIntoView({ block: 'nearest' });
}

async function copySecret() {
  const text = $('secret').textContent;
  try {
    await navigator.clipboard.writeText(text);
    $('copySecret').textContent = 'Copied';
  } catch {
    // No clipboard (an insecure origin, a denied permission): select it for Ctrl+C.
    const range = document.createRange();
    range.selectNodeContents($('secret'));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    $('copySecret').textContent = 'Selected: press Ctrl+C';
  }
}

function hideSecret() {
  $('secret').textContent = '';
  $('secretBox').hidden = true;
}

// MARK: rotate and revoke

function confirmDialog(title, text, { grace = false, ok = 'OK' } = {}) {
  $('confirmTitle').textContent = title;
  $('confirmText').textContent = text;
  $('graceRow').hidden = !grace;
  $('confirmOk').textContent = ok;
  const d = $('confirmDialog');
  d.returnValue = '';
  d.showModal();
  return new Promise((resolve) => d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true }));
}

async function rotate(k) {
  if (!await confirmDialog(`Rotate ${k.name}?`, 'A new secret is issued. The old one stops working when the grace ends.', { grace: true, ok: 'Rotate' })) return;
  try {
    const r = (await api('POST', `/api/admin/keys/${encodeURIComponent(k.id)}/rotate`, { graceSeconds: Number($('grace').value || 0) })).data;
    showSecret(`New secret for ${r.name}`, r.key);
  } catch (e) { showError($('error'), e); }
  await refresh();
}

async function revoke(k) {
  if (!await confirmDialog(`Revoke ${k.name}?`, 'This cannot be undone: the key stops working on every gateway process within a second. Its usage stays in the ledger.', { ok: 'Revoke' })) return;
  try {
    await api('DELETE', `/api/admin/keys/${encodeURIComponent(k.id)}`);
  } catch (e) { showError($('error'), e); }
  await refresh();
}

// MARK: tokens per day

const DAY_MS = 86400000;

async function showChart(k) {
  const today = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate());
  const from = new Date(today - 29 * DAY_MS).toISOString().replace(/\.\d+Z$/, 'Z');
  let rows;
  try {
    rows = (await api('GET', `/api/admin/usage?groupBy=day&key=${encodeURIComponent(k.id)}&from=${from}`)).data.rows;
  } catch (e) { showError($('error'), e); return; }
  const byDay = new Map();
  for (const r of rows) byDay.set(r.group, (byDay.get(r.group) || 0) + r.totalTokens);
  const days = [];
  for (let i = 0; i < 30; i++) {
    const d = new Date(today - (29 - i) * DAY_MS).toISOString().slice(0, 10);
    days.push([d, byDay.get(d) || 0]);
  }
  drawChart(days);
  $('chartKey').textContent = k.name;
  const total = days.reduce((s, [, n]) => s + n, 0);
  $('chartTotal').textContent = `${total.toLocaleString('en')} tokens`;
  $('chartBox').hidden = false;
  $('chartBox').dataset.key = k.id;
  $('chartBox').scrollIntoView({ block: 'nearest' });
}

function drawChart(days) {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = $('chart');
  svg.replaceChildren();
  const [W, H, left, bottom, top] = [900, 220, 60, 24, 10];
  const max = Math.max(1, ...days.map(([, n]) => n));
  const slot = (W - left) / days.length;
  const svgEl = (tag, attrs, text) => {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
    if (text !== undefined) n.textContent = text;
    return n;
  };
  svg.append(svgEl('line', { x1: left, y1: H - bottom, x2: W, y2: H - bottom, class: 'axis' }));
  svg.append(svgEl('text', { x: left - 6, y: top + 10, class: 'label end' }, max.toLocaleString('en')));
  svg.append(svgEl('text', { x: left - 6, y: H - bottom, class: 'label end' }, '0'));
  days.forEach(([day, n], i) => {
    const h = Math.round((n / max) * (H - bottom - top));
    const bar = svgEl('rect', { x: left + i * slot + 2, y: H - bottom - h, width: Math.max(1, slot - 4), height: h, class: 'bar', 'data-day': day, 'data-tokens': n });
    bar.append(svgEl('title', {}, `${day}: ${n.toLocaleString('en')} tokens`));
    svg.append(bar);
    if (i % 5 === 4 || i === 0) svg.append(svgEl('text', { x: left + i * slot + slot / 2, y: H - 6, class: 'label mid' }, day.slice(5)));
  });
}

async function refresh() {
  showError($('error'), null);
  try { await loadKeys(); } catch (e) { showError($('error'), e); }
  loadHealth();
}

// MARK: wiring

$('signInForm').addEventListener('submit', (e) => { e.preventDefault(); signIn($('adminKey').value.trim()); });
$('signOut').addEventListener('click', signOut);
$('refresh').addEventListener('click', refresh);
$('newKey').addEventListener('click', () => openForm(null));
$('showRevoked').addEventListener('change', renderKeys);
$('keyForm').addEventListener('submit', saveForm);
$('keyCancel').addEventListener('click', () => $('keyDialog').close());
$('copySecret').addEventListener('click', copySecret);
$('hideSecret').addEventListener('click', hideSecret);

loadHealth();
if (sessionStorage.getItem(KEY_STORE)) signIn(sessionStorage.getItem(KEY_STORE));
