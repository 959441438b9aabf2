package cli

import (
	"fmt"

	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// restrictionOptions are create-token's -e, -a, -d and -r, which manifest
// takes too.
type restrictionOptions struct {
	// ExpiresAfter is -e/--expires-after in seconds; 0 means no "d" claim.
	ExpiresAfter int64
	// All holds the -a/--all actions in command-line order.
	All []string
	// Databases holds one entry per -d/--database DB ACTION.
	Databases []dstoken.DatabaseActions
	// Resources holds one entry per -r/--resource DB RESOURCE ACTION.
	Resources []dstoken.ResourceActions

	expiresAfterSet bool
}

// restrictionParams returns the -e, -a, -d and -r options (Datasette's
// declarations), bound to r.
func restrictionParams(r *restrictionOptions) []Param {
	return []Param{
		&Option{Names: []string{"-e", "--expires-after"}, Nargs: 1, Set: intSetter(&r.ExpiresAfter, &r.expiresAfterSet)},
		&Option{Names: []string{"-a", "--all"}, Nargs: 1, Multiple: true,
			Set: func(v []string) error { r.All = append(r.All, v[0]); return nil }},
		&Option{Names: []string{"-d", "--database"}, Nargs: 2, Multiple: true, Set: func(v []string) error {
			r.Databases = append(r.Databases, dstoken.DatabaseActions{Database: v[0], Actions: []string{v[1]}})
			return nil
		}},
		&Option{Names: []string{"-r", "--resource"}, Nargs: 3, Multiple: true, Set: func(v []string) error {
			r.Resources = append(r.Resources, dstoken.ResourceActions{Database: v[0], Resource: v[1], Actions: []string{v[2]}})
			return nil
		}},
	}
}

// Restrictions returns the token restrictions the options ask for, one
// entry per option (the token merges entries for the same database or
// resource).
func (r *restrictionOptions) Restrictions() dstoken.Restrictions {
	return dstoken.Restrictions{All: r.All, Databases: r.Databases, Resources: r.Resources}
}

// actions lists the actions as Datasette checks them: every -a, then every
// -d, then every -r.
func (r *restrictionOptions) actions() []string {
	actions := append([]string(nil), r.All...)
	for _, d := range r.Databases {
		actions = append(actions, d.Actions...)
	}
	for _, res := range r.Resources {
		actions = append(actions, res.Actions...)
	}
	return actions
}

// warnUnknown prints Datasette's "  Unknown permission: NAME " on stderr for
// every action that is not the name of one of release p's actions (nil: the
// newest release), in red when stderr is a terminal (click.secho(fg="red")).
func (r *restrictionOptions) warnUnknown(s IOStreams, p *dstoken.Profile) error {
	for _, action := range r.actions() {
		if p.KnowsName(action) {
			continue
		}
		line := "  Unknown permission: " + action + " "
		if s.ErrColor {
			line = "\x1b[31m" + line + "\x1b[0m"
		}
		if _, err := fmt.Fprintf(s.ErrOut, "%s\n", line); err != nil {
			return fmt.Errorf("write to stderr: %w", err)
		}
	}
	return nil
}
