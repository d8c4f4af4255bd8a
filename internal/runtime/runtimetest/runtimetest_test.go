package runtimetest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/runtime"
)

func TestLifecycle(t *testing.T) {
	f := New()
	ctx := context.Background()
	inst, err := f.Start(ctx, runtime.Spec{Session: "p-w01-s001"})
	if err != nil || !inst.Ready || inst.Address == "" {
		t.Fatalf("Start = %+v, %v", inst, err)
	}
	if again, err := f.Start(ctx, runtime.Spec{Session: "p-w01-s001"}); err != nil || again != inst {
		t.Fatalf("second Start = %+v, %v", again, err)
	}
	if st, err := f.Status(ctx, "p-w01-s001"); err != nil || st != inst {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	f.SetActivity("p-w01-s001", runtime.Activity{Idle: time.Minute, LastView: time.Hour})
	if a, err := f.Activity(ctx, inst); err != nil || a.Idle != time.Minute || a.LastView != time.Hour {
		t.Fatalf("Activity = %+v, %v", a, err)
	}

	if !f.Exit("p-w01-s001", "session host exited") {
		t.Fatal("Exit of a running session = false")
	}
	if st, _ := f.Status(ctx, "p-w01-s001"); st.Failed != "session host exited" || st.Ready {
		t.Fatalf("Status after Exit = %+v", st)
	}
	if got := f.Running(); len(got) != 0 {
		t.Fatalf("Running after Exit = %v", got)
	}
	if list, _ := f.List(ctx); len(list) != 1 {
		t.Fatalf("List after Exit = %+v", list)
	}

	if err := f.Stop(ctx, "p-w01-s001"); err != nil {
		t.Fatal(err)
	}
	if err := f.Stop(ctx, "unknown"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Status(ctx, "p-w01-s001"); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("Status after Stop: %v", err)
	}
	want := []Call{
		{"Start", "p-w01-s001"}, {"Start", "p-w01-s001"}, {"Status", "p-w01-s001"}, {"Activity", "p-w01-s001"},
		{"Status", "p-w01-s001"}, {"List", ""}, {"Stop", "p-w01-s001"}, {"Stop", "unknown"}, {"Status", "p-w01-s001"},
	}
	if got := f.Calls(); !slices.Equal(got, want) {
		t.Fatalf("Calls = %v\nwant %v", got, want)
	}
}

func TestFailures(t *testing.T) {
	f := New()
	ctx := context.Background()
	boom, bad := errors.New("boom"), errors.New("bad")
	f.FailNext(boom)
	if _, err := f.Start(ctx, runtime.Spec{Session: "a"}); !errors.Is(err, boom) {
		t.Fatalf("FailNext: %v", err)
	}
	if _, err := f.Start(ctx, runtime.Spec{Session: "a"}); err != nil {
		t.Fatalf("after FailNext: %v", err)
	}
	f.FailStart("b", bad)
	for range 2 {
		if _, err := f.Start(ctx, runtime.Spec{Session: "b"}); !errors.Is(err, bad) {
			t.Fatalf("FailStart: %v", err)
		}
	}
	f.FailStart("b", nil)
	if _, err := f.Start(ctx, runtime.Spec{Session: "b"}); err != nil {
		t.Fatalf("after FailStart(nil): %v", err)
	}
	if got := f.Running(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("Running = %v", got)
	}

	f.SetStartDelay("slow", time.Hour)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := f.Start(ctx, runtime.Spec{Session: "slow"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("delayed Start: %v", err)
	}
	if _, err := f.Activity(context.Background(), runtime.Instance{Session: "slow"}); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("Activity of a session not running: %v", err)
	}

	f.SetStartDelay("slow", 50*time.Millisecond)
	started, calls := make(chan error), len(f.Calls())
	go func() {
		_, err := f.Start(context.Background(), runtime.Spec{Session: "slow"})
		started <- err
	}()
	for len(f.Calls()) == calls { // until the Start is under way
		time.Sleep(time.Millisecond)
	}
	f.Stop(context.Background(), "slow")
	if err := <-started; err == nil {
		t.Fatal("Start overtaken by Stop succeeded")
	}
	if slices.Contains(f.Running(), "slow") {
		t.Fatal("session running after Stop")
	}
}

func TestConcurrentUse(t *testing.T) {
	f := New()
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			f.Start(ctx, runtime.Spec{Session: "s"})
			f.Status(ctx, "s")
			f.List(ctx)
			f.Stop(ctx, "s")
		})
	}
	wg.Wait()
	if got := len(f.Calls()); got != 200 {
		t.Fatalf("%d calls recorded, want 200", got)
	}
}

func TestExitedAndSpec(t *testing.T) {
	f := New()
	ctx := context.Background()
	spec := runtime.Spec{Session: "p-w01-s002", Limits: runtime.Limits{Memory: 512 << 20, CPUMilli: 500, Processes: 100}}
	if _, err := f.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if got, ok := f.Spec("p-w01-s002"); !ok || got.Limits != spec.Limits {
		t.Fatalf("Spec = %+v, %v", got, ok)
	}
	if f.Exit("p-w01-s999", "gone") {
		t.Fatal("Exit of an unknown session = true")
	}
	select {
	case name := <-f.Exited():
		t.Fatalf("Exited delivered %q for an unknown session", name)
	default:
	}
	f.Exit("p-w01-s002", "killed")
	select {
	case name := <-f.Exited():
		if name != "p-w01-s002" {
			t.Fatalf("Exited delivered %q", name)
		}
	default:
		t.Fatal("Exit did not deliver on Exited")
	}
	// A reader that does not keep up never blocks Exit.
	for range exitedBuffer + 10 {
		f.Start(ctx, spec)
		f.Exit("p-w01-s002", "again")
	}
	if n := len(f.Exited()); n != exitedBuffer {
		t.Fatalf("%d exits buffered, want %d", n, exitedBuffer)
	}
}
