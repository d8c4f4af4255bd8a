// Clickable actions of the instructions (rendered by the host's
// actions.go): a registry of handlers by action name, which the script of
// each family fills (dashboards.js, editor.js, files.js, examiner.js), and
// what every action shares: running on a click or on autostart, the done
// and failed marks, cascading to the next action, and sections that open.
// The terminal and copy actions are here; they need nothing but the
// terminals of dashboard.js.
(function () {
  'use strict';

  var P = window.Portico = window.Portico || {};
  var prefix = document.body.dataset.prefix || '';
  var handlers = {};
  var page = document.getElementById('page');
  // generation counts the pages shown: work of a page left behind (an
  // examiner's retries) stops.
  var generation = 0;

  P.actions = {
    register: function (name, fn) { handlers[name] = fn; },
    run: run,
    generation: function () { return generation; }
  };

  // request calls an endpoint of the session's host. The header is what
  // the portal's proxy asks of the writes it lets through: a page of
  // another origin cannot send it.
  P.request = function (method, path, body) {
    var init = { method: method, credentials: 'same-origin', headers: { 'X-Portico-Browser': '1', Accept: 'application/json' } };
    if (body instanceof FormData) {
      init.body = body;
    } else if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch(prefix + path, init).then(function (r) {
      return r.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!r.ok) {
          throw new Error((data && data.error) || ('The session answered ' + r.status));
        }
        return data;
      });
    });
  };

  function argsOf(el) {
    try { return JSON.parse(el.dataset.args || '{}'); } catch (e) { return {}; }
  }

  function status(el, text) {
    var s = el.querySelector('.action-status');
    if (s) s.textContent = text || '';
  }

  // run runs the action of el, once at a time, and cascades on success.
  function run(el) {
    if (el.classList.contains('running')) return Promise.resolve();
    var name = el.dataset.action;
    var fn = handlers[name];
    el.classList.remove('done', 'failed');
    el.classList.add('running');
    status(el, '');
    var result;
    try {
      result = fn ? Promise.resolve(fn(argsOf(el), el)) : Promise.reject(new Error(name + ' is not available in this dashboard'));
    } catch (e) {
      result = Promise.reject(e);
    }
    return result.then(function () {
      el.classList.remove('running');
      el.classList.add('done');
      if (el.dataset.cascade === 'true') {
        var next = nextAction(el);
        if (next) run(next);
      }
    }, function (err) {
      el.classList.remove('running');
      el.classList.add('failed');
      status(el, err && err.message ? err.message : String(err));
    });
  }

  function nextAction(el) {
    var all = Array.prototype.slice.call(page.querySelectorAll('.action'));
    return all[all.indexOf(el) + 1] || null;
  }

  // autostart runs the actions that ask to as their page is shown, or as
  // their section opens; those of closed sections wait for it.
  function autostart(root) {
    root.querySelectorAll('.action[data-autostart="true"]').forEach(function (el) {
      if (!el.closest('.action-section-content[hidden]')) run(el);
    });
  }

  P.pageShown = function () {
    generation++;
    autostart(page);
  };

  page.addEventListener('click', function (ev) {
    var el = ev.target.closest('.action');
    // Forms inside an action (uploads, an examiner's inputs) are the
    // person's to use without running it.
    if (!el || ev.target.closest('input, select, textarea, button, label, a, form')) return;
    ev.preventDefault();
    run(el);
  });
  page.addEventListener('keydown', function (ev) {
    var el = ev.target.closest('.action');
    if (el && ev.target === el && (ev.key === 'Enter' || ev.key === ' ')) {
      ev.preventDefault();
      run(el);
    }
  });

  // ---- Sections --------------------------------------------------------

  function sectionContent(el) {
    var next = el.nextElementSibling;
    return next && next.classList.contains('action-section-content') ? next : null;
  }

  P.actions.register('section:begin', function (args, el) {
    var content = sectionContent(el);
    if (!content) return;
    var open = content.hidden;
    content.hidden = !open;
    el.classList.toggle('expanded', open);
    el.setAttribute('aria-expanded', open ? 'true' : 'false');
    if (open) autostart(content);
  });
  P.actions.register('section:heading', function () {});

  // A hidden section:begin opens its section when the action before it
  // cascades: Educates' way of showing text once a test has passed.

  // ---- Terminals -------------------------------------------------------

  function terminalIDs(args, all) {
    if (all) return P.terminals.ids();
    return [args.session === undefined || args.session === null || args.session === '' ? '1' : String(args.session)];
  }

  // withoutFinalNewline: a YAML block scalar ends with a newline, which
  // the Enter the action adds stands for.
  function withoutFinalNewline(text) {
    return String(text === undefined || text === null ? '' : text).replace(/\r?\n$/, '');
  }

  function toTerminals(all, fn) {
    return function (args) {
      var ids = terminalIDs(args, all);
      ids.forEach(function (id) { fn(all ? P.terminals.get(id) : P.terminals.show(id), args); });
      if (!all) P.terminals.get(ids[0]).focus();
    };
  }

  function execute(t, args) {
    if (args.clear === true) t.clear();
    t.send(withoutFinalNewline(args.command).replace(/\r?\n/g, '\r') + '\r');
  }

  P.actions.register('terminal:execute', toTerminals(false, execute));
  P.actions.register('terminal:execute-all', toTerminals(true, execute));
  P.actions.register('terminal:input', toTerminals(false, function (t, args) {
    t.send(withoutFinalNewline(args.text).replace(/\r?\n/g, '\r') + (args.endl === false ? '' : '\r'));
  }));
  P.actions.register('terminal:clear', toTerminals(false, function (t) { t.clear(); }));
  P.actions.register('terminal:clear-all', toTerminals(true, function (t) { t.clear(); }));
  P.actions.register('terminal:interrupt', toTerminals(false, function (t) { t.send('\x03'); }));
  P.actions.register('terminal:interrupt-all', toTerminals(true, function (t) { t.send('\x03'); }));

  // ---- Copying ---------------------------------------------------------

  P.copyText = function (text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return copyByCommand(text); });
    }
    return copyByCommand(text);
  };

  function copyByCommand(text) {
    var area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('readonly', '');
    area.className = 'copy-buffer';
    document.body.appendChild(area);
    area.select();
    try { document.execCommand('copy'); } finally { area.remove(); }
    return Promise.resolve();
  }

  function copy(args) { return P.copyText(String(args.text === undefined || args.text === null ? '' : args.text)); }
  P.actions.register('workshop:copy', copy);
  P.actions.register('workshop:copy-and-edit', copy);

  P.pageShown();
}());
