// Command api is the business tier: it fans each request out to all its
// upstreams in parallel, each call under its own deadline, and merges the
// answers. The request fails (502) if any part fails or answers 5xx.
package main

import (
	"encoding/json"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"sandbox.test/services/internal/svc"
)

func main() {
	app := svc.NewApp(svc.Spec{Program: "api", DefaultListen: ":8080", UpstreamScheme: "http", Burn: burnCPU})
	a := &api{app: app, upstreams: app.HTTPUpstreams()}
	os.Exit(app.RunHTTP(app.Handler(a.fanOut)))
}

type api struct {
	app       *svc.App
	upstreams []*svc.HTTPUpstream
}

type part struct {
	Upstream string          `json:"upstream"`
	Status   int             `json:"status,omitempty"`
	Body     json.RawMessage `json:"body,omitempty"`
	Error    string          `json:"error,omitempty"`
}

type merged struct {
	From  string `json:"from"`
	Parts []part `json:"parts"`
	Error string `json:"error,omitempty"`
}

func (a *api) fanOut(w http.ResponseWriter, r *http.Request) {
	parts := make([]part, len(a.upstreams))
	var wg sync.WaitGroup
	for i, up := range a.upstreams {
		wg.Add(1)
		go func(i int, up *svc.HTTPUpstream) {
			defer wg.Done()
			parts[i] = call(r, up)
		}(i, up)
	}
	wg.Wait()
	if r.Context().Err() != nil {
		return // the client gave up; nobody to answer
	}

	out := merged{From: a.app.Cfg.Name, Parts: parts}
	code := http.StatusOK
	for _, p := range parts {
		switch {
		case p.Error != "":
			out.Error = p.Upstream + ": " + p.Error
			svc.WriteJSON(w, http.StatusBadGateway, out)
			return
		case p.Status >= 400 && code == http.StatusOK:
			// The caller's mistake (a bad key, say): pass it on.
			code = p.Status
			out.Error = p.Upstream + ": answered " + http.StatusText(p.Status)
		}
	}
	svc.WriteJSON(w, code, out)
}

func call(r *http.Request, up *svc.HTTPUpstream) part {
	p := part{Upstream: up.URL}
	reply, err := up.Do(r.Context(), http.MethodGet, r.URL.RequestURI(), nil)
	if err != nil {
		p.Error = err.Error()
		return p
	}
	p.Status = reply.Status
	if json.Valid(reply.Body) {
		p.Body = reply.Body
	}
	if reply.Status >= 500 {
		p.Error = "answered " + http.StatusText(reply.Status)
	}
	return p
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
