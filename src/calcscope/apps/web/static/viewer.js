/* calcscope viewer: plain JavaScript, no library, nothing fetched from anywhere else.
 *
 * The image is shown as 256-pixel PNG tiles from a pyramid (level 0 = full resolution),
 * placed in image coordinates inside #world, which is moved and scaled with one CSS
 * transform (zoom with the wheel, pan by dragging). The marks are an SVG in the same
 * image coordinates on top. Text from the server is inserted with textContent only.
 */
'use strict';
(function () {
  var SVGNS = 'http://www.w3.org/2000/svg';
  var MAX_SCALE = 16; // screen pixels per image pixel
  var FOCUS_MAX_SCALE = 3;

  function $(id) { return document.getElementById(id); }

  function clamp(v, lo, hi) { return Math.max(lo, Math.min(hi, v)); }

  function svgEl(name, attrs) {
    var el = document.createElementNS(SVGNS, name);
    Object.keys(attrs || {}).forEach(function (k) { el.setAttribute(k, String(attrs[k])); });
    return el;
  }

  function safeClass(v) { return String(v == null ? '' : v).replace(/[^0-9A-Za-z_-]/g, ''); }

  function words(v) { return String(v == null ? '' : v).replace(/_/g, ' '); }

  async function api(url, opts) {
    var res = await fetch(url, opts);
    var body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    if (!res.ok) {
      var msg = body && typeof body.error === 'string' ? body.error
        : 'the server answered ' + res.status + ' ' + res.statusText;
      throw new Error(msg);
    }
    return body;
  }

  function showMessage(text) {
    var m = $('message');
    m.textContent = text || '';
    m.hidden = !text;
  }

  /* ---------------------------------------------------------------- viewer */

  function Viewer(stage) {
    this.stage = stage;
    this.world = $('world');
    this.detail = $('tiles');
    this.base = $('tiles-base');
    this.svg = $('marks');
    this.s = 1; this.tx = 0; this.ty = 0;
    this.W = 1; this.H = 1;
    this.levels = []; this.tilePx = 256; this.tileRoot = ''; this.version = '';
    this.tiles = new Map();
    this.pending = false;
    this.bind();
  }

  Viewer.prototype.bind = function () {
    var self = this, st = this.stage, drag = null;
    st.addEventListener('wheel', function (e) {
      e.preventDefault();
      var r = st.getBoundingClientRect();
      var dy = e.deltaMode === 1 ? e.deltaY * 40 : e.deltaY;
      self.zoomAt(Math.exp(-dy * 0.0015), e.clientX - r.left, e.clientY - r.top);
    }, { passive: false });
    st.addEventListener('pointerdown', function (e) {
      if (e.button !== 0) { return; }
      drag = { x: e.clientX, y: e.clientY, tx: self.tx, ty: self.ty, moved: false,
        target: e.target, id: e.pointerId };
      st.setPointerCapture(e.pointerId);
      st.classList.add('dragging');
    });
    st.addEventListener('pointermove', function (e) {
      if (!drag || e.pointerId !== drag.id) { return; }
      var dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) { drag.moved = true; }
      self.tx = drag.tx + dx; self.ty = drag.ty + dy;
      self.render();
    });
    function end(e) {
      if (!drag || e.pointerId !== drag.id) { return; }
      var d = drag; drag = null;
      st.classList.remove('dragging');
      if (!d.moved && d.target && d.target.closest) {
        var g = d.target.closest('g.finding');
        if (g && self.onFindingClick) { self.onFindingClick(g.getAttribute('data-finding')); }
      }
    }
    st.addEventListener('pointerup', end);
    st.addEventListener('pointercancel', end);
    st.addEventListener('dblclick', function (e) {
      var r = st.getBoundingClientRect();
      self.zoomAt(2, e.clientX - r.left, e.clientY - r.top);
    });
    st.addEventListener('keydown', function (e) {
      var step = 60, handled = true;
      if (e.key === '+' || e.key === '=') { self.zoomCentre(1.5); }
      else if (e.key === '-') { self.zoomCentre(1 / 1.5); }
      else if (e.key === '0') { self.fit(); }
      else if (e.key === '1') { self.oneToOne(); }
      else if (e.key === 'ArrowLeft') { self.tx += step; self.render(); }
      else if (e.key === 'ArrowRight') { self.tx -= step; self.render(); }
      else if (e.key === 'ArrowUp') { self.ty += step; self.render(); }
      else if (e.key === 'ArrowDown') { self.ty -= step; self.render(); }
      else { handled = false; }
      if (handled) { e.preventDefault(); }
    });
    if (window.ResizeObserver) {
      new ResizeObserver(function () { self.render(); }).observe(st);
    } else {
      window.addEventListener('resize', function () { self.render(); });
    }
  };

  Viewer.prototype.load = function (study) {
    var img = study.image || {};
    var shape = (study.report.source || {}).shape_rc || [1, 1];
    this.H = shape[0]; this.W = shape[1];
    this.levels = img.levels || [];
    this.tilePx = img.tile_px || 256;
    this.version = img.version || '';
    this.tileRoot = '/api/studies/' + encodeURIComponent(study.id) + '/tiles/';
    this.tiles.forEach(function (el) { el.remove(); });
    this.tiles.clear();
    this.base.replaceChildren();
    this.world.style.width = this.W + 'px';
    this.world.style.height = this.H + 'px';
    this.svg.setAttribute('width', this.W);
    this.svg.setAttribute('height', this.H);
    this.svg.setAttribute('viewBox', '0 0 ' + this.W + ' ' + this.H);
    if (this.levels.length) {
      var top = this.levels.length - 1;
      var lv = this.levels[top], t = this.tilePx;
      for (var r = 0; r < Math.ceil(lv[0] / t); r++) {
        for (var c = 0; c < Math.ceil(lv[1] / t); c++) {
          this.base.appendChild(this.tileImg(top, r, c));
        }
      }
    }
    this.fit();
  };

  Viewer.prototype.tileImg = function (k, r, c) {
    var lv = this.levels[k], t = this.tilePx;
    var fy = this.H / lv[0], fx = this.W / lv[1];
    var img = document.createElement('img');
    img.alt = '';
    img.decoding = 'async';
    img.draggable = false;
    img.dataset.level = k;
    img.style.left = (c * t * fx) + 'px';
    img.style.top = (r * t * fy) + 'px';
    img.style.width = (Math.min(t, lv[1] - c * t) * fx) + 'px';
    img.style.height = (Math.min(t, lv[0] - r * t) * fy) + 'px';
    img.src = this.tileRoot + k + '/' + r + '/' + c + '.png?v=' + encodeURIComponent(this.version);
    return img;
  };

  Viewer.prototype.fitScale = function () {
    var cw = this.stage.clientWidth || 1, ch = this.stage.clientHeight || 1;
    return Math.min(cw / this.W, ch / this.H);
  };

  Viewer.prototype.fit = function () {
    var cw = this.stage.clientWidth, ch = this.stage.clientHeight;
    this.s = this.fitScale() * 0.98;
    this.tx = (cw - this.W * this.s) / 2;
    this.ty = (ch - this.H * this.s) / 2;
    this.render();
  };

  Viewer.prototype.zoomAt = function (f, sx, sy) {
    var ns = clamp(this.s * f, this.fitScale() * 0.5, MAX_SCALE);
    this.tx = sx - (sx - this.tx) * ns / this.s;
    this.ty = sy - (sy - this.ty) * ns / this.s;
    this.s = ns;
    this.render();
  };

  Viewer.prototype.zoomCentre = function (f) {
    this.zoomAt(f, this.stage.clientWidth / 2, this.stage.clientHeight / 2);
  };

  Viewer.prototype.oneToOne = function () {
    var c = this.centre();
    this.centreOn(c[0], c[1], 1 / (window.devicePixelRatio || 1));
  };

  Viewer.prototype.centre = function () {
    return [(this.stage.clientHeight / 2 - this.ty) / this.s,
      (this.stage.clientWidth / 2 - this.tx) / this.s];
  };

  Viewer.prototype.centreOn = function (row, col, scale) {
    this.s = clamp(scale, this.fitScale() * 0.5, MAX_SCALE);
    this.tx = this.stage.clientWidth / 2 - col * this.s;
    this.ty = this.stage.clientHeight / 2 - row * this.s;
    this.render();
  };

  /* Centre on a box [r0, c0, r1, c1] and zoom so that it (at least minSide pixels)
   * fills most of the view. */
  Viewer.prototype.focusBox = function (bbox, minSide) {
    var h = Math.max(bbox[2] - bbox[0], minSide), w = Math.max(bbox[3] - bbox[1], minSide);
    var s = Math.min(this.stage.clientWidth / w, this.stage.clientHeight / h) * 0.7;
    this.centreOn((bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2,
      Math.min(s, FOCUS_MAX_SCALE));
  };

  Viewer.prototype.render = function () {
    var self = this;
    if (this.pending) { return; }
    this.pending = true;
    window.requestAnimationFrame(function () { self.pending = false; self.draw(); });
  };

  Viewer.prototype.draw = function () {
    var s = this.s;
    this.world.style.transform =
      'translate(' + this.tx.toFixed(2) + 'px,' + this.ty.toFixed(2) + 'px) scale(' + s + ')';
    this.stage.dataset.scale = s.toFixed(5);
    var c = this.centre();
    this.stage.dataset.centre = c[0].toFixed(1) + ',' + c[1].toFixed(1);
    this.svg.style.setProperty('--label', (13 / s) + 'px');
    this.svg.style.setProperty('--halo', (3 / s) + 'px');
    var dpr = window.devicePixelRatio || 1;
    this.stage.classList.toggle('pixelated', s * dpr >= 2);
    $('zoom-level').textContent = Math.round(s * dpr * 100) + ' %';
    this.updateTiles();
  };

  Viewer.prototype.updateTiles = function () {
    var n = this.levels.length, self = this;
    if (!n) { return; }
    var dpr = window.devicePixelRatio || 1;
    var k = clamp(Math.floor(Math.log2(1 / (this.s * dpr))), 0, n - 1);
    this.stage.dataset.level = k;
    var wanted = new Set();
    if (k < n - 1) {
      var lv = this.levels[k], t = this.tilePx;
      var fy = this.H / lv[0], fx = this.W / lv[1];
      var cw = this.stage.clientWidth, ch = this.stage.clientHeight;
      var x0 = -this.tx / this.s, x1 = (cw - this.tx) / this.s;
      var y0 = -this.ty / this.s, y1 = (ch - this.ty) / this.s;
      var c0 = Math.max(0, Math.floor(x0 / (t * fx)) - 1);
      var c1 = Math.min(Math.ceil(lv[1] / t) - 1, Math.floor(x1 / (t * fx)) + 1);
      var r0 = Math.max(0, Math.floor(y0 / (t * fy)) - 1);
      var r1 = Math.min(Math.ceil(lv[0] / t) - 1, Math.floor(y1 / (t * fy)) + 1);
      for (var r = r0; r <= r1; r++) {
        for (var c = c0; c <= c1; c++) {
          var key = k + '/' + r + '/' + c;
          wanted.add(key);
          if (!this.tiles.has(key)) {
            var img = this.tileImg(k, r, c);
            this.tiles.set(key, img);
            this.detail.appendChild(img);
          }
        }
      }
    }
    this.tiles.forEach(function (el, key) {
      if (!wanted.has(key)) { el.remove(); self.tiles.delete(key); }
    });
  };

  /* ----------------------------------------------------------------- marks */

  function findingBoxes(report) {
    var byId = new Map();
    (report.calcifications || []).forEach(function (c) { byId.set(c.id, c); });
    var out = [];
    (report.clusters || []).forEach(function (cl) {
      out.push({ id: 'C' + cl.id, bbox: cl.bbox_rc, centre: cl.center_rc, cluster: cl,
        category: cl.assessment.category, label: 'C' + cl.id + ' BI-RADS ' + cl.assessment.category });
    });
    (report.macro_findings || []).forEach(function (m) {
      var boxes = m.member_ids.map(function (i) { return byId.get(i); })
        .filter(Boolean).map(function (c) { return c.bbox_rc; });
      var bbox = boxes.length ? [
        Math.min.apply(null, boxes.map(function (b) { return b[0]; })),
        Math.min.apply(null, boxes.map(function (b) { return b[1]; })),
        Math.max.apply(null, boxes.map(function (b) { return b[2]; })),
        Math.max.apply(null, boxes.map(function (b) { return b[3]; }))]
        : [m.center_rc[0], m.center_rc[1], m.center_rc[0], m.center_rc[1]];
      out.push({ id: 'M' + m.id, bbox: bbox, centre: m.center_rc, macro: m,
        category: m.assessment.category, label: 'M' + m.id + ' ' + words(m.pattern) });
    });
    return out;
  }

  function buildMarks(svg, report, findings) {
    svg.replaceChildren();
    var settings = report.settings || {};
    var op = typeof settings.detect_operating_score === 'number' ? settings.detect_operating_score : 0;
    var sp = (report.source || {}).spacing_mm || [0.1, 0.1];
    var mmPx = 1 / Math.max(1e-6, (sp[0] + sp[1]) / 2);
    var calcs = svgEl('g', { 'class': 'calcs' });
    (report.calcifications || []).forEach(function (c) {
      if (c.score < op && c.cluster_id == null) { return; }
      var cls = 'calc ' + (c.kind === 'macro' ? 'macro' : 'micro');
      var el;
      if (c.contour_rc && c.contour_rc.length >= 3) {
        el = svgEl('polygon', { 'class': cls, points: c.contour_rc.map(function (p) {
          return (p[1] + 0.5) + ',' + (p[0] + 0.5);
        }).join(' ') });
      } else {
        el = svgEl('circle', { 'class': cls, cx: c.center_rc[1] + 0.5, cy: c.center_rc[0] + 0.5,
          r: Math.max(2, c.diameter_mm * mmPx / 2) });
      }
      el.dataset.calc = c.id;
      calcs.appendChild(el);
    });
    svg.appendChild(calcs);
    var pad = Math.max(6, 0.6 * mmPx);
    findings.forEach(function (f) {
      var g = svgEl('g', { 'class': 'finding cat-' + safeClass(f.category), 'data-finding': f.id });
      var b = f.bbox;
      g.appendChild(svgEl('rect', { x: b[1] - pad, y: b[0] - pad,
        width: b[3] - b[1] + 2 * pad, height: b[2] - b[0] + 2 * pad }));
      var text = svgEl('text', { x: b[1] - pad, y: b[0] - pad - 2 });
      text.textContent = f.label;
      g.appendChild(text);
      var title = svgEl('title');
      title.textContent = f.label;
      g.appendChild(title);
      svg.appendChild(g);
    });
  }

  function cell(tr, text, cls) {
    var td = document.createElement('td');
    td.textContent = text == null ? '' : String(text);
    if (cls) { td.className = cls; }
    tr.appendChild(td);
  }

  function buildTable(tbody, findings, onPick) {
    tbody.replaceChildren();
    if (!findings.length) {
      var tr0 = document.createElement('tr');
      var td = document.createElement('td');
      td.colSpan = 10;
      td.textContent = 'no finding';
      tr0.appendChild(td);
      tbody.appendChild(tr0);
      return;
    }
    findings.forEach(function (f) {
      var tr = document.createElement('tr');
      tr.className = 'finding';
      tr.tabIndex = 0;
      tr.dataset.finding = f.id;
      tr.dataset.center = f.centre[0] + ',' + f.centre[1];
      tr.dataset.bbox = f.bbox.join(',');
      var a = f.cluster ? f.cluster.assessment : f.macro.assessment;
      cell(tr, f.id);
      if (f.cluster) {
        var cl = f.cluster;
        cell(tr, 'cluster');
        cell(tr, cl.location ? cl.location.text : '');
        cell(tr, cl.n_detected + ' + ' + (cl.n_members - cl.n_detected) + ' possible');
        cell(tr, Number(cl.extent_mm).toFixed(1));
        cell(tr, words(cl.morphology) + (cl.morphology_confident ? '' : ' (?)'));
        cell(tr, words(cl.distribution));
      } else {
        var m = f.macro;
        cell(tr, 'macro');
        cell(tr, m.location ? m.location.text : '');
        cell(tr, m.member_ids.length);
        cell(tr, Number(m.size_mm).toFixed(1));
        cell(tr, words(m.pattern));
        cell(tr, '');
      }
      cell(tr, a.category, 'badge-' + safeClass(a.category));
      cell(tr, a.follow_up_label);
      cell(tr, a.reason);
      tr.addEventListener('click', function () { onPick(f.id, true); });
      tr.addEventListener('keydown', function (e) {
        if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); onPick(f.id, true); }
      });
      tbody.appendChild(tr);
    });
  }

  /* ------------------------------------------------------------------- app */

  var viewer = null;
  var current = { id: null, findings: [], mmPx: 10 };
  var info = { max_upload_bytes: 0 };

  function selectFinding(id, go) {
    document.querySelectorAll('#findings tr.finding, #marks g.finding').forEach(function (el) {
      el.classList.toggle('selected', el.dataset.finding === id ||
        el.getAttribute('data-finding') === id);
    });
    var f = current.findings.find(function (x) { return x.id === id; });
    if (!f) { return; }
    if (go) {
      var st = $('stage'), r = st.getBoundingClientRect();
      if (r.top < 0 || r.bottom > window.innerHeight) {
        st.scrollIntoView({ block: 'start' });
      }
      viewer.focusBox(f.bbox, 10 * current.mmPx);
    } else {
      var row = document.querySelector('#findings tr.finding.selected');
      if (row) { row.scrollIntoView({ block: 'nearest' }); }
    }
  }

  function studyMeta(s) {
    var parts = [];
    if (s.category) { parts.push('BI-RADS ' + s.category); }
    if (s.n_clusters != null) { parts.push(s.n_clusters + (s.n_clusters === 1 ? ' cluster' : ' clusters')); }
    if (s.laterality || s.view) { parts.push((s.laterality || '') + ' ' + (s.view || '')); }
    if (s.origin === 'upload') { parts.push('uploaded'); }
    return parts.join(' \u00b7 ');
  }

  async function loadStudies() {
    var data = await api('/api/studies');
    var list = $('study-list');
    list.replaceChildren();
    data.studies.forEach(function (s) {
      var li = document.createElement('li');
      var b = document.createElement('button');
      b.type = 'button';
      b.className = 'study' + (s.id === current.id ? ' active' : '');
      b.dataset.id = s.id;
      var name = document.createElement('span');
      name.className = 'name';
      name.textContent = s.name;
      var meta = document.createElement('span');
      meta.className = 'meta';
      meta.textContent = studyMeta(s);
      b.appendChild(name);
      b.appendChild(meta);
      b.addEventListener('click', function () { location.hash = '#study=' + encodeURIComponent(s.id); });
      li.appendChild(b);
      list.appendChild(li);
    });
    $('study-empty').hidden = data.studies.length > 0;
    if (window.calcscopeExams) { window.calcscopeExams.list(data.exams || []); }
    return data.studies;
  }

  async function openStudy(id) {
    showMessage('');
    var st;
    try {
      st = await api('/api/studies/' + encodeURIComponent(id));
    } catch (err) {
      showMessage('Cannot open the study: ' + err.message);
      return;
    }
    current.id = st.id;
    var rep = st.report;
    var sp = (rep.source || {}).spacing_mm || [0.1, 0.1];
    current.mmPx = 1 / Math.max(1e-6, (sp[0] + sp[1]) / 2);
    current.findings = findingBoxes(rep);
    $('welcome').hidden = true;
    $('exam').hidden = true;
    $('study').hidden = false;
    $('study-title').textContent = st.name;
    var a = rep.assessment || {};
    $('assessment').textContent = 'BI-RADS ' + a.category + ' (' + (a.category_label || '') +
      '). Follow-up: ' + (a.follow_up_label || '') + '. Why: ' + (a.reason || '');
    var note = (st.image && st.image.note) || '';
    $('image-note').textContent = note;
    $('image-note').hidden = !note;
    viewer.load(st);
    buildMarks($('marks'), rep, current.findings);
    buildTable(document.querySelector('#findings tbody'), current.findings, selectFinding);
    var root = '/api/studies/' + encodeURIComponent(st.id);
    $('letter').src = root + '/letter';
    $('report-link').href = root + '/report.json';
    $('overlay-link').href = root + '/overlay.png';
    $('overlay-link-wrap').hidden = !st.has_overlay;
    document.querySelectorAll('#study-list button.study').forEach(function (b) {
      b.classList.toggle('active', b.dataset.id === st.id);
    });
    document.body.dataset.study = st.id;
  }

  function openFromHash() {
    var m = /^#study=(.+)$/.exec(location.hash);
    if (m) { openStudy(decodeURIComponent(m[1])); return; }
    var e = /^#exam=(.+)$/.exec(location.hash);
    if (e && window.calcscopeExams) { window.calcscopeExams.open(decodeURIComponent(e[1])); }
  }

  function setStatus(text, kind) {
    var el = $('upload-status');
    el.textContent = text;
    el.className = kind || '';
  }

  async function onUpload(e) {
    e.preventDefault();
    var form = $('upload-form');
    var file = $('upload-file').files[0];
    if (!file) { setStatus('Choose a file first.', 'error'); return; }
    if (info.max_upload_bytes && file.size > info.max_upload_bytes) {
      setStatus('Upload failed: the file is too large: the limit is ' +
        Math.round(info.max_upload_bytes / 1048576) + ' MB', 'error');
      return;
    }
    var button = $('upload-submit');
    button.disabled = true;
    setStatus('Analysing ' + file.name + '\u2026 this can take a minute.', 'busy');
    try {
      var row = await api('/api/upload', { method: 'POST', body: new FormData(form),
        headers: { 'X-Calcscope': '1' } });
      setStatus('Analysed ' + row.name + ': BI-RADS ' + row.category + '.', 'ok');
      await loadStudies();
      location.hash = '#study=' + encodeURIComponent(row.id);
    } catch (err) {
      setStatus('Upload failed: ' + err.message, 'error');
    } finally {
      button.disabled = false;
    }
  }

  async function start() {
    viewer = new Viewer($('stage'));
    viewer.onFindingClick = function (id) { selectFinding(id, false); };
    $('overlay-toggle').addEventListener('change', function (e) {
      $('marks').classList.toggle('hidden', !e.target.checked);
    });
    $('zoom-in').addEventListener('click', function () { viewer.zoomCentre(2); });
    $('zoom-out').addEventListener('click', function () { viewer.zoomCentre(0.5); });
    $('zoom-fit').addEventListener('click', function () { viewer.fit(); });
    $('zoom-1').addEventListener('click', function () { viewer.oneToOne(); });
    $('upload-form').addEventListener('submit', onUpload);
    window.addEventListener('hashchange', openFromHash);
    try {
      info = await api('/api/info');
      $('disclaimer-text').textContent = info.disclaimer;
      $('upload-limit').textContent = 'Up to ' + Math.round(info.max_upload_bytes / 1048576) + ' MB.';
      $('footer').textContent = 'calcscope ' + info.version + ' \u2014 research software, not a medical device.';
      await loadStudies();
    } catch (err) {
      showMessage('Cannot reach the calcscope server: ' + err.message);
    }
    openFromHash();
    document.body.dataset.ready = '1';
  }

  /* shared with exam.js */
  window.calcscope = { api: api, svgEl: svgEl, safeClass: safeClass, words: words,
    showMessage: showMessage, findingBoxes: findingBoxes, cell: cell };

  document.addEventListener('DOMContentLoaded', start);
}());
