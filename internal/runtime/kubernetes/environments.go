package kubernetes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/portico-dev/portico/internal/runtime"
)

// SyncEnvironments gives each wanted environment its namespace, named
// after it, with the workshop's environment objects, and deletes the
// environment namespaces of the portal that are not wanted any more (the
// broker wants an environment as long as it has sessions, whose hosts live
// in its namespace). What was applied is remembered by digest, so a pass
// over unchanged environments makes no API call; removal reads the
// namespace informer's cache.
func (r *Runtime) SyncEnvironments(ctx context.Context, want []runtime.EnvironmentSpec) error {
	var errs []error
	wanted := make(map[string]bool, len(want))
	for _, env := range want {
		wanted[env.Name] = true
		if err := r.ensureEnvironment(ctx, env); err != nil {
			errs = append(errs, fmt.Errorf("environment %s: %w", env.Name, err))
		}
	}
	list, err := r.namespaces.List(labels.SelectorFromSet(labels.Set{labelRole: roleEnvironment}))
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, ns := range list {
		if wanted[ns.Name] || ns.DeletionTimestamp != nil {
			continue
		}
		r.log.Info("removing the namespace of a stopped environment", "environment", ns.Name)
		own, err := r.ownNamespace(ctx, ns.Name, roleEnvironment)
		if err == nil && own != nil {
			err = r.deleteNamespace(ctx, own)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("environment %s: %w", ns.Name, err))
			continue
		}
		r.mu.Lock()
		delete(r.envs, ns.Name)
		r.mu.Unlock()
	}
	return errors.Join(errs...)
}

func (r *Runtime) ensureEnvironment(ctx context.Context, env runtime.EnvironmentSpec) error {
	if !validName(env.Name) {
		return fmt.Errorf("%q cannot name a namespace", env.Name)
	}
	b, err := json.Marshal(env)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	digest := hex.EncodeToString(sum[:])
	r.mu.Lock()
	done := r.envs[env.Name] == digest
	r.mu.Unlock()
	// The cache may be stale when someone deleted the namespace behind
	// the portal's back: the informer tells.
	if ns, err := r.namespaces.Get(env.Name); done && err == nil && ns.DeletionTimestamp == nil {
		return nil
	}
	if err := r.environmentNamespace(ctx, env.Name); err != nil {
		return err
	}
	lbls := r.environmentLabels(env.Name)
	vars := map[string]string{
		"environment_name":   env.Name,
		"workshop_namespace": env.Name,
		"workshop_name":      env.Workshop,
		"training_portal":    env.Portal,
		"ingress_domain":     r.ingressDomain,
	}
	objs, err := objectsOf(env.Objects, vars, env.Name, "spec.environment.objects")
	if err != nil {
		return err
	}
	if err := r.apply(ctx, objs, "spec.environment.objects", lbls); err != nil {
		return err
	}
	r.mu.Lock()
	r.envs[env.Name] = digest
	r.mu.Unlock()
	return nil
}

// environmentNamespace makes sure the namespace of environment env exists
// and is this portal's, creating it if need be: SyncEnvironments prepares
// it, and a session starting first makes it, as its host lives there.
func (r *Runtime) environmentNamespace(ctx context.Context, env string) error {
	ns, err := r.namespaces.Get(env)
	if err != nil {
		// Not in the cache (yet): the API server tells.
		ns, err = r.client.CoreV1().Namespaces().Get(ctx, env, metav1.GetOptions{})
	}
	switch {
	case apierrors.IsNotFound(err):
		ns = &corev1.Namespace{ObjectMeta: objectMeta(env, "", r.environmentLabels(env))}
		return exists(r.client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{FieldManager: fieldManager}))
	case err != nil:
		return err
	case ns.Labels[labelPortal] != r.portal || ns.Labels[labelRole] != roleEnvironment:
		return fmt.Errorf("namespace %s exists and is not an environment of portal %s", env, r.portal)
	case ns.DeletionTimestamp != nil:
		return fmt.Errorf("namespace %s is still being deleted", env)
	}
	return nil
}
