package rbac

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

const (
	// signingKeyName is the signing Secret's key a DatasetteToken reads when it names none.
	signingKeyName = "DATASETTE_SECRET"
	// tokenKeyName is the output Secret's key holding the token.
	tokenKeyName = "token"
)

// scenario is the end-to-end run the operator must complete with its own RBAC, in one namespace:
// issue, rotation, repair, conflict. Every change is made by the administrator; everything else is the
// manager's work. Each step is a function of its own, so more can be added (a signer, say).
type scenario struct {
	ns            string
	signingSecret string
	// key is the current signing key.
	key        []byte
	token      types.NamespacedName
	secretName string
	// timeout bounds each wait.
	timeout time.Duration
}

// step is one stage of the scenario; it returns why it failed.
type step struct {
	name string
	run  func(context.Context) error
}

func newScenario(ns string) *scenario {
	return &scenario{
		ns:            ns,
		signingSecret: "datasette",
		key:           []byte("first signing key of " + ns),
		token:         types.NamespacedName{Namespace: ns, Name: "rbac"},
		secretName:    "rbac-token",
		timeout:       20 * time.Second,
	}
}

func (s *scenario) steps() []step {
	return []step{
		{"issue", s.issue},
		{"rotate", s.rotate},
		{"repair", s.repair},
		{"conflict", s.conflict},
	}
}

// run runs every step and fails the test at the first that fails (and carries on, so that the
// caller can still report what the manager logged).
func (s *scenario) run(t *testing.T) {
	t.Helper()
	if failed, err := s.tryAll(); err != nil {
		t.Errorf("step %q: %v", failed, err)
	}
}

// tryAll runs the steps in order, up to the first that fails, and returns its name and error.
func (s *scenario) tryAll() (failed string, err error) {
	ctx := context.Background()
	for _, st := range s.steps() {
		if err := st.run(ctx); err != nil {
			return st.name, err
		}
	}
	return "", nil
}

// issue: a signing Secret and a DatasetteToken give a Ready token, a Secret holding a token signed
// with the key, and an event.
func (s *scenario) issue(ctx context.Context) error {
	if err := admin.Create(ctx, s.signingSecretObject()); err != nil {
		return fmt.Errorf("creating the signing Secret: %w", err)
	}
	if err := admin.Create(ctx, s.tokenObject(s.token.Name, s.secretName)); err != nil {
		return fmt.Errorf("creating the DatasetteToken: %w", err)
	}
	if err := s.eventually("Ready with a token signed by the key", func() error {
		if err := s.readyIs(ctx, s.token, metav1.ConditionTrue, datasettev1alpha1.ReasonIssued); err != nil {
			return err
		}
		_, err := s.outputToken(ctx)
		return err
	}); err != nil {
		return err
	}
	return s.eventually("an event on the DatasetteToken", func() error { return s.hasEvent(ctx, s.token.Name) })
}

// rotate: a new signing key re-mints the token under it.
func (s *scenario) rotate(ctx context.Context) error {
	before, err := s.outputToken(ctx)
	if err != nil {
		return err
	}
	s.key = []byte("second signing key of " + s.ns)
	if err := admin.Update(ctx, s.signingSecretObject()); err != nil {
		return fmt.Errorf("rotating the signing key: %w", err)
	}
	return s.eventually("re-minted under the new key", func() error {
		after, err := s.outputToken(ctx)
		if err == nil && after == before {
			err = errors.New("the token has not changed")
		}
		return err
	})
}

// repair: the output Secret, deleted, comes back.
func (s *scenario) repair(ctx context.Context) error {
	var secret corev1.Secret
	if err := admin.Get(ctx, s.outputKey(), &secret); err != nil {
		return fmt.Errorf("reading the output Secret: %w", err)
	}
	if err := admin.Delete(ctx, &secret); err != nil {
		return fmt.Errorf("deleting the output Secret: %w", err)
	}
	return s.eventually("the output Secret re-created", func() error {
		var again corev1.Secret
		if err := admin.Get(ctx, s.outputKey(), &again); err != nil {
			return err
		}
		if again.UID == secret.UID {
			return errors.New("still the deleted Secret")
		}
		_, err := s.outputToken(ctx)
		return err
	})
}

// conflict: a second DatasetteToken whose secretName is someone else's Secret is SecretConflict, and
// that Secret is left as it was.
func (s *scenario) conflict(ctx context.Context) error {
	foreignData := map[string][]byte{tokenKeyName: []byte("not the operator's")}
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: "foreign"}, Data: foreignData}
	if err := admin.Create(ctx, foreign); err != nil {
		return fmt.Errorf("creating the foreign Secret: %w", err)
	}
	second := types.NamespacedName{Namespace: s.ns, Name: "rbac-conflict"}
	if err := admin.Create(ctx, s.tokenObject(second.Name, foreign.Name)); err != nil {
		return fmt.Errorf("creating the second DatasetteToken: %w", err)
	}
	if err := s.eventually("SecretConflict", func() error {
		return s.readyIs(ctx, second, metav1.ConditionFalse, datasettev1alpha1.ReasonSecretConflict)
	}); err != nil {
		return err
	}
	var after corev1.Secret
	if err := admin.Get(ctx, client.ObjectKeyFromObject(foreign), &after); err != nil {
		return fmt.Errorf("reading the foreign Secret: %w", err)
	}
	if len(after.OwnerReferences) > 0 || !bytes.Equal(after.Data[tokenKeyName], foreignData[tokenKeyName]) {
		return errors.New("the foreign Secret was changed")
	}
	return nil
}

func (s *scenario) signingSecretObject() *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: s.signingSecret},
		Data:       map[string][]byte{signingKeyName: s.key},
	}
}

func (s *scenario) tokenObject(name, secretName string) *datasettev1alpha1.DatasetteToken {
	return &datasettev1alpha1.DatasetteToken{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: name},
		Spec: datasettev1alpha1.DatasetteTokenSpec{
			Actor:            "rbac-test",
			SigningSecretRef: &datasettev1alpha1.SecretKeyRef{Name: s.signingSecret},
			SecretName:       secretName,
		},
	}
}

// createSigningSecret and createToken set up a token without waiting for anything.
func (s *scenario) createSigningSecret(t *testing.T) {
	t.Helper()
	if err := admin.Create(context.Background(), s.signingSecretObject()); err != nil {
		t.Fatalf("creating the signing Secret: %v", err)
	}
}

func (s *scenario) createToken(t *testing.T, name, secretName string) {
	t.Helper()
	if err := admin.Create(context.Background(), s.tokenObject(name, secretName)); err != nil {
		t.Fatalf("creating the DatasetteToken: %v", err)
	}
}

func (s *scenario) get(t *testing.T, key types.NamespacedName) *datasettev1alpha1.DatasetteToken {
	t.Helper()
	var tok datasettev1alpha1.DatasetteToken
	if err := admin.Get(context.Background(), key, &tok); err != nil {
		t.Fatalf("reading DatasetteToken %s: %v", key, err)
	}
	return &tok
}

func (s *scenario) outputKey() types.NamespacedName {
	return types.NamespacedName{Namespace: s.ns, Name: s.secretName}
}

// outputToken returns the output Secret's token once it verifies under the current key.
func (s *scenario) outputToken(ctx context.Context) (string, error) {
	var secret corev1.Secret
	if err := admin.Get(ctx, s.outputKey(), &secret); err != nil {
		return "", fmt.Errorf("reading the output Secret: %w", err)
	}
	token := string(secret.Data[tokenKeyName])
	if _, err := dstoken.NewVerifier(s.key).Verify(token, dstoken.VerifyOptions{Now: time.Now()}); err != nil {
		return "", fmt.Errorf("the output Secret's token does not verify under the current key: %w", err)
	}
	return token, nil
}

// readyIs checks a DatasetteToken's Ready condition, for its current generation.
func (s *scenario) readyIs(ctx context.Context, key types.NamespacedName, status metav1.ConditionStatus, reason string) error {
	var tok datasettev1alpha1.DatasetteToken
	if err := admin.Get(ctx, key, &tok); err != nil {
		return fmt.Errorf("reading DatasetteToken %s: %w", key, err)
	}
	c := meta.FindStatusCondition(tok.Status.Conditions, datasettev1alpha1.ConditionReady)
	switch {
	case c == nil:
		return fmt.Errorf("DatasetteToken %s has no Ready condition", key)
	case c.ObservedGeneration != tok.Generation || c.Status != status || c.Reason != reason:
		return fmt.Errorf("DatasetteToken %s is Ready=%s %s (generation %d of %d), want Ready=%s %s",
			key, c.Status, c.Reason, c.ObservedGeneration, tok.Generation, status, reason)
	}
	return nil
}

// hasEvent checks that the operator recorded an event on the DatasetteToken name.
func (s *scenario) hasEvent(ctx context.Context, name string) error {
	var events eventsv1.EventList
	if err := admin.List(ctx, &events, client.InNamespace(s.ns)); err != nil {
		return fmt.Errorf("listing events: %w", err)
	}
	for _, e := range events.Items {
		if e.Regarding.Kind == "DatasetteToken" && e.Regarding.Name == name {
			return nil
		}
	}
	return fmt.Errorf("no event on DatasetteToken %s/%s", s.ns, name)
}

// eventually retries check every 100ms until it succeeds or the scenario's timeout passes.
func (s *scenario) eventually(what string, check func() error) error {
	deadline := time.Now().Add(s.timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s: %w", what, s.timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
