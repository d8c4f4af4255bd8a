// The session dashboard: terminals (xterm.js over websockets that reconnect
// to the same shells), page navigation without reloading the terminals,
// the countdown with its extend and finish buttons, and the view reports
// for the portal's orphaned rule. The clickable actions are in actions.js.
(function () {
  'use strict';

  var body = document.body;
  var prefix = body.dataset.prefix || '';
  var session = body.dataset.session || '';
  var encoder = new TextEncoder();
  var terminals = {}; // id -> Term
  var current = null; // id of the visible terminal

  // ---- Terminals ---------------------------------------------------------

  var SHELL_EXITED = 4000;

  function socketURL(id) {
    var scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    return scheme + '//' + window.location.host + prefix + '/terminal/' + encodeURIComponent(id);
  }

  function Term(id, pane) {
    this.id = id;
    this.pane = pane;
    this.tab = document.getElementById('tab-' + id);
    this.ws = null;
    this.delay = 500;
    this.pending = [];
    this.exited = false;
    this.timer = null;
    this.term = new window.Terminal({
      cursorBlink: true,
      fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace',
      fontSize: 14,
      scrollback: 5000,
      theme: { background: '#1e1e1e' }
    });
    this.fitter = new window.FitAddon.FitAddon();
    this.term.loadAddon(this.fitter);
    this.term.open(pane);
    var self = this;
    this.term.onData(function (data) { self.send(data); });
    this.term.onResize(function () { self.sendSize(); });
    if (window.ResizeObserver) {
      new ResizeObserver(function () { self.fit(); }).observe(pane);
    }
    this.fit();
    this.connect();
  }

  Term.prototype.fit = function () {
    if (this.pane.hidden || this.pane.offsetWidth === 0) return;
    try { this.fitter.fit(); } catch (e) { /* not laid out yet */ }
  };

  Term.prototype.connect = function () {
    var self = this;
    clearTimeout(this.timer);
    var ws = new WebSocket(socketURL(this.id));
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    var opened = false;
    ws.onopen = function () {
      opened = true;
      self.delay = 500;
      self.setConnected(true);
      // The host replays the recent output: start from a clean screen.
      self.term.reset();
      self.sendSize();
      var queued = self.pending;
      self.pending = [];
      queued.forEach(function (d) { self.send(d); });
    };
    ws.onmessage = function (ev) {
      if (typeof ev.data === 'string') {
        var msg;
        try { msg = JSON.parse(ev.data); } catch (e) { return; }
        if (msg.type === 'status' && msg.text) self.term.write('\x1b[2m' + msg.text + '\x1b[0m\r\n');
        return;
      }
      self.term.write(new Uint8Array(ev.data));
    };
    ws.onclose = function (ev) {
      if (self.ws !== ws) return;
      self.ws = null;
      self.setConnected(false);
      if (ev.code === SHELL_EXITED) {
        self.exited = true;
        self.term.write('\r\n\x1b[2m[The shell has ended. Press a key to start a new one.]\x1b[0m\r\n');
        return;
      }
      // A lost connection may mean the session ended: ask the portal
      // before reconnecting, and stop for good if it has.
      schedule().then(function () {
        if (ended) {
          self.term.write('\r\n\x1b[2m[The session has ended.]\x1b[0m\r\n');
          return;
        }
        if (opened) self.term.write('\r\n\x1b[2m[Connection lost, reconnecting…]\x1b[0m\r\n');
        self.timer = setTimeout(function () { self.connect(); }, self.delay);
        self.delay = Math.min(self.delay * 2, 15000);
      });
    };
  };

  Term.prototype.setConnected = function (ok) {
    if (this.tab) this.tab.classList.toggle('disconnected', !ok);
  };

  Term.prototype.send = function (data) {
    if (this.exited) {
      this.exited = false;
      this.pending = [];
      this.connect();
      return;
    }
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(encoder.encode(data));
    } else if (this.pending.length < 100) {
      this.pending.push(data);
    }
  };

  Term.prototype.sendSize = function () {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ type: 'resize', cols: this.term.cols, rows: this.term.rows }));
    }
  };

  // addTab creates the tab and pane of a terminal the page did not list.
  function addTab(id) {
    var tab = document.createElement('button');
    tab.type = 'button';
    tab.className = 'tab';
    tab.id = 'tab-' + id;
    tab.setAttribute('role', 'tab');
    tab.setAttribute('aria-selected', 'false');
    tab.dataset.terminal = id;
    tab.textContent = 'Terminal ' + id;
    document.getElementById('tabs').appendChild(tab);
    var pane = document.createElement('div');
    pane.className = 'terminal-pane';
    pane.id = 'terminal-' + id;
    pane.dataset.terminal = id;
    pane.setAttribute('role', 'tabpanel');
    pane.hidden = true;
    document.getElementById('panes').appendChild(pane);
    return pane;
  }

  function terminal(id) {
    if (!terminals[id]) {
      var pane = document.getElementById('terminal-' + id) || addTab(id);
      var hidden = pane.hidden;
      pane.hidden = false; // xterm measures its pane as it opens
      terminals[id] = new Term(id, pane);
      pane.hidden = hidden;
    }
    return terminals[id];
  }

  function show(id) {
    var t = terminal(id);
    document.querySelectorAll('.tab').forEach(function (tab) {
      tab.setAttribute('aria-selected', tab.dataset.terminal === id ? 'true' : 'false');
    });
    document.querySelectorAll('.terminal-pane').forEach(function (pane) {
      pane.hidden = pane.dataset.terminal !== id;
    });
    current = id;
    t.fit();
    return t;
  }

  function allTerminalIDs() {
    var ids = [];
    document.querySelectorAll('.tab').forEach(function (tab) { ids.push(tab.dataset.terminal); });
    return ids;
  }

  Term.prototype.clear = function () { this.term.clear(); };
  Term.prototype.focus = function () { this.term.focus(); };

  // Portico.terminals is how the actions (actions.js) reach the terminals.
  var P = window.Portico = window.Portico || {};
  P.terminals = { get: terminal, show: show, ids: allTerminalIDs };

  document.getElementById('tabs').addEventListener('click', function (ev) {
    var tab = ev.target.closest('.tab');
    if (!tab) return;
    show(tab.dataset.terminal).term.focus();
  });

  // ---- Page navigation ---------------------------------------------------

  var contentPath = prefix + '/workshop/content/';

  function pageName(href) {
    var u;
    try { u = new URL(href, window.location.href); } catch (e) { return null; }
    if (u.origin !== window.location.origin || u.pathname.indexOf(contentPath) !== 0) return null;
    var rest = u.pathname.slice(contentPath.length);
    if (!rest || rest.charAt(rest.length - 1) !== '/') return null;
    return decodeURIComponent(rest.slice(0, -1));
  }

  function load(name, push) {
    var url = prefix + '/.portico/pages/' + name.split('/').map(encodeURIComponent).join('/');
    return fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (p) {
        if (push) history.pushState({ page: p.name }, '', p.url);
        page.innerHTML = p.html;
        document.getElementById('pager-top').innerHTML = p.pager;
        document.getElementById('pager-bottom').innerHTML = p.pager;
        document.title = p.title + ' · ' + (body.dataset.workshopTitle || '');
        document.querySelector('.instructions').scrollTop = 0;
        window.scrollTo(0, 0);
        if (P.pageShown) P.pageShown();
      });
  }

  document.querySelector('.instructions').addEventListener('click', function (ev) {
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    var a = ev.target.closest('a[href]');
    if (!a || a.target) return;
    var name = pageName(a.href);
    if (name === null) return;
    ev.preventDefault();
    var href = a.href;
    load(name, true).catch(function () { window.location.href = href; });
  });

  window.addEventListener('popstate', function () {
    var name = pageName(window.location.href);
    if (name !== null) {
      load(name, false).catch(function () { window.location.reload(); });
    } else {
      window.location.reload();
    }
  });

  // ---- Countdown, extend and finish --------------------------------------

  var countdown = document.getElementById('countdown');
  var extend = document.getElementById('extend');
  var finish = document.getElementById('finish');
  var deadline = null;
  var ended = false;

  function portalURL(action) {
    return '/workshops/session/' + encodeURIComponent(session) + '/' + action + '/';
  }

  function portal(action) {
    return fetch(portalURL(action), {
      credentials: 'same-origin',
      headers: { 'X-Portico-Browser': '1', Accept: 'application/json' }
    });
  }

  function pad(n) { return n < 10 ? '0' + n : String(n); }

  function tick() {
    if (ended) {
      countdown.hidden = false;
      countdown.textContent = 'Session ended';
      countdown.classList.add('ended');
      return;
    }
    if (deadline === null) return;
    var left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    var h = Math.floor(left / 3600);
    var m = Math.floor((left % 3600) / 60);
    var s = left % 60;
    countdown.textContent = (h > 0 ? h + ':' + pad(m) : String(m)) + ':' + pad(s);
    countdown.hidden = false;
  }

  function schedule() {
    return portal('schedule')
      .then(function (r) {
        if (r.status === 404 || r.status === 410) {
          ended = true;
          return null;
        }
        return r.ok ? r.json() : null;
      })
      .then(function (s) {
        if (s) {
          var n = Number(s.countdown);
          deadline = s.countdown === null || s.countdown === undefined || isNaN(n) ? null : Date.now() + n * 1000;
          if (deadline === null) countdown.hidden = true;
          extend.hidden = !s.extendable;
          countdown.classList.toggle('expiring', !!s.expiring);
          if (s.status && /^(stopping|stopped)$/i.test(s.status)) ended = true;
        }
        if (ended) leave();
        tick();
      })
      .catch(function () { /* the portal is unreachable: keep counting */ });
  }

  // Once the session has ended under the person's eyes (its time ran out,
  // an organiser ended it), say so over everything, with the way back: the
  // portal knows where the person came from.
  function leave() {
    extend.hidden = true;
    var panel = document.getElementById('ended');
    if (panel.hidden) {
      panel.hidden = false;
      panel.querySelector('a').focus();
    }
  }

  extend.addEventListener('click', function () {
    extend.disabled = true;
    portal('extend')
      .then(function () { return schedule(); })
      .finally(function () { extend.disabled = false; });
  });

  finish.addEventListener('click', function (ev) {
    ev.preventDefault();
    if (window.confirm('Finish this session? Your terminals and files will be deleted.')) {
      window.top.location.href = portalURL('delete');
    }
  });

  // ---- Views, for the portal's orphaned rule ------------------------------

  function poll() {
    fetch(prefix + '/session/poll?hidden=' + (document.hidden ? 'true' : 'false'), {
      credentials: 'same-origin',
      cache: 'no-store'
    }).catch(function () { /* next time */ });
  }

  document.addEventListener('visibilitychange', function () {
    if (!document.hidden) {
      poll();
      schedule();
    }
  });

  // ---- Start -------------------------------------------------------------

  var first = allTerminalIDs()[0];
  if (first && window.Terminal && window.FitAddon) show(first);
  window.addEventListener('resize', function () {
    if (current && terminals[current]) terminals[current].fit();
  });
  schedule();
  poll();
  setInterval(tick, 1000);
  setInterval(schedule, 15000);
  setInterval(poll, 15000);
}());
