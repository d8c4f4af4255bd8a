package sessionhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/portico-dev/portico/internal/atomicfile"
	"github.com/portico-dev/portico/internal/runtime"
)

// Files of a seed directory: what a runtime that cannot write into the
// session home before the host starts (a pod's home is an empty volume)
// hands the host instead, typically a mounted Secret.
const (
	SeedConfig     = "session.json" // becomes ConfigFile
	SeedKubeconfig = "kubeconfig"   // becomes ~/.kube/config, served as /config/kubeconfig
)

// seed copies the files of dir into home, each only when home lacks it: a
// restarted host keeps what it has.
func seed(dir, home string) error {
	for src, dst := range map[string]string{
		SeedConfig:     ConfigFile,
		SeedKubeconfig: filepath.Join(".kube", "config"),
	} {
		b, err := os.ReadFile(filepath.Join(dir, src))
		if errors.Is(err, fs.ErrNotExist) && src != SeedConfig {
			continue
		}
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		path := filepath.Join(home, dst)
		if _, err := os.Stat(path); err == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		if err := atomicfile.Write(path, b, 0o600); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	return nil
}

// allocationPoll is how often the allocation file is read while the
// session has no owner. The file is local (a mounted Secret the kubelet
// refreshes), so reading it costs nothing of the cluster.
const allocationPoll = 2 * time.Second

// readAllocation reads an allocation file; nil when it does not exist yet.
func readAllocation(path string) (*runtime.Allocation, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) || err == nil && len(b) == 0 {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var a runtime.Allocation
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := validAllocation(a); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &a, nil
}

// watchAllocation gives the session its owner from the allocation file
// once it appears: the way the owner arrives when the portal's POST could
// not reach the host.
func (h *host) watchAllocation(ctx context.Context, path string) {
	t := time.NewTicker(allocationPoll)
	defer t.Stop()
	for {
		select {
		case <-h.allocated:
			return
		default:
		}
		a, err := readAllocation(path)
		switch {
		case err != nil:
			h.log.Warn("allocation file", "err", err)
		case a != nil:
			if err := h.setOwner(*a); err != nil {
				h.log.Warn("allocation file", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-h.allocated:
			return
		case <-t.C:
		}
	}
}
