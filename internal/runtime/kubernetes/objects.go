package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// variablePattern is an Educates data variable: $(name).
var variablePattern = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)`)

// substitute replaces the data variables of vars in every string of v,
// keys included. Unknown variables are left as written, as Educates does.
// Values are replaced in strings of the decoded tree, never in the YAML
// text, so a request parameter cannot add fields to an object.
func substitute(v any, vars map[string]string) any {
	switch v := v.(type) {
	case string:
		return variablePattern.ReplaceAllStringFunc(v, func(m string) string {
			if val, ok := vars[m[2:len(m)-1]]; ok {
				return val
			}
			return m
		})
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[substitute(k, vars).(string)] = substitute(e, vars)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = substitute(e, vars)
		}
		return out
	}
	return v
}

// objectsOf turns decoded YAML objects into unstructured ones with the
// variables substituted, each in namespace ns: the only namespace whose
// deletion removes them with the session or environment they belong to.
// path names the list in errors (spec.session.objects).
func objectsOf(list []map[string]any, vars map[string]string, ns, path string) ([]*unstructured.Unstructured, error) {
	out := make([]*unstructured.Unstructured, 0, len(list))
	for i, o := range list {
		at := fmt.Sprintf("%s[%d]", path, i)
		// A JSON round trip gives the value types unstructured expects
		// (int64, float64) whatever decoded the YAML.
		b, err := json.Marshal(substitute(o, vars))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(b); err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		switch got := u.GetNamespace(); got {
		case "", ns:
			u.SetNamespace(ns)
		default:
			return nil, fmt.Errorf("%s: %s %s: namespace %q: objects may only go in %q, whose deletion removes them",
				at, u.GetKind(), u.GetName(), got, ns)
		}
		out = append(out, u)
	}
	return out, nil
}

// apply creates or updates objects by server-side apply, so that applying
// them again (a retried allocation, an adopted start) changes nothing. A
// kind the cluster does not know, or a cluster-scoped one, fails with the
// object named.
func (r *Runtime) apply(ctx context.Context, objs []*unstructured.Unstructured, path string, labels map[string]string) error {
	for i, u := range objs {
		at := fmt.Sprintf("%s[%d] (%s %s)", path, i, u.GetKind(), u.GetName())
		mapping, err := r.mapping(ctx, u, at)
		if err != nil {
			return err
		}
		merged := u.GetLabels()
		if merged == nil {
			merged = map[string]string{}
		}
		for k, v := range labels {
			merged[k] = v
		}
		u.SetLabels(merged)
		_, err = r.dynamic.Resource(mapping.Resource).Namespace(u.GetNamespace()).
			Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: fieldManager, Force: true})
		if err != nil {
			return fmt.Errorf("%s: %w", at, err)
		}
	}
	return nil
}

// check fails as apply would for a kind the cluster does not know or a
// cluster-scoped one, without applying anything.
func (r *Runtime) check(ctx context.Context, objs []*unstructured.Unstructured, path string) error {
	for i, u := range objs {
		if _, err := r.mapping(ctx, u, fmt.Sprintf("%s[%d] (%s %s)", path, i, u.GetKind(), u.GetName())); err != nil {
			return err
		}
	}
	return nil
}

// mapping is how the cluster serves objects of u's kind; at names u in
// errors.
func (r *Runtime) mapping(ctx context.Context, u *unstructured.Unstructured, at string) (*meta.RESTMapping, error) {
	gvk := u.GroupVersionKind()
	mapping, err := r.mapper.RESTMappingWithContext(ctx, gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		return nil, fmt.Errorf("%s: kind %s is not known to the cluster", at, gvk.GroupVersion().WithKind(gvk.Kind))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", at, err)
	}
	if mapping.Scope.Name() != meta.RESTScopeNameNamespace {
		return nil, fmt.Errorf("%s: cluster-scoped objects are not supported: only namespaced ones are removed with their namespace", at)
	}
	return mapping, nil
}
