package storeproto

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// DialFunc opens a connection, e.g. (*svc.Dialer).DialContext.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// ErrPoolClosed is returned by calls on a closed pool.
var ErrPoolClosed = errors.New("store pool closed")

// ServerError is an ERR reply. The connection that carried it stays usable.
type ServerError struct{ Msg string }

func (e *ServerError) Error() string { return "store: " + e.Msg }

// idleTimeout retires pooled connections unused this long, before a NAT or
// the server's own idle timeout can cut them silently.
const idleTimeout = 90 * time.Second

// Pool is a bounded pool of connections to one store. At most size
// connections are open at once; a call that finds them all busy waits for one
// until its deadline. A connection that fails in any way (I/O error,
// deadline, unexpected reply) is closed, never reused.
type Pool struct {
	addr    string
	timeout time.Duration
	dial    DialFunc

	slots chan struct{} // one token per open (or opening) connection

	mu     sync.Mutex
	idle   []*conn // most recently used last
	closed bool
}

type conn struct {
	net.Conn
	r        *bufio.Reader
	lastUsed time.Time
}

// NewPool returns a pool of up to size connections to addr (host:port). Each
// call, waiting for a connection included, is bounded by timeout.
func NewPool(addr string, size int, timeout time.Duration, dial DialFunc) *Pool {
	if size < 1 {
		size = 1
	}
	return &Pool{addr: addr, timeout: timeout, dial: dial, slots: make(chan struct{}, size)}
}

// Addr returns the store's address.
func (p *Pool) Addr() string { return p.addr }

// Ping checks the store answers.
func (p *Pool) Ping(ctx context.Context) error {
	reply, err := p.Do(ctx, "PING")
	if err == nil && reply != "PONG" {
		err = fmt.Errorf("store %s: PING: unexpected reply %q", p.addr, reply)
	}
	return err
}

// Get returns the value of key, and whether it was set.
func (p *Pool) Get(ctx context.Context, key string) (string, bool, error) {
	if err := checkKey(key); err != nil {
		return "", false, err
	}
	reply, err := p.Do(ctx, "GET "+key)
	if err != nil {
		return "", false, err
	}
	if reply == "NIL" {
		return "", false, nil
	}
	if v, ok := cutPrefix(reply, "VAL "); ok {
		return v, true, nil
	}
	return "", false, fmt.Errorf("store %s: GET: unexpected reply %q", p.addr, reply)
}

// Set sets key to value.
func (p *Pool) Set(ctx context.Context, key, value string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if strings.ContainsAny(value, "\r\n") {
		return errors.New("store: value holds a newline")
	}
	reply, err := p.Do(ctx, "SET "+key+" "+value)
	if err == nil && reply != "OK" {
		err = fmt.Errorf("store %s: SET: unexpected reply %q", p.addr, reply)
	}
	return err
}

// ValidKey tells whether key can be sent: non-empty, no whitespace.
func ValidKey(key string) bool {
	return key != "" && !strings.ContainsAny(key, " \t\r\n")
}

func checkKey(key string) error {
	if !ValidKey(key) {
		return fmt.Errorf("store: bad key %q", key)
	}
	return nil
}

// Do sends one command line and returns the reply line, both without the
// newline. An ERR reply is returned as a *ServerError.
func (p *Pool) Do(ctx context.Context, cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()

	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("store %s: waiting for a pooled connection: %w", p.addr, ctx.Err())
	}
	c, err := p.get(ctx)
	if err != nil {
		<-p.slots
		return "", err
	}

	reply, err := c.roundTrip(ctx, cmd)
	if err != nil {
		c.Close()
		<-p.slots
		return "", fmt.Errorf("store %s: %w", p.addr, err)
	}
	p.put(c)
	<-p.slots
	if msg, ok := cutPrefix(reply, "ERR"); ok {
		return "", &ServerError{Msg: strings.TrimSpace(msg)}
	}
	return reply, nil
}

// get returns an idle connection, or dials a new one. The caller holds a slot.
func (p *Pool) get(ctx context.Context) (*conn, error) {
	now := time.Now()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrPoolClosed
	}
	for len(p.idle) > 0 {
		c := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if now.Sub(c.lastUsed) < idleTimeout {
			p.mu.Unlock()
			return c, nil
		}
		c.Close()
	}
	p.mu.Unlock()

	nc, err := p.dial(ctx, "tcp", p.addr)
	if err != nil {
		return nil, fmt.Errorf("store %s: dial: %w", p.addr, err)
	}
	return &conn{Conn: nc, r: bufio.NewReaderSize(nc, MaxLine)}, nil
}

func (p *Pool) put(c *conn) {
	c.lastUsed = time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return
	}
	p.idle = append(p.idle, c)
}

// Close closes the idle connections; busy ones close when their call ends.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, c := range p.idle {
		c.Close()
	}
	p.idle = nil
	return nil
}

func (c *conn) roundTrip(ctx context.Context, cmd string) (string, error) {
	if strings.ContainsAny(cmd, "\r\n") {
		return "", errors.New("command holds a newline")
	}
	deadline, _ := ctx.Deadline()
	if err := c.SetDeadline(deadline); err != nil {
		return "", err
	}
	if _, err := c.Write([]byte(cmd + "\n")); err != nil {
		return "", err
	}
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			err = errors.New("reply line too long")
		}
		return "", err
	}
	reply := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
	switch ReplyWord(reply) {
	case "PONG", "VAL", "NIL", "OK", "ERR":
	default:
		// Out of step with the server: the connection can't be trusted.
		return "", fmt.Errorf("unexpected reply %q", reply)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return "", err
	}
	return reply, nil
}

// cutPrefix is strings.CutPrefix, which needs Go 1.20.
func cutPrefix(s, prefix string) (string, bool) {
	if !strings.HasPrefix(s, prefix) {
		return s, false
	}
	return s[len(prefix):], true
}
