package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
)

// A key rotation, or a batch of scheduled renewals, re-mints many tokens at once. Each of them
// writes its Secret and its status, and nothing more: what happened is told once, by a summary
// event on where it happened (the signer, or the signing Secret of tokens that name one
// directly), counting the tokens re-minted. First issues, repairs, renew-now requests and
// failures keep their own event on each DatasetteToken.

const (
	// summaryQuiet is how long a summary waits for more mints of its kind before it is told.
	summaryQuiet = 2 * time.Second
	// summaryMaxAge is the longest a summary is held back while mints keep coming.
	summaryMaxAge = 10 * time.Second
	// summaryTick is how often pending summaries are looked at.
	summaryTick = time.Second
	// maxSummaries bounds the summaries pending at once (one per signer or signing Secret, and
	// reason); a mint beyond it gets its own event on its DatasetteToken, as before.
	maxSummaries = 1024
	// maxSummaryNamespaces bounds the namespaces a summary names.
	maxSummaryNamespaces = 8
)

// summaryTarget is the object a summary event is about: a DatasetteSigner, a
// ClusterDatasetteSigner, or a signing Secret.
type summaryTarget struct {
	kind, namespace, name string
}

// summaryTargetOf is where the key of tok comes from.
func summaryTargetOf(tok *datasettev1alpha1.DatasetteToken) summaryTarget {
	switch ref := tok.Spec.SignerRef; {
	case ref == nil && tok.Spec.SigningSecretRef != nil:
		return summaryTarget{kind: "Secret", namespace: tok.Namespace, name: tok.Spec.SigningSecretRef.Name}
	case ref == nil:
		return summaryTarget{}
	case ref.Kind == datasettev1alpha1.ClusterDatasetteSignerKind:
		return summaryTarget{kind: ref.Kind, name: ref.Name}
	default:
		return summaryTarget{kind: datasettev1alpha1.DatasetteSignerKind, namespace: tok.Namespace, name: ref.Name}
	}
}

// summaryKey identifies one pending summary.
type summaryKey struct {
	target summaryTarget
	reason mintReason
}

// summary counts the tokens re-minted for one reason under one signer or signing Secret.
type summary struct {
	summaryKey
	// count is how many tokens were re-minted.
	count int
	// first and last are the times of the first and the last mint counted.
	first, last time.Time
	// namespaces are the first few namespaces of the tokens; moreNamespaces says there were others.
	namespaces     []string
	moreNamespaces bool
}

// mintSummaries holds the summaries not yet told. Its memory is bounded by maxSummaries; nothing
// is kept per token.
type mintSummaries struct {
	mu      sync.Mutex
	pending map[summaryKey]*summary
}

// summarized reports whether mints for reason are told by a summary rather than per token.
func summarized(reason mintReason) bool {
	return reason == mintRotation || reason == mintRenewal
}

// add counts a mint of a token of namespace; it returns false when the mint must be told on
// its own (no target, or too many summaries pending).
func (s *mintSummaries) add(target summaryTarget, reason mintReason, namespace string, now time.Time) bool {
	if target.kind == "" {
		return false
	}
	key := summaryKey{target: target, reason: reason}
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := s.pending[key]
	if sum == nil {
		if len(s.pending) >= maxSummaries {
			return false
		}
		if s.pending == nil {
			s.pending = map[summaryKey]*summary{}
		}
		sum = &summary{summaryKey: key, first: now}
		s.pending[key] = sum
	}
	sum.count++
	sum.last = now
	if target.kind != datasettev1alpha1.ClusterDatasetteSignerKind && !slices.Contains(sum.namespaces, namespace) {
		if len(sum.namespaces) < maxSummaryNamespaces {
			sum.namespaces = append(sum.namespaces, namespace)
		} else {
			sum.moreNamespaces = true
		}
	}
	return true
}

// due removes and returns the summaries to tell now: those quiet for summaryQuiet, those held
// for summaryMaxAge, or all of them when all is set.
func (s *mintSummaries) due(now time.Time, all bool) []summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []summary
	for key, sum := range s.pending {
		if all || now.Sub(sum.last) >= summaryQuiet || now.Sub(sum.first) >= summaryMaxAge {
			out = append(out, *sum)
			delete(s.pending, key)
		}
	}
	slices.SortFunc(out, func(a, b summary) int { return a.first.Compare(b.first) })
	return out
}

// eventReason names a summary's event: TokensReminted or TokensRenewed.
func (s summary) eventReason() string {
	if s.reason == mintRenewal {
		return "TokensRenewed"
	}
	return "TokensReminted"
}

// note is a summary's event note: how many tokens, why, and in which namespaces.
func (s summary) note() string {
	tokens := "tokens"
	if s.count == 1 {
		tokens = "token"
	}
	var why string
	switch {
	case s.reason == mintRenewal:
		why = fmt.Sprintf("renewed %d %s of DatasetteTokens at their renewal time", s.count, tokens)
	case s.target.kind == "Secret":
		why = fmt.Sprintf("re-minted %d %s of DatasetteTokens signed with this Secret's previous key (key rotation)", s.count, tokens)
	default:
		why = fmt.Sprintf("re-minted %d %s of DatasetteTokens signed with the previous key of this signer's Secret (key rotation)", s.count, tokens)
	}
	span := s.last.Sub(s.first).Round(time.Millisecond)
	if s.target.kind == datasettev1alpha1.ClusterDatasetteSignerKind {
		// The event of a cluster-scoped object lands in "default", which tenants may read:
		// it names none of the tenants' namespaces.
		return truncate(fmt.Sprintf("%s, over %s", why, span), maxNote)
	}
	where := strings.Join(s.namespaces, ", ")
	if s.moreNamespaces {
		where += " and others"
	}
	return truncate(fmt.Sprintf("%s, in namespace(s) %s, over %s", why, where, span), maxNote)
}

// summaryEmitter tells due summaries as events, every summaryTick, until its context ends; then
// it tells the rest. It runs only on the elected leader.
type summaryEmitter struct {
	r *DatasetteTokenReconciler
}

// Start runs the emitter (a manager Runnable).
func (e summaryEmitter) Start(ctx context.Context) error {
	ticker := time.NewTicker(summaryTick)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			e.r.emitSummaries(context.Background(), e.r.summaries.due(time.Now(), true))
			return nil
		case <-ticker.C:
			e.r.emitSummaries(ctx, e.r.summaries.due(time.Now(), false))
		}
	}
}

// emitSummaries records one event per summary, about its signer or signing Secret.
func (r *DatasetteTokenReconciler) emitSummaries(ctx context.Context, sums []summary) {
	for _, s := range sums {
		r.Recorder.Eventf(r.summaryObject(ctx, s.target), nil, corev1.EventTypeNormal, s.eventReason(), "Mint", "%s", s.note())
	}
}

// summaryObject is the object a summary event regards: the signer as the cache holds it (the
// recorder leaves its resourceVersion out), or the signing Secret by name (the Secret metadata
// watch keeps no UID to add).
func (r *DatasetteTokenReconciler) summaryObject(ctx context.Context, t summaryTarget) runtime.Object {
	var signer client.Object
	switch t.kind {
	case datasettev1alpha1.ClusterDatasetteSignerKind:
		signer = &datasettev1alpha1.ClusterDatasetteSigner{}
	case datasettev1alpha1.DatasetteSignerKind:
		signer = &datasettev1alpha1.DatasetteSigner{}
	default:
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: t.namespace, Name: t.name}}
	}
	if found, err := get(ctx, r.Client, types.NamespacedName{Namespace: t.namespace, Name: t.name}, signer); !found || err != nil {
		signer.SetNamespace(t.namespace)
		signer.SetName(t.name)
	}
	return signer
}
