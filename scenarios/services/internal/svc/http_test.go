package svc

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func testApp(t *testing.T) (*App, *httptest.Server) {
	t.Helper()
	a := newApp(&Config{Program: "api", Name: "api-t", Timeout: time.Second, Pool: 4}, nil)
	t.Cleanup(a.stop)
	srv := httptest.NewServer(a.Handler(func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"path": r.URL.RequestURI()})
	}))
	t.Cleanup(srv.Close)
	return a, srv
}

func get(t *testing.T, ctx context.Context, url string) (int, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func metricsText(t *testing.T, a *App) string {
	t.Helper()
	var b strings.Builder
	if err := a.Metrics.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestHandlerWorkAndHealth(t *testing.T) {
	a, srv := testApp(t)
	code, body, err := get(t, context.Background(), srv.URL+"/health")
	if err != nil || code != 200 || body != "ok\n" {
		t.Fatalf("/health = %d %q %v", code, body, err)
	}
	code, body, err = get(t, context.Background(), srv.URL+"/item?key=k")
	if err != nil || code != 200 || !strings.Contains(body, `"path":"/item?key=k"`) {
		t.Fatalf("/item = %d %q %v", code, body, err)
	}
	m := metricsText(t, a)
	if !strings.Contains(m, `sandbox_requests_total{name="api-t",code="200"} 1`+"\n") {
		t.Errorf("health check counted, or work not counted:\n%s", m)
	}
	if !strings.Contains(m, `sandbox_app_fault{name="api-t",kind="none"} 1`) {
		t.Errorf("fault gauge:\n%s", m)
	}
}

func TestHandlerSlowAndHang(t *testing.T) {
	a, srv := testApp(t)
	if err := a.setFault(Fault{Kind: FaultSlow, DelayMS: 80, Percent: 100}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if code, _, err := get(t, context.Background(), srv.URL+"/"); err != nil || code != 200 {
		t.Fatalf("slow: %d %v", code, err)
	}
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Errorf("slow fault answered after %v, want ≥ 80ms", d)
	}

	if err := a.setFault(Fault{Kind: FaultHang, Percent: 100}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, _, err := get(t, ctx, srv.URL+"/"); err == nil {
		t.Fatal("hang fault answered")
	}
	waitFor(t, func() bool {
		return strings.Contains(metricsText(t, a), `sandbox_requests_total{name="api-t",code="499"} 1`)
	})
	m := metricsText(t, a)
	if !strings.Contains(m, `sandbox_app_fault{name="api-t",kind="hang"} 1`) || !strings.Contains(m, `sandbox_app_fault{name="api-t",kind="slow"} 0`) {
		t.Errorf("fault gauge after slow → hang:\n%s", m)
	}
}

func TestAdminFault(t *testing.T) {
	a, _ := testApp(t)
	admin := httptest.NewServer(a.adminHandler())
	defer admin.Close()

	post := func(body string) (int, string) {
		resp, err := http.Post(admin.URL+"/admin/fault", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	if code, body := post(`{"kind":"slow","delay_ms":300}`); code != 200 || body != `{"kind":"slow","delay_ms":300,"percent":100}` {
		t.Errorf("POST slow = %d %s", code, body)
	}
	if code, body, _ := get(t, context.Background(), admin.URL+"/admin/fault"); code != 200 || strings.TrimSpace(body) != `{"kind":"slow","delay_ms":300,"percent":100}` {
		t.Errorf("GET = %d %s", code, body)
	}
	if code, _ := post(`{"kind":"leak"}`); code != 400 {
		t.Errorf("leak without upstreams: %d, want 400", code)
	}
	if code, _ := post(`{"kind":"slow","delay_ms":300,"typo":1}`); code != 400 {
		t.Errorf("unknown field: %d, want 400", code)
	}
	if code, body := post(`{"kind":"none"}`); code != 200 || body != `{"kind":"none"}` {
		t.Errorf("POST none = %d %s", code, body)
	}
	if code, body, _ := get(t, context.Background(), admin.URL+"/health"); code != 200 || body != "ok\n" {
		t.Errorf("GET /health = %d %q, want 200 ok", code, body)
	}
	if code, _ := post(`{"kind":"unready"}`); code != 200 {
		t.Errorf("POST unready = %d", code)
	}
	if code, body, _ := get(t, context.Background(), admin.URL+"/health"); code != 503 || body != "not ready\n" {
		t.Errorf("GET /health unready = %d %q, want 503 not ready", code, body)
	}
	if code, _, _ := get(t, context.Background(), admin.URL+"/admin/fault"); code != 200 {
		t.Errorf("the control plane keeps answering while unready: %d", code)
	}
	post(`{"kind":"none"}`)
	if code, _, _ := get(t, context.Background(), admin.URL+"/health"); code != 200 {
		t.Errorf("GET /health after none = %d, want 200", code)
	}
}
