// dedupe HTML report: renders the JSON block #dedupe-data into #app.
// Every name and path is hostile input: nodes are built with createElement
// and text goes in through textContent / title, never through HTML parsing.
// The page's CSP allows this script by hash only: no eval, no inline
// handlers, no style attributes (CSSOM properties such as el.style.left are
// fine).
(function () {
  'use strict';

  const app = document.getElementById('app');
  if (!app) return;

  // ---------------------------------------------------------------- helpers

  function h(tag, props, kids) {
    const e = document.createElement(tag);
    if (props) {
      for (const k of Object.keys(props)) {
        const v = props[k];
        if (v === null || v === undefined || v === false) continue;
        if (k === 'class') e.className = v;
        else if (k === 'text') e.textContent = v;
        else if (k === 'title') e.title = v;
        else if (typeof v === 'function') e.addEventListener(k.replace(/^on/, ''), v);
        else e.setAttribute(k, v === true ? '' : String(v));
      }
    }
    if (kids) {
      for (const c of kids) {
        if (c === null || c === undefined || c === false) continue;
        e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
      }
    }
    return e;
  }

  const num = (v) => (typeof v === 'number' && isFinite(v) && v > 0 ? v : 0);
  const arr = (v) => (Array.isArray(v) ? v : []);
  const obj = (v) => (v && typeof v === 'object' && !Array.isArray(v) ? v : null);
  const str = (v) => (typeof v === 'string' ? v : v === null || v === undefined ? '' : String(v));

  const NF = new Intl.NumberFormat('en-US');
  const fmtInt = (n) => NF.format(n);
  const UNITS = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  function fmtBytes(n) {
    n = num(n);
    if (n < 1024) return n + ' B';
    let v = n;
    let i = -1;
    do {
      v /= 1024;
      i++;
    } while (v >= 1024 && i < UNITS.length - 1);
    return (v < 100 ? v.toFixed(1) : v.toFixed(0)) + ' ' + UNITS[i];
  }
  const exact = (n) => fmtInt(num(n)) + ' bytes';
  function fmtPct(share) {
    const p = share * 100;
    if (p > 0 && p < 0.1) return '<0.1%';
    return (p < 10 ? p.toFixed(1) : p.toFixed(0)) + '%';
  }
  const bytesEl = (n, cls) => h('span', { class: cls || 'bytes', text: fmtBytes(n), title: exact(n) });

  // Characters that can hide or disguise text: C0/C1 controls, bidi
  // embeddings/overrides/isolates and marks, zero-width and line/paragraph
  // separators. Shown as visible escapes. (The Rust side already escapes
  // control characters and non-UTF-8 bytes; this is a second line.)
  const SNEAKY = /[\u0000-\u001f\u007f-\u009f\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;
  function escCh(c) {
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    if (c === '\r') return '\\r';
    const cp = c.codePointAt(0);
    if (cp < 0x100) return '\\x' + cp.toString(16).padStart(2, '0');
    return '\\u{' + cp.toString(16) + '}';
  }
  const vis = (s) => str(s).replace(SNEAKY, escCh);
  function visNodes(s, into) {
    s = str(s);
    let last = 0;
    s.replace(SNEAKY, (c, off) => {
      if (off > last) into.appendChild(document.createTextNode(s.slice(last, off)));
      into.appendChild(h('span', { class: 'esc', text: escCh(c), title: 'hidden character U+' + c.codePointAt(0).toString(16).toUpperCase().padStart(4, '0') }));
      last = off + c.length;
      return c;
    });
    if (last < s.length) into.appendChild(document.createTextNode(s.slice(last)));
    return into;
  }
  // A path: directory part dimmed, last component normal.
  function pathEl(p, cls) {
    p = str(p);
    const e = h('span', { class: cls ? 'path ' + cls : 'path', dir: 'ltr' });
    const i = p.lastIndexOf('/');
    if (i >= 0 && i < p.length - 1) {
      e.appendChild(visNodes(p.slice(0, i + 1), h('span', { class: 'dir' })));
      e.appendChild(visNodes(p.slice(i + 1), h('span', { class: 'base' })));
    } else {
      visNodes(p, e);
    }
    return e;
  }
  function under(file, dir) {
    if (!dir) return true;
    if (!file.startsWith(dir)) return false;
    return file.length === dir.length || dir.endsWith('/') || file.charCodeAt(dir.length) === 47;
  }
  function extOf(p) {
    const base = p.slice(p.lastIndexOf('/') + 1);
    const i = base.lastIndexOf('.');
    if (i <= 0 || i === base.length - 1) return '';
    const e = base.slice(i + 1).toLowerCase();
    return e.length <= 10 && !/[\s\\]/.test(e) ? e : '';
  }

  // ------------------------------------------------------------------- data

  let data;
  try {
    const el = document.getElementById('dedupe-data');
    data = obj(JSON.parse(el ? el.textContent : ''));
    if (!data) throw new Error('not an object');
  } catch (err) {
    app.appendChild(h('p', { class: 'error', text: 'Could not read the report data: ' + str(err && err.message) }));
    return;
  }
  const kind = data.kind === 'dirs' ? 'dirs' : 'find';
  const totals = obj(data.totals) || {};
  const tree = obj(data.tree);
  const groups = arr(data.groups).map(obj).filter(Boolean);

  // ----------------------------------------------------------------- header

  const roots = arr(data.roots).map(str);
  app.appendChild(
    h('header', { class: 'top' }, [
      h('h1', { text: 'dedupe report' }),
      h('p', { class: 'meta' }, [
        h('span', { class: 'kind', text: 'dedupe ' + kind }),
        ' \u00b7 generated by ',
        h('span', { class: 'generator', text: vis(data.generator) || 'dedupe' }),
      ]),
      h('div', { class: 'roots' }, [
        h('span', { class: 'label', text: roots.length === 1 ? 'Root: ' : 'Roots: ' }),
        h('ul', { id: 'roots' }, roots.map((r) => h('li', null, [pathEl(r)]))),
      ]),
    ])
  );

  // ----------------------------------------------------------------- totals

  function stat(key, label, value, opts) {
    opts = opts || {};
    const v = num(value);
    return h('div', { class: 'stat' + (opts.strong ? ' strong' : ''), 'data-stat': key }, [
      h('div', { class: 'v', text: opts.bytes ? fmtBytes(v) : fmtInt(v), title: opts.bytes ? exact(v) : null }),
      h('div', { class: 'k', text: label }),
    ]);
  }
  const statEls = [
    stat('reclaimable', 'reclaimable', totals.reclaimable, { bytes: true, strong: true }),
    stat('files', 'files scanned', totals.files),
    stat('bytes', 'total size', totals.bytes, { bytes: true }),
    stat('groups', 'duplicate groups', totals.groups),
    stat('duplicates', 'duplicate files', totals.duplicates),
  ];
  if (kind === 'dirs') {
    statEls.push(stat('identical_groups', 'identical directory groups', totals.identical_groups));
    statEls.push(stat('subsets', 'directory subsets', totals.subsets));
  }
  app.appendChild(h('section', { id: 'totals', class: 'stats', 'aria-label': 'Totals' }, statEls));

  // ---------------------------------------------------------------- treemap

  const darkMQ = window.matchMedia ? window.matchMedia('(prefers-color-scheme: dark)') : null;
  const isDark = () => !!(darkMQ && darkMQ.matches);
  // Share of a directory's bytes that is redundant -> colour. Pale at 0%,
  // strong red at 100% (dark scheme: dim to bright red).
  function shade(s) {
    s = Math.max(0, Math.min(1, s || 0));
    if (isDark()) return { c: 'hsl(' + (18 - 16 * s).toFixed(1) + ', ' + (18 + 62 * s).toFixed(1) + '%, ' + (22 + 24 * s).toFixed(1) + '%)', light: false };
    const l = 95 - 52 * s;
    return { c: 'hsl(' + (18 - 16 * s).toFixed(1) + ', ' + (45 + 40 * s).toFixed(1) + '%, ' + l.toFixed(1) + '%)', light: l > 62 };
  }

  // Normalise the tree once: parent links, children with bytes sorted by
  // size, and the bytes of a node's own files plus its folded "other".
  function prepTree(root) {
    const stack = [root];
    root._parent = null;
    let count = 0;
    while (stack.length) {
      const n = stack.pop();
      count++;
      n.redundant = num(n.redundant);
      n.total = Math.max(num(n.total), n.redundant);
      n._name = vis(str(n.name) || str(n.path).slice(str(n.path).lastIndexOf('/') + 1) || str(n.path));
      n._path = str(n.path);
      const kids = arr(n.children).map(obj).filter(Boolean);
      let sum = 0;
      for (const c of kids) {
        c._parent = n;
        c.redundant = num(c.redundant);
        sum += c.redundant;
        stack.push(c);
      }
      n._kids = kids.filter((c) => c.redundant > 0).sort((a, b) => b.redundant - a.redundant);
      n._other = obj(n.other);
      n._otherR = n._other ? num(n._other.redundant) : 0;
      n._own = Math.max(0, n.redundant - sum - n._otherR);
      n._filesV = n._own + n._otherR;
    }
    return count;
  }

  // Squarified treemap (Bruls, Huizing, van Wijk). items: [{v}] sorted by v
  // descending, all v > 0. Returns [{x, y, w, h, item}].
  function squarify(items, x, y, w, hgt) {
    const out = [];
    let total = 0;
    for (const it of items) total += it.v;
    if (total <= 0 || w <= 0 || hgt <= 0) return out;
    const scale = (w * hgt) / total;
    let i = 0;
    while (i < items.length && w > 0 && hgt > 0) {
      const side = Math.min(w, hgt);
      const s2 = side * side;
      let sum = items[i].v * scale;
      let min = sum;
      let max = sum;
      let worst = Math.max((s2 * max) / (sum * sum), (sum * sum) / (s2 * min));
      let j = i + 1;
      for (; j < items.length; j++) {
        const a = items[j].v * scale;
        const ns = sum + a;
        const nmin = Math.min(min, a);
        const nmax = Math.max(max, a);
        const nw = Math.max((s2 * nmax) / (ns * ns), (ns * ns) / (s2 * nmin));
        if (nw > worst) break;
        sum = ns;
        min = nmin;
        max = nmax;
        worst = nw;
      }
      const last = j === items.length;
      if (w >= hgt) {
        // a column along the left edge, items stacked top to bottom
        const cw = last ? w : Math.min(w, sum / hgt);
        let cy = y;
        for (let k = i; k < j; k++) {
          const hh = k === j - 1 ? y + hgt - cy : (items[k].v * scale) / cw;
          out.push({ x: x, y: cy, w: cw, h: hh, item: items[k] });
          cy += hh;
        }
        x += cw;
        w -= cw;
      } else {
        // a row along the top edge, items left to right
        const rh = last ? hgt : Math.min(hgt, sum / w);
        let cx = x;
        for (let k = i; k < j; k++) {
          const ww = k === j - 1 ? x + w - cx : (items[k].v * scale) / rh;
          out.push({ x: cx, y: y, w: ww, h: rh, item: items[k] });
          cx += ww;
        }
        y += rh;
        hgt -= rh;
      }
      i = j;
    }
    return out;
  }

  function nodeTip(n) {
    const share = n.total > 0 ? n.redundant / n.total : 0;
    let t = vis(n._path || n._name) + '\nredundant: ' + fmtBytes(n.redundant) + ' (' + exact(n.redundant) + ')' +
      '\ntotal: ' + fmtBytes(n.total) + ' (' + exact(n.total) + ')' + '\nshare redundant: ' + fmtPct(share);
    if (n._other) t += '\nfolded away: ' + fmtInt(num(n._other.dirs)) + ' smaller dirs with ' + fmtInt(num(n._other.files)) + ' duplicate files (' + fmtBytes(n._otherR) + ' redundant)';
    return t;
  }
  function filesLabel(n) {
    const parts = [];
    if (n._own > 0) parts.push('files here');
    if (n._other && (n._otherR > 0 || num(n._other.dirs) > 0)) {
      const d = num(n._other.dirs);
      parts.push(d > 0 ? fmtInt(d) + ' other' : 'other');
    }
    return parts.join(' + ') || 'files here';
  }
  function filesTip(n) {
    let t = vis(n._path || n._name);
    if (n._own > 0) t += '\nduplicate files directly in this directory: ' + fmtBytes(n._own) + ' (' + exact(n._own) + ')';
    if (n._other) {
      t += '\n' + fmtInt(num(n._other.dirs)) + ' smaller directories folded away (' + fmtInt(num(n._other.files)) + ' duplicate files): ' +
        fmtBytes(n._otherR) + ' (' + exact(n._otherR) + ') redundant';
    }
    return t;
  }

  const tmState = { zoom: null, lastW: 0, lastH: 0 };
  const elNode = new WeakMap();
  const HEAD = 18; // header strip of a nested directory
  const PAD = 3;
  const MAX_DEPTH = 3; // nesting levels below the zoomed directory
  const MAX_ELEMENTS = 4000;
  let tmBox = null;
  let tmInfo = null;
  let crumbs = null;
  let onZoomHooks = [];

  function renderTreemap() {
    if (!tmBox || !tmState.zoom) return;
    const W = tmBox.clientWidth;
    const H = tmBox.clientHeight;
    tmState.lastW = W;
    tmState.lastH = H;
    const frag = document.createDocumentFragment();
    const ctx = { frag: frag, count: 0 };
    if (W > 4 && H > 4) drawContents(ctx, tmState.zoom, 0, 0, W, H, 0);
    tmBox.textContent = '';
    tmBox.appendChild(frag);
    renderCrumbs();
    showInfo(null);
  }

  function rounded(r) {
    const l = Math.round(r.x);
    const t = Math.round(r.y);
    const w = Math.round(r.x + r.w) - l;
    const hh = Math.round(r.y + r.h) - t;
    return w >= 1 && hh >= 1 ? { x: l, y: t, w: w, h: hh } : null;
  }
  function place(e, R) {
    e.style.left = R.x + 'px';
    e.style.top = R.y + 'px';
    e.style.width = R.w + 'px';
    e.style.height = R.h + 'px';
  }
  function label(e, R, name, size, nested) {
    if (R.w < 26 || R.h < 13) return;
    const lab = h('div', { class: 'tm-label' }, [h('span', { class: 'tm-name', text: name })]);
    // the size only where it fits whole (about 6.5px a character at 11-12px)
    const sw = size ? size.length * 6.5 + 10 : 0;
    if (size && (nested ? R.w >= sw + 60 : R.h >= 32 && R.w >= sw)) lab.appendChild(h('span', { class: 'tm-size', text: size }));
    e.appendChild(lab);
  }

  function drawContents(ctx, n, x, y, w, hgt, depth) {
    const items = n._kids.map((c) => ({ v: c.redundant, node: c }));
    if (n._filesV > 0) items.push({ v: n._filesV, node: n, files: true });
    items.sort((a, b) => b.v - a.v);
    for (const r of squarify(items, x, y, w, hgt)) {
      const R = rounded(r);
      if (!R) continue;
      if (r.item.files) drawFiles(ctx, r.item.node, R);
      else drawNode(ctx, r.item.node, R, depth);
    }
  }

  function drawNode(ctx, n, R, depth) {
    ctx.count++;
    const share = n.total > 0 ? n.redundant / n.total : 0;
    const sh = shade(share);
    const nest = depth < MAX_DEPTH && n._kids.length > 0 && R.w >= 60 && R.h >= HEAD + 26 && ctx.count < MAX_ELEMENTS;
    const e = h('div', {
      class: 'tm-node ' + (nest ? 'tm-parent' : 'tm-leaf') + (sh.light ? ' on-light' : ' on-dark') + (depth === 0 ? ' tm-top' : ''),
      title: nodeTip(n),
      tabindex: depth === 0 ? '0' : null,
      role: 'button',
    });
    e.style.backgroundColor = sh.c;
    place(e, R);
    label(e, R, n._name, fmtBytes(n.redundant), nest);
    elNode.set(e, n);
    ctx.frag.appendChild(e);
    if (nest) drawContents(ctx, n, R.x + PAD, R.y + HEAD, R.w - 2 * PAD, R.h - HEAD - PAD, depth + 1);
  }

  function drawFiles(ctx, n, R) {
    ctx.count++;
    const e = h('div', { class: 'tm-files', title: filesTip(n) });
    place(e, R);
    label(e, R, filesLabel(n), fmtBytes(n._filesV), false);
    elNode.set(e, n);
    ctx.frag.appendChild(e);
  }

  function renderCrumbs() {
    if (!crumbs) return;
    crumbs.textContent = '';
    const chain = [];
    for (let n = tmState.zoom; n; n = n._parent) chain.unshift(n);
    chain.forEach((n, i) => {
      if (i > 0) crumbs.appendChild(h('span', { class: 'sep', text: '\u203a', 'aria-hidden': 'true' }));
      const text = i === 0 ? vis(str(n.name) || 'all roots') : n._name;
      if (n === tmState.zoom) {
        crumbs.appendChild(h('span', { class: 'crumb current', 'aria-current': 'location', text: text, title: n._path ? vis(n._path) : null }));
      } else {
        crumbs.appendChild(h('button', { type: 'button', class: 'crumb', text: text, title: n._path ? vis(n._path) : null, onclick: () => zoomTo(n) }));
      }
    });
    if (tmState.zoom && tmState.zoom._parent) crumbs.appendChild(h('span', { class: 'hint', text: 'Esc or Backspace: up' }));
  }

  function showInfo(n, files) {
    if (!tmInfo) return;
    const z = tmState.zoom;
    const m = n || z;
    tmInfo.textContent = '';
    if (!m) return;
    tmInfo.appendChild(pathEl(m._path || str(m.name)));
    if (files) {
      tmInfo.appendChild(document.createTextNode(' \u2014 ' + filesLabel(m) + ': ' + fmtBytes(m._filesV) + ' redundant'));
      return;
    }
    const share = m.total > 0 ? m.redundant / m.total : 0;
    tmInfo.appendChild(document.createTextNode(' \u2014 '));
    tmInfo.appendChild(bytesEl(m.redundant, 'strong'));
    tmInfo.appendChild(document.createTextNode(' redundant of '));
    tmInfo.appendChild(bytesEl(m.total));
    tmInfo.appendChild(document.createTextNode(' (' + fmtPct(share) + ')' + (n && n !== z ? ' \u00b7 click to zoom' : '')));
  }

  function zoomTo(n) {
    if (!n || n === tmState.zoom) return;
    tmState.zoom = n;
    renderTreemap();
    for (const f of onZoomHooks) f(n);
  }

  function buildTreemapSection() {
    const sec = h('section', { id: 'treemap-section', class: 'card' }, [
      h('h2', { text: 'Where the duplicate bytes are' }),
    ]);
    app.appendChild(sec);
    if (!tree || num(tree.redundant) <= 0) {
      sec.appendChild(h('div', { id: 'treemap', class: 'tm-empty' }, [h('p', { text: 'No duplicates: nothing to reclaim.' })]));
      return;
    }
    const nodes = prepTree(tree);
    tmState.zoom = tree;
    sec.appendChild(h('p', { class: 'help', text: 'Each rectangle is a directory, sized by the duplicate bytes beneath it and coloured by the share of its bytes that are duplicates. Click a directory to zoom in.' }));
    const legend = h('div', { class: 'tm-legend', 'aria-hidden': 'true' }, [h('span', { text: 'share redundant: 0%' })]);
    const ramp = h('span', { class: 'ramp', id: 'tm-ramp' });
    legend.appendChild(ramp);
    legend.appendChild(h('span', { text: '100%' }));
    legend.appendChild(h('span', { class: 'swatch-files' }));
    legend.appendChild(h('span', { text: 'files directly in a directory, or small directories folded together' }));
    const paintRamp = () => {
      ramp.textContent = '';
      for (let i = 0; i <= 10; i++) {
        const s = h('span', { class: 'step', title: i * 10 + '%' });
        s.style.backgroundColor = shade(i / 10).c;
        ramp.appendChild(s);
      }
    };
    paintRamp();
    crumbs = h('nav', { id: 'breadcrumb', 'aria-label': 'Treemap location' });
    tmBox = h('div', { id: 'treemap', tabindex: '0', 'aria-label': 'Treemap of duplicate bytes by directory (' + fmtInt(nodes) + ' directories)' });
    tmInfo = h('div', { id: 'tm-info', 'aria-live': 'polite' });
    sec.appendChild(crumbs);
    sec.appendChild(tmBox);
    sec.appendChild(tmInfo);
    sec.appendChild(legend);

    tmBox.addEventListener('click', (ev) => {
      const e = ev.target.closest ? ev.target.closest('.tm-node, .tm-files') : null;
      const n = e && elNode.get(e);
      if (n) zoomTo(n);
    });
    tmBox.addEventListener('mouseover', (ev) => {
      const e = ev.target.closest ? ev.target.closest('.tm-node, .tm-files') : null;
      const n = e && elNode.get(e);
      if (n) showInfo(n, e.classList.contains('tm-files'));
    });
    tmBox.addEventListener('mouseleave', () => showInfo(null));
    tmBox.addEventListener('keydown', (ev) => {
      if ((ev.key === 'Enter' || ev.key === ' ') && ev.target.classList && ev.target.classList.contains('tm-node')) {
        const n = elNode.get(ev.target);
        if (n) {
          ev.preventDefault();
          zoomTo(n);
          tmBox.focus();
        }
      }
    });
    document.addEventListener('keydown', (ev) => {
      if (ev.defaultPrevented || ev.altKey || ev.ctrlKey || ev.metaKey) return;
      if (ev.key !== 'Escape' && ev.key !== 'Backspace') return;
      const t = ev.target;
      if (t && t.closest && t.closest('input, select, textarea, [contenteditable]')) return;
      if (tmState.zoom && tmState.zoom._parent) {
        ev.preventDefault();
        zoomTo(tmState.zoom._parent);
      }
    });
    const changed = () => tmBox.clientWidth !== tmState.lastW || tmBox.clientHeight !== tmState.lastH;
    let pending = false;
    window.addEventListener('resize', () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        if (changed()) renderTreemap();
      });
    });
    // The box has fixed-size containment, so redrawing inside the observer
    // cannot change its size again.
    if (typeof ResizeObserver === 'function') new ResizeObserver(() => changed() && renderTreemap()).observe(tmBox);
    if (darkMQ) {
      const again = () => {
        paintRamp();
        renderTreemap();
      };
      if (darkMQ.addEventListener) darkMQ.addEventListener('change', again);
      else if (darkMQ.addListener) darkMQ.addListener(again);
    }
    renderTreemap();
  }
  buildTreemapSection();

  // ------------------------------------------------------------ paged lists

  const PAGE = 500;
  // Appends rows to tbody PAGE at a time; returns {reset(list)}.
  function pager(tbody, moreBtn, makeRow, after) {
    let list = [];
    let shown = 0;
    function more() {
      const frag = document.createDocumentFragment();
      const end = Math.min(list.length, shown + PAGE);
      for (let i = shown; i < end; i++) frag.appendChild(makeRow(list[i], i));
      tbody.appendChild(frag);
      shown = end;
      const left = list.length - shown;
      moreBtn.hidden = left <= 0;
      moreBtn.textContent = 'show ' + fmtInt(Math.min(PAGE, left)) + ' more (' + fmtInt(left) + ' not listed yet)';
      if (after) after(shown, list.length);
    }
    moreBtn.addEventListener('click', more);
    return {
      reset(l) {
        list = l;
        shown = 0;
        tbody.textContent = '';
        more();
      },
    };
  }

  function pathList(paths, cap, highlight) {
    const box = h('div', { class: 'paths' });
    let btn = null;
    const add = (from, to) => {
      for (let i = from; i < to; i++) {
        box.insertBefore(h('div', { class: 'file' + (highlight && highlight(paths[i]) ? ' hit' : '') }, [pathEl(paths[i])]), btn);
      }
    };
    if (paths.length > cap + 2) {
      btn = h('button', { type: 'button', class: 'link', text: 'show all ' + fmtInt(paths.length) + ' paths' });
      box.appendChild(btn);
      add(0, cap);
      btn.addEventListener('click', () => {
        add(cap, paths.length);
        btn.remove();
      });
    } else {
      add(0, paths.length);
    }
    return box;
  }

  function leftOut(text) {
    return h('p', { class: 'left-out', text: text });
  }

  // ----------------------------------------------------------------- groups

  function buildGroups() {
    const sec = h('section', { id: 'groups', class: 'card' }, [h('h2', { text: 'Duplicate groups' })]);
    app.appendChild(sec);
    const lo = obj(data.groups_left_out) || {};
    const loNote = num(lo.groups) > 0
      ? leftOut(fmtInt(num(lo.groups)) + ' more groups not shown, ' + fmtBytes(num(lo.reclaimable)) + ' reclaimable; the JSON report has them all.')
      : null;
    if (groups.length === 0) {
      sec.appendChild(h('p', { class: 'none', text: num(lo.groups) > 0 ? 'No groups in this report\u2019s data.' : 'No duplicate files found.' }));
      if (loNote) sec.appendChild(loNote);
      return;
    }

    // Precompute what filtering needs.
    const G = groups.map((g) => {
      const files = arr(g.files).map(str);
      const exts = new Set(files.map(extOf));
      return { g: g, files: files, hay: null, exts: exts }; // hay: lower-cased shown paths, made on first filter
    });
    const extStats = new Map();
    for (const x of G) {
      for (const e of x.exts) {
        const s = extStats.get(e) || { bytes: 0, groups: 0 };
        s.bytes += num(x.g.reclaimable);
        s.groups++;
        extStats.set(e, s);
      }
    }
    const extList = Array.from(extStats.entries()).sort((a, b) => b[1].bytes - a[1].bytes || a[0].localeCompare(b[0]));

    const filter = h('input', { id: 'filter', type: 'search', placeholder: 'filter paths\u2026', autocomplete: 'off', spellcheck: 'false', 'aria-label': 'Filter groups by path' });
    const ext = h('select', { id: 'ext', 'aria-label': 'Filter groups by extension' }, [h('option', { value: '', text: 'all extensions' })]);
    const MAX_EXT = 300;
    for (const [e, s] of extList.slice(0, MAX_EXT)) {
      ext.appendChild(h('option', { value: e === '' ? '.' : e, text: (e === '' ? '(no extension)' : '.' + vis(e)) + ' \u2014 ' + fmtBytes(s.bytes) + ', ' + fmtInt(s.groups) + (s.groups === 1 ? ' group' : ' groups') }));
    }
    const zoomBox = h('input', { id: 'zoom-only', type: 'checkbox', checked: true });
    const zoomPath = h('span', { class: 'zoom-path' });
    const zoomWrap = h('label', { id: 'zoom-only-label', class: 'check', hidden: true }, [zoomBox, ' only groups with a file under ', zoomPath]);
    const status = h('span', { id: 'groups-status', class: 'status', 'aria-live': 'polite' });
    sec.appendChild(h('div', { class: 'controls' }, [filter, ext, zoomWrap, status]));

    const tbody = h('tbody');
    const table = h('table', { class: 'list groups' }, [
      h('thead', null, [h('tr', null, [
        h('th', { class: 'num', text: 'size per file' }),
        h('th', { class: 'num', text: 'copies' }),
        h('th', { class: 'num', text: 'reclaimable' }),
        h('th', { text: 'paths' }),
      ])]),
      tbody,
    ]);
    sec.appendChild(h('div', { class: 'table-wrap' }, [table]));
    const moreBtn = h('button', { type: 'button', id: 'groups-more', class: 'more', hidden: true });
    sec.appendChild(moreBtn);
    const empty = h('p', { class: 'none', text: 'No groups match.', hidden: true });
    sec.appendChild(empty);
    if (loNote) sec.appendChild(loNote);

    let zoomDir = '';
    const hitFn = () => (zoomDir && zoomBox.checked ? (p) => under(p, zoomDir) : null);
    const P = pager(tbody, moreBtn, (x) => {
      const g = x.g;
      const tr = h('tr', { class: 'group', 'data-id': String(num(g.id)) }, [
        h('td', { class: 'num' }, [bytesEl(g.size)]),
        h('td', { class: 'num', text: fmtInt(num(g.count) || x.files.length) }),
        h('td', { class: 'num' }, [bytesEl(g.reclaimable, 'bytes strong')]),
        h('td', { class: 'paths-cell' }, [pathList(x.files, 20, hitFn())]),
      ]);
      if (num(g.count) > x.files.length) tr.lastChild.appendChild(h('div', { class: 'muted', text: fmtInt(num(g.count) - x.files.length) + ' more copies not listed' }));
      return tr;
    }, (shown, total) => {
      status.textContent = 'showing ' + fmtInt(total) + ' of ' + fmtInt(G.length) + ' groups' +
        (shown < total ? ' (first ' + fmtInt(shown) + ' listed below)' : '');
    });

    const zoomCache = new Map();
    function apply() {
      const q = filter.value.trim().toLowerCase();
      const ev = ext.value;
      const e = ev === '.' ? '' : ev;
      const useZoom = zoomDir !== '' && zoomBox.checked;
      let inZoom = null;
      if (useZoom) {
        inZoom = zoomCache.get(zoomDir);
        if (!inZoom) {
          inZoom = G.map((x) => x.files.some((p) => under(p, zoomDir)));
          zoomCache.clear();
          zoomCache.set(zoomDir, inZoom);
        }
      }
      const list = [];
      for (let i = 0; i < G.length; i++) {
        const x = G[i];
        if (q) {
          if (x.hay === null) x.hay = x.files.map(vis).join('\n').toLowerCase();
          if (!x.hay.includes(q)) continue;
        }
        if (ev && !x.exts.has(e)) continue;
        if (inZoom && !inZoom[i]) continue;
        list.push(x);
      }
      table.hidden = list.length === 0;
      empty.hidden = list.length !== 0;
      P.reset(list);
    }
    let timer = 0;
    filter.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(apply, 150);
    });
    ext.addEventListener('change', apply);
    zoomBox.addEventListener('change', apply);
    onZoomHooks.push((n) => {
      zoomDir = n && n._parent ? n._path : '';
      zoomWrap.hidden = !zoomDir;
      zoomPath.textContent = '';
      if (zoomDir) zoomPath.appendChild(pathEl(zoomDir));
      apply();
    });
    apply();
  }
  buildGroups();

  // ------------------------------------------------- duplicate directories

  function buildDirs() {
    if (kind !== 'dirs') {
      app.appendChild(h('section', { id: 'identical', class: 'card note' }, [
        h('h2', { text: 'Duplicate directories' }),
        h('p', { class: 'none' }, ['Not part of this report: ', h('code', { text: 'dedupe dirs' }), ' finds identical directories and directories contained in others.']),
      ]));
      return;
    }
    const lo = obj(data.dirs_left_out) || {};
    const ident = arr(data.identical).map(obj).filter(Boolean);
    const subs = arr(data.subsets).map(obj).filter(Boolean);

    const sec = h('section', { id: 'identical', class: 'card' }, [h('h2', { text: 'Identical directories' })]);
    app.appendChild(sec);
    if (ident.length === 0) {
      sec.appendChild(h('p', { class: 'none', text: 'None.' }));
    } else {
      const tb = h('tbody');
      sec.appendChild(h('div', { class: 'table-wrap' }, [h('table', { class: 'list' }, [
        h('thead', null, [h('tr', null, [
          h('th', { class: 'num', text: 'size each' }),
          h('th', { class: 'num', text: 'files each' }),
          h('th', { class: 'num', text: 'reclaimable' }),
          h('th', { text: 'directories' }),
        ])]),
        tb,
      ])]));
      const more = h('button', { type: 'button', class: 'more', hidden: true });
      sec.appendChild(more);
      pager(tb, more, (d) => h('tr', { class: 'dirgroup', 'data-id': String(num(d.id)) }, [
        h('td', { class: 'num' }, [bytesEl(d.bytes)]),
        h('td', { class: 'num', text: fmtInt(num(d.files)) }),
        h('td', { class: 'num' }, [bytesEl(d.reclaimable, 'bytes strong')]),
        h('td', { class: 'paths-cell' }, [pathList(arr(d.dirs).map(str), 20, null)]),
      ])).reset(ident);
    }
    if (num(lo.identical) > 0) sec.appendChild(leftOut(fmtInt(num(lo.identical)) + ' more identical directory groups not shown; the JSON report has them all.'));

    const sec2 = h('section', { id: 'subsets', class: 'card' }, [h('h2', { text: 'Directories contained in others' })]);
    app.appendChild(sec2);
    if (subs.length === 0) {
      sec2.appendChild(h('p', { class: 'none', text: 'None.' }));
    } else {
      sec2.appendChild(h('p', { class: 'help', text: 'Every file of the first directory also exists in the second.' }));
      const tb = h('tbody');
      sec2.appendChild(h('div', { class: 'table-wrap' }, [h('table', { class: 'list' }, [
        h('thead', null, [h('tr', null, [
          h('th', { class: 'num', text: 'size' }),
          h('th', { class: 'num', text: 'files' }),
          h('th', { text: 'directory' }),
          h('th', { text: 'contained in' }),
        ])]),
        tb,
      ])]));
      const more = h('button', { type: 'button', class: 'more', hidden: true });
      sec2.appendChild(more);
      pager(tb, more, (s) => h('tr', { class: 'subset' }, [
        h('td', { class: 'num' }, [bytesEl(s.bytes)]),
        h('td', { class: 'num', text: fmtInt(num(s.files)) }),
        h('td', { class: 'paths-cell' }, [pathEl(s.dir)]),
        h('td', { class: 'paths-cell' }, [pathEl(s.within)]),
      ])).reset(subs);
    }
    if (num(lo.subsets) > 0) sec2.appendChild(leftOut(fmtInt(num(lo.subsets)) + ' more subsets not shown; the JSON report has them all.'));
  }
  buildDirs();
})();
