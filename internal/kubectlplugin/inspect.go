package kubectlplugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/internal/textsafe"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

const (
	// tokenKey is the key of the output Secret's data that holds the token.
	tokenKey = "token"
	// maxSecretFileSize bounds --secret-file (the operator refuses signing keys over 4 KiB).
	maxSecretFileSize = 8 << 10
)

// InspectOptions are `kubectl datasette inspect`'s inputs.
type InspectOptions struct {
	Name      string
	Namespace string
	// SecretFile, when given, holds the signing key to verify the token with (- for standard input).
	SecretFile string
	// Output is "" (text) or json.
	Output string

	secret  []byte
	factory *clientFactory
	client  client.Client
	now     func() time.Time
	genericiooptions.IOStreams
}

// Inspection is what inspect prints: never the token nor a key.
type Inspection struct {
	Namespace  string       `json:"namespace"`
	Name       string       `json:"name"`
	Secret     string       `json:"secret"`
	Actor      string       `json:"actor"`
	IssuedAt   *metav1.Time `json:"issuedAt,omitempty"`
	ExpiresAt  *metav1.Time `json:"expiresAt,omitempty"`
	Restricted bool         `json:"restricted"`
	// Payload is the signed JSON.
	Payload json.RawMessage `json:"payload"`
	// Verified is nil without --secret-file.
	Verified *bool `json:"verified,omitempty"`
	// VerifyError says why the signature did not verify.
	VerifyError string `json:"verifyError,omitempty"`
}

func newInspectCommand(f *clientFactory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &InspectOptions{factory: f, IOStreams: streams, now: time.Now}
	cmd := &cobra.Command{
		Use:   "inspect NAME [-n NAMESPACE] [--secret-file FILE] [-o json]",
		Short: "Decode the claims of the token a DatasetteToken's Secret holds (never printing it)",
		Example: "  kubectl datasette inspect reports-reader -n analytics\n" +
			"  kubectl get secret datasette -n datasette -o jsonpath='{.data.DATASETTE_SECRET}' | base64 -d |\n" +
			"    kubectl datasette inspect reports-reader -n analytics --secret-file -",
		Args:              cobra.ExactArgs(1),
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
	cmd.Flags().StringVar(&o.SecretFile, "secret-file", "", "Verify the signature with the signing key in this file (- for standard input).")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "Output format: json (default: text).")
	return cmd
}

// Complete fills the namespace and the client, and reads --secret-file.
func (o *InspectOptions) Complete(args []string) error {
	o.Name = args[0]
	ns, err := o.factory.namespace()
	if err != nil {
		return err
	}
	o.Namespace = ns
	if o.SecretFile != "" {
		r := o.In
		if o.SecretFile != "-" {
			f, err := os.Open(o.SecretFile)
			if err != nil {
				return fmt.Errorf("--secret-file: %w", err)
			}
			defer func() { _ = f.Close() }()
			r = f
		}
		data, err := io.ReadAll(io.LimitReader(r, maxSecretFileSize+1))
		if err != nil {
			return fmt.Errorf("--secret-file: %w", err)
		}
		if len(data) > maxSecretFileSize {
			return fmt.Errorf("--secret-file is larger than %d bytes", maxSecretFileSize)
		}
		// As the datasette-token CLI: exactly one trailing newline is not part of the key.
		o.secret = []byte(strings.TrimSuffix(string(data), "\n"))
	}
	o.client, err = o.factory.client()
	return err
}

// Validate checks the output format and the key.
func (o *InspectOptions) Validate() error {
	if o.Output != "" && o.Output != outputJSON {
		return fmt.Errorf("-o %q: want json", o.Output)
	}
	if o.SecretFile != "" && len(o.secret) == 0 {
		return errors.New("--secret-file is empty")
	}
	return nil
}

// Run reads the token from its Secret and prints its claims.
func (o *InspectOptions) Run(ctx context.Context) error {
	var t datasettev1alpha1.DatasetteToken
	if err := o.client.Get(ctx, client.ObjectKey{Namespace: o.Namespace, Name: o.Name}, &t); err != nil {
		return fmt.Errorf("DatasetteToken %s/%s: %w", o.Namespace, o.Name, err)
	}
	s, err := o.issuedSecret(ctx, &t)
	if err != nil {
		return err
	}
	secretName := s.Name
	token := string(s.Data[tokenKey])
	if token == "" {
		return fmt.Errorf("the token's Secret %s/%s holds no %q key: the operator has not issued the token", o.Namespace, secretName, tokenKey)
	}
	d, err := dstoken.Decode(token)
	if err != nil {
		// The decoder's errors quote no part of the token.
		return fmt.Errorf("the token's Secret %s/%s does not hold a Datasette token: %w", o.Namespace, secretName, err)
	}
	in := Inspection{
		Namespace: o.Namespace, Name: o.Name, Secret: secretName,
		Actor: d.Claims.Actor, Restricted: d.Restricted(), Payload: d.Payload,
	}
	if d.Claims.IssuedAt != 0 {
		issued := metav1.NewTime(time.Unix(d.Claims.IssuedAt, 0))
		in.IssuedAt = &issued
		if d.Claims.ExpiresAfter != 0 {
			exp := metav1.NewTime(issued.Add(time.Duration(d.Claims.ExpiresAfter) * time.Second))
			in.ExpiresAt = &exp
		}
	}
	if o.secret != nil {
		_, err := dstoken.NewVerifier(o.secret).Verify(token, dstoken.VerifyOptions{Now: o.now()})
		ok := err == nil
		in.Verified = &ok
		if err != nil {
			in.VerifyError = err.Error()
		}
	}
	return o.print(in)
}

// issuedSecret reads the Secret the operator recorded writing the token to, status.secretName,
// and only when the token controls it: spec.secretName is what anyone who may edit the token
// asked for, and may name someone else's Secret. Its metadata are read first, so that no other
// Secret is read whole.
func (o *InspectOptions) issuedSecret(ctx context.Context, t *datasettev1alpha1.DatasetteToken) (*corev1.Secret, error) {
	if t.Status.SecretName == "" {
		why := ""
		if c := meta.FindStatusCondition(t.Status.Conditions, datasettev1alpha1.ConditionReady); c != nil {
			why = fmt.Sprintf(" (Ready=%s %s: %s)", c.Status, clean(c.Reason, 64), clean(c.Message, 300))
		}
		return nil, fmt.Errorf("DatasetteToken %s/%s has not been issued yet: its status names no Secret%s; "+
			"see kubectl datasette status %s -n %s", o.Namespace, o.Name, why, o.Name, o.Namespace)
	}
	key := client.ObjectKey{Namespace: o.Namespace, Name: t.Status.SecretName}
	var owners metav1.PartialObjectMetadata
	owners.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := o.client.Get(ctx, key, &owners); err != nil {
		return nil, fmt.Errorf("the token's Secret %s: %w", key, err)
	}
	if !metav1.IsControlledBy(&owners, t) {
		return nil, fmt.Errorf("the Secret %s that DatasetteToken %s/%s's status names is not controlled by the token: "+
			"the operator did not write it, so it is not inspected", key, o.Namespace, o.Name)
	}
	var s corev1.Secret
	if err := o.client.Get(ctx, key, &s); err != nil {
		return nil, fmt.Errorf("the token's Secret %s: %w", key, err)
	}
	return &s, nil
}

func (o *InspectOptions) print(in Inspection) error {
	if o.Output == outputJSON {
		if !json.Valid(in.Payload) {
			in.Payload = nil
		}
		out, err := json.MarshalIndent(in, "", "    ")
		if err != nil {
			return fmt.Errorf("encoding the inspection: %w", err)
		}
		_, err = fmt.Fprintf(o.Out, "%s\n", textsafe.EscapeJSON(out))
		return err
	}
	now := o.now()
	when := func(t *metav1.Time, none string) string {
		if t == nil {
			return none
		}
		return t.UTC().Format(time.RFC3339) + " (" + relative(t, now) + ")"
	}
	payload, err := dstoken.IndentPayload(in.Payload, 2)
	if err != nil {
		payload = "(not JSON: " + err.Error() + ")"
	}
	verified := "not verified (give --secret-file with the signing key)"
	if in.Verified != nil && *in.Verified {
		verified = "valid: Datasette accepts this token"
	} else if in.Verified != nil {
		verified = "INVALID: " + in.VerifyError
	}
	restricted := "no: the actor's own permissions"
	if in.Restricted {
		restricted = "yes"
	}
	_, err = fmt.Fprintf(o.Out, "Token:       %s/%s\nSecret:      %s/%s (key %q)\nActor:       %s\n"+
		"Issued:      %s\nExpires:     %s\nRestricted:  %s\nSignature:   %s\nPayload:\n%s\n",
		clean(in.Namespace, 63), clean(in.Name, 253), clean(in.Namespace, 63), clean(in.Secret, 253), tokenKey,
		clean(in.Actor, 200), when(in.IssuedAt, "-"), when(in.ExpiresAt, "never"), restricted, clean(verified, 300),
		indent(cleanBlock(payload, 400), "  "))
	return err
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}
