package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portico-dev/portico/internal/store"
)

// scrapeTimeout bounds the store reads of one scrape: Prometheus gives up
// after its own timeout (10 s by default), and a scrape must not pile up
// transactions on a struggling database.
const scrapeTimeout = 5 * time.Second

var (
	sessionsDesc = prometheus.NewDesc(namespace+"_sessions",
		"Live sessions by environment, workshop and state (STARTING, WAITING, RUNNING, STOPPING), read from the database at scrape time.",
		[]string{"environment", "workshop", "state"}, nil)
	reserveDesc = prometheus.NewDesc(namespace+"_reserve_sessions",
		"Reserved sessions ready to hand out (WAITING, no owner) by environment: the reserve's depth.",
		[]string{"environment", "workshop"}, nil)
	reserveTargetDesc = prometheus.NewDesc(namespace+"_reserve_target_sessions",
		"Reserved sessions the environment's definition asks to keep ready.",
		[]string{"environment", "workshop"}, nil)
	capacityDesc = prometheus.NewDesc(namespace+"_capacity_sessions",
		"Most sessions the environment may hold at once.",
		[]string{"environment", "workshop"}, nil)
	databaseUpDesc = prometheus.NewDesc(namespace+"_database_up",
		"1 when the scrape could read the session counts from the database, else 0 (and the session gauges are absent).",
		nil, nil)
)

// sessionCollector reads the gauges of sessions from the store at scrape
// time, so they are exact for every replica at once.
type sessionCollector struct {
	store store.Store
	log   *slog.Logger
}

// CollectSessions adds the gauges of sessions per environment, read from
// s at each scrape, to the metrics.
func (m *Metrics) CollectSessions(s store.Store, log *slog.Logger) {
	m.reg.MustRegister(sessionCollector{store: s, log: log})
}

func (c sessionCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{sessionsDesc, reserveDesc, reserveTargetDesc, capacityDesc, databaseUpDesc} {
		ch <- d
	}
}

// environmentCounts is what one scrape reads of an environment.
type environmentCounts struct {
	env     store.Environment
	byState map[store.SessionState]int
	reserve int
}

func (c sessionCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	var counts []environmentCounts
	err := c.store.View(ctx, func(tx store.Tx) error {
		counts = counts[:0]
		envs, err := tx.Environments(store.EnvStarting, store.EnvRunning, store.EnvStopping)
		if err != nil {
			return err
		}
		for _, env := range envs {
			ec := environmentCounts{env: env, byState: make(map[store.SessionState]int, len(store.Live))}
			for _, st := range store.Live {
				n, err := tx.CountSessions(store.SessionQuery{EnvID: env.ID, States: []store.SessionState{st}})
				if err != nil {
					return err
				}
				ec.byState[st] = n
			}
			ec.reserve, err = tx.CountSessions(store.SessionQuery{EnvID: env.ID, Ownership: store.Unowned,
				States: []store.SessionState{store.Waiting}})
			if err != nil {
				return err
			}
			counts = append(counts, ec)
		}
		return nil
	})
	if err != nil {
		c.log.Warn("metrics: reading session counts", "err", err)
		ch <- prometheus.MustNewConstMetric(databaseUpDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(databaseUpDesc, prometheus.GaugeValue, 1)
	for _, ec := range counts {
		name, workshop := ec.env.Name, ec.env.Workshop.Name
		for _, st := range store.Live {
			ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(ec.byState[st]), name, workshop, string(st))
		}
		ch <- prometheus.MustNewConstMetric(reserveDesc, prometheus.GaugeValue, float64(ec.reserve), name, workshop)
		ch <- prometheus.MustNewConstMetric(reserveTargetDesc, prometheus.GaugeValue, float64(ec.env.Reserved), name, workshop)
		ch <- prometheus.MustNewConstMetric(capacityDesc, prometheus.GaugeValue, float64(ec.env.Capacity), name, workshop)
	}
}
