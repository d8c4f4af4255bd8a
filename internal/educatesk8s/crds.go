// Package educatesk8s keeps a portal's definitions and status as Educates'
// custom resources on Kubernetes: it reads the TrainingPortal and Workshop
// resources the portal serves (Source), and publishes what Educates' own
// tooling reads — the TrainingPortal's status, and a WorkshopEnvironment and
// a WorkshopSession resource per environment and session (Publisher) — so
// that the educates CLI and the lookup service find a Portico portal as
// they find an Educates one.
package educatesk8s

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// Group and Version are those of Educates' resources.
const (
	Group   = "training.educates.dev"
	Version = "v1beta1"
)

// The resources Portico reads and writes; all are cluster-scoped, as
// Educates defines them.
var (
	TrainingPortals      = schema.GroupVersionResource{Group: Group, Version: Version, Resource: "trainingportals"}
	Workshops            = schema.GroupVersionResource{Group: Group, Version: Version, Resource: "workshops"}
	WorkshopEnvironments = schema.GroupVersionResource{Group: Group, Version: Version, Resource: "workshopenvironments"}
	WorkshopSessions     = schema.GroupVersionResource{Group: Group, Version: Version, Resource: "workshopsessions"}
)

var crds = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// FieldManager names Portico in the managed fields of what it writes.
const FieldManager = "portico"

// kind is one of the custom resources, as Portico defines it when it
// installs it.
type kind struct {
	kind, plural, singular string
	columns                []column
}

type column struct{ name, path string }

var kinds = []kind{
	{kind: "TrainingPortal", plural: "trainingportals", singular: "trainingportal",
		columns: []column{{"URL", ".status.educates.url"}, {"Phase", ".status.educates.phase"}, {"Message", ".status.educates.message"}}},
	{kind: "Workshop", plural: "workshops", singular: "workshop",
		columns: []column{{"Title", ".spec.title"}}},
	{kind: "WorkshopEnvironment", plural: "workshopenvironments", singular: "workshopenvironment",
		columns: []column{{"Workshop", ".spec.workshop.name"}, {"Phase", ".status.educates.phase"}}},
	{kind: "WorkshopSession", plural: "workshopsessions", singular: "workshopsession",
		columns: []column{{"Environment", ".spec.environment.name"}, {"User", ".status.educates.user"}, {"Phase", ".status.educates.phase"}}},
}

func (k kind) crdName() string { return k.plural + "." + Group }

// definition is the CustomResourceDefinition Portico installs for k. Its
// schema keeps every field: the definitions are checked by Portico's own
// loader, whose errors name the field and go to the resource's status.
func (k kind) definition() *unstructured.Unstructured {
	open := map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}
	var columns []any
	for _, c := range k.columns {
		columns = append(columns, map[string]any{"name": c.name, "type": "string", "jsonPath": c.path})
	}
	columns = append(columns, map[string]any{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata": map[string]any{
			"name":   k.crdName(),
			"labels": map[string]any{"app.kubernetes.io/managed-by": "portico"},
		},
		"spec": map[string]any{
			"group": Group,
			"scope": "Cluster",
			"names": map[string]any{"kind": k.kind, "listKind": k.kind + "List", "plural": k.plural, "singular": k.singular},
			"versions": []any{map[string]any{
				"name": Version, "served": true, "storage": true,
				"subresources":             map[string]any{"status": map[string]any{}},
				"additionalPrinterColumns": columns,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type": "object",
					"properties": map[string]any{
						"spec":   open,
						"status": open,
					},
				}},
			}},
		},
	}}
}

// EnsureCRDs makes sure the cluster serves the four resources at
// training.educates.dev/v1beta1. Missing ones are created when install
// is set and the account may create them; otherwise the error names each
// missing definition and what to do.
func EnsureCRDs(ctx context.Context, client dynamic.Interface, install bool) error {
	api := client.Resource(crds)
	var missing, created []string
	for _, k := range kinds {
		got, err := api.Get(ctx, k.crdName(), metav1.GetOptions{})
		switch {
		case err == nil:
			if !servesVersion(got) {
				return fmt.Errorf("CustomResourceDefinition %s does not serve version %s", k.crdName(), Version)
			}
			continue
		case apierrors.IsForbidden(err):
			return fmt.Errorf("cannot read CustomResourceDefinition %s: the portal's account needs get on customresourcedefinitions: %w", k.crdName(), err)
		case !apierrors.IsNotFound(err):
			return fmt.Errorf("CustomResourceDefinition %s: %w", k.crdName(), err)
		}
		if !install {
			missing = append(missing, k.crdName())
			continue
		}
		_, err = api.Create(ctx, k.definition(), metav1.CreateOptions{FieldManager: FieldManager})
		switch {
		case err == nil, apierrors.IsAlreadyExists(err): // another replica was first
			created = append(created, k.crdName())
		case apierrors.IsForbidden(err):
			missing = append(missing, k.crdName())
		default:
			return fmt.Errorf("create CustomResourceDefinition %s: %w", k.crdName(), err)
		}
	}
	if len(missing) > 0 {
		how := "run portico with --install-crds, or apply them as Educates installs them"
		if install {
			how = "the portal's account may not create customresourcedefinitions: apply them as Educates installs them, or grant create on customresourcedefinitions"
		}
		return fmt.Errorf("missing CustomResourceDefinitions %s: %s", strings.Join(missing, ", "), how)
	}
	for _, name := range created {
		if err := awaitEstablished(ctx, client, name); err != nil {
			return err
		}
	}
	return nil
}

func servesVersion(crd *unstructured.Unstructured) bool {
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	return slices.ContainsFunc(versions, func(v any) bool {
		m, _ := v.(map[string]any)
		return m["name"] == Version && m["served"] == true
	})
}

// awaitEstablished waits until the API server serves a definition it was
// just given: a watch started earlier would fail.
func awaitEstablished(ctx context.Context, client dynamic.Interface, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		got, err := client.Resource(crds).Get(ctx, name, metav1.GetOptions{})
		if err == nil && established(got) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CustomResourceDefinition %s not established: %w", name, errors.Join(ctx.Err(), err))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	return slices.ContainsFunc(conds, func(c any) bool {
		m, _ := c.(map[string]any)
		return m["type"] == "Established" && m["status"] == "True"
	})
}
