package noop_test

import (
	"context"
	"errors"
	"testing"

	"github.com/portico-dev/portico/internal/runtime"
	"github.com/portico-dev/portico/internal/runtime/noop"
)

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	r := noop.New()
	if _, err := r.Status(ctx, "a"); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("status before start: %v", err)
	}
	if err := r.Allocate(ctx, runtime.Instance{Session: "a"}, "pw", runtime.Allocation{}); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("allocate before start: %v", err)
	}
	for _, name := range []string{"b", "a"} {
		inst, err := r.Start(ctx, runtime.Spec{Session: name})
		if err != nil {
			t.Fatal(err)
		}
		want := runtime.Instance{Session: name, Address: name + ".noop.invalid:0", Ready: true}
		if inst != want {
			t.Fatalf("start %s: %+v, want %+v", name, inst, want)
		}
	}
	again, err := r.Start(ctx, runtime.Spec{Session: "a"})
	if err != nil || again.Address != noop.Address("a") {
		t.Fatalf("second start: %+v %v", again, err)
	}
	if inst, err := r.Status(ctx, "a"); err != nil || !inst.Ready {
		t.Fatalf("status: %+v %v", inst, err)
	}
	if err := r.Allocate(ctx, runtime.Instance{Session: "a"}, "pw", runtime.Allocation{User: runtime.User{Username: "u"}}); err != nil {
		t.Fatalf("allocate: %v", err)
	}
	if act, err := r.Activity(ctx, runtime.Instance{Session: "a"}); err != nil || act != (runtime.Activity{}) {
		t.Fatalf("activity: %+v %v", act, err)
	}
	list, err := r.List(ctx)
	if err != nil || len(list) != 2 || list[0].Session != "a" || list[1].Session != "b" {
		t.Fatalf("list: %+v %v", list, err)
	}
	if err := r.Stop(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(ctx, "unknown"); err != nil {
		t.Fatalf("stop of an unknown session: %v", err)
	}
	if _, err := r.Status(ctx, "a"); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("status after stop: %v", err)
	}
	if _, err := r.Activity(ctx, runtime.Instance{Session: "a"}); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("activity after stop: %v", err)
	}
	if list, _ := r.List(ctx); len(list) != 1 {
		t.Fatalf("list after stop: %+v", list)
	}
}

func TestStartCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := noop.New()
	if _, err := r.Start(ctx, runtime.Spec{Session: "a"}); err == nil {
		t.Fatal("start with a cancelled context succeeded")
	}
	if list, _ := r.List(context.Background()); len(list) != 0 {
		t.Fatalf("list: %+v", list)
	}
}
