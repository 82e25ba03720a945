package svc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// App-level fault kinds, set through POST /admin/fault.
const (
	FaultNone    = "none"
	FaultSlow    = "slow"
	FaultHang    = "hang"
	FaultLeak    = "leak"
	FaultCPUBurn = "cpu-burn"
	// FaultUnready fails the control plane's /health (a readiness probe) while the
	// service itself keeps working.
	FaultUnready = "unready"
)

// FaultKinds lists every kind, for the sandbox_app_fault gauge.
var FaultKinds = []string{FaultNone, FaultSlow, FaultHang, FaultLeak, FaultCPUBurn, FaultUnready}

const maxBurnGoroutines = 256

// Fault is the app-level fault, as read and written at /admin/fault.
type Fault struct {
	Kind       string `json:"kind"`
	DelayMS    int    `json:"delay_ms,omitempty"`   // slow
	Percent    int    `json:"percent,omitempty"`    // slow, hang, leak: share of requests hit
	Goroutines int    `json:"goroutines,omitempty"` // cpu-burn
}

// DecodeFault reads a Fault from JSON, rejecting unknown fields and values
// out of range, and fills in defaults: percent 100, goroutines 1.
func DecodeFault(r io.Reader) (Fault, error) {
	var f Fault
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return Fault{}, fmt.Errorf("bad fault JSON: %w", err)
	}
	if dec.More() {
		return Fault{}, errors.New("bad fault JSON: more than one value")
	}
	return f.normalize()
}

func (f Fault) normalize() (Fault, error) {
	out := Fault{Kind: f.Kind}
	percent := func() error {
		out.Percent = f.Percent
		if out.Percent == 0 {
			out.Percent = 100
		}
		if out.Percent < 0 || out.Percent > 100 {
			return fmt.Errorf("percent must be 1..100, got %d", f.Percent)
		}
		return nil
	}
	switch f.Kind {
	case FaultNone, FaultUnready:
	case FaultSlow:
		if f.DelayMS <= 0 {
			return Fault{}, fmt.Errorf("slow needs delay_ms > 0, got %d", f.DelayMS)
		}
		out.DelayMS = f.DelayMS
		if err := percent(); err != nil {
			return Fault{}, err
		}
	case FaultHang, FaultLeak:
		if err := percent(); err != nil {
			return Fault{}, err
		}
	case FaultCPUBurn:
		out.Goroutines = f.Goroutines
		if out.Goroutines == 0 {
			out.Goroutines = 1
		}
		if out.Goroutines < 0 || out.Goroutines > maxBurnGoroutines {
			return Fault{}, fmt.Errorf("goroutines must be 1..%d, got %d", maxBurnGoroutines, f.Goroutines)
		}
	case "":
		return Fault{}, errors.New(`missing "kind"`)
	default:
		return Fault{}, fmt.Errorf("unknown kind %q (want none, slow, hang, leak, cpu-burn or unready)", f.Kind)
	}
	return out, nil
}

// Action is what the fault asks of one request.
type Action struct {
	Delay time.Duration // sleep this long before doing the work
	Hang  bool          // never answer; wait for the client to go away
	Audit bool          // also start a fire-and-forget call with no timeout
}

// FaultSwitch holds the current app-level fault and runs the CPU burners.
type FaultSwitch struct {
	cur     atomic.Pointer[Fault]
	canLeak bool
	burn    func(stop <-chan struct{})

	mu       sync.Mutex // serialises Set
	stopBurn chan struct{}
	burners  sync.WaitGroup
}

// NewFaultSwitch returns a switch set to none. burn is the CPU burner,
// started once per goroutine under cpu-burn and stopped by closing stop.
// canLeak tells whether the program has an upstream for the leak fault.
func NewFaultSwitch(burn func(stop <-chan struct{}), canLeak bool) *FaultSwitch {
	s := &FaultSwitch{burn: burn, canLeak: canLeak}
	s.cur.Store(&Fault{Kind: FaultNone})
	return s
}

// Get returns the current fault.
func (s *FaultSwitch) Get() Fault { return *s.cur.Load() }

// Set replaces the current fault and returns the previous one. f must come
// from DecodeFault (or be otherwise normalised).
func (s *FaultSwitch) Set(f Fault) (Fault, error) {
	if f.Kind == FaultLeak && !s.canLeak {
		return Fault{}, errors.New("leak needs an upstream to call, and this program has none")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopBurn != nil {
		close(s.stopBurn)
		s.burners.Wait()
		s.stopBurn = nil
	}
	if f.Kind == FaultCPUBurn {
		s.stopBurn = make(chan struct{})
		for i := 0; i < f.Goroutines; i++ {
			s.burners.Add(1)
			go func(stop <-chan struct{}) {
				defer s.burners.Done()
				s.burn(stop)
			}(s.stopBurn)
		}
	}
	return *s.cur.Swap(&f), nil
}

// Action decides what the current fault does to one request.
func (s *FaultSwitch) Action() Action {
	f := s.cur.Load()
	hit := func() bool { return f.Percent >= 100 || Intn(100) < f.Percent }
	switch f.Kind {
	case FaultSlow:
		if hit() {
			return Action{Delay: time.Duration(f.DelayMS) * time.Millisecond}
		}
	case FaultHang:
		return Action{Hang: hit()}
	case FaultLeak:
		return Action{Audit: hit()}
	}
	return Action{}
}
