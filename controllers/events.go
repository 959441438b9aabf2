package controllers

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	eventsv1client "k8s.io/client-go/kubernetes/typed/events/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// The operator's events go to the API server at a pace of their own, as kubelet's --event-qps and
// --event-burst pace a node's: when a burst of tokens is minted, their Secrets and statuses are
// written first and the events follow, instead of one concurrent request per event competing with
// them. The events wait in one queue per namespace, sent in turn, so that one tenant's flood of
// events delays the others' by one event at a time; when the queues are full, the namespace with
// the most waiting gives way.

const (
	// DefaultEventQPS is how many events a second are sent once the burst is spent (kubelet's).
	DefaultEventQPS = 50
	// DefaultEventBurst is how many events are sent at once before the pace applies (kubelet's).
	DefaultEventBurst = 100
	// maxPendingEvents bounds the events waiting to be sent (some 2 KiB each, 8 MiB at most);
	// past it an event of the namespace with the most waiting is dropped and counted in
	// datasette_token_events_dropped_total.
	maxPendingEvents = 4096
	// eventAttempts is how many times an event is sent when the API server answers a transient
	// error (each attempt waits its turn again).
	eventAttempts = 3
	// eventFlushTimeout bounds how long a stopping manager sends the events still queued.
	eventFlushTimeout = 5 * time.Second
	// eventHandOff is how long a stopping recorder gives the broadcaster to hand over the events
	// recorded last.
	eventHandOff = 200 * time.Millisecond
)

var eventsDropped = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "datasette_token_events_dropped_total",
	Help: fmt.Sprintf("Events not sent: %d were already waiting their turn (--event-qps) and their namespace had the most, "+
		"or the API server refused them (%d attempts for a transient error).", maxPendingEvents, eventAttempts),
})

func init() { metrics.Registry.MustRegister(eventsDropped) }

// NewEventRecorder returns a recorder of events.k8s.io Events sent at most qps a second after a
// burst of burst (qps ≤ 0: unpaced), each also logged at debug level to logger, as
// controller-runtime's recorder does; and stop, which sends what is still queued (for at most
// five seconds) and stops. Call stop once the controllers have stopped recording.
func NewEventRecorder(logger logr.Logger, cfg *rest.Config, httpClient *http.Client, scheme *runtime.Scheme,
	qps float64, burst int) (recorder events.EventRecorder, stop func(), err error) {
	client, err := eventsv1client.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, nil, fmt.Errorf("creating the events client: %w", err)
	}
	limit := rate.Limit(qps)
	if qps <= 0 {
		limit = rate.Inf
	}
	sink := newPacedEventSink(&events.EventSinkImpl{Interface: client}, rate.NewLimiter(limit, max(burst, 1)), logger)
	ctx, cancel := context.WithCancel(logr.NewContext(context.Background(), logger))
	broadcaster := events.NewBroadcaster(sink)
	if err := broadcaster.StartRecordingToSinkWithContext(ctx); err != nil {
		cancel()
		return nil, nil, fmt.Errorf("starting the event broadcaster: %w", err)
	}
	stopLogging, err := broadcaster.StartLogging(logger.V(1))
	if err != nil {
		broadcaster.Shutdown()
		cancel()
		return nil, nil, fmt.Errorf("logging events: %w", err)
	}
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		sink.run(ctx)
	}()
	stop = sync.OnceFunc(func() {
		broadcaster.Shutdown()
		time.Sleep(eventHandOff) // the broadcaster hands each event to the sink from a goroutine of its own
		stopLogging()
		cancel()
		<-sent
	})
	return broadcaster.NewRecorder(scheme, "datasette-token-operator"), stop, nil
}

// queuedEvent is an event waiting its turn: a create, or a series update when patch is set.
type queuedEvent struct {
	event    *eventsv1.Event
	patch    []byte
	attempts int
}

// pacedEventSink is the broadcaster's sink. It answers at once and queues the event; run sends
// the queues, one event of each namespace in turn, at the limiter's pace, so that no broadcaster
// goroutine or lock waits for the pace.
type pacedEventSink struct {
	sink    events.EventSink
	limiter *rate.Limiter
	logger  logr.Logger

	mu     sync.Mutex
	queues map[string][]queuedEvent // by namespace, in the order recorded
	turns  []string                 // the namespaces with events queued, next first
	total  int                      // events queued in all
	ready  chan struct{}            // signalled when an event is queued
}

func newPacedEventSink(sink events.EventSink, limiter *rate.Limiter, logger logr.Logger) *pacedEventSink {
	return &pacedEventSink{sink: sink, limiter: limiter, logger: logger, queues: map[string][]queuedEvent{}, ready: make(chan struct{}, 1)}
}

// Create queues event.
func (s *pacedEventSink) Create(_ context.Context, event *eventsv1.Event) (*eventsv1.Event, error) {
	s.enqueue(queuedEvent{event: event.DeepCopy()})
	return event, nil
}

// Update is not used by the broadcaster; it is sent as a create would be, in its turn.
func (s *pacedEventSink) Update(_ context.Context, event *eventsv1.Event) (*eventsv1.Event, error) {
	return s.Create(context.Background(), event)
}

// Patch queues a series update of event.
func (s *pacedEventSink) Patch(_ context.Context, event *eventsv1.Event, data []byte) (*eventsv1.Event, error) {
	s.enqueue(queuedEvent{event: event.DeepCopy(), patch: data})
	return event, nil
}

// enqueue queues q. When the queues are full, the namespace with the most events waiting gives
// way: q is dropped if that is its own, else that namespace's last event is.
func (s *pacedEventSink) enqueue(q queuedEvent) {
	ns := q.event.Namespace
	s.mu.Lock()
	dropped := (*eventsv1.Event)(nil)
	if s.total >= maxPendingEvents {
		largest := s.largest()
		if len(s.queues[ns]) >= len(s.queues[largest]) {
			dropped = q.event
		} else {
			last := len(s.queues[largest]) - 1
			dropped = s.queues[largest][last].event
			s.queues[largest] = s.queues[largest][:last] // never empties it: it holds more than ns
			s.total--
		}
	}
	if dropped != q.event {
		if len(s.queues[ns]) == 0 {
			s.turns = append(s.turns, ns)
		}
		s.queues[ns] = append(s.queues[ns], q)
		s.total++
	}
	s.mu.Unlock()
	if dropped != nil {
		eventsDropped.Inc()
		s.logger.V(1).Info("event dropped: too many waiting", "namespace", dropped.Namespace, "reason", dropped.Reason)
	}
	if dropped != q.event {
		select {
		case s.ready <- struct{}{}:
		default:
		}
	}
}

// largest is the namespace with the most events queued.
func (s *pacedEventSink) largest() string {
	var largest string
	for ns, q := range s.queues {
		if len(q) > len(s.queues[largest]) {
			largest = ns
		}
	}
	return largest
}

// next takes the next namespace's first event, if any, and puts that namespace last in turn.
func (s *pacedEventSink) next() (queuedEvent, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.turns) == 0 {
		return queuedEvent{}, false
	}
	ns := s.turns[0]
	s.turns = s.turns[1:]
	q := s.queues[ns][0]
	s.queues[ns][0] = queuedEvent{}
	s.queues[ns] = s.queues[ns][1:]
	s.total--
	if len(s.queues[ns]) > 0 {
		s.turns = append(s.turns, ns)
	} else {
		delete(s.queues, ns)
	}
	return q, true
}

// run sends the queues at the limiter's pace until ctx is done, then what is left, unpaced, for at
// most eventFlushTimeout.
func (s *pacedEventSink) run(ctx context.Context) {
	for {
		q, ok := s.next()
		if !ok {
			select {
			case <-s.ready:
				continue
			case <-ctx.Done():
				s.flush(nil)
				return
			}
		}
		if err := s.limiter.Wait(ctx); err != nil {
			s.flush(&q)
			return
		}
		s.send(ctx, q)
	}
}

// flush sends first (if any) and what is queued, unpaced and without retries, for at most
// eventFlushTimeout; the rest is dropped.
func (s *pacedEventSink) flush(first *queuedEvent) {
	ctx, cancel := context.WithTimeout(logr.NewContext(context.Background(), s.logger), eventFlushTimeout)
	defer cancel()
	sendOnce := func(q queuedEvent) {
		if ctx.Err() != nil {
			eventsDropped.Inc()
			return
		}
		q.attempts = eventAttempts - 1
		s.send(ctx, q)
	}
	if first != nil {
		sendOnce(*first)
	}
	for q, ok := s.next(); ok; q, ok = s.next() {
		sendOnce(q)
	}
}

// send sends q; a transient failure queues it again, at most eventAttempts times in all.
func (s *pacedEventSink) send(ctx context.Context, q queuedEvent) {
	var err error
	if q.patch != nil {
		_, err = s.sink.Patch(ctx, q.event, q.patch)
	}
	if q.patch == nil || apierrors.IsNotFound(err) { // a series whose first event is gone is created anew
		q.event.ResourceVersion = ""
		_, err = s.sink.Create(ctx, q.event)
	}
	if err == nil || apierrors.IsAlreadyExists(err) {
		return
	}
	q.attempts++
	if (isTransient(err) || apierrors.IsConflict(err)) && q.attempts < eventAttempts {
		s.enqueue(q)
		return
	}
	eventsDropped.Inc()
	s.logger.Error(err, "Unable to write event", "namespace", q.event.Namespace, "reason", q.event.Reason)
}
