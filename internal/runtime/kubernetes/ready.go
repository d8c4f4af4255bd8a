package kubernetes

import "context"

// Ready reports whether the cluster's API server answers: without it no
// session starts, stops or is observed. /version is readable by every
// identity, so the check needs no right beyond those the runtime has.
func (r *Runtime) Ready(ctx context.Context) error {
	return r.client.Discovery().RESTClient().Get().AbsPath("/version").Do(ctx).Error()
}
