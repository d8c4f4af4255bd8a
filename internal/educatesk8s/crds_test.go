package educatesk8s

import (
	"context"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
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
	// An account that may read the definitions but not create them is
	// told which are missing and what right it lacks.
	reader := readerClient(t)
	err = EnsureCRDs(ctx, reader, true)
	if err == nil || !strings.Contains(err.Error(), "may not create customresourcedefinitions") {
		t.Fatalf("install without the right: %v", err)
	}
	for _, k := range kinds {
		if !strings.Contains(err.Error(), k.crdName()) {
			t.Errorf("error %q does not name %s", err, k.crdName())
		}
	}
	if err := EnsureCRDs(ctx, client, true); err != nil {
		t.Fatal(err)
	}
	if err := EnsureCRDs(ctx, reader, false); err != nil {
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

// readerClient acts as a user who may get CustomResourceDefinitions and
// nothing more.
func readerClient(t *testing.T) dynamic.Interface {
	t.Helper()
	ctx := context.Background()
	rbac := cluster.Client.RbacV1()
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "crd-reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: []string{"get"}}}}
	if _, err := rbac.ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "crd-reader"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "crd-reader"},
		Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "crd-reader"}}}
	if _, err := rbac.ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(cluster.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "crd-reader"}
	c, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
