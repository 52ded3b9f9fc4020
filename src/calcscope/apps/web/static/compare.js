/* calcscope viewer: an exam and its prior exam side by side (plain JavaScript, nothing
 * fetched from elsewhere).
 *
 * GET /api/exams/{id}/compare gives both exams (their documents and hangings) and the
 * links between their findings: a number shown beside both marks, the change (new,
 * increased, stable, decreased; resolved for a prior finding not seen now). One view
 * (RCC, LCC, RMLO, LMLO) is shown at a time, the current exam on the left and the prior
 * on the right; a linked pair has one colour and number, and hovering or clicking either
 * mark (or its table row) highlights both. Text from the server is inserted with
 * textContent only.
 */
'use strict';
(function () {
  function C() { return window.calcscope; }
  function X() { return window.calcscopeExams; }
  function $(id) { return document.getElementById(id); }

  var SLOTS = ['RCC', 'LCC', 'RMLO', 'LMLO'];
  var N_COLOURS = 8;
  var state = { examId: null, data: null, on: false, viewChosen: false };

  function reset(exam) {
    state.examId = exam.id;
    state.data = null;
    state.viewChosen = false;
    show(false);
    delete document.body.dataset.compareLink;
    $('compare-bar').hidden = !exam.prior_id;
    var c = exam.exam.comparison || {};
    var when = c.prior_study_date || 'unknown date';
    if (c.interval_months != null) { when += ', ' + c.interval_months + ' months earlier'; }
    $('compare-note').textContent = exam.prior_id ? 'Compared with the exam of ' + when + '.' : '';
  }

  function show(on) {
    state.on = on;
    $('compare').hidden = !on;
    $('hanging').hidden = on;
    $('compare-toggle').textContent = on ? 'Back to the four views' : 'Side by side with the prior exam';
    if (on) { document.body.dataset.compare = state.examId; } else { delete document.body.dataset.compare; }
  }

  function linkMaps(data) {
    var cur = new Map(), pri = new Map();
    data.links.forEach(function (l) {
      var lat = l.laterality || 'U';
      if (l.finding_id != null) { cur.set(lat + l.finding_id, l); }
      if (l.prior_finding_id != null) { pri.set(lat + l.prior_finding_id, l); }
    });
    return { current: cur, prior: pri };
  }

  function label(l, side) {
    if (side === 'prior') { return l.number + ' ' + (l.change === 'resolved' ? 'resolved' : 'prior'); }
    return l.number + ' ' + (l.change || 'not compared');
  }

  function highlight(n, cls) {
    document.querySelectorAll('#compare [data-link]').forEach(function (el) {
      el.classList.toggle(cls, n != null && el.getAttribute('data-link') === String(n));
    });
  }

  function pick(n) {
    highlight(n, 'selected');
    document.body.dataset.compareLink = String(n);
  }

  function bindLink(el, n) {
    el.addEventListener('mouseenter', function () { highlight(n, 'linked'); });
    el.addEventListener('mouseleave', function () { highlight(null, 'linked'); });
    el.addEventListener('click', function () { pick(n); });
  }

  function drawSide(side, body, byKey, slot) {
    var c = C(), x = X();
    var fig = document.querySelector('#side-by-side .panel[data-side="' + side + '"]');
    var panel = body.panels.find(function (p) { return p.slot === slot; });
    fig.querySelector('figcaption').textContent = (side === 'prior' ? 'prior ' : 'now ') +
      (body.study_date || '') + ' \u00b7 ' + slot;
    var w = x.paneWorld(fig.querySelector('.pane'), panel);
    if (!w) { return; }
    var keys = x.findingKeys(body.exam).keys;
    c.findingBoxes(panel.report).forEach(function (f) {
      var key = keys.get(panel.report_key + '|' + f.id) || '';
      var l = byKey.get(key);
      var attrs = { 'class': 'finding unlinked', 'data-finding': f.id, 'data-exam': key };
      if (l) {
        attrs['class'] = 'finding link-' + ((l.number - 1) % N_COLOURS) + ' change-' +
          c.safeClass(l.change || 'none');
        attrs['data-link'] = l.number;
        attrs['data-change'] = l.change;
      }
      var g = x.markBox(w, f, l ? label(l, side) : (key || f.id), attrs);
      if (l) { bindLink(g, l.number); }
    });
  }

  function defaultSlot(data, maps) {
    var c = C(), x = X();
    var keys = x.findingKeys(data.current.exam).keys;
    var found = SLOTS.find(function (slot) {
      var panel = data.current.panels.find(function (p) { return p.slot === slot; });
      return panel && panel.report && c.findingBoxes(panel.report).some(function (f) {
        var l = maps.current.get(keys.get(panel.report_key + '|' + f.id) || '');
        return l && l.prior_finding_id != null;
      });
    });
    return found || SLOTS[0];
  }

  function draw() {
    var data = state.data;
    if (!data || !state.on) { return; }
    var maps = linkMaps(data);
    if (!state.viewChosen) { $('compare-view').value = defaultSlot(data, maps); }
    var slot = $('compare-view').value;
    drawSide('current', data.current, maps.current, slot);
    drawSide('prior', data.prior, maps.prior, slot);
    if (document.body.dataset.compareLink) { pick(document.body.dataset.compareLink); }
  }

  function byId(exam) {
    var m = new Map();
    X().findingKeys(exam).all.forEach(function (x) { m.set(x.key, x); });
    return m;
  }

  function arrow(a, b, digits) {
    function f(v) { return v == null ? '?' : Number(v).toFixed(digits); }
    if (a == null) { return b == null ? '' : f(b); }
    return f(a) + ' \u2192 ' + f(b);
  }

  function buildTable() {
    var c = C(), data = state.data, tbody = document.querySelector('#compare-findings tbody');
    var cur = byId(data.current.exam), pri = byId(data.prior.exam);
    tbody.replaceChildren();
    data.links.forEach(function (l) {
      var lat = l.laterality || 'U';
      var now = l.finding_id != null ? cur.get(lat + l.finding_id) : null;
      var before = l.prior_finding_id != null ? pri.get(lat + l.prior_finding_id) : null;
      var ch = (now && now.f.change) || {};
      var tr = document.createElement('tr');
      tr.className = 'finding link-' + ((l.number - 1) % N_COLOURS);
      tr.tabIndex = 0;
      tr.setAttribute('data-link', String(l.number));
      tr.setAttribute('data-change', l.change);
      c.cell(tr, l.number);
      c.cell(tr, l.laterality || '?');
      c.cell(tr, l.change || 'not compared', 'change change-' + c.safeClass(l.change || 'none'));
      c.cell(tr, now ? now.key + ': ' + now.f.description : '');
      c.cell(tr, before ? before.key + ': ' + before.f.description : '');
      c.cell(tr, arrow(ch.prior_n_calcifications, ch.n_calcifications, 0));
      c.cell(tr, arrow(ch.prior_extent_mm, ch.extent_mm, 1));
      bindLink(tr, l.number);
      tr.addEventListener('keydown', function (e) {
        if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); pick(l.number); }
      });
      tbody.appendChild(tr);
    });
  }

  async function toggle() {
    if (state.on) {
      show(false);
      X().draw();
      return;
    }
    var id = state.examId;
    if (!state.data) {
      var data;
      try {
        data = await C().api('/api/exams/' + encodeURIComponent(id) + '/compare');
      } catch (err) {
        C().showMessage('Cannot open the prior exam: ' + err.message);
        return;
      }
      if (id !== state.examId) { return; }
      state.data = data;
    }
    show(true);
    buildTable();
    draw();
  }

  document.addEventListener('DOMContentLoaded', function () {
    $('compare-toggle').addEventListener('click', toggle);
    $('compare-view').addEventListener('change', function () { state.viewChosen = true; draw(); });
  });
  window.addEventListener('resize', draw);
  window.calcscopeCompare = { reset: reset };
}());
