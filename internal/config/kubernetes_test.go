package config

import (
	"reflect"
	"strings"
	"testing"
)

// kubeWorkshop is the portal of portalDoc with a Workshop lab-k whose spec
// is the given YAML.
func kubeWorkshop(spec string) string {
	return portalDoc("workshops:\n- name: lab-k\n") +
		"---\napiVersion: training.educates.dev/v1beta1\nkind: Workshop\nmetadata:\n  name: lab-k\nspec:\n" +
		indent(strings.TrimPrefix(spec, "\n"), "  ")
}

func TestKubernetesFields(t *testing.T) {
	defs, err := loadString(t, kubeWorkshop(`
workshop:
  image: ghcr.io/example/lab:1.0
session:
  namespaces:
    budget: medium
  objects:
  - apiVersion: v1
    kind: ConfigMap
    metadata:
      name: settings
    data:
      owner: $(session_name)
request:
  objects:
  - apiVersion: v1
    kind: Secret
    metadata:
      name: greeting
    stringData:
      text: $(GREETING)
environment:
  objects:
  - apiVersion: v1
    kind: ConfigMap
    metadata:
      name: shared
      namespace: $(workshop_namespace)
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(defs.Warnings) != 0 {
		t.Errorf("warnings: %q", defs.Warnings)
	}
	w := defs.Workshops["lab-k"]
	if w.Image != "ghcr.io/example/lab:1.0" || w.Budget != "medium" {
		t.Errorf("image %q, budget %q", w.Image, w.Budget)
	}
	wantSession := []map[string]any{{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "settings"},
		"data":     map[string]any{"owner": "$(session_name)"},
	}}
	if !reflect.DeepEqual(w.SessionObjects, wantSession) {
		t.Errorf("session objects = %#v", w.SessionObjects)
	}
	if len(w.RequestObjects) != 1 || w.RequestObjects[0]["kind"] != "Secret" {
		t.Errorf("request objects = %#v", w.RequestObjects)
	}
	if len(w.EnvironmentObjects) != 1 || w.EnvironmentObjects[0]["kind"] != "ConfigMap" {
		t.Errorf("environment objects = %#v", w.EnvironmentObjects)
	}
}

func TestKubernetesFieldErrors(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{"session:\n  namespaces:\n    budget: huge\n", `spec.session.namespaces.budget: "huge" is not one of small, medium`},
		{"session:\n  objects:\n  - kind: ConfigMap\n    metadata: {name: x}\n", "spec.session.objects[0].apiVersion: required: a string"},
		{"request:\n  objects:\n  - apiVersion: v1\n    metadata: {name: x}\n", "spec.request.objects[0].kind: required: a string"},
		{"environment:\n  objects:\n  - apiVersion: v1\n    kind: ConfigMap\n", "spec.environment.objects[0].metadata.name: required: a string"},
		{"session:\n  objects: [3]\n", "spec.session.objects[0]: expected a mapping"},
		{"workshop:\n  image: [a]\n", "spec.workshop.image: expected a string"},
	} {
		_, err := loadString(t, kubeWorkshop(tc.spec))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.spec, err, tc.want)
		}
	}
}
