// Command store is a line-oriented key/value store over raw TCP (PING, GET,
// SET; see package storeproto). Connections are long-lived: the backend keeps
// a pool of them.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"sandbox.test/services/internal/storeproto"
	"sandbox.test/services/internal/svc"
)

const (
	// connIdleTimeout closes connections that sent nothing for this long;
	// the backend's pool retires idle connections well before.
	connIdleTimeout = 5 * time.Minute
	writeTimeout    = 10 * time.Second
)

func main() {
	app := svc.NewApp(svc.Spec{Program: "store", DefaultListen: ":7070", Burn: burnCPU})
	s := &server{app: app, kv: storeproto.NewKV(), conns: map[net.Conn]struct{}{}}
	os.Exit(app.Run(s.serve))
}

type server struct {
	app *svc.App
	kv  *storeproto.KV

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	handlers sync.WaitGroup
	draining atomic.Bool
}

func (s *server) serve(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.app.Cfg.Listen)
	if err != nil {
		return err
	}
	s.app.Log.Info("listening", "addr", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- s.accept(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	ln.Close()
	<-errc
	return s.drain()
}

func (s *server) accept(ln net.Listener) error {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err != nil {
			// Likely out of file descriptors: wait for connections to go away.
			s.app.Errs.Note("accept failed", err)
			if backoff = 2*backoff + 5*time.Millisecond; backoff > time.Second {
				backoff = time.Second
			}
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.handlers.Add(1)
		go s.handle(c)
	}
}

// drain lets each connection finish the command it is running, then closes
// it; connections still busy after the grace period are cut.
func (s *server) drain() error {
	s.draining.Store(true)
	s.mu.Lock()
	for c := range s.conns {
		_ = c.SetReadDeadline(time.Now()) // wakes handlers blocked in Read
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-time.After(svc.ShutdownGrace):
	}
	s.mu.Lock()
	n := len(s.conns)
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	<-done
	return fmt.Errorf("closed %d busy connections after %s", n, svc.ShutdownGrace)
}

func (s *server) handle(c net.Conn) {
	defer s.handlers.Done()
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()

	r := bufio.NewReaderSize(c, storeproto.MaxLine)
	for {
		_ = c.SetReadDeadline(time.Now().Add(connIdleTimeout))
		if s.draining.Load() {
			return
		}
		line, err := r.ReadSlice('\n')
		if err != nil {
			s.readFailed(c, err)
			return
		}
		start := time.Now()
		cmd := string(line[:len(line)-1])

		act := s.app.Fault.Action()
		if act.Hang {
			s.hang(c)
			s.app.ObserveRequest("499", time.Since(start))
			return
		}
		if act.Delay > 0 && !s.sleep(act.Delay) {
			return
		}

		reply := s.kv.Exec(cmd)
		_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
		_, err = io.WriteString(c, reply+"\n")
		s.app.ObserveRequest(storeproto.ReplyWord(reply), time.Since(start))
		if err != nil {
			s.app.Errs.Note("write failed", err, "kind", svc.ErrorKind(err))
			return
		}
	}
}

func (s *server) readFailed(c net.Conn, err error) {
	switch {
	case errors.Is(err, io.EOF):
	case errors.Is(err, bufio.ErrBufferFull):
		_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
		_, _ = io.WriteString(c, "ERR line too long\n")
		s.app.ObserveRequest("ERR", 0)
	case errors.Is(err, os.ErrDeadlineExceeded):
		// Idle for connIdleTimeout, or woken to drain.
	default:
		s.app.Errs.Note("read failed", err, "kind", svc.ErrorKind(err))
	}
}

// hang is the hang fault on a raw connection: stop answering and swallow
// whatever arrives until the client gives up and closes (or we shut down).
func (s *server) hang(c net.Conn) {
	_ = c.SetReadDeadline(time.Time{})
	if s.draining.Load() {
		return
	}
	_, _ = io.Copy(io.Discard, c)
}

// sleep is the slow fault; false if the server began shutting down.
func (s *server) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.app.Stopping():
		return false
	}
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
