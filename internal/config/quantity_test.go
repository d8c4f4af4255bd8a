package config

import (
	"strings"
	"testing"
)

func TestMemoryQuantity(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		err  error
	}{
		{"512Mi", 512 << 20, nil},
		{"1Gi", 1 << 30, nil},
		{"1G", 1_000_000_000, nil},
		{"500M", 500_000_000, nil},
		{"128974848", 128974848, nil},
		{"129e6", 129_000_000, nil},
		{"123Ki", 123 << 10, nil},
		{"1.5Gi", 3 << 29, nil},
		{"0.5", 1, nil}, // rounded up, as Kubernetes does
		{".5Ki", 512, nil},
		{"2.", 2, nil},
		{"+1k", 1000, nil},
		{"1500m", 2, nil},
		{"1e-50", 1, nil},
		{"0", 0, nil},
		{"0e99", 0, nil},
		{"-0", 0, nil},
		{"7Ei", 7 << 60, nil},
		{"8Ei", 0, errTooLarge},
		{"1e41", 0, errTooLarge},
		{"1e999999999999999999999", 0, errTooLarge},
		{"-1Gi", 0, errNegative},
		{"", 0, errNotMemory},
		{"Gi", 0, errNotMemory},
		{"1GB", 0, errNotMemory},
		{"1gi", 0, errNotMemory},
		{"1 Gi", 0, errNotMemory},
		{"1.2.3", 0, errNotMemory},
		{".", 0, errNotMemory},
		{"1e", 0, errNotMemory},
		{"1e+", 0, errNotMemory},
		{"1e1.5", 0, errNotMemory},
		{".inf", 0, errNotMemory},
		{"0x10", 0, errNotMemory},
		{"lots", 0, errNotMemory},
		{strings.Repeat("1", 65), 0, errNotMemory},
	} {
		got, err := memoryQuantity(tt.in)
		if got != tt.want || err != tt.err {
			t.Errorf("memoryQuantity(%q) = %d, %v; want %d, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestCPUQuantity(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int
		err  error
	}{
		{"500m", 500, nil},
		{"1", 1000, nil},
		{"2", 2000, nil},
		{"0.5", 500, nil},
		{"0.1", 100, nil},
		{"1.0001", 1001, nil}, // rounded up to a thousandth
		{"250m", 250, nil},
		{"1k", 1_000_000, nil},
		{"2147483m", 2147483, nil},
		{"2147484", 0, errTooLarge},
		{"-1", 0, errNegative},
		{"fast", 0, errNotCPU},
		{"1 cpu", 0, errNotCPU},
	} {
		got, err := cpuQuantity(tt.in)
		if got != tt.want || err != tt.err {
			t.Errorf("cpuQuantity(%q) = %d, %v; want %d, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestLoadSessionResources(t *testing.T) {
	workshop := func(resources string) string {
		return portalDoc("{}") + "---\napiVersion: training.educates.dev/v1beta1\nkind: Workshop\nmetadata:\n  name: lab-r\nspec:\n  session:\n    resources:\n" + indent(resources, "      ")
	}
	for _, tt := range []struct {
		resources string
		want      Resources
	}{
		{"memory: 512Mi\ncpu: 500m\nprocesses: 200\n", Resources{Memory: 512 << 20, CPUMilli: 500, Processes: 200}},
		{"storage: 5Gi\n", Resources{Storage: 5 << 30}},
		{"storage: 500M\nmemory: 1Gi\n", Resources{Storage: 500_000_000, Memory: 1 << 30}},
		{"storage: 1073741824\n", Resources{Storage: 1 << 30}},
		{"storage: \n", Resources{}},
		{"memory: 1073741824\ncpu: 2\n", Resources{Memory: 1 << 30, CPUMilli: 2000}},
		{"cpu: 0.25\n", Resources{CPUMilli: 250}},
		{"memory: 1G\n", Resources{Memory: 1_000_000_000}},
		{"memory: \n", Resources{}},
	} {
		defs, err := loadString(t, workshop(tt.resources))
		if err != nil {
			t.Errorf("%q: %v", tt.resources, err)
			continue
		}
		if got := defs.Workshops["lab-r"].Resources; got != tt.want {
			t.Errorf("%q: resources %+v, want %+v", tt.resources, got, tt.want)
		}
	}

	for _, tt := range []struct {
		resources string
		want      string
	}{
		{"memory: 12XB\n", `spec.session.resources.memory: "12XB" is not a memory quantity (use 512Mi, 1Gi, 1G or 500M)`},
		{"memory: -1Gi\n", `spec.session.resources.memory: "-1Gi" must not be negative`},
		{"memory: 9Ei\n", `spec.session.resources.memory: "9Ei" is too large`},
		{"memory: [1Gi]\n", `spec.session.resources.memory: expected a string, found a list`},
		{"cpu: fast\n", `spec.session.resources.cpu: "fast" is not a CPU quantity (use 500m, 1 or 2)`},
		{"cpu: -2\n", `spec.session.resources.cpu: "-2" must not be negative`},
		{"processes: many\n", `spec.session.resources.processes: "many" is not an integer`},
		{"processes: -5\n", `spec.session.resources.processes: must not be negative`},
		{"processes: 1.5\n", `spec.session.resources.processes: "1.5" is not an integer`},
		{"storage: lots\n", `spec.session.resources.storage: "lots" is not a storage quantity (use 5Gi, 500Mi, 5G or 500M)`},
		{"storage: 5GB\n", `spec.session.resources.storage: "5GB" is not a storage quantity`},
		{"storage: 0\n", `spec.session.resources.storage: "0" must be more than zero`},
		{"storage: 0Gi\n", `spec.session.resources.storage: "0Gi" must be more than zero`},
		{"storage: -5Gi\n", `spec.session.resources.storage: "-5Gi" must not be negative`},
		{"storage: 9Ei\n", `spec.session.resources.storage: "9Ei" is too large`},
		{"storage: {size: 5Gi}\n", `spec.session.resources.storage: expected a string, found a mapping`},
	} {
		_, err := loadString(t, workshop(tt.resources))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v\nwant it to contain %q", tt.resources, err, tt.want)
		}
	}

	// The error names the file, the line and the field.
	_, err := loadString(t, workshop("storage: 0\n"))
	if want := `portal.yaml:30: spec.session.resources.storage: "0" must be more than zero`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v\nwant it to contain %q", err, want)
	}
}
