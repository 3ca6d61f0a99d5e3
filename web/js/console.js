// A VM's console in the browser: console.html?vm=ID&type=serial|vnc. The API hands out a
// one-time ticket (POST /v1/vms/{id}/console) and the WebSocket URL it opens; the serial
// console is an xterm.js terminal, the screen a noVNC canvas.
import {api, setCsrf} from './api.js';

const params = new URLSearchParams(location.search);
const vmId = params.get('vm') || '';
const type = params.get('type') === 'vnc' ? 'vnc' : 'serial';
const screen = document.getElementById('screen');
const status = (text) => { document.getElementById('status').textContent = text; };

function fail(err) {
  const box = document.getElementById('error');
  box.textContent = err.code ? `${err.message} (${err.code})` : String(err.message || err);
  box.hidden = false;
  status('disconnected');
}

// The ticket's URL, absolute and with ws:// or wss:// (the API may give a path).
function socketUrl(res) {
  const url = new URL(res.url, location.href);
  if (url.protocol === 'http:') url.protocol = 'ws:';
  if (url.protocol === 'https:') url.protocol = 'wss:';
  if (res.ticket && !url.searchParams.has('ticket')) url.searchParams.set('ticket', res.ticket);
  return url.toString();
}

function serial(url) {
  const term = new window.Terminal({convertEol: false, cursorBlink: true, fontSize: 14});
  term.open(screen);
  term.focus();
  const ws = new WebSocket(url, ['binary']);
  ws.binaryType = 'arraybuffer';
  const enc = new TextEncoder();
  let opened = false;
  ws.onopen = () => { opened = true; status('connected'); };
  ws.onmessage = (e) => term.write(typeof e.data === 'string' ? e.data : new Uint8Array(e.data));
  // A refused handshake tells the page nothing but the close: say so rather than wait.
  ws.onclose = (e) => {
    if (!opened) fail(new Error('the console connection was refused (see the browser console)'));
    else status(`closed${e.reason ? `: ${e.reason}` : ''}`);
  };
  term.onData((d) => { if (ws.readyState === WebSocket.OPEN) ws.send(enc.encode(d)); });
  window.__nimbusTerm = term; // the browser tests read the screen through it
}

async function vnc(url, password) {
  const {default: RFB} = await import('../vendor/novnc/core/rfb.js');
  const rfb = new RFB(screen, url, {wsProtocols: ['binary'], credentials: {password}});
  rfb.scaleViewport = true;
  rfb.addEventListener('connect', () => status('connected'));
  rfb.addEventListener('disconnect', (e) => {
    if (!e.detail.clean) fail(new Error('the screen connection failed or was refused'));
    else status('closed');
  });
  rfb.focus();
  window.__nimbusRfb = rfb;
}

async function main() {
  const who = await api('GET', '/v1/auth/whoami');
  setCsrf(who.csrf);
  const vm = await api('GET', `/v1/vms/${encodeURIComponent(vmId)}`);
  document.getElementById('title').textContent = `${vm.name}: ${type === 'vnc' ? 'screen' : 'serial console'}`;
  document.title = `${vm.name} - Nimbus console`;
  status('connecting');
  const res = await api('POST', `/v1/vms/${encodeURIComponent(vmId)}/console`, {type});
  const url = socketUrl(res);
  if (type === 'vnc') await vnc(url, res.password || ''); else serial(url);
}

main().catch(fail);
