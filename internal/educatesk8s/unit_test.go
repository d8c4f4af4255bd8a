package educatesk8s

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portico-dev/portico/internal/store"
)

// A resource from the cluster reaches the loader as its author wrote it:
// what the cluster adds (uid, managed fields, the last applied
// configuration, the status) would be warned about as unused fields.
func TestDocumentKeepsWhatTheAuthorWrote(t *testing.T) {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": Group + "/" + Version, "kind": "Workshop",
		"metadata": map[string]any{
			"name": "lab", "uid": "1234", "generation": int64(2), "resourceVersion": "77",
			"managedFields": []any{map[string]any{"manager": "kubectl"}},
			"labels":        map[string]any{"team": "a"},
			"annotations": map[string]any{"kubectl.kubernetes.io/last-applied-configuration": "{}",
				"note": "kept"},
		},
		"spec":   map[string]any{"title": "Lab"},
		"status": map[string]any{"educates": map[string]any{"phase": "Running"}},
	}}
	d := document(u)
	if d.Name != "Workshop/lab" {
		t.Errorf("name %q", d.Name)
	}
	var got map[string]any
	if err := json.Unmarshal(d.Data, &got); err != nil {
		t.Fatal(err)
	}
	want := `{"apiVersion":"training.educates.dev/v1beta1","kind":"Workshop","metadata":{"annotations":{"note":"kept"},` +
		`"generation":2,"labels":{"team":"a"},"name":"lab"},"spec":{"title":"Lab"}}`
	if again, _ := json.Marshal(got); string(again) != want {
		t.Errorf("document\n%s\nwant\n%s", again, want)
	}
}

func TestSessionPhase(t *testing.T) {
	for _, c := range []struct {
		s    store.Session
		want string
	}{
		{store.Session{State: store.Starting}, "Starting"},
		{store.Session{State: store.Waiting}, "Available"},
		{store.Session{State: store.Starting, Owner: 1}, "Allocated"},
		{store.Session{State: store.Running, Owner: 1}, "Allocated"},
		{store.Session{State: store.Stopping, Owner: 1}, "Stopping"},
	} {
		if got := sessionPhase(c.s); got != c.want {
			t.Errorf("%s owned by %d: %s, want %s", c.s.State, c.s.Owner, got, c.want)
		}
	}
}

// A long error is cut for the status without splitting a character.
func TestTruncate(t *testing.T) {
	s := strings.Repeat("é", maxMessage)
	got := truncate(s, maxMessage)
	if !utf8.ValidString(got) || len(got) > maxMessage+len("…") {
		t.Errorf("truncated to %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
	}
	if truncate("short", maxMessage) != "short" {
		t.Error("a short message changed")
	}
}
