package main

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{1: 25 * time.Millisecond, 2: 50 * time.Millisecond, 3: 100 * time.Millisecond, 6: 500 * time.Millisecond, 40: 500 * time.Millisecond} {
		for i := 0; i < 200; i++ {
			if d := backoff(n); d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", n, d, want/2, want)
			}
		}
	}
}

func TestIdempotent(t *testing.T) {
	if !idempotent("GET") || !idempotent("PUT") || idempotent("POST") || idempotent("PATCH") {
		t.Error("idempotent: wrong classification")
	}
}
