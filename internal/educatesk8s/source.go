package educatesk8s

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"

	"github.com/portico-dev/portico/internal/config"
)

// Source reads a portal's definitions from the TrainingPortal and Workshop
// resources of a cluster, and follows their changes.
type Source struct {
	// Strict refuses definitions with fields Portico does not use, as
	// --strict does with files.
	Strict bool

	client dynamic.Interface
	log    *slog.Logger
	// name is the TrainingPortal served: given, or the only one found
	// first, and kept so that the portal never switches to another.
	name string
	// changed is nudged by the watches; signals coalesce.
	changed chan struct{}
	// served is the documents of the definitions in force, to tell a
	// change from a status write or an edit of an unrelated resource.
	served string
	// reported is the message last written to the status, to write it
	// once per change.
	reported *string
}

// NewSource reads the TrainingPortal named portal, or the only one in the
// cluster when portal is empty. Start it before Wait.
func NewSource(client dynamic.Interface, portal string, log *slog.Logger) *Source {
	return &Source{client: client, name: portal, log: log, changed: make(chan struct{}, 1)}
}

// Portal is the resource a portal's definitions were read from: what the
// resources Portico writes refer to.
type Portal struct {
	Name string
	UID  types.UID
}

// Wait returns the first valid definitions, waiting for them as long as
// the cluster has none: until a TrainingPortal is applied, or an invalid
// one fixed (its status says what is wrong meanwhile).
func (s *Source) Wait(ctx context.Context) (*config.Definitions, Portal, error) {
	for {
		defs, p, docs, err := s.read(ctx)
		if err == nil {
			s.served = docs
			s.name = p.Name
			s.report(ctx, p.Name, "")
			return defs, p, nil
		}
		var invalid *invalidError
		switch {
		case errors.As(err, &invalid):
			s.log.Error("definitions in the cluster rejected; waiting for a change", "err", err)
			if invalid.portal != "" {
				s.report(ctx, invalid.portal, err.Error())
			}
		case errors.Is(err, errNoPortal):
			s.log.Info("waiting for a TrainingPortal", "reason", err)
		default:
			s.log.Error("reading the definitions in the cluster", "err", err)
		}
		if err := s.next(ctx); err != nil {
			return nil, Portal{}, err
		}
	}
}

// Run applies each change of the definitions of the portal Wait found
// until ctx ends. A change apply refuses, or that does not load, leaves
// the running definitions in force, and its reason in the status of the
// TrainingPortal.
func (s *Source) Run(ctx context.Context, apply func(context.Context, *config.Definitions) error) {
	for s.next(ctx) == nil {
		defs, _, docs, err := s.read(ctx)
		if errors.Is(err, errNoPortal) {
			s.log.Warn("the TrainingPortal served is gone; keeping the running definitions", "portal", s.name)
			continue
		}
		var invalid *invalidError
		if err != nil && !errors.As(err, &invalid) {
			s.log.Error("reading the definitions in the cluster", "err", err)
			continue
		}
		if err == nil && docs == s.served {
			s.report(ctx, s.name, "") // back to what runs
			continue
		}
		if err == nil {
			err = apply(ctx, defs)
		}
		if err != nil {
			s.log.Error("definitions in the cluster rejected; keeping the running ones", "err", err)
			s.report(ctx, s.name, err.Error())
			continue
		}
		s.served = docs
		s.report(ctx, s.name, "")
		s.log.Info("definitions applied from the cluster", "portal", s.name)
	}
}

// next waits for a change, and a moment more for the changes that come
// with it (kubectl apply of several resources).
func (s *Source) next(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.changed:
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(200 * time.Millisecond):
	}
	select {
	case <-s.changed:
	default:
	}
	return nil
}

var errNoPortal = errors.New("no TrainingPortal")

// invalidError is definitions the loader or the selection refused.
type invalidError struct {
	portal string // the TrainingPortal to report it on, if any
	err    error
}

func (e *invalidError) Error() string { return e.err.Error() }
func (e *invalidError) Unwrap() error { return e.err }

// read returns the definitions in the cluster now, the portal they are of,
// and their documents in the form the loader reads.
func (s *Source) read(ctx context.Context) (*config.Definitions, Portal, string, error) {
	portal, err := s.portal(ctx)
	if err != nil {
		return nil, Portal{}, "", err
	}
	p := Portal{Name: portal.GetName(), UID: portal.GetUID()}
	list, err := s.client.Resource(Workshops).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, p, "", fmt.Errorf("list Workshops: %w", err)
	}
	// Only the Workshops the portal lists: a bad one of another portal
	// in the same cluster is not this portal's business.
	listed := map[string]bool{}
	entries, _, _ := unstructured.NestedSlice(portal.Object, "spec", "workshops")
	for _, e := range entries {
		if m, ok := e.(map[string]any); ok {
			if name, ok := m["name"].(string); ok {
				listed[name] = true
			}
		}
	}
	docs := []config.Document{document(portal)}
	for i := range list.Items {
		if listed[list.Items[i].GetName()] {
			docs = append(docs, document(&list.Items[i]))
		}
	}
	var all strings.Builder
	for _, d := range docs {
		all.Write(d.Data)
		all.WriteByte('\n')
	}
	defs, err := config.Parse("the cluster", docs...)
	if err == nil && s.Strict && len(defs.Unused) > 0 {
		err = fmt.Errorf("--strict: %w", errors.Join(defs.Unused...))
	}
	if err != nil {
		return nil, p, "", &invalidError{portal: p.Name, err: err}
	}
	for _, w := range defs.Warnings {
		s.log.Warn(w)
	}
	return defs, p, all.String(), nil
}

// portal finds the TrainingPortal served.
func (s *Source) portal(ctx context.Context) (*unstructured.Unstructured, error) {
	api := s.client.Resource(TrainingPortals)
	if s.name != "" {
		p, err := api.Get(ctx, s.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%w named %s", errNoPortal, s.name)
		}
		return p, err
	}
	list, err := api.List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list TrainingPortals: %w", err)
	}
	switch len(list.Items) {
	case 0:
		return nil, fmt.Errorf("%w in the cluster", errNoPortal)
	case 1:
		return &list.Items[0], nil
	}
	var names []string
	for _, p := range list.Items {
		names = append(names, p.GetName())
	}
	slices.Sort(names)
	return nil, &invalidError{err: fmt.Errorf("%d TrainingPortals in the cluster (%s): name the one this portal serves with --portal-name",
		len(names), strings.Join(names, ", "))}
}

// document is a resource as the loader reads it: what its author wrote,
// without what the cluster adds (uid, managed fields, status).
func document(u *unstructured.Unstructured) config.Document {
	md := map[string]any{"name": u.GetName(), "generation": u.GetGeneration()}
	if l := u.GetLabels(); len(l) > 0 {
		md["labels"] = l
	}
	if a := u.GetAnnotations(); len(a) > 0 {
		delete(a, "kubectl.kubernetes.io/last-applied-configuration")
		md["annotations"] = a
	}
	obj := map[string]any{"apiVersion": u.GetAPIVersion(), "kind": u.GetKind(), "metadata": md}
	if spec, ok := u.Object["spec"]; ok {
		obj["spec"] = spec
	}
	data, _ := json.Marshal(obj) // from JSON, so it marshals
	return config.Document{Name: u.GetKind() + "/" + u.GetName(), Data: data}
}

// report writes message (none when empty) to the status of the
// TrainingPortal named portal.
func (s *Source) report(ctx context.Context, portal, message string) {
	if s.reported != nil && *s.reported == message {
		return
	}
	status := map[string]any{"message": nil}
	if message != "" {
		status["message"] = truncate(message, maxMessage)
		if s.served == "" {
			status["phase"] = "Failed" // nothing served yet
		}
	}
	if err := patchStatus(ctx, s.client, TrainingPortals, portal, status); err != nil {
		s.log.Error("writing the status of the TrainingPortal", "portal", portal, "err", err)
		return
	}
	s.reported = &message
}

// maxMessage bounds the message in a status: an error may list every
// field of every definition.
const maxMessage = 4096

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && !isRuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// patchStatus merges educates into status.educates of a resource, through
// its status subresource where it has one (Portico's definitions have;
// a foreign definition may not).
func patchStatus(ctx context.Context, client dynamic.Interface, gvr schema.GroupVersionResource, name string, educates map[string]any) error {
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"educates": educates}})
	if err != nil {
		return err
	}
	api := client.Resource(gvr)
	_, err = api.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager}, "status")
	if apierrors.IsNotFound(err) {
		if _, gerr := api.Get(ctx, name, metav1.GetOptions{}); gerr == nil {
			_, err = api.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
		}
	}
	return err
}

// Start follows the TrainingPortals and Workshops of the cluster until ctx
// ends: Wait and Run act on what it sees change.
func (s *Source) Start(ctx context.Context) {
	for _, gvr := range []schema.GroupVersionResource{TrainingPortals, Workshops} {
		go follow(ctx, s.client, gvr, metav1.ListOptions{}, s.log, func() { nudge(s.changed) })
	}
}

func nudge(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// follow lists and watches the resources of gvr (selected by opts), and
// calls changed after every change and every fresh list, until ctx ends.
// A watch the server ends (or a stale resource version) starts again
// from a new list.
func follow(ctx context.Context, client dynamic.Interface, gvr schema.GroupVersionResource, opts metav1.ListOptions,
	log *slog.Logger, changed func()) {
	backoff := time.Second
	for ctx.Err() == nil {
		if err := followOnce(ctx, client, gvr, opts, changed); err != nil && ctx.Err() == nil {
			log.Warn("watch of the cluster ended; starting again", "resource", gvr.Resource, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
	}
}

func followOnce(ctx context.Context, client dynamic.Interface, gvr schema.GroupVersionResource, opts metav1.ListOptions, changed func()) error {
	api := client.Resource(gvr)
	list, err := api.List(ctx, opts)
	if err != nil {
		return err
	}
	changed()
	opts.ResourceVersion = list.GetResourceVersion()
	opts.AllowWatchBookmarks = true
	w, err := api.Watch(ctx, opts)
	if err != nil {
		return err
	}
	defer w.Stop()
	for ev := range w.ResultChan() {
		switch ev.Type {
		case watch.Error:
			return apierrors.FromObject(ev.Object)
		case watch.Bookmark:
		default:
			changed()
		}
	}
	return nil // the server ended the watch: list again
}
