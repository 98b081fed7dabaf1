/* nodus panel, every page: local times, the form's error summary focused, and helpers the page scripts share. */
/* global document, window */
'use strict';

(function () {
  /** `1.2 s`, `3 min 4 s`, `2 h 5 min` (as the server writes them). */
  function formatDuration(ms) {
    if (!(ms >= 0) || !isFinite(ms)) return '—';
    if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 1 : 0) + ' s';
    var s = Math.floor(ms / 1000);
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  }

  /** A server time (ms) in the reader's own zone. */
  function localTime(ms) {
    return new Date(ms).toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }

  function localizeTimes(root) {
    var times = (root || document).querySelectorAll('time[datetime]');
    for (var i = 0; i < times.length; i++) {
      var t = Date.parse(times[i].getAttribute('datetime'));
      if (!isNaN(t)) {
        times[i].title = times[i].textContent;
        times[i].textContent = localTime(t);
      }
    }
  }

  /** Says `text` to screen readers through the page's polite live region. */
  function announce(text) {
    var region = document.getElementById('announcer');
    if (!region) return;
    region.textContent = '';
    // A new text node after a tick is read even when it equals the last one.
    window.setTimeout(function () {
      region.textContent = text;
    }, 30);
  }

  window.nodusPanel = { formatDuration: formatDuration, localTime: localTime, localizeTimes: localizeTimes, announce: announce };

  document.addEventListener('DOMContentLoaded', function () {
    localizeTimes(document);
    // After a POST that did not pass, the keyboard starts at the list of what to fix.
    var summary = document.getElementById('form-errors');
    if (summary) summary.focus();
  });
})();
