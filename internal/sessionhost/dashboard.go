package sessionhost

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// The dashboard is what a person sees of a session: the instructions on
// one side, terminals on the other, a header with the time left and the
// buttons to extend and finish the session. It is served behind the
// portal's reverse proxy on the session's own origin, or under
// X-Forwarded-Prefix behind another proxy, so every link it emits is built
// from that prefix. Its pages carry no inline script or style.

//go:embed templates/dashboard.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// terminalIDs are the terminals the dashboard shows as tabs; clickable
// blocks may open others.
var terminalIDs = []string{"1", "2", "3"}

// contentSecurityPolicy is that of every page of the dashboard. Styles
// allow 'unsafe-inline' only because xterm.js sets the colours of the
// terminal at run time through <style> elements and style attributes; no
// markup of the host has inline styles, and scripts are the host's own.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data: https:; font-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'self'"

// assets are the embedded static files and their content hashes, which
// version their URLs so that browsers may cache them for good. The hashes
// are computed when first asked for: hashing half a megabyte took a few
// milliseconds of every host's start, dashboard or not.
type assets struct {
	fs     fs.FS
	hashes func() map[string]string
}

var staticAssets = mustAssets()

func mustAssets() *assets {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err)
	}
	return &assets{fs: sub, hashes: sync.OnceValue(func() map[string]string {
		hashes := map[string]string{}
		err := fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := fs.ReadFile(sub, p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			hashes[p] = hex.EncodeToString(sum[:6])
			return nil
		})
		if err != nil {
			panic(err) // the files are embedded: they are there
		}
		return hashes
	})}
}

var dashboardTemplate = template.Must(template.New("dashboard.html").Funcs(template.FuncMap{
	"asset": staticAssets.url,
}).ParseFS(templateFS, "templates/dashboard.html"))

// pageLink is a page as the navigation shows it.
type pageLink struct {
	Name, Title, URL string
	Current          bool
}

// dashboardView is what the dashboard template shows.
type dashboardView struct {
	Prefix, Session    string
	Title, Description string
	// Owner is whose session it is. Who is looking, the portal does not
	// tell the session: a session that knew could show staff another page.
	Owner string
	// Portal is where the person goes back to.
	Portal     string
	Terminals  []string
	Page       *pageLink
	Body       template.HTML
	Pages      []pageLink
	Prev, Next *pageLink
	Index      int // of Page, from 1
}

// validPrefix matches the prefixes the portal forwards: /sessions/<name>.
var validPrefix = regexp.MustCompile(`^(/[A-Za-z0-9_~.-]+)*$`)

// forwardedPrefix is the path under which the portal serves this host, or
// "" when the header is absent or not a plain path.
func forwardedPrefix(r *http.Request) string {
	p := strings.TrimSuffix(r.Header.Get("X-Forwarded-Prefix"), "/")
	if !validPrefix.MatchString(p) {
		return ""
	}
	for _, elem := range strings.Split(p, "/") {
		if elem == "." || elem == ".." {
			return ""
		}
	}
	return p
}

// pageURL is the URL path of the page named name behind prefix.
func pageURL(prefix, name string) string {
	elems := strings.Split(name, "/")
	for i, e := range elems {
		elems[i] = url.PathEscape(e)
	}
	return prefix + "/workshop/content/" + strings.Join(elems, "/") + "/"
}

// renderPage renders the page at index i of pages into a view.
func (h *host) renderPage(r *http.Request, pages []page, i int) (dashboardView, error) {
	prefix := forwardedPrefix(r)
	_, vars := h.values()
	v := h.baseView(r, vars)
	if len(pages) == 0 {
		return v, nil
	}
	links := make([]pageLink, len(pages))
	pageOf := make(map[string]string, len(pages))
	for j, p := range pages {
		links[j] = pageLink{Name: p.Name, Title: substituteText(p.Title, vars), URL: pageURL(prefix, p.Name), Current: j == i}
		pageOf[p.file] = links[j].URL
	}
	p := pages[i]
	html, err := renderMarkdown(p.body, vars, pageContext{
		base:   links[i].URL,
		pageOf: pageOf,
		dir:    path.Dir(p.file),
	})
	if err != nil {
		return v, err
	}
	v.Pages = links
	v.Page = &links[i]
	v.Body = template.HTML(html)
	v.Index = i + 1
	if i > 0 {
		v.Prev = &links[i-1]
	}
	if i+1 < len(links) {
		v.Next = &links[i+1]
	}
	return v, nil
}

func (h *host) baseView(r *http.Request, vars map[string]string) dashboardView {
	return dashboardView{
		Prefix:      forwardedPrefix(r),
		Session:     h.cfg.Session,
		Title:       vars["workshop_title"],
		Description: vars["workshop_description"],
		Owner:       vars["username"],
		Portal:      h.cfg.PortalURL,
		Terminals:   terminalIDs,
	}
}

// substituteText replaces variables in plain text, such as a title.
func substituteText(s string, vars map[string]string) string {
	b, sub := substitute([]byte(s), vars)
	return sub.raw(string(b))
}

// dashboard is GET /: the dashboard on the first page.
func (h *host) dashboard(w http.ResponseWriter, r *http.Request) {
	pages, err := loadPages(h.home)
	if err != nil {
		h.pageError(w, err)
		return
	}
	h.serveDashboard(w, r, pages, 0)
}

// content is GET /workshop/content/<path>: the dashboard on a page
// (<page>/), or a file of the content directory, such as an image of a
// page bundle.
func (h *host) content(w http.ResponseWriter, r *http.Request) {
	rest := r.PathValue("path")
	pages, err := loadPages(h.home)
	if err != nil {
		h.pageError(w, err)
		return
	}
	if rest == "" {
		h.serveDashboard(w, r, pages, 0)
		return
	}
	name := strings.TrimSuffix(rest, "/")
	for i, p := range pages {
		if p.Name != name {
			continue
		}
		if !strings.HasSuffix(rest, "/") {
			// Relative links of the page resolve against its directory.
			http.Redirect(w, r, pageURL(forwardedPrefix(r), name), http.StatusFound)
			return
		}
		h.serveDashboard(w, r, pages, i)
		return
	}
	h.serveContentFile(w, r, rest)
}

func (h *host) serveDashboard(w http.ResponseWriter, r *http.Request, pages []page, i int) {
	v, err := h.renderPage(r, pages, i)
	if err != nil {
		h.pageError(w, err)
		return
	}
	var buf bytes.Buffer
	if err := dashboardTemplate.Execute(&buf, v); err != nil {
		h.log.Error("render dashboard", "err", err)
		writeError(w, http.StatusInternalServerError, "cannot render the dashboard")
		return
	}
	setPageHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}

// pageJSON is GET /.portico/pages/<name>: one page for the dashboard's
// script, which changes pages without reloading the terminals.
func (h *host) pageJSON(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	pages, err := loadPages(h.home)
	if err != nil {
		h.pageError(w, err)
		return
	}
	for i, p := range pages {
		if p.Name != name {
			continue
		}
		v, err := h.renderPage(r, pages, i)
		if err != nil {
			h.pageError(w, err)
			return
		}
		var pager bytes.Buffer
		if err := dashboardTemplate.ExecuteTemplate(&pager, "pager", v); err != nil {
			h.pageError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"name":  v.Page.Name,
			"title": v.Page.Title,
			"url":   v.Page.URL,
			"index": v.Index,
			"count": len(v.Pages),
			"html":  string(v.Body),
			"pager": pager.String(),
		})
		return
	}
	writeError(w, http.StatusNotFound, "no page "+name)
}

func (h *host) pageError(w http.ResponseWriter, err error) {
	h.log.Error("instructions", "err", err)
	writeError(w, http.StatusInternalServerError, "cannot read the instructions: "+err.Error())
}

// serveContentFile serves a file of the content directory other than a
// Markdown page, without leaving the directory.
func (h *host) serveContentFile(w http.ResponseWriter, r *http.Request, name string) {
	clean, err := cleanRelative(name)
	if err != nil || clean == "." || strings.HasSuffix(clean, ".md") || hiddenPath(clean) {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	root, err := os.OpenRoot(filepath.Join(h.home, ContentDir))
	if err != nil {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	defer root.Close()
	f, err := root.Open(clean)
	if err != nil {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-cache")
	// Files of the workshop are shown, never run as pages of the session.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox")
	if ct := mime.TypeByExtension(path.Ext(clean)); ct == "" {
		w.Header().Set("Content-Type", "application/octet-stream")
	}
	http.ServeContent(w, r, clean, fi.ModTime(), f)
}

func hiddenPath(p string) bool {
	for _, e := range strings.Split(p, "/") {
		if strings.HasPrefix(e, ".") {
			return true
		}
	}
	return false
}

// static is GET /static/<path>: the dashboard's scripts and styles.
func (h *host) static(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("path")
	hash, ok := h.assets.hashes()[name]
	if !ok {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	b, err := fs.ReadFile(h.assets.fs, name)
	if err != nil {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("ETag", `"`+hash+`"`)
	if r.URL.Query().Get("v") == hash {
		w.Header().Set("Cache-Control", "private, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "private, no-cache")
	}
	if ct := mime.TypeByExtension(path.Ext(name)); ct != "" {
		w.Header().Set("Content-Type", ct)
	} else {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
}

// url is the versioned URL of a static file behind prefix.
func (a *assets) url(prefix, name string) string {
	u := prefix + "/static/" + name
	if hash, ok := a.hashes()[name]; ok {
		u += "?v=" + hash
	}
	return u
}

func setPageHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Security-Policy", contentSecurityPolicy)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "same-origin")
	w.Header().Set("Cache-Control", "no-store")
}
