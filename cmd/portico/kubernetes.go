//go:build !nokubernetes

package main

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/portico-dev/portico/internal/runtime/kubernetes"
)

// kubeRuntime connects the kubernetes runtime to the cluster named by
// --kubeconfig, else $KUBECONFIG, else the pod's own account.
func kubeRuntime(log *slog.Logger, kubeconfig, portal, image, ingressDomain, publicURL string) (closingRuntime, error) {
	routeKlog(log)
	cfg, err := clusterConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	if ingressDomain == "" {
		if u, err := url.Parse(publicURL); err == nil {
			ingressDomain = u.Hostname()
		}
	}
	r, err := kubernetes.New(kubernetes.Options{Config: cfg, Portal: portal, Image: image,
		IngressDomain: ingressDomain, Logger: log})
	if err != nil {
		return nil, err
	}
	log.Info("sessions run on Kubernetes", "server", cfg.Host, "image", image)
	return r, nil
}

func clusterConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" || os.Getenv("KUBECONFIG") != "" {
		// The default rules read $KUBECONFIG, which may list several files.
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		rules.ExplicitPath = kubeconfig
		cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("kubeconfig: %w", err)
		}
		return cfg, nil
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("--runtime kubernetes: no --kubeconfig, no KUBECONFIG, and not in a cluster: %w", err)
	}
	return cfg, nil
}

// routeKlog sends client-go's klog through the portal's logger, so a
// cluster's errors come out in the same format as the portal's own.
func routeKlog(log *slog.Logger) {
	klog.SetSlogLogger(log.With("logger", "client-go"))
}
