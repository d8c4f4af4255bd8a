package educatesk8s

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/portaltest"
	"github.com/portico-dev/portico/internal/runtime/noop"
)

// object is the resource a YAML document holds, as kubectl sends it.
func object(t *testing.T, doc string) *unstructured.Unstructured {
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

func portalResource(name, capacity string) string {
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
      capacity: %s
      reserved: 1
      expires: 30m
`, name, portaltest.AdminUser, portaltest.AdminPassword, portaltest.RobotUser, portaltest.RobotPassword,
		portaltest.ClientID, portaltest.ClientSecret, capacity)
}

func workshopResource(title string) string {
	return `apiVersion: training.educates.dev/v1beta1
kind: Workshop
metadata:
  name: lab-crd
spec:
  title: ` + title + `
  description: A workshop kept in the cluster
`
}

// cliLogin logs in as the educates CLI does: the portal's URL, robot
// client and robot credentials from the TrainingPortal's status, then a
// password grant at /oauth2/token/. It returns the URL and a token.
func cliLogin(t *testing.T, portal string) (string, string) {
	t.Helper()
	tp, err := client.Resource(TrainingPortals).Get(context.Background(), portal, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	base := str(tp, "status", "educates", "url")
	id, secret := str(tp, "status", "educates", "clients", "robot", "id"), str(tp, "status", "educates", "clients", "robot", "secret")
	user, password := str(tp, "status", "educates", "credentials", "robot", "username"), str(tp, "status", "educates", "credentials", "robot", "password")
	if base == "" || user == "" || password == "" {
		t.Fatalf("status.educates lacks what the CLI reads: %v", tp.Object["status"])
	}
	form := url.Values{"grant_type": {"password"}, "username": {user}, "password": {password}}
	req, _ := http.NewRequest("POST", base+"/oauth2/token/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(id+":"+secret)))
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if code := do(t, req, &tok); code != http.StatusOK || tok.AccessToken == "" {
		t.Fatalf("token: %d", code)
	}
	return base, tok.AccessToken
}

func do(t *testing.T, req *http.Request, out any) int {
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

type catalog struct {
	Environments []struct {
		Name     string
		State    string
		Workshop struct{ Name, Title string }
	}
}

func get(t *testing.T, base, token, path string, out any) int {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	return do(t, req, out)
}

// runningEnvironment is the RUNNING environment of workshop lab-crd whose
// title is title, as the CLI picks it from the catalog.
func runningEnvironment(t *testing.T, base, token, title string) string {
	t.Helper()
	var cat catalog
	get(t, base, token, "/workshops/catalog/environments/", &cat)
	for _, e := range cat.Environments {
		if e.Workshop.Name == "lab-crd" && e.State == "RUNNING" && e.Workshop.Title == title {
			return e.Name
		}
	}
	return ""
}

// A TrainingPortal and a Workshop applied to the cluster become a running
// portal whose status carries what Educates' CLI reads; a session through
// the CLI's path appears as a WorkshopSession and goes when it ends; an
// edit of the Workshop reaches the portal; an invalid edit is refused with
// its reason in the status and the running definitions kept.
func TestPortalFromResources(t *testing.T) {
	requireCRDs(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := testLog(t)
	tps, wss := client.Resource(TrainingPortals), client.Resource(Workshops)
	const name = "crd-portal"
	create := metav1.CreateOptions{FieldManager: "kubectl"}
	if _, err := wss.Create(ctx, object(t, workshopResource("First title")), create); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wss.Delete(context.Background(), "lab-crd", metav1.DeleteOptions{}) })
	if _, err := tps.Create(ctx, object(t, portalResource(name, "3")), create); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tps.Delete(context.Background(), name, metav1.DeleteOptions{}) })

	src := NewSource(client, name, log)
	src.Start(ctx)
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defs, portal, err := src.Wait(wctx)
	wcancel()
	if err != nil {
		t.Fatal(err)
	}
	if defs.Portal.Name != name || defs.Workshops["lab-crd"] == nil || portal.UID == "" {
		t.Fatalf("definitions %+v of %+v", defs.Portal, portal)
	}
	pub := NewPublisher(PublisherOptions{Client: client, Portal: portal, Log: log})
	p := portaltest.Start(t, defs, portaltest.Options{Runtime: noop.New(), Events: pub})
	go pub.Run(ctx, Served{Reader: p.Broker, URL: p.Server.URL, Credentials: Credentials{
		AdminUsername: defs.Portal.Admin.Username, AdminPassword: defs.Portal.Admin.Password,
		RobotUsername: defs.Portal.Robot.Username, RobotPassword: defs.Portal.Robot.Password,
		ClientID: defs.Portal.RobotClient.ID, ClientSecret: defs.Portal.RobotClient.Secret,
	}})
	go src.Run(ctx, p.Broker.Apply)

	waitFor(t, 30*time.Second, func() string {
		tp, err := tps.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		if str(tp, "status", "educates", "phase") != "Running" || str(tp, "status", "educates", "url") != p.Server.URL {
			return fmt.Sprintf("status %v", tp.Object["status"])
		}
		return ""
	})
	base, token := cliLogin(t, name)
	env := runningEnvironment(t, base, token, "First title")
	if env == "" {
		t.Fatal("no running environment of lab-crd in the catalog")
	}
	waitFor(t, 30*time.Second, func() string {
		we, err := client.Resource(WorkshopEnvironments).Get(ctx, env, metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		if we.GetLabels()[LabelPortal] != name || str(we, "spec", "workshop", "name") != "lab-crd" ||
			str(we, "status", "educates", "phase") != "Running" ||
			str(we, "status", "educates", "workshop", "spec", "title") != "First title" {
			return fmt.Sprintf("environment %v %v %v", we.GetLabels(), we.Object["spec"], we.Object["status"])
		}
		if refs := we.GetOwnerReferences(); len(refs) != 1 || refs[0].UID != portal.UID {
			return fmt.Sprintf("owners %v", refs)
		}
		return ""
	})

	// The reserve: a WorkshopSession for nobody yet.
	waitFor(t, 30*time.Second, func() string {
		list, err := client.Resource(WorkshopSessions).List(ctx, metav1.ListOptions{LabelSelector: LabelEnvironment + "=" + env})
		if err != nil {
			return err.Error()
		}
		for _, s := range list.Items {
			if str(&s, "status", "educates", "phase") == "Available" {
				if user, found, _ := unstructured.NestedFieldNoCopy(s.Object, "status", "educates", "user"); found && user != nil {
					return fmt.Sprintf("reserved session %s has user %v", s.GetName(), user)
				}
				return ""
			}
		}
		return fmt.Sprintf("no Available WorkshopSession among %d", len(list.Items))
	})

	// The CLI's request: POST /workshops/environment/<env>/request/.
	req, _ := http.NewRequest("POST", base+"/workshops/environment/"+env+"/request/?index_url=https://hub.test/&user=alice",
		strings.NewReader(`{"parameters": []}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	var alloc struct{ Name, User, URL string }
	if code := do(t, req, &alloc); code != http.StatusOK || alloc.Name == "" {
		t.Fatalf("request: %d %+v", code, alloc)
	}
	p.Settle()
	waitFor(t, 30*time.Second, func() string {
		ws, err := client.Resource(WorkshopSessions).Get(ctx, alloc.Name, metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		l := ws.GetLabels()
		if l[LabelPortal] != name || l[LabelEnvironment] != env || str(ws, "spec", "workshop", "name") != "lab-crd" ||
			str(ws, "status", "educates", "user") != "alice" || str(ws, "status", "educates", "phase") != "Allocated" {
			return fmt.Sprintf("session %v %v %v", l, ws.Object["spec"], ws.Object["status"])
		}
		return ""
	})

	if code := get(t, base, token, "/workshops/session/"+alloc.Name+"/terminate/", nil); code != http.StatusOK {
		t.Fatalf("terminate: %d", code)
	}
	p.Settle()
	waitFor(t, 30*time.Second, func() string {
		if _, err := client.Resource(WorkshopSessions).Get(ctx, alloc.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Sprintf("session %s still there (%v)", alloc.Name, err)
		}
		return ""
	})

	// A WorkshopSession of a session that ended on another replica (which
	// wrote it): the next pass here deletes it, not only the periodic one.
	stray := object(t, fmt.Sprintf(`apiVersion: training.educates.dev/v1beta1
kind: WorkshopSession
metadata:
  name: %s-s999
  labels: {%s: %s, %s: %s}
spec: {}
`, env, LabelPortal, name, LabelEnvironment, env))
	if _, err := client.Resource(WorkshopSessions).Create(ctx, stray, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pub.Emit(broker.Event{Name: "Session/Deleted", Session: stray.GetName()})
	waitFor(t, 30*time.Second, func() string {
		if _, err := client.Resource(WorkshopSessions).Get(ctx, stray.GetName(), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Sprintf("stray session %s still there (%v)", stray.GetName(), err)
		}
		return ""
	})

	// An edit of the Workshop in the cluster reaches the portal.
	ws, err := wss.Get(ctx, "lab-crd", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	unstructured.SetNestedField(ws.Object, "Second title", "spec", "title")
	if _, err := wss.Update(ctx, ws, metav1.UpdateOptions{FieldManager: "kubectl"}); err != nil {
		t.Fatal(err)
	}
	var edited string
	waitFor(t, 30*time.Second, func() string {
		p.Settle()
		if edited = runningEnvironment(t, base, token, "Second title"); edited == "" {
			return "the edited workshop is not in the catalog"
		}
		return ""
	})

	// An invalid edit: refused, its reason in the status, the running
	// definitions kept.
	tp, err := tps.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bad := object(t, portalResource(name, "many"))
	bad.SetResourceVersion(tp.GetResourceVersion())
	if _, err := tps.Update(ctx, bad, metav1.UpdateOptions{FieldManager: "kubectl"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() string {
		tp, err := tps.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		if msg := str(tp, "status", "educates", "message"); !strings.Contains(msg, "spec.workshops[0].capacity") {
			return fmt.Sprintf("message %q", msg)
		}
		if phase := str(tp, "status", "educates", "phase"); phase != "Running" {
			return "phase " + phase
		}
		return ""
	})
	if got := runningEnvironment(t, base, token, "Second title"); got != edited {
		t.Errorf("after an invalid edit the catalog has %q, want %q still", got, edited)
	}

	// Fixed: the message goes.
	tp, err = tps.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	good := object(t, portalResource(name, "3"))
	good.SetResourceVersion(tp.GetResourceVersion())
	if _, err := tps.Update(ctx, good, metav1.UpdateOptions{FieldManager: "kubectl"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() string {
		tp, err := tps.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		if msg, found, _ := unstructured.NestedFieldNoCopy(tp.Object, "status", "educates", "message"); found && msg != nil {
			return fmt.Sprintf("message %q after the fix", msg)
		}
		return ""
	})
}
