package educatesk8s

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCRDsRefusedWhenMissingUnlessInstalled(t *testing.T) {
	requireCluster(t)
	ctx := context.Background()
	// From a cluster without them, whatever ran before.
	for _, k := range kinds {
		err := client.Resource(crds).Delete(ctx, k.crdName(), metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		waitFor(t, time.Minute, func() string {
			if _, err := client.Resource(crds).Get(ctx, k.crdName(), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return k.crdName() + " still there"
			}
			return ""
		})
	}
	err := EnsureCRDs(ctx, client, false)
	if err == nil {
		t.Fatal("no error without the definitions")
	}
	for _, k := range kinds {
		if !strings.Contains(err.Error(), k.crdName()) {
			t.Errorf("error %q does not name %s", err, k.crdName())
		}
	}
	if !strings.Contains(err.Error(), "--install-crds") {
		t.Errorf("error %q does not say how to install them", err)
	}
	if err := EnsureCRDs(ctx, client, true); err != nil {
		t.Fatal(err)
	}
	if err := EnsureCRDs(ctx, client, false); err != nil {
		t.Fatalf("installed, still refused: %v", err)
	}
	for _, r := range []string{"trainingportals", "workshops", "workshopenvironments", "workshopsessions"} {
		crd, err := client.Resource(crds).Get(ctx, r+"."+Group, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if scope := str(crd, "spec", "scope"); scope != "Cluster" {
			t.Errorf("%s: scope %s, want Cluster as Educates has it", r, scope)
		}
	}
}
