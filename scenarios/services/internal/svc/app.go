// Package svc is the plumbing shared by the service programs: flags, logging,
// the control plane (metrics, pprof, app faults), upstream calls and
// graceful shutdown.
package svc

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"sandbox.test/services/internal/metrics"
)

// ShutdownGrace is how long in-flight work may take to finish after SIGTERM.
const ShutdownGrace = 5 * time.Second

// Spec describes a service program to NewApp.
type Spec struct {
	Program        string
	DefaultListen  string
	UpstreamScheme string                     // "http", "tcp" or "" (no upstreams)
	Burn           func(stop <-chan struct{}) // main.burnCPU
}

// App is one running service: its configuration, logs, metrics and fault
// switch. Programs build one with NewApp and hand their data plane to Run or
// RunHTTP.
type App struct {
	Cfg     *Config
	Log     *Logger
	Errs    *ErrorLog
	Metrics *metrics.Registry
	Fault   *FaultSwitch

	ctx  context.Context // done on SIGTERM/SIGINT
	stop context.CancelFunc

	requests    *metrics.CounterVec
	reqDuration *metrics.HistogramVec
	upCalls     *metrics.CounterVec
	upDuration  *metrics.HistogramVec
	faultGauge  *metrics.GaugeVec
	faultMu     sync.Mutex // keeps the switch and its gauge in step

	dialer      *Dialer
	auditClient *http.Client
}

// NewApp parses the command line and sets up logging, metrics and the fault
// switch. It exits with status 2 on bad flags.
func NewApp(spec Spec) *App {
	cfg, err := ParseFlags(spec.Program, spec.DefaultListen, spec.UpstreamScheme, os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		os.Exit(2)
	}
	return newApp(cfg, spec.Burn)
}

func newApp(cfg *Config, burn func(stop <-chan struct{})) *App {
	a := &App{
		Cfg:     cfg,
		Log:     NewLogger(os.Stdout),
		Metrics: metrics.NewRegistry("name", cfg.Name),
		Fault:   NewFaultSwitch(burn, len(cfg.Upstreams) > 0),
		dialer:  NewDialer(cfg.Timeout),
	}
	a.Errs = NewErrorLog(a.Log, time.Second)
	a.ctx, a.stop = signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)

	// No timeout at any level: the leak fault depends on it.
	a.auditClient = &http.Client{Transport: NewTransport(NewDialer(0), cfg.Pool)}

	a.requests = a.Metrics.Counter("sandbox_requests_total",
		"Requests served, by status code (the store: by reply word; 499: the client went away first).", "code")
	a.reqDuration = a.Metrics.Histogram("sandbox_request_duration_seconds",
		"Time to serve a request, faults included.", metrics.LatencyBuckets)
	a.upCalls = a.Metrics.Counter("sandbox_upstream_calls_total",
		"Calls to upstreams, by result: ok, http_5xx, timeout, refused, reset, canceled, other.", "upstream", "result")
	a.upDuration = a.Metrics.Histogram("sandbox_upstream_duration_seconds",
		"Upstream call latency, waiting for a pooled connection included.", metrics.LatencyBuckets, "upstream")
	a.Metrics.GaugeFunc("sandbox_goroutines", "Goroutines that currently exist.",
		func() float64 { return float64(runtime.NumGoroutine()) })
	faultGauge := a.Metrics.Gauge("sandbox_app_fault", "1 for the app-level fault in force, 0 for the others.", "kind")
	for _, k := range FaultKinds {
		faultGauge.With(k)
	}
	faultGauge.With(FaultNone).Set(1)
	a.faultGauge = faultGauge
	return a
}

// Stopping is closed when the program has been asked to shut down.
func (a *App) Stopping() <-chan struct{} { return a.ctx.Done() }

// Dialer returns the dialer for upstream connections (connect timeout = -timeout).
func (a *App) Dialer() *Dialer { return a.dialer }

// ObserveRequest records one served request.
func (a *App) ObserveRequest(code string, d time.Duration) {
	a.requests.With(code).Inc()
	a.reqDuration.With().Observe(d.Seconds())
}

// ObserveUpstream records one upstream call; result is "ok" or an error kind.
func (a *App) ObserveUpstream(upstream, result string, d time.Duration) {
	a.upCalls.With(upstream, result).Inc()
	a.upDuration.With(upstream).Observe(d.Seconds())
}

// Run starts the control plane, logs the start-up line, and runs serve until
// SIGTERM/SIGINT. serve must return once its context is done and in-flight
// work has drained (or failed to within ShutdownGrace). Run returns the exit
// status.
func (a *App) Run(serve func(ctx context.Context) error) int {
	defer a.stop()
	adminLn, err := net.Listen("tcp", a.Cfg.Admin)
	if err != nil {
		a.Log.Error("cannot listen", "admin", a.Cfg.Admin, "err", err)
		return 1
	}
	admin := &http.Server{
		Handler:           a.adminHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          a.httpErrorLog("admin"),
	}
	go func() {
		if err := admin.Serve(adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.Log.Error("admin server failed", "err", err)
		}
	}()

	ups := make([]string, len(a.Cfg.Upstreams))
	for i, u := range a.Cfg.Upstreams {
		ups[i] = u.URL
	}
	a.Log.Info("starting", "program", a.Cfg.Program, "name", a.Cfg.Name, "listen", a.Cfg.Listen,
		"admin", adminLn.Addr(), "upstreams", strings.Join(ups, ","), "timeout", a.Cfg.Timeout,
		"retries", a.Cfg.Retries, "pool", a.Cfg.Pool, "go", runtime.Version(), "pid", os.Getpid())

	errc := make(chan error, 1)
	go func() { errc <- serve(a.ctx) }()

	status := 0
	select {
	case err := <-errc:
		a.Log.Error("data plane failed", "err", err)
		status = 1
	case <-a.ctx.Done():
		a.stop() // a second signal kills at once
		a.Log.Info("shutting down", "grace", ShutdownGrace)
		if err := <-errc; err != nil {
			a.Log.Warn("unclean shutdown", "err", err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = admin.Shutdown(ctx)
	a.Errs.Flush()
	a.Log.Info("stopped", "status", status)
	return status
}

// RunHTTP is Run for an HTTP data plane serving h.
func (a *App) RunHTTP(h http.Handler) int {
	return a.Run(func(ctx context.Context) error {
		ln, err := net.Listen("tcp", a.Cfg.Listen)
		if err != nil {
			return err
		}
		srv := &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          a.httpErrorLog("http server"),
		}
		a.Log.Info("listening", "addr", ln.Addr())
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
		}
		sctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
			return fmt.Errorf("graceful shutdown: %w", err)
		}
		return nil
	})
}

func (a *App) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", a.serveReadiness)
	mux.Handle("/metrics", a.Metrics)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/admin/fault", a.serveFault)
	return mux
}

// serveReadiness is the control plane's /health, which a readiness probe asks:
// ok, unless the unready fault is set.
func (a *App) serveReadiness(w http.ResponseWriter, r *http.Request) {
	if a.Fault.Get().Kind == FaultUnready {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "not ready\n")
		return
	}
	serveHealth(w, r)
}

func (a *App) serveFault(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		WriteJSON(w, http.StatusOK, a.Fault.Get())
	case http.MethodPost, http.MethodPut:
		f, err := DecodeFault(http.MaxBytesReader(w, r.Body, 4<<10))
		if err != nil {
			WriteJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		if err := a.setFault(f); err != nil {
			WriteJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		// Not logged: a learner reads this log, and the switch is the exercise's answer.
		WriteJSON(w, http.StatusOK, f)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST, PUT")
		WriteJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
	}
}

func (a *App) setFault(f Fault) error {
	a.faultMu.Lock()
	defer a.faultMu.Unlock()
	prev, err := a.Fault.Set(f)
	if err != nil {
		return err
	}
	a.faultGauge.With(prev.Kind).Set(0)
	a.faultGauge.With(f.Kind).Set(1)
	return nil
}

// httpErrorLog routes net/http's own error lines through the summariser.
func (a *App) httpErrorLog(what string) *log.Logger {
	return log.New(errLogWriter{a.Errs, what}, "", 0)
}

type errLogWriter struct {
	errs *ErrorLog
	what string
}

func (w errLogWriter) Write(p []byte) (int, error) {
	w.errs.Note(w.what, errors.New(strings.TrimSpace(string(p))))
	return len(p), nil
}
