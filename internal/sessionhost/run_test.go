package sessionhost

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestRun runs the whole host in-process: setup, address publication,
// serving and a clean shutdown when its context ends.
func TestRun(t *testing.T) {
	home := t.TempDir()
	if err := os.Mkdir(filepath.Join(home, StateDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := WriteConfig(home, testConfig); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Options{Home: home, Logger: slog.New(slog.DiscardHandler)}) }()

	addr := waitForAddress(t, home, done)
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
	if _, err := os.Stat(filepath.Join(home, ".ssh", "id_rsa")); err != nil {
		t.Fatalf("no key written: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// waitForAddress waits until the host running in home publishes its
// address, or Run returns.
func waitForAddress(t *testing.T, home string, done <-chan error) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		if addr, err := os.ReadFile(filepath.Join(home, AddressFile)); err == nil {
			return string(addr)
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned before serving: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no address published")
		}
	}
}

func TestRunWithoutConfig(t *testing.T) {
	err := Run(context.Background(), Options{Home: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		t.Fatal("no error without session.json")
	}
}

func TestMainRejectsArguments(t *testing.T) {
	if err := Main([]string{"secret"}); err == nil {
		t.Fatal("no error for a positional argument")
	}
	if err := Main([]string{"-no-such-flag"}); err == nil {
		t.Fatal("no error for an unknown flag")
	}
}

// A host whose start needs the session's network (setup scripts here) asks
// the runtime for it before it waits for it; one that does not asks
// nothing, and the runtime brings the network up once it serves. Either
// says when it serves.
func TestRunNotes(t *testing.T) {
	for _, setup := range []bool{true, false} {
		home := t.TempDir()
		if err := os.Mkdir(filepath.Join(home, StateDir), 0o700); err != nil {
			t.Fatal(err)
		}
		cfg := testConfig
		cfg.Network = true
		if setup {
			cfg.WorkshopFiles = []map[string]any{{"inline": map[string]any{"paths": map[string]any{SetupDir + "/10-setup.sh": "true\n"}}}}
		}
		if err := WriteConfig(home, cfg); err != nil {
			t.Fatal(err)
		}
		notes, notesW, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer notes.Close()
		defer notesW.Close()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- Run(ctx, Options{Home: home, Logger: slog.New(slog.DiscardHandler), Notify: notesW}) }()
		want := []byte{NoteServing}
		if setup {
			want = []byte{NoteNetwork, NoteServing}
		}
		waitForAddress(t, home, done)
		got := make([]byte, 8)
		notes.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := io.ReadAtLeast(notes, got, len(want))
		if err != nil || string(got[:n]) != string(want) {
			t.Errorf("setup scripts %v: notes %q, %v; want %q", setup, got[:n], err, want)
		}
		cancel()
		<-done
	}
}
