/*
 * nodus panel, cluster page: the live part (nodes, failures, tasks, actors, placement groups, the object store) is
 * asked for again every few seconds as server-rendered HTML and swapped in; new failures are announced.
 */
/* global document, window, fetch, DOMParser */
'use strict';

(function () {
  var live = document.getElementById('cluster-live');
  if (!live) return;
  var panel = window.nodusPanel;
  var REFRESH_MS = 3000;

  function failureIds(root) {
    var ids = {};
    var rows = root.querySelectorAll('#failures-table tr[data-task]');
    for (var i = 0; i < rows.length; i++) ids[rows[i].getAttribute('data-task')] = true;
    return ids;
  }

  function refresh() {
    fetch('/cluster?part=live', { headers: { accept: 'text/html' }, credentials: 'same-origin' })
      .then(function (res) { return res.ok ? res.text() : null; })
      .then(function (text) {
        if (!text) return;
        // Parsed into an inert document: nothing in it runs, and the page's CSP still holds.
        var next = new DOMParser().parseFromString(text, 'text/html').getElementById('cluster-live');
        if (!next) return;
        var before = failureIds(live);
        var fresh = 0;
        var after = failureIds(next);
        for (var id in after) if (!before[id]) fresh++;
        var current = document.getElementById('cluster-live');
        current.replaceWith(document.importNode(next, true));
        live = document.getElementById('cluster-live');
        if (panel) panel.localizeTimes(live);
        var updated = document.getElementById('cluster-updated');
        if (updated) updated.textContent = 'updated ' + new Date(Number(live.getAttribute('data-at'))).toLocaleTimeString();
        if (fresh && panel) panel.announce(fresh + ' new task failure' + (fresh > 1 ? 's' : ''));
      })
      .catch(function () { /* offline for a moment: the next refresh tries again */ })
      .finally(function () {
        window.setTimeout(refresh, REFRESH_MS);
      });
  }
  window.setTimeout(refresh, REFRESH_MS);
})();
