/*
 * nodus panel, timeline: rows of executions still running update live (status, duration), new ones appear on the
 * first page, and a click anywhere on a row opens its execution. The same query as the page, asked as JSON.
 */
/* global document, window, fetch, URLSearchParams */
'use strict';

(function () {
  var table = document.getElementById('timeline');
  if (!table) return;
  var panel = window.nodusPanel;
  var tbody = table.tBodies[0];
  var admin = table.tHead.rows[0].cells.length > 5;
  var LIVE = ['starting', 'running'];
  var POLL_LIVE_MS = 1500;
  var POLL_IDLE_MS = 10000;

  function rowsByFid() {
    var map = {};
    for (var i = 0; i < tbody.rows.length; i++) map[tbody.rows[i].getAttribute('data-fid')] = tbody.rows[i];
    return map;
  }

  function anyLive() {
    for (var i = 0; i < tbody.rows.length; i++) if (LIVE.indexOf(tbody.rows[i].getAttribute('data-status')) >= 0) return true;
    return false;
  }

  function badge(status) {
    var b = document.createElement('span');
    b.className = 'badge status-' + status;
    b.textContent = status;
    return b;
  }

  function duration(tr) {
    var start = Number(tr.getAttribute('data-start'));
    var end = Number(tr.getAttribute('data-end'));
    var status = tr.getAttribute('data-status');
    if (end) return panel.formatDuration(end - start);
    return status === 'running' ? panel.formatDuration(Date.now() - start) : '—';
  }

  /** A row made from a timeline item, as the server writes one (text only, never markup from the data). */
  function newRow(item) {
    var tr = document.createElement('tr');
    tr.setAttribute('data-fid', item.fid);
    var td = function (child, cls) {
      var c = document.createElement('td');
      if (cls) c.className = cls;
      if (typeof child === 'string') c.textContent = child;
      else if (child) c.appendChild(child);
      tr.appendChild(c);
      return c;
    };
    td(null, 'st');
    var a = document.createElement('a');
    a.href = '/status/' + encodeURIComponent(item.fid);
    a.textContent = item.summary || item.flow || 'Execution';
    td(a);
    var t = document.createElement('time');
    var start = item.startedAt || item.createdAt;
    t.dateTime = new Date(start).toISOString();
    t.textContent = panel.localTime(start);
    td(t);
    td('', 'dur');
    var code = document.createElement('code');
    code.textContent = item.fid;
    td(code);
    if (admin) td(item.owner);
    return tr;
  }

  function update(tr, item) {
    var was = tr.getAttribute('data-status');
    tr.setAttribute('data-status', item.status);
    tr.setAttribute('data-start', String(item.startedAt || item.createdAt));
    tr.setAttribute('data-end', item.endedAt ? String(item.endedAt) : '');
    var st = tr.cells[0];
    if (was !== item.status || !st.firstChild) {
      st.textContent = '';
      st.appendChild(badge(item.status));
      if (was && was !== item.status) panel.announce((item.summary || item.fid) + ': ' + item.status);
    }
    tr.cells[3].textContent = duration(tr);
  }

  function poll() {
    var params = new URLSearchParams();
    ['q', 'status', 'offset', 'limit'].forEach(function (k) {
      var v = table.getAttribute('data-' + k);
      if (v) params.set(k, v);
    });
    fetch('/timeline?' + params.toString(), { headers: { accept: 'application/json' } })
      .then(function (res) { return res.ok ? res.json() : null; })
      .then(function (page) {
        if (!page) return;
        var rows = rowsByFid();
        var first = tbody.rows[0] || null;
        page.items.forEach(function (item) {
          var tr = rows[item.fid];
          if (!tr) {
            // Newer executions appear at the top of the first page only; later pages keep their place.
            if (Number(table.getAttribute('data-offset')) !== 0) return;
            tr = newRow(item);
            tbody.insertBefore(tr, first);
          }
          update(tr, item);
        });
        var range = document.getElementById('page-range');
        if (range && page.total) range.textContent = (page.offset + 1) + '–' + (page.offset + tbody.rows.length) + ' of ' + page.total;
      })
      .catch(function () { /* offline for a moment: the next poll tries again */ })
      .finally(function () {
        window.setTimeout(poll, anyLive() ? POLL_LIVE_MS : POLL_IDLE_MS);
      });
  }
  window.setTimeout(poll, anyLive() ? POLL_LIVE_MS : POLL_IDLE_MS);

  // Durations of running rows tick every second between polls.
  window.setInterval(function () {
    for (var i = 0; i < tbody.rows.length; i++) if (tbody.rows[i].getAttribute('data-status') === 'running') tbody.rows[i].cells[3].textContent = duration(tbody.rows[i]);
  }, 1000);

  // The row is the click target; its link stays the keyboard's way in.
  tbody.addEventListener('click', function (e) {
    if (e.target.closest('a') || (window.getSelection && String(window.getSelection()))) return;
    var tr = e.target.closest('tr');
    var link = tr && tr.querySelector('a[href^="/status/"]');
    if (link) window.location.href = link.href;
  });
})();
