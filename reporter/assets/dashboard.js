// Dialtone dashboard: progressive enhancement only. Every page works without this script;
// with it, the live board follows the router through server-sent events (/live/events), the
// "for 12m 05s" durations tick, and the Handle form asks for a note when the reason is
// "other". The server sends each changed line already rendered (and escaped), so this script
// never builds HTML from data.
(function () {
  'use strict';

  // Server clock minus browser clock, so durations agree with the server's "since".
  var offset = 0;

  function setNow(serverMs) {
    if (typeof serverMs === 'number') {
      offset = serverMs - Date.now();
    }
  }

  function human(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24;
    var m = Math.floor(s / 60) % 60, sec = s % 60;
    var two = function (n) { return (n < 10 ? '0' : '') + n; };
    if (d > 0) return d + 'd ' + h + 'h';
    if (h > 0) return h + 'h ' + two(m) + 'm';
    if (m > 0) return m + 'm ' + two(sec) + 's';
    return sec + 's';
  }

  function tick() {
    var now = Date.now() + offset;
    document.querySelectorAll('[data-since]').forEach(function (el) {
      var out = el.querySelector('[data-for]');
      if (out) out.textContent = human(now - Number(el.getAttribute('data-since')));
    });
  }

  function fragment(html) {
    var t = document.createElement('template');
    t.innerHTML = html;
    return t.content.firstElementChild;
  }

  function upsert(id, html, containerId) {
    var el = fragment(html);
    if (!el) return;
    var old = document.getElementById(id);
    if (old) {
      old.replaceWith(el);
    } else {
      var box = document.getElementById(containerId);
      if (box) box.appendChild(el);
    }
    el.classList.add('changed');
    setTimeout(function () { el.classList.remove('changed'); }, 1500);
  }

  function live() {
    var root = document.querySelector('[data-live-events]');
    if (!root || !window.EventSource) return;
    var status = document.getElementById('live-status');
    var agents = document.getElementById('live-agents');
    if (agents) setNow(Number(agents.getAttribute('data-now')));
    var show = function (text, on) {
      if (!status) return;
      status.textContent = text;
      status.classList.toggle('on', on);
    };
    var es = new EventSource(root.getAttribute('data-live-events'));
    es.onopen = function () { show('live', true); };
    es.onerror = function () {
      show(es.readyState === EventSource.CLOSED ? 'not connected' : 'reconnecting…', false);
    };
    es.addEventListener('board', function (e) {
      var d = JSON.parse(e.data);
      setNow(d.now);
      var a = document.getElementById('live-agents');
      var q = document.getElementById('live-queues');
      if (a) a.innerHTML = d.agents;
      if (q) q.innerHTML = d.queues;
      show('live', true);
    });
    es.addEventListener('agent', function (e) {
      var d = JSON.parse(e.data);
      setNow(d.now);
      upsert(d.id, d.html, 'live-agents');
    });
    es.addEventListener('queue', function (e) {
      var d = JSON.parse(e.data);
      setNow(d.now);
      upsert(d.id, d.html, 'live-queues');
    });
    es.addEventListener('remove', function (e) {
      var el = document.getElementById(JSON.parse(e.data).id);
      if (el) el.remove();
    });
  }

  function handleForms() {
    document.querySelectorAll('form.handle').forEach(function (form) {
      var reason = form.querySelector('select[name=reason]');
      var note = form.querySelector('input[name=note]');
      if (!reason || !note) return;
      var sync = function () {
        note.required = reason.value === 'other';
        note.placeholder = note.required ? 'Why? (required)' : 'Note';
      };
      reason.addEventListener('change', sync);
      sync();
    });
  }

  document.addEventListener('DOMContentLoaded', function () {
    live();
    handleForms();
    tick();
    setInterval(tick, 1000);
  });
})();
