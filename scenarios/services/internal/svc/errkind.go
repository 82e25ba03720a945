package svc

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
)

// Error kinds, as used in metrics labels, log summaries and loadgen records.
const (
	KindTimeout  = "timeout"
	KindRefused  = "refused"
	KindReset    = "reset"
	KindCanceled = "canceled"
	KindOther    = "other"
)

// ErrorKind names the class of a failed network call.
func ErrorKind(err error) string {
	if err == nil {
		return ""
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return KindTimeout
	case errors.As(err, &ne) && ne.Timeout():
		return KindTimeout
	case errors.Is(err, context.Canceled):
		return KindCanceled
	case errors.Is(err, syscall.ECONNREFUSED):
		return KindRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return KindReset
	}
	// Some wrappers (net/http's transport among them) keep only the text.
	switch msg := err.Error(); {
	case strings.Contains(msg, "connection refused"):
		return KindRefused
	case strings.Contains(msg, "connection reset by peer"), strings.Contains(msg, "broken pipe"):
		return KindReset
	}
	return KindOther
}

// CallErrorKind is ErrorKind for a call made under ctx. A failure that is not
// itself a timeout is put down to ctx when ctx is done: the caller's deadline
// or cancellation is the cause, whatever the transport reported.
func CallErrorKind(ctx context.Context, err error) string {
	kind := ErrorKind(err)
	if kind == KindTimeout {
		return kind
	}
	switch ctx.Err() {
	case context.DeadlineExceeded:
		return KindTimeout
	case context.Canceled:
		return KindCanceled
	}
	return kind
}
