package svc

import (
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestDecodeFault(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Fault
		wantErr string
	}{
		{in: `{"kind":"none"}`, want: Fault{Kind: "none"}},
		{in: `{"kind":"none","delay_ms":5}`, want: Fault{Kind: "none"}},
		{in: `{"kind":"slow","delay_ms":300,"percent":100}`, want: Fault{Kind: "slow", DelayMS: 300, Percent: 100}},
		{in: `{"kind":"slow","delay_ms":300}`, want: Fault{Kind: "slow", DelayMS: 300, Percent: 100}},
		{in: `{"kind":"slow","delay_ms":50,"percent":10}`, want: Fault{Kind: "slow", DelayMS: 50, Percent: 10}},
		{in: `{"kind":"hang","percent":100}`, want: Fault{Kind: "hang", Percent: 100}},
		{in: `{"kind":"hang"}`, want: Fault{Kind: "hang", Percent: 100}},
		{in: `{"kind":"leak"}`, want: Fault{Kind: "leak", Percent: 100}},
		{in: `{"kind":"cpu-burn","goroutines":2}`, want: Fault{Kind: "cpu-burn", Goroutines: 2}},
		{in: `{"kind":"cpu-burn"}`, want: Fault{Kind: "cpu-burn", Goroutines: 1}},
		{in: `{"kind":"unready"}`, want: Fault{Kind: "unready"}},
		{in: `{"kind":"unready","percent":50}`, want: Fault{Kind: "unready"}},
		{in: `{"kind":"slow"}`, wantErr: "delay_ms"},
		{in: `{"kind":"slow","delay_ms":-1}`, wantErr: "delay_ms"},
		{in: `{"kind":"hang","percent":101}`, wantErr: "percent"},
		{in: `{"kind":"cpu-burn","goroutines":100000}`, wantErr: "goroutines"},
		{in: `{"kind":"explode"}`, wantErr: "unknown kind"},
		{in: `{}`, wantErr: "missing"},
		{in: `{"kind":"slow","delay":300}`, wantErr: "unknown field"},
		{in: `{"kind":"slow","delay_ms":"300"}`, wantErr: "bad fault JSON"},
		{in: `{"kind":"none"} {"kind":"hang"}`, wantErr: "more than one"},
		{in: ``, wantErr: "bad fault JSON"},
	} {
		got, err := DecodeFault(strings.NewReader(tc.in))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("DecodeFault(%s) err = %v, want it to mention %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("DecodeFault(%s) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestFaultJSONRoundTrip(t *testing.T) {
	b, err := json.Marshal(Fault{Kind: "none"})
	if err != nil || string(b) != `{"kind":"none"}` {
		t.Errorf("Marshal(none) = %s, %v", b, err)
	}
	b, _ = json.Marshal(Fault{Kind: "slow", DelayMS: 300, Percent: 100})
	if string(b) != `{"kind":"slow","delay_ms":300,"percent":100}` {
		t.Errorf("Marshal(slow) = %s", b)
	}
}

func TestFaultSwitch(t *testing.T) {
	var running atomic.Int32
	burn := func(stop <-chan struct{}) {
		running.Add(1)
		defer running.Add(-1)
		<-stop
	}
	s := NewFaultSwitch(burn, false)
	if got := s.Get().Kind; got != FaultNone {
		t.Fatalf("initial fault %q, want none", got)
	}
	if _, err := s.Set(Fault{Kind: FaultLeak, Percent: 100}); err == nil {
		t.Error("leak accepted by a program without upstreams")
	}

	if _, err := s.Set(Fault{Kind: FaultCPUBurn, Goroutines: 3}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return running.Load() == 3 })
	if _, err := s.Set(Fault{Kind: FaultCPUBurn, Goroutines: 1}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return running.Load() == 1 })
	prev, err := s.Set(Fault{Kind: FaultSlow, DelayMS: 20, Percent: 100})
	if err != nil || prev.Kind != FaultCPUBurn {
		t.Fatalf("Set(slow) previous = %+v, %v", prev, err)
	}
	if running.Load() != 0 {
		t.Errorf("%d burners still running after the fault changed", running.Load())
	}
	if a := s.Action(); a.Delay != 20*time.Millisecond || a.Hang || a.Audit {
		t.Errorf("slow action = %+v", a)
	}
	_, _ = s.Set(Fault{Kind: FaultHang, Percent: 100})
	if a := s.Action(); !a.Hang {
		t.Errorf("hang action = %+v", a)
	}
	_, _ = s.Set(Fault{Kind: FaultNone})
	if a := s.Action(); a != (Action{}) {
		t.Errorf("none action = %+v", a)
	}
}

func TestFaultPercent(t *testing.T) {
	s := NewFaultSwitch(nil, true)
	_, _ = s.Set(Fault{Kind: FaultLeak, Percent: 25})
	hits := 0
	for i := 0; i < 10000; i++ {
		if s.Action().Audit {
			hits++
		}
	}
	if hits < 2000 || hits > 3000 {
		t.Errorf("percent 25 hit %d of 10000 requests", hits)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 2s")
		}
		time.Sleep(time.Millisecond)
	}
}
