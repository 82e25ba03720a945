package svc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// maxBody bounds what is read from a request or an upstream's reply.
const maxBody = 1 << 20

// WriteJSON answers with code and v as JSON.
func WriteJSON(w http.ResponseWriter, code int, v interface{}) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

func serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
}

// Handler is the data plane of an HTTP service: GET /health answers at once;
// every other request is work, timed and counted, and subject to the
// app-level fault before work sees it.
func (a *App) Handler(work http.HandlerFunc) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", serveHealth)
	mux.Handle("/", a.instrument(a.injectFault(work)))
	return mux
}

// statusRecorder remembers the status code a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(p)
}

// statusClientClosed is nginx's code for "the client went away before the
// answer": nothing is sent, but the metrics tell it apart from a 200.
const statusClientClosed = 499

func (a *App) instrument(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		code := rec.code
		if code == 0 {
			code = http.StatusOK
			if r.Context().Err() != nil {
				code = statusClientClosed
			}
		}
		a.ObserveRequest(strconv.Itoa(code), time.Since(start))
	})
}

func (a *App) injectFault(work http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		act := a.Fault.Action()
		if act.Audit {
			a.startAudit()
		}
		if act.Hang {
			select {
			case <-r.Context().Done():
			case <-a.Stopping():
				WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "shutting down"})
			}
			return
		}
		if act.Delay > 0 && !Sleep(r.Context(), act.Delay) {
			return
		}
		work(w, r)
	}
}

// Sleep waits for d; false if ctx ended first.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// HTTPUpstream calls one HTTP upstream through a shared keep-alive pool.
type HTTPUpstream struct {
	Upstream
	app    *App
	client *http.Client
}

// HTTPUpstreams returns a caller for each -upstream, sharing one transport.
func (a *App) HTTPUpstreams() []*HTTPUpstream {
	client := &http.Client{
		Transport: NewTransport(a.dialer, a.Cfg.Pool),
		// Redirects are answers too: pass them on rather than follow them.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	ups := make([]*HTTPUpstream, len(a.Cfg.Upstreams))
	for i, u := range a.Cfg.Upstreams {
		ups[i] = &HTTPUpstream{Upstream: u, app: a, client: client}
	}
	return ups
}

// Reply is an upstream's answer, body read in full.
type Reply struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends method uri (path and query) with body to the upstream, within
// -timeout for the whole exchange, body included. A 5xx is a Reply, not an
// error; callers decide. Every call is counted in the upstream metrics.
func (u *HTTPUpstream) Do(ctx context.Context, method, uri string, body []byte) (*Reply, error) {
	ctx, cancel := context.WithTimeout(ctx, u.app.Cfg.Timeout)
	defer cancel()
	start := time.Now()
	reply, err := u.do(ctx, method, uri, body)
	result := "ok"
	switch {
	case err != nil:
		result = CallErrorKind(ctx, err)
		u.app.Errs.Note("upstream call failed", err, "upstream", u.URL, "kind", result)
	case reply.Status >= 500:
		result = "http_5xx"
		u.app.Errs.Note("upstream answered 5xx", fmt.Errorf("%s %s: %d", method, uri, reply.Status), "upstream", u.URL)
	}
	u.app.ObserveUpstream(u.URL, result, time.Since(start))
	return reply, err
}

func (u *HTTPUpstream) do(ctx context.Context, method, uri string, body []byte) (*Reply, error) {
	var rd io.Reader
	if len(body) > 0 {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+u.Host+u.Path+uri, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "sandbox-"+u.app.Cfg.Program)
	resp, err := u.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("reading reply from %s: %w", u.URL, err)
	}
	return &Reply{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// ReadBody reads a request body of at most maxBody bytes.
func ReadBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
}
