package kubectlplugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/internal/textsafe"
)

// Output formats (-o).
const (
	outputWide = "wide"
	outputJSON = "json"
	outputYAML = "yaml"
)

// StatusOptions are `kubectl datasette status`'s inputs.
type StatusOptions struct {
	// Names are the tokens to show; none means every token in scope.
	Names []string
	// AllNamespaces is -A; Namespace is -n (or the context's).
	AllNamespaces bool
	Namespace     string
	// Selector is -l.
	Selector string
	// Output is -o: "" (a table), wide, json or yaml.
	Output string

	factory *clientFactory
	client  client.Client
	now     func() time.Time
	genericiooptions.IOStreams
}

func newStatusCommand(f *clientFactory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &StatusOptions{factory: f, IOStreams: streams, now: time.Now}
	cmd := &cobra.Command{
		Use:   "status [NAME...] [-n NAMESPACE | -A] [-l SELECTOR] [-o wide|json|yaml]",
		Short: "Show DatasetteTokens: ready, reason, actor, signer, issued, renews, expires",
		Example: "  kubectl datasette status -A\n" +
			"  kubectl datasette status -n analytics -l team=reports -o wide",
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
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "Show tokens in every namespace.")
	cmd.Flags().StringVarP(&o.Selector, "selector", "l", "", "Only tokens whose labels match this selector.")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "Output format: wide, json or yaml (default: a table).")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{outputWide, outputJSON, outputYAML}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// Complete fills the namespace and the client from the flags.
func (o *StatusOptions) Complete(args []string) error {
	o.Names = args
	ns, err := o.factory.namespace()
	if err != nil {
		return err
	}
	o.Namespace = ns
	if o.client, err = o.factory.client(); err != nil {
		return err
	}
	return nil
}

// Validate rejects contradictory flags.
func (o *StatusOptions) Validate() error {
	switch o.Output {
	case "", outputWide, outputJSON, outputYAML:
	default:
		return fmt.Errorf("-o %q: want wide, json or yaml", o.Output)
	}
	if len(o.Names) > 0 && (o.AllNamespaces || o.Selector != "") {
		return errors.New("give token names or -A/-l, not both")
	}
	if _, err := parseSelector(o.Selector); o.Selector != "" && err != nil {
		return err
	}
	return nil
}

// Run reads the tokens and prints them.
func (o *StatusOptions) Run(ctx context.Context) error {
	var tokens []datasettev1alpha1.DatasetteToken
	var errs []error
	if len(o.Names) > 0 {
		for _, name := range o.Names {
			var t datasettev1alpha1.DatasetteToken
			if err := o.client.Get(ctx, client.ObjectKey{Namespace: o.Namespace, Name: name}, &t); err != nil {
				errs = append(errs, fmt.Errorf("DatasetteToken %s/%s: %w", o.Namespace, name, err))
				continue
			}
			tokens = append(tokens, t)
		}
	} else {
		ns := o.Namespace
		if o.AllNamespaces {
			ns = ""
		}
		var err error
		if tokens, err = listTokens(ctx, o.client, ns, o.Selector); err != nil {
			return err
		}
	}
	if err := o.print(tokens); err != nil {
		return err
	}
	return errors.Join(errs...)
}

func (o *StatusOptions) print(tokens []datasettev1alpha1.DatasetteToken) error {
	switch o.Output {
	case outputJSON, outputYAML:
		list := datasettev1alpha1.DatasetteTokenList{Items: tokens}
		list.APIVersion, list.Kind = datasettev1alpha1.GroupVersion.String(), "DatasetteTokenList"
		for i := range list.Items {
			list.Items[i].APIVersion, list.Items[i].Kind = datasettev1alpha1.GroupVersion.String(), "DatasetteToken"
			list.Items[i].ManagedFields = nil
		}
		var out []byte
		var err error
		if o.Output == outputJSON {
			if out, err = json.MarshalIndent(list, "", "    "); err == nil {
				out = append(textsafe.EscapeJSON(out), '\n')
			}
		} else {
			if out, err = yaml.Marshal(list); err != nil {
				// sigs.k8s.io/yaml refuses DEL, C1 controls, U+FFFE and U+FFFF, which anyone who
				// may edit one token can put in its annotations: YAML v3 writes them escaped.
				out, err = yamlV3(list)
			}
			if err == nil {
				out, err = safeYAML(out)
			}
		}
		if err != nil {
			return fmt.Errorf("encoding the tokens: %w", err)
		}
		_, err = o.Out.Write(out)
		return err
	}
	if len(tokens) == 0 {
		if o.AllNamespaces {
			_, err := fmt.Fprintln(o.ErrOut, "No DatasetteTokens found.")
			return err
		}
		_, err := fmt.Fprintf(o.ErrOut, "No DatasetteTokens found in %s namespace.\n", o.Namespace)
		return err
	}
	return writeTable(o.Out, tokens, o.AllNamespaces, o.Output == outputWide, o.now())
}

// writeTable prints tokens as kubectl prints resources.
func writeTable(out io.Writer, tokens []datasettev1alpha1.DatasetteToken, withNamespace, wide bool, now time.Time) error {
	w := tabwriter.NewWriter(out, 3, 0, 3, ' ', 0)
	header := "NAME\tREADY\tREASON\tACTOR\tSIGNER\tISSUED\tRENEWS\tEXPIRES"
	if withNamespace {
		header = "NAMESPACE\t" + header
	}
	if wide {
		header += "\tSECRET\tMESSAGE"
	}
	if _, err := fmt.Fprintln(w, header); err != nil {
		return err
	}
	for i := range tokens {
		t := &tokens[i]
		ready, reason, message := "Unknown", "-", ""
		if c := meta.FindStatusCondition(t.Status.Conditions, datasettev1alpha1.ConditionReady); c != nil {
			ready, reason, message = string(c.Status), c.Reason, c.Message
		}
		row := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", clean(t.Name, 253), ready, clean(reason, 64),
			clean(t.Spec.Actor, 40), signerOf(t), relative(t.Status.IssuedAt, now), relative(t.Status.RenewalTime, now),
			relative(t.Status.ExpiresAt, now))
		if withNamespace {
			row = clean(t.Namespace, 63) + "\t" + row
		}
		if wide {
			secret := t.Status.SecretName
			if secret == "" {
				secret = "-"
			}
			row += "\t" + clean(secret, 253) + "\t" + clean(message, 200)
		}
		if _, err := fmt.Fprintln(w, row); err != nil {
			return err
		}
	}
	return w.Flush()
}

// signerOf names the token's signer: Kind/name, or secret/name for a signing Secret of its own.
func signerOf(t *datasettev1alpha1.DatasetteToken) string {
	switch {
	case t.Spec.SignerRef != nil:
		return clean(t.Spec.SignerRef.Kind+"/"+t.Spec.SignerRef.Name, 100)
	case t.Spec.SigningSecretRef != nil:
		return clean("secret/"+t.Spec.SigningSecretRef.Name, 100)
	}
	return "-"
}
