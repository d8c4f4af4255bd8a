package config

import (
	"strings"
	"testing"

	"github.com/portico-dev/portico/internal/runtime"
)

func workshopWithSession(session string) string {
	return portalDoc("workshops:\n- name: lab-x\n") + `---
apiVersion: training.educates.dev/v1beta1
kind: Workshop
metadata:
  name: lab-x
spec:
  title: X
  session:
` + indent(session, "    ") + "\n"
}

func TestApplicationsDashboardsIngresses(t *testing.T) {
	defs, err := loadString(t, workshopWithSession(`
applications:
  terminal: {enabled: true, layout: split/2}
  editor: {enabled: true}
  examiner: {enabled: true}
  files: {enabled: true, directory: exercises}
  uploads: {enabled: true}
  slides: {reveal.js: {version: 4.X}}
  docker: {enabled: true}
  vcluster: {enabled: true}
dashboards:
- name: Example
  url: $(ingress_protocol)://application-$(session_name).$(ingress_domain)/
- name: Extra
  url: terminal:extra
ingresses:
- name: application
  port: 8080
  headers:
  - name: X-Session
    value: $(session_name)
- name: open
  protocol: https
  host: localhost
  authentication: {type: none}
`))
	if err != nil {
		t.Fatal(err)
	}
	w := defs.Workshops["lab-x"]
	a := w.Applications
	if !a.Editor.On(false) || !a.Examiner.On(false) || a.Terminal.Layout != "split/2" || !a.Terminal.On(true) ||
		a.Files.Directory != "exercises" || !a.Uploads.On(false) || a.Slides.Enabled != nil || !a.Slides.On(true) {
		t.Errorf("applications: %+v", a)
	}
	if len(w.Dashboards) != 2 || w.Dashboards[1] != (runtime.Dashboard{Name: "Extra", URL: "terminal:extra"}) {
		t.Errorf("dashboards: %+v", w.Dashboards)
	}
	if len(w.Ingresses) != 2 || w.Ingresses[0].Port != 8080 || w.Ingresses[0].Protocol != "http" ||
		w.Ingresses[0].Authentication != "session" || w.Ingresses[0].Headers[0].Value != "$(session_name)" ||
		w.Ingresses[1].Authentication != "none" || w.Ingresses[1].Protocol != "https" {
		t.Errorf("ingresses: %+v", w.Ingresses)
	}
	// What Portico cannot run locally is named, once, in one warning.
	want := "fields not used by Portico: spec.session.applications.docker, spec.session.applications.vcluster"
	if len(defs.Warnings) != 1 || !strings.HasSuffix(defs.Warnings[0], want) {
		t.Errorf("warnings: %q, want one ending %q", defs.Warnings, want)
	}
}

func TestApplicationsRefused(t *testing.T) {
	for _, tc := range []struct{ session, want string }{
		{"applications: {terminal: {layout: sideways}}", "spec.session.applications.terminal.layout"},
		{"applications: {files: {directory: /etc}}", "spec.session.applications.files.directory"},
		{"applications: {uploads: {directory: ../out}}", "spec.session.applications.uploads.directory"},
		{"dashboards: [{name: A}]", "spec.session.dashboards[0].url"},
		{"dashboards: [{name: A, url: /a}, {name: a, url: /b}]", "spec.session.dashboards[1].name"},
		{"ingresses: [{name: App, port: 80}]", "spec.session.ingresses[0].name"},
		{"ingresses: [{name: editor, port: 80}]", "spec.session.ingresses[0].name"},
		{"ingresses: [{name: a, port: 70000}]", "spec.session.ingresses[0].port"},
		{"ingresses: [{name: a, protocol: ftp}]", "spec.session.ingresses[0].protocol"},
		{"ingresses: [{name: a, authentication: {type: basic}}]", "spec.session.ingresses[0].authentication.type"},
		{"ingresses: [{name: a, path: x}]", "spec.session.ingresses[0].path"},
	} {
		_, err := loadString(t, workshopWithSession(tc.session))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s", tc.session, err, tc.want)
		}
	}
}
