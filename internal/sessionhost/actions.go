package sessionhost

import (
	"encoding/json"
	"fmt"
	"html"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/renderer"
	"github.com/yuin/goldmark/util"
	"go.yaml.in/yaml/v3"
)

// Clickable actions are fenced code blocks whose info string names an
// action of Educates' workshop instructions, <family>:<name>, with a YAML
// body: ```terminal:execute, ```editor:open-file, ```section:begin, ...
// (and the older forms ```execute-2, ```copy). The host renders each as an
// element the dashboard's scripts run when it is clicked (actions.js and a
// script per family); the arguments travel as JSON in data-args. The
// presentation fields every action takes (prefix, title, description,
// autostart, hidden, cascade, event) are the host's; the others are the
// action's own and are passed on untouched, so that the scripts read them
// with the names Educates documents.

// actionFamilies are the families of actions Educates documents. A block
// of another family (```yaml:x, say) is an ordinary code block.
var actionFamilies = []string{"terminal", "workshop", "dashboard", "editor", "files", "examiner", "section"}

// actionKind is how an action is presented when its block does not say.
type actionKind struct {
	prefix string
	// title and body are the default banner title and body text.
	title, body func(a args) string
}

// args are the decoded fields of an action's block.
type args map[string]any

// str returns the field key as text: a string as it is, a number or a
// boolean as YAML writes it, "" when absent.
func (a args) str(key string) string {
	switch v := a[key].(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}

func fixed(s string) func(args) string { return func(args) string { return s } }

func field(key string) func(args) string { return func(a args) string { return a.str(key) } }

func quoted(format, key string) func(args) string {
	return func(a args) string { return fmt.Sprintf(format, strconv.Quote(a.str(key))) }
}

func terminalOf(a args) string {
	if s := a.str("session"); s != "" {
		return s
	}
	return "1"
}

var actionKinds = map[string]actionKind{
	"terminal:execute": {"Terminal", func(a args) string {
		return fmt.Sprintf("Execute command in terminal %q", terminalOf(a))
	}, field("command")},
	"terminal:execute-all": {"Terminal", fixed("Execute command in all terminals"), field("command")},
	"terminal:input": {"Terminal", func(a args) string {
		return fmt.Sprintf("Send input to terminal %q", terminalOf(a))
	}, field("text")},
	"terminal:clear": {"Terminal", func(a args) string {
		return fmt.Sprintf("Clear terminal %q", terminalOf(a))
	}, fixed("")},
	"terminal:clear-all": {"Terminal", fixed("Clear all terminals"), fixed("")},
	"terminal:interrupt": {"Terminal", func(a args) string {
		return fmt.Sprintf("Interrupt command in terminal %q", terminalOf(a))
	}, fixed("<ctrl+c>")},
	"terminal:interrupt-all":     {"Terminal", fixed("Interrupt commands in all terminals"), fixed("<ctrl+c>")},
	"workshop:copy":              {"Workshop", fixed("Copy text to paste buffer"), field("text")},
	"workshop:copy-and-edit":     {"Workshop", fixed("Copy text to paste buffer, change before use"), field("text")},
	"dashboard:open-url":         {"Dashboard", fixed("Open URL in browser"), field("url")},
	"dashboard:open-dashboard":   {"Dashboard", quoted("Open dashboard %s", "name"), fixed("")},
	"dashboard:create-dashboard": {"Dashboard", quoted("Create dashboard %s", "name"), field("url")},
	"dashboard:reload-dashboard": {"Dashboard", quoted("Reload dashboard %s", "name"), field("url")},
	"dashboard:delete-dashboard": {"Dashboard", quoted("Delete dashboard %s", "name"), fixed("")},
	"dashboard:expose-terminal": {"Dashboard", func(a args) string {
		return fmt.Sprintf("Expose terminal %q", terminalOf(a))
	}, fixed("")},
	"editor:open-file":                {"Editor", quoted("Open file %s", "file"), fixed("")},
	"editor:select-matching-text":     {"Editor", quoted("Select text in file %s", "file"), field("text")},
	"editor:replace-text-selection":   {"Editor", quoted("Replace text selection in file %s", "file"), field("text")},
	"editor:append-lines-to-file":     {"Editor", quoted("Append lines to file %s", "file"), field("text")},
	"editor:insert-lines-before-line": {"Editor", quoted("Insert lines before line in file %s", "file"), field("text")},
	"editor:append-lines-after-match": {"Editor", quoted("Append lines after match in file %s", "file"), field("text")},
	"editor:insert-value-into-yaml":   {"Editor", quoted("Insert value into YAML file %s", "file"), yamlValue},
	"editor:execute-command":          {"Editor", quoted("Execute editor command %s", "command"), fixed("")},
	"files:download-file":             {"Files", quoted("Download file %s", "path"), fixed("")},
	"files:copy-file":                 {"Files", quoted("Copy file %s to paste buffer", "path"), fixed("")},
	"files:upload-file":               {"Files", quoted("Upload file %s", "path"), fixed("")},
	"files:upload-files":              {"Files", fixed("Upload files"), fixed("")},
	"examiner:execute-test":           {"Examiner", quoted("Run test %s", "name"), fixed("")},
	"section:begin":                   {"Section", fixed(""), fixed("")},
	"section:end":                     {"Section", fixed(""), fixed("")},
	"section:heading":                 {"Section", fixed(""), fixed("")},
}

// yamlValue shows the value an editor:insert-value-into-yaml inserts.
func yamlValue(a args) string {
	b, err := yaml.Marshal(a["value"])
	if err != nil || a["value"] == nil {
		return ""
	}
	return strings.TrimRight(string(b), "\n")
}

// action is the node of a clickable action.
type action struct {
	ast.BaseBlock
	Name   string // family:name
	Args   args
	Prefix string
	Title  string
	// Body is shown as preformatted text: the description, or what the
	// action does (the command, the text).
	Body                       string
	Autostart, Hidden, Cascade bool
	// Event is the event field, passed on as JSON.
	Event any
	Error string
}

var kindAction = ast.NewNodeKind("Action")

func (a *action) Kind() ast.NodeKind { return kindAction }

func (a *action) Dump(source []byte, level int) {
	ast.DumpHelper(a, source, level, map[string]string{"Name": a.Name, "Title": a.Title}, nil)
}

// actionSection holds the blocks between a section:begin and its
// section:end, hidden until the person opens the section.
type actionSection struct {
	ast.BaseBlock
}

var kindActionSection = ast.NewNodeKind("ActionSection")

func (s *actionSection) Kind() ast.NodeKind { return kindActionSection }

func (s *actionSection) Dump(source []byte, level int) { ast.DumpHelper(s, source, level, nil, nil) }

// executeN matches execute-1, execute-2, ...
var executeN = regexp.MustCompile(`^execute-([0-9]+)$`)

// actionOf returns the action of a fenced code block, or nil for an
// ordinary block.
func actionOf(b *ast.FencedCodeBlock, source []byte, sub *substitution) *action {
	if b.Info == nil {
		return nil
	}
	info := strings.Fields(string(b.Info.Segment.Value(source)))
	if len(info) == 0 {
		return nil
	}
	var body strings.Builder
	for i := range b.Lines().Len() {
		seg := b.Lines().At(i)
		body.Write(seg.Value(source))
	}
	text := strings.TrimRight(body.String(), "\n")
	name := info[0]
	// The classic forms: the body is the text itself, trimmed.
	switch {
	case name == "execute" || name == "execute-all" || executeN.MatchString(name):
		trimmed := strings.TrimSpace(sub.raw(text))
		a := args{"command": trimmed}
		switch {
		case name == "execute-all":
			name = "terminal:execute-all"
		case name == "execute":
			a["session"] = "1"
			name = "terminal:execute"
		default:
			a["session"] = executeN.FindStringSubmatch(name)[1]
			name = "terminal:execute"
		}
		if trimmed == "<ctrl+c>" {
			// Deprecated by Educates for terminal:interrupt, and the same.
			name = strings.Replace(name, "execute", "interrupt", 1)
			delete(a, "command")
		}
		return newAction(name, a)
	case name == "copy" || name == "copy-and-edit":
		return newAction("workshop:"+name, args{"text": strings.TrimSpace(sub.raw(text))})
	}
	family, _, ok := strings.Cut(name, ":")
	if !ok || !slices.Contains(actionFamilies, family) {
		return nil
	}
	if _, known := actionKinds[name]; !known {
		return &action{Name: name, Error: fmt.Sprintf("```%s is not an action Portico knows", name)}
	}
	var decoded any
	if err := yaml.Unmarshal([]byte(body.String()), &decoded); err != nil {
		return &action{Name: name, Error: fmt.Sprintf("invalid YAML in ```%s block: %v", name, err)}
	}
	a, ok := substituted(decoded, sub).(map[string]any)
	if !ok && decoded != nil {
		return &action{Name: name, Error: fmt.Sprintf("the body of a ```%s block is a YAML mapping of its fields", name)}
	}
	return newAction(name, a)
}

// newAction takes the presentation fields out of a and checks what the
// host must check itself.
func newAction(name string, a args) *action {
	if a == nil {
		a = args{}
	}
	kind := actionKinds[name]
	act := &action{Name: name, Args: a, Prefix: kind.prefix, Title: kind.title(a), Body: kind.body(a)}
	if s := a.str("prefix"); s != "" {
		act.Prefix = s
	}
	if s := a.str("title"); s != "" {
		act.Title = s
	}
	if s := a.str("description"); s != "" {
		act.Body = s
	}
	act.Autostart = a["autostart"] == true
	act.Hidden = a["hidden"] == true
	act.Cascade = a["cascade"] == true
	act.Event = a["event"]
	for _, f := range []string{"prefix", "title", "description", "autostart", "hidden", "cascade", "event"} {
		delete(a, f)
	}
	if strings.HasPrefix(name, "terminal:") {
		if s, ok := a["session"]; ok {
			id := fmt.Sprint(s)
			if f, isFloat := s.(float64); isFloat {
				id = strconv.FormatFloat(f, 'f', -1, 64)
			}
			if !validTerminalID(id) {
				act.Error = "invalid terminal session " + strconv.Quote(id)
			}
			a["session"] = id
		}
	}
	return act
}

// substituted replaces the placeholders of data variables in every string
// of v by their values, and makes v fit for JSON: mappings with other keys
// than strings get string keys, and infinities (retries: .INF) the names
// JavaScript's Number() reads.
func substituted(v any, sub *substitution) any {
	switch v := v.(type) {
	case string:
		return sub.raw(v)
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[sub.raw(k)] = substituted(e, sub)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[sub.raw(fmt.Sprint(k))] = substituted(e, sub)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = substituted(e, sub)
		}
		return out
	case float64:
		switch {
		case math.IsInf(v, 1):
			return "Infinity"
		case math.IsInf(v, -1):
			return "-Infinity"
		case math.IsNaN(v):
			return "NaN"
		}
		return v
	case int:
		return float64(v)
	}
	return v
}

// sectionize moves the blocks between each section:begin and its
// section:end into an actionSection after the begin, among the children
// of one parent; an end names its begin, or closes the innermost. The end
// blocks go, as Educates never shows them; a section left open ends with
// its parent.
func sectionize(parent ast.Node) {
	type open struct {
		name    string
		content *actionSection
	}
	var stack []open
	for n := parent.FirstChild(); n != nil; {
		next := n.NextSibling()
		a, isAction := n.(*action)
		switch {
		case isAction && a.Name == "section:end" && a.Error == "":
			name := a.Args.str("name")
			i := len(stack) - 1
			for name != "" && i >= 0 && stack[i].name != name {
				i--
			}
			if i >= 0 {
				stack = stack[:i]
			}
			parent.RemoveChild(parent, n)
		case len(stack) > 0:
			parent.RemoveChild(parent, n)
			stack[len(stack)-1].content.AppendChild(stack[len(stack)-1].content, n)
		}
		if isAction && a.Name == "section:begin" && a.Error == "" {
			content := &actionSection{}
			if n.Parent() == parent {
				parent.InsertAfter(parent, n, content)
			} else {
				n.Parent().AppendChild(n.Parent(), content)
			}
			stack = append(stack, open{name: a.Args.str("name"), content: content})
		}
		n = next
	}
}

// actionRenderer renders actions and their sections.
type actionRenderer struct{}

func (actionRenderer) RegisterFuncs(reg renderer.NodeRendererFuncRegisterer) {
	reg.Register(kindAction, renderAction)
	reg.Register(kindActionSection, renderActionSection)
}

func renderActionSection(w util.BufWriter, source []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
	if entering {
		w.WriteString("<div class=\"action-section-content\" hidden>\n")
	} else {
		w.WriteString("</div>\n")
	}
	return ast.WalkContinue, nil
}

func renderAction(w util.BufWriter, source []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
	if !entering {
		return ast.WalkSkipChildren, nil
	}
	a := node.(*action)
	esc := html.EscapeString
	if a.Error != "" {
		fmt.Fprintf(w, "<div class=\"action-error\" role=\"alert\">%s</div>\n", esc(a.Error))
		return ast.WalkSkipChildren, nil
	}
	family, _, _ := strings.Cut(a.Name, ":")
	argsJSON, err := json.Marshal(a.Args)
	if err != nil {
		fmt.Fprintf(w, "<div class=\"action-error\" role=\"alert\">%s</div>\n", esc("```"+a.Name+": "+err.Error()))
		return ast.WalkSkipChildren, nil
	}
	fmt.Fprintf(w, `<div class="action action-%s" role="button" tabindex="0" data-action="%s" data-args="%s"`,
		family, esc(a.Name), esc(string(argsJSON)))
	if a.Event != nil {
		if ev, err := json.Marshal(a.Event); err == nil {
			fmt.Fprintf(w, ` data-event="%s"`, esc(string(ev)))
		}
	}
	if a.Autostart {
		w.WriteString(` data-autostart="true"`)
	}
	if a.Cascade {
		w.WriteString(` data-cascade="true"`)
	}
	if a.Hidden {
		w.WriteString(` hidden`)
	}
	w.WriteString(`><div class="action-banner">`)
	if a.Prefix != "" {
		fmt.Fprintf(w, `<span class="action-prefix">%s</span>`, esc(a.Prefix))
		if a.Title != "" {
			w.WriteString(": ")
		}
	}
	if a.Title != "" {
		fmt.Fprintf(w, `<span class="action-title">%s</span>`, esc(a.Title))
	}
	w.WriteString(`</div>`)
	if a.Body != "" {
		fmt.Fprintf(w, `<pre class="action-body"><code>%s</code></pre>`, esc(a.Body))
	}
	w.WriteString("<div class=\"action-status\" aria-live=\"polite\"></div></div>\n")
	return ast.WalkSkipChildren, nil
}
