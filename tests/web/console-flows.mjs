// Browser tests of the Nimbus web console, in headless Chromium (Debian's chromium) or Firefox
// (Debian's firefox-esr, through WebDriver BiDi) driven by puppeteer-core.
// tests/e2e/test_web.py starts nimbusd; one scenario runs as
//
//   node console-flows.mjs SCENARIO '{"base": "http://127.0.0.1:PORT", "browser": "firefox", ...}'
//
// and prints one JSON object on the last line of stdout: what the scenario saw (not a verdict),
// plus "screenshots" (paths), "error" when something could not be done and "skipped" (a reason)
// when the scenario cannot run in that browser; test_web.py asserts on it.
//
// With --serve in place of SCENARIO it starts the browser once and runs one scenario per line of
// stdin ('{"scenario": "member", "cfg": {...}}', that cfg over the command line's), each in a
// browser context of its own (its own cookies and storage), printing each one's JSON object on a
// line of its own; at the end of stdin it closes the browser. test_web.py starts each browser
// once that way instead of once per scenario (a Firefox takes about 3 s to start).
import puppeteer from 'puppeteer-core';
import path from 'node:path';
import readline from 'node:readline';

const [firstArg, configJson] = process.argv.slice(2);
const SERVE = firstArg === '--serve';
const baseCfg = JSON.parse(configJson || '{}');
const BROWSER = baseCfg.browser || 'chromium';
// The scenario being run, its configuration, what it saw, and how long it waits for the page.
let scenario = SERVE ? null : firstArg;
let cfg = baseCfg;
let result = {scenario, browser: BROWSER, screenshots: [], console_errors: []};
let WAIT = cfg.timeout_ms || 120000;

async function shot(page, name) {
  // Chromium's keep the names they had; another browser's carry its name.
  const suffix = BROWSER === 'chromium' ? '' : `-${BROWSER}`;
  const file = path.join(cfg.shots, `${scenario}-${name}${suffix}.png`);
  await page.screenshot({path: file, fullPage: true});
  result.screenshots.push(file);
}

async function login(page, user, password) {
  await page.goto(`${cfg.base}/`, {waitUntil: 'domcontentloaded'});
  await page.waitForSelector('#login-form');
  await page.type('#login-user', user);
  await page.type('#login-password', password);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#vm-table', {timeout: WAIT});
}

// Waits for the page whose heading is `title` and for its table: after a change of hash the
// page before (the VM list, say) still has a table until the new one has answered.
async function waitPage(page, title) {
  await page.waitForFunction((t) => {
    const h1 = document.querySelector('main h1');
    return h1 && h1.textContent === t && document.querySelector('main table');
  }, {timeout: WAIT}, title);
}

// The state a VM's row in the list shows.
const rowState = (page, name) => page.evaluate((n) => {
  for (const tr of document.querySelectorAll('#vm-table tbody tr')) {
    if (tr.querySelector('.vm-name').textContent === n) {
      return tr.querySelector('[data-state]').dataset.state;
    }
  }
  return null;
}, name);

async function waitRowState(page, name, state) {
  await page.waitForFunction((n, s) => {
    for (const tr of document.querySelectorAll('#vm-table tbody tr')) {
      if (tr.querySelector('.vm-name').textContent === n) {
        return tr.querySelector('[data-state]').dataset.state === s;
      }
    }
    return s === null;
  }, {timeout: WAIT, polling: 200}, name, state);
}

async function clickRowAction(page, name, action) {
  const clicked = await page.evaluate((n, a) => {
    for (const tr of document.querySelectorAll('#vm-table tbody tr')) {
      if (tr.querySelector('.vm-name').textContent === n) {
        const b = tr.querySelector(`button[data-action="${a}"]`);
        if (b) { b.click(); return true; }
      }
    }
    return false;
  }, name, action);
  if (!clicked) throw new Error(`no ${action} button for ${name}`);
}

// A member's day: upload an image, create a VM and watch it run, stop and delete it, visit
// every page, then log out.
async function member(page) {
  await login(page, cfg.user, cfg.password);
  const cookies = await page.cookies();
  const c = cookies.find((x) => x.name === 'nimbus_session');
  result.cookie = c ? {httpOnly: c.httpOnly, sameSite: c.sameSite, secure: c.secure,
    path: c.path, session_value_length: c.value.length} : null;
  result.cookie_visible_to_script = await page.evaluate(() => document.cookie.includes('nimbus_session'));
  result.create_button = !!(await page.$('#create-vm'));
  await shot(page, 'vms-empty');

  // images: upload with a progress bar
  await page.goto(`${cfg.base}/#/images`);
  await page.waitForSelector('#image-upload-form');
  await page.type('#image-name', cfg.image_name);
  const input = await page.$('#image-file');
  await input.uploadFile(cfg.image_file);
  await page.evaluate(() => {
    // Every value the bar takes, to show it moved and where it ended.
    window.__progress = [];
    const bar = document.getElementById('upload-progress');
    new MutationObserver(() => window.__progress.push(Number(bar.value)))
      .observe(bar, {attributes: true, attributeFilter: ['value']});
    const pct = document.getElementById('upload-percent');
    new MutationObserver(() => window.__progress.push(pct.textContent))
      .observe(pct, {childList: true, characterData: true, subtree: true});
  });
  await page.click('#image-upload-form button[type=submit]');
  // Once the upload is done the page reloads its list, and the image is there, active.
  await page.waitForFunction((n) => [...document.querySelectorAll('td')].some((td) => td.textContent === n)
    && [...document.querySelectorAll('tr')].some((tr) => tr.textContent.includes(n) && tr.textContent.includes('active')),
  {timeout: WAIT}, cfg.image_name);
  result.progress_seen = await page.evaluate(() => window.__progress);
  await shot(page, 'images');

  // VMs: create, and see it turn running without a reload
  await page.goto(`${cfg.base}/#/vms`);
  await page.waitForSelector('#create-vm');
  await page.evaluate(() => { window.__no_reload = 'still here'; });
  // The browser gives up on the event stream, as Firefox does when the machine's network
  // changes: the page opens another that picks up where this one was, so the events of the
  // create below (sent before it is open) still reach the list.
  await page.evaluate(() => {
    window.__dropped = window.__nimbusEvents;
    window.__dropped.close();
    window.__dropped.dispatchEvent(new Event('error'));
  });
  await page.click('#create-vm');
  await page.waitForSelector('#vm-create-form');
  await page.type('#vm-name', cfg.vm_name);
  await page.select('#vm-image', await page.evaluate((n) =>
    [...document.querySelectorAll('#vm-image option')].find((o) => o.textContent === n).value, cfg.image_name));
  await page.select('#vm-flavor', await page.evaluate((n) =>
    [...document.querySelectorAll('#vm-flavor option')].find((o) => o.textContent.startsWith(`${n} `)).value, cfg.flavor));
  await shot(page, 'vm-create-form');
  await page.click('#vm-create-form button[type=submit]');
  await page.waitForFunction((n) => [...document.querySelectorAll('#vm-table .vm-name')].some((a) => a.textContent === n),
    {timeout: WAIT}, cfg.vm_name);
  result.first_state = await rowState(page, cfg.vm_name);
  await waitRowState(page, cfg.vm_name, 'running');
  result.running_without_reload = await page.evaluate(() => window.__no_reload === 'still here');
  result.stream_reopened = await page.evaluate(() => window.__nimbusEvents !== window.__dropped
    && window.__nimbusEvents.readyState === EventSource.OPEN);
  result.vm_id = await page.evaluate((n) => [...document.querySelectorAll('#vm-table tbody tr')]
    .find((tr) => tr.querySelector('.vm-name').textContent === n).dataset.id, cfg.vm_name);
  await shot(page, 'vms-running');

  // its page, with the console log and the console buttons
  await page.goto(`${cfg.base}/#/vms/${result.vm_id}`);
  await page.waitForSelector('#vm-title');
  result.detail_title = await page.$eval('#vm-title', (e) => e.textContent);
  result.console_buttons = await page.$$eval('a.button', (as) => as.map((a) => a.getAttribute('href')));
  await shot(page, 'vm-detail');

  for (const p of ['flavors', 'tasks', 'audit']) {
    await page.goto(`${cfg.base}/#/${p}`);
    await page.waitForSelector('main h1');
    await page.waitForFunction(() => !document.querySelector('#error:not([hidden])') && document.querySelector('main table'));
    await shot(page, p);
  }
  await page.goto(`${cfg.base}/#/tasks`);
  await page.waitForSelector('#task-table');
  result.task_rows = await page.$$eval('#task-table tbody tr', (r) => r.length);

  // stop, then delete, from the list; the list follows by itself
  await page.goto(`${cfg.base}/#/vms`);
  await page.waitForSelector('#vm-table');
  await page.evaluate(() => { window.__no_reload = 'still here'; });
  await clickRowAction(page, cfg.vm_name, 'stop');
  await waitRowState(page, cfg.vm_name, 'stopped');
  result.stopped = true;
  page.on('dialog', (d) => d.accept());
  await clickRowAction(page, cfg.vm_name, 'delete');
  await waitRowState(page, cfg.vm_name, null);
  result.deleted_from_list = true;
  result.no_reload_after_stop_delete = await page.evaluate(() => window.__no_reload === 'still here');
  await shot(page, 'vms-after-delete');

  // log out: the page shows the login, and the old cookie no longer works
  const old = (await page.cookies()).find((x) => x.name === 'nimbus_session');
  await page.click('#logout');
  await page.waitForSelector('#login-form');
  result.cookie_after_logout = !!(await page.cookies()).find((x) => x.name === 'nimbus_session');
  await page.setCookie(old);
  result.whoami_after_logout = await page.evaluate(async () =>
    (await fetch('/v1/auth/whoami', {credentials: 'same-origin'})).status);
  await shot(page, 'logged-out');
}

// A reader sees the lists but no button it could not use.
async function reader(page) {
  await login(page, cfg.user, cfg.password);
  await page.waitForFunction(() => document.querySelectorAll('#vm-table tbody tr').length > 0, {timeout: WAIT});
  result.vm_rows = await page.$$eval('#vm-table tbody tr', (r) => r.length);
  result.create_button = !!(await page.$('#create-vm'));
  result.action_buttons = await page.$$eval('#vm-table button', (b) => b.length);
  await shot(page, 'vms');
  await page.goto(`${cfg.base}/#/images`);
  await waitPage(page, 'Images');
  result.upload_form = !!(await page.$('#image-upload-form'));
  result.image_rows = await page.$$eval('#image-table tbody tr', (r) => r.length);
  result.image_buttons = await page.$$eval('main table button', (b) => b.length);
  result.hosts_link_visible = await page.$eval('#nav a[href="#/hosts"]', (a) => !a.hidden);
  await shot(page, 'images');
}

// A tenant of another project: that project's VM page is a not-found, and strings an attacker
// controls (a path, an audit target) show as text and run nothing.
async function tenant(page) {
  await login(page, cfg.user, cfg.password);
  await page.goto(`${cfg.base}/#/vms/${cfg.foreign_vm_id}`);
  await page.waitForSelector('#not-found', {timeout: WAIT});
  result.not_found_text = await page.$eval('#not-found', (e) => e.textContent);
  result.foreign_name_shown = await page.evaluate((n) => document.body.textContent.includes(n), cfg.foreign_vm_name);
  await shot(page, 'foreign-vm');

  // The payload as a VM "name" in the URL: the API's 404 message quotes it.
  await page.goto(`${cfg.base}/#/vms/${encodeURIComponent(cfg.xss)}`);
  await page.waitForSelector('#not-found');
  result.xss_not_found_text = await page.$eval('#not-found', (e) => e.textContent);
  // ... as the name in the create form: the API refuses it, its message shows.
  await page.goto(`${cfg.base}/#/vms`);
  await page.waitForSelector('#create-vm');
  await page.click('#create-vm');
  await page.waitForSelector('#vm-create-form');
  await page.type('#vm-name', cfg.xss);
  await page.click('#vm-create-form button[type=submit]');
  await page.waitForSelector('#error:not([hidden])');
  result.create_error_text = await page.$eval('#error', (e) => e.textContent);
  await shot(page, 'xss-create-error');
  // ... and as an audit record's target (the test made a request naming it).
  await page.goto(`${cfg.base}/#/audit`);
  await page.waitForSelector('#audit-table');
  result.audit_has_payload_text = await page.evaluate((x) =>
    [...document.querySelectorAll('#audit-table td')].some((td) => td.textContent.includes(x)), cfg.xss);
  await shot(page, 'audit');
  await new Promise((r) => setTimeout(r, 500)); // an onerror would have run by now
  result.xss_fired = await page.evaluate(() => window.__xss !== undefined);
  result.img_elements = await page.$$eval('img', (i) => i.length);
}

// The widths every page is checked at: a tablet held upright, and a desktop (cfg.widths, to
// try another).
const widths = () => cfg.widths || [{width: 768, height: 1024}, {width: 1280, height: 900}];

// Opens a page by its hash, as a click on its link would, and waits until it has drawn itself:
// its heading, no error, and what it loads after the heading (the quota page's usage).
async function openPage(page, hash, title) {
  await page.evaluate((x) => { location.hash = x; }, hash);
  await page.waitForFunction((t) => {
    const h1 = document.querySelector('main h1');
    if (!h1 || !(t.endsWith('*') ? h1.textContent.startsWith(t.slice(0, -1)) : h1.textContent === t)) return false;
    if (!document.getElementById('error').hidden) throw new Error(document.getElementById('error').textContent);
    const usage = document.getElementById('usage-summary');
    return !usage || usage.textContent.includes('vCPU-hours');
  }, {timeout: WAIT, polling: 100}, title);
}

// The page scrolls sideways when its content is wider than the window; a table may be wider
// but scrolls inside its .table-wrap. The elements that stick out are named, to find the cause.
const overflowOf = (page) => page.evaluate(() => {
  const limit = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll('body *')]
    .filter((e) => !(e.parentElement && e.parentElement.closest('.table-wrap')))
    .filter((e) => e.getBoundingClientRect().right > limit + 0.5)
    .slice(0, 5)
    .map((e) => `${e.tagName.toLowerCase()}${e.id ? `#${e.id}` : ''}${e.className ? `.${String(e.className).split(' ').join('.')}` : ''}`
      + ` right=${Math.round(e.getBoundingClientRect().right)}`);
  return {scroll_width: document.scrollingElement.scrollWidth, inner_width: window.innerWidth, wide};
});

// Tab from the top of the page (its skip link, where a first Tab lands) until every element a
// user should reach has had the focus: the navigation's links, every button, form field and
// link. A trap keeps the focus on a few elements, and the rest are then reported missing. It
// never Tabs past the last one: a headless Firefox hands the focus to its own (hidden) toolbar
// there, and it does not come back to the page.
async function tabThrough(page) {
  const targets = await page.evaluate(() => {
    const visible = (e) => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden';
    const all = [...document.querySelectorAll('a[href], button, input, select, textarea, [tabindex]')]
      .filter((e) => e.tabIndex >= 0 && !e.disabled && visible(e));
    all.forEach((e, i) => { e.dataset.tabCheck = String(i); });
    window.__tabSeen = [];
    if (!window.__tabHook) {
      window.__tabHook = (ev) => { if (ev.target.dataset && ev.target.dataset.tabCheck) window.__tabSeen.push(ev.target.dataset.tabCheck); };
      document.addEventListener('focusin', window.__tabHook, true);
    }
    all[0].focus();
    return all.map((e) => `${e.closest('#nav') ? 'nav ' : ''}${e.tagName.toLowerCase()}`
      + `${e.id ? `#${e.id}` : ''}:${(e.textContent || e.getAttribute('aria-label') || '').trim().slice(0, 24)}`);
  });
  // As many presses as targets not yet seen: each reaches at most one, so the last is never
  // passed (a scrolling table can be a stop of its own, hence the rounds).
  let presses = 0;
  for (let round = 0; round < 10 && presses < targets.length * 2; round++) {
    const unseen = targets.length - new Set(await page.evaluate(() => window.__tabSeen)).size;
    if (unseen === 0) break;
    for (let i = 0; i < unseen; i++, presses++) await page.keyboard.press('Tab');
  }
  const order = await page.evaluate(() => window.__tabSeen);
  return {
    targets: targets.length,
    nav: targets.filter((t) => t.startsWith('nav ')).length,
    buttons: targets.filter((t) => t.includes('button')).length,
    presses,
    // each reached in the page's order: the focus moved forward through them
    in_order: order.every((x, i) => i === 0 || Number(x) > Number(order[i - 1])),
    missing: targets.filter((_, i) => !order.includes(String(i))),
  };
}

// Every page at tablet and desktop width, with the keyboard alone: no page scrolls sideways,
// and Tab reaches the navigation and every button. Then Enter on a link and the skip link.
async function layout(page) {
  const pages = [['vms', '#/vms', 'VMs'], ['vm', `#/vms/${encodeURIComponent(cfg.vm_id)}`, cfg.vm_name],
    ['images', '#/images', 'Images'], ['flavors', '#/flavors', 'Flavors'], ['hosts', '#/hosts', 'Hosts'],
    ['projects', '#/projects', 'Projects'], ['users', '#/users', 'Users'],
    ['quotas', '#/quotas', 'Quotas and usage: *'], ['tasks', '#/tasks', 'Tasks'], ['audit', '#/audit', 'Audit log']];
  const WIDTHS = widths();
  await page.setViewport(WIDTHS[0]);
  await login(page, cfg.user, cfg.password);
  result.pages = [];
  for (const size of WIDTHS) {
    await page.setViewport(size);
    for (const [name, hash, title] of pages) {
      await openPage(page, hash, title);
      const tab = await tabThrough(page);
      result.pages.push({page: name, width: size.width, ...(await overflowOf(page)), tab});
      await shot(page, `${name}-${size.width}`);
    }
  }
  await page.setViewport(WIDTHS[0]);
  // Enter on a focused navigation link opens its page.
  await page.focus('#nav a[href="#/images"]');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => location.hash === '#/images' && document.querySelector('main h1')
    && document.querySelector('main h1').textContent === 'Images');
  result.keyboard_navigation = true;
  // The skip link moves the focus to the content without leaving the page.
  await page.focus('.skip');
  await page.keyboard.press('Enter');
  result.skip_link = await page.evaluate(() => ({hash: location.hash, focus: document.activeElement.id}));
}

const termText = (page) => page.evaluate(() => {
  const t = window.__nimbusTerm;
  if (!t) return '';
  const b = t.buffer.active;
  const lines = [];
  for (let i = 0; i < b.length; i++) lines.push(b.getLine(i).translateToString(true));
  return lines.join('\n');
});

// A running VM's consoles: the serial one as a terminal that takes typing, then the screen.
async function consoles(page) {
  await login(page, cfg.user, cfg.password);
  await page.goto(`${cfg.base}/console.html?vm=${cfg.vm_id}&type=serial`);
  await page.waitForFunction(() => document.getElementById('status').textContent === 'connected'
    || !document.getElementById('error').hidden, {timeout: WAIT});
  result.serial_error = await page.$eval('#error', (e) => (e.hidden ? null : e.textContent));
  if (result.serial_error) return;
  // The guest may have printed its ready line before we came; a newline brings a prompt.
  await page.waitForFunction(() => window.__nimbusTerm, {timeout: WAIT});
  // Keys go to xterm's own input element, as a user's click on the terminal would do.
  await page.focus('#screen .xterm-helper-textarea');
  result.serial_echo = false;
  // The shell may still be starting: type again until the answer shows (as a user would).
  for (let attempt = 0; attempt < 8 && !result.serial_echo; attempt++) {
    await page.keyboard.press('Enter');
    await page.keyboard.type(`echo web-$((6*7))-${cfg.marker}`);
    await page.keyboard.press('Enter');
    try {
      await page.waitForFunction((m) => {
        const t = window.__nimbusTerm.buffer.active;
        for (let i = 0; i < t.length; i++) {
          if (t.getLine(i).translateToString(true).includes(`web-42-${m}`)) return true;
        }
        return false;
      }, {timeout: 8000, polling: 250}, cfg.marker);
      result.serial_echo = true;
    } catch { /* not yet */ }
  }
  result.serial_text = (await termText(page)).slice(-2000);
  await shot(page, 'serial');

  await page.goto(`${cfg.base}/console.html?vm=${cfg.vm_id}&type=vnc`);
  await page.waitForFunction(() => document.getElementById('status').textContent === 'connected'
    || !document.getElementById('error').hidden, {timeout: WAIT});
  result.vnc_error = await page.$eval('#error', (e) => (e.hidden ? null : e.textContent));
  if (result.vnc_error) return;
  // Lit pixels on the canvas: a blank (black) screen has none.
  const lit = () => page.evaluate(() => {
    const c = document.querySelector('#screen canvas');
    if (!c || !c.width) return 0;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 60) n++;
    return n;
  });
  const deadline = Date.now() + 30000;
  let n = 0;
  while (Date.now() < deadline && (n = await lit()) === 0) await new Promise((r) => setTimeout(r, 500));
  result.vnc_lit_pixels = n;
  await shot(page, 'vnc');
}

// An admin's hosts page: each host with a capacity bar per resource.
async function admin(page) {
  await login(page, cfg.user, cfg.password);
  result.hosts_link_visible = await page.$eval('#nav a[href="#/hosts"]', (a) => !a.hidden);
  await page.click('#nav a[href="#/hosts"]');
  await waitPage(page, 'Hosts');
  result.host_rows = await page.$$eval('main tbody tr', (r) => r.map((tr) => tr.cells[0].textContent));
  result.meters = await page.$$eval('main meter', (m) => m.map((x) => ({value: x.value, max: x.max})));
  result.capacity_text = await page.$$eval('.capacity span', (s) => s.map((x) => x.textContent));
  await shot(page, 'hosts');
}

// The images page follows image events: an image made and uploaded through the API (a bearer
// token, as the CLI would) shows up, active, with no reload of the page.
async function liveImages(page) {
  await login(page, cfg.user, cfg.password);
  await page.goto(`${cfg.base}/#/images`);
  await page.waitForSelector('#image-table');
  await page.evaluate(() => { window.__no_reload = 'still here'; });
  const auth = {Authorization: `Bearer ${cfg.token}`};
  const res = await fetch(`${cfg.base}/v1/images`, {method: 'POST',
    headers: {...auth, 'Content-Type': 'application/json'}, body: JSON.stringify({name: cfg.image_name})});
  const img = await res.json();
  result.image_id = img.id;
  await page.waitForFunction((id) => !!document.querySelector(`#image-table tr[data-id="${id}"]`),
    {timeout: WAIT, polling: 100}, img.id);
  result.queued_row = true;
  const data = (await import('node:fs')).readFileSync(cfg.image_file);
  const up = await fetch(`${cfg.base}/v1/images/${img.id}/file`, {method: 'PUT',
    headers: {...auth, 'Content-Type': 'application/octet-stream'}, body: data});
  result.upload_status = up.status;
  await page.waitForFunction((id) => {
    const tr = document.querySelector(`#image-table tr[data-id="${id}"]`);
    return tr && tr.querySelector('[data-state]').dataset.state === 'active';
  }, {timeout: WAIT, polling: 100}, img.id);
  result.active_row = true;
  await shot(page, 'images-live');
  await fetch(`${cfg.base}/v1/images/${img.id}`, {method: 'DELETE', headers: auth});
  await page.waitForFunction((id) => !document.querySelector(`#image-table tr[data-id="${id}"]`),
    {timeout: WAIT, polling: 100}, img.id);
  result.deleted_row_gone = true;
  result.no_reload = await page.evaluate(() => window.__no_reload === 'still here');
}

// Lit (drawn, not transparent or white) pixels of a canvas, and those of the bars' colours.
const canvasPixels = (page, sel) => page.$eval(sel, (c) => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let drawn = 0, bars = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] > 0 && (d[i] < 240 || d[i + 1] < 240 || d[i + 2] < 240)) drawn++;
    if ((d[i] === 0x2a && d[i + 1] === 0x6e && d[i + 2] === 0xbb) ||
        (d[i] === 0xe0 && d[i + 1] === 0x8a && d[i + 2] === 0x1e)) bars++;
  }
  return {drawn, bars};
});

// Waits for the quota page's usage summary; an error the page shows instead (a usage call the
// API refused) ends the wait with its message rather than after WAIT.
const waitUsage = (page) => page.waitForFunction(() => {
  const error = document.getElementById('error');
  if (!error.hidden) throw new Error(`the page shows an error: ${error.textContent}`);
  return document.getElementById('usage-summary').textContent.includes('vCPU-hours');
}, {timeout: WAIT});

const noError = (page) => page.waitForFunction(() => document.querySelector('#error').hidden);

// An admin's pages: a flavor made in the UI is offered by the create-VM form; projects, users,
// quotas with the usage chart, and the migrate action of a VM.
async function adminPages(page) {
  page.on('dialog', (d) => d.accept());
  await login(page, cfg.user, cfg.password);
  result.nav_links = await page.$$eval('#nav a', (as) => as.filter((a) => !a.hidden).map((a) => a.textContent));

  await page.goto(`${cfg.base}/#/flavors`);
  await page.waitForSelector('#flavor-create-form');
  await page.type('#flavor-name', cfg.flavor);
  await page.type('#flavor-vcpus', '1');
  await page.type('#flavor-ram', '128');
  await page.type('#flavor-disk', '1');
  await page.type('#flavor-net-in', '100');
  await page.type('#flavor-net-out', '50');
  await shot(page, 'flavor-form');
  await page.click('#flavor-create-form button[type=submit]');
  await page.waitForFunction((n) => [...document.querySelectorAll('main tbody td')].some((td) => td.textContent === n),
    {timeout: WAIT}, cfg.flavor);
  result.flavor_row = await page.evaluate((n) => [...document.querySelectorAll('main tbody tr')]
    .find((tr) => tr.cells[0].textContent === n).textContent, cfg.flavor);
  await shot(page, 'flavors-admin');
  await page.goto(`${cfg.base}/#/vms`);
  await page.waitForSelector('#create-vm');
  await page.click('#create-vm');
  await page.waitForSelector('#vm-create-form');
  result.create_form_flavors = await page.$$eval('#vm-flavor option', (o) => o.map((x) => x.textContent));
  await shot(page, 'vm-create-new-flavor');

  // a flavor deleted in the UI leaves the list
  await page.goto(`${cfg.base}/#/flavors`);
  await page.waitForSelector('#flavor-create-form');
  await page.evaluate((n) => [...document.querySelectorAll('main tbody tr')]
    .find((tr) => tr.cells[0].textContent === n).querySelector('button[data-action=delete]').click(), cfg.delete_flavor);
  await page.waitForFunction((n) => ![...document.querySelectorAll('main tbody td')].some((td) => td.textContent === n),
    {timeout: WAIT}, cfg.delete_flavor);
  result.flavor_deleted = true;

  // projects: create one
  await page.goto(`${cfg.base}/#/projects`);
  await page.waitForSelector('#project-create-form');
  await page.type('#project-name', cfg.project);
  await page.click('#project-create-form button[type=submit]');
  await page.waitForFunction((n) => [...document.querySelectorAll('main tbody a')].some((a) => a.textContent === n),
    {timeout: WAIT}, cfg.project);
  result.project_created = true;
  await shot(page, 'projects');

  // users: create one in that project, as a reader
  await page.goto(`${cfg.base}/#/users`);
  await page.waitForSelector('#user-create-form');
  await page.type('#user-name', cfg.new_user);
  await page.type('#user-password', 'pw-browser-made-1');
  await page.select('#user-role', 'reader');
  await page.select('#user-project', await page.evaluate((n) =>
    [...document.querySelectorAll('#user-project option')].find((o) => o.textContent === n).value, cfg.project));
  await page.click('#user-create-form button[type=submit]');
  await page.waitForFunction((n) => [...document.querySelectorAll('main tbody tr')].some((tr) => tr.cells[0].textContent === n),
    {timeout: WAIT}, cfg.new_user);
  result.user_row = await page.evaluate((n) => [...[...document.querySelectorAll('main tbody tr')]
    .find((tr) => tr.cells[0].textContent === n).cells].map((c) => c.textContent), cfg.new_user);
  await shot(page, 'users');

  // quotas of project cfg.quota_project: bars, limits edited, the chart drawn
  await page.goto(`${cfg.base}/#/quotas/${cfg.quota_project}`);
  await page.waitForSelector('#quota-form');
  await waitUsage(page);
  result.quota_bars = await page.$$eval('#quota-bars meter', (m) => m.length);
  result.chart = await canvasPixels(page, '#usage-chart');
  result.usage_summary = await page.$eval('#usage-summary', (e) => e.textContent);
  await shot(page, 'quotas');
  const input = await page.$('#quota-vms');
  await input.click({count: 3});
  await page.keyboard.press('Backspace');
  await input.type('7');
  await page.click('#quota-form button[type=submit]');
  await page.waitForFunction(() => {
    const s = document.querySelector('#quota-bars [data-resource=vms] span');
    return s && / \/ 7 /.test(s.textContent);
  }, {timeout: WAIT});
  result.vms_bar_text = await page.$eval('#quota-bars [data-resource=vms] span', (e) => e.textContent);

  if (cfg.vm_id) {
    await page.goto(`${cfg.base}/#/vms/${cfg.vm_id}`);
    await page.waitForSelector('#vm-title');
    await page.waitForFunction(() => document.querySelectorAll('#migrate-host option').length > 0);
    result.migrate_options = await page.$$eval('#migrate-host option', (o) => o.map((x) => x.textContent));
    await shot(page, 'vm-detail-admin');
    await noError(page);
    // With one host there is nowhere to go: the API's refusal shows on the page.
    await page.click('#migrate-form button[type=submit]');
    await page.waitForSelector('#error:not([hidden])', {timeout: WAIT});
    result.migrate_error = await page.$eval('#error span', (e) => e.textContent);
  }
}

// A reader on the new pages: lists and bars, no form and no button.
async function readerPages(page) {
  await login(page, cfg.user, cfg.password);
  result.users_link_visible = await page.$eval('#nav a[href="#/users"]', (a) => !a.hidden);
  await page.goto(`${cfg.base}/#/flavors`);
  await waitPage(page, 'Flavors');
  result.flavor_form = !!(await page.$('#flavor-create-form'));
  result.flavor_buttons = await page.$$eval('main button', (b) => b.length);
  await shot(page, 'flavors');
  await page.goto(`${cfg.base}/#/projects`);
  await waitPage(page, 'Projects');
  result.project_form = !!(await page.$('#project-create-form'));
  result.project_buttons = await page.$$eval('main button', (b) => b.length);
  result.project_rows = await page.$$eval('main tbody tr', (r) => r.map((tr) => tr.cells[0].textContent));
  await shot(page, 'projects');
  await page.goto(`${cfg.base}/#/users`);
  await page.waitForSelector('#error:not([hidden]), #user-create-form', {timeout: WAIT});
  result.user_form = !!(await page.$('#user-create-form'));
  result.user_buttons = await page.$$eval('main button', (b) => b.length);
  await page.goto(`${cfg.base}/#/quotas`);
  await page.waitForSelector('#quota-bars');
  await waitUsage(page);
  result.quota_bars = await page.$$eval('#quota-bars meter', (m) => m.length);
  result.quota_form = !!(await page.$('#quota-form'));
  result.quota_buttons = await page.$$eval('main button', (b) => b.length);
  result.chart = await canvasPixels(page, '#usage-chart');
  await shot(page, 'quotas');
}

const SCENARIOS = {member, reader, tenant, layout, consoles, admin, liveImages, adminPages, readerPages};

// Both are the system's browsers (no download): Chromium over CDP, Firefox over WebDriver BiDi
// (puppeteer-core 24 drives Firefox only that way), each with a fresh profile.
const LAUNCH = {
  chromium: {
    executablePath: cfg.chromium || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  },
  firefox: {
    browser: 'firefox',
    executablePath: cfg.firefox || '/usr/bin/firefox-esr',
    headless: true,
  },
};
// One scenario in a browser context of its own; returns what it saw.
async function run(browser, name, runCfg) {
  scenario = name;
  cfg = runCfg;
  WAIT = cfg.timeout_ms || 120000;
  result = {scenario, browser: BROWSER, browser_version: await browser.version(), screenshots: [],
    console_errors: []};
  if (!Object.hasOwn(SCENARIOS, name)) {
    result.error = `unknown scenario ${name}`;
    return result;
  }
  const context = await browser.createBrowserContext();
  try {
    const page = await context.newPage();
    await page.setViewport({width: 1280, height: 900});
    page.setDefaultTimeout(WAIT);
    page.on('console', (m) => { if (m.type() === 'error') result.console_errors.push(m.text()); });
    page.on('pageerror', (e) => result.console_errors.push(String(e)));
    try {
      await SCENARIOS[name](page);
    } catch (e) {
      result.error = String(e && e.stack ? e.stack : e);
      try { await shot(page, 'failure'); } catch { /* the page may be gone */ }
    }
  } finally {
    await context.close();
  }
  return result;
}

const print = (r) => process.stdout.write(`\n${JSON.stringify(r)}\n`);

if (!LAUNCH[BROWSER]) {
  result.error = `unknown browser ${BROWSER}`;
  print(result);
  process.exit(0);
}
const browser = await puppeteer.launch(LAUNCH[BROWSER]);
try {
  if (SERVE) {
    for await (const line of readline.createInterface({input: process.stdin})) {
      if (!line.trim()) continue;
      const req = JSON.parse(line);
      print(await run(browser, req.scenario, {...baseCfg, ...req.cfg}));
    }
  } else {
    print(await run(browser, scenario, baseCfg));
  }
} finally {
  await browser.close();
}
