package educatesk8s

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Without --portal-name the portal serves the only TrainingPortal: with
// two it waits, and serves the one left once the other goes.
func TestSourceServesTheOnlyPortal(t *testing.T) {
	requireCRDs(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tps := client.Resource(TrainingPortals)
	// Other tests' portals are gone by now, or going.
	waitFor(t, time.Minute, func() string {
		list, err := tps.List(ctx, metav1.ListOptions{})
		if err != nil {
			return err.Error()
		}
		if len(list.Items) > 0 {
			return fmt.Sprintf("%d TrainingPortals left by other tests", len(list.Items))
		}
		return ""
	})
	for _, name := range []string{"only-a", "only-b"} {
		doc := fmt.Sprintf("apiVersion: training.educates.dev/v1beta1\nkind: TrainingPortal\nmetadata:\n  name: %s\nspec:\n  workshops: []\n", name)
		if _, err := tps.Create(ctx, object(t, doc), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tps.Delete(context.Background(), name, metav1.DeleteOptions{}) })
	}
	src := NewSource(client, "", testLog(t))
	src.Start(ctx)
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
	defer wcancel()
	if defs, _, err := src.Wait(wctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("with two portals: %v, %v; want to wait", defs, err)
	}
	if err := tps.Delete(ctx, "only-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel = context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	defs, portal, err := src.Wait(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if defs.Portal.Name != "only-b" || portal.Name != "only-b" {
		t.Errorf("serves %s (%s), want only-b", defs.Portal.Name, portal.Name)
	}
}
