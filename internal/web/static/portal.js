// Portico portal pages: the little behaviour they need, with no inline
// script (the pages' Content-Security-Policy forbids it).
(function () {
  'use strict';

  var body = document.body;

  // ---- Banners: dismissible; the notification leaves the address bar so
  // a reload does not show it again (spec §11.2).
  Array.prototype.forEach.call(document.querySelectorAll('.banner .dismiss'), function (b) {
    b.addEventListener('click', function () { b.parentNode.remove(); });
  });
  if (window.location.search.indexOf('notification=') >= 0 && window.history.replaceState) {
    window.history.replaceState(null, '', window.location.pathname);
  }

  // ---- Session page (spec §11.3): poll the session until it answers,
  // then open its dashboard, on the session's own origin; give up after the
  // workshop's overdue time.
  if (body.classList.contains('page-session')) {
    var session = encodeURIComponent(body.getAttribute('data-session'));
    // A page of another site that frames the portal may not let it move
    // the top window without a gesture: move this frame then.
    var go = function (url) {
      try { window.top.location.href = url; } catch (e) { window.location.href = url; }
    };
    var progress = document.getElementById('progress');
    var overdue = Number(body.getAttribute('data-overdue')) || 0;
    var waited = Number(body.getAttribute('data-waited')) || 0;
    var startedAt = Date.now() - waited * 1000;

    var wait = function () {
      fetch('/workshops/session/' + session + '/ready/', { credentials: 'same-origin', cache: 'no-store' })
        .then(function (r) {
          if (r.status === 404 || r.status === 410) return 'gone';
          return r.ok ? r.json().then(function (s) { return s.ready ? 'ready' : 'wait'; }) : 'wait';
        }, function () { return 'wait'; })
        .then(function (state) {
          if (state !== 'wait') {
            // Ready: the page opens the dashboard. Gone: the server
            // knows where to send the person.
            go('/workshops/session/' + session + '/');
            return;
          }
          var elapsed = (Date.now() - startedAt) / 1000;
          if (overdue > 0) {
            progress.value = Math.min(elapsed, overdue);
            if (elapsed >= overdue) {
              go(body.getAttribute('data-restart'));
              return;
            }
          }
          window.setTimeout(wait, 1000);
        });
    };
    wait();
  }

  // ---- Admin pages: the live region refreshes in place every few
  // seconds, unless the person is working inside it (focus, a form).
  var live = document.querySelector('[data-live]');
  if (live) {
    var refresh = function () {
      if (document.hidden || live.contains(document.activeElement)) return;
      fetch(window.location.href, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'text/html' } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (!html || live.contains(document.activeElement)) return;
          var next = new DOMParser().parseFromString(html, 'text/html').getElementById(live.id);
          if (next && next.innerHTML !== live.innerHTML) live.innerHTML = next.innerHTML;
        })
        .catch(function () { /* next time */ });
    };
    window.setInterval(refresh, 3000);
  }

  // ---- Copy buttons (the robot credentials): the value goes to the
  // clipboard; where the page may not write it, it is selected for Ctrl+C.
  Array.prototype.forEach.call(document.querySelectorAll('button[data-copy]'), function (b) {
    var value = document.getElementById(b.getAttribute('data-copy'));
    var done = function (text) {
      b.textContent = text;
      window.setTimeout(function () { b.textContent = 'Copy'; }, 5000);
    };
    var select = function () {
      var range = document.createRange();
      range.selectNodeContents(value);
      var sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      done('Selected');
    };
    b.addEventListener('click', function () {
      if (!navigator.clipboard) { select(); return; }
      navigator.clipboard.writeText(value.textContent.trim()).then(function () { done('Copied'); }, select);
    });
  });

  // ---- Countdowns of the admin sessions list.
  var pad = function (n) { return n < 10 ? '0' + n : String(n); };
  var tick = function () {
    Array.prototype.forEach.call(document.querySelectorAll('[data-expires]'), function (el) {
      var left = Math.max(0, Math.round((Date.parse(el.getAttribute('data-expires')) - Date.now()) / 1000));
      var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
      el.textContent = (h > 0 ? h + ':' + pad(m) : String(m)) + ':' + pad(s);
    });
  };
  if (document.querySelector('[data-live]')) window.setInterval(tick, 1000);
}());
