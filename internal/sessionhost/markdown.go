package sessionhost

import (
	"bytes"
	"html"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/renderer"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"
)

// The instructions are rendered in three steps:
//
//  1. Data variables, in both Educates spellings ({{< param name >}}, as in
//     its Hugo renderer, and {{ name }}), are replaced in the Markdown by
//     placeholders made of lower-case letters and digits, which Markdown
//     leaves alone wherever they are: text, code, link destinations.
//  2. goldmark renders the page (GitHub Flavored Markdown). Raw HTML is
//     not passed through, except a few harmless inline tags (<kbd>, <br>,
//     ...). The code blocks of clickable actions become elements with data
//     attributes that the dashboard's scripts run (actions.go); links and
//     images are resolved against the page's URL behind the portal's prefix.
//  3. The placeholders left in the HTML are replaced by the HTML-escaped
//     values; those in actions and link destinations were replaced in
//     step 2 by the raw values, which the renderer escapes.

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
		renderer.WithNodeRenderers(util.Prioritized(instructionRenderer{}, 100), util.Prioritized(actionRenderer{}, 100)),
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

// instructionTransformer turns the code blocks of clickable actions into
// action nodes (actions.go) and resolves links.
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
	var sectioned []ast.Node
	for _, b := range blocks {
		a := actionOf(b, source, pc.sub)
		if a == nil {
			continue
		}
		parent := b.Parent()
		parent.ReplaceChild(parent, b, a)
		if a.Name == "section:begin" && !slices.Contains(sectioned, parent) {
			sectioned = append(sectioned, parent)
		}
	}
	for _, parent := range sectioned {
		sectionize(parent)
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

// instructionRenderer renders raw HTML through an allow list of harmless
// inline tags.
type instructionRenderer struct{}

func (instructionRenderer) RegisterFuncs(reg renderer.NodeRendererFuncRegisterer) {
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
