package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

var (
	trainingPortals  = schema.GroupVersionResource{Group: "training.educates.dev", Version: "v1beta1", Resource: "trainingportals"}
	workshops        = schema.GroupVersionResource{Group: "training.educates.dev", Version: "v1beta1", Resource: "workshops"}
	workshopSessions = schema.GroupVersionResource{Group: "training.educates.dev", Version: "v1beta1", Resource: "workshopsessions"}
)

// resourceOf is the object of a YAML document, as kubectl sends it.
func resourceOf(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	var v map[string]any
	if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(data); err != nil {
		t.Fatal(err)
	}
	return u
}

func nested(u *unstructured.Unstructured, path ...string) string {
	s, _, _ := unstructured.NestedString(u.Object, path...)
	return s
}

// The acceptance of issue 18, item 1: portico on the test cluster serves
// a TrainingPortal applied with kubectl's calls, publishes in its status
// what Educates' CLI reads (the CLI's discovery path: read the status, log
// in, request a session works with it), keeps a WorkshopSession for the
// session, and takes a Workshop edited in the cluster without a restart.
func TestKubernetesDefinitions(t *testing.T) {
	c := requireKube(t)
	ctx := context.Background()
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, c.Kubeconfig(), 0o600); err != nil {
		t.Fatal(err)
	}
	const name = "crd-e2e"
	dir := t.TempDir()
	p := &portal{
		t:       t,
		dataDir: filepath.Join(dir, "data"),
		logPath: filepath.Join(dir, "portal.log"),
		addr:    freeAddr(t),
		args: []string{"--definitions", "kubernetes", "--portal-name", name,
			"--runtime", "kubernetes", "--kubeconfig", kubeconfig,
			"--session-image", "registry.example/portico-session:test", "--ingress-domain", "training.example",
			"--session-domain", kubeSessionDomain},
		sessionDomain: kubeSessionDomain,
	}
	p.url = "http://" + p.addr
	t.Cleanup(p.cleanup)
	// Started before the resources exist: it installs their definitions
	// and waits for its TrainingPortal.
	p.start()
	if msg := eventually(settle, func() string {
		if _, err := dyn.Resource(trainingPortals).List(ctx, metav1.ListOptions{}); err != nil {
			return "TrainingPortals not served: " + err.Error()
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}

	create := metav1.CreateOptions{FieldManager: "kubectl-client-side-apply"}
	ws := resourceOf(t, crdWorkshop("Before the edit"))
	if _, err := dyn.Resource(workshops).Create(ctx, ws, create); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dyn.Resource(workshops).Delete(ctx, "lab-crd", metav1.DeleteOptions{}) })
	if _, err := dyn.Resource(trainingPortals).Create(ctx, resourceOf(t, crdPortal(name)), create); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dyn.Resource(trainingPortals).Delete(ctx, name, metav1.DeleteOptions{}) })
	p.waitReady()

	// What the CLI reads, as it reads it.
	var tp *unstructured.Unstructured
	if msg := eventually(settle, func() string {
		tp, err = dyn.Resource(trainingPortals).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		if nested(tp, "status", "educates", "phase") != "Running" || nested(tp, "status", "educates", "url") != p.url {
			return fmt.Sprintf("status %v", tp.Object["status"])
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
	for path, want := range map[string]string{
		"credentials.admin.username": adminUser, "credentials.admin.password": adminPass,
		"credentials.robot.username": robotUser, "credentials.robot.password": robotPass,
		"clients.robot.id": clientID, "clients.robot.secret": clientSecret,
	} {
		if got := nested(tp, append([]string{"status", "educates"}, strings.Split(path, ".")...)...); got != want {
			t.Errorf("status.educates.%s = %q, want %q", path, got, want)
		}
	}
	base := nested(tp, "status", "educates", "url")
	form := url.Values{"grant_type": {"password"},
		"username": {nested(tp, "status", "educates", "credentials", "robot", "username")},
		"password": {nested(tp, "status", "educates", "credentials", "robot", "password")}}
	req, _ := http.NewRequest("POST", base+"/oauth2/token/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(
		nested(tp, "status", "educates", "clients", "robot", "id")+":"+nested(tp, "status", "educates", "clients", "robot", "secret"))))
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if code := send(t, req, &tok); code != http.StatusOK || tok.AccessToken == "" {
		t.Fatalf("password grant with the status' credentials: %d", code)
	}
	env := ""
	if msg := eventually(settle, func() string {
		env = crdEnvironment(t, base, tok.AccessToken, "Before the edit")
		if env == "" {
			return "no RUNNING environment of lab-crd in the catalog"
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
	req, _ = http.NewRequest("POST", base+"/workshops/environment/"+env+"/request/?index_url="+url.QueryEscape(base+"/accounts/logout/")+"&timeout=60&user=alice",
		strings.NewReader(`{"parameters": []}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	var a allocation
	if code := send(t, req, &a); code != http.StatusOK || a.Name == "" {
		t.Fatalf("request as the CLI sends it: %d %+v", code, a)
	}
	if msg := eventually(settle, func() string {
		s, err := dyn.Resource(workshopSessions).Get(ctx, a.Name, metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		if nested(s, "status", "educates", "user") != "alice" || s.GetLabels()["training.educates.dev/portal.name"] != name ||
			s.GetLabels()["training.educates.dev/environment.name"] != env {
			return fmt.Sprintf("WorkshopSession %v %v", s.GetLabels(), s.Object["status"])
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}

	// The Workshop edited in the cluster: the portal takes it, no restart.
	ws, err = dyn.Resource(workshops).Get(ctx, "lab-crd", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	unstructured.SetNestedField(ws.Object, "After the edit", "spec", "title")
	if _, err := dyn.Resource(workshops).Update(ctx, ws, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	if msg := eventually(settle, func() string {
		if crdEnvironment(t, base, tok.AccessToken, "After the edit") == "" {
			return "the edited workshop is not in the catalog"
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
	if p.starts != 1 {
		t.Errorf("portal started %d times", p.starts)
	}

	// The session ends: its WorkshopSession goes.
	req, _ = http.NewRequest("GET", base+"/workshops/session/"+a.Name+"/terminate/", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	if code := send(t, req, nil); code != http.StatusOK {
		t.Fatalf("terminate: %d", code)
	}
	if msg := eventually(settle, func() string {
		if _, err := dyn.Resource(workshopSessions).Get(ctx, a.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Sprintf("WorkshopSession %s still there (%v)", a.Name, err)
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
}

func crdPortal(name string) string {
	return fmt.Sprintf(`apiVersion: training.educates.dev/v1beta1
kind: TrainingPortal
metadata:
  name: %s
spec:
  portal:
    updates:
      workshop: true
    credentials:
      admin: {username: %s, password: %s}
      robot: {username: %s, password: %s}
    clients:
      robot: {id: %s, secret: %s}
  workshops:
    - name: lab-crd
      capacity: 2
      reserved: 1
      expires: 30m
`, name, adminUser, adminPass, robotUser, robotPass, clientID, clientSecret)
}

func crdWorkshop(title string) string {
	return `apiVersion: training.educates.dev/v1beta1
kind: Workshop
metadata:
  name: lab-crd
spec:
  title: ` + title + `
  workshop:
    image: registry.example/lab-crd:1
`
}

func send(t *testing.T, req *http.Request, out any) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s: %v: %s", req.URL, err, raw)
		}
	}
	return resp.StatusCode
}

// crdEnvironment is the RUNNING environment of lab-crd titled title, as
// the CLI picks one from the catalog.
func crdEnvironment(t *testing.T, base, token, title string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/workshops/catalog/environments/", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	var cat struct {
		Environments []struct {
			Name, State string
			Workshop    struct{ Name, Title string }
		}
	}
	send(t, req, &cat)
	for _, e := range cat.Environments {
		if e.Workshop.Name == "lab-crd" && e.State == "RUNNING" && e.Workshop.Title == title {
			return e.Name
		}
	}
	return ""
}
