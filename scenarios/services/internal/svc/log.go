package svc

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
)

const logTimeFormat = "2006-01-02T15:04:05.000Z07:00"

// Logger writes one line per event: `time LEVEL msg k=v…`.
type Logger struct {
	mu  sync.Mutex
	out io.Writer
}

// NewLogger returns a logger writing to out.
func NewLogger(out io.Writer) *Logger { return &Logger{out: out} }

// Info logs an event; kv are alternating keys and values.
func (l *Logger) Info(msg string, kv ...interface{}) { l.log("INFO", msg, kv) }

// Warn logs something that may need attention.
func (l *Logger) Warn(msg string, kv ...interface{}) { l.log("WARN", msg, kv) }

// Error logs a failure.
func (l *Logger) Error(msg string, kv ...interface{}) { l.log("ERROR", msg, kv) }

func (l *Logger) log(level, msg string, kv []interface{}) {
	b := make([]byte, 0, 160)
	b = time.Now().AppendFormat(b, logTimeFormat)
	b = append(b, ' ')
	b = append(b, level...)
	b = append(b, ' ')
	b = append(b, msg...)
	for i := 0; i < len(kv); i += 2 {
		b = append(b, ' ')
		if i+1 == len(kv) {
			b = append(b, "EXTRA="...)
			b = appendValue(b, kv[i])
			break
		}
		b = append(b, fmt.Sprint(kv[i])...)
		b = append(b, '=')
		b = appendValue(b, kv[i+1])
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.out.Write(b)
}

func appendValue(b []byte, v interface{}) []byte {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case error:
		s = v.Error()
	default:
		s = fmt.Sprint(v)
	}
	if needsQuote(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

func needsQuote(s string) bool {
	if s == "" {
		return true
	}
	for _, r := range s {
		if r == '"' || r == '=' || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
	}
	return false
}

// ErrorLog folds repeated errors into one summary line per kind and
// interval, so a fault that fails every request cannot flood the log.
type ErrorLog struct {
	log     *Logger
	mu      sync.Mutex
	pending map[string]*errSummary
}

type errSummary struct {
	msg   string
	kv    []string
	count int
	last  string
}

// NewErrorLog starts a summariser that logs to l every interval.
func NewErrorLog(l *Logger, interval time.Duration) *ErrorLog {
	e := &ErrorLog{log: l, pending: map[string]*errSummary{}}
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for range t.C {
			e.Flush()
		}
	}()
	return e
}

// Note counts one error. msg and kv (key, value pairs) identify its kind.
func (e *ErrorLog) Note(msg string, err error, kv ...string) {
	key := msg + "\x00" + strings.Join(kv, "\x00")
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.pending[key]
	if s == nil {
		s = &errSummary{msg: msg, kv: kv}
		e.pending[key] = s
	}
	s.count++
	s.last = err.Error()
}

// Flush logs one line per kind seen since the last flush.
func (e *ErrorLog) Flush() {
	e.mu.Lock()
	pending := e.pending
	e.pending = map[string]*errSummary{}
	e.mu.Unlock()

	keys := make([]string, 0, len(pending))
	for k := range pending {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s := pending[k]
		kv := make([]interface{}, 0, len(s.kv)+4)
		for _, v := range s.kv {
			kv = append(kv, v)
		}
		kv = append(kv, "count", s.count, "last", s.last)
		e.log.Error(s.msg, kv...)
	}
}
