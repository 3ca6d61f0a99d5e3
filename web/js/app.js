// The Nimbus web console: a page per "#/..." route, kept current by the event stream.
import {api, upload, setCsrf, setUnauthorizedHandler} from './api.js';
import {h, table, bytes, show} from './dom.js';

const session = {me: null, project: null, events: null, retry: null};
// Handlers of the page on screen for live events, by event type ("vm", "task", ...).
let listeners = {};

const canWrite = () => session.me && (session.me.role === 'admin' || session.me.role === 'member');
const isAdmin = () => session.me && session.me.role === 'admin';

// ---- messages ----

function showError(err) {
  const box = document.getElementById('error');
  box.replaceChildren(
    h('span', {}, err.code && err.status ? `${err.message} (${err.code})` : String(err.message || err)),
    h('button', {type: 'button', class: 'link', onclick: clearError}, 'Dismiss'));
  box.hidden = false;
}

function clearError() {
  const box = document.getElementById('error');
  box.hidden = true;
  box.replaceChildren();
}

// Runs an action; its failure shows the API's message.
async function attempt(fn) {
  clearError();
  try {
    return await fn();
  } catch (err) {
    showError(err);
    return undefined;
  }
}

// ---- session ----

function loginPage() {
  const user = h('input', {id: 'login-user', name: 'user', autocomplete: 'username', required: true});
  const password = h('input', {id: 'login-password', name: 'password', type: 'password',
    autocomplete: 'current-password', required: true});
  const form = h('form', {id: 'login-form', class: 'card narrow', onsubmit: async (e) => {
    e.preventDefault();
    const res = await attempt(() => api('POST', '/v1/auth/session',
      {user: user.value, password: password.value}));
    if (!res) return;
    password.value = '';
    setCsrf(res.csrf);
    await start();
  }},
  h('h1', {}, 'Log in'),
  h('label', {for: 'login-user'}, 'User'), user,
  h('label', {for: 'login-password'}, 'Password'), password,
  h('button', {type: 'submit', class: 'primary'}, 'Log in'));
  document.getElementById('nav').hidden = true;
  document.getElementById('logout').hidden = true;
  document.getElementById('who').textContent = '';
  show(form);
  user.focus();
}

function stopEvents() {
  if (session.events) session.events.close();
  session.events = null;
  clearTimeout(session.retry);
  session.retry = null;
}

// The cookie goes along; EventSource reconnects by itself with Last-Event-ID when the
// connection drops. It gives up for good (readyState CLOSED) on an answer other than the
// stream, and when the browser aborts the request itself: Firefox does that to a quiet
// connection when the machine's network changes (an interface comes or goes). Then a new
// stream picks up where this one was (`from`): after the last event seen (since_id), else from
// the time it started (since, in seconds ago). Nothing is missed, and the server says "resync"
// if it no longer holds that far back.
function startEvents(from, delay) {
  stopEvents();
  const query = !from ? '' : from.id ? `?since_id=${encodeURIComponent(from.id)}`
    : `?since=${Math.ceil((Date.now() - from.time) / 1000) + 1}`;
  const es = new EventSource(`/v1/events${query}`);
  let at = from || {time: Date.now()};
  es.onopen = () => { delay = 0; };
  for (const type of ['vm', 'task', 'host', 'audit', 'image', 'quota', 'resync']) {
    es.addEventListener(type, (e) => {
      if (e.lastEventId) at = {id: e.lastEventId};
      let data;
      try { data = JSON.parse(e.data); } catch { return; }
      const fn = listeners[type] || (type === 'resync' ? listeners.any : null);
      if (fn) fn(data.object || data);
    });
  }
  es.onerror = () => {
    if (es.readyState !== EventSource.CLOSED || session.events !== es) return;
    const wait = Math.min(30000, delay ? delay * 2 : 1000);
    session.retry = setTimeout(async () => {
      // A stream refused for an ended session: the login page (api's 401 handler) instead.
      try { await api('GET', '/v1/auth/whoami'); } catch (err) { if (err.status === 401) return; }
      if (session.events === es) startEvents(at, wait);
    }, wait);
  };
  session.events = es;
  window.__nimbusEvents = es; // the browser tests drop it (tests/web/console-flows.mjs)
}

function loggedOut() {
  stopEvents();
  session.me = null;
  setCsrf(null);
  loginPage();
}

async function logout() {
  await attempt(() => api('DELETE', '/v1/auth/session'));
  loggedOut();
}

// After a login or a reload: who am I (and the CSRF value, which a reload lost).
async function start() {
  let who;
  try {
    who = await api('GET', '/v1/auth/whoami');
  } catch {
    loginPage();
    return;
  }
  session.me = who.user;
  session.project = who.project;
  setCsrf(who.csrf);
  document.getElementById('who').textContent =
    `${who.user.name} (${who.user.role}, project ${who.project.name})`;
  for (const a of document.querySelectorAll('#nav [data-admin]')) a.hidden = !isAdmin();
  document.getElementById('nav').hidden = false;
  document.getElementById('logout').hidden = false;
  startEvents();
  if (!location.hash || location.hash === '#/login') location.hash = '#/vms';
  else route();
}

// ---- VMs ----

const VM_ACTIONS = {
  running: ['stop', 'reboot', 'pause'],
  paused: ['resume', 'stop'],
  stopped: ['start'],
  error: ['start', 'stop'],
};

function vmActions(vm, after) {
  if (!canWrite()) return h('span');
  const names = VM_ACTIONS[vm.state] || [];
  return h('span', {class: 'actions'},
    names.map((a) => h('button', {type: 'button', 'data-action': a, onclick: () =>
      attempt(async () => { await api('POST', `/v1/vms/${encodeURIComponent(vm.id)}/${a}`); })}, a)),
    h('button', {type: 'button', class: 'danger', 'data-action': 'delete', onclick: () =>
      attempt(async () => {
        if (!confirm(`Delete VM ${vm.name}?`)) return;
        await api('DELETE', `/v1/vms/${encodeURIComponent(vm.id)}`);
        if (after) after();
      })}, 'delete'));
}

function stateBadge(state) {
  return h('span', {class: `state state-${state}`, 'data-state': state}, state);
}

function vmRow(vm) {
  return h('tr', {'data-id': vm.id},
    h('td', {}, h('a', {href: `#/vms/${encodeURIComponent(vm.id)}`, class: 'vm-name'}, vm.name)),
    h('td', {class: 'vm-state'}, stateBadge(vm.state)),
    h('td', {}, vm.host || ''),
    h('td', {}, vm.ip || ''),
    h('td', {class: 'vm-actions'}, vmActions(vm)));
}

async function createForm(onCreated) {
  const [images, flavors] = await Promise.all([api('GET', '/v1/images'), api('GET', '/v1/flavors')]);
  const name = h('input', {id: 'vm-name', required: true});
  const image = h('select', {id: 'vm-image', required: true},
    images.images.filter((i) => i.state === 'active').map((i) => h('option', {value: i.id}, i.name)));
  const flavor = h('select', {id: 'vm-flavor', required: true},
    flavors.flavors.map((f) => h('option', {value: f.id},
      `${f.name} (${f.vcpus} vCPU, ${f.ram_mib} MiB, ${f.disk_gib} GiB)`)));
  const userData = h('textarea', {id: 'vm-user-data', rows: 4});
  const form = h('form', {id: 'vm-create-form', class: 'card', onsubmit: async (e) => {
    e.preventDefault();
    const body = {name: name.value, image: image.value, flavor: flavor.value};
    if (userData.value) body.user_data = userData.value;
    const res = await attempt(() => api('POST', '/v1/vms', body));
    if (res) { form.remove(); onCreated(res); }
  }},
  h('h2', {}, 'New VM'),
  h('label', {for: 'vm-name'}, 'Name'), name,
  h('label', {for: 'vm-image'}, 'Image'), image,
  h('label', {for: 'vm-flavor'}, 'Flavor'), flavor,
  h('label', {for: 'vm-user-data'}, 'User data (cloud-init, optional)'), userData,
  h('div', {class: 'row'},
    h('button', {type: 'submit', class: 'primary'}, 'Create'),
    h('button', {type: 'button', onclick: () => form.remove()}, 'Cancel')));
  return form;
}

async function vmsPage() {
  const data = await api('GET', '/v1/vms');
  const tbody = h('tbody', {}, data.vms.map(vmRow));
  const slot = h('div');
  const header = h('div', {class: 'page-head'}, h('h1', {}, 'VMs'),
    canWrite() && h('button', {type: 'button', id: 'create-vm', class: 'primary', onclick: async () => {
      if (slot.firstChild) return;
      const form = await attempt(() => createForm(() => {}));
      if (form) { slot.replaceChildren(form); form.querySelector('input').focus(); }
    }}, 'Create VM'));
  show(header, slot, h('div', {class: 'table-wrap'}, h('table', {id: 'vm-table'},
    h('thead', {}, h('tr', {}, ['Name', 'State', 'Host', 'IP', 'Actions'].map((t) => h('th', {scope: 'col'}, t)))),
    tbody)));
  // Events carry the VM's state, not every field: what the list showed is kept.
  const known = new Map(data.vms.map((vm) => [vm.id, vm]));
  listeners.vm = (ev) => {
    const old = tbody.querySelector(`tr[data-id="${CSS.escape(ev.id)}"]`);
    if (ev.state === 'deleted') { if (old) old.remove(); known.delete(ev.id); return; }
    const vm = {...known.get(ev.id), ...ev};
    known.set(vm.id, vm);
    const row = vmRow(vm);
    if (old) old.replaceWith(row); else tbody.append(row);
  };
  listeners.any = () => route();
}

async function vmPage(id) {
  const path = `/v1/vms/${encodeURIComponent(id)}`;
  let vm;
  try {
    vm = await api('GET', path);
  } catch (err) {
    if (err.status === 404) {
      show(h('div', {class: 'card notfound', id: 'not-found'}, h('h1', {}, 'Not found'),
        h('p', {}, err.message), h('a', {href: '#/vms'}, 'Back to the VMs')));
      return;
    }
    throw err;
  }
  const log = h('pre', {id: 'console-log', class: 'log'}, '');
  const loadLog = () => attempt(async () => {
    try {
      log.textContent = await api('GET', `${path}/console-log?bytes=65536`);
    } catch (err) {
      log.textContent = err.message;
    }
  });
  const render = () => {
    // Opening a console is a change (POST .../console): members and admins only.
    const consoles = vm.state === 'running' && canWrite() ? h('span', {class: 'actions'},
      h('a', {class: 'button', href: `console.html?vm=${encodeURIComponent(vm.id)}&type=serial`}, 'Serial console'),
      h('a', {class: 'button', href: `console.html?vm=${encodeURIComponent(vm.id)}&type=vnc`}, 'Screen (VNC)')) : null;
    const fields = [['ID', vm.id], ['State', stateBadge(vm.state)], ['Desired', vm.desired_state],
      ['Host', vm.host], ['IP', vm.ip || ''], ['MAC', vm.mac], ['vCPUs', vm.vcpus],
      ['RAM', `${vm.ram_mib} MiB`], ['Disk', `${vm.disk_gib} GiB`], ['Error', vm.error || ''],
      ['Created', vm.created_at]];
    show(h('div', {class: 'page-head'}, h('h1', {id: 'vm-title'}, vm.name),
      h('span', {class: 'vm-actions'}, vmActions(vm, () => { location.hash = '#/vms'; })), consoles),
    migrateForm(vm),
    h('dl', {class: 'fields'}, fields.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
    h('div', {class: 'page-head'}, h('h2', {}, 'Console log'),
      h('button', {type: 'button', onclick: loadLog}, 'Refresh')),
    log);
  };
  render();
  loadLog();
  listeners.vm = (ev) => {
    if (ev.id !== vm.id) return;
    if (ev.state === 'deleted') { location.hash = '#/vms'; return; }
    attempt(async () => { vm = await api('GET', path); render(); loadLog(); });
  };
}

// Admins move a running or stopped VM to a chosen host, or let the scheduler choose.
function migrateForm(vm) {
  if (!isAdmin() || !['running', 'stopped', 'paused'].includes(vm.state)) return null;
  const target = h('select', {id: 'migrate-host'}, h('option', {value: ''}, 'automatic'));
  // The list fills in when /v1/hosts answers; "automatic" works without it.
  api('GET', '/v1/hosts').then((d) => {
    for (const x of d.hosts) {
      if (x.name !== vm.host) target.append(h('option', {value: x.name}, `${x.name} (${x.state})`));
    }
  }).catch(showError);
  return h('form', {id: 'migrate-form', class: 'row', onsubmit: (e) => {
    e.preventDefault();
    attempt(async () => {
      const body = target.value ? {host: target.value} : {};
      await api('POST', `/v1/vms/${encodeURIComponent(vm.id)}/migrate`, body);
    });
  }},
  h('label', {for: 'migrate-host'}, 'Migrate to'), target,
  h('button', {type: 'submit', 'data-action': 'migrate'}, 'Migrate'));
}

// ---- images ----

function imageRow(i) {
  return h('tr', {'data-id': i.id}, [i.name, stateBadge(i.state), i.disk_format || '',
    bytes(i.size_bytes), bytes(i.virtual_size_bytes),
    canWrite() ? h('button', {type: 'button', class: 'danger', onclick: () => attempt(async () => {
      if (!confirm(`Delete image ${i.name}?`)) return;
      await api('DELETE', `/v1/images/${encodeURIComponent(i.id)}`);
      // The event would remove it too; without a stream (a buffering proxy) this still does.
      const tr = document.querySelector(`#image-table tr[data-id="${CSS.escape(i.id)}"]`);
      if (tr) tr.remove();
    })}, 'delete') : ''].map((c) => h('td', {}, c)));
}

async function imagesPage() {
  const data = await api('GET', '/v1/images');
  const tbody = h('tbody', {}, data.images.map(imageRow));
  let form = null;
  if (canWrite()) {
    const name = h('input', {id: 'image-name', required: true});
    const file = h('input', {id: 'image-file', type: 'file', required: true});
    const bar = h('progress', {id: 'upload-progress', max: 100, value: 0});
    const pct = h('span', {id: 'upload-percent', 'aria-live': 'polite'}, '');
    form = h('form', {id: 'image-upload-form', class: 'card', onsubmit: async (e) => {
      e.preventDefault();
      const f = file.files[0];
      if (!f) return;
      const ok = await attempt(async () => {
        const img = await api('POST', '/v1/images', {name: name.value});
        await upload(`/v1/images/${encodeURIComponent(img.id)}/file`, f, (sent, total) => {
          const p = total ? Math.floor((sent * 100) / total) : 100;
          bar.value = p;
          pct.textContent = `${p} %`;
        });
        return true;
      });
      if (ok) route();
    }},
    h('h2', {}, 'Upload an image'),
    h('label', {for: 'image-name'}, 'Name'), name,
    h('label', {for: 'image-file'}, 'File (qcow2 or raw)'), file,
    h('div', {class: 'row'}, h('button', {type: 'submit', class: 'primary'}, 'Upload'), bar, pct));
  }
  show(h('h1', {}, 'Images'), form, h('div', {class: 'table-wrap'}, h('table', {id: 'image-table'},
    h('thead', {}, h('tr', {}, ['Name', 'State', 'Format', 'Size', 'Virtual size', '']
      .map((t) => h('th', {scope: 'col'}, t)))), tbody)));
  // Image events carry the whole image (or {id, state: "deleted"}).
  listeners.image = (ev) => {
    const old = tbody.querySelector(`tr[data-id="${CSS.escape(ev.id)}"]`);
    if (ev.state === 'deleted') { if (old) old.remove(); return; }
    if (old) old.replaceWith(imageRow(ev)); else tbody.append(imageRow(ev));
  };
  listeners.any = () => route();
}

// ---- flavors, hosts, tasks, audit ----

// A labelled number input; an empty one is left out of the request.
function numberField(id, label, attrs) {
  const input = h('input', {id, name: id, type: 'number', min: 0, step: 1, ...attrs});
  return [h('label', {for: id}, label), input];
}

function flavorForm() {
  const name = h('input', {id: 'flavor-name', required: true});
  const fields = [['flavor-vcpus', 'vCPUs', 'vcpus', {required: true, min: 1}],
    ['flavor-ram', 'RAM (MiB)', 'ram_mib', {required: true, min: 1}],
    ['flavor-disk', 'Disk (GiB)', 'disk_gib', {required: true, min: 1}],
    ['flavor-net-in', 'Net in (Mbit/s, optional)', 'net_in_mbit', {}],
    ['flavor-net-out', 'Net out (Mbit/s, optional)', 'net_out_mbit', {}]]
    .map(([id, label, key, attrs]) => ({key, nodes: numberField(id, label, attrs)}));
  const form = h('form', {id: 'flavor-create-form', class: 'card', onsubmit: async (e) => {
    e.preventDefault();
    const body = {name: name.value};
    for (const f of fields) if (f.nodes[1].value !== '') body[f.key] = Number(f.nodes[1].value);
    if (await attempt(() => api('POST', '/v1/flavors', body))) route();
  }},
  h('h2', {}, 'New flavor'),
  h('label', {for: 'flavor-name'}, 'Name'), name,
  fields.flatMap((f) => f.nodes),
  h('div', {class: 'row'}, h('button', {type: 'submit', class: 'primary'}, 'Create flavor')));
  return form;
}

async function flavorsPage() {
  const data = await api('GET', '/v1/flavors');
  show(h('h1', {}, 'Flavors'), isAdmin() ? flavorForm() : null,
    table(['Name', 'vCPUs', 'RAM', 'Disk', 'Net in/out (Mbit/s)', ''],
      data.flavors.map((f) => [f.name, f.vcpus, `${f.ram_mib} MiB`, `${f.disk_gib} GiB`,
        `${f.net_in_mbit ?? '-'} / ${f.net_out_mbit ?? '-'}`,
        isAdmin() ? h('button', {type: 'button', class: 'danger', 'data-action': 'delete',
          onclick: () => attempt(async () => {
            if (!confirm(`Delete flavor ${f.name}?`)) return;
            await api('DELETE', `/v1/flavors/${encodeURIComponent(f.id)}`);
            route();
          })}, 'delete') : ''])));
}

// ---- projects, users ----

async function projectsPage() {
  const data = await api('GET', '/v1/projects');
  let form = null;
  if (isAdmin()) {
    const name = h('input', {id: 'project-name', required: true});
    form = h('form', {id: 'project-create-form', class: 'card', onsubmit: async (e) => {
      e.preventDefault();
      if (await attempt(() => api('POST', '/v1/projects', {name: name.value}))) route();
    }},
    h('h2', {}, 'New project'), h('label', {for: 'project-name'}, 'Name'), name,
    h('div', {class: 'row'}, h('button', {type: 'submit', class: 'primary'}, 'Create project')));
  }
  show(h('h1', {}, 'Projects'), form,
    table(['Name', 'ID', 'Created', ''], data.projects.map((p) => [
      h('a', {href: `#/quotas/${encodeURIComponent(p.id)}`}, p.name), p.id, p.created_at,
      isAdmin() ? h('button', {type: 'button', class: 'danger', 'data-action': 'delete',
        onclick: () => attempt(async () => {
          if (!confirm(`Delete project ${p.name}?`)) return;
          await api('DELETE', `/v1/projects/${encodeURIComponent(p.id)}`);
          route();
        })}, 'delete') : ''])));
}

async function usersPage() {
  const [data, projects] = await Promise.all([api('GET', '/v1/users'), api('GET', '/v1/projects')]);
  const names = new Map(projects.projects.map((p) => [p.id, p.name]));
  const name = h('input', {id: 'user-name', required: true, autocomplete: 'off'});
  const password = h('input', {id: 'user-password', type: 'password', required: true,
    autocomplete: 'new-password'});
  const role = h('select', {id: 'user-role'},
    ['member', 'reader', 'admin'].map((r) => h('option', {value: r}, r)));
  const project = h('select', {id: 'user-project'},
    projects.projects.map((p) => h('option', {value: p.id}, p.name)));
  const form = h('form', {id: 'user-create-form', class: 'card', onsubmit: async (e) => {
    e.preventDefault();
    const body = {name: name.value, password: password.value, role: role.value,
      project: project.value};
    if (await attempt(() => api('POST', '/v1/users', body))) route();
  }},
  h('h2', {}, 'New user'),
  h('label', {for: 'user-name'}, 'Name'), name,
  h('label', {for: 'user-password'}, 'Password'), password,
  h('label', {for: 'user-role'}, 'Role'), role,
  h('label', {for: 'user-project'}, 'Project'), project,
  h('div', {class: 'row'}, h('button', {type: 'submit', class: 'primary'}, 'Create user')));
  show(h('h1', {}, 'Users'), form,
    table(['Name', 'Role', 'Project', 'Created', ''], data.users.map((u) => [u.name, u.role,
      names.get(u.project_id) || u.project_id, u.created_at,
      h('button', {type: 'button', class: 'danger', 'data-action': 'delete',
        onclick: () => attempt(async () => {
          if (!confirm(`Delete user ${u.name}?`)) return;
          await api('DELETE', `/v1/users/${encodeURIComponent(u.id)}`);
          route();
        })}, 'delete')])));
}

// ---- quotas and usage ----

const QUOTA_UNITS = {ram_mib: 'MiB', disk_gib: 'GiB', volume_gib: 'GiB'};

function quotaBar(key, limit, used) {
  const unit = QUOTA_UNITS[key] || '';
  const text = limit === null || limit === undefined
    ? `${key}: ${used} ${unit} (no limit)`
    : `${key}: ${used} / ${limit} ${unit} (${limit ? Math.round((used * 100) / limit) : 100} %)`;
  return h('div', {class: 'capacity quota', 'data-resource': key},
    h('meter', {min: 0, max: limit || 1, value: limit === null ? 0 : used,
      high: (limit || 1) * 0.85, optimum: 0, 'aria-label': `${key} used`}),
    h('span', {}, text));
}

function quotaForm(pid, limits) {
  const inputs = Object.keys(limits).map((k) => numberField(`quota-${k}`, k,
    {value: limits[k] ?? '', placeholder: 'no limit'}));
  return h('form', {id: 'quota-form', class: 'card', onsubmit: async (e) => {
    e.preventDefault();
    // PUT sets every limit: an empty field means no limit.
    const body = {};
    Object.keys(limits).forEach((k, i) => {
      const v = inputs[i][1].value;
      body[k] = v === '' ? null : Number(v);
    });
    if (await attempt(() => api('PUT', `/v1/projects/${encodeURIComponent(pid)}/quota`, body))) route();
  }},
  h('h2', {}, 'Limits'), h('div', {class: 'grid'}, inputs.map((pair) => h('div', {}, pair))),
  h('div', {class: 'row'}, h('button', {type: 'submit', class: 'primary'}, 'Save limits')));
}

// The usage API sums a window (from, to): a day's figures are one call per day, so the chart
// shows the daily roll-ups of the last `days` days.
async function dailyUsage(pid, days) {
  const today = new Date();
  today.setUTCHours(0, 0, 0, 0);
  const day = (d) => new Date(today.getTime() - d * 86400000).toISOString().slice(0, 10);
  const calls = [];
  for (let d = days - 1; d >= 0; d--) {
    const from = day(d);
    const to = d === 0 ? null : day(d - 1);
    const q = to ? `from=${from}&to=${to}` : `from=${from}`;
    calls.push(api('GET', `/v1/projects/${encodeURIComponent(pid)}/usage?${q}`)
      .then((u) => ({day: from, vcpu: u.totals.vcpu_hours, ram: u.totals.ram_gib_hours})));
  }
  return Promise.all(calls);
}

// Bars of vCPU-hours and RAM GiB-hours a day, drawn by hand (no chart library).
function drawUsage(canvas, series) {
  const ctx = canvas.getContext('2d');
  const w = canvas.width, hgt = canvas.height, pad = 28;
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, w, hgt);
  // Scaled to the busiest day, so that a quiet project's few minutes still show.
  const max = Math.max(...series.flatMap((s) => [s.vcpu, s.ram])) || 1;
  ctx.strokeStyle = '#888';
  ctx.beginPath();
  ctx.moveTo(pad, 4);
  ctx.lineTo(pad, hgt - pad);
  ctx.lineTo(w - 4, hgt - pad);
  ctx.stroke();
  ctx.fillStyle = '#333';
  ctx.font = '11px sans-serif';
  ctx.fillText(String(Math.round(max * 100) / 100), 2, 12);
  ctx.fillText('0', 2, hgt - pad);
  const slot = (w - pad - 8) / series.length;
  const bw = Math.max(2, slot / 2 - 2);
  series.forEach((s, i) => {
    const x = pad + 4 + i * slot;
    const bar = (v, color, dx) => {
      const bh = ((hgt - pad - 8) * v) / max;
      ctx.fillStyle = color;
      ctx.fillRect(x + dx, hgt - pad - bh, bw, bh);
    };
    bar(s.vcpu, '#2a6ebb', 0);
    bar(s.ram, '#e08a1e', bw + 1);
    if (i % Math.ceil(series.length / 7) === 0) {
      ctx.fillStyle = '#333';
      ctx.fillText(s.day.slice(5), x, hgt - pad + 14);
    }
  });
}

async function quotasPage(m) {
  const pid = m && m[1] ? decodeURIComponent(m[1]) : session.project.id;
  const q = await api('GET', `/v1/projects/${encodeURIComponent(pid)}/quota`);
  const canvas = h('canvas', {id: 'usage-chart', width: 640, height: 200, role: 'img',
    'aria-label': 'vCPU-hours and RAM GiB-hours a day, last 14 days'});
  const summary = h('p', {id: 'usage-summary'}, 'Loading usage...');
  show(h('h1', {}, `Quotas and usage: ${q.project.name}`),
    h('div', {class: 'card', id: 'quota-bars'},
      Object.keys(q.limits).map((k) => quotaBar(k, q.limits[k], q.in_use[k] ?? 0))),
    isAdmin() ? quotaForm(pid, q.limits) : null,
    h('h2', {}, 'Usage, last 14 days'),
    h('p', {class: 'legend'}, h('span', {class: 'key key-vcpu'}, 'vCPU-hours'), ' ',
      h('span', {class: 'key key-ram'}, 'RAM GiB-hours')),
    canvas, summary);
  const series = await dailyUsage(pid, 14);
  drawUsage(canvas, series);
  const sum = (k) => {
    const n = series.reduce((a, s) => a + s[k], 0);
    return n > 0 && n < 0.01 ? 'under 0.01' : String(Math.round(n * 100) / 100);
  };
  summary.textContent = `${sum('vcpu')} vCPU-hours, ${sum('ram')} RAM GiB-hours in 14 days`;
  listeners.quota = (ev) => { if (ev.project_id === pid) route(); };
}

function capacityBar(label, res, unit) {
  if (!res) return '';
  const cap = res.capacity || 0;
  const pct = cap ? Math.min(100, Math.round((res.used * 100) / cap)) : 0;
  return h('div', {class: 'capacity'},
    h('meter', {min: 0, max: cap || 1, value: res.used, high: cap * 0.85, optimum: 0,
      'aria-label': `${label} used`}),
    h('span', {}, `${label}: ${res.used} / ${cap} ${unit} (${pct} %)`));
}

async function hostsPage() {
  const data = await api('GET', '/v1/hosts');
  show(h('h1', {}, 'Hosts'), table(['Name', 'State', 'Connection', 'vCPUs', 'RAM', 'Disk', 'VMs'],
    data.hosts.map((x) => [x.name, stateBadge(x.state), x.connection,
      capacityBar('vCPU', x.vcpus, ''), capacityBar('RAM', x.ram_mib, 'MiB'),
      capacityBar('Disk', x.disk_gib, 'GiB'), x.vms])));
  listeners.host = () => route();
}

function taskRow(t) {
  return h('tr', {'data-id': t.id}, [t.kind, stateBadge(t.state),
    t.progress !== null && t.progress !== undefined ? `${t.progress} %` : `${t.step}/${t.steps}`,
    t.target_id, t.error ? t.error.message : '', t.created_at].map((c) => h('td', {}, c)));
}

async function tasksPage() {
  const data = await api('GET', '/v1/tasks?limit=100');
  const tbody = h('tbody', {}, data.tasks.map(taskRow));
  show(h('h1', {}, 'Tasks'), h('div', {class: 'table-wrap'}, h('table', {id: 'task-table'},
    h('thead', {}, h('tr', {}, ['Kind', 'State', 'Progress', 'Target', 'Error', 'Created']
      .map((t) => h('th', {scope: 'col'}, t)))), tbody)));
  listeners.task = (t) => {
    const old = tbody.querySelector(`tr[data-id="${CSS.escape(t.id)}"]`);
    if (old) old.replaceWith(taskRow(t)); else tbody.prepend(taskRow(t));
  };
}

function auditRow(e) {
  return h('tr', {}, [e.at, e.user || '', e.source, `${e.method} ${e.path}`, e.action, e.target,
    e.status, e.result].map((c) => h('td', {}, c)));
}

async function auditPage() {
  const data = await api('GET', '/v1/audit?limit=100');
  const tbody = h('tbody', {}, data.events.map(auditRow));
  show(h('h1', {}, 'Audit log'), h('div', {class: 'table-wrap'}, h('table', {id: 'audit-table'},
    h('thead', {}, h('tr', {}, ['At', 'User', 'Source', 'Request', 'Action', 'Target', 'Status',
      'Result'].map((t) => h('th', {scope: 'col'}, t)))), tbody)));
  listeners.audit = (e) => tbody.prepend(auditRow(e));
}

// ---- routing ----

const PAGES = [
  [/^#\/vms\/([^/]+)$/, (m) => vmPage(decodeURIComponent(m[1]))],
  [/^#\/vms$/, vmsPage],
  [/^#\/images$/, imagesPage],
  [/^#\/flavors$/, flavorsPage],
  [/^#\/hosts$/, hostsPage],
  [/^#\/projects$/, projectsPage],
  [/^#\/users$/, usersPage],
  [/^#\/quotas(?:\/([^/]+))?$/, quotasPage],
  [/^#\/tasks$/, tasksPage],
  [/^#\/audit$/, auditPage],
];

async function route() {
  if (!session.me) return;
  listeners = {};
  clearError();
  const hash = location.hash || '#/vms';
  for (const a of document.querySelectorAll('#nav a')) {
    if (hash.startsWith(a.getAttribute('href'))) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  for (const [re, page] of PAGES) {
    const m = hash.match(re);
    if (m) {
      await attempt(() => page(m));
      document.getElementById('main').focus({preventScroll: true});
      return;
    }
  }
  show(h('div', {class: 'card notfound'}, h('h1', {}, 'Not found'), h('p', {}, 'No such page.')));
}

window.addEventListener('hashchange', route);
// "#main" would be taken for a page: the skip link moves the focus itself.
document.querySelector('.skip').addEventListener('click', (e) => {
  e.preventDefault();
  document.getElementById('main').focus();
});
document.getElementById('logout').addEventListener('click', logout);
setUnauthorizedHandler(loggedOut);
start();
