package exporter

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/kpibridge/kpibridge/catalog"
)

// DefaultListenAddress is where kpibridge serves /metrics. The 9100–9999
// range of Prometheus' default port allocations is taken, so kpibridge uses a
// port above it.
const DefaultListenAddress = ":10464"

// HandlerOptions are what the HTTP handler serves.
type HandlerOptions struct {
	Gatherer prometheus.Gatherer
	// Catalog and Snapshots are nil when the export role does not run here.
	Catalog   *catalog.Catalog
	Snapshots SnapshotSource
	// Ready reports whether the process can serve: ClickHouse reachable and a
	// first snapshot taken.
	Ready func(ctx context.Context) error
	// Status, when set, is added to the /-/ready answer: whether this
	// process holds the transform role or stands by.
	Status    func() string
	Roles     []string
	Version   string
	Staleness int
	DocsURL   string // base of KPI definition links, e.g. a docs/KPIS.md URL
	// Currency is the reporting currency the landing page shows amounts in
	// (events.reporting_currency; default DefaultCurrency).
	Currency string
	Logger   *slog.Logger
	// Now is the landing page's clock (default time.Now).
	Now func() time.Time
	// Scorecard returns the executive scorecard page as last built, false
	// before the first build; nil serves no /scorecard. Requests never
	// query: the page is rebuilt in the background.
	Scorecard func() ([]byte, bool)
}

// NewHandler returns the mux: /metrics, / (landing page), /scorecard, /-/healthy, /-/ready.
func NewHandler(o HandlerOptions) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(o.Logger.Handler(), slog.LevelError),
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	}))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("kpibridge is healthy.\n"))
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		status := ""
		if o.Status != nil {
			status = o.Status() + "\n"
		}
		if o.Ready != nil {
			if err := o.Ready(ctx); err != nil {
				http.Error(w, "kpibridge is not ready: "+err.Error()+"\n"+status, http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = w.Write([]byte("kpibridge is ready.\n" + status))
	})
	if o.Scorecard != nil {
		mux.HandleFunc("/scorecard", func(w http.ResponseWriter, r *http.Request) {
			page, ok := o.Scorecard()
			if !ok {
				http.Error(w, "the scorecard is being built; try again in a few seconds\n", http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write(page)
		})
	}
	mux.Handle("/", landingPage(o))
	return mux
}

// Serve runs the HTTP server with exporter-toolkit (TLS and basic auth from
// --web.config.file) until ctx ends, then shuts it down gracefully.
func Serve(ctx context.Context, handler http.Handler, flags *web.FlagConfig, logger *slog.Logger) error {
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- web.ListenAndServe(srv, flags, logger) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := srv.Shutdown(sctx)
		if lerr := <-errc; lerr != nil && !errors.Is(lerr, http.ErrServerClosed) && err == nil {
			err = lerr
		}
		return err
	}
}
