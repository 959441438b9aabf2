package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/time/rate"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
)

// recordingSink records the events it is sent, as "create NAME" or "patch NAME", and answers
// each with the next of its scripted errors for that name (none: success).
type recordingSink struct {
	mu     sync.Mutex
	calls  []string
	errors map[string][]error
}

func (s *recordingSink) answer(call string, e *eventsv1.Event) (*eventsv1.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, call+" "+e.Name)
	if errs := s.errors[call+" "+e.Name]; len(errs) > 0 {
		s.errors[call+" "+e.Name] = errs[1:]
		return nil, errs[0]
	}
	return e, nil
}

func (s *recordingSink) Create(_ context.Context, e *eventsv1.Event) (*eventsv1.Event, error) {
	return s.answer("create", e)
}

func (s *recordingSink) Update(_ context.Context, e *eventsv1.Event) (*eventsv1.Event, error) {
	return s.answer("update", e)
}

func (s *recordingSink) Patch(_ context.Context, e *eventsv1.Event, _ []byte) (*eventsv1.Event, error) {
	return s.answer("patch", e)
}

func (s *recordingSink) sent() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

func anEvent(namespace, name string) *eventsv1.Event {
	return &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
}

// runSink runs s until the test ends.
func runSink(t *testing.T, s *pacedEventSink) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// waitSent waits until sink has had n calls.
func waitSent(t *testing.T, sink *recordingSink, n int) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for len(sink.sent()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events sent: %q", len(sink.sent()), n, sink.sent())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return sink.sent()
}

// The broadcaster is answered at once; after the burst, events go at the limiter's pace and in
// the order recorded: the state writes they would compete with go first.
func TestEventsArePaced(t *testing.T) {
	const qps, burst, n = 20, 5, 15
	sink := &recordingSink{}
	paced := newPacedEventSink(sink, rate.NewLimiter(qps, burst), logr.Discard())
	runSink(t, paced)
	start := time.Now()
	want := make([]string, 0, n)
	for i := range n {
		name := fmt.Sprintf("e%02d", i)
		if _, err := paced.Create(context.Background(), anEvent("ns", name)); err != nil {
			t.Fatal(err)
		}
		want = append(want, "create "+name)
	}
	if answered := time.Since(start); answered > time.Second {
		t.Errorf("the broadcaster waited %s to hand over %d events", answered, n)
	}
	got := waitSent(t, sink, n)
	// The 10 events past the burst need 10/20 s at least, however fast the machine.
	if elapsed, least := time.Since(start), time.Duration(n-burst)*time.Second/qps; elapsed < least*9/10 {
		t.Errorf("%d events sent in %s; at %d/s after a burst of %d they take at least %s", n, elapsed, qps, burst, least)
	}
	if !slices.Equal(got, want) {
		t.Errorf("sent %q, want %q", got, want)
	}
}

// A namespace's flood of events delays another's by one event at a time, and when the queues
// are full it is the flood's events that are dropped (counted), never the quiet namespace's.
func TestEventQueuesAreFairAndBounded(t *testing.T) {
	sink := &recordingSink{}
	paced := newPacedEventSink(sink, rate.NewLimiter(rate.Inf, 1), logr.Discard())
	dropped := func() float64 { return testutil.ToFloat64(eventsDropped) }
	before := dropped()
	for i := range maxPendingEvents {
		_, _ = paced.Create(context.Background(), anEvent("flood", fmt.Sprint(i)))
	}
	if d := dropped() - before; d != 0 {
		t.Errorf("%v of %d events of one namespace dropped; the queue holds them all", d, maxPendingEvents)
	}
	_, _ = paced.Create(context.Background(), anEvent("quiet", "mine"))
	_, _ = paced.Create(context.Background(), anEvent("flood", "more"))
	if d := dropped() - before; d != 2 || paced.total != maxPendingEvents {
		t.Errorf("%v dropped and %d queued; want the flood's last and newest dropped, %d queued", d, paced.total, maxPendingEvents)
	}
	runSink(t, paced)
	got := waitSent(t, sink, maxPendingEvents)
	if want := []string{"create 0", "create mine", "create 1"}; !slices.Equal(got[:3], want) {
		t.Errorf("sent first %q, want %q: the quiet namespace's event waits for one of the flood's", got[:3], want)
	}
	if slices.Contains(got, "create more") || slices.Contains(got, fmt.Sprintf("create %d", maxPendingEvents-1)) {
		t.Errorf("a dropped event of the flood was sent")
	}
}

// A transient error is retried, at most eventAttempts times; a series whose first event is gone
// is created anew; a refusal is dropped and counted.
func TestEventFailures(t *testing.T) {
	unavailable := apierrors.NewServiceUnavailable("busy")
	sink := &recordingSink{errors: map[string][]error{
		"create retried": {unavailable},
		"create gave-up": {unavailable, unavailable, unavailable},
		"patch series":   {apierrors.NewNotFound(schema.GroupResource{Resource: "events"}, "series")},
		"create refused": {apierrors.NewForbidden(schema.GroupResource{Resource: "events"}, "refused", errors.New("no"))},
	}}
	paced := newPacedEventSink(sink, rate.NewLimiter(rate.Inf, 1), logr.Discard())
	before := testutil.ToFloat64(eventsDropped)
	for _, name := range []string{"retried", "gave-up", "refused"} {
		_, _ = paced.Create(context.Background(), anEvent("ns", name))
	}
	_, _ = paced.Patch(context.Background(), anEvent("ns", "series"), []byte("{}"))
	runSink(t, paced)
	got := waitSent(t, sink, 8)
	count := func(call string) int {
		n := 0
		for _, c := range got {
			if c == call {
				n++
			}
		}
		return n
	}
	for call, want := range map[string]int{"create retried": 2, "create gave-up": eventAttempts, "create refused": 1, "patch series": 1, "create series": 1} {
		if n := count(call); n != want {
			t.Errorf("%q made %d times, want %d (all: %q)", call, n, want, got)
		}
	}
	// The last drop is counted just after its call returns.
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(eventsDropped)-before < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if d := testutil.ToFloat64(eventsDropped) - before; d != 2 {
		t.Errorf("%v events counted as dropped, want 2 (gave-up, refused)", d)
	}
}

// A stopping sink sends what is queued at once instead of at the pace.
func TestStoppingSendsQueuedEvents(t *testing.T) {
	sink := &recordingSink{}
	paced := newPacedEventSink(sink, rate.NewLimiter(0.01, 1), logr.Discard())
	for i := range 5 {
		_, _ = paced.Create(context.Background(), anEvent("ns", fmt.Sprint(i)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		paced.run(ctx)
	}()
	waitSent(t, sink, 1) // the burst
	start := time.Now()
	cancel()
	<-done
	if got := sink.sent(); len(got) != 5 {
		t.Errorf("%d of 5 events sent when stopping: %q", len(got), got)
	}
	if took := time.Since(start); took > eventFlushTimeout {
		t.Errorf("stopping took %s", took)
	}
}

// TestStatusConflictTellsOnce: a status write that loses a race (409) is retried; the change of
// Ready it records is told once, after the status says so (before, the event was recorded
// before the write and again at the retry).
func TestStatusConflictTellsOnce(t *testing.T) {
	tok := &datasettev1alpha1.DatasetteToken{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "t", Generation: 1},
		Spec: datasettev1alpha1.DatasetteTokenSpec{Actor: "bot",
			SignerRef: &datasettev1alpha1.SignerReference{Kind: datasettev1alpha1.DatasetteSignerKind, Name: "missing"}}}
	conflicts := 1
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(tok).WithStatusSubresource(tok).WithInterceptorFuncs(interceptor.Funcs{
		SubResourceUpdate: func(ctx context.Context, cl client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			if conflicts > 0 {
				conflicts--
				return apierrors.NewConflict(schema.GroupResource{Group: "datasette.io", Resource: "datasettetokens"}, obj.GetName(), errors.New("changed"))
			}
			return cl.SubResource(sub).Update(ctx, obj, opts...)
		}}).Build()
	recorder := events.NewFakeRecorder(10)
	r := &DatasetteTokenReconciler{Client: c, Recorder: recorder}
	p := plan{readiness: notReady(waiting, datasettev1alpha1.ReasonSignerNotFound, `DatasetteSigner "missing" not found`)}
	for attempt := range 2 {
		var cur datasettev1alpha1.DatasetteToken
		if err := c.Get(t.Context(), client.ObjectKeyFromObject(tok), &cur); err != nil {
			t.Fatal(err)
		}
		_, err := r.apply(t.Context(), &gathered{token: &cur}, p, time.Now())
		if (attempt == 0) != isConflict(err) {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
	}
	close(recorder.Events)
	var told []string
	for e := range recorder.Events {
		told = append(told, e)
	}
	if len(told) != 1 || !strings.Contains(told[0], datasettev1alpha1.ReasonSignerNotFound) {
		t.Errorf("events %q; want SignerNotFound told once", told)
	}
}
