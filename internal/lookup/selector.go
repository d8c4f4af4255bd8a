package lookup

import (
	"fmt"
	"path"
	"slices"
)

// Selector picks clusters or portals by name patterns and labels, as the
// selectors of Educates' TenantConfig do.
type Selector struct {
	NameSelector struct {
		MatchNames []string `yaml:"matchNames"`
	} `yaml:"nameSelector"`
	LabelSelector struct {
		MatchLabels      map[string]string `yaml:"matchLabels"`
		MatchExpressions []Requirement     `yaml:"matchExpressions"`
	} `yaml:"labelSelector"`
}

// Requirement is a label expression of a selector.
type Requirement struct {
	Key      string   `yaml:"key"`
	Operator string   `yaml:"operator"` // In, NotIn, Exists, DoesNotExist
	Values   []string `yaml:"values"`
}

func (s *Selector) check() error {
	if s == nil {
		return nil
	}
	for _, p := range s.NameSelector.MatchNames {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("nameSelector.matchNames: %q is not a valid pattern", p)
		}
	}
	for _, e := range s.LabelSelector.MatchExpressions {
		switch e.Operator {
		case "In", "NotIn", "Exists", "DoesNotExist":
		default:
			return fmt.Errorf("labelSelector.matchExpressions: operator %q is not In, NotIn, Exists or DoesNotExist", e.Operator)
		}
		if e.Key == "" {
			return fmt.Errorf("labelSelector.matchExpressions: a key is needed")
		}
	}
	return nil
}

// matches tells whether a cluster or portal of this name and labels is
// selected. An empty list of names or labels selects everything, as in
// Educates.
func (s *Selector) matches(name string, labels map[string]string) bool {
	if len(s.NameSelector.MatchNames) > 0 && !matchAny(s.NameSelector.MatchNames, name) {
		return false
	}
	for k, v := range s.LabelSelector.MatchLabels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	for _, e := range s.LabelSelector.MatchExpressions {
		v, ok := labels[e.Key]
		switch e.Operator {
		case "In":
			if !ok || !slices.Contains(e.Values, v) {
				return false
			}
		case "NotIn":
			if ok && slices.Contains(e.Values, v) {
				return false
			}
		case "Exists":
			if !ok {
				return false
			}
		case "DoesNotExist":
			if ok {
				return false
			}
		}
	}
	return true
}

// matchAny matches name against glob patterns (Educates uses fnmatch; the
// patterns were checked at load).
func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}
