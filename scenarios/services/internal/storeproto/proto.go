// Package storeproto is the store's line protocol: the server-side key/value
// state machine and the client connection pool the backend uses.
//
// One command per line, one reply line per command:
//
//	PING      → PONG
//	GET k     → VAL v | NIL
//	SET k v   → OK          (v is the rest of the line; it may hold spaces)
//	other     → ERR msg
//
// Keys are non-empty and hold no whitespace; nothing holds a newline.
package storeproto

import (
	"fmt"
	"strings"
	"sync"
)

// MaxLine bounds a command or reply line, newline included.
const MaxLine = 64 << 10

// KV is the store's state. Safe for concurrent use.
type KV struct {
	mu sync.RWMutex
	m  map[string]string
}

// NewKV returns an empty store.
func NewKV() *KV { return &KV{m: map[string]string{}} }

// Exec runs one command line (without its newline) and returns the reply
// line (without its newline).
func (kv *KV) Exec(line string) string {
	line = strings.TrimSuffix(line, "\r")
	cmd, rest, _ := strings.Cut(line, " ")
	switch strings.ToUpper(cmd) {
	case "PING":
		if rest != "" {
			return "ERR usage: PING"
		}
		return "PONG"
	case "GET":
		if rest == "" || strings.ContainsAny(rest, " \t") {
			return "ERR usage: GET key"
		}
		kv.mu.RLock()
		v, ok := kv.m[rest]
		kv.mu.RUnlock()
		if !ok {
			return "NIL"
		}
		return "VAL " + v
	case "SET":
		key, val, ok := strings.Cut(rest, " ")
		if !ok || key == "" || strings.ContainsAny(key, "\t") {
			return "ERR usage: SET key value"
		}
		kv.mu.Lock()
		kv.m[key] = val
		kv.mu.Unlock()
		return "OK"
	case "":
		return "ERR empty command"
	default:
		return fmt.Sprintf("ERR unknown command %q", cmd)
	}
}

// ReplyWord is the first word of a reply line (PONG, VAL, NIL, OK, ERR).
func ReplyWord(reply string) string {
	w, _, _ := strings.Cut(reply, " ")
	return w
}
