package config

import (
	"strings"
	"testing"
)

// Resources read from a cluster arrive as JSON, one object per document.
func TestParseDocumentsAsJSON(t *testing.T) {
	portal := Document{Name: "TrainingPortal/test", Data: []byte(`{"apiVersion": "training.educates.dev/v1beta1",
		"kind": "TrainingPortal", "metadata": {"name": "test", "generation": 3},
		"spec": {"portal": {"sessions": {"maximum": 4}}, "workshops": [{"name": "lab-a", "capacity": 2}]}}`)}
	workshop := Document{Name: "Workshop/lab-a", Data: []byte(`{"apiVersion": "training.educates.dev/v1beta1",
		"kind": "Workshop", "metadata": {"name": "lab-a"}, "spec": {"title": "A"}}`)}
	defs, err := Parse("the cluster", portal, workshop)
	if err != nil {
		t.Fatal(err)
	}
	if defs.Portal.Name != "test" || defs.Portal.Generation != 3 || defs.Portal.Sessions.Maximum != 4 {
		t.Errorf("portal %+v", defs.Portal)
	}
	if w := defs.Workshops["lab-a"]; w == nil || w.Title != "A" {
		t.Errorf("workshops %+v", defs.Workshops)
	}
}

// Errors name the document as Load's name the file, and the source for
// what is missing from the whole set.
func TestParseErrorsNameTheDocument(t *testing.T) {
	portal := Document{Name: "TrainingPortal/test", Data: []byte(`{"apiVersion": "training.educates.dev/v1beta1",
		"kind": "TrainingPortal", "metadata": {"name": "test"},
		"spec": {"workshops": [{"name": "lab-a", "capacity": "many"}, {"name": "lab-b"}]}}`)}
	workshop := Document{Name: "Workshop/lab-a", Data: []byte(`{"apiVersion": "training.educates.dev/v1beta1",
		"kind": "Workshop", "metadata": {"name": "lab-a"}, "spec": {"title": "A"}}`)}
	_, err := Parse("the cluster", portal, workshop)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"TrainingPortal/test:", "spec.workshops[0].capacity", `no Workshop named "lab-b" in the cluster`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "only this file was read") {
		t.Errorf("error %q hints at files", err)
	}
}
