package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestIsTransient(t *testing.T) {
	gr := schema.GroupResource{Resource: "secrets"}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"429", apierrors.NewTooManyRequests("slow down", 1), true},
		{"500", apierrors.NewInternalError(errors.New("boom")), true},
		{"503", apierrors.NewServiceUnavailable("later"), true},
		{"504", apierrors.NewTimeoutError("slow", 1), true},
		{"wrapped 500", fmt.Errorf("updating: %w", apierrors.NewInternalError(errors.New("boom"))), true},
		{"deadline", fmt.Errorf("reading: %w", context.DeadlineExceeded), true},
		{"409", apierrors.NewConflict(gr, "s", errors.New("changed")), false},
		{"403", apierrors.NewForbidden(gr, "s", errors.New("no")), false},
		{"422", apierrors.NewInvalid(schema.GroupKind{Kind: "Secret"}, "s", nil), false},
		{"404", apierrors.NewNotFound(gr, "s"), false},
		{"plain", errors.New("a bug"), false},
	}
	for _, c := range cases {
		if got := isTransient(c.err); got != c.want {
			t.Errorf("%s: isTransient = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestDemoteTransientErrors(t *testing.T) {
	var lines []string
	base := funcr.New(func(prefix, args string) { lines = append(lines, prefix+" "+args) }, funcr.Options{Verbosity: 1})
	log := DemoteTransientErrors(base).WithName("events").WithValues("k", "v")
	log.Error(apierrors.NewTooManyRequests("slow down", 1), "Server rejected event")
	log.Error(apierrors.NewForbidden(schema.GroupResource{Resource: "events"}, "e", errors.New("no")), "Server rejected event")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %q", len(lines), lines)
	}
	if !strings.Contains(lines[0], `"level"=1`) || strings.Contains(lines[0], `"error"=<nil>`) || !strings.Contains(lines[0], `"transient"=true`) {
		t.Errorf("a 429 was not demoted to V(1): %s", lines[0])
	}
	if !strings.Contains(lines[1], `"error"="`) || strings.Contains(lines[1], `"level"`) {
		t.Errorf("a 403 was demoted: %s", lines[1])
	}
	for _, l := range lines {
		if !strings.Contains(l, "events") || !strings.Contains(l, `"k"="v"`) {
			t.Errorf("the name or values were lost: %s", l)
		}
	}
	quiet := DemoteTransientErrors(funcr.New(func(prefix, args string) { lines = append(lines, args) }, funcr.Options{}))
	quiet.Error(apierrors.NewInternalError(errors.New("boom")), "x")
	if len(lines) != 2 {
		t.Errorf("a demoted error was logged below the verbosity: %q", lines[2:])
	}
}
