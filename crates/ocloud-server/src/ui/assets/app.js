// ocloud's web interface: a file browser over the service's own API (/ui/api/… is /cloud/v1/…
// with the session's token). Plain JavaScript, no build step, no third-party code. Large
// folders arrive a page at a time; uploads stream the File objects (never read into memory);
// everything that fails says why, in the API's own words.
'use strict';

const $ = (sel, root = document) => root.querySelector(sel);
const csrf = () => $('meta[name="csrf-token"]')?.content || '';
const PAGE = 200;

// ---------- theme (every page) ----------
const THEME_KEY = 'ocloud-theme';
function applyTheme(t) {
  if (t) document.documentElement.dataset.theme = t; else delete document.documentElement.dataset.theme;
}
applyTheme(localStorage.getItem(THEME_KEY));
function isDark() {
  const t = document.documentElement.dataset.theme;
  return t ? t === 'dark' : matchMedia('(prefers-color-scheme: dark)').matches;
}
function toggleTheme() {
  const next = isDark() ? 'light' : 'dark';
  localStorage.setItem(THEME_KEY, next);
  applyTheme(next);
}

// ---------- messages ----------
let toastTimer;
function toast(text, kind = 'info') {
  const t = $('#toast');
  if (!t) return;
  t.textContent = text;
  t.className = `toast show ${kind}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.className = 'toast'; }, kind === 'error' ? 8000 : 3500);
}

// The API's words for a failure: the service's detail (`X-Ocloud-Detail`: "not enough free
// space: …", "an item named … already exists"), else the error's description, message, status.
async function apiError(res, detail) {
  let body = {};
  try { body = await res.json(); } catch (_) { /* not JSON */ }
  const e = body.error && typeof body.error === 'object' ? body.error : body;
  const words = detail || res.headers.get('x-ocloud-detail') || e.description || e.message
    || (typeof body.error === 'string' ? body.error : '') || res.statusText;
  const err = new Error(words || `HTTP ${res.status}`);
  err.status = res.status;
  err.code = e.code;
  return err;
}

async function api(method, path, body) {
  const init = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
  if (method !== 'GET') init.headers['X-Csrf-Token'] = csrf();
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(`/ui/api${path}`, init);
  } catch (_) {
    throw new Error('The service cannot be reached; it may be restarting. Try again in a moment.');
  }
  if (res.status === 401) { location.href = '/ui/signin'; throw new Error('Signed out'); }
  if (!res.ok) throw await apiError(res);
  return res.status === 204 ? null : res.json();
}

// Content URLs of the API, as the gateway serves them.
const viaGateway = (url) => url && url.replace(/^.*?\/cloud\/v1\//, '/ui/api/');

function human(n) {
  if (n == null) return '';
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < u.length - 1) { v /= 1000; i++; }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${u[i]}`;
}
function date(s) {
  if (!s) return '';
  const d = new Date(s.replace(/([+-]\d\d)(\d\d)$/, '$1:$2'));
  return isNaN(d) ? s : d.toLocaleString();
}
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== false && v != null) e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

// ---------- the file browser ----------
const state = {
  folder: null, // {id, name, parentId}
  path: [], // [{id, name}] from the root
  items: [], // folders then files: {id, name, dir, size, date, type, url, thumb, preview}
  total: 0,
  loaded: 0,
  done: false,
  loading: false,
  selected: new Set(),
  anchor: -1,
  focus: -1,
  sort: localStorage.getItem('ocloud-sort') || 'name',
  grid: localStorage.getItem('ocloud-view') === 'grid',
  search: '',
};

function itemsOf(page) {
  const dirs = (page.subfolders || []).map((f) => ({ id: f.id, name: f.name, dir: true }));
  const files = (page.files || []).map((f) => ({
    id: f.id, name: f.name, dir: false, size: f.size, date: f.lastUpdateDate || f.creationDate,
    type: f.type, url: viaGateway(f.downloadUrl), thumb: viaGateway(f.thumbUrl), preview: viaGateway(f.previewUrl),
    created: f.creationDate, metadata: f.metadata,
  }));
  return dirs.concat(files);
}

function sorted(list) {
  const key = state.sort;
  const cmp = (a, b) => {
    if (a.dir !== b.dir) return a.dir ? -1 : 1; // folders first
    if (key === 'size' && !a.dir) return (b.size || 0) - (a.size || 0) || a.name.localeCompare(b.name);
    if (key === 'date' && !a.dir) return String(b.date).localeCompare(String(a.date)) || a.name.localeCompare(b.name);
    return a.name.localeCompare(b.name, undefined, { numeric: true, sensitivity: 'base' });
  };
  return list.slice().sort(cmp);
}

function visible() {
  const q = state.search.toLowerCase();
  const list = q ? (state.tree || state.items).filter((i) => i.name.toLowerCase().includes(q)) : state.items;
  return sorted(list);
}

// Search by name in the whole tree under the current folder: one flat listing, fetched on the
// first search in this folder.
async function search(text) {
  state.search = text;
  if (text && !state.tree && state.folder) {
    try {
      const page = await api('GET', `/folders/${encodeURIComponent(state.folder.id)}?flat=true&showthumbnails=true`);
      state.tree = itemsOf(page);
    } catch (e) { toast(`Search: ${e.message}`, 'error'); }
  }
  state.selected.clear();
  state.focus = -1;
  render();
}

async function openFolder(id, push = true) {
  state.folder = null;
  state.items = [];
  state.loaded = 0;
  state.done = false;
  state.selected.clear();
  state.anchor = -1;
  state.focus = -1;
  state.search = '';
  state.tree = null;
  const search = $('#search');
  if (search) search.value = '';
  render();
  await loadMore(id);
  if (push) history.pushState({ id: state.folder?.id }, '', state.folder && state.folder.id !== state.rootId ? `/#${state.folder.id}` : '/');
}

// The next page of the folder (the first one paints at once; the rest as the list scrolls).
async function loadMore(id) {
  if (state.loading || state.done) return;
  state.loading = true;
  try {
    const fid = id || state.folder?.id;
    const base = fid ? `/folders/${encodeURIComponent(fid)}` : '/folders';
    const page = await api('GET', `${base}?showthumbnails=true&limit=${PAGE}&offset=${state.loaded}`);
    if (!state.folder) {
      state.folder = { id: page.id, name: page.name, parentId: page.parentId };
      document.title = `${page.name || 'My files'} · ocloud`;
      if (!state.rootId && !fid) state.rootId = page.id;
      await crumbs(page);
    }
    const got = itemsOf(page);
    state.items = state.items.concat(got);
    state.loaded += got.length;
    state.done = got.length < PAGE;
    render();
  } catch (e) {
    if (!state.folder && id) {
      // A folder that is gone (renamed, deleted, a stale bookmark): back to the root.
      toast(`That folder cannot be opened (${e.message}); showing your files.`, 'error');
      state.loading = false;
      history.replaceState(null, '', '/');
      return loadMore(null);
    }
    toast(e.message, 'error');
  } finally {
    state.loading = false;
  }
}

// The rest of the folder (a sort by size or date, select all, act on every entry).
async function loadAll() {
  while (!state.done && state.folder) {
    const before = state.loaded;
    await loadMore();
    if (state.loaded === before && !state.done) break;
  }
}

// Breadcrumbs: the path from the root, from the ids (an id is the folder's path, base64url).
async function crumbs(page) {
  const nav = $('#crumbs');
  if (!nav) return;
  let path = [];
  try {
    const decoded = new TextDecoder().decode(Uint8Array.from(atob(page.id.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((page.id.length + 3) % 4)), (c) => c.charCodeAt(0)));
    const parts = decoded.split('/').filter(Boolean);
    const enc = (s) => btoa(String.fromCharCode(...new TextEncoder().encode(s))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    path = parts.map((name, i) => ({ name, id: enc(parts.slice(0, i + 1).join('/') + '/') }));
  } catch (_) {
    path = [{ name: page.name, id: page.id }];
  }
  state.path = path;
  nav.replaceChildren(el('a', { href: '/', text: 'My files', onclick: (ev) => { ev.preventDefault(); openFolder(null); } }));
  path.forEach((p, i) => {
    nav.append(el('span', { class: 'sep', 'aria-hidden': 'true', text: '›' }));
    if (i === path.length - 1) nav.append(el('span', { 'aria-current': 'page', text: p.name }));
    else nav.append(el('a', { href: `/#${p.id}`, text: p.name, onclick: (ev) => { ev.preventDefault(); openFolder(p.id); } }));
  });
}

// Drawn by the stylesheet (no emoji font is needed).
function iconClass(item) {
  if (item.dir) return 'dir';
  return { PICTURE: 'picture', VIDEO: 'video', AUDIO: 'audio' }[item.type] || 'file';
}

function render() {
  const list = $('#list');
  if (!list) return;
  const items = visible();
  list.classList.toggle('grid', state.grid);
  const view = $('#view');
  if (view) {
    view.textContent = state.grid ? 'List' : 'Grid';
    view.setAttribute('aria-label', state.grid ? 'List view' : 'Grid view');
    view.setAttribute('aria-pressed', String(state.grid));
  }
  const frag = document.createDocumentFragment();
  items.forEach((item, i) => {
    const selected = state.selected.has(item.id);
    const row = el('div', {
      class: `item${selected ? ' selected' : ''}${i === state.focus ? ' focus' : ''}`,
      role: 'option', 'aria-selected': String(selected), 'data-id': item.id, 'data-index': String(i),
      id: `item-${i}`,
    });
    const thumb = state.grid && item.thumb
      ? el('img', { class: 'thumb', src: item.thumb, alt: '', loading: 'lazy', decoding: 'async' })
      : el('span', { class: `icon ${iconClass(item)}`, 'aria-hidden': 'true' });
    row.append(thumb, el('span', { class: 'name', text: item.name }),
      el('span', { class: 'size', text: item.dir ? '' : human(item.size) }),
      el('span', { class: 'date', text: item.dir ? '' : date(item.date) }));
    frag.append(row);
  });
  list.replaceChildren(frag);
  const empty = $('#empty');
  empty.hidden = items.length > 0 || state.loading;
  empty.textContent = state.search ? `Nothing named like “${state.search}” here.` : 'This folder is empty. Drop files here or use Upload.';
  const sort = $('#sort');
  if (sort) sort.value = state.sort;
  renderSelection();
}

// The selection and focus shown on the rows as they are (a click does not rebuild the list:
// a double click must land on the row its first click hit).
function renderSelection() {
  const list = $('#list');
  for (const row of list.children) {
    const selected = state.selected.has(row.dataset.id);
    row.classList.toggle('selected', selected);
    row.classList.toggle('focus', Number(row.dataset.index) === state.focus);
    row.setAttribute('aria-selected', String(selected));
  }
  if (state.focus >= 0) list.setAttribute('aria-activedescendant', `item-${state.focus}`);
  else list.removeAttribute('aria-activedescendant');
  const n = state.selected.size;
  const one = n === 1;
  for (const [sel, on] of [['#rename', one], ['#move', n > 0], ['#copy', n > 0], ['#delete', n > 0], ['#download', n > 0], ['#details', one]]) {
    const b = $(sel);
    if (b) b.disabled = !on;
  }
}

function selectedItems() {
  const pool = state.search && state.tree ? state.tree : state.items;
  return pool.filter((i) => state.selected.has(i.id));
}

function clickItem(ev) {
  const row = ev.target.closest('.item');
  if (!row) return;
  const items = visible();
  const i = Number(row.dataset.index);
  const item = items[i];
  if (ev.shiftKey && state.anchor >= 0) {
    const [a, b] = [Math.min(state.anchor, i), Math.max(state.anchor, i)];
    if (!(ev.ctrlKey || ev.metaKey)) state.selected.clear();
    for (let k = a; k <= b; k++) state.selected.add(items[k].id);
  } else if (ev.ctrlKey || ev.metaKey) {
    if (state.selected.has(item.id)) state.selected.delete(item.id); else state.selected.add(item.id);
    state.anchor = i;
  } else {
    state.selected.clear();
    state.selected.add(item.id);
    state.anchor = i;
  }
  state.focus = i;
  renderSelection();
}

function openItem(item) {
  if (!item) return;
  if (item.dir) openFolder(item.id);
  else view(item);
}

// ---------- dialogs ----------
function ask(title, body, okText = 'OK') {
  const d = $('#dialog');
  $('#dialog-title').textContent = title;
  $('#dialog-body').replaceChildren(...(Array.isArray(body) ? body : [body]));
  $('#dialog-ok').textContent = okText;
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    d.returnValue = '';
    d.showModal();
    const input = $('input', d);
    if (input) { input.focus(); input.select(); }
  });
}

async function promptName(title, value, okText) {
  const input = el('input', { type: 'text', value, 'aria-label': 'Name', required: true, autocomplete: 'off' });
  const ok = await ask(title, el('label', { class: 'field' }, el('span', { text: 'Name' }), input), okText);
  const name = input.value.trim();
  return ok && name ? name : null;
}

// A folder picker: browse folders from the root, choose one.
async function pickFolder(title, okText, exclude = new Set()) {
  let current = state.folder?.id || null;
  let chosen = state.folder?.id;
  const listBox = el('ul', { class: 'picker', role: 'listbox', 'aria-label': 'Folders' });
  const where = el('p', { class: 'where' });
  async function show(id) {
    const page = await api('GET', id ? `/folders/${encodeURIComponent(id)}?tree=true` : '/folders?tree=true');
    current = page.id;
    chosen = page.id;
    where.textContent = `Into: ${page.name || 'My files'}`;
    const up = page.parentId !== page.id
      ? el('li', {}, el('button', { type: 'button', class: 'link', text: '‹ Up', onclick: () => show(page.parentId) }))
      : null;
    listBox.replaceChildren(...[up].filter(Boolean), ...(page.subfolders || []).filter((f) => !exclude.has(f.id)).map((f) =>
      el('li', {}, el('button', { type: 'button', class: 'link', text: `${f.name}/`, 'aria-label': `Open ${f.name}`, onclick: () => show(f.id) }))));
  }
  await show(current);
  const ok = await ask(title, [where, listBox], okText);
  return ok ? chosen : null;
}

// ---------- actions ----------
async function newFolder() {
  const name = await promptName('New folder', 'New folder', 'Create');
  if (!name) return;
  try {
    await api('POST', '/folders', { name, parentFolderId: state.folder.id });
    toast(`Folder “${name}” created`);
    reload();
  } catch (e) { toast(`New folder: ${e.message}`, 'error'); }
}

// Rename in place: the name becomes a text field; Enter keeps the new name, Escape the old.
function rename() {
  const [item] = selectedItems();
  const row = item && document.querySelector(`#list .item[data-id="${CSS.escape(item.id)}"]`);
  if (!row) return;
  const label = row.querySelector('.name');
  const input = el('input', { type: 'text', class: 'rename', value: item.name, 'aria-label': `New name for ${item.name}`, autocomplete: 'off' });
  label.replaceWith(input);
  input.focus();
  // The name without its extension is selected, as file managers do.
  const dot = item.dir ? -1 : item.name.lastIndexOf('.');
  input.setSelectionRange(0, dot > 0 ? dot : item.name.length);
  let done = false;
  const finish = async (keep) => {
    if (done) return;
    done = true;
    const name = input.value.trim();
    input.replaceWith(label);
    if (!keep || !name || name === item.name) return;
    try {
      await api('POST', `/${item.dir ? 'folders' : 'files'}/${encodeURIComponent(item.id)}`, { name });
      toast(`Renamed to “${name}”`);
      reload();
    } catch (e) { toast(`Rename: ${e.message}`, 'error'); }
  };
  input.addEventListener('keydown', (ev) => {
    ev.stopPropagation();
    if (ev.key === 'Enter') { ev.preventDefault(); finish(true); }
    if (ev.key === 'Escape') { ev.preventDefault(); finish(false); }
  });
  input.addEventListener('blur', () => finish(true));
  input.addEventListener('click', (ev) => ev.stopPropagation());
}

async function moveOrCopy(copy) {
  const items = selectedItems();
  if (!items.length) return;
  const moved = new Set(items.filter((i) => i.dir).map((i) => i.id));
  const dest = await pickFolder(`${copy ? 'Copy' : 'Move'} ${items.length} item${items.length > 1 ? 's' : ''}`, copy ? 'Copy here' : 'Move here', moved);
  if (!dest) return;
  if (!copy && dest === state.folder?.id) { toast('They are in that folder already'); return; }
  let failed = 0;
  for (const item of items) {
    const body = { parentFolderId: dest };
    if (copy) body.clone = true;
    try {
      await api('POST', `/${item.dir ? 'folders' : 'files'}/${encodeURIComponent(item.id)}`, body);
    } catch (e) { failed++; toast(`${copy ? 'Copy' : 'Move'} “${item.name}”: ${e.message}`, 'error'); }
  }
  if (!failed) toast(`${items.length} item${items.length > 1 ? 's' : ''} ${copy ? 'copied' : 'moved'}`);
  reload();
}

async function remove() {
  const items = selectedItems();
  if (!items.length) return;
  const what = items.length === 1 ? `“${items[0].name}”` : `${items.length} items`;
  const ok = await ask(`Delete ${what}?`, el('p', { text: 'This cannot be undone.' }), 'Delete');
  if (!ok) return;
  let failed = 0;
  for (const item of items) {
    try {
      await api('DELETE', `/${item.dir ? 'folders' : 'files'}/${encodeURIComponent(item.id)}`);
    } catch (e) { failed++; toast(`Delete “${item.name}”: ${e.message}`, 'error'); }
  }
  if (!failed) toast(`${what} deleted`);
  reload();
}

function download() {
  const items = selectedItems();
  if (!items.length) return;
  let href;
  if (items.length === 1 && !items[0].dir && items[0].url) {
    href = items[0].url;
  } else {
    const q = new URLSearchParams();
    for (const i of items) q.append(i.dir ? 'd' : 'f', i.id);
    q.set('name', items.length === 1 ? items[0].name : (state.folder?.name || 'ocloud'));
    href = `/ui/zip?${q}`;
  }
  const a = el('a', { href, download: items.length === 1 && !items[0].dir ? items[0].name : '' });
  document.body.append(a);
  a.click();
  a.remove();
}

async function details() {
  const [item] = selectedItems();
  if (!item) return;
  const rows = [['Name', item.name], ['Type', item.dir ? 'Folder' : (item.type || 'File')]];
  if (!item.dir) {
    rows.push(['Size', `${human(item.size)} (${item.size} bytes)`], ['Created', date(item.created)], ['Modified', date(item.date)]);
    for (const [k, v] of Object.entries(item.metadata || {})) rows.push([k, String(v)]);
  }
  const table = el('table', { class: 'details' }, ...rows.map(([k, v]) => el('tr', {}, el('th', { text: k }), el('td', { text: v }))));
  await ask('Details', table, 'Close');
}

function reload() {
  space();
  const id = state.folder?.id;
  state.folder = null;
  openFolder(id, false);
}

// ---------- viewer ----------
let viewing = -1;
function viewable() { return visible().filter((i) => !i.dir); }
function view(item) {
  const files = viewable();
  viewing = files.findIndex((f) => f.id === item.id);
  showViewer();
}
function showViewer() {
  const files = viewable();
  const item = files[viewing];
  const d = $('#viewer');
  if (!item || !d) return;
  $('#viewer-title').textContent = item.name;
  const body = $('#viewer-body');
  let node;
  if (item.type === 'PICTURE') {
    node = el('img', { src: item.preview || item.url, alt: item.name });
    // The next picture is fetched ahead, so the arrow key shows it at once.
    const next = files[viewing + 1];
    if (next && next.type === 'PICTURE') { const pre = new Image(); pre.src = next.preview || next.url; }
  } else if (item.type === 'VIDEO') {
    node = el('video', { src: item.url, controls: true, preload: 'metadata' });
  } else if (item.type === 'AUDIO') {
    node = el('audio', { src: item.url, controls: true, preload: 'metadata' });
  } else if (/\.(txt|md|csv|log|json|xml|pdf|html?)$/i.test(item.name)) {
    // Shown inline (the gateway's `inline`: the service's content is otherwise an attachment),
    // in a sandbox: a document of the user's never runs script in this page's origin.
    const pdf = /\.pdf$/i.test(item.name);
    node = el('iframe', { src: `${item.url}${item.url.includes('?') ? '&' : '?'}inline=1`, title: item.name, sandbox: pdf ? false : '' });
  } else {
    node = el('p', { class: 'noview' }, 'No preview for this file. ', el('a', { href: item.url, download: item.name, text: 'Download it' }));
  }
  body.replaceChildren(node);
  if (!d.open) d.showModal();
}
function step(n) {
  const files = viewable();
  if (!files.length || !$('#viewer').open) return;
  viewing = (viewing + n + files.length) % files.length;
  showViewer();
}

// ---------- uploads ----------
const queue = [];
let running = 0;
const PARALLEL = 3;

function queueItem(job) {
  const bar = el('progress', { max: '100', value: '0', 'aria-label': `Progress of ${job.name}` });
  const status = el('span', { class: 'status', text: 'waiting' });
  const cancel = el('button', { type: 'button', class: 'link', text: 'Cancel', 'aria-label': `Cancel ${job.name}`, onclick: () => cancelJob(job) });
  const retry = el('button', { type: 'button', class: 'link', text: 'Retry', 'aria-label': `Retry ${job.name}`, hidden: true, onclick: () => retryJob(job) });
  const li = el('li', { class: 'job' }, el('span', { class: 'name', text: job.path }), bar, status, cancel, retry);
  Object.assign(job, { li, bar, status, cancel, retry });
  $('#queue-list').append(li);
  $('#queue').hidden = false;
}

function cancelJob(job) {
  job.cancelled = true;
  const waiting = queue.indexOf(job);
  if (waiting >= 0) queue.splice(waiting, 1);
  if (job.xhr) job.xhr.abort();
  job.status.textContent = 'cancelled';
  job.cancel.hidden = true;
  job.retry.hidden = false;
}
function retryJob(job) {
  job.cancelled = false;
  job.retry.hidden = true;
  job.cancel.hidden = false;
  job.status.textContent = 'waiting';
  queue.push(job);
  pump();
}

// Folders of an upload, made once each (a path → its id).
const folderIds = new Map();
async function ensureFolder(parentId, parts) {
  let id = parentId;
  for (let i = 0; i < parts.length; i++) {
    const key = `${parentId}/${parts.slice(0, i + 1).join('/')}`;
    if (!folderIds.has(key)) {
      folderIds.set(key, (async () => {
        try {
          const f = await api('POST', '/folders', { name: parts[i], parentFolderId: id });
          return f.id;
        } catch (e) {
          // Already there: find it.
          const page = await api('GET', `/folders/${encodeURIComponent(id)}?tree=true`);
          const found = (page.subfolders || []).find((s) => s.name === parts[i]);
          if (!found) throw e;
          return found.id;
        }
      })());
    }
    id = await folderIds.get(key);
  }
  return id;
}

function upload(files) {
  if (!state.folder) return;
  const target = state.folder.id;
  for (const { file, path } of files) {
    const job = { file, path: path || file.name, name: file.name, target };
    queueItem(job);
    queue.push(job);
  }
  pump();
}

function pump() {
  while (running < PARALLEL && queue.length) {
    const job = queue.shift();
    if (job.cancelled) continue;
    running++;
    send(job).finally(() => { running--; pump(); if (!running && !queue.length) reload(); });
  }
}

async function send(job) {
  try {
    const dirs = job.path.split('/').slice(0, -1).filter(Boolean);
    const folder = dirs.length ? await ensureFolder(job.target, dirs) : job.target;
    if (job.cancelled) return;
    job.status.textContent = 'uploading';
    const started = performance.now();
    const result = await new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      job.xhr = xhr;
      xhr.open('POST', `/ui/api/files/content?name=${encodeURIComponent(job.name)}&folder=${encodeURIComponent(folder)}`);
      xhr.setRequestHeader('X-Csrf-Token', csrf());
      xhr.setRequestHeader('Content-Type', 'application/octet-stream');
      xhr.upload.onprogress = (ev) => {
        if (!ev.lengthComputable) return;
        job.bar.value = Math.round((ev.loaded / ev.total) * 100);
        const secs = (performance.now() - started) / 1000;
        job.status.textContent = `${Math.round((ev.loaded / ev.total) * 100)} % · ${human(Math.round(ev.loaded / Math.max(secs, 0.001)))}/s`;
      };
      xhr.onload = () => {
        const res = new Response(xhr.responseText, { status: xhr.status, statusText: xhr.statusText });
        if (xhr.status >= 200 && xhr.status < 300) resolve(JSON.parse(xhr.responseText || '{}'));
        else apiError(res, xhr.getResponseHeader('x-ocloud-detail')).then(reject);
      };
      xhr.onerror = () => reject(new Error('The connection was lost; the service may be restarting.'));
      xhr.onabort = () => reject(new Error('cancelled'));
      xhr.send(job.file); // the browser streams the file from disk
    });
    job.bar.value = 100;
    job.cancel.hidden = true;
    if (result.fileName && result.fileName !== job.name) {
      job.status.textContent = `saved as “${result.fileName}” (the name was taken)`;
      job.li.classList.add('renamed');
    } else {
      job.status.textContent = 'done';
    }
    job.li.classList.add('done');
  } catch (e) {
    if (job.cancelled) return;
    job.status.textContent = `failed: ${e.message}`;
    job.li.classList.add('failed');
    job.cancel.hidden = true;
    job.retry.hidden = false;
    toast(`Upload of “${job.name}” failed: ${e.message}`, 'error');
  }
}

// Dropped folders keep their tree: each entry is read with its path.
async function dropped(items) {
  const out = [];
  async function walk(entry, prefix) {
    if (entry.isFile) {
      const file = await new Promise((res, rej) => entry.file(res, rej));
      out.push({ file, path: prefix + file.name });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      let batch;
      do {
        batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        for (const e of batch) await walk(e, `${prefix}${entry.name}/`);
      } while (batch.length);
    }
  }
  const entries = [...items].map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
  for (const e of entries) await walk(e, '');
  return out;
}

// ---------- keyboard ----------
// The one table of bound keys: the handler and the `?` overlay both read it.
const KEYS = [
  ['?', 'Show this list', () => showHelp()],
  ['/', 'Search in this folder', () => $('#search').focus()],
  ['n', 'New folder', () => newFolder()],
  ['u', 'Upload files', () => $('#pick-files').click()],
  ['F2', 'Rename', () => rename()],
  ['m', 'Move', () => moveOrCopy(false)],
  ['c', 'Copy', () => moveOrCopy(true)],
  ['Delete', 'Delete', () => remove()],
  ['d', 'Download', () => download()],
  ['i', 'Details', () => details()],
  ['g', 'Grid or list view', () => toggleView()],
  ['t', 'Dark or light theme', () => toggleTheme()],
  ['Ctrl+a', 'Select all', async () => { await loadAll(); visible().forEach((i) => state.selected.add(i.id)); renderSelection(); }],
  ['Escape', 'Clear the selection', () => { state.selected.clear(); renderSelection(); }],
  ['ArrowDown', 'Next item', () => moveFocus(1)],
  ['ArrowUp', 'Previous item', () => moveFocus(-1)],
  ['Enter', 'Open', () => openItem(visible()[state.focus])],
  ['Backspace', 'Parent folder', () => up()],
  ['ArrowRight', 'Next file (in the viewer)', () => step(1)],
  ['ArrowLeft', 'Previous file (in the viewer)', () => step(-1)],
];

function keyName(ev) {
  return (ev.ctrlKey || ev.metaKey ? 'Ctrl+' : '') + ev.key;
}

function showHelp() {
  const t = $('#help-keys');
  t.replaceChildren(...KEYS.map(([k, what]) => el('tr', {}, el('td', {}, el('kbd', { text: k })), el('td', { text: what }))));
  $('#help').showModal();
}

function moveFocus(n) {
  const items = visible();
  if (!items.length) return;
  state.focus = Math.max(0, Math.min(items.length - 1, state.focus + n));
  state.selected.clear();
  state.selected.add(items[state.focus].id);
  state.anchor = state.focus;
  renderSelection();
  document.getElementById(`item-${state.focus}`)?.scrollIntoView({ block: 'nearest' });
}

function up() {
  if (state.path.length > 1) openFolder(state.path[state.path.length - 2].id);
  else if (state.path.length === 1) openFolder(null);
}

function toggleView() {
  state.grid = !state.grid;
  localStorage.setItem('ocloud-view', state.grid ? 'grid' : 'list');
  render();
}

function onKey(ev) {
  if (document.querySelector('dialog[open]')) {
    const viewerKey = KEYS.find(([k]) => k === ev.key && k.startsWith('Arrow') && k !== 'ArrowDown' && k !== 'ArrowUp');
    if ($('#viewer').open && viewerKey) {
      ev.preventDefault();
      viewerKey[2]();
    }
    return;
  }
  const typing = ev.target.closest('input, textarea, select');
  if (typing) {
    if (ev.key === 'Escape') ev.target.blur();
    return;
  }
  // A focused button or link keeps its own Enter and Space.
  if ((ev.key === 'Enter' || ev.key === ' ') && ev.target.closest('button, a, label, summary')) return;
  const k = keyName(ev);
  const bound = KEYS.find(([key]) => key === k || (key.length === 1 && key === ev.key && !ev.ctrlKey && !ev.metaKey));
  if (bound) {
    ev.preventDefault();
    bound[2]();
  }
}

// ---------- account page ----------
function accountPage() {
  for (const b of document.querySelectorAll('button.revoke')) {
    b.addEventListener('click', async () => {
      if (!confirm(`Revoke the access of ${b.closest('li').querySelector('.app-name').textContent}?`)) return;
      const res = await fetch(`/ui/grants/${encodeURIComponent(b.dataset.client)}/revoke`, {
        method: 'POST', headers: { 'X-Csrf-Token': csrf() }, credentials: 'same-origin',
      });
      if (res.ok) {
        const list = b.closest('ul');
        b.closest('li').remove();
        if (!list.children.length) list.replaceWith(el('p', { text: 'No application is connected to your account.' }));
        toast('Access revoked');
      } else {
        toast(`Revoke: ${(await apiError(res)).message}`, 'error');
      }
    });
  }
}

// ---------- start ----------
function start() {
  $('#theme')?.addEventListener('click', toggleTheme);
  if (document.body.classList.contains('account-page')) { accountPage(); return; }
  if (!document.body.classList.contains('app')) return;
  const list = $('#list');
  list.addEventListener('click', clickItem);
  list.addEventListener('dblclick', (ev) => {
    const row = ev.target.closest('.item');
    if (row) openItem(visible()[Number(row.dataset.index)]);
  });
  $('#files').addEventListener('scroll', (ev) => {
    const m = ev.target;
    if (m.scrollTop + m.clientHeight > m.scrollHeight - 400) loadMore();
  });
  window.addEventListener('scroll', () => {
    if (window.innerHeight + window.scrollY > document.body.scrollHeight - 400) loadMore();
  });
  $('#new-folder').addEventListener('click', newFolder);
  $('#rename').addEventListener('click', rename);
  $('#move').addEventListener('click', () => moveOrCopy(false));
  $('#copy').addEventListener('click', () => moveOrCopy(true));
  $('#delete').addEventListener('click', remove);
  $('#download').addEventListener('click', download);
  $('#details').addEventListener('click', details);
  $('#view').addEventListener('click', toggleView);
  $('#help-button').addEventListener('click', showHelp);
  $('#sort').addEventListener('change', async (ev) => {
    state.sort = ev.target.value;
    localStorage.setItem('ocloud-sort', state.sort);
    if (state.sort !== 'name') await loadAll();
    render();
  });
  let searchTimer;
  $('#search').addEventListener('input', (ev) => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => search(ev.target.value), 150);
  });
  $('#pick-files').addEventListener('change', (ev) => { upload([...ev.target.files].map((file) => ({ file }))); ev.target.value = ''; });
  $('#pick-folder').addEventListener('change', (ev) => {
    upload([...ev.target.files].map((file) => ({ file, path: file.webkitRelativePath || file.name })));
    ev.target.value = '';
  });
  $('#queue-clear').addEventListener('click', () => {
    for (const li of [...document.querySelectorAll('#queue-list .job.done')]) li.remove();
    if (!document.querySelector('#queue-list .job')) $('#queue').hidden = true;
  });
  $('#queue-hide').addEventListener('click', () => { $('#queue').hidden = true; });
  $('#viewer-prev').addEventListener('click', () => step(-1));
  $('#viewer-next').addEventListener('click', () => step(1));
  $('#viewer-close').addEventListener('click', () => $('#viewer').close());
  $('#viewer').addEventListener('close', () => $('#viewer-body').replaceChildren());
  const drop = $('#drop');
  let depth = 0;
  document.addEventListener('dragenter', (ev) => { if (ev.dataTransfer?.types?.includes('Files')) { depth++; drop.hidden = false; } });
  document.addEventListener('dragleave', () => { depth = Math.max(0, depth - 1); if (!depth) drop.hidden = true; });
  document.addEventListener('dragover', (ev) => ev.preventDefault());
  document.addEventListener('drop', async (ev) => {
    ev.preventDefault();
    depth = 0;
    drop.hidden = true;
    const items = ev.dataTransfer?.items;
    let files = items && items.length && items[0].webkitGetAsEntry ? await dropped(items) : [];
    // No entries (a synthetic drop, an old browser): the files, with their relative paths.
    if (!files.length) files = [...(ev.dataTransfer?.files || [])].map((file) => ({ file, path: file.webkitRelativePath || file.name }));
    upload(files);
  });
  document.addEventListener('keydown', onKey);
  window.addEventListener('popstate', () => openFolder(location.hash.slice(1) || null, false));
  space();
  openFolder(location.hash.slice(1) || null, false);
}

// Free space: the gauge shows what is used of what there is (used comes from the account).
async function space() {
  try {
    const { freespace } = await api('GET', '/freespace');
    const m = $('#space');
    const quota = Number(m.dataset.quota) || freespace;
    const used = Math.max(0, quota - freespace);
    const pct = quota ? Math.min(100, Math.round((used / quota) * 100)) : 0;
    m.querySelector('.used').style.width = `${pct}%`;
    m.querySelector('.label').textContent = `${human(used)} used · ${human(freespace)} free`;
    m.setAttribute('aria-valuenow', String(pct));
    m.setAttribute('aria-valuetext', `${human(used)} used, ${human(freespace)} free`);
  } catch (e) { toast(e.message, 'error'); }
}

document.addEventListener('DOMContentLoaded', start);
