package cli

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/datasette-token-operator/datasette-token-operator/internal/textsafe"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// The DatasetteToken kind, as manifest writes it. This package links no
// Kubernetes code, so the few API fields it writes are declared here; a
// test decodes the output strictly into the real API types.
const (
	manifestAPIVersion         = "datasette.io/v1alpha1"
	manifestKind               = "DatasetteToken"
	datasetteSignerKind        = "DatasetteSigner"
	clusterDatasetteSignerKind = "ClusterDatasetteSigner"
)

// Limits of the DatasetteToken schema that manifest checks, so that a
// command line the API server would reject fails here, with a message.
const (
	maxActorLength       = 1024   // spec.actor
	maxNameLength        = 1024   // database and resource names
	maxActionLength      = 256    // one action
	maxAllActions        = 64     // restrictions.all
	maxEntries           = 1024   // restrictions.databases, restrictions.resources
	maxEntryActions      = 64     // actions of one database or resource
	maxRestrictionValues = 8192   // entries and actions of all restrictions
	maxRestrictionChars  = 131072 // characters of all names and actions of restrictions
	maxObjectName        = 253    // DNS-1123 subdomain: names of the token, Secrets, signers
	maxLabelName         = 63     // DNS-1123 label: namespace, derived names
	maxDurationSecond    = int64(1<<63-1) / int64(time.Second)
)

var (
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	secretKey    = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)
	notNameChars = regexp.MustCompile(`[^a-z0-9]+`)
)

// errNoName is returned when no DatasetteToken name can be derived from the actor.
var errNoName = errors.New("cannot derive a DatasetteToken name from the actor ID: give one with --name")

// ManifestOptions holds the parameters of "datasette-token manifest", which
// prints the DatasetteToken that makes the operator mint the token
// "datasette-token create-token" would mint with the same ID, -e, -a, -d
// and -r.
type ManifestOptions struct {
	// ID is the actor ID (spec.actor).
	ID string
	// ExpiresAfter, All, Databases and Resources are -e, -a, -d and -r.
	restrictionOptions
	// Signer is --signer KIND/NAME (spec.signerRef).
	Signer string
	// SigningSecret is --signing-secret NAME[:KEY] (spec.signingSecretRef).
	SigningSecret string
	// Name is --name (metadata.name); empty: derived from ID.
	Name string
	// Namespace is --namespace (metadata.namespace); empty: left out.
	Namespace string
	// SecretName is --secret-name (spec.secretName); empty: left out.
	SecretName string

	signerSet, signingSecretSet, nameSet bool
	IOStreams
	// DatasetteVersion and Profile are --datasette-version: the release of the signer's
	// instance, which manifest records and checks the restrictions against.
	releaseOption
}

// NewManifestOptions returns ManifestOptions writing to streams.
func NewManifestOptions(streams IOStreams) *ManifestOptions {
	return &ManifestOptions{IOStreams: streams}
}

func (o *ManifestOptions) command() *Command {
	text := func(dst *string, set *bool) func([]string) error {
		return func(v []string) error {
			*dst = v[0]
			if set != nil {
				*set = true
			}
			return nil
		}
	}
	return &Command{
		Path:         ProgramName + " manifest",
		UsagePieces:  "ID",
		Interspersed: true,
		Params: append(append([]Param{
			&Argument{Metavar: "ID", Required: true, Set: func(v string) error { o.ID = v; return nil }},
		}, restrictionParams(&o.restrictionOptions)...),
			&Option{Names: []string{"--signer"}, Nargs: 1, Set: text(&o.Signer, &o.signerSet)},
			&Option{Names: []string{"--signing-secret"}, Nargs: 1, Set: text(&o.SigningSecret, &o.signingSecretSet)},
			&Option{Names: []string{"--name"}, Nargs: 1, Set: text(&o.Name, &o.nameSet)},
			&Option{Names: []string{"--namespace"}, Nargs: 1, Set: text(&o.Namespace, nil)},
			&Option{Names: []string{"--secret-name"}, Nargs: 1, Set: text(&o.SecretName, nil)},
			o.releaseParam(),
			helpOption(manifestHelp),
		),
	}
}

// Complete parses the command line (without "manifest") into o.
func (o *ManifestOptions) Complete(args []string) error {
	_, err := o.command().Parse(args, o.Getenv)
	return err
}

// Validate checks that the object can be built and that the API server
// would accept it (see Object).
func (o *ManifestOptions) Validate() error {
	_, err := o.Object()
	return err
}

// Run prints Datasette's "Unknown permission" warnings on stderr, as
// create-token does, and the DatasetteToken's YAML on stdout.
func (o *ManifestOptions) Run() error {
	out, err := o.YAML()
	if err != nil {
		return err
	}
	if err := o.warnUnknown(o.IOStreams, o.Profile); err != nil {
		return err
	}
	if _, err := o.Out.Write(out); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// ManifestYAML returns the YAML "datasette-token manifest" prints for args
// (the words after "manifest"), or the error it would report. It prints
// nothing.
func ManifestYAML(args []string) ([]byte, error) {
	o := NewManifestOptions(IOStreams{Getenv: func(string) string { return "" }})
	if err := o.Complete(args); err != nil {
		return nil, err
	}
	return o.YAML()
}

// YAML returns the DatasetteToken as YAML: block style, two-space indents,
// fields in the API's order, strings quoted wherever YAML 1.1 or 1.2 could
// read them as anything but a string.
func (o *ManifestOptions) YAML() ([]byte, error) {
	obj, err := o.Object()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	enc.CompactSeqIndent()
	if err := enc.Encode(obj); err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return b.Bytes(), nil
}

// manifestObject is a DatasetteToken, with the fields manifest writes.
type manifestObject struct {
	APIVersion string           `yaml:"apiVersion"`
	Kind       string           `yaml:"kind"`
	Metadata   manifestMetadata `yaml:"metadata"`
	Spec       manifestSpec     `yaml:"spec"`
}

type manifestMetadata struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

type manifestSpec struct {
	Actor            string                `yaml:"actor"`
	ExpiresAfter     string                `yaml:"expiresAfter,omitempty"`
	Restrictions     *manifestRestrictions `yaml:"restrictions,omitempty"`
	SignerRef        *manifestSignerRef    `yaml:"signerRef,omitempty"`
	SigningSecretRef *manifestSecretRef    `yaml:"signingSecretRef,omitempty"`
	SecretName       string                `yaml:"secretName,omitempty"`
}

type manifestRestrictions struct {
	All       []string           `yaml:"all,omitempty"`
	Databases []manifestDatabase `yaml:"databases,omitempty"`
	Resources []manifestResource `yaml:"resources,omitempty"`
}

type manifestDatabase struct {
	Name    string   `yaml:"name"`
	Actions []string `yaml:"actions"`
}

type manifestResource struct {
	Database string   `yaml:"database"`
	Resource string   `yaml:"resource"`
	Actions  []string `yaml:"actions"`
}

type manifestSignerRef struct {
	Kind string `yaml:"kind"`
	Name string `yaml:"name"`
}

type manifestSecretRef struct {
	Name string `yaml:"name"`
	Key  string `yaml:"key,omitempty"`
}

// Object builds the DatasetteToken, checking it against the CRD's schema:
// -e becomes expiresAfter (0: left out, the token never expires, as
// create-token writes no "d"; negative: an error, the CRD wants a positive
// lifetime), and -a, -d and -r become restrictions with the entries for the
// same database, or the same database and resource, merged in order of
// first appearance, as the token itself merges them.
func (o *ManifestOptions) Object() (*manifestObject, error) {
	c := o.command()
	usage := func(option, format string, args ...any) error {
		return &UsageError{Command: c, Message: fmt.Sprintf("Invalid value for '%s': %s.", option, fmt.Sprintf(format, args...))}
	}
	claims := dstoken.Claims{Actor: o.ID, ExpiresAfter: o.ExpiresAfter, Restrictions: o.Restrictions()}
	if err := claims.Validate(); err != nil {
		return nil, fmt.Errorf("cannot write a DatasetteToken Datasette could mint: %w", err)
	}
	obj := &manifestObject{
		APIVersion: manifestAPIVersion,
		Kind:       manifestKind,
		Metadata:   manifestMetadata{Name: o.Name, Namespace: o.Namespace},
		Spec:       manifestSpec{Actor: o.ID, SecretName: o.SecretName},
	}
	if err := checkLength("the actor ID", o.ID, maxActorLength); err != nil {
		return nil, err
	}

	switch {
	case o.signerSet && o.signingSecretSet:
		return nil, &UsageError{Command: c, Message: "'--signer' and '--signing-secret' cannot be used together."}
	case o.signerSet:
		ref, err := parseSigner(o.Signer)
		if err != nil {
			return nil, usage("--signer", "%s", err)
		}
		obj.Spec.SignerRef = ref
	case o.signingSecretSet:
		name, key, hasKey := strings.Cut(o.SigningSecret, ":")
		if err := checkName(name, dnsSubdomain, maxObjectName); err != nil {
			return nil, usage("--signing-secret", "the Secret name %s", err)
		}
		if hasKey && (len(key) > maxObjectName || !secretKey.MatchString(key)) {
			return nil, usage("--signing-secret", "the key %s is not a valid Secret key (letters, digits, '-', '_' and '.', at most %d)",
				pyRepr(key), maxObjectName)
		}
		obj.Spec.SigningSecretRef = &manifestSecretRef{Name: name, Key: key}
	default:
		return nil, &UsageError{Command: c, Message: "Missing option '--signer' or '--signing-secret' (the signing key the operator mints with)."}
	}

	if !o.nameSet {
		name, err := deriveName(o.ID)
		if err != nil {
			return nil, err
		}
		obj.Metadata.Name = name
	} else if err := checkName(o.Name, dnsSubdomain, maxObjectName); err != nil {
		return nil, usage("--name", "%s", err)
	}
	if o.Namespace != "" {
		if err := checkName(o.Namespace, dnsLabel, maxLabelName); err != nil {
			return nil, usage("--namespace", "%s", err)
		}
	}
	if o.SecretName != "" {
		if err := checkName(o.SecretName, dnsSubdomain, maxObjectName); err != nil {
			return nil, usage("--secret-name", "%s", err)
		}
	}

	switch {
	case o.ExpiresAfter < 0:
		return nil, usage("-e' / '--expires-after", "%d: a DatasetteToken's lifetime must be positive (0: never expires)", o.ExpiresAfter)
	case o.ExpiresAfter > maxDurationSecond:
		return nil, usage("-e' / '--expires-after", "%d seconds is longer than a DatasetteToken's expiresAfter can be (%d)",
			o.ExpiresAfter, maxDurationSecond)
	case o.ExpiresAfter > 0:
		obj.Spec.ExpiresAfter = durationString(o.ExpiresAfter)
	}

	r, err := manifestRestrictionsOf(o.Restrictions())
	if err != nil {
		return nil, err
	}
	obj.Spec.Restrictions = r
	if err := o.applyRelease(obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// manifestRestrictionsOf merges r's entries as the token does and checks
// the schema's limits; nil when r is zero.
func manifestRestrictionsOf(r dstoken.Restrictions) (*manifestRestrictions, error) {
	if r.IsZero() {
		return nil, nil
	}
	out := &manifestRestrictions{All: r.All}
	dbIndex := map[string]int{}
	for _, d := range r.Databases {
		i, ok := dbIndex[d.Database]
		if !ok {
			i = len(out.Databases)
			dbIndex[d.Database] = i
			out.Databases = append(out.Databases, manifestDatabase{Name: d.Database})
		}
		out.Databases[i].Actions = append(out.Databases[i].Actions, d.Actions...)
	}
	type resourceKey struct{ database, resource string }
	resIndex := map[resourceKey]int{}
	for _, res := range r.Resources {
		key := resourceKey{res.Database, res.Resource}
		i, ok := resIndex[key]
		if !ok {
			i = len(out.Resources)
			resIndex[key] = i
			out.Resources = append(out.Resources, manifestResource{Database: res.Database, Resource: res.Resource})
		}
		out.Resources[i].Actions = append(out.Resources[i].Actions, res.Actions...)
	}

	if err := checkRestrictions(out); err != nil {
		return nil, fmt.Errorf("cannot write these restrictions as a DatasetteToken: %w", err)
	}
	return out, nil
}

// checkRestrictions checks merged restrictions against the schema's limits
// and returns the first problem.
func checkRestrictions(r *manifestRestrictions) error {
	if err := checkActions("-a", r.All, maxAllActions); err != nil {
		return err
	}
	// The schema also bounds all restrictions together: entries and actions, and characters.
	values, chars := len(r.All), actionChars(r.All)
	if len(r.Databases) > maxEntries {
		return fmt.Errorf("%d databases are more than a DatasetteToken allows (%d)", len(r.Databases), maxEntries)
	}
	for _, d := range r.Databases {
		if err := checkLength("a database name", d.Name, maxNameLength); err != nil {
			return err
		}
		if err := checkActions("-d "+textsafe.Quote(d.Name), d.Actions, maxEntryActions); err != nil {
			return err
		}
		values += 1 + len(d.Actions)
		chars += utf8.RuneCountInString(d.Name) + actionChars(d.Actions)
	}
	if len(r.Resources) > maxEntries {
		return fmt.Errorf("%d resources are more than a DatasetteToken allows (%d)", len(r.Resources), maxEntries)
	}
	for _, res := range r.Resources {
		if err := checkLength("a database name", res.Database, maxNameLength); err != nil {
			return err
		}
		if err := checkLength("a resource name", res.Resource, maxNameLength); err != nil {
			return err
		}
		if err := checkActions("-r "+textsafe.Quote(res.Database)+" "+textsafe.Quote(res.Resource), res.Actions, maxEntryActions); err != nil {
			return err
		}
		values += 1 + len(res.Actions)
		chars += utf8.RuneCountInString(res.Database) + utf8.RuneCountInString(res.Resource) + actionChars(res.Actions)
	}
	switch {
	case values > maxRestrictionValues:
		return fmt.Errorf("%d entries and actions in all are more than a DatasetteToken allows (%d)", values, maxRestrictionValues)
	case chars > maxRestrictionChars:
		return fmt.Errorf("%d characters of names and actions in all are more than a DatasetteToken allows (%d)", chars, maxRestrictionChars)
	}
	return nil
}

// actionChars is how many characters actions have together, as the schema counts them.
func actionChars(actions []string) int {
	n := 0
	for _, a := range actions {
		n += utf8.RuneCountInString(a)
	}
	return n
}

// checkActions checks a list of actions against the schema's limits.
func checkActions(what string, actions []string, limit int) error {
	if len(actions) > limit {
		return fmt.Errorf("%s: %d actions are more than a DatasetteToken allows (%d)", what, len(actions), limit)
	}
	for _, a := range actions {
		if err := checkLength(what+": an action", a, maxActionLength); err != nil {
			return err
		}
	}
	return nil
}

// checkLength checks that s has 1 to limit characters, as the schema's
// minLength and maxLength count them.
func checkLength(what, s string, limit int) error {
	switch n := utf8.RuneCountInString(s); {
	case n == 0:
		return fmt.Errorf("%s is empty, which a DatasetteToken does not allow", what)
	case n > limit:
		return fmt.Errorf("%s has %d characters, more than a DatasetteToken allows (%d)", what, n, limit)
	}
	return nil
}

// checkName checks a Kubernetes object name against pattern and length.
func checkName(name string, pattern *regexp.Regexp, limit int) error {
	if len(name) > limit || !pattern.MatchString(name) {
		kind := "DNS subdomain (lower-case letters, digits, '-' and '.')"
		if pattern == dnsLabel {
			kind = "DNS label (lower-case letters, digits and '-')"
		}
		return fmt.Errorf("%s is not a valid %s of at most %d characters", pyRepr(name), kind, limit)
	}
	return nil
}

// parseSigner reads KIND/NAME; KIND is DatasetteSigner or
// ClusterDatasetteSigner, in any case, or their short names dssigner and
// cdssigner.
func parseSigner(s string) (*manifestSignerRef, error) {
	kind, name, ok := strings.Cut(s, "/")
	if !ok {
		return nil, fmt.Errorf("%s is not KIND/NAME (DatasetteSigner/NAME or ClusterDatasetteSigner/NAME)", pyRepr(s))
	}
	switch strings.ToLower(kind) {
	case "datasettesigner", "dssigner":
		kind = datasetteSignerKind
	case "clusterdatasettesigner", "cdssigner":
		kind = clusterDatasetteSignerKind
	default:
		return nil, fmt.Errorf("the kind %s is neither DatasetteSigner nor ClusterDatasetteSigner", pyRepr(kind))
	}
	if err := checkName(name, dnsSubdomain, maxObjectName); err != nil {
		return nil, fmt.Errorf("the signer name %w", err)
	}
	return &manifestSignerRef{Kind: kind, Name: name}, nil
}

// deriveName makes a DNS-1123 label from an actor ID: lower-cased, every
// run of characters other than a-z and 0-9 replaced by one "-", no "-" at
// either end, at most 63 characters. "CI Bot@example.com" becomes
// "ci-bot-example-com".
func deriveName(actor string) (string, error) {
	name := notNameChars.ReplaceAllString(strings.ToLower(actor), "-")
	name = strings.Trim(name, "-")
	if len(name) > maxLabelName {
		name = strings.TrimRight(name[:maxLabelName], "-")
	}
	if name == "" {
		return "", errNoName
	}
	return name, nil
}

// durationString writes whole seconds as the shortest Go duration that the
// CRD's pattern ^([0-9]+h)?([0-9]+m)?([0-9]+s)?$ accepts: 3600 is "1h", 90
// is "1m30s", 86461 is "24h1m1s".
func durationString(sec int64) string {
	var b strings.Builder
	for _, unit := range []struct {
		seconds int64
		suffix  string
	}{{3600, "h"}, {60, "m"}, {1, "s"}} {
		if n := sec / unit.seconds; n > 0 {
			b.WriteString(strconv.FormatInt(n, 10) + unit.suffix)
			sec -= n * unit.seconds
		}
	}
	return b.String()
}
