/* calcscope viewer: the exam hanging (plain JavaScript, nothing fetched from elsewhere).
 *
 * An exam (GET /api/exams/{id}) is hung as four panels: right and left CC above, right and
 * left MLO below, the right breast on the left of the screen, chest walls at the outer
 * edges (the server says which images to mirror: panel.flip). Each panel shows the
 * image's tiles (the image study's tile route, one pyramid level that fits the panel) and
 * the boxes of its findings; a finding of the exam (a row of #exam-findings, or a box)
 * is marked on every view that shows it. Text from the server is inserted with
 * textContent only.
 */
'use strict';
(function () {
  function C() { return window.calcscope; }
  function $(id) { return document.getElementById(id); }

  var current = { id: null, exam: null };

  function list(rows) {
    var ul = $('exam-list');
    ul.replaceChildren();
    rows.forEach(function (e) {
      var li = document.createElement('li');
      var b = document.createElement('button');
      b.type = 'button';
      b.className = 'study exam' + (e.id === current.id ? ' active' : '');
      b.dataset.id = e.id;
      var name = document.createElement('span');
      name.className = 'name';
      name.textContent = e.study_date ? 'exam ' + e.study_date : 'exam ' + e.name;
      name.title = e.name;
      var meta = document.createElement('span');
      meta.className = 'meta';
      meta.textContent = 'BI-RADS ' + e.category + ' \u00b7 ' + e.n_images + ' images \u00b7 ' +
        e.n_findings + (e.n_findings === 1 ? ' finding' : ' findings');
      b.appendChild(name);
      b.appendChild(meta);
      b.addEventListener('click', function () { location.hash = '#exam=' + encodeURIComponent(e.id); });
      li.appendChild(b);
      ul.appendChild(li);
    });
    $('exam-empty').hidden = rows.length > 0;
  }

  /* exam finding key ("R1", "L2", "U1") of each (image report, 'C'/'M' + id) */
  function findingKeys(exam) {
    var keys = new Map();
    var all = [];
    ['R', 'L'].forEach(function (lat) {
      ((exam.breasts[lat] || {}).findings || []).forEach(function (f) {
        all.push({ key: lat + f.id, breast: lat, f: f });
      });
    });
    (exam.findings_unknown_side || []).forEach(function (f) {
      all.push({ key: 'U' + f.id, breast: '?', f: f });
    });
    all.forEach(function (x) {
      Object.keys(x.f.views).forEach(function (role) {
        var v = x.f.views[role];
        var mark = (x.f.kind === 'macro' ? 'M' : 'C') + v.finding_id;
        keys.set(v.image_report + '|' + mark, x.key);
      });
    });
    return { keys: keys, all: all };
  }

  function chooseLevel(levels, width) {
    var k = 0;
    for (var i = 0; i < levels.length; i++) { if (levels[i][1] >= width) { k = i; } }
    return k;
  }

  /* the pane's image (tiles of one pyramid level that fits it) and an empty mark layer;
   * null when the panel has no report */
  function paneWorld(pane, panel) {
    var c = C();
    pane.replaceChildren();
    pane.classList.toggle('empty', !panel || !panel.report);
    if (!panel || !panel.report) { return null; }
    var rep = panel.report, img = panel.image || {};
    var H = rep.source.shape_rc[0], W = rep.source.shape_rc[1];
    var cw = pane.clientWidth || 1, ch = pane.clientHeight || 1;
    var s = Math.min(cw / W, ch / H);
    var tx = panel.laterality === 'L' ? cw - W * s : 0;
    var ty = (ch - H * s) / 2;
    pane.dataset.flip = panel.flip ? '1' : '0';
    pane.dataset.study = panel.study_id || '';
    pane.dataset.scale = s.toFixed(5);
    var world = document.createElement('div');
    world.className = 'pworld';
    world.style.width = W + 'px';
    world.style.height = H + 'px';
    world.style.transform = 'translate(' + tx.toFixed(2) + 'px,' + ty.toFixed(2) + 'px) scale(' + s + ')';
    var tiles = document.createElement('div');
    tiles.className = 'ptiles' + (panel.flip ? ' flip' : '');
    tiles.style.width = W + 'px';
    tiles.style.height = H + 'px';
    var levels = img.levels || [];
    if (levels.length && panel.study_id) {
      var k = chooseLevel(levels, W * s * (window.devicePixelRatio || 1));
      var lv = levels[k], t = img.tile_px || 256, fy = H / lv[0], fx = W / lv[1];
      var root = '/api/studies/' + encodeURIComponent(panel.study_id) + '/tiles/';
      for (var r = 0; r < Math.ceil(lv[0] / t); r++) {
        for (var col = 0; col < Math.ceil(lv[1] / t); col++) {
          var im = document.createElement('img');
          im.alt = '';
          im.draggable = false;
          im.style.left = (col * t * fx) + 'px';
          im.style.top = (r * t * fy) + 'px';
          im.style.width = (Math.min(t, lv[1] - col * t) * fx) + 'px';
          im.style.height = (Math.min(t, lv[0] - r * t) * fy) + 'px';
          im.src = root + k + '/' + r + '/' + col + '.png?v=' + encodeURIComponent(img.version || '');
          tiles.appendChild(im);
        }
      }
    }
    world.appendChild(tiles);
    var svg = c.svgEl('svg', { 'class': 'pmarks', width: W, height: H, viewBox: '0 0 ' + W + ' ' + H });
    var sp = rep.source.spacing_mm || [0.1, 0.1];
    var pad = Math.max(6, 0.6 / Math.max(1e-6, (sp[0] + sp[1]) / 2));
    world.appendChild(svg);
    pane.appendChild(world);
    return { svg: svg, W: W, s: s, pad: pad, flip: panel.flip };
  }

  /* one finding's box and label (text only) on the pane's mark layer */
  function markBox(w, f, label, attrs) {
    var c = C(), b = f.bbox, pad = w.pad;
    var g = c.svgEl('g', attrs);
    var x0 = w.flip ? w.W - b[3] : b[1];
    g.appendChild(c.svgEl('rect', { x: x0 - pad, y: b[0] - pad,
      width: b[3] - b[1] + 2 * pad, height: b[2] - b[0] + 2 * pad }));
    var text = c.svgEl('text', { x: x0 - pad, y: b[0] - pad - 4, 'font-size': 14 / w.s,
      'stroke-width': 3 / w.s });
    text.textContent = label;
    g.appendChild(text);
    w.svg.appendChild(g);
    return g;
  }

  function drawPanel(pane, panel, keys) {
    var c = C(), w = paneWorld(pane, panel);
    if (!w) { return; }
    c.findingBoxes(panel.report).forEach(function (f) {
      var key = keys.get(panel.report_key + '|' + f.id) || '';
      var g = markBox(w, f, key ? key + ' (' + f.id + ')' : f.id, {
        'class': 'finding cat-' + c.safeClass(f.category), 'data-finding': f.id, 'data-exam': key });
      if (key) { g.addEventListener('click', function () { select(key); }); }
    });
  }

  function select(key) {
    document.querySelectorAll('#exam-findings tr.finding, #hanging g.finding').forEach(function (el) {
      el.classList.toggle('selected', el.getAttribute('data-exam') === key);
    });
    document.body.dataset.examFinding = key;
  }

  function buildTable(all) {
    var c = C(), tbody = document.querySelector('#exam-findings tbody');
    tbody.replaceChildren();
    if (!all.length) {
      var tr0 = document.createElement('tr');
      c.cell(tr0, 'no finding');
      tr0.firstChild.colSpan = 11;
      tbody.appendChild(tr0);
      return;
    }
    all.forEach(function (x) {
      var f = x.f, tr = document.createElement('tr');
      tr.className = 'finding';
      tr.tabIndex = 0;
      tr.setAttribute('data-exam', x.key);
      tr.dataset.views = Object.keys(f.views).join(',');
      c.cell(tr, x.key);
      c.cell(tr, x.breast);
      c.cell(tr, f.kind);
      c.cell(tr, Object.keys(f.views).join(' + '));
      c.cell(tr, f.quadrant);
      c.cell(tr, f.clock);
      c.cell(tr, f.depth);
      c.cell(tr, f.distance_from_nipple_mm == null ? '' : Number(f.distance_from_nipple_mm).toFixed(0));
      c.cell(tr, f.assessment.category, 'badge-' + c.safeClass(f.assessment.category));
      c.cell(tr, f.assessment.follow_up_label);
      c.cell(tr, f.description);
      tr.addEventListener('click', function () { select(x.key); });
      tr.addEventListener('keydown', function (e) {
        if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); select(x.key); }
      });
      tbody.appendChild(tr);
    });
  }

  function draw() {
    var data = current.exam;
    if (!data) { return; }
    var fk = findingKeys(data.exam);
    document.querySelectorAll('#hanging .panel').forEach(function (fig) {
      var panel = data.panels.find(function (p) { return p.slot === fig.dataset.slot; });
      drawPanel(fig.querySelector('.pane'), panel, fk.keys);
    });
    if (document.body.dataset.examFinding) { select(document.body.dataset.examFinding); }
  }

  async function open(id) {
    var c = C();
    c.showMessage('');
    var data;
    try {
      data = await c.api('/api/exams/' + encodeURIComponent(id));
    } catch (err) {
      c.showMessage('Cannot open the exam: ' + err.message);
      return;
    }
    current.id = data.id;
    current.exam = data;
    delete document.body.dataset.examFinding;
    $('welcome').hidden = true;
    $('study').hidden = true;
    $('exam').hidden = false;
    if (window.calcscopeCompare) { window.calcscopeCompare.reset(data); }
    $('exam-title').textContent = 'Exam ' + (data.study_date || '') + ' (' + data.name + ')';
    var a = data.exam.assessment;
    $('exam-assessment').textContent = 'BI-RADS ' + a.category + ' (' + a.category_label +
      '). Follow-up: ' + a.follow_up_label + '. Why: ' + a.reason;
    $('exam-link').href = '/api/exams/' + encodeURIComponent(data.id);
    buildTable(findingKeys(data.exam).all);
    draw();
    document.querySelectorAll('#study-list button.study, #exam-list button.study').forEach(function (b) {
      b.classList.toggle('active', b.classList.contains('exam') && b.dataset.id === data.id);
    });
    delete document.body.dataset.study;
    document.body.dataset.exam = data.id;
  }

  window.addEventListener('resize', function () { if (!$('exam').hidden && !$('hanging').hidden) { draw(); } });
  window.calcscopeExams = { list: list, open: open, findingKeys: findingKeys,
    paneWorld: paneWorld, markBox: markBox, draw: draw };
}());
