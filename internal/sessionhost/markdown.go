package sessionhost

import (
	"bytes"
	"fmt"
	"html"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/renderer"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"
	"go.yaml.in/yaml/v3"
)

// The instructions are rendered in three steps:
//
//  1. Data variables, in both Educates spellings ({{< param name >}}, as in
//     its Hugo renderer, and {{ name }}), are replaced in the Markdown by
//     placeholders made of lower-case letters and digits, which Markdown
//     leaves alone wherever they are: text, code, link destinations.
//  2. goldmark renders the page (GitHub Flavored Markdown). Raw HTML is
//     not passed through, except a few harmless inline tags (<kbd>, <br>,
//     ...). Clickable code blocks become elements with data attributes that
//     the dashboard's script handles; links and images are resolved against
//     the page's URL behind the portal's prefix.
//  3. The placeholders left in the HTML are replaced by the HTML-escaped
//     values; those in clickable blocks and link destinations were replaced
//     in step 2 by the raw values, which the renderer escapes.

var (
	// {{< param name >}}, {{% param name %}}, with optional quotes.
	paramShortcode = regexp.MustCompile(`\{\{[<%]\s*param\s+"?([A-Za-z0-9_.-]+)"?\s*[>%]\}\}`)
	// {{ name }}, replaced only for known variables: {{ .Values.x }} of a
	// Helm chart shown in a code block stays as it is.
	moustache = regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}`)
	// placeholder matches what substitute leaves in the Markdown.
	placeholder = regexp.MustCompile(`zzpv[0-9]+zz`)
)

// substitution holds the values of the placeholders of one page.
type substitution struct {
	values []string
}

func placeholderOf(i int) string { return "zzpv" + strconv.Itoa(i) + "zz" }

// substitute replaces the known variables of src by placeholders.
func substitute(src []byte, vars map[string]string) ([]byte, *substitution) {
	sub := &substitution{}
	index := map[string]int{}
	replace := func(re *regexp.Regexp, b []byte) []byte {
		return re.ReplaceAllFunc(b, func(m []byte) []byte {
			name := string(re.FindSubmatch(m)[1])
			value, ok := vars[name]
			if !ok {
				return m
			}
			i, seen := index[name]
			if !seen {
				i = len(sub.values)
				index[name] = i
				sub.values = append(sub.values, value)
			}
			return []byte(placeholderOf(i))
		})
	}
	return replace(moustache, replace(paramShortcode, src)), sub
}

// raw replaces placeholders by raw values, for text escaped later.
func (s *substitution) raw(v string) string {
	if s == nil || len(s.values) == 0 {
		return v
	}
	return placeholder.ReplaceAllStringFunc(v, func(m string) string {
		i, err := strconv.Atoi(m[4 : len(m)-2])
		if err != nil || i >= len(s.values) {
			return m
		}
		return s.values[i]
	})
}

// escaped replaces placeholders in rendered HTML by escaped values.
func (s *substitution) escaped(b []byte) []byte {
	if s == nil || len(s.values) == 0 {
		return b
	}
	return placeholder.ReplaceAllFunc(b, func(m []byte) []byte {
		i, err := strconv.Atoi(string(m[4 : len(m)-2]))
		if err != nil || i >= len(s.values) {
			return m
		}
		return []byte(html.EscapeString(s.values[i]))
	})
}

// pageContext is what rendering one page needs to know.
type pageContext struct {
	sub *substitution
	// base is the URL path of the page's directory, such as
	// /sessions/x/workshop/content/01-welcome/, which relative links and
	// images are resolved against (as a browser would on the page).
	base string
	// pageOf maps the Markdown files of the workshop, relative to the
	// content directory, to their URLs: links to foo.md go to its page.
	pageOf map[string]string
	// dir is the directory of the page's file, relative to the content
	// directory, for links to Markdown files.
	dir string
}

var pageContextKey = parser.NewContextKey()

// markdown is the renderer of the instructions. Safe for concurrent use.
var markdown = goldmark.New(
	goldmark.WithExtensions(extension.GFM),
	goldmark.WithParserOptions(
		parser.WithAutoHeadingID(),
		parser.WithASTTransformers(util.Prioritized(instructionTransformer{}, 100)),
	),
	goldmark.WithRendererOptions(
		renderer.WithNodeRenderers(util.Prioritized(instructionRenderer{}, 100)),
	),
)

// renderMarkdown renders one page body.
func renderMarkdown(body []byte, vars map[string]string, pc pageContext) ([]byte, error) {
	src, sub := substitute(body, vars)
	pc.sub = sub
	ctx := parser.NewContext()
	ctx.Set(pageContextKey, &pc)
	var buf bytes.Buffer
	if err := markdown.Convert(src, &buf, parser.WithContext(ctx)); err != nil {
		return nil, err
	}
	return sub.escaped(buf.Bytes()), nil
}

// instructionTransformer turns clickable code blocks into clickable nodes
// and resolves links.
type instructionTransformer struct{}

func (instructionTransformer) Transform(doc *ast.Document, reader text.Reader, pctx parser.Context) {
	pc, _ := pctx.Get(pageContextKey).(*pageContext)
	if pc == nil {
		return
	}
	source := reader.Source()
	var blocks []*ast.FencedCodeBlock
	ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch n := n.(type) {
		case *ast.FencedCodeBlock:
			blocks = append(blocks, n)
		case *ast.Link:
			n.Destination = []byte(pc.resolve(string(n.Destination)))
		case *ast.Image:
			n.Destination = []byte(pc.resolve(string(n.Destination)))
		}
		return ast.WalkContinue, nil
	})
	for _, b := range blocks {
		if c := clickableOf(b, source, pc.sub); c != nil {
			b.Parent().ReplaceChild(b.Parent(), b, c)
		}
	}
}

// resolve makes a link destination absolute on the portal.
func (pc *pageContext) resolve(dest string) string {
	dest = pc.sub.raw(dest)
	u, err := url.Parse(dest)
	if err != nil || u.Scheme != "" || u.Host != "" || dest == "" || strings.HasPrefix(dest, "/") || strings.HasPrefix(dest, "#") {
		return dest
	}
	if strings.HasSuffix(u.Path, ".md") {
		if target, ok := pc.pageOf[path.Join(pc.dir, u.Path)]; ok {
			u.Path = target
			return u.String()
		}
	}
	base, err := url.Parse(pc.base)
	if err != nil {
		return dest
	}
	return base.ResolveReference(u).String()
}

// clickable is a code block that does something when clicked: run a
// command in a terminal, type text into it, clear or interrupt it, or copy
// text to the clipboard.
type clickable struct {
	ast.BaseBlock
	Action  string // execute, input, clear, interrupt, copy
	Session string // terminal id or "all"; empty for copy
	Body    string
	Clear   bool // clear the terminal first
	Endl    bool // input: end with a newline
	Edit    bool // copy-and-edit: the text needs changes before use
	Error   string
}

var kindClickable = ast.NewNodeKind("Clickable")

func (c *clickable) Kind() ast.NodeKind { return kindClickable }

func (c *clickable) Dump(source []byte, level int) {
	ast.DumpHelper(c, source, level, map[string]string{"Action": c.Action, "Session": c.Session, "Body": c.Body}, nil)
}

// executeN matches execute-1, execute-2, ...
var executeN = regexp.MustCompile(`^execute-([0-9]+)$`)

// clickableOf returns the clickable node for a fenced code block with a
// clickable info string, in Educates' classic (```execute-2) and YAML
// (```terminal:execute) forms, or nil for an ordinary block.
func clickableOf(b *ast.FencedCodeBlock, source []byte, sub *substitution) *clickable {
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
	c := &clickable{}
	switch kind := info[0]; {
	case kind == "execute":
		c.Action, c.Session, c.Body = "execute", "1", sub.raw(text)
	case kind == "execute-all":
		c.Action, c.Session, c.Body = "execute", "all", sub.raw(text)
	case executeN.MatchString(kind):
		c.Action, c.Session, c.Body = "execute", executeN.FindStringSubmatch(kind)[1], sub.raw(text)
	case kind == "copy":
		c.Action, c.Body = "copy", sub.raw(text)
	case kind == "copy-and-edit":
		c.Action, c.Body, c.Edit = "copy", sub.raw(text), true
	case strings.HasPrefix(kind, "terminal:") || strings.HasPrefix(kind, "workshop:"):
		if !c.fromYAML(kind, text, sub) {
			return nil
		}
	default:
		return nil
	}
	return c
}

// clickYAML is the body of the YAML forms of clickable blocks.
type clickYAML struct {
	Command string `yaml:"command"`
	Text    string `yaml:"text"`
	Session any    `yaml:"session"`
	Clear   bool   `yaml:"clear"`
	Endl    *bool  `yaml:"endl"`
}

func (c *clickable) fromYAML(kind, body string, sub *substitution) bool {
	var y clickYAML
	err := yaml.Unmarshal([]byte(body), &y)
	session := "1"
	if y.Session != nil {
		session = fmt.Sprint(y.Session)
	}
	switch kind {
	case "terminal:execute":
		c.Action, c.Session, c.Body, c.Clear = "execute", session, y.Command, y.Clear
	case "terminal:execute-all":
		c.Action, c.Session, c.Body, c.Clear = "execute", "all", y.Command, y.Clear
	case "terminal:input":
		c.Action, c.Session, c.Body, c.Endl = "input", session, y.Text, y.Endl == nil || *y.Endl
	case "terminal:clear":
		c.Action, c.Session = "clear", session
	case "terminal:clear-all":
		c.Action, c.Session = "clear", "all"
	case "terminal:interrupt":
		c.Action, c.Session = "interrupt", session
	case "terminal:interrupt-all":
		c.Action, c.Session = "interrupt", "all"
	case "workshop:copy":
		c.Action, c.Body = "copy", y.Text
	case "workshop:copy-and-edit":
		c.Action, c.Body, c.Edit = "copy", y.Text, true
	default:
		return false
	}
	if err != nil {
		c.Error = "invalid YAML in ```" + kind + " block: " + err.Error()
	}
	c.Body = strings.TrimRight(sub.raw(c.Body), "\n")
	c.Session = sub.raw(c.Session)
	if !validTerminalID(c.Session) && c.Session != "all" && c.Session != "" {
		c.Error = "invalid terminal session " + strconv.Quote(c.Session)
	}
	return true
}

// instructionRenderer renders clickable blocks, and raw HTML through an
// allow list of harmless inline tags.
type instructionRenderer struct{}

func (instructionRenderer) RegisterFuncs(reg renderer.NodeRendererFuncRegisterer) {
	reg.Register(kindClickable, renderClickable)
	reg.Register(ast.KindRawHTML, renderRawHTML)
}

// safeInlineTag matches the raw HTML that passes: simple formatting tags
// without attributes.
var safeInlineTag = regexp.MustCompile(`^</?(?i:kbd|br|sub|sup|b|i|em|strong|u|s|del|ins|mark|small|code|var|samp|abbr|wbr)\s*/?>$`)

func renderRawHTML(w util.BufWriter, source []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
	if !entering {
		return ast.WalkSkipChildren, nil
	}
	n := node.(*ast.RawHTML)
	var raw []byte
	for i := range n.Segments.Len() {
		seg := n.Segments.At(i)
		raw = append(raw, seg.Value(source)...)
	}
	if safeInlineTag.Match(raw) {
		w.Write(bytes.ToLower(raw))
	} else {
		w.WriteString(html.EscapeString(string(raw)))
	}
	return ast.WalkSkipChildren, nil
}

func renderClickable(w util.BufWriter, source []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
	if !entering {
		return ast.WalkSkipChildren, nil
	}
	c := node.(*clickable)
	esc := html.EscapeString
	if c.Error != "" {
		fmt.Fprintf(w, "<div class=\"clickable-error\" role=\"alert\">%s</div>\n", esc(c.Error))
		return ast.WalkSkipChildren, nil
	}
	label := clickLabel(c)
	fmt.Fprintf(w, `<div class="clickable clickable-%s" role="button" tabindex="0" data-action="%s"`, c.Action, c.Action)
	if c.Session != "" {
		fmt.Fprintf(w, ` data-session="%s"`, esc(c.Session))
	}
	if c.Action != "clear" && c.Action != "interrupt" {
		fmt.Fprintf(w, ` data-text="%s"`, esc(c.Body))
	}
	if c.Clear {
		w.WriteString(` data-clear="true"`)
	}
	if c.Action == "input" {
		fmt.Fprintf(w, ` data-endl="%t"`, c.Endl)
	}
	fmt.Fprintf(w, ` title="%s">`, esc(label))
	fmt.Fprintf(w, `<span class="clickable-label">%s</span>`, esc(label))
	if c.Body != "" {
		fmt.Fprintf(w, "<pre><code>%s</code></pre>", esc(c.Body))
	}
	w.WriteString("</div>\n")
	return ast.WalkSkipChildren, nil
}

func clickLabel(c *clickable) string {
	where := "terminal " + c.Session
	if c.Session == "all" {
		where = "all terminals"
	}
	switch c.Action {
	case "execute":
		if c.Clear {
			return "Clear " + where + " and run"
		}
		return "Run in " + where
	case "input":
		return "Type into " + where
	case "clear":
		return "Clear " + where
	case "interrupt":
		return "Interrupt " + where
	}
	if c.Edit {
		return "Copy, then edit"
	}
	return "Copy"
}
