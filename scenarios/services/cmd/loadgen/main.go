// Command loadgen is an open-loop load generator: it sends GETs at a fixed
// rate whether or not earlier ones have answered (as real users do), and
// writes what those users felt once a second as a JSON line.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"sandbox.test/services/internal/svc"
)

func main() {
	os.Exit(run())
}

type config struct {
	target      string
	rate        float64
	concurrency int
	timeout     time.Duration
	stats       string
}

func parseFlags() (config, error) {
	var c config
	flag.StringVar(&c.target, "target", "", "`URL` to send GETs to, e.g. http://gateway:8080/ (required)")
	flag.Float64Var(&c.rate, "rate", 100, "requests per second, open loop")
	flag.IntVar(&c.concurrency, "concurrency", 16, "most requests in flight; a request due while this many are in flight is skipped")
	flag.DurationVar(&c.timeout, "timeout", 2*time.Second, "client timeout per request")
	flag.StringVar(&c.stats, "stats", "", "`file` to append the per-second JSON records to (default stdout)")
	flag.Parse()
	if flag.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", flag.Args())
	}
	u, err := url.Parse(c.target)
	switch {
	case c.target == "":
		return c, errors.New("-target is required")
	case err != nil:
		return c, err
	case u.Scheme != "http" || u.Host == "":
		return c, fmt.Errorf("-target %q: want http://host:port/path", c.target)
	case !(c.rate > 0):
		return c, errors.New("-rate must be positive")
	case c.concurrency < 1:
		return c, errors.New("-concurrency must be at least 1")
	case c.timeout <= 0:
		return c, errors.New("-timeout must be positive")
	}
	return c, nil
}

func run() int {
	cfg, err := parseFlags()
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		return 2
	}

	out := io.Writer(os.Stdout)
	logOut := io.Writer(os.Stdout)
	if cfg.stats == "" {
		logOut = os.Stderr // keep stdout pure JSON lines
	} else {
		f, err := os.OpenFile(cfg.stats, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
			return 1
		}
		defer f.Close()
		out = f
	}
	logger := svc.NewLogger(logOut)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	g := &generator{
		target: cfg.target,
		rate:   cfg.rate,
		limit:  int64(cfg.concurrency),
		client: &http.Client{
			Timeout:   cfg.timeout,
			Transport: svc.NewTransport(svc.NewDialer(cfg.timeout), cfg.concurrency),
		},
		errs: svc.NewErrorLog(logger, time.Second),
	}
	logger.Info("starting", "program", "loadgen", "target", cfg.target, "rate", cfg.rate,
		"concurrency", cfg.concurrency, "timeout", cfg.timeout, "stats", cfg.stats,
		"go", runtime.Version(), "pid", os.Getpid())

	go g.schedule(ctx)

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case now := <-tick.C:
			if err := g.emit(out, now); err != nil {
				logger.Error("cannot write stats", "err", err)
				return 1
			}
		case <-ctx.Done():
			err := g.emit(out, time.Now())
			g.errs.Flush()
			if err != nil {
				logger.Error("cannot write stats", "err", err)
				return 1
			}
			logger.Info("stopped", "inflight", g.inflight.Load())
			return 0
		}
	}
}

type generator struct {
	target   string
	rate     float64
	limit    int64
	client   *http.Client
	errs     *svc.ErrorLog
	inflight atomic.Int64
	stats    window
}

// schedule starts request i at start + i/rate, whatever happened to the
// earlier ones. After a stall (GC, CPU starvation) it catches up at once, as
// an open-loop client must; the concurrency cap turns the excess into skips.
func (g *generator) schedule(ctx context.Context) {
	start := time.Now()
	interval := float64(time.Second) / g.rate
	timer := time.NewTimer(0)
	defer timer.Stop()
	var issued int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		due := int64(float64(time.Since(start))/interval) + 1
		for ; issued < due; issued++ {
			g.fire()
		}
		next := start.Add(time.Duration(float64(issued) * interval))
		timer.Reset(time.Until(next))
	}
}

// fire starts one request, or counts it skipped at the concurrency cap. Only
// the scheduler calls it, so the check and the increment cannot race.
func (g *generator) fire() {
	if g.inflight.Load() >= g.limit {
		g.stats.skip()
		return
	}
	g.inflight.Add(1)
	g.stats.started()
	go func() {
		defer g.inflight.Add(-1)
		start := time.Now()
		kind, err := g.get()
		g.stats.done(time.Since(start), kind)
		if err != nil {
			g.errs.Note("request failed", err, "kind", kind)
		}
	}()
}

// get sends one request and reads the whole answer; kind is "" on success.
func (g *generator) get() (kind string, err error) {
	req, err := http.NewRequest(http.MethodGet, g.target, nil)
	if err != nil {
		return errOther, err
	}
	req.Header.Set("User-Agent", "sandbox-loadgen")
	resp, err := g.client.Do(req)
	if err != nil {
		return classify(err), err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return classify(err), err
	}
	switch {
	case resp.StatusCode >= 500:
		return errHTTP5xx, errors.New(resp.Status)
	case resp.StatusCode >= 400:
		return errOther, errors.New(resp.Status)
	}
	return "", nil
}

func classify(err error) string {
	switch svc.ErrorKind(err) {
	case svc.KindTimeout:
		return errTimeout
	case svc.KindRefused:
		return errRefused
	case svc.KindReset:
		return errReset
	}
	return errOther
}

// emit closes the current second and appends its record as one write, so a
// reader tailing the file never sees half a line.
func (g *generator) emit(out io.Writer, now time.Time) error {
	b, err := json.Marshal(g.stats.take(now, g.inflight.Load()))
	if err != nil {
		return err
	}
	_, err = out.Write(append(b, '\n'))
	return err
}
