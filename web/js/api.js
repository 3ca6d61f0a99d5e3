// The REST API as the console uses it: the session cookie goes along by itself; every change
// carries the session's CSRF value, which the daemon wants from cookie callers.

let csrf = null;

export function setCsrf(value) { csrf = value || null; }

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Called on 401 (the session ended or was revoked): the app shows the login.
export let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

function errorFrom(status, body) {
  const e = body && typeof body === 'object' ? body.error : null;
  return new ApiError(status, e ? e.code : `HTTP_${status}`,
    e ? e.message : `the server answered ${status}`);
}

export async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['X-Nimbus-CSRF'] = csrf;
  const res = await fetch(path, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const type = res.headers.get('Content-Type') || '';
  const data = res.status === 204 ? null
    : type.startsWith('application/json') ? await res.json() : await res.text();
  if (!res.ok) {
    if (res.status === 401 && path !== '/v1/auth/session') onUnauthorized();
    throw errorFrom(res.status, data);
  }
  return data;
}

// PUT a file with upload progress (fetch cannot report it): onProgress(sent, total).
export function upload(path, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', path);
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    if (csrf) xhr.setRequestHeader('X-Nimbus-CSRF', csrf);
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) onProgress(e.loaded, e.total);
    });
    xhr.addEventListener('load', () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(file.size, file.size);
        resolve(data);
      } else {
        reject(errorFrom(xhr.status, data));
      }
    });
    xhr.addEventListener('error', () => reject(new ApiError(0, 'NETWORK', 'the upload failed')));
    xhr.send(file);
  });
}
