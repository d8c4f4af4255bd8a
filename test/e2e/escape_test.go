package e2e

// The escape suite: what a red team did from a session's terminal, with
// the portal run as root and bubblewrap installed, replayed through a real
// session's terminal (the websocket the portal serves a browser), each
// asserting that the attack FAILS, as DESIGN.md §5 and §6 promise: a
// session's user never reaches another session, the portal's secrets or
// the host's services; its processes run under no host identity that
// matters, see the filesystem by allow-list, live in their own network
// namespace (outbound through a user-mode stack, never the host's
// loopback) and have their own storage limit. Beside the attacks, what a
// workshop legitimately does must keep working.
//
// The attacks run a small tool of the test's (testdata/attack) that the
// workshop brings in its files, besides plain shell commands.

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// attackTimeout bounds one attack command in a session's terminal.
const attackTimeout = 30 * time.Second

// TestEscapeFromSession runs the attacks that need no restart of the
// portal, and the legitimate uses beside them, in three sessions of one
// portal that trusts X-Forwarded-For from loopback (as behind a local
// ingress): alice uses her workshop, mallory attacks the portal and the
// host, eve attacks her own session host.
func TestEscapeFromSession(t *testing.T) {
	e := startEscapePortal(t, escapeOptions{capacity: 3, args: []string{"--trusted-proxies", "127.0.0.1/8"}})
	alice := e.session("alice")
	mallory := e.session("mallory")
	eve := e.session("eve")
	aliceSh := e.shell(t, alice, "1")
	sh := e.shell(t, mallory, "1")
	evesh := e.shell(t, eve, "1")

	// The servers outside the session that a workshop may use: git and
	// HTTP on a test host in a network namespace of the test's own.
	outsideURL, outsideSkip := "", outsideServerMissing()
	if outsideSkip == "" {
		outsideURL = startOutsideServer(t)
	}
	requireOutside := func(t *testing.T) {
		t.Helper()
		requireSlirp(t)
		if outsideSkip != "" {
			t.Skip(outsideSkip)
		}
	}

	t.Run("legit", func(t *testing.T) {
		t.Run("terminal-runs-commands", func(t *testing.T) {
			out, code := aliceSh.mustRun(t, `echo "sum=$((6*7))"; cd && pwd; echo "home=$HOME"`, attackTimeout)
			if code != 0 || !strings.Contains(out, "sum=42") || !strings.Contains(out, "home=/") {
				t.Fatalf("status %d, output %q", code, out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) < 3 || lines[1] != strings.TrimPrefix(lines[2], "home=") {
				t.Errorf("cd does not go to $HOME: %q", out)
			}
		})
		t.Run("setup-script-ran", func(t *testing.T) {
			out, code := aliceSh.mustRun(t, `cat "$HOME/escape-setup-marker"`, attackTimeout)
			if code != 0 || !strings.Contains(out, e.setupMarker) {
				t.Fatalf("the setup script's marker: status %d, %q, want %q", code, out, e.setupMarker)
			}
		})
		t.Run("git-clone-from-outside", func(t *testing.T) {
			requireOutside(t)
			base := outsideURL
			out, code := aliceSh.mustRun(t, fmt.Sprintf(`rm -rf "$HOME/cloned" && git clone -q %s "$HOME/cloned" && cat "$HOME/cloned/README.md"`,
				shellQuote(base+"/repo.git")), 2*attackTimeout)
			if code != 0 || !strings.Contains(out, "escape suite repository") {
				t.Fatalf("git clone %s/repo.git: status %d, %q", base, code, out)
			}
		})
		t.Run("http-download-from-outside", func(t *testing.T) {
			requireOutside(t)
			base := outsideURL
			cmd := fmt.Sprintf(`if command -v curl >/dev/null; then curl -fsS -m 20 -o "$HOME/download.txt" %[1]s; else %[2]s http GET %[1]s > "$HOME/download.txt"; fi && cat "$HOME/download.txt"`,
				shellQuote(base+"/download.txt"), e.tool)
			out, code := aliceSh.mustRun(t, cmd, attackTimeout)
			if code != 0 || !strings.Contains(out, "downloaded from outside") {
				t.Fatalf("download of %s/download.txt: status %d, %q", base, code, out)
			}
		})
		t.Run("web-server-in-session", func(t *testing.T) {
			// Portico has no path that proxies a port of the session to a
			// browser yet (Educates' ingresses): the server is reached from
			// the session's own terminal.
			_, port, _ := net.SplitHostPort(freeAddr(t))
			server := fmt.Sprintf(`%s serve 127.0.0.1:%s "$HOME/www"`, e.tool, port)
			cmd := fmt.Sprintf(`mkdir -p "$HOME/www" && echo served-in-session > "$HOME/www/index.txt"
if [ -x /usr/bin/python3 ]; then (cd "$HOME/www" && exec /usr/bin/python3 -m http.server --bind 127.0.0.1 %[1]s) >/dev/null 2>&1 &
else %[2]s >/dev/null 2>&1 & fi
pid=$!
for i in $(seq 100); do out=$(%[3]s http GET http://127.0.0.1:%[1]s/index.txt) && break; sleep 0.1; done
echo "$out"; kill $pid`, port, server, e.tool)
			out, code := aliceSh.mustRun(t, cmd, attackTimeout)
			if code != 0 || !strings.Contains(out, "STATUS 200") || !strings.Contains(out, "served-in-session") {
				t.Fatalf("a web server in the session, asked from the session: status %d, %q", code, out)
			}
		})
	})

	t.Run("attack", func(t *testing.T) {
		// 1. Secrets of the portal and the host, by path.
		readSecret := func(t *testing.T, path string, secrets ...string) {
			t.Helper()
			out, _ := sh.mustRun(t, "cat "+shellQuote(path)+" | head -c 1000000", attackTimeout)
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("the session read %s: it printed %q", path, firstLines(out, 3))
					return
				}
			}
			t.Logf("cat %s: %q", path, firstLines(out, 2))
		}
		t.Run("read-portal-definitions", func(t *testing.T) {
			readSecret(t, e.config, clientSecret, adminPass, e.configMarker)
		})
		t.Run("read-portal-log", func(t *testing.T) {
			readSecret(t, e.logPath, e.logMarker)
		})
		t.Run("read-root-only-file", func(t *testing.T) {
			requireRoot(t, "a file of root's")
			secret := "escape-root-secret-" + randomHex(8)
			path := "/root/portico-escape-test-" + randomHex(4)
			if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Remove(path) })
			readSecret(t, path, secret)
		})
		t.Run("read-etc-shadow", func(t *testing.T) {
			readSecret(t, "/etc/shadow", "root:")
		})
		t.Run("read-data-dir", func(t *testing.T) {
			// The database of the portal and another session's home.
			home := filepath.Join(e.dataDir, "sessions", alice.Name)
			out, _ := sh.mustRun(t, fmt.Sprintf("head -c 15 %s; echo; ls -1a %s; cat %s",
				shellQuote(filepath.Join(e.dataDir, "portico.db")), shellQuote(home),
				shellQuote(filepath.Join(home, "escape-setup-marker"))), attackTimeout)
			listed := regexp.MustCompile(`(?m)^(\.portico|escape-bin|escape-setup-marker)$`).FindAllString(out, -1)
			if strings.Contains(out, "SQLite format") || len(listed) > 0 || strings.Contains(out, e.setupMarker) {
				t.Errorf("the session reads the data directory: %q", out)
			} else {
				t.Logf("the data directory: %q", firstLines(out, 4))
			}
		})

		// 3. Unix sockets of the host.
		t.Run("unix-socket-in-run", func(t *testing.T) {
			requireRoot(t, "a socket of root's in /run")
			path := "/run/portico-escape-" + randomHex(4) + ".sock"
			ln, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close(); os.Remove(path) })
			if err := os.Chmod(path, 0o600); err != nil {
				t.Fatal(err)
			}
			conns := countConnections(t, ln)
			out, _ := sh.mustRun(t, e.tool+" connect unix "+path, attackTimeout)
			assertUnreached(t, "the root-only socket "+path, out, conns)
		})
		t.Run("abstract-unix-socket", func(t *testing.T) {
			requireSlirp(t)
			name := "@portico-escape-" + randomHex(4)
			ln, err := net.Listen("unix", name)
			if err != nil {
				t.Fatal(err)
			}
			conns := countConnections(t, ln)
			out, _ := sh.mustRun(t, e.tool+" connect unix "+name, attackTimeout)
			assertUnreached(t, "the abstract socket "+name, out, conns)
		})

		// 4. Services on the host's loopback, the portal's included.
		t.Run("host-loopback", func(t *testing.T) {
			requireSlirp(t)
			var targets []string
			var counters []*connCounter
			for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
				ln, err := net.Listen("tcp", addr)
				if err != nil {
					t.Logf("no listener on %s: %v", addr, err)
					continue
				}
				targets = append(targets, ln.Addr().String())
				counters = append(counters, countConnections(t, ln))
			}
			gw := e.gateway(t, sh)
			for i, target := range targets {
				_, port, _ := net.SplitHostPort(target)
				host, _, _ := net.SplitHostPort(target)
				cmd := fmt.Sprintf(`%s connect tcp %s; timeout 10 bash -c 'exec 3<>/dev/tcp/%s/%s && echo "CONNECTED bash"' 2>&1 || echo "FAILED bash"`,
					e.tool, shellQuote(target), host, port)
				if gw != "" && strings.HasPrefix(host, "127.") {
					cmd += fmt.Sprintf("; %s connect tcp %s", e.tool, net.JoinHostPort(gw, port))
				}
				out, _ := sh.mustRun(t, cmd, attackTimeout)
				assertUnreached(t, "a service on the host's "+target, out, counters[i])
			}
		})
		t.Run("portal-port", func(t *testing.T) {
			requireSlirp(t)
			_, port, _ := net.SplitHostPort(e.addr)
			cmd := fmt.Sprintf("%s connect tcp %s; %s http GET %s", e.tool, e.addr, e.tool, shellQuote(e.url+"/workshops/catalog/environments/"))
			if gw := e.gateway(t, sh); gw != "" {
				cmd += fmt.Sprintf("; %s connect tcp %s", e.tool, net.JoinHostPort(gw, port))
			}
			out, _ := sh.mustRun(t, cmd, attackTimeout)
			assertUnreached(t, "the portal at "+e.addr, out, nil)
		})

		// 8. The portal trusts X-Forwarded-For from loopback: a session
		// that reached it could spread its guesses of the robot's secret
		// over made-up addresses. It must not reach it at all.
		t.Run("forged-x-forwarded-for", func(t *testing.T) {
			requireSlirp(t)
			form := "grant_type=password&username=" + robotUser + "&password=guess&client_id=" + clientID + "&client_secret=guess"
			var cmds []string
			for i := range 3 {
				cmds = append(cmds, fmt.Sprintf("%s http POST %s 'X-Forwarded-For: 198.51.100.%d' -d %s",
					e.tool, shellQuote(e.url+"/oauth2/token/"), 10+i, shellQuote(form)))
			}
			out, _ := sh.mustRun(t, strings.Join(cmds, "; "), attackTimeout)
			assertUnreached(t, "the portal's token endpoint", out, nil)
		})

		// 2. The session host, from eve's own terminal: its signals, its
		// memory, its descriptors. The signals first: once a process has
		// traced the host, a SIGSTOP no longer stops it on this kernel
		// (and the test resumes a host that was stopped).
		t.Run("signal-host", func(t *testing.T) {
			e.signalHost(t, eve, evesh)
		})
		t.Run("ptrace-host", func(t *testing.T) {
			out, _ := evesh.mustRun(t, e.tool+" ptrace", attackTimeout)
			t.Logf("ptrace from the session:\n%s", out)
			if m := regexp.MustCompile(`(?m)^(PTRACE|MEM) \d+ ok (host|other-uid).*$`).FindAllString(out, -1); len(m) > 0 {
				t.Errorf("the session traces its host: %q", m)
			}
			if msg := e.answers(eve, 10*time.Second); msg != "" {
				t.Error(msg)
			}
		})
		t.Run("pidfd-getfd-host", func(t *testing.T) {
			out, _ := evesh.mustRun(t, e.tool+" pidfd-getfd", attackTimeout)
			t.Logf("pidfd_getfd from the session:\n%s", out)
			if m := regexp.MustCompile(`(?m)^GETFD \d+ \d+ ok (host|other-uid).*$`).FindAllString(out, -1); len(m) > 0 {
				t.Errorf("the session takes its host's descriptors: %q", firstLines(strings.Join(m, "\n"), 5))
			}
			if msg := e.answers(eve, 10*time.Second); msg != "" {
				t.Error(msg)
			}
		})
	})
}

// gateway returns the default gateway of the session's network when the
// session has a network namespace of its own: there a user-mode stack
// may forward its gateway to the host's loopback. In the host's
// namespace it returns "": the gateway is then a real router, never a
// target of the tests.
func (e *escapePortal) gateway(t *testing.T, sh *sessionShell) string {
	t.Helper()
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return ""
	}
	out, _ := sh.mustRun(t, "readlink /proc/self/ns/net; "+e.tool+" gateway", attackTimeout)
	if strings.Contains(out, self) {
		return ""
	}
	m := regexp.MustCompile(`GATEWAY (\d+\.\d+\.\d+\.\d+)`).FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	t.Logf("the session's network namespace differs from the host's; its gateway %s is tried too", m[1])
	return m[1]
}

// assertUnreached fails the test if the tool's output says it connected
// or had an HTTP answer, or if the test's listener counted a connection.
func assertUnreached(t *testing.T, what, out string, conns *connCounter) {
	t.Helper()
	if m := regexp.MustCompile(`(?m)^(CONNECTED|STATUS) .*$`).FindAllString(out, -1); len(m) > 0 {
		t.Errorf("the session reached %s: %q", what, m)
	} else {
		t.Logf("%s: %q", what, firstLines(out, 4))
	}
	if conns != nil {
		time.Sleep(200 * time.Millisecond) // an accept in flight
		if n := conns.count(); n > 0 {
			t.Errorf("the listener of %s accepted %d connections from the session", what, n)
		}
	}
}

// signalHost stops every process of the session outside the shell's own
// tree, as `kill -STOP` would, the session host among them. The attack
// fails if no process of the session was stopped, no signal reached the
// host or a process of another user, and the session still answers; if it
// worked, the test resumes the session.
func (e *escapePortal) signalHost(t *testing.T, s *escapeSession, sh *sessionShell) {
	t.Helper()
	tag := sh.start(e.tool + " signal STOP")
	out, _, err := sh.await(tag, 10*time.Second)
	var problems []string
	if err != nil {
		problems = append(problems, fmt.Sprintf("the terminal stopped answering (%v)", err))
	}
	if msg := e.answers(s, 10*time.Second); msg != "" {
		problems = append(problems, msg)
	}
	var stopped []string
	for _, p := range processesBySession(e.dataDir)[s.Name] {
		if state := procState(p.PID); state == 'T' || state == 't' {
			stopped = append(stopped, fmt.Sprintf("%d (%s)", p.PID, commandLine(p.PID)))
		}
	}
	if len(stopped) > 0 {
		problems = append(problems, "stopped: "+strings.Join(stopped, ", "))
	}
	if len(problems) > 0 {
		// Resume the session, then read what the tool said.
		for _, p := range processesBySession(e.dataDir)[s.Name] {
			syscall.Kill(p.PID, syscall.SIGCONT)
		}
		if err != nil {
			out, _, _ = sh.await(tag, 10*time.Second)
		}
		t.Errorf("the session stopped its own host: %s; the tool printed:\n%s", strings.Join(problems, "; "), out)
		return
	}
	t.Logf("kill -STOP from the session:\n%s", out)
	if m := regexp.MustCompile(`(?m)^SIGNAL \d+ ok (host|other-uid).*$`).FindAllString(out, -1); len(m) > 0 {
		t.Errorf("the session signals its host: %q", m)
	}
	if o, code, err := sh.run("echo alive-$((40+2))", attackTimeout); err != nil || code != 0 || !strings.Contains(o, "alive-42") {
		t.Errorf("the terminal after the attack: %d %v %q", code, err, o)
	}
}

// TestEscapeSquatPortalPort: a session binds the portal's port as soon as
// it is free (5.), and the portal is killed and restarted on that port.
// The restart must succeed: the session's bind may only succeed in a
// network namespace that is not the host's.
func TestEscapeSquatPortalPort(t *testing.T) {
	requireSlirp(t)
	e := startEscapePortal(t, escapeOptions{capacity: 1})
	s := e.session("mallory")
	sh := e.shell(t, s, "1")
	_, port, _ := net.SplitHostPort(e.addr)
	out, _ := sh.mustRun(t, fmt.Sprintf(`setsid nohup %s squat %s > "$HOME/squat.log" 2>&1 < /dev/null &
sleep 1; cat "$HOME/squat.log"`, e.tool, port), attackTimeout)
	if !strings.Contains(out, "STARTED") {
		t.Fatalf("the squatter did not start: %q", out)
	}
	t.Logf("the squatter, with the portal up: %q", out)
	sh.close()

	e.kill9()
	time.Sleep(2 * time.Second) // the squatter retries every 2 ms
	e.start()
	if msg := e.awaitReady(settle); msg != "" {
		t.Fatalf("the portal cannot restart on its port %s while a session squats it: %s", port, msg)
	}
	if msg := e.adoptedOrEnded(s, settle); msg != "" {
		t.Error(msg)
	}
}

// TestEscapeAddressFile: the session replaces the file in which its host
// publishes its address (6.) with a symbolic link to /dev/zero, or with a
// FIFO, and the portal is killed and restarted. The file may not exist or
// may not be writable: the attack is to try. The restarted portal must
// become ready within settle without growing without bound or hanging,
// and the session must be re-adopted (it serves, and can be ended) or
// ended cleanly.
func TestEscapeAddressFile(t *testing.T) {
	for _, tc := range []struct{ name, replace string }{
		{"symlink-to-dev-zero", `ln -s /dev/zero "$f"`},
		{"fifo", `mkfifo "$f"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEscapePortal(t, escapeOptions{capacity: 1})
			s := e.session("mallory")
			sh := e.shell(t, s, "1")
			out, _ := sh.mustRun(t, `f="$HOME/.portico/address"; rm -f "$f"; `+tc.replace+`
if [ -L "$f" ] || [ -p "$f" ]; then echo REPLACED; else echo NOT-REPLACED; fi; ls -la "$HOME/.portico" 2>&1 | head -20`, attackTimeout)
			t.Logf("replacing the address file: %s", out)
			sh.close()

			e.kill9()
			e.start()
			watch := e.watchMemory(t, 1<<30)
			defer watch()
			if msg := e.awaitReady(settle); msg != "" {
				t.Fatalf("after the session replaced its address file, the restarted portal: %s", msg)
			}
			if msg := e.adoptedOrEnded(s, settle); msg != "" {
				t.Fatalf("after the session replaced its address file: %s", msg)
			}
		})
	}
}

// TestEscapeStorage: a workshop with spec.session.resources.storage of
// 64Mi (7.), and memory and process limits beside it. Filling the disk
// from the session must fail with "No space left on device" and take no
// more than the limit from the filesystem of the data directory; the
// other limits hold too.
func TestEscapeStorage(t *testing.T) {
	const storage = 64 << 20
	e := startEscapePortal(t, escapeOptions{capacity: 1, resources: "memory: 256Mi\nprocesses: 64\nstorage: 64Mi"})
	s := e.session("mallory")

	t.Run("fill-home", func(t *testing.T) {
		sh := e.shell(t, s, "1")
		before := freeBytes(t, e.dataDir)
		out, _ := sh.mustRun(t, `out=$(fallocate -l 2G "$HOME/big" 2>&1); echo "fallocate: $? $out"
case "$out" in *"not supported"*) dd if=/dev/zero of="$HOME/big" bs=1M count=2048 2>&1 | tail -2;; esac`, 2*attackTimeout)
		after := freeBytes(t, e.dataDir)
		sh.mustRun(t, `rm -f "$HOME/big"`, attackTimeout)
		drop := before - after
		t.Logf("filling the home: %q; the data directory's filesystem lost %d MiB", out, drop>>20)
		if !strings.Contains(out, "No space left on device") {
			t.Errorf("2G in the home of a session with a storage limit of 64Mi: %q", out)
		}
		if slack := int64(256 << 20); drop > storage+slack {
			t.Errorf("the filesystem of the data directory lost %d MiB to a session with a storage limit of %d MiB", drop>>20, storage>>20)
		}
	})
	t.Run("fill-tmp", func(t *testing.T) {
		// /tmp is the session's too: bounded by its storage, or by its
		// memory when it lives in memory (the shell may then be the one
		// the kernel kills).
		sh := e.shell(t, s, "2")
		out, _, err := sh.run(`fallocate -l 2G /tmp/big; echo "fallocate: $?"`, 2*attackTimeout)
		t.Logf("filling /tmp: %v %q", err, out)
		if strings.Contains(out, "fallocate: 0") {
			t.Errorf("2G in the /tmp of a session with a storage limit of 64Mi: %q", out)
		}
		sh.close()
		e.shell(t, s, "2").mustRun(t, "rm -f /tmp/big", attackTimeout)
		if msg := e.answers(s, 10*time.Second); msg != "" {
			t.Error(msg)
		}
	})
	t.Run("memory-limit", func(t *testing.T) {
		sh := e.shell(t, s, "3")
		out, _, err := sh.run(e.tool+` alloc 1073741824; echo "exit $?"`, 2*attackTimeout)
		t.Logf("1 GiB under a limit of 256Mi: %v %q", err, out)
		if strings.Contains(out, "ALLOCATED") {
			t.Errorf("the session allocated 1 GiB under a memory limit of 256Mi: %q", out)
		}
		if msg := e.answers(s, 10*time.Second); msg != "" {
			t.Error(msg)
		}
	})
	t.Run("process-limit", func(t *testing.T) {
		sh := e.shell(t, s, "4")
		if _, code := sh.mustRun(t, "test -x /usr/bin/python3", attackTimeout); code != 0 {
			t.Skip("the fork test runs python3 in the session: apt-get install python3")
		}
		script := []string{
			"import os, signal, time",
			"kids = []",
			"for i in range(300):",
			"    try:",
			"        pid = os.fork()",
			"    except OSError as e:",
			"        print('FORK FAILED', e)",
			"        break",
			"    if pid == 0:",
			"        time.sleep(60)",
			"        os._exit(0)",
			"    kids.append(pid)",
			"print('STARTED', len(kids))",
			"for k in kids: os.kill(k, signal.SIGKILL)",
			"for k in kids: os.waitpid(k, 0)",
		}
		quoted := make([]string, len(script))
		for i, l := range script {
			quoted[i] = shellQuote(l)
		}
		out, _ := sh.mustRun(t, "printf '%s\\n' "+strings.Join(quoted, " ")+` > /tmp/forks.py && /usr/bin/python3 /tmp/forks.py`, 2*attackTimeout)
		t.Logf("300 processes under a limit of 64: %q", out)
		m := regexp.MustCompile(`STARTED (\d+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("the fork test printed %q", out)
		}
		if n, _ := strconv.Atoi(m[1]); n >= 300 || n > 64 {
			t.Errorf("the session started %d processes under a limit of 64", n)
		}
		if msg := e.answers(s, 10*time.Second); msg != "" {
			t.Error(msg)
		}
	})
}
