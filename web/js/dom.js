// Building the page: every string from the API goes in as text (never as HTML), so a VM named
// "<img src=x onerror=...>" shows as those characters.

// h("a", {href: "#/vms", class: "x", onclick: fn}, "text", childNode, ...)
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// A table with a header row; rows are arrays of cells (text or nodes).
export function table(headers, rows, rowAttrs) {
  return h('div', {class: 'table-wrap'},
    h('table', {},
      h('thead', {}, h('tr', {}, headers.map((t) => h('th', {scope: 'col'}, t)))),
      h('tbody', {}, rows.map((cells, i) =>
        h('tr', rowAttrs ? rowAttrs(i) : {}, cells.map((c) => h('td', {}, c)))))));
}

export function bytes(n) {
  if (n === null || n === undefined) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

// Replaces what main shows.
export function show(...nodes) {
  const main = document.getElementById('main');
  main.replaceChildren(...nodes);
}
