package svc

import (
	"math/rand"
	"sync"
	"time"
)

// rnd is seeded explicitly: before Go 1.20 the math/rand top-level functions
// start from the same seed in every process, and replicas would then all pick
// the same peers in the same order.
var rnd = struct {
	sync.Mutex
	*rand.Rand
}{Rand: rand.New(rand.NewSource(time.Now().UnixNano()))}

// Intn returns a uniform random int in [0, n). Safe for concurrent use.
func Intn(n int) int {
	rnd.Lock()
	defer rnd.Unlock()
	return rnd.Intn(n)
}

// Int63n returns a uniform random int64 in [0, n). Safe for concurrent use.
func Int63n(n int64) int64 {
	rnd.Lock()
	defer rnd.Unlock()
	return rnd.Int63n(n)
}
