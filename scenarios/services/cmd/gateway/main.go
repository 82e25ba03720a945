// Command gateway is the edge proxy: it forwards every request to an upstream
// with a per-try timeout, and retries failed tries with jittered exponential
// backoff. With several -upstream, each try goes to the next one.
package main

import (
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"sandbox.test/services/internal/svc"
)

const (
	backoffBase = 25 * time.Millisecond
	backoffMax  = 500 * time.Millisecond
)

func main() {
	app := svc.NewApp(svc.Spec{Program: "gateway", DefaultListen: ":8080", UpstreamScheme: "http", Burn: burnCPU})
	g := &gateway{app: app, upstreams: app.HTTPUpstreams()}
	os.Exit(app.RunHTTP(app.Handler(g.forward)))
}

type gateway struct {
	app       *svc.App
	upstreams []*svc.HTTPUpstream
}

type failure struct {
	From  string `json:"from"`
	Error string `json:"error"`
	Tries int    `json:"tries"`
}

func (g *gateway) forward(w http.ResponseWriter, r *http.Request) {
	body, err := svc.ReadBody(w, r)
	if err != nil {
		svc.WriteJSON(w, http.StatusBadRequest, failure{From: g.app.Cfg.Name, Error: err.Error()})
		return
	}
	tries := 1
	if idempotent(r.Method) {
		tries += g.app.Cfg.Retries
	}
	first := svc.Intn(len(g.upstreams))
	var lastErr string
	for try := 0; try < tries; try++ {
		if try > 0 && !svc.Sleep(r.Context(), backoff(try)) {
			return // the client gave up
		}
		up := g.upstreams[(first+try)%len(g.upstreams)]
		reply, err := up.Do(r.Context(), r.Method, r.URL.RequestURI(), body)
		if err != nil {
			lastErr = err.Error()
			continue
		}
		if reply.Status >= 500 {
			lastErr = up.URL + " answered " + http.StatusText(reply.Status)
			continue
		}
		if ct := reply.Header.Get("Content-Type"); ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		w.WriteHeader(reply.Status)
		_, _ = w.Write(reply.Body)
		return
	}
	if r.Context().Err() != nil {
		return
	}
	svc.WriteJSON(w, http.StatusBadGateway, failure{From: g.app.Cfg.Name, Error: lastErr, Tries: tries})
}

// idempotent methods are safe to send again after a try that may have reached
// the upstream.
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// backoff before retry n (n ≥ 1): exponential from backoffBase, capped at
// backoffMax, with "equal jitter" (half fixed, half random) so that callers
// that failed together do not retry together.
func backoff(n int) time.Duration {
	d := backoffBase << uint(n-1)
	if d > backoffMax || d <= 0 {
		d = backoffMax
	}
	return d/2 + time.Duration(svc.Int63n(int64(d/2)+1))
}

// burnSink keeps the compiler from dropping burnCPU's arithmetic.
var burnSink atomic.Uint64

// burnCPU spins until stop is closed; the cpu-burn fault runs it on as many
// goroutines as asked. Out of line so that CPU profiles name it.
//
//go:noinline
func burnCPU(stop <-chan struct{}) {
	x := uint64(time.Now().UnixNano()) | 1
	for {
		select {
		case <-stop:
			burnSink.Store(x)
			return
		default:
		}
		for i := 0; i < 1<<20; i++ {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
		}
	}
}
