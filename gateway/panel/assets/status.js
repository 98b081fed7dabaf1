/*
 * nodus panel, an execution's live page. Events come over Server-Sent Events (/outputs/stream/{fid}: from the first one
 * on a load, so a reload shows everything again, then live; EventSource resumes with Last-Event-ID by itself). They are
 * queued and rendered in batches once per animation frame within a time budget, so that a thousand events a second
 * leave the page responsive. Markdown and HTML from the service are sanitized with DOMPurify before they touch the page.
 */
/* global document, window, EventSource, marked, DOMPurify, performance, navigator, fetch */
'use strict';

(function () {
  var root = document.getElementById('exec');
  if (!root) return;
  var $ = function (id) { return document.getElementById(id); };
  var panel = window.nodusPanel;
  var fid = root.getAttribute('data-fid');
  var eventsBox = $('events');
  var stdioBox = $('stdio');
  var badge = root.querySelector('.badge');
  var elapsedEl = $('elapsed');
  var cancelBtn = $('cancel');

  var FINAL = ['finished', 'error', 'cancelled'];
  var RANK = { starting: 0, running: 1, finished: 2, error: 2, cancelled: 2 };
  var KINDS = ['status', 'inputs', 'markdown', 'html', 'text', 'result', 'debug', 'warning', 'action', 'progress', 'stdout', 'stderr', 'error', 'final', 'step'];
  /** Time a frame may spend rendering; the rest stays for input and painting. */
  var BUDGET_MS = 8;

  var num = function (v) { return v ? Number(v) : null; };
  var state = {
    status: root.getAttribute('data-status'),
    started: num(root.getAttribute('data-started')) || num(root.getAttribute('data-created')),
    ended: num(root.getAttribute('data-ended')),
    output: 0,
    stdio: 0,
    announced: root.getAttribute('data-status'),
  };
  // The server's clock, not this machine's, measures the elapsed time: the page says what its time was when rendered.
  var nav = performance.getEntriesByType('navigation')[0];
  var arrived = nav ? performance.timeOrigin + nav.responseStart : Date.now();
  var clockSkew = Number(root.getAttribute('data-now')) - arrived || 0;
  var nowServer = function () { return Date.now() + clockSkew; };

  /** Rendering rate and responsiveness, read by the browser test. */
  var stats = { received: 0, rendered: 0, frames: 0, longestFlushMs: 0, firstReceivedAt: 0, firstOutputAt: 0, lastReceivedAt: 0, lastRenderedAt: 0 };
  window.__panelStats = stats;

  // ---------------------------------------------------------------- sanitizing
  var PURIFY = {
    FORBID_TAGS: ['style', 'form', 'input', 'button', 'textarea', 'select', 'option', 'iframe', 'object', 'embed'],
    FORBID_ATTR: ['style'],
    ALLOW_DATA_ATTR: false,
    // A fragment, not a string that innerHTML would parse a second time.
    RETURN_DOM_FRAGMENT: true,
  };
  DOMPurify.addHook('afterSanitizeAttributes', function (node) {
    // A link leaves the panel in a new tab without handing it the panel's window.
    if (node.tagName === 'A' && node.getAttribute('href')) {
      node.setAttribute('rel', 'noopener noreferrer');
      node.setAttribute('target', '_blank');
    }
  });
  function markdown(text) {
    return DOMPurify.sanitize(marked.parse(String(text), { async: false, gfm: true }), PURIFY);
  }
  function sanitizedHtml(text) {
    return DOMPurify.sanitize(String(text), PURIFY);
  }
  function json(v) {
    try {
      return JSON.stringify(v, null, 2);
    } catch {
      return String(v);
    }
  }
  /** Only links that stay on http(s) or within the gateway. */
  function safeUrl(u) {
    return typeof u === 'string' && (/^https?:\/\//i.test(u) || /^\/(?![/\\])/.test(u)) ? u : null;
  }

  // ---------------------------------------------------------------- rendering
  function clock(at) {
    var d = new Date(at);
    var p = function (n, w) { return String(n).padStart(w || 2, '0'); };
    return p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds()) + '.' + p(d.getMilliseconds(), 3);
  }

  function row(kind, at) {
    var div = document.createElement('div');
    div.className = 'ev ev-' + kind;
    var t = document.createElement('span');
    t.className = 'at';
    t.textContent = clock(at);
    var body = document.createElement('div');
    body.className = 'body';
    div.appendChild(t);
    div.appendChild(body);
    return { el: div, body: body };
  }

  function pre(text) {
    var p = document.createElement('pre');
    p.textContent = text;
    return p;
  }

  var pendingProgress = null;
  var pendingStatus = null;

  /** Adds one event to the fragments of this frame; returns nothing, counts what it added. */
  function render(e, out, io) {
    var d = e.data;
    var r;
    switch (e.kind) {
      case 'stdout':
      case 'stderr': {
        var span = document.createElement('span');
        if (e.kind === 'stderr') span.className = 'stderr';
        var line = String(d);
        span.textContent = line.endsWith('\n') ? line : line + '\n';
        io.appendChild(span);
        state.stdio++;
        return;
      }
      case 'progress':
        pendingProgress = d;
        return;
      case 'inputs':
        return;
      case 'final':
        showResult(d);
        return;
      case 'status':
        if (d && d.status) {
          pendingStatus = { status: d.status, at: e.at, message: d.message };
          r = row('status', e.at);
          r.body.textContent = 'Status: ' + d.status + (d.message ? ' — ' + d.message : '');
        }
        break;
      case 'markdown':
        r = row('markdown', e.at);
        r.body.className += ' prose';
        r.body.appendChild(markdown(d));
        break;
      case 'html':
        r = row('html', e.at);
        r.body.className += ' prose';
        r.body.appendChild(sanitizedHtml(d));
        break;
      case 'text':
      case 'debug':
        r = row(e.kind, e.at);
        r.body.appendChild(pre(typeof d === 'string' ? d : json(d)));
        break;
      case 'step': {
        // A task platform run's step beginning or ending (name, and on its end the time it took or its error).
        var step = d || {};
        r = row(step.error ? 'error' : 'text', e.at);
        var what = 'Step ' + step.index + ': ' + step.name + (step.phase === 'start' ? ' started' : step.error ? ' failed: ' + step.error.name + ': ' + step.error.message : ' done in ' + step.durationMs + ' ms');
        r.body.textContent = what;
        break;
      }
      case 'warning':
        r = row('warning', e.at);
        r.body.textContent = 'Warning: ' + (typeof d === 'string' ? d : json(d));
        break;
      case 'error': {
        r = row('error', e.at);
        var strong = document.createElement('strong');
        strong.textContent = ((d && d.name) || 'Error') + ': ' + ((d && d.message) || (typeof d === 'string' ? d : ''));
        r.body.appendChild(strong);
        if (d && d.stack) {
          var det = document.createElement('details');
          var sum = document.createElement('summary');
          sum.textContent = 'Stack';
          det.appendChild(sum);
          det.appendChild(pre(String(d.stack)));
          r.body.appendChild(det);
        }
        break;
      }
      case 'result':
        r = row('result', e.at);
        r.body.appendChild(pre(json(d)));
        break;
      case 'action': {
        r = row('action', e.at);
        var url = safeUrl(d && d.url);
        var label = (d && (d.label || d.value)) || 'Action';
        if (url) {
          var a = document.createElement('a');
          a.href = url;
          a.rel = 'noopener noreferrer';
          a.target = '_blank';
          a.textContent = label;
          r.body.appendChild(a);
        } else r.body.textContent = label + (d && d.value && d.value !== label ? ': ' + d.value : '');
        break;
      }
      default:
        r = row('text', e.at);
        r.body.appendChild(pre(e.kind + ': ' + json(d)));
    }
    if (r) {
      out.appendChild(r.el);
      if (e.kind !== 'status') state.output++;
    }
  }

  function showResult(d) {
    $('result').textContent = json(d);
    $('result-section').hidden = false;
  }

  function applyProgress(p) {
    if (!p) return;
    var total = Number(p.total) || 0;
    var done = Number(p.done) || 0;
    var bar = $('progress-bar');
    bar.max = total > 0 ? total : 1;
    bar.value = Math.min(done, bar.max);
    $('progress-text').textContent = done + ' / ' + total + (p.label ? ' · ' + p.label : '');
    $('progress').hidden = false;
  }

  function applyStatus(s) {
    var rank = RANK[s.status];
    if (rank === undefined) return;
    // Replayed history (after a reload) must not move the page back from what the server said it is now; an end is final.
    if (rank < RANK[state.status] || state.ended) return;
    state.status = s.status;
    badge.className = 'badge status-' + s.status;
    badge.textContent = s.status;
    root.setAttribute('data-status', s.status);
    if (s.status === 'running' && !num(root.getAttribute('data-started'))) state.started = s.at;
    if (FINAL.indexOf(s.status) >= 0) {
      state.ended = s.at;
      cancelBtn.hidden = true;
      if (s.status === 'error' && s.message) {
        $('exec-error').textContent = s.message;
        $('exec-error').hidden = false;
      }
    }
    tick();
  }

  var queue = [];
  var head = 0;
  var scheduled = false;
  var fallback = 0;
  // Follow the newest lines, unless the reader scrolled up to read; a hidden tab keeps its choice.
  var follow = { events: true, stdio: true };
  var nearBottom = function (box) { return box.scrollHeight - box.scrollTop - box.clientHeight < 40; };
  eventsBox.addEventListener('scroll', function () { follow.events = nearBottom(eventsBox); });
  stdioBox.addEventListener('scroll', function () { follow.stdio = nearBottom(stdioBox); });
  function keepFollowing() {
    if (follow.events) eventsBox.scrollTop = eventsBox.scrollHeight;
    if (follow.stdio) stdioBox.scrollTop = stdioBox.scrollHeight;
  }

  function schedule() {
    if (scheduled) return;
    scheduled = true;
    window.requestAnimationFrame(flush);
    // A hidden tab gets no frames; its events still render, later, so that it is complete when shown.
    fallback = window.setTimeout(flush, 500);
  }

  function flush() {
    if (!scheduled) return;
    scheduled = false;
    window.clearTimeout(fallback);
    var t0 = performance.now();
    var out = document.createDocumentFragment();
    var io = document.createDocumentFragment();
    var n = 0;
    while (head < queue.length) {
      render(queue[head++], out, io);
      n++;
      if ((n & 15) === 0 && performance.now() - t0 > BUDGET_MS) break;
    }
    if (head === queue.length) {
      queue = [];
      head = 0;
    }
    if (out.childNodes.length) {
      var waiting = $('waiting');
      if (waiting) waiting.remove();
      eventsBox.appendChild(out);
    }
    if (io.childNodes.length) stdioBox.appendChild(io);
    if (pendingProgress) applyProgress(pendingProgress);
    if (pendingStatus) applyStatus(pendingStatus);
    pendingProgress = null;
    pendingStatus = null;
    $('count-output').textContent = String(state.output);
    $('count-stdio').textContent = String(state.stdio);
    keepFollowing();
    stats.rendered += n;
    stats.frames++;
    stats.longestFlushMs = Math.max(stats.longestFlushMs, performance.now() - t0);
    if (n) stats.lastRenderedAt = performance.now();
    if (state.status !== state.announced && (FINAL.indexOf(state.status) >= 0 || state.status === 'running')) {
      state.announced = state.status;
      panel.announce('Execution ' + state.status);
    }
    if (queue.length) schedule();
  }

  // ---------------------------------------------------------------- elapsed time
  function tick() {
    if (!state.started) return;
    var end = state.ended || nowServer();
    elapsedEl.textContent = panel.formatDuration(Math.max(0, end - state.started));
  }
  var ticker = window.setInterval(function () {
    tick();
    if (state.ended) window.clearInterval(ticker);
  }, 250);

  // ---------------------------------------------------------------- the stream
  var eof = false;
  var es = new EventSource('/outputs/stream/' + encodeURIComponent(fid));
  function onEvent(m) {
    var e;
    try {
      e = JSON.parse(m.data);
    } catch {
      return;
    }
    if (!stats.received) stats.firstReceivedAt = performance.now();
    if (!stats.firstOutputAt && e.kind !== 'status' && e.kind !== 'inputs') stats.firstOutputAt = performance.now();
    stats.lastReceivedAt = performance.now();
    stats.received++;
    queue.push(e);
    schedule();
  }
  KINDS.forEach(function (k) { es.addEventListener(k, onEvent); });
  es.addEventListener('eof', function () {
    eof = true;
    es.close();
  });
  es.onerror = function () {
    if (eof) return;
    if (es.readyState === EventSource.CLOSED) {
      // Not retried by the browser: the session ended or the execution is gone.
      var msg = $('exec-error');
      msg.textContent = 'The event stream closed. Reload the page (you may need to log in again).';
      msg.hidden = false;
    }
  };

  // ---------------------------------------------------------------- tabs (arrow keys move between them)
  var tabs = Array.prototype.slice.call(document.querySelectorAll('[role="tab"]'));
  function select(tab) {
    tabs.forEach(function (t) {
      var on = t === tab;
      t.setAttribute('aria-selected', String(on));
      t.tabIndex = on ? 0 : -1;
      $(t.getAttribute('aria-controls')).hidden = !on;
    });
    keepFollowing();
  }
  tabs.forEach(function (t, i) {
    t.addEventListener('click', function () { select(t); });
    t.addEventListener('keydown', function (e) {
      var j = e.key === 'ArrowRight' ? i + 1 : e.key === 'ArrowLeft' ? i - 1 : e.key === 'Home' ? 0 : e.key === 'End' ? tabs.length - 1 : null;
      if (j === null) return;
      e.preventDefault();
      var next = tabs[(j + tabs.length) % tabs.length];
      select(next);
      next.focus();
    });
  });

  // ---------------------------------------------------------------- cancel, with confirmation
  var dialog = $('cancel-dialog');
  cancelBtn.addEventListener('click', function () { dialog.showModal(); });
  $('cancel-no').addEventListener('click', function () { dialog.close(); });
  $('cancel-yes').addEventListener('click', function () {
    var yes = $('cancel-yes');
    yes.disabled = true;
    yes.textContent = 'Cancelling…';
    fetch('/outputs/' + encodeURIComponent(fid), { method: 'DELETE', headers: { accept: 'application/json' } })
      .then(function (res) {
        return res.json().then(function (body) { return { status: res.status, body: body }; });
      })
      .then(function (r) {
        dialog.close();
        if (r.status === 200 || r.status === 409) {
          // The stream brings the final status; this only says it early.
          if (r.body && r.body.status) applyStatus({ status: r.body.status, at: nowServer() });
        } else {
          $('exec-error').textContent = (r.body && r.body.message) || 'Cancelling failed (' + r.status + ').';
          $('exec-error').hidden = false;
        }
      })
      .catch(function (err) {
        dialog.close();
        $('exec-error').textContent = 'Cancelling failed: ' + err.message;
        $('exec-error').hidden = false;
      })
      .finally(function () {
        yes.disabled = false;
        yes.textContent = 'Cancel execution';
        document.querySelector('h1').focus();
      });
  });

  // ---------------------------------------------------------------- copy as curl
  $('copy-curl').addEventListener('click', function () {
    var text = $('curl').textContent;
    var hint = $('curl-hint');
    var done = function () { hint.textContent = 'Copied the curl command.'; };
    var fallbackCopy = function () {
      // No clipboard permission: show the command, selected, for the reader to copy.
      select($('tab-inputs'));
      var range = document.createRange();
      range.selectNodeContents($('curl'));
      var sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      hint.textContent = 'Selected the curl command under Inputs: press Ctrl+C (⌘C) to copy it.';
    };
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, fallbackCopy);
    else fallbackCopy();
  });

  document.querySelector('h1').tabIndex = -1;
  tick();
})();
