package svc

import (
	"bufio"
	"context"
	"fmt"
	"io"
)

// startAudit is the leak fault: a fire-and-forget "audit" call to the first
// upstream, made with no timeout and no context. While that peer answers it
// is merely extra load; once the peer stops answering, every request leaves
// behind a goroutine parked in the network poller that nothing will wake.
func (a *App) startAudit() {
	go a.audit(a.Cfg.Upstreams[0])
}

func (a *App) audit(up Upstream) {
	var err error
	switch up.Scheme {
	case "http":
		err = a.auditHTTP(up)
	case "tcp":
		err = a.auditTCP(up)
	}
	if err != nil {
		a.Errs.Note("audit call failed", err, "upstream", up.URL)
	}
}

func (a *App) auditHTTP(up Upstream) error {
	resp, err := a.auditClient.Get("http://" + up.Host + up.Path + "/audit")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

func (a *App) auditTCP(up Upstream) error {
	conn, err := NewDialer(0).DialContext(context.Background(), "tcp", up.Host)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "PING\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "PONG\n" {
		return fmt.Errorf("audit ping: unexpected reply %q", line)
	}
	return nil
}
