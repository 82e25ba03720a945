// Command backend is the data tier: it serves each request from the store,
// over a bounded pool of raw TCP connections per store. With several
// -upstream stores, keys are sharded across them by hash.
package main

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"sandbox.test/services/internal/storeproto"
	"sandbox.test/services/internal/svc"
)

const numKeys = 1000

func main() {
	app := svc.NewApp(svc.Spec{Program: "backend", DefaultListen: ":8080", UpstreamScheme: "tcp", Burn: burnCPU})
	b := &backend{app: app}
	for _, u := range app.Cfg.Upstreams {
		b.stores = append(b.stores, &store{
			app:  app,
			url:  u.URL,
			pool: storeproto.NewPool(u.Host, app.Cfg.Pool, app.Cfg.Timeout, app.Dialer().DialContext),
		})
	}
	status := app.RunHTTP(app.Handler(b.serveItem))
	for _, s := range b.stores {
		s.pool.Close()
	}
	os.Exit(status)
}

type backend struct {
	app    *svc.App
	stores []*store
}

// store is one -upstream store and its connection pool.
type store struct {
	app  *svc.App
	url  string
	pool *storeproto.Pool
}

type itemReply struct {
	From  string `json:"from"`
	Key   string `json:"key"`
	Found bool   `json:"found"`
	Value string `json:"value,omitempty"`
	Set   bool   `json:"set,omitempty"`
	Error string `json:"error,omitempty"`
}

// serveItem answers GET <any path>?key=K from the store; one request in ten
// also writes the key back.
func (b *backend) serveItem(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("key")
	if key == "" {
		key = fmt.Sprintf("key-%03d", svc.Intn(numKeys))
	}
	out := itemReply{From: b.app.Cfg.Name, Key: key}
	if !storeproto.ValidKey(key) {
		out.Error = "key must be non-empty and hold no whitespace"
		svc.WriteJSON(w, http.StatusBadRequest, out)
		return
	}
	st := b.storeFor(key)

	val, found, err := st.get(r.Context(), key)
	if err == nil && svc.Intn(10) == 0 {
		out.Set = true
		err = st.set(r.Context(), key, strconv.FormatInt(time.Now().UnixNano(), 36))
	}
	if err != nil {
		out.Error = err.Error()
		svc.WriteJSON(w, http.StatusBadGateway, out)
		return
	}
	out.Found, out.Value = found, val
	svc.WriteJSON(w, http.StatusOK, out)
}

func (b *backend) storeFor(key string) *store {
	if len(b.stores) == 1 {
		return b.stores[0]
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return b.stores[h.Sum32()%uint32(len(b.stores))]
}

func (s *store) get(ctx context.Context, key string) (string, bool, error) {
	start := time.Now()
	val, found, err := s.pool.Get(ctx, key)
	s.observe(ctx, start, err)
	return val, found, err
}

func (s *store) set(ctx context.Context, key, val string) error {
	start := time.Now()
	err := s.pool.Set(ctx, key, val)
	s.observe(ctx, start, err)
	return err
}

func (s *store) observe(ctx context.Context, start time.Time, err error) {
	result := "ok"
	if err != nil {
		var se *storeproto.ServerError
		if errors.As(err, &se) {
			result = svc.KindOther
		} else {
			result = svc.CallErrorKind(ctx, err)
		}
		s.app.Errs.Note("store call failed", err, "upstream", s.url, "kind", result)
	}
	s.app.ObserveUpstream(s.url, result, time.Since(start))
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
