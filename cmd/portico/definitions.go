package main

import (
	"flag"
	"fmt"
)

type definitionFlags struct {
	source      *string
	portalName  *string
	installCRDs *bool
}

func addDefinitionFlags(fs *flag.FlagSet) definitionFlags {
	return definitionFlags{
		source: fs.String("definitions", "files", "where the TrainingPortal and Workshop definitions come from: files (--config, reloaded on SIGHUP) or kubernetes "+
			"(training.educates.dev resources of the cluster of --kubeconfig, followed as they change, with the status Educates' CLI and lookup service read)"),
		portalName: fs.String("portal-name", "", "with --definitions kubernetes: the TrainingPortal this portal serves (default: the only one in the cluster)"),
		installCRDs: fs.Bool("install-crds", true, "with --definitions kubernetes: create the training.educates.dev CustomResourceDefinitions that are missing "+
			"(the account needs create on customresourcedefinitions); when false, refuse to start without them"),
	}
}

func (f definitionFlags) check(configPath string) error {
	switch *f.source {
	case "files":
		if *f.portalName != "" {
			return fmt.Errorf("--portal-name needs --definitions kubernetes")
		}
	case "kubernetes":
		if configPath != "" {
			return fmt.Errorf("--config and --definitions kubernetes exclude each other")
		}
	default:
		return fmt.Errorf("--definitions: %q is not files or kubernetes", *f.source)
	}
	return nil
}
