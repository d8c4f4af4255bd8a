package config

import "time"

// The structs below are the parts of the Educates resources that Portico
// reads, as written in the files. Pointers mark values whose absence means
// something other than zero. Keys not listed here are reported as unused.

type metadata struct {
	Name        string `yaml:"name"`
	Generation  int64  `yaml:"generation"`
	Labels      opaque `yaml:"labels"`
	Annotations opaque `yaml:"annotations"`
}

type nameValue struct {
	Name  string `yaml:"name"`
	Value string `yaml:"value"`
}

type credentials struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

type trainingPortalResource struct {
	APIVersion string             `yaml:"apiVersion"`
	Kind       string             `yaml:"kind"`
	Metadata   metadata           `yaml:"metadata"`
	Spec       trainingPortalSpec `yaml:"spec"`
}

type trainingPortalSpec struct {
	Portal    portalSettings `yaml:"portal"`
	Workshops []portalEntry  `yaml:"workshops"`
}

type portalSettings struct {
	Title        string      `yaml:"title"`
	Password     string      `yaml:"password"`
	Index        string      `yaml:"index"`
	Labels       []nameValue `yaml:"labels"`
	Registration struct {
		Type    string `yaml:"type"`
		Enabled *bool  `yaml:"enabled"`
	} `yaml:"registration"`
	Catalog struct {
		Visibility string `yaml:"visibility"`
	} `yaml:"catalog"`
	Sessions struct {
		Maximum    int  `yaml:"maximum"`
		Registered int  `yaml:"registered"`
		Anonymous  *int `yaml:"anonymous"`
	} `yaml:"sessions"`
	Credentials struct {
		Admin credentials `yaml:"admin"`
		Robot credentials `yaml:"robot"`
	} `yaml:"credentials"`
	Clients struct {
		Robot struct {
			ID     string `yaml:"id"`
			Secret string `yaml:"secret"`
		} `yaml:"robot"`
	} `yaml:"clients"`
	Workshop struct {
		Defaults entrySettings `yaml:"defaults"`
	} `yaml:"workshop"`
	Updates struct {
		Workshop bool `yaml:"workshop"`
	} `yaml:"updates"`
	// IndexOrigins is Portico's own: the origins (scheme://host[:port])
	// that start links may send people back to, besides index's.
	IndexOrigins []string `yaml:"indexOrigins"`
	Theme        struct {
		Frame struct {
			Ancestors []string `yaml:"ancestors"`
		} `yaml:"frame"`
		// Stylesheet is Portico's own: a CSS file, relative to the
		// definition file, served after the portal's stylesheet.
		// Educates names a theme resource instead (theme.name).
		Stylesheet string `yaml:"stylesheet"`
	} `yaml:"theme"`

	// Deprecated spellings of portal.workshop.defaults that Educates still
	// honours (it never had portal.overtime or portal.deadline).
	Capacity *int           `yaml:"capacity"`
	Reserved *int           `yaml:"reserved"`
	Initial  *int           `yaml:"initial"`
	Expires  *time.Duration `yaml:"expires"`
	Orphaned *time.Duration `yaml:"orphaned"`
	Overdue  *time.Duration `yaml:"overdue"`
	Refresh  *time.Duration `yaml:"refresh"`
}

// entrySettings are what a portal.workshops[] item may set and
// portal.workshop.defaults may default.
type entrySettings struct {
	Capacity *int           `yaml:"capacity"`
	Reserved *int           `yaml:"reserved"`
	Initial  *int           `yaml:"initial"`
	Expires  *time.Duration `yaml:"expires"`
	Overtime *time.Duration `yaml:"overtime"`
	Deadline *time.Duration `yaml:"deadline"`
	Orphaned *time.Duration `yaml:"orphaned"`
	Overdue  *time.Duration `yaml:"overdue"`
	Refresh  *time.Duration `yaml:"refresh"`
	Env      []nameValue    `yaml:"env"`
	Labels   []nameValue    `yaml:"labels"`
}

type portalEntry struct {
	Name          string `yaml:"name"`
	Alias         string `yaml:"alias"`
	entrySettings `yaml:",inline"`
}

type workshopResource struct {
	APIVersion string       `yaml:"apiVersion"`
	Kind       string       `yaml:"kind"`
	Metadata   metadata     `yaml:"metadata"`
	Spec       workshopSpec `yaml:"spec"`
}

type workshopSpec struct {
	Title       string      `yaml:"title"`
	Description string      `yaml:"description"`
	URL         string      `yaml:"url"`
	Difficulty  string      `yaml:"difficulty"`
	Duration    string      `yaml:"duration"`
	Vendor      string      `yaml:"vendor"`
	Authors     []string    `yaml:"authors"`
	Tags        []string    `yaml:"tags"`
	Labels      []nameValue `yaml:"labels"`
	Logo        string      `yaml:"logo"`
	Request     struct {
		Parameters []parameter      `yaml:"parameters"`
		Objects    []map[string]any `yaml:"objects"`
	} `yaml:"request"`
	Session struct {
		Env        []sessionEnvVar  `yaml:"env"`
		Resources  sessionResources `yaml:"resources"`
		Namespaces struct {
			Budget string `yaml:"budget"`
		} `yaml:"namespaces"`
		Objects      []map[string]any `yaml:"objects"`
		Applications applications     `yaml:"applications"`
		Dashboards   []dashboard      `yaml:"dashboards"`
		Ingresses    []ingress        `yaml:"ingresses"`
		// Network is Portico's own: outbound: false leaves sessions no
		// network beyond their own (the local runtime).
		Network struct {
			Outbound *bool `yaml:"outbound"`
		} `yaml:"network"`
	} `yaml:"session"`
	Environment struct {
		Objects []map[string]any `yaml:"objects"`
	} `yaml:"environment"`
	Workshop struct {
		Image string           `yaml:"image"`
		Files []map[string]any `yaml:"files"`
	} `yaml:"workshop"`
}

// applications is spec.session.applications: the applications a session
// host provides. Those Educates runs beside the workshop container on
// Kubernetes (console, docker, registry, vcluster, webdav, sshd, git) are
// not named, so that the loader warns about each one a workshop sets.
type applications struct {
	Workshop struct {
		Enabled *bool `yaml:"enabled"`
	} `yaml:"workshop"`
	Terminal struct {
		Enabled *bool  `yaml:"enabled"`
		Layout  string `yaml:"layout"`
	} `yaml:"terminal"`
	Editor   enabledOnly `yaml:"editor"`
	Examiner enabledOnly `yaml:"examiner"`
	Slides   struct {
		Enabled *bool `yaml:"enabled"`
		// Educates picks among the reveal.js and impress.js it bundles;
		// Portico serves the one it vendors, whatever the version asked.
		RevealJS  opaque `yaml:"reveal.js"`
		ImpressJS opaque `yaml:"impress.js"`
	} `yaml:"slides"`
	Files   directoryApp `yaml:"files"`
	Uploads directoryApp `yaml:"uploads"`
}

type enabledOnly struct {
	Enabled *bool `yaml:"enabled"`
}

type directoryApp struct {
	Enabled   *bool  `yaml:"enabled"`
	Directory string `yaml:"directory"`
}

// dashboard is an item of spec.session.dashboards.
type dashboard struct {
	Name string `yaml:"name"`
	URL  string `yaml:"url"`
}

// ingress is an item of spec.session.ingresses.
type ingress struct {
	Name           string      `yaml:"name"`
	Protocol       string      `yaml:"protocol"`
	Host           string      `yaml:"host"`
	Port           int         `yaml:"port"`
	Path           string      `yaml:"path"`
	Headers        []nameValue `yaml:"headers"`
	ChangeOrigin   *bool       `yaml:"changeOrigin"`
	Authentication struct {
		Type string `yaml:"type"`
	} `yaml:"authentication"`
}

type parameter struct {
	Name     string `yaml:"name"`
	Value    string `yaml:"value"`
	Generate string `yaml:"generate"`
	From     string `yaml:"from"`
}

// sessionResources is spec.session.resources: Educates' memory, cpu and
// storage (Kubernetes quantities, read as strings so that 1, 0.5 and 512Mi
// all reach the quantity parser as written) and Portico's processes.
type sessionResources struct {
	Memory    string `yaml:"memory"`
	CPU       string `yaml:"cpu"`
	Storage   string `yaml:"storage"`
	Processes int    `yaml:"processes"`
}

// sessionEnvVar is a Kubernetes EnvVar: Portico reads name and value and
// leaves the rest (valueFrom) to the runtimes that understand it.
type sessionEnvVar struct {
	anyOtherFields
	Name  string `yaml:"name"`
	Value string `yaml:"value"`
}
