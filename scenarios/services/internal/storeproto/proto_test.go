package storeproto

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestExec(t *testing.T) {
	kv := NewKV()
	for _, tc := range []struct{ cmd, want string }{
		{"PING", "PONG"},
		{"ping", "PONG"},
		{"PING extra", "ERR usage: PING"},
		{"GET k1", "NIL"},
		{"SET k1 hello world", "OK"},
		{"GET k1", "VAL hello world"},
		{"GET k1\r", "VAL hello world"},
		{"SET k1 ", "OK"},
		{"GET k1", "VAL "},
		{"GET", "ERR usage: GET key"},
		{"GET a b", "ERR usage: GET key"},
		{"SET k1", "ERR usage: SET key value"},
		{"SET", "ERR usage: SET key value"},
		{"", "ERR empty command"},
		{"DEL k1", `ERR unknown command "DEL"`},
	} {
		if got := kv.Exec(tc.cmd); got != tc.want {
			t.Errorf("Exec(%q) = %q, want %q", tc.cmd, got, tc.want)
		}
	}
}

// testServer is a minimal store: Exec over TCP, plus switches to misbehave.
type testServer struct {
	ln       net.Listener
	kv       *KV
	accepted atomic.Int32
	silent   atomic.Bool // read commands but never answer
	dropNext atomic.Bool // close the connection instead of answering, once
	wg       sync.WaitGroup
}

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{ln: ln, kv: NewKV()}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *testServer) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if s.silent.Load() {
			continue
		}
		if s.dropNext.CompareAndSwap(true, false) {
			return
		}
		if _, err := io.WriteString(c, s.kv.Exec(strings.TrimSuffix(line, "\n"))+"\n"); err != nil {
			return
		}
	}
}

func (s *testServer) pool(size int, timeout time.Duration) *Pool {
	var d net.Dialer
	return NewPool(s.ln.Addr().String(), size, timeout, d.DialContext)
}

func TestPoolGetSetReusesConnection(t *testing.T) {
	s := newTestServer(t)
	p := s.pool(4, time.Second)
	defer p.Close()
	ctx := context.Background()

	if err := p.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if _, found, err := p.Get(ctx, "k"); err != nil || found {
		t.Fatalf("Get(k) before SET: found=%v err=%v", found, err)
	}
	if err := p.Set(ctx, "k", "v with spaces"); err != nil {
		t.Fatal(err)
	}
	v, found, err := p.Get(ctx, "k")
	if err != nil || !found || v != "v with spaces" {
		t.Fatalf("Get(k) = %q, %v, %v", v, found, err)
	}
	if n := s.accepted.Load(); n != 1 {
		t.Errorf("sequential calls opened %d connections, want 1", n)
	}
	if err := p.Set(ctx, "bad key", "v"); err == nil {
		t.Error("Set with a space in the key succeeded")
	}
}

func TestPoolServerErrorKeepsConnection(t *testing.T) {
	s := newTestServer(t)
	p := s.pool(1, time.Second)
	defer p.Close()
	_, err := p.Do(context.Background(), "NOPE")
	var se *ServerError
	if !errors.As(err, &se) || !strings.Contains(se.Msg, "unknown command") {
		t.Fatalf("Do(NOPE) err = %v, want a ServerError", err)
	}
	if err := p.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := s.accepted.Load(); n != 1 {
		t.Errorf("ERR reply cost a connection: %d opened, want 1", n)
	}
}

func TestPoolDiscardsBrokenConnection(t *testing.T) {
	s := newTestServer(t)
	p := s.pool(2, time.Second)
	defer p.Close()
	ctx := context.Background()
	if err := p.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	s.dropNext.Store(true)
	if err := p.Ping(ctx); err == nil {
		t.Fatal("Ping over a connection the server closed succeeded")
	}
	if err := p.Ping(ctx); err != nil {
		t.Fatalf("Ping after a broken connection: %v", err)
	}
	if n := s.accepted.Load(); n != 2 {
		t.Errorf("opened %d connections, want 2 (the broken one replaced)", n)
	}
}

func TestPoolDeadline(t *testing.T) {
	s := newTestServer(t)
	s.silent.Store(true)
	p := s.pool(1, 100*time.Millisecond)
	defer p.Close()

	start := time.Now()
	err := p.Ping(context.Background())
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Ping to a silent store: err = %v, want a deadline error", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > time.Second {
		t.Errorf("Ping gave up after %v, want about 100ms", d)
	}
	s.silent.Store(false)
	if err := p.Ping(context.Background()); err != nil {
		t.Fatalf("the timed-out connection was reused: %v", err)
	}
	if n := s.accepted.Load(); n != 2 {
		t.Errorf("opened %d connections, want 2", n)
	}
}

func TestPoolBoundsOpenConnections(t *testing.T) {
	s := newTestServer(t)
	s.silent.Store(true)
	p := s.pool(2, 500*time.Millisecond)
	defer p.Close()

	var holders sync.WaitGroup
	for i := 0; i < 2; i++ {
		holders.Add(1)
		go func() {
			defer holders.Done()
			_ = p.Ping(context.Background())
		}()
	}
	for deadline := time.Now().Add(time.Second); s.accepted.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}

	var waiters sync.WaitGroup
	var waited atomic.Int32
	for i := 0; i < 3; i++ {
		waiters.Add(1)
		go func() {
			defer waiters.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			err := p.Ping(ctx)
			if errors.Is(err, context.DeadlineExceeded) && strings.Contains(err.Error(), "waiting for a pooled connection") {
				waited.Add(1)
			}
		}()
	}
	waiters.Wait()
	holders.Wait()
	if n := s.accepted.Load(); n != 2 {
		t.Errorf("opened %d connections with a pool of 2", n)
	}
	if waited.Load() != 3 {
		t.Errorf("%d calls timed out waiting for a connection, want 3", waited.Load())
	}
}
