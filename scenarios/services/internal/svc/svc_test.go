package svc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"syscall"
	"testing"
)

func TestErrorKind(t *testing.T) {
	opErr := func(err error) error {
		return &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", err)}
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{context.DeadlineExceeded, KindTimeout},
		{fmt.Errorf("store: %w", os.ErrDeadlineExceeded), KindTimeout},
		{fmt.Errorf("wrapped: %w", context.Canceled), KindCanceled},
		{opErr(syscall.ECONNREFUSED), KindRefused},
		{opErr(syscall.ECONNRESET), KindReset},
		{opErr(syscall.EPIPE), KindReset},
		{errors.New(`Get "http://x/": read tcp 1.2.3.4:5->6.7.8.9:80: read: connection reset by peer`), KindReset},
		{errors.New("EOF"), KindOther},
	} {
		if got := ErrorKind(tc.err); got != tc.want {
			t.Errorf("ErrorKind(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestParseUpstream(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Upstream
		bad  bool
	}{
		{in: "http://api:8080", want: Upstream{URL: "http://api:8080", Scheme: "http", Host: "api:8080"}},
		{in: "http://api:8080/", want: Upstream{URL: "http://api:8080", Scheme: "http", Host: "api:8080"}},
		{in: "http://api", want: Upstream{URL: "http://api", Scheme: "http", Host: "api:80"}},
		{in: "http://api:8080/v1/", want: Upstream{URL: "http://api:8080/v1", Scheme: "http", Host: "api:8080", Path: "/v1"}},
		{in: "tcp://store:7070", want: Upstream{URL: "tcp://store:7070", Scheme: "tcp", Host: "store:7070"}},
		{in: "tcp://store", bad: true},
		{in: "https://api:8443", bad: true},
		{in: "api:8080", bad: true},
		{in: "http://:8080", bad: true},
	} {
		got, err := ParseUpstream(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseUpstream(%q) = %+v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseUpstream(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestLoggerFormat(t *testing.T) {
	var b bytes.Buffer
	l := NewLogger(&b)
	l.Info("app fault set", "kind", "slow", "delay_ms", 300, "err", errors.New("dial tcp: refused"), "empty", "")
	re := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d) INFO app fault set kind=slow delay_ms=300 err="dial tcp: refused" empty=""\n$`)
	if !re.Match(b.Bytes()) {
		t.Errorf("log line %q", b.String())
	}
}

func TestErrorLogSummarises(t *testing.T) {
	var b bytes.Buffer
	e := &ErrorLog{log: NewLogger(&b), pending: map[string]*errSummary{}}
	for i := 0; i < 50; i++ {
		e.Note("upstream call failed", fmt.Errorf("try %d: timeout", i), "upstream", "http://api:8080", "kind", "timeout")
	}
	e.Note("upstream call failed", errors.New("refused"), "upstream", "http://api:8080", "kind", "refused")
	e.Flush()
	lines := bytes.Split(bytes.TrimSpace(b.Bytes()), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), b.String())
	}
	if !bytes.Contains(lines[1], []byte(`ERROR upstream call failed upstream=http://api:8080 kind=timeout count=50 last="try 49: timeout"`)) {
		t.Errorf("summary line %q", lines[1])
	}
	b.Reset()
	e.Flush()
	if b.Len() != 0 {
		t.Errorf("second flush logged %q", b.String())
	}
}
