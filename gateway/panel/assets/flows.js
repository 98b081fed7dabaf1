/* nodus panel, flows page: filters the cards as the user types or picks a tag (the form still works without it). */
/* global document, window, URLSearchParams */
'use strict';

(function () {
  var form = document.getElementById('flow-filters');
  var list = document.getElementById('flows');
  if (!form || !list) return;
  var q = document.getElementById('q');
  var tag = document.getElementById('tag');
  var cards = list.querySelectorAll('li.card');
  var none = document.getElementById('no-match');

  function apply() {
    var words = q.value.toLowerCase().split(/\s+/).filter(Boolean);
    var wanted = tag.value.toLowerCase();
    var shown = 0;
    for (var i = 0; i < cards.length; i++) {
      var text = cards[i].getAttribute('data-search') || '';
      var tags = (cards[i].getAttribute('data-tags') || '').split('\n');
      var ok = words.every(function (w) { return text.indexOf(w) >= 0; }) && (!wanted || tags.indexOf(wanted) >= 0);
      cards[i].hidden = !ok;
      if (ok) shown++;
    }
    if (none) none.hidden = shown > 0;
    var count = document.getElementById('shown-count');
    if (count) count.textContent = String(shown);
    // The address keeps the filter, so that a reload or a shared link shows the same.
    var params = new URLSearchParams();
    if (q.value.trim()) params.set('q', q.value.trim());
    if (tag.value) params.set('tag', tag.value);
    var s = params.toString();
    window.history.replaceState(null, '', s ? '/?' + s : '/');
    window.nodusPanel.announce(shown + (shown === 1 ? ' flow' : ' flows') + ' shown');
  }

  var timer;
  q.addEventListener('input', function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(apply, 120);
  });
  tag.addEventListener('change', apply);
  form.addEventListener('submit', function (e) {
    e.preventDefault();
    apply();
  });
})();
