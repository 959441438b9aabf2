package controllers

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// cacheLag is how soon a reconcile that found the cache behind the operator's own last write
// looks again; a watch usually delivers a write within milliseconds.
const cacheLag = 25 * time.Millisecond

// writeLog remembers, for each object the operator wrote, the resourceVersion it replaced and the
// one it wrote. That tells a cache that has not caught up with the operator's own write (it still
// shows the version replaced, or nothing after a create) from one that has, without comparing
// resourceVersions, which are opaque; and it lets the watch events that merely echo the
// operator's writes wake nobody.
type writeLog struct {
	writes sync.Map // types.NamespacedName -> write
}

// maxCacheLag is how long a write is waited for at most: past it, whatever the cache shows counts
// as caught up (a watch that lost the event relists; nothing may wait forever).
const maxCacheLag = 10 * time.Second

// write is one write: the version replaced ("" for a create), the version written, and when.
type write struct {
	before, after string
	at            time.Time
}

// record remembers that the operator wrote obj (now at its new version) over version before. A
// write that left the version as it was (a no-op) is not one a cache can fall behind.
func (l *writeLog) record(obj client.Object, before string) {
	key := client.ObjectKeyFromObject(obj)
	if obj.GetResourceVersion() == before {
		l.writes.Delete(key)
		return
	}
	l.writes.Store(key, write{before: before, after: obj.GetResourceVersion(), at: time.Now()})
}

// forget drops what is remembered of key (the object is gone).
func (l *writeLog) forget(key types.NamespacedName) { l.writes.Delete(key) }

// caughtUp reports whether a cache that shows key at resourceVersion (or not at all, when
// present is false) has caught up with the operator's last write of it.
func (l *writeLog) caughtUp(key types.NamespacedName, resourceVersion string, present bool) bool {
	v, ok := l.writes.Load(key)
	if !ok {
		return true
	}
	w := v.(write)
	if time.Since(w.at) > maxCacheLag {
		return true
	}
	if present {
		return resourceVersion != w.before
	}
	return w.before != "" // a create not yet seen, unless it was an update and the object went since
}

// seen reports whether obj, as a create or update event shows it, is at a version the operator
// wrote itself.
func (l *writeLog) seen(obj client.Object) bool {
	v, ok := l.writes.Load(client.ObjectKeyFromObject(obj))
	return ok && v.(write).after == obj.GetResourceVersion()
}

// notOwnWrite is a predicate that drops the create and update events echoing the operator's own
// writes, and forgets an object when it is deleted.
func (l *writeLog) notOwnWrite() predicate.Funcs {
	p := l.notOwnWriteKeepingLog()
	p.DeleteFunc = func(e event.DeleteEvent) bool { l.forget(client.ObjectKeyFromObject(e.Object)); return true }
	return p
}

// notOwnWriteKeepingLog is notOwnWrite for a watch whose delete events may only mean that an
// object left its label selector (the Secret metadata watch, when the operator labels a Secret
// back): it forgets nothing, since the object may live on in the other watch.
func (l *writeLog) notOwnWriteKeepingLog() predicate.Funcs {
	return predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool { return !l.seen(e.Object) },
		UpdateFunc: func(e event.UpdateEvent) bool { return !l.seen(e.ObjectNew) },
	}
}
