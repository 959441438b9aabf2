package kubectlplugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
)

// maxWait bounds --timeout.
const maxWait = time.Hour

// RenewOptions are `kubectl datasette renew`'s inputs.
type RenewOptions struct {
	// Names are the tokens to renew, or All of them in scope (optionally -l Selector).
	Names         []string
	All           bool
	AllNamespaces bool
	Namespace     string
	Selector      string
	// Wait waits until each token was re-minted (status.lastRenewRequest is the request), at most Timeout.
	Wait    bool
	Timeout time.Duration
	// PollInterval is how often --wait reads the tokens.
	PollInterval time.Duration

	factory *clientFactory
	client  client.Client
	now     func() time.Time
	genericiooptions.IOStreams
}

func newRenewCommand(f *clientFactory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &RenewOptions{factory: f, IOStreams: streams, now: time.Now, PollInterval: 500 * time.Millisecond}
	cmd := &cobra.Command{
		Use:   "renew (NAME... | --all [-l SELECTOR]) [-n NAMESPACE | -A] [--wait]",
		Short: "Ask the operator to re-mint tokens now (the datasette.io/renew-requested-at annotation)",
		Example: "  kubectl datasette renew reports-reader -n analytics --wait\n" +
			"  kubectl datasette renew --all -n analytics --wait",
		ValidArgsFunction: completeTokenNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().BoolVar(&o.All, "all", false, "Renew every token in the namespace (or, with -A, everywhere).")
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "With --all: in every namespace.")
	cmd.Flags().StringVarP(&o.Selector, "selector", "l", "", "With --all: only tokens whose labels match.")
	cmd.Flags().BoolVar(&o.Wait, "wait", false, "Wait until each token was re-minted.")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 2*time.Minute, "How long --wait waits, at most 1h.")
	return cmd
}

// Complete fills the namespace and the client from the flags.
func (o *RenewOptions) Complete(args []string) error {
	o.Names = args
	ns, err := o.factory.namespace()
	if err != nil {
		return err
	}
	o.Namespace = ns
	o.client, err = o.factory.client()
	return err
}

// Validate requires names or --all, not both.
func (o *RenewOptions) Validate() error {
	switch {
	case len(o.Names) == 0 && !o.All:
		return errors.New("give token names, or --all")
	case len(o.Names) > 0 && o.All:
		return errors.New("give token names or --all, not both")
	case !o.All && (o.AllNamespaces || o.Selector != ""):
		return errors.New("-A and -l need --all")
	case o.Timeout <= 0 || o.Timeout > maxWait:
		return fmt.Errorf("--timeout %s: want more than 0 and at most %s", o.Timeout, maxWait)
	}
	if o.Selector != "" {
		if _, err := parseSelector(o.Selector); err != nil {
			return err
		}
	}
	return nil
}

// Run annotates the tokens and, with --wait, waits for the operator.
func (o *RenewOptions) Run(ctx context.Context) error {
	var keys []types.NamespacedName
	if o.All {
		ns := o.Namespace
		if o.AllNamespaces {
			ns = ""
		}
		tokens, err := listTokens(ctx, o.client, ns, o.Selector)
		if err != nil {
			return err
		}
		if len(tokens) == 0 {
			_, err := fmt.Fprintln(o.ErrOut, "No DatasetteTokens to renew.")
			return err
		}
		for _, t := range tokens {
			keys = append(keys, types.NamespacedName{Namespace: t.Namespace, Name: t.Name})
		}
	} else {
		for _, n := range o.Names {
			keys = append(keys, types.NamespacedName{Namespace: o.Namespace, Name: n})
		}
	}

	// One value for the whole request, to the nanosecond: a later request always differs.
	value := o.now().UTC().Format(time.RFC3339Nano)
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{datasettev1alpha1.AnnotationRenewRequestedAt: value}}})
	if err != nil {
		return err
	}
	var errs []error
	var requested []types.NamespacedName
	for _, k := range keys {
		t := &datasettev1alpha1.DatasetteToken{}
		t.Namespace, t.Name = k.Namespace, k.Name
		if err := o.client.Patch(ctx, t, client.RawPatch(types.MergePatchType, patch)); err != nil {
			errs = append(errs, fmt.Errorf("DatasetteToken %s: %w", k, err))
			continue
		}
		requested = append(requested, k)
		if _, err := fmt.Fprintf(o.Out, "datasettetoken %s renewal requested\n", k); err != nil {
			return err
		}
	}
	if o.Wait {
		errs = append(errs, o.wait(ctx, requested, value)...)
	}
	return errors.Join(errs...)
}

// wait polls the tokens until each has served the request value, or the timeout passes; a token
// that cannot be re-minted is reported with its Ready reason and message.
func (o *RenewOptions) wait(ctx context.Context, keys []types.NamespacedName, value string) []error {
	pending := map[types.NamespacedName]bool{}
	for _, k := range keys {
		pending[k] = true
	}
	last := map[types.NamespacedName]*datasettev1alpha1.DatasetteToken{}
	_ = wait.PollUntilContextTimeout(ctx, o.PollInterval, o.Timeout, true, func(ctx context.Context) (bool, error) {
		for _, k := range keys {
			if !pending[k] {
				continue
			}
			var t datasettev1alpha1.DatasetteToken
			if err := o.client.Get(ctx, k, &t); err != nil {
				continue
			}
			last[k] = &t
			if t.Status.LastRenewRequest == value {
				delete(pending, k)
				_, _ = fmt.Fprintf(o.Out, "datasettetoken %s re-minted: issued %s, renews %s, expires %s\n", k,
					relative(t.Status.IssuedAt, o.now()), relative(t.Status.RenewalTime, o.now()), relative(t.Status.ExpiresAt, o.now()))
			}
		}
		return len(pending) == 0, nil
	})
	var errs []error
	for _, k := range keys {
		if !pending[k] {
			continue
		}
		why := "the operator has not answered"
		if t := last[k]; t != nil {
			if c := meta.FindStatusCondition(t.Status.Conditions, datasettev1alpha1.ConditionReady); c != nil {
				why = fmt.Sprintf("Ready=%s %s: %s", c.Status, clean(c.Reason, 64), clean(c.Message, 300))
			}
		}
		errs = append(errs, fmt.Errorf("DatasetteToken %s was not re-minted within %s (%s)", k, o.Timeout, why))
	}
	return errs
}
