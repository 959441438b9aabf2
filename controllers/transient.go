package controllers

import (
	"context"
	"errors"
	"net"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// isTransient reports whether an error is the API server's passing trouble (throttling, a 5xx,
// a timeout, a dropped connection), which a retry with backoff repairs and nobody need be told of.
func isTransient(err error) bool {
	var netErr net.Error
	switch {
	case err == nil:
		return false
	case apierrors.IsTooManyRequests(err), apierrors.IsInternalError(err), apierrors.IsServiceUnavailable(err),
		apierrors.IsServerTimeout(err), apierrors.IsTimeout(err), apierrors.IsUnexpectedServerError(err):
		return true
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr):
		return true
	}
	if status := apierrors.APIStatus(nil); errors.As(err, &status) {
		return status.Status().Code >= 500
	}
	return false
}

// DemoteTransientErrors returns logger whose Error calls about a transient API error (see
// isTransient; a 409 too) are logged at V(1) instead: client-go's event broadcaster and
// reflectors log every refused event or broken watch at error level, and under a storm of 429s
// and 500s that would page someone for what a retry repairs. Every other error stays an error.
func DemoteTransientErrors(logger logr.Logger) logr.Logger {
	return logr.New(demotingSink{logger.GetSink()})
}

// demotingSink is DemoteTransientErrors' LogSink.
type demotingSink struct{ logr.LogSink }

// Error logs a transient error at V(1), any other at error level.
func (s demotingSink) Error(err error, msg string, keysAndValues ...any) {
	if !isTransient(err) && !apierrors.IsConflict(err) {
		s.LogSink.Error(err, msg, keysAndValues...)
		return
	}
	if s.Enabled(1) {
		s.Info(1, msg, append(keysAndValues, "error", err.Error(), "transient", true)...)
	}
}

// WithValues keeps the demotion on the derived logger.
func (s demotingSink) WithValues(keysAndValues ...any) logr.LogSink {
	return demotingSink{s.LogSink.WithValues(keysAndValues...)}
}

// WithName keeps the demotion on the derived logger.
func (s demotingSink) WithName(name string) logr.LogSink {
	return demotingSink{s.LogSink.WithName(name)}
}

// Init passes the call depth on, counting the wrapper's own frame.
func (s demotingSink) Init(info logr.RuntimeInfo) {
	info.CallDepth++
	s.LogSink.Init(info)
}
