// faultline report: copy buttons and the windowed timeline.
// Everything taken from the data goes into the page through textContent and
// element properties, never through HTML strings, and with control and
// bidirectional characters shown as escapes (\u{202e}), never as themselves.
"use strict";
(function () {
  function selectText(el) {
    var r = document.createRange();
    r.selectNodeContents(el);
    var s = window.getSelection();
    s.removeAllRanges();
    s.addRange(r);
  }
  document.querySelectorAll("button.copy").forEach(function (b) {
    b.addEventListener("click", function () {
      var t = document.getElementById(b.dataset.target);
      if (!t) return;
      var done = function () { b.textContent = "copied"; setTimeout(function () { b.textContent = "copy"; }, 1500); };
      if (navigator.clipboard) navigator.clipboard.writeText(t.textContent).then(done, function () { selectText(t); });
      else selectText(t);
    });
  });

  var dataEl = document.getElementById("timeline-data");
  var box = document.getElementById("timeline");
  if (!dataEl || !box) return;
  var D;
  try {
    D = JSON.parse(dataEl.textContent);
  } catch (e) {
    box.textContent = "The timeline data could not be read: " + e;
    return;
  }
  // The report writes these strings with the characters escaped already;
  // this keeps it so whatever the data holds.
  var HIDDEN = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
  function visible(s) {
    return String(s).replace(HIDDEN, function (c) { return "\\u{" + c.charCodeAt(0).toString(16) + "}"; });
  }
  D.f = D.f.map(visible);
  D.v = D.v.map(visible);
  D.nodes = D.nodes.map(visible);
  D.e.forEach(function (x) { x[1] = visible(x[1]); });
  D.faults.forEach(function (f) { f[0] = visible(f[0]); f[4] = visible(f[4]); });
  var N = D.p.length, total = D.n;
  var inv = new Float64Array(N), comp = new Float64Array(N), t0 = new Float64Array(N);
  var a = 0, t = 0;
  for (var i = 0; i < N; i++) {
    a += D.i[i];
    inv[i] = a;
    comp[i] = D.c[i] < 0 ? -1 : a + D.c[i];
    t += D.t[i];
    t0[i] = t;
  }
  var errs = new Map(D.e.map(function (x) { return [x[0], x[1]]; }));
  // History index -> operation, for invocations and completions.
  var byIndex = total <= 50000000 ? new Int32Array(total).fill(-1) : null;
  if (byIndex) for (i = 0; i < N; i++) {
    byIndex[inv[i]] = i;
    if (comp[i] >= 0) byIndex[comp[i]] = i;
  }
  function callAt(index) {
    if (byIndex) return index >= 0 && index < total ? byIndex[index] : -1;
    for (var j = 0; j < N; j++) if (inv[j] === index || comp[j] === index) return j;
    return -1;
  }
  var KIND = ["ok", "fail", "info", "open"];
  var KIND_TEXT = ["ok", "fail", "info (unknown outcome)", "never completed"];
  var ROW = 11, HEAD = 26, COLW = 156, GUTTER = 58, NEMW = D.faults.length ? 132 : 0;
  var sizeEl = document.getElementById("tl-size");
  var size = +sizeEl.value, start = 0, highlight = -1;

  function el(tag, cls, parent) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (parent) parent.appendChild(e);
    return e;
  }
  function secs(us) { return (us / 1e6).toFixed(3) + " s"; }
  function dur(us) {
    return us < 1000 ? us + " µs" : us < 1e6 ? (us / 1000).toFixed(1) + " ms" : (us / 1e6).toFixed(2) + " s";
  }
  function describe(i) {
    var s = "op " + inv[i] + (comp[i] >= 0 ? "–" + comp[i] : "") + " · process " + D.p[i] +
      "\n" + D.f[D.fn[i]] + " " + D.v[i] + "\n" + KIND_TEXT[D.k[i]] + " · invoked at " + secs(t0[i]);
    if (D.d[i] >= 0) s += " · took " + dur(D.d[i]);
    if (D.nd[i] >= 0) s += "\nnode " + D.nodes[D.nd[i]];
    if (errs.has(i)) s += "\nerror: " + errs.get(i);
    return s;
  }
  function clampStart(s) { return Math.max(0, Math.min(Math.max(0, total - size), Math.floor(s))); }

  function overview() {
    var ov = document.getElementById("tl-overview");
    D.faults.forEach(function (f) {
      var b = el("div", "ov-band f" + (f[1] % 8), ov);
      b.style.left = (100 * f[2] / Math.max(1, total)) + "%";
      b.style.width = Math.max(0.2, 100 * (f[3] - f[2]) / Math.max(1, total)) + "%";
      b.title = f[0];
    });
    ov.addEventListener("click", function (ev) {
      var r = ov.getBoundingClientRect();
      start = clampStart((ev.clientX - r.left) / r.width * total - size / 2);
      render();
    });
  }

  function render() {
    var end = Math.min(total, start + size);
    var shown = [], procs = new Map();
    for (var i = 0; i < N && inv[i] < end; i++) {
      var e = comp[i] < 0 ? Infinity : comp[i];
      if (e >= start) {
        shown.push(i);
        procs.set(D.p[i], true);
      }
    }
    var cols = Array.from(procs.keys()).sort(function (x, y) { return x - y; });
    var colOf = new Map(cols.map(function (p, j) { return [p, j]; }));
    var width = GUTTER + NEMW + cols.length * COLW + 8;
    var frag = document.createDocumentFragment();
    var inner = el("div", "tl-inner", frag);
    inner.style.height = (HEAD + (end - start) * ROW + 8) + "px";
    inner.style.width = width + "px";
    inner.style.minWidth = "100%";
    var head = el("div", "tl-head", inner);
    head.style.width = width + "px";
    if (NEMW) { var nh = el("div", "", head); nh.style.left = GUTTER + "px"; nh.textContent = "nemesis"; }
    cols.forEach(function (p, j) {
      var h = el("div", "", head);
      h.style.left = (GUTTER + NEMW + j * COLW + 4) + "px";
      h.textContent = "process " + p;
    });
    for (var r = Math.ceil(start / 20) * 20; r < end; r += 20) {
      var g = el("div", "tl-gutter", inner);
      g.style.top = (HEAD + (r - start) * ROW + 2) + "px";
      g.textContent = r;
    }
    D.faults.forEach(function (f) {
      if (f[3] < start || f[2] >= end) return;
      var top = HEAD + (Math.max(f[2], start) - start) * ROW;
      var h = (Math.min(f[3], end - 1) - Math.max(f[2], start) + 1) * ROW;
      var band = el("div", "tl-band f" + (f[1] % 8), inner);
      band.style.top = top + "px"; band.style.height = h + "px";
      band.style.left = GUTTER + "px"; band.style.width = (width - GUTTER) + "px";
      var lab = el("div", "tl-fault f" + (f[1] % 8), inner);
      lab.style.top = top + "px"; lab.style.height = h + "px";
      lab.style.left = (GUTTER + 4) + "px"; lab.style.width = (NEMW - 10) + "px";
      lab.textContent = f[0];
      lab.title = f[0] + ": " + f[4];
    });
    shown.forEach(function (i) {
      var s = Math.max(inv[i], start);
      var e = comp[i] < 0 ? end - 1 : Math.min(comp[i], end - 1);
      var d = el("div", "tl-op " + KIND[D.k[i]] + (i === highlight ? " hl" : ""), inner);
      d.id = "op-" + inv[i];
      d.style.top = (HEAD + (s - start) * ROW + 1) + "px";
      d.style.height = Math.max(ROW - 2, (e - s + 1) * ROW - 2) + "px";
      d.style.left = (GUTTER + NEMW + colOf.get(D.p[i]) * COLW + 3) + "px";
      d.style.width = (COLW - 6) + "px";
      d.textContent = D.f[D.fn[i]] + " " + D.v[i];
      d.title = describe(i);
    });
    box.replaceChildren(frag);
    document.getElementById("tl-range").textContent =
      "history positions " + start.toLocaleString() + "–" + Math.max(start, end - 1).toLocaleString() +
      " of " + total.toLocaleString() + " · " + shown.length + " operations shown";
    var w = document.getElementById("tl-window");
    w.style.left = (100 * start / Math.max(1, total)) + "%";
    w.style.width = (100 * (end - start) / Math.max(1, total)) + "%";
  }

  function goTo(index, scroll) {
    var c = callAt(index);
    highlight = c;
    start = clampStart((c >= 0 ? inv[c] : index) - size / 4);
    render();
    var target = c >= 0 ? document.getElementById("op-" + inv[c]) : null;
    if (scroll && target) {
      document.getElementById("timeline-section").scrollIntoView();
      box.scrollTop = Math.max(0, target.offsetTop - box.clientHeight / 3);
    }
  }
  function onHash() {
    var m = /^#op-(\d+)$/.exec(location.hash);
    if (m) goTo(+m[1], true);
  }

  document.getElementById("tl-first").addEventListener("click", function () { start = 0; render(); });
  document.getElementById("tl-prev").addEventListener("click", function () { start = clampStart(start - size); render(); });
  document.getElementById("tl-next").addEventListener("click", function () { start = clampStart(start + size); render(); });
  document.getElementById("tl-last").addEventListener("click", function () { start = clampStart(total); render(); });
  sizeEl.addEventListener("change", function () { size = +sizeEl.value; start = clampStart(start); render(); });
  document.getElementById("tl-goto").addEventListener("change", function (ev) {
    var v = parseInt(ev.target.value, 10);
    if (v >= 0) goTo(v, true);
  });
  window.addEventListener("hashchange", onHash);
  // A link to the op already in the address bar fires no hashchange.
  document.addEventListener("click", function (ev) {
    var link = ev.target.closest && ev.target.closest("a[href^='#op-']");
    if (link && link.getAttribute("href") === location.hash) {
      ev.preventDefault();
      onHash();
    }
  });
  overview();
  render();
  onHash();
})();
