// bale status page. Plain ES2017, no framework, no build step. Data goes
// into the DOM only through textContent / createElement.
'use strict';
(function () {
  const OVERVIEW_MS = 5000;
  const CHARTS_MS = 30000;
  const FETCH_TIMEOUT_MS = 20000;
  const REQUESTS_PAGE = 20;
  const VOLUMES_PAGE = 50;
  const DASH = '–';

  // ---- helpers -------------------------------------------------------
  const $ = (id) => document.getElementById(id);

  // el('td', {class: 'num', 'data-col': 'files'}, '3', otherNode)
  function el(tag, attrs) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) {
      const v = attrs[k];
      if (v == null || v === false) continue;
      if (k === 'class') e.className = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (let i = 2; i < arguments.length; i++) append(e, arguments[i]);
    return e;
  }
  function append(parent, c) {
    if (c == null || c === false) return;
    if (Array.isArray(c)) c.forEach((x) => append(parent, x));
    else parent.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  function setText(node, text, title) {
    if (!node) return;
    node.textContent = text == null ? '' : String(text);
    if (title !== undefined) {
      if (title) node.title = title;
      else node.removeAttribute('title');
    }
  }
  const col = (root, name) => root.querySelector('[data-col="' + name + '"]');
  const dash = (v) => (v == null || v === '' ? DASH : String(v));

  const INT = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  function fmtInt(n) {
    return n == null || !isFinite(n) ? DASH : INT.format(n);
  }
  // SI (powers of 1000): "1.2 GB", "345 MB", "12 B".
  function fmtBytes(n) {
    if (n == null || !isFinite(n)) return DASH;
    const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'];
    let i = 0;
    let v = Math.abs(n);
    while (v >= 999.5 && i < units.length - 1) { v /= 1000; i++; }
    const s = i === 0 ? String(Math.round(v)) : v.toFixed(v < 100 ? 1 : 0);
    return (n < 0 ? '-' : '') + s + ' ' + units[i];
  }
  // Seconds for people: "42 s", "3 min", "1.5 h", "2.3 d".
  function fmtDuration(s) {
    if (s == null || !isFinite(s)) return DASH;
    s = Math.max(0, s);
    const one = (x) => x.toFixed(1).replace(/\.0$/, '');
    if (s < 59.5) return Math.round(s) + ' s';
    if (s < 3570) return Math.round(s / 60) + ' min';
    if (s < 172800) return one(s / 3600) + ' h';
    return one(s / 86400) + ' d';
  }
  function fmtPct(frac) {
    if (frac == null || !isFinite(frac)) return DASH;
    return Math.round(frac * 100) + '%';
  }
  const pad = (n) => (n < 10 ? '0' : '') + n;
  const nsToDate = (ns) => new Date(ns / 1e6);
  // Local "HH:MM:SS".
  function fmtTime(ns) {
    if (ns == null || !isFinite(ns)) return DASH;
    const d = nsToDate(ns);
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }
  // The local date when not today (CSS shows it before the time), else null.
  function otherDay(ns) {
    if (ns == null || !isFinite(ns)) return null;
    const d = nsToDate(ns);
    if (d.toDateString() === new Date().toDateString()) return null;
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate());
  }
  function setTime(node, ns) {
    setText(node, fmtTime(ns), isoTime(ns));
    const day = otherDay(ns);
    if (day) node.setAttribute('data-date', day);
    else node.removeAttribute('data-date');
  }
  function isoTime(ns) {
    if (ns == null || !isFinite(ns)) return '';
    try { return nsToDate(ns).toISOString(); } catch (e) { return ''; }
  }

  // A table cell: data-col, text, and an optional class / title / extra nodes.
  function td(name, text, opts) {
    opts = opts || {};
    return el('td', { 'data-col': name, class: opts.cls, title: opts.title || null }, text, opts.extra);
  }
  const tdNum = (name, text, title) => td(name, text, { cls: 'num', title: title });
  const tdTime = (name, ns) => {
    const c = td(name, '', { cls: 'time' });
    setTime(c, ns);
    return c;
  };
  // A thin progress bar: its width is set through the CSSOM (CSP allows it).
  function meter(frac, cls) {
    const inner = el('div');
    inner.style.width = Math.max(0, Math.min(1, frac || 0)) * 100 + '%';
    return el('div', { class: 'meter' + (cls ? ' ' + cls : ''), 'aria-hidden': 'true' }, inner);
  }
  function fillRows(tbody, rows, ncols, emptyText) {
    if (!tbody) return;
    if (!rows.length) rows = [el('tr', { class: 'empty' }, el('td', { colspan: ncols }, emptyText))];
    tbody.replaceChildren(...rows);
  }
  function stateClass(s) {
    switch (String(s || '').toLowerCase()) {
      case 'busy': case 'open': case 'running': case 'appendable': return 'st-busy';
      case 'offline': case 'failed': case 'error': case 'noaccess': case 'critical': return 'st-bad';
      case 'warning': case 'throttled': case 'stopping': case 'readonly': return 'st-warn';
      case 'ready': case 'ok': return 'st-ok';
      default: return 'st-idle';
    }
  }

  // ---- messages and requests ----------------------------------------
  let messageSource = '';
  let messageTimer = 0;
  function showMessage(source, text, ttlMs) {
    const m = $('message');
    messageSource = source;
    m.textContent = text;
    m.classList.add('error');
    clearTimeout(messageTimer);
    if (ttlMs) messageTimer = setTimeout(() => clearMessage(source), ttlMs);
  }
  function clearMessage(source) {
    if (messageSource !== source) return;
    messageSource = '';
    $('message').textContent = '';
    $('message').classList.remove('error');
  }

  class Reloading extends Error {}
  let reloading = false;
  function reloadPage() {
    if (!reloading) { reloading = true; window.location.reload(); }
    throw new Reloading('session ended');
  }

  async function problemText(r) {
    try {
      const ct = r.headers.get('content-type') || '';
      if (ct.indexOf('json') >= 0) {
        const p = await r.json();
        if (p && (p.detail || p.title)) return String(p.detail || p.title);
      } else {
        const t = (await r.text()).trim();
        if (t && t.length < 300) return t;
      }
    } catch (e) { /* fall through */ }
    return r.status + ' ' + (r.statusText || 'error');
  }

  async function request(url, opts) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
    let r;
    try {
      r = await fetch(url, Object.assign({ credentials: 'same-origin', cache: 'no-store', signal: ctl.signal }, opts));
    } catch (e) {
      throw new Error(e.name === 'AbortError' ? 'the server did not answer in time' : 'the server is unreachable');
    } finally {
      clearTimeout(timer);
    }
    if (r.status === 401) reloadPage();
    if (!r.ok) throw new Error(await problemText(r));
    return r;
  }
  const getJSON = async (url) => (await request(url, { headers: { Accept: 'application/json' } })).json();

  // ---- state ---------------------------------------------------------
  let csrf = '';
  let renders = 0;
  let lastOk = 0;
  let reqBefore = null;   // cursor of the requests page shown; null = newest
  const reqStack = [];    // cursors of the newer pages, for "Newer"
  let reqLastId = null;
  const vol = { offset: 0, state: '', q: '', seq: 0, busy: false };

  function setCsrf(token) {
    if (!token || token === csrf) return;
    csrf = String(token);
    const form = $('logout') && $('logout').form;
    if (!form) return;
    let input = form.querySelector('input[name="csrf"]');
    if (!input) {
      input = el('input', { type: 'hidden', name: 'csrf' });
      form.appendChild(input);
    }
    input.value = csrf;
  }

  // ---- renderers -----------------------------------------------------
  function renderHeader(d, st) {
    setText($('node'), st.node || '');
    setText($('user'), d.user || '');
    $('role').hidden = !d.admin;
    document.title = 'bale ' + (st.node || '') + (st.ready ? '' : ' (not ready)');
  }

  function renderSummary(st) {
    const s = $('summary');
    const ready = col(s, 'ready');
    setText(ready, st.ready ? 'ready' : 'not ready');
    ready.className = 'v ' + (st.ready ? 'st-ok' : 'st-bad');
    setText(col(s, 'not_ready'), st.ready ? '' : st.not_ready || '');
    setText(col(s, 'version'), st.version);
    setText(col(s, 'catalog'), st.catalog ? 'catalog: ' + st.catalog : '');
    setTime(col(s, 'started'), st.started);
    setText(col(s, 'uptime'), st.started ? 'up ' + fmtDuration((Date.now() - st.started / 1e6) / 1000) : '');
    const stage = st.stage || {};
    setText(col(s, 'requests_open'), fmtInt(stage.requests_open));
    setText(col(s, 'files_submitted'), fmtInt(stage.files_submitted));
    setText(col(s, 'files_started'), fmtInt(stage.files_started));
    const q = st.queue || {};
    setText(col(s, 'pools_open'), fmtInt(q.pools_open));
    setText(col(s, 'pool_files'), fmtInt(q.pool_files));
    setText(col(s, 'pool_bytes'), fmtBytes(q.pool_bytes));
    setText(col(s, 'oldest_pool'), q.oldest_pool_age_s == null ? '' : 'oldest ' + fmtDuration(q.oldest_pool_age_s));
    const jobs = q.jobs || {};
    const tiles = Object.keys(jobs).sort().map((state) => {
      const nb = jobs[state] || [0, 0];
      const bad = /fail/i.test(state) && nb[0] > 0;
      return el('div', { class: 'tile', 'data-job': state },
        el('span', { class: 'k' }, state.toLowerCase()),
        el('span', { class: 'v num' + (bad ? ' st-bad' : '') }, fmtInt(nb[0])),
        el('span', { class: 'sub' }, fmtBytes(nb[1])));
    });
    if (!tiles.length) tiles.push(el('div', { class: 'tile muted' }, el('span', { class: 'k' }, 'none')));
    $('jobs').replaceChildren(...tiles);
  }

  function renderCache(c) {
    const s = $('cache');
    const cap = c.capacity || 0;
    const frac = (v) => (cap > 0 ? Math.min(1, (v || 0) / cap) : 0);
    const bar = $('cache-bar');
    bar.querySelector('.bar-used').style.width = frac(c.used) * 100 + '%';
    bar.querySelector('.bar-pinned').style.width = frac(Math.min(c.pinned || 0, c.used || 0)) * 100 + '%';
    bar.querySelector('.mark-low').style.left = frac(c.purge_low) * 100 + '%';
    bar.querySelector('.mark-high').style.left = frac(c.purge_high) * 100 + '%';
    bar.classList.toggle('warn', c.purge_high > 0 && c.used >= c.purge_high);
    bar.classList.toggle('bad', cap > 0 && c.used >= cap * 0.98);
    setText($('cache-caption'), fmtBytes(c.used) + ' of ' + fmtBytes(cap) + ' used (' + fmtPct(cap ? c.used / cap : null) + ')');
    setText(col(s, 'used'), fmtBytes(c.used));
    setText(col(s, 'capacity'), fmtBytes(c.capacity));
    setText(col(s, 'pinned'), fmtBytes(c.pinned));
    setText(col(s, 'purgeable'), fmtBytes(c.purgeable));
    setText(col(s, 'high'), fmtBytes(c.purge_high));
    setText(col(s, 'low'), fmtBytes(c.purge_low));
    setText(col(s, 'free'), fmtBytes(c.filesystem_free));
    setText(col(s, 'files'), fmtInt(c.files));
  }

  function renderWorkers(workers) {
    $('workers').hidden = workers == null;
    if (workers == null) return;
    let failing = 0;
    const rows = workers.map((w) => {
      if (w.last_error) failing++;
      return el('tr', { 'data-worker': w.name },
        td('name', w.name),
        td('state', w.state, { cls: 'state ' + stateClass(w.state) }),
        td('error', w.last_error || '', { cls: w.last_error ? 'st-bad wrap' : 'wrap' }));
    });
    fillRows($('workers-rows'), rows, 3, 'No workers');
    setText($('workers-count'), workers.length + ' workers' + (failing ? ', ' + failing + ' with errors' : ''));
  }

  function renderAlarms(alarms, summary) {
    $('alarms').hidden = alarms == null;
    if (alarms == null) return;
    let open = summary && summary.open;
    if (!open) {
      open = {};
      alarms.forEach((a) => { if (!a.acked) open[a.severity] = (open[a.severity] || 0) + 1; });
    }
    const rank = { critical: 0, error: 1, warning: 2 };
    const order = (s) => (s in rank ? rank[s] : 3);
    const sevs = Object.keys(open).filter((k) => open[k] > 0).sort((a, b) => order(a) - order(b));
    setText($('alarms-count'), sevs.length ? 'Open: ' + sevs.map((k) => open[k] + ' ' + k).join(', ') : 'No open alarms');
    $('alarms-count').className = sevs.length ? stateClass(sevs[0]) : '';
    const rows = alarms.map((a) => {
      const acked = a.acked
        ? td('acked', a.acked.by + ' ' + fmtTime(a.acked.at), { title: isoTime(a.acked.at) })
        : td('acked', DASH);
      return el('tr', { 'data-alarm': a.id, class: a.acked ? 'acked' : null },
        td('severity', a.severity, { cls: 'state ' + stateClass(a.severity) }),
        td('source', a.source),
        td('message', a.message, { cls: 'wrap', title: a.time ? 'first ' + isoTime(a.time) : '' }),
        tdNum('count', fmtInt(a.count)),
        tdTime('last', a.last),
        acked,
        el('td', { class: 'action' },
          a.acked ? null : el('button', { type: 'button', class: 'ack', 'data-alarm': a.id }, 'Acknowledge')));
    });
    fillRows($('alarms-rows'), rows, 7, 'No alarms');
  }

  function renderPools(pools) {
    const list = (pools && pools.rows) || [];
    const total = pools && pools.total != null ? pools.total : list.length;
    setText($('pools-count'), total + ' open pool' + (total === 1 ? '' : 's') +
      (total > list.length ? ' (showing ' + list.length + ')' : ''));
    const rows = list.map((p) => {
      const limits = 'rule ' + dash(p.rule) + '; closes at ' + fmtBytes(p.target_size) + ', ' +
        fmtInt(p.max_files) + ' files or ' + fmtDuration(p.max_wait_s);
      return el('tr', { 'data-pool': p.key, title: p.key },
        td('family', dash(p.family), { title: limits }),
        td('library', dash(p.library)),
        tdNum('files', fmtInt(p.files)),
        tdNum('bytes', fmtBytes(p.bytes)),
        tdNum('age', fmtDuration(p.oldest_age_s)),
        td('trigger', dash(p.nearest) + ' ' + fmtPct(p.progress),
          { cls: 'trigger', title: limits, extra: meter(p.progress, p.progress >= 0.9 ? 'warn' : '') }));
    });
    fillRows($('pools-rows'), rows, 6, 'No open pools');
  }

  function requestState(r) {
    if (r.completed == null && r.open > 0) return 'open';
    if (r.failed > 0) return 'failed';
    if (r.files > 0 && r.cancelled >= r.files) return 'cancelled';
    return 'done';
  }

  function renderRequests(req) {
    req = req || {};
    const list = req.rows || [];
    const total = req.total || 0;
    setText($('requests-count'), total + ' request' + (total === 1 ? '' : 's') + (req.mine ? ' (yours)' : ''));
    const rows = list.map((r) => {
      const state = requestState(r);
      const finished = state !== 'open';
      return el('tr', { 'data-request': r.id },
        tdNum('id', r.id),
        td('owner', dash(r.owner)),
        tdTime('created', r.created),
        tdNum('files', fmtInt(r.files)),
        tdNum('done', fmtInt(r.done)),
        tdNum('failed', fmtInt(r.failed)),
        tdNum('cancelled', fmtInt(r.cancelled)),
        tdNum('open', fmtInt(r.open)),
        td('state', state, { cls: 'state ' + stateClass(state),
          title: r.completed != null ? 'completed ' + isoTime(r.completed) : '' }),
        tdNum('left', finished ? DASH : fmtDuration(r.time_left_s)));
    });
    fillRows($('requests-rows'), rows, 10, reqStack.length ? 'No older requests' : 'No stage requests');
    reqLastId = list.length ? list[list.length - 1].id : null;
    const before = reqStack.length * REQUESTS_PAGE;
    $('requests-prev').disabled = reqStack.length === 0;
    $('requests-next').disabled = !(list.length >= REQUESTS_PAGE && before + list.length < total && reqLastId != null);
    setText($('requests-page'), list.length ? (before + 1) + '–' + (before + list.length) : '');
  }

  function renderPins(pins) {
    pins = pins || {};
    const list = pins.rows || [];
    setText($('pins-count'), fmtInt(pins.count || 0) + ' file' + (pins.count === 1 ? '' : 's') +
      ' pinned, ' + fmtBytes(pins.bytes || 0));
    const rows = list.map((p) => el('tr', { 'data-pin': p.path },
      td('path', p.path, { cls: 'path', title: p.path }),
      tdTime('expires', p.expires)));
    fillRows($('pins-rows'), rows, 2, 'No pinned files');
  }

  function renderDrives(drives) {
    drives = drives || [];
    const count = {};
    const rows = drives.map((d) => {
      count[d.activity] = (count[d.activity] || 0) + 1;
      return el('tr', { 'data-drive': d.name, class: d.activity },
        td('name', d.name),
        td('library', dash(d.library)),
        td('state', d.activity, { cls: 'state ' + d.activity + ' ' + stateClass(d.activity) }),
        td('volume', dash(d.volume)),
        td('work', dash(d.work)),
        tdNum('efficiency', fmtPct(d.efficiency)),
        tdNum('mounts', fmtInt(d.mounts)),
        tdNum('written', fmtBytes(d.bytes_written)),
        tdNum('read', fmtBytes(d.bytes_read)));
    });
    fillRows($('drives-rows'), rows, 9, 'No drives');
    const parts = ['busy', 'idle', 'offline'].filter((k) => count[k]).map((k) => count[k] + ' ' + k);
    setText($('drives-count'), drives.length + ' drive' + (drives.length === 1 ? '' : 's') +
      (parts.length ? ': ' + parts.join(', ') : ''));
  }

  function renderVolumeGroups(groups) {
    groups = groups || [];
    const rows = groups.map((g) => el('tr', { 'data-group': g.library + '/' + g.state, class: g.count ? null : 'zero' },
      td('library', g.library),
      td('state', g.state, { cls: 'state ' + stateClass(g.state) }),
      tdNum('count', fmtInt(g.count)),
      tdNum('used', fmtBytes(g.used)),
      tdNum('capacity', fmtBytes(g.capacity))));
    fillRows($('groups-rows'), rows, 5, 'No volumes');
    // The state filter offers the states seen; rebuilt only when they change.
    const states = Array.from(new Set(groups.map((g) => String(g.state)))).sort();
    const sel = $('volume-state');
    const have = Array.from(sel.options).slice(1).map((o) => o.value);
    if (have.join('\n') !== states.join('\n')) {
      const current = sel.value;
      sel.replaceChildren(el('option', { value: '' }, 'all'), ...states.map((s) => el('option', { value: s }, s)));
      sel.value = states.indexOf(current) >= 0 ? current : '';
    }
  }

  function render(d) {
    const st = d.status || {};
    setCsrf(d.csrf);
    const parts = [
      () => renderHeader(d, st),
      () => renderSummary(st),
      () => renderCache(st.cache || {}),
      () => renderWorkers(st.workers == null ? null : st.workers),
      () => renderAlarms(d.alarms == null ? null : d.alarms, st.alarms),
      () => renderPools(d.pools),
      () => renderRequests(d.requests),
      () => renderPins(d.pins),
      () => renderDrives(d.drives || st.drives),
      () => renderVolumeGroups(st.volumes),
    ];
    let failed = null;
    for (const f of parts) {
      try { f(); } catch (e) { failed = e; console.error(e); }
    }
    lastOk = Date.now();
    const upd = $('updated');
    setText(upd, fmtTime(lastOk * 1e6), new Date(lastOk).toISOString());
    upd.classList.remove('stale');
    renders++;
    document.body.dataset.updated = String(renders);
    document.body.dataset.loaded = '1';
    if (failed) showMessage('render', 'Part of the page could not be shown: ' + failed.message, 30000);
  }

  // ---- overview polling: one request in flight at most ---------------
  let overviewBusy = false;
  let overviewAgain = false;
  let overviewTimer = 0;

  async function refreshOverview() {
    if (overviewBusy) { overviewAgain = true; return; }
    overviewBusy = true;
    clearTimeout(overviewTimer);
    try {
      const url = '/ui/data/overview' + (reqBefore != null ? '?requests_before=' + encodeURIComponent(reqBefore) : '');
      const data = await getJSON(url);
      render(data);
      clearMessage('overview');
      loadVolumes();
    } catch (e) {
      if (e instanceof Reloading) return;
      const since = lastOk ? '; showing data from ' + fmtTime(lastOk * 1e6) : '';
      showMessage('overview', 'Could not refresh the status: ' + e.message + since);
      $('updated').classList.add('stale');
    } finally {
      overviewBusy = false;
      if (!reloading) {
        if (overviewAgain) { overviewAgain = false; refreshOverview(); }
        else overviewTimer = setTimeout(refreshOverview, OVERVIEW_MS);
      }
    }
  }

  // ---- volumes -------------------------------------------------------
  async function loadVolumes(force) {
    if (vol.busy && !force) return;
    const seq = ++vol.seq;
    vol.busy = true;
    const params = new URLSearchParams({ offset: String(vol.offset), limit: String(VOLUMES_PAGE) });
    if (vol.state) params.set('state', vol.state);
    if (vol.q) params.set('q', vol.q);
    try {
      const page = await getJSON('/ui/data/volumes?' + params.toString());
      if (seq !== vol.seq) return;
      renderVolumes(page);
      clearMessage('volumes');
    } catch (e) {
      if (e instanceof Reloading || seq !== vol.seq) return;
      showMessage('volumes', 'Could not load volumes: ' + e.message, 30000);
    } finally {
      if (seq === vol.seq) vol.busy = false;
    }
  }

  function renderVolumes(page) {
    const list = page.rows || [];
    const total = page.total || 0;
    const offset = page.offset || 0;
    if (!list.length && vol.offset > 0 && total > 0) {
      // The list shrank under this page: go to its last page.
      vol.offset = Math.floor((total - 1) / VOLUMES_PAGE) * VOLUMES_PAGE;
      loadVolumes(true);
      return;
    }
    const rows = list.map((v) => {
      const fill = v.capacity > 0 ? v.used / v.capacity : null;
      const wear = v.mount_limit > 0 ? v.mounts / v.mount_limit : null;
      const info = fmtInt(v.tape_files) + ' tape files' + (v.mounted_in ? '; mounted in ' + v.mounted_in : '');
      return el('tr', { 'data-volume': v.label, class: v.mounted_in ? 'mounted' : null },
        td('label', v.label, { title: info }),
        td('library', dash(v.library)),
        td('family', dash(v.family)),
        td('state', v.state, { cls: 'state ' + stateClass(v.state) }),
        td('fill', fmtPct(fill), { cls: 'num', extra: meter(fill, fill >= 0.95 ? 'full' : '') }),
        tdNum('used', fmtBytes(v.used)),
        tdNum('capacity', fmtBytes(v.capacity)),
        tdNum('mounts', fmtInt(v.mounts)),
        td('wear', fmtPct(wear), { cls: 'num' + (wear >= 0.9 ? ' st-bad' : wear >= 0.75 ? ' st-warn' : ''),
          title: fmtInt(v.mounts) + ' / ' + fmtInt(v.mount_limit) + ' mounts' }));
    });
    fillRows($('volumes-rows'), rows, 9, vol.state || vol.q ? 'No volumes match' : 'No volumes');
    const a = list.length ? offset + 1 : 0;
    const b = list.length ? offset + list.length : 0;
    setText($('volumes-count'), 'rows ' + a + '–' + b + ' of ' + fmtInt(total));
    $('volumes-prev').disabled = offset <= 0;
    $('volumes-next').disabled = offset + list.length >= total;
  }

  // ---- charts --------------------------------------------------------
  let chartsGen = 0;
  let chartsBusy = false;

  // Drops what has no place in a drawing (scripts, foreign content, handlers).
  function cleanSvg(root) {
    root.querySelectorAll('script, foreignObject, iframe').forEach((n) => n.remove());
    [root].concat(Array.from(root.querySelectorAll('*'))).forEach((n) => {
      Array.from(n.attributes).forEach((a) => {
        if (/^on/i.test(a.name) || (/href$/i.test(a.name) && !/^#/.test(a.value))) n.removeAttribute(a.name);
      });
    });
  }

  async function loadChart(fig, hours, gen) {
    const name = fig.dataset.chart;
    const r = await request('/ui/data/chart/' + encodeURIComponent(name) + '?hours=' + encodeURIComponent(hours),
      { headers: { Accept: 'image/svg+xml' } });
    const text = await r.text();
    if (gen !== chartsGen) return;
    const doc = new DOMParser().parseFromString(text, 'image/svg+xml');
    const root = doc.documentElement;
    if (!root || root.localName !== 'svg' || doc.getElementsByTagName('parsererror').length) {
      throw new Error('the ' + name + ' chart is not a drawing');
    }
    const svg = document.importNode(root, true);
    cleanSvg(svg);
    svg.classList.add('chart');
    svg.setAttribute('role', 'img');
    fig.querySelector('div.chart').replaceChildren(svg);
    fig.classList.remove('failed');
  }

  async function loadCharts(force) {
    if (chartsBusy && !force) return;
    const gen = ++chartsGen;
    chartsBusy = true;
    const hours = $('hours').value || '6';
    const figs = Array.from(document.querySelectorAll('#charts figure[data-chart]'));
    const results = await Promise.all(figs.map((fig) => loadChart(fig, hours, gen).then(() => null, (e) => {
      if (gen === chartsGen) fig.classList.add('failed');
      return e;
    })));
    if (gen !== chartsGen) return;
    chartsBusy = false;
    const err = results.filter((e) => e && !(e instanceof Reloading))[0];
    if (err) showMessage('charts', 'Could not load charts: ' + err.message, 30000);
    else clearMessage('charts');
  }

  // ---- actions -------------------------------------------------------
  async function acknowledge(btn) {
    const id = btn.dataset.alarm;
    btn.disabled = true;
    try {
      await request('/ui/data/alarms/' + encodeURIComponent(id) + '/ack',
        { method: 'POST', headers: { 'X-CSRF-Token': csrf, Accept: 'application/json' } });
      clearMessage('ack');
      refreshOverview();
    } catch (e) {
      if (e instanceof Reloading) return;
      showMessage('ack', e.message, 30000);
      btn.disabled = false;
    }
  }

  function debounce(fn, ms) {
    let t = 0;
    return function () { clearTimeout(t); t = setTimeout(fn, ms); };
  }

  function wire() {
    $('alarms-rows').addEventListener('click', (ev) => {
      const btn = ev.target.closest('button.ack');
      if (btn && !btn.disabled) acknowledge(btn);
    });
    $('requests-next').addEventListener('click', () => {
      if (reqLastId == null) return;
      reqStack.push(reqBefore);
      reqBefore = reqLastId;
      $('requests-next').disabled = true;
      refreshOverview();
    });
    $('requests-prev').addEventListener('click', () => {
      if (!reqStack.length) return;
      reqBefore = reqStack.pop();
      $('requests-prev').disabled = true;
      refreshOverview();
    });
    $('volume-state').addEventListener('change', () => {
      vol.state = $('volume-state').value;
      vol.offset = 0;
      loadVolumes(true);
    });
    $('volume-filter').addEventListener('input', debounce(() => {
      const q = $('volume-filter').value.trim();
      if (q === vol.q) return;
      vol.q = q;
      vol.offset = 0;
      loadVolumes(true);
    }, 300));
    $('volumes-prev').addEventListener('click', () => {
      vol.offset = Math.max(0, vol.offset - VOLUMES_PAGE);
      loadVolumes(true);
    });
    $('volumes-next').addEventListener('click', () => {
      vol.offset += VOLUMES_PAGE;
      loadVolumes(true);
    });
    $('hours').addEventListener('change', () => loadCharts(true));
  }

  function start() {
    wire();
    refreshOverview();
    loadCharts();
    setInterval(() => { if (!reloading) loadCharts(); }, CHARTS_MS);
  }

  // The script is deferred: the document is parsed.
  start();
})();
