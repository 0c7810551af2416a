package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the relay's Prometheus metrics, on a registry the Server
// owns (never the global default), so two relays in one process (tests)
// keep separate counts. Everything here is static after newMetrics; the
// metric values are safe for concurrent use.
type metrics struct {
	reg *prometheus.Registry

	conns      prometheus.Gauge
	connsTotal prometheus.Counter
	subs       prometheus.Gauge
	blobsIn    prometheus.Counter
	bytesIn    prometheus.Counter
	dupsIn     prometheus.Counter
	blobsOut   prometheus.Counter
	bytesOut   prometheus.Counter
	// damagedSkipped counts damaged blobs a subscriber was taken past.
	damagedSkipped prometheus.Counter
	putAck         prometheus.Histogram
	rejections     *prometheus.CounterVec // labels: code, limit
}

func newMetrics(store Store) *metrics {
	const ns = "kintsugi_relay"
	m := &metrics{
		reg: prometheus.NewRegistry(),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "connections",
			Help: "WebSocket connections open now, authenticated or not."}),
		connsTotal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "connections_total",
			Help: "WebSocket connections accepted since the relay started."}),
		subs: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "subscriptions",
			Help: "Journal subscriptions open now."}),
		blobsIn: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "blobs_in_total",
			Help: "Blobs stored (puts of a blob the journal did not hold)."}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "bytes_in_total",
			Help: "Bytes of the blobs stored."}),
		dupsIn: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "duplicate_puts_total",
			Help: "Puts of a blob the journal already held (resends; nothing stored)."}),
		damagedSkipped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "damaged_blobs_skipped_total",
			Help: "Damaged stored blobs a subscriber was taken past without them (each is named in the log; run kintsugi-relay check)."}),
		blobsOut: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "blobs_out_total",
			Help: "Blobs sent to subscribers (purged records included)."}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "bytes_out_total",
			Help: "Bytes of the blobs sent to subscribers."}),
		putAck: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "put_ack_seconds",
			Help:    "Time from reading a put to queueing its ok: checks, the durable store write, and waiting for other writes to the same journal.",
			Buckets: []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "limit_rejections_total",
			Help: "Requests and connections refused by a limit, by error code sent and by limit."}, []string{"code", "limit"}),
	}
	// Every refusal series exists from the start, at 0, so a dashboard or
	// an alert sees it before the first refusal.
	for _, cl := range [][2]string{
		{"rate-limited", limitRequestRate}, {"rate-limited", limitJournalPutRate},
		{"quota-exceeded", limitJournalQuota}, {"too-many-connections", limitConns},
		{"too-many-connections", limitConnsPerAddress}, {"too-many-connections", limitUnauthConns},
		{"origin-not-allowed", limitOrigin},
		{"too-large", limitSize}, {"too-large", limitMessageSize}, {"auth-required", limitAuthTimeout},
		{"none", limitSlowReader}, {"invalid", limitSubscriptions},
	} {
		m.rejections.WithLabelValues(cl[0], cl[1])
	}
	m.reg.MustRegister(m.conns, m.connsTotal, m.subs, m.blobsIn, m.bytesIn, m.dupsIn, m.blobsOut, m.bytesOut, m.damagedSkipped, m.putAck, m.rejections)
	if sz, ok := store.(sizer); ok {
		storage := func(part string, f func() float64) prometheus.GaugeFunc {
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "storage_bytes",
				Help:        "Size of the store on disk, by part: lsm (Badger's tables: the index, members, invites) and vlog (Badger's value log), as Badger last measured them (refreshed about once a minute), and blobs (the segment files holding the blobs, measured when scraped).",
				ConstLabels: prometheus.Labels{"part": part}}, f)
		}
		m.reg.MustRegister(
			storage("lsm", func() float64 { lsm, _ := sz.Size(); return float64(lsm) }),
			storage("vlog", func() float64 { _, vlog := sz.Size(); return float64(vlog) }),
			storage("blobs", func() float64 { return float64(sz.BlobBytes()) }),
		)
	}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// reject counts one refusal by a limit.
func (m *metrics) reject(code, limit string) {
	m.rejections.WithLabelValues(code, limit).Inc()
}

// MetricsHandler returns an http.Handler for a separate, private listener:
// it serves the relay's Prometheus metrics at /metrics, and /healthz and
// /readyz as [Server.ServeHTTP] does. [Server.ServeHTTP] does not serve
// /metrics: what the counters show (when devices connect and write) is
// metadata a relay operator may not want public.
func (s *Server) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{Registry: s.metrics.reg}))
	mux.HandleFunc("GET /healthz", s.serveHealthz)
	mux.HandleFunc("GET /readyz", s.serveReadyz)
	return mux
}

// Registry returns the registry holding the relay's metrics, for a caller
// that serves or gathers them itself.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }
