package svc

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"
)

// Upstream is one -upstream URL: http://api:8080 or tcp://store:7070.
type Upstream struct {
	URL    string // as given, without a trailing slash; also the metrics label
	Scheme string // "http" or "tcp"
	Host   string // host:port; the host is resolved on every new connection
	Path   string // path prefix put before the forwarded path (HTTP only)
}

// ParseUpstream parses and checks an -upstream value.
func ParseUpstream(s string) (Upstream, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Upstream{}, err
	}
	up := Upstream{URL: strings.TrimSuffix(s, "/"), Scheme: u.Scheme, Host: u.Host, Path: strings.TrimSuffix(u.Path, "/")}
	switch u.Scheme {
	case "http":
		if u.Port() == "" {
			up.Host = net.JoinHostPort(u.Hostname(), "80")
		}
	case "tcp":
		if u.Port() == "" {
			return Upstream{}, fmt.Errorf("%q: tcp upstreams need a port", s)
		}
		if up.Path != "" {
			return Upstream{}, fmt.Errorf("%q: tcp upstreams take no path", s)
		}
	default:
		return Upstream{}, fmt.Errorf("%q: scheme must be http or tcp", s)
	}
	if u.Hostname() == "" {
		return Upstream{}, fmt.Errorf("%q: no host", s)
	}
	return up, nil
}

// Config is the command line shared by every service program.
type Config struct {
	Program   string
	Name      string
	Listen    string
	Admin     string
	Upstreams []Upstream
	Timeout   time.Duration
	Retries   int
	Pool      int
}

type upstreamList []Upstream

func (l *upstreamList) String() string {
	s := make([]string, len(*l))
	for i, u := range *l {
		s[i] = u.URL
	}
	return strings.Join(s, ",")
}

func (l *upstreamList) Set(v string) error {
	u, err := ParseUpstream(v)
	if err != nil {
		return err
	}
	*l = append(*l, u)
	return nil
}

// ParseFlags parses args (without the program name). upstreamScheme is the
// scheme every -upstream must have ("http" or "tcp"; at least one is then
// required), or "" for a program that takes none. Errors have already been
// reported on stderr when it returns.
func ParseFlags(program, defaultListen, upstreamScheme string, args []string, stderr io.Writer) (*Config, error) {
	c := &Config{Program: program}
	fs := flag.NewFlagSet(program, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Name, "name", program, "instance `name`, used in logs and metrics")
	fs.StringVar(&c.Listen, "listen", defaultListen, "data-plane listen `address`")
	fs.StringVar(&c.Admin, "admin", ":9090", "control-plane listen `address` (/metrics, /debug/pprof/, /admin/fault, /health)")
	fs.Var((*upstreamList)(&c.Upstreams), "upstream", "upstream `URL` (http://host:port or tcp://host:port); repeatable")
	fs.DurationVar(&c.Timeout, "timeout", time.Second, "per-call timeout towards an upstream")
	fs.IntVar(&c.Retries, "retries", 2, "extra tries after a failed call (gateway only)")
	fs.IntVar(&c.Pool, "pool", 32, "idle connections kept per upstream, 0 for a new connection per call (backend: also the most open to each store)")
	if err := fs.Parse(args); err != nil {
		return nil, err // the flag package has printed it, with the usage
	}
	if err := c.validate(fs.Args(), upstreamScheme); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", program, err)
		return nil, err
	}
	return c, nil
}

func (c *Config) validate(extra []string, upstreamScheme string) error {
	switch {
	case len(extra) > 0:
		return fmt.Errorf("unexpected arguments: %q", extra)
	case c.Timeout <= 0:
		return errors.New("-timeout must be positive")
	case c.Retries < 0:
		return errors.New("-retries must not be negative")
	case c.Pool < 0:
		return errors.New("-pool must not be negative")
	case c.Pool == 0 && upstreamScheme == "tcp":
		return errors.New("-pool must be at least 1: it also bounds the connections to each store")
	}
	if upstreamScheme == "" {
		if len(c.Upstreams) > 0 {
			return errors.New("takes no -upstream")
		}
		return nil
	}
	if len(c.Upstreams) == 0 {
		return fmt.Errorf("needs at least one -upstream %s://host:port", upstreamScheme)
	}
	for _, u := range c.Upstreams {
		if u.Scheme != upstreamScheme {
			return fmt.Errorf("-upstream %s: want a %s:// upstream", u.URL, upstreamScheme)
		}
	}
	return nil
}
