package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/json/jsontext"
	"time"

	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/store"
)

// Time is a datetime as Educates writes it: UTC, milliseconds, "Z"
// (2020-07-31T03:57:33.942Z); null when unset. Educates left the fraction
// out when the microseconds were zero, one time in a million; Portico keeps
// times to the millisecond and cannot tell, so it always writes it.
type Time time.Time

func (t Time) MarshalJSON() ([]byte, error) {
	tt := time.Time(t)
	if tt.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(tt.UTC().Truncate(time.Millisecond).Format(timeLayout))
}

const timeLayout = "2006-01-02T15:04:05.000Z"

// optTime is a Time left out of the JSON when unset.
func optTime(t time.Time) *Time {
	if t.IsZero() {
		return nil
	}
	v := Time(t)
	return &v
}

type portalJSON struct {
	Name       string            `json:"name"`
	Labels     map[string]string `json:"labels"`
	UID        string            `json:"uid"`
	Generation int64             `json:"generation"`
	URL        string            `json:"url"`
	Sessions   struct {
		Maximum    int `json:"maximum"`
		Registered int `json:"registered"`
		Anonymous  int `json:"anonymous"`
		Allocated  int `json:"allocated"`
	} `json:"sessions"`
}

func portalOf(p broker.PortalView) portalJSON {
	out := portalJSON{Name: p.Name, Labels: p.Labels, UID: p.UID, Generation: p.Generation, URL: p.URL}
	out.Sessions.Maximum, out.Sessions.Registered = p.Maximum, p.Registered
	out.Sessions.Anonymous, out.Sessions.Allocated = p.Anonymous, p.Allocated
	return out
}

type workshopJSON struct {
	Name        string            `json:"name"`
	ID          string            `json:"id,omitempty"`
	Resource    string            `json:"resource,omitempty"`
	Title       string            `json:"title"`
	Description string            `json:"description"`
	Vendor      string            `json:"vendor"`
	Authors     []string          `json:"authors"`
	Difficulty  string            `json:"difficulty"`
	Duration    string            `json:"duration"`
	Tags        []string          `json:"tags"`
	Labels      map[string]string `json:"labels"`
	Logo        string            `json:"logo"`
	URL         string            `json:"url"`
}

// workshopOf describes an environment's workshop. In the catalog, `name` is
// the catalog name (alias or workshop name) and `resource` the workshop
// name; in environment status, `name` is the workshop name (spec §14.1.9).
func workshopOf(env store.Environment, catalog bool) workshopJSON {
	w := env.Workshop
	out := workshopJSON{Name: w.Name, Title: w.Title, Description: w.Description, Vendor: w.Vendor,
		Authors: nonNil(w.Authors), Difficulty: w.Difficulty, Duration: w.Duration, Tags: nonNil(w.Tags),
		Labels: env.Labels, Logo: w.Logo, URL: w.URL}
	if catalog {
		out.Name, out.Resource = env.Key, w.Name
		// Older Educates catalogs carried an id per workshop version.
		h := sha256.Sum256([]byte(w.Name + "\x00" + w.Fingerprint))
		out.ID = hex.EncodeToString(h[:16])
	}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// sessionJSON is a session in catalog, status and user listings.
type sessionJSON struct {
	Name        string             `json:"name"`
	State       store.SessionState `json:"state,omitempty"`
	Namespace   string             `json:"namespace"`
	User        string             `json:"user,omitempty"`
	Workshop    string             `json:"workshop,omitempty"`
	Environment string             `json:"environment,omitempty"`
	Started     Time               `json:"started"`
	Expires     *Time              `json:"expires,omitempty"`
	Countdown   *int               `json:"countdown,omitempty"`
	Extendable  *bool              `json:"extendable,omitempty"`
}

func sessionOf(v broker.SessionView) sessionJSON {
	s := v.Session
	out := sessionJSON{Name: s.Name, State: s.State, Namespace: s.Name, User: s.OwnerName,
		Started: Time(s.Started), Expires: optTime(s.Expires)}
	if !s.Expires.IsZero() {
		countdown := int(v.Schedule.Remaining.Seconds())
		out.Countdown, out.Extendable = &countdown, &v.Schedule.Extendable
	}
	return out
}

// userSessionOf is the shape of spec §7.12: no state or user, but the
// workshop and environment.
func userSessionOf(v broker.SessionView) sessionJSON {
	out := sessionOf(v)
	out.State, out.User = "", ""
	out.Workshop, out.Environment = v.Environment.Workshop.Name, v.Environment.Name
	return out
}

type environmentJSON struct {
	Name      string         `json:"name"`
	State     store.EnvState `json:"state"`
	Workshop  workshopJSON   `json:"workshop"`
	Duration  int            `json:"duration"`
	Capacity  int            `json:"capacity"`
	Reserved  int            `json:"reserved"`
	Allocated int            `json:"allocated"`
	Available int            `json:"available"`
	Sessions  *heldList      `json:"sessions,omitempty"`
}

func environmentOf(v broker.EnvironmentView, catalog, sessions bool) environmentJSON {
	env := v.Environment
	out := environmentJSON{Name: env.Name, State: env.State, Workshop: workshopOf(env, catalog),
		Duration: int(env.Expires.Seconds()), Capacity: env.Capacity, Reserved: env.Reserved,
		Allocated: v.Allocated, Available: v.Available}
	if sessions {
		list := heldList(v.Sessions)
		out.Sessions = &list
	}
	return out
}

// heldList is the allocated sessions of an environment, written as a list
// of sessionJSON. A catalog lists thousands of them: they are written
// token by token, with none of the reflection and per-field allocations of
// encoding sessionJSON values, into the encoder of the answer.
type heldList []broker.HeldView

func (l heldList) MarshalJSONTo(enc *jsontext.Encoder) error {
	var (
		err error
		buf []byte
		kv  = func(k string, v jsontext.Token) {
			if err == nil {
				err = enc.WriteToken(jsontext.String(k))
			}
			if err == nil {
				err = enc.WriteToken(v)
			}
		}
		stamp = func(k string, t time.Time) {
			if err == nil {
				err = enc.WriteToken(jsontext.String(k))
			}
			if err != nil {
				return
			}
			if t.IsZero() {
				err = enc.WriteToken(jsontext.Null)
				return
			}
			buf = append(buf[:0], '"')
			buf = t.UTC().Truncate(time.Millisecond).AppendFormat(buf, timeLayout)
			err = enc.WriteValue(append(buf, '"'))
		}
	)
	if err := enc.WriteToken(jsontext.BeginArray); err != nil {
		return err
	}
	for _, h := range l {
		if err = enc.WriteToken(jsontext.BeginObject); err != nil {
			return err
		}
		kv("name", jsontext.String(h.Name))
		if h.State != "" {
			kv("state", jsontext.String(string(h.State)))
		}
		kv("namespace", jsontext.String(h.Name))
		if h.OwnerName != "" {
			kv("user", jsontext.String(h.OwnerName))
		}
		stamp("started", h.Started)
		if !h.Expires.IsZero() {
			stamp("expires", h.Expires)
			kv("countdown", jsontext.Int(int64(int(h.Schedule.Remaining.Seconds()))))
			kv("extendable", jsontext.Bool(h.Schedule.Extendable))
		}
		if err == nil {
			err = enc.WriteToken(jsontext.EndObject)
		}
		if err != nil {
			return err
		}
	}
	return enc.WriteToken(jsontext.EndArray)
}

// scheduleJSON answers schedule and extend (spec §7.11).
type scheduleJSON struct {
	Status     store.SessionState `json:"status"`
	Started    Time               `json:"started"`
	Expires    Time               `json:"expires"`
	Extended   *bool              `json:"extended,omitempty"`
	Expiring   bool               `json:"expiring"`
	Countdown  *int               `json:"countdown,omitempty"`
	Extendable *bool              `json:"extendable,omitempty"`
}

func scheduleOf(sc broker.Schedule, extend bool) scheduleJSON {
	out := scheduleJSON{Status: sc.State, Started: Time(sc.Started), Expires: Time(sc.Expires), Expiring: sc.Expiring}
	if extend {
		out.Extended = &sc.Extended
	}
	if !sc.Expires.IsZero() {
		countdown := int(sc.Remaining.Seconds())
		out.Countdown, out.Extendable = &countdown, &sc.Extendable
	}
	return out
}
