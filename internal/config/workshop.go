package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/portico-dev/portico/internal/runtime"
	"go.yaml.in/yaml/v3"
)

const generateExpression = "expression"

// workshop resolves a Workshop resource; spec is its spec node, which the
// fingerprint is made of.
func (d *decoder) workshop(r *workshopResource, spec *yaml.Node) *Workshop {
	d.checkName(r.Metadata.Name)
	s := r.Spec
	dir, err := filepath.Abs(filepath.Dir(d.file))
	if err != nil {
		d.failAt("", "%v", err)
	}
	w := &Workshop{
		Name:               r.Metadata.Name,
		File:               d.file,
		Dir:                dir,
		Generation:         r.Metadata.Generation,
		Title:              s.Title,
		Description:        s.Description,
		URL:                s.URL,
		Difficulty:         s.Difficulty,
		Duration:           s.Duration,
		Vendor:             s.Vendor,
		Authors:            s.Authors,
		Tags:               s.Tags,
		Labels:             labelMap(s.Labels),
		Logo:               s.Logo,
		Parameters:         d.parameters(s.Request.Parameters),
		Files:              s.Workshop.Files,
		Image:              s.Workshop.Image,
		Budget:             s.Session.Namespaces.Budget,
		SessionObjects:     d.objects(s.Session.Objects, "spec.session.objects"),
		RequestObjects:     d.objects(s.Request.Objects, "spec.request.objects"),
		EnvironmentObjects: d.objects(s.Environment.Objects, "spec.environment.objects"),
	}
	if w.Budget != "" && !slices.Contains(Budgets, w.Budget) {
		d.failAt("spec.session.namespaces.budget", "%q is not one of %s", w.Budget, strings.Join(Budgets, ", "))
	}
	d.requireNames(s.Labels, "spec.labels")
	for i, v := range s.Session.Env {
		if v.Name == "" {
			d.failAt(fmt.Sprintf("spec.session.env[%d].name", i), "required")
		}
		w.SessionEnv = append(w.SessionEnv, EnvVar{Name: v.Name, Value: v.Value})
	}
	w.Applications = d.applications(s.Session.Applications)
	w.Dashboards = d.dashboards(s.Session.Dashboards)
	w.Ingresses = d.ingresses(s.Session.Ingresses)
	w.Resources = d.resources(s.Session.Resources)
	w.Offline = s.Session.Network.Outbound != nil && !*s.Session.Network.Outbound
	w.Fingerprint, err = fingerprint(spec)
	if err != nil {
		d.failAt("spec", "%s", yamlReason(err))
	}
	return w
}

// objects checks that each item of a list of Kubernetes resources has the
// fields every resource has; whether the cluster knows its kind is only
// known when it is created.
func (d *decoder) objects(list []map[string]any, path string) []map[string]any {
	for i, o := range list {
		at := fmt.Sprintf("%s[%d]", path, i)
		for _, f := range []string{"apiVersion", "kind"} {
			if v, ok := o[f].(string); !ok || v == "" {
				d.failAt(at+"."+f, "required: a string")
			}
		}
		md, _ := o["metadata"].(map[string]any)
		if name, ok := md["name"].(string); !ok || name == "" {
			d.failAt(at+".metadata.name", "required: a string")
		}
	}
	return list
}

// parameters checks spec.request.parameters: named once each, and a pattern
// that can be generated for every generated one.
func (d *decoder) parameters(list []parameter) []Parameter {
	params := make([]Parameter, len(list))
	first := map[string]int{}
	for i, p := range list {
		path := fmt.Sprintf("spec.request.parameters[%d]", i)
		params[i] = Parameter(p)
		if p.Name == "" {
			d.failAt(path+".name", "required")
		} else if j, dup := first[p.Name]; dup {
			d.failAt(path+".name", "%q is already the name of spec.request.parameters[%d]", p.Name, j)
		} else {
			first[p.Name] = i
		}
		switch {
		case p.Generate == "":
		case p.Generate != generateExpression:
			d.failAt(path+".generate", "%q is not supported (use %q)", p.Generate, generateExpression)
		case p.From == "":
			d.failAt(path+".from", "required when generate is %q", generateExpression)
		default:
			if _, err := parsePattern(p.From); err != nil {
				d.failAt(path+".from", "%v", err)
			}
		}
	}
	return params
}

// fingerprint is the SHA-256 of the canonical JSON of spec: keys sorted,
// aliases expanded, so only a change of content changes it.
func fingerprint(spec *yaml.Node) (string, error) {
	var v any
	if spec != nil {
		if err := spec.Decode(&v); err != nil {
			return "", err
		}
	}
	data, err := json.Marshal(jsonable(v))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// jsonable rewrites the values yaml.v3 decodes that encoding/json refuses:
// mappings with non-string keys (spelt as Go values, so that 1 and "1" stay
// apart) and non-finite numbers.
func jsonable(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = jsonable(e)
		}
		return v
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[fmt.Sprintf("%#v", k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range v {
			v[i] = jsonable(e)
		}
		return v
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return strconv.FormatFloat(v, 'g', -1, 64)
		}
	}
	return v
}

// terminalLayouts are the values of spec.session.applications.terminal.layout.
var terminalLayouts = []string{"default", "split", "split/2", "lower", "none"}

func (d *decoder) applications(a applications) runtime.Applications {
	layout := a.Terminal.Layout
	if layout != "" {
		layout = d.oneOf(layout, "spec.session.applications.terminal.layout", terminalLayouts...)
	}
	for _, dir := range []struct{ path, value string }{
		{"spec.session.applications.files.directory", a.Files.Directory},
		{"spec.session.applications.uploads.directory", a.Uploads.Directory},
	} {
		if dir.value != "" && !insideHome(dir.value) {
			d.failAt(dir.path, "%q is not a directory inside the session's home", dir.value)
		}
	}
	return runtime.Applications{
		Workshop: runtime.App{Enabled: a.Workshop.Enabled},
		Terminal: runtime.App{Enabled: a.Terminal.Enabled, Layout: layout},
		Editor:   runtime.App{Enabled: a.Editor.Enabled},
		Slides:   runtime.App{Enabled: a.Slides.Enabled},
		Files:    runtime.App{Enabled: a.Files.Enabled, Directory: a.Files.Directory},
		Uploads:  runtime.App{Enabled: a.Uploads.Enabled, Directory: a.Uploads.Directory},
		Examiner: runtime.App{Enabled: a.Examiner.Enabled},
	}
}

// insideHome reports whether dir names a directory in the session's home:
// relative, or under $HOME or ~, without going up.
func insideHome(dir string) bool {
	for _, prefix := range []string{"$HOME/", "~/", "/home/eduk8s/"} {
		dir = strings.TrimPrefix(dir, prefix)
	}
	if filepath.IsAbs(dir) {
		return false
	}
	for _, elem := range strings.Split(filepath.ToSlash(dir), "/") {
		if elem == ".." {
			return false
		}
	}
	return true
}

// builtinDashboards are the names of the tabs the host provides itself.
var builtinDashboards = []string{"terminal", "editor", "slides", "console", "workshop"}

func (d *decoder) dashboards(list []dashboard) []runtime.Dashboard {
	var out []runtime.Dashboard
	seen := map[string]bool{}
	for i, db := range list {
		path := fmt.Sprintf("spec.session.dashboards[%d]", i)
		switch key := strings.ToLower(db.Name); {
		case db.Name == "":
			d.failAt(path+".name", "required")
		case seen[key]:
			d.failAt(path+".name", "%q names another dashboard already", db.Name)
		default:
			seen[key] = true
		}
		if db.URL == "" {
			d.failAt(path+".url", "required: a URL, a path on the session, or terminal:<name>")
		}
		out = append(out, runtime.Dashboard{Name: db.Name, URL: db.URL})
	}
	return out
}

func (d *decoder) ingresses(list []ingress) []runtime.Ingress {
	var out []runtime.Ingress
	seen := map[string]bool{}
	for i, in := range list {
		path := fmt.Sprintf("spec.session.ingresses[%d]", i)
		switch {
		case !isDNSLabel(in.Name):
			d.failAt(path+".name", "%q is not a DNS label (lower-case letters, digits and inner hyphens): it names the ingress's host", in.Name)
		case slices.Contains(builtinDashboards, in.Name):
			d.failAt(path+".name", "%q is the name of a dashboard the session provides", in.Name)
		case seen[in.Name]:
			d.failAt(path+".name", "%q names another ingress already", in.Name)
		default:
			seen[in.Name] = true
		}
		protocol := d.oneOf(in.Protocol, path+".protocol", "http", "https")
		if in.Port < 0 || in.Port > 65535 {
			d.failAt(path+".port", "%d is not a port", in.Port)
		}
		auth := d.oneOf(in.Authentication.Type, path+".authentication.type", "session", "none")
		if in.Path != "" && !strings.HasPrefix(in.Path, "/") {
			d.failAt(path+".path", "%q does not start with /", in.Path)
		}
		for j, h := range in.Headers {
			if h.Name == "" {
				d.failAt(fmt.Sprintf("%s.headers[%d].name", path, j), "required")
			}
		}
		headers := make([]runtime.Header, len(in.Headers))
		for j, h := range in.Headers {
			headers[j] = runtime.Header{Name: h.Name, Value: h.Value}
		}
		out = append(out, runtime.Ingress{
			Name: in.Name, Protocol: protocol, Host: in.Host, Port: in.Port, Path: in.Path,
			Headers: headers, Authentication: auth, ChangeOrigin: in.ChangeOrigin,
		})
	}
	return out
}

// isDNSLabel reports whether s is a lower-case DNS label.
func isDNSLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
