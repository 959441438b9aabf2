package dstoken

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
)

// Release is a Datasette version number, such as 1.0a19 (Major 1, Minor 0, Pre "a", PreN 19).
// Only the forms Datasette has used are read: MAJOR.MINOR[.MICRO][(a|b|rc)N].
type Release struct {
	Major, Minor, Micro int
	// Pre is the pre-release kind: "a", "b", "rc", or "" for a final release.
	Pre string
	// PreN is the pre-release number (19 in 1.0a19).
	PreN int
	// micro reports whether Micro was written (1.0.0 rather than 1.0), for String.
	micro bool
}

// MaxReleaseLength bounds the text ParseRelease reads.
const MaxReleaseLength = 32

var releasePattern = regexp.MustCompile(`^([0-9]{1,4})\.([0-9]{1,4})(?:\.([0-9]{1,4}))?(?:(a|b|rc)([0-9]{1,4}))?$`)

// ErrBadRelease is wrapped by ParseRelease errors.
var ErrBadRelease = errors.New("dstoken: not a Datasette release number")

// ParseRelease reads a Datasette version number such as "1.0a19", "1.0rc2" or "1.0.1".
func ParseRelease(s string) (Release, error) {
	if len(s) > MaxReleaseLength {
		return Release{}, fmt.Errorf("%w: longer than %d characters", ErrBadRelease, MaxReleaseLength)
	}
	m := releasePattern.FindStringSubmatch(s)
	if m == nil {
		return Release{}, fmt.Errorf("%w: %q (expected a version such as 1.0a19)", ErrBadRelease, s)
	}
	num := func(t string) int {
		n, _ := strconv.Atoi(t) // at most 4 digits, checked by the pattern
		return n
	}
	r := Release{Major: num(m[1]), Minor: num(m[2]), Pre: m[4]}
	if m[3] != "" {
		r.Micro, r.micro = num(m[3]), true
	}
	if m[5] != "" {
		r.PreN = num(m[5])
	}
	return r, nil
}

// Alpha returns the release 1.0aN.
func Alpha(n int) Release { return Release{Major: 1, Pre: "a", PreN: n} }

// String writes the release as Datasette does ("1.0a19").
func (r Release) String() string {
	s := strconv.Itoa(r.Major) + "." + strconv.Itoa(r.Minor)
	if r.micro || r.Micro != 0 {
		s += "." + strconv.Itoa(r.Micro)
	}
	if r.Pre != "" {
		s += r.Pre + strconv.Itoa(r.PreN)
	}
	return s
}

// preRank orders pre-release kinds: a < b < rc < final.
func preRank(pre string) int {
	switch pre {
	case "a":
		return 0
	case "b":
		return 1
	case "rc":
		return 2
	default:
		return 3
	}
}

// Compare returns -1, 0 or +1 as r is older than, the same as, or newer than o (PEP 440
// order: 1.0a37 < 1.0b1 < 1.0rc1 < 1.0 = 1.0.0 < 1.0.1).
func (r Release) Compare(o Release) int {
	for _, d := range [...][2]int{
		{r.Major, o.Major}, {r.Minor, o.Minor}, {r.Micro, o.Micro},
		{preRank(r.Pre), preRank(o.Pre)}, {r.PreN, o.PreN},
	} {
		switch {
		case d[0] < d[1]:
			return -1
		case d[0] > d[1]:
			return 1
		}
	}
	return 0
}

// Level is where an action applies: the instance, a database, or a resource (a table, SQL
// view or named query) of a database. A token's "_r" holds instance-wide actions under "a",
// per-database ones under "d" and per-resource ones under "r".
type Level int

// The levels of Datasette's actions (takes_database/takes_resource before 1.0a20, the
// resource class since).
const (
	LevelInstance Level = iota
	LevelDatabase
	LevelResource
)

// String names the level.
func (l Level) String() string {
	switch l {
	case LevelInstance:
		return "instance"
	case LevelDatabase:
		return "database"
	default:
		return "resource"
	}
}

// ReleaseAction is an action a Datasette release knows.
type ReleaseAction struct {
	Name string
	// Abbr is the abbreviation create-token writes for Name ("" when there is none).
	Abbr  string
	Level Level
	// Since is the first release that registers the action (for built-in actions).
	Since Release
	// Plugin marks an action added with [Profile.WithPluginActions].
	Plugin bool
}

// Matching is how a release applies the entries of "_r" to a permission check.
type Matching int

// The ways Datasette has matched restrictions.
const (
	// MatchIgnored: "_r" is never copied into the actor (1.0a0–1.0a1).
	MatchIgnored Matching = iota
	// MatchOwnLevel: each entry matches only checks at its own level; nothing is implied
	// (1.0a2–1.0a4).
	MatchOwnLevel
	// MatchCascade: "d" entries also match that database's tables, and view-database,
	// view-table and view-query (execute-sql from 1.0a6) imply view-instance and
	// view-database; every name in "_r" is looked up, so an unknown one raises (1.0a5–1.0a19).
	MatchCascade
	// MatchSQL: restrictions are checked in SQL; nothing is implied, an action needs the
	// actions it also_requires (view-database-download and execute-sql need view-database,
	// execute-write-sql needs view-database, store-query needs execute-sql); unknown names are
	// inert (1.0a20 onwards).
	MatchSQL
)

// Outcome is what a Datasette instance does with a request carrying a token.
type Outcome int

// Outcomes of a token.
const (
	// OutcomeActor: the token is accepted and the request runs as its actor.
	OutcomeActor Outcome = iota
	// OutcomeAnonymous: the token is ignored and the request runs anonymously.
	OutcomeAnonymous
	// OutcomeUnauthorized: the request is answered HTTP 401 with a reason.
	OutcomeUnauthorized
	// OutcomeServerError: the request fails with HTTP 500.
	OutcomeServerError
	// OutcomeUndetermined: the token is beyond this package's size limits, so it was not read.
	OutcomeUndetermined
)

// String names the outcome.
func (o Outcome) String() string {
	switch o {
	case OutcomeActor:
		return "accepted as the actor"
	case OutcomeAnonymous:
		return "ignored (the request stays anonymous)"
	case OutcomeUnauthorized:
		return "rejected with HTTP 401"
	case OutcomeServerError:
		return "HTTP 500"
	default:
		return "not determined (over the size limits)"
	}
}

// Rules are how a Datasette release mints and reads signed tokens.
type Rules struct {
	// RestrictOptions: its create-token has -a/--all, -d/--database and -r/--resource.
	RestrictOptions bool
	// PluginsDirOption: its create-token has --plugins-dir.
	PluginsDirOption bool
	// TokenKeyInPayload: its create-token writes "token": "dstok" into the payload, after "a".
	TokenKeyInPayload bool
	// EnforcesRestrictions: its verifier copies "_r" into the actor and permission checks
	// apply it. Without it a restricted token has all of its actor's permissions.
	EnforcesRestrictions bool
	// UnknownActionsBreak: a name in "_r" that is neither an action it knows nor an
	// abbreviation of one fails every permission check with HTTP 500 ("No permission found
	// with name or abbreviation X").
	UnknownActionsBreak bool
	// Matching is how "_r" entries match permission checks.
	Matching Matching
	// InvalidTokens is what a "dstok_" token that fails verification (bad signature, no or
	// bad timestamp or duration, expired, signed tokens disabled) gets: OutcomeAnonymous or
	// OutcomeUnauthorized.
	InvalidTokens Outcome
}

// releaseRules is one row of the rules table: the rules from a release on.
type releaseRules struct {
	from   Release
	rules  Rules
	source string // where in that release's code the facts are
}

// rulesTable holds, oldest first, every release that changed how signed tokens are minted or
// read, with the code the facts were read from (Datasette's git tags).
var rulesTable = [...]releaseRules{
	{Alpha(0), Rules{
		TokenKeyInPayload: true, Matching: MatchIgnored, InvalidTokens: OutcomeAnonymous,
	}, `1.0a0 datasette/default_permissions.py: create_token (no -a/-d/-r/--plugins-dir, bits = {"a", "token": "dstok", "t"}); actor_from_request builds {"id", "token"} without "_r"`},
	{Alpha(2), Rules{
		RestrictOptions: true, PluginsDirOption: true, EnforcesRestrictions: true,
		Matching: MatchOwnLevel, InvalidTokens: OutcomeAnonymous,
	}, `1.0a2 datasette/cli.py create_token (-a/-d/-r, --plugins-dir); datasette/app.py Datasette.create_token (abbreviates names in self.permissions); datasette/default_permissions.py permission_allowed_actor_restrictions, actor_from_request (copies "_r")`},
	{Alpha(5), Rules{
		RestrictOptions: true, PluginsDirOption: true, EnforcesRestrictions: true,
		UnknownActionsBreak: true, Matching: MatchCascade, InvalidTokens: OutcomeAnonymous,
	}, `1.0a5 datasette/default_permissions.py restrictions_allow_action (implies_can_view; datasette.get_permission raises KeyError for every unknown name in "_r")`},
	{Alpha(20), Rules{
		RestrictOptions: true, PluginsDirOption: true, EnforcesRestrictions: true,
		Matching: MatchSQL, InvalidTokens: OutcomeAnonymous,
	}, `1.0a20 datasette/default_permissions.py, datasette/utils/permissions.py (restrictions as SQL rules, also_requires in datasette/default_actions.py)`},
	{Alpha(36), Rules{
		RestrictOptions: true, PluginsDirOption: true, EnforcesRestrictions: true,
		Matching: MatchSQL, InvalidTokens: OutcomeUnauthorized,
	}, `1.0a36 datasette/tokens.py SignedTokenHandler.verify_token raises TokenInvalid (HTTP 401)`},
}

// actionTable lists Datasette's built-in actions in the newest release's registration
// order, with the release that added each (Datasette's git tags: 1.0a0
// datasette/permissions.py PERMISSIONS; 1.0a2–1.0a19 datasette/default_permissions.py
// register_permissions; 1.0a20 onwards datasette/default_actions.py register_actions). No
// abbreviation was ever reassigned and no action was ever removed.
var actionTable = [...]ReleaseAction{
	{Name: "view-instance", Abbr: "vi", Level: LevelInstance, Since: Alpha(0)},
	{Name: "permissions-debug", Abbr: "pd", Level: LevelInstance, Since: Alpha(0)},
	{Name: "debug-menu", Abbr: "dm", Level: LevelInstance, Since: Alpha(0)},
	{Name: "view-database", Abbr: "vd", Level: LevelDatabase, Since: Alpha(0)},
	{Name: "view-database-download", Abbr: "vdd", Level: LevelDatabase, Since: Alpha(0)},
	{Name: "execute-sql", Abbr: "es", Level: LevelDatabase, Since: Alpha(0)},
	{Name: "execute-write-sql", Abbr: "ews", Level: LevelDatabase, Since: Alpha(31)},
	{Name: "create-table", Abbr: "ct", Level: LevelDatabase, Since: Alpha(2)},
	{Name: "create-view", Abbr: "cv", Level: LevelDatabase, Since: Alpha(36)},
	{Name: "store-query", Abbr: "sq", Level: LevelDatabase, Since: Alpha(31)},
	{Name: "view-table", Abbr: "vt", Level: LevelResource, Since: Alpha(0)},
	{Name: "insert-row", Abbr: "ir", Level: LevelResource, Since: Alpha(0)},
	{Name: "delete-row", Abbr: "dr", Level: LevelResource, Since: Alpha(0)},
	{Name: "update-row", Abbr: "ur", Level: LevelResource, Since: Alpha(2)},
	{Name: "alter-table", Abbr: "at", Level: LevelResource, Since: Alpha(9)},
	{Name: "set-column-type", Abbr: "sct", Level: LevelResource, Since: Alpha(26)},
	{Name: "drop-table", Abbr: "dt", Level: LevelResource, Since: Alpha(0)},
	{Name: "drop-view", Abbr: "dv", Level: LevelResource, Since: Alpha(36)},
	{Name: "view-query", Abbr: "vq", Level: LevelResource, Since: Alpha(0)},
	{Name: "update-query", Abbr: "uq", Level: LevelResource, Since: Alpha(31)},
	{Name: "delete-query", Abbr: "dq", Level: LevelResource, Since: Alpha(31)},
}

// NewestKnownRelease is the newest release whose code the tables were read from. Later
// releases take its rules until the tables are taught otherwise.
var NewestKnownRelease = Alpha(37)

// FirstSignedTokensRelease is the first release with signed API tokens.
var FirstSignedTokensRelease = Alpha(0)

// ErrNoSignedTokens is wrapped by ProfileFor for a release before 1.0a0.
var ErrNoSignedTokens = errors.New("dstoken: this Datasette release has no signed API tokens (they arrived in 1.0a0)")

// Profile is what one Datasette release (plus the actions its plugins register) does with
// signed tokens. A nil *Profile is the newest release without plugin actions: the behaviour
// of [Claims] and [Minter] without a profile. A Profile is immutable and safe for
// concurrent use.
type Profile struct {
	// Release is the release the profile describes.
	Release Release
	// Source is where in Datasette's code the rules were read (the release they came from).
	Source string
	Rules

	actions []ReleaseAction
	byName  map[string]int
	byAbbr  map[string]int
}

// ProfileFor returns the profile of release r: the rules of the newest table row at or
// before r (so releases after [NewestKnownRelease] take the newest rules) and the built-in
// actions registered by then. It returns an error wrapping [ErrNoSignedTokens] for releases
// before 1.0a0.
func ProfileFor(r Release) (*Profile, error) {
	if r.Compare(FirstSignedTokensRelease) < 0 {
		return nil, fmt.Errorf("%w: Datasette %s", ErrNoSignedTokens, r)
	}
	p := &Profile{Release: r, byName: map[string]int{}, byAbbr: map[string]int{}}
	for _, row := range rulesTable {
		if row.from.Compare(r) <= 0 {
			p.Rules, p.Source = row.rules, row.source
		}
	}
	for _, a := range actionTable {
		if a.Since.Compare(r) <= 0 {
			p.add(a)
		}
	}
	return p, nil
}

// ProfileForVersion parses a version with [ParseRelease] and returns its profile.
func ProfileForVersion(version string) (*Profile, error) {
	r, err := ParseRelease(version)
	if err != nil {
		return nil, err
	}
	return ProfileFor(r)
}

// NewestProfile returns the profile of [NewestKnownRelease].
func NewestProfile() *Profile {
	p, _ := ProfileFor(NewestKnownRelease)
	return p
}

// add registers a, which is neither a known name nor a known abbreviation.
func (p *Profile) add(a ReleaseAction) {
	p.byName[a.Name] = len(p.actions)
	if a.Abbr != "" {
		p.byAbbr[a.Abbr] = len(p.actions)
	}
	p.actions = append(p.actions, a)
}

// MaxPluginActions bounds the plugin actions a profile takes.
const MaxPluginActions = 64

// ErrDuplicateAction is wrapped by WithPluginActions errors for a name or abbreviation that is
// already registered (Datasette refuses to start: "Duplicate action name/abbr").
var ErrDuplicateAction = errors.New("dstoken: duplicate action")

// PluginAction is an action a Datasette plugin registers: its name and abbreviation ("" for
// none).
type PluginAction struct {
	Name, Abbr string
}

// WithPluginActions returns a copy of p that also knows the actions an instance's plugins
// register. Plugin actions are written into tokens as the instance's create-token writes
// them: their abbreviation when they have one. A name or abbreviation that is empty, over
// 256 bytes, or already taken (by a built-in action or another plugin action, as name or
// abbreviation) is an error, as are more than [MaxPluginActions] actions.
func (p *Profile) WithPluginActions(actions []PluginAction) (*Profile, error) {
	if p == nil {
		p = NewestProfile()
	}
	if len(actions) == 0 {
		return p, nil
	}
	if len(actions) > MaxPluginActions {
		return nil, fmt.Errorf("dstoken: %d plugin actions, over the limit of %d", len(actions), MaxPluginActions)
	}
	q := &Profile{Release: p.Release, Source: p.Source, Rules: p.Rules,
		actions: append([]ReleaseAction(nil), p.actions...),
		byName:  make(map[string]int, len(p.byName)+len(actions)),
		byAbbr:  make(map[string]int, len(p.byAbbr)+len(actions)),
	}
	for k, v := range p.byName {
		q.byName[k] = v
	}
	for k, v := range p.byAbbr {
		q.byAbbr[k] = v
	}
	for _, a := range actions {
		if a.Name == "" || len(a.Name) > 256 || len(a.Abbr) > 256 {
			return nil, fmt.Errorf("dstoken: plugin action %q: the name must be 1 to 256 bytes and the abbreviation at most 256", a.Name)
		}
		for _, s := range []string{a.Name, a.Abbr} {
			if s == "" {
				continue
			}
			if i, ok := q.byName[s]; ok {
				return nil, fmt.Errorf("%w: plugin action %q: %q is already the name of action %q", ErrDuplicateAction, a.Name, s, q.actions[i].Name)
			}
			if i, ok := q.byAbbr[s]; ok {
				return nil, fmt.Errorf("%w: plugin action %q: %q is already the abbreviation of action %q", ErrDuplicateAction, a.Name, s, q.actions[i].Name)
			}
		}
		if a.Name == a.Abbr {
			return nil, fmt.Errorf("%w: plugin action %q: its abbreviation is its name", ErrDuplicateAction, a.Name)
		}
		q.add(ReleaseAction{Name: a.Name, Abbr: a.Abbr, Level: LevelResource, Since: p.Release, Plugin: true})
	}
	return q, nil
}

// orNewest returns p, or the newest profile when p is nil.
func (p *Profile) orNewest() *Profile {
	if p == nil {
		return newestProfile
	}
	return p
}

var newestProfile = NewestProfile()

// Actions returns the actions p knows, built-in ones first in the newest release's
// registration order, then plugin actions in the order given.
func (p *Profile) Actions() []ReleaseAction {
	p = p.orNewest()
	return append([]ReleaseAction(nil), p.actions...)
}

// Abbreviate returns what the release's create-token writes for action: its abbreviation
// and true when action is the name (exact, case-sensitive) of an action the release knows
// that has one; otherwise action unchanged and whether it names a known action.
func (p *Profile) Abbreviate(action string) (string, bool) {
	p = p.orNewest()
	i, ok := p.byName[action]
	if !ok {
		return action, false
	}
	if a := p.actions[i].Abbr; a != "" {
		return a, true
	}
	return action, true
}

// KnowsName reports whether action is the name of an action the release knows. Its
// create-token warns "Unknown permission: ACTION" for every other action (abbreviations
// included).
func (p *Profile) KnowsName(action string) bool {
	_, ok := p.orNewest().byName[action]
	return ok
}

// Lookup returns the action that name or abbreviation s stands for, as the release's
// get_permission looks it up (name first, then abbreviation).
func (p *Profile) Lookup(s string) (ReleaseAction, bool) {
	p = p.orNewest()
	if i, ok := p.byName[s]; ok {
		return p.actions[i], true
	}
	if i, ok := p.byAbbr[s]; ok {
		return p.actions[i], true
	}
	return ReleaseAction{}, false
}

// builtinSince returns the release that added the built-in action named or abbreviated s.
func builtinSince(s string) (Release, bool) {
	for _, a := range actionTable {
		if a.Name == s || a.Abbr == s {
			return a.Since, true
		}
	}
	return Release{}, false
}

// ErrUnsupported is wrapped by every [*UnsupportedError].
var ErrUnsupported = errors.New("dstoken: the Datasette release would misread this token")

// UnsupportedError says why a release would misread a token: it ignores restrictions, or it
// fails on an action it does not know.
type UnsupportedError struct {
	// Release is the release.
	Release Release
	// Action is the action it does not know ("" when the restrictions are ignored).
	Action string
	// Since is the release that added Action as a built-in action (zero when none did).
	Since Release
}

// Error is a message a person can act on. It names no secret: only the release and an
// action name from the token's spec.
func (e *UnsupportedError) Error() string {
	if e.Action == "" {
		return fmt.Sprintf("Datasette %s ignores token restrictions: it would accept this token with all of its actor's permissions; "+
			"remove the restrictions, or upgrade the instance to %s or later", e.Release, Alpha(2))
	}
	msg := fmt.Sprintf("Datasette %s does not know the action %q and answers HTTP 500 to every request made with a token that names it", e.Release, e.Action)
	if e.Since != (Release{}) {
		return msg + fmt.Sprintf(" (it was added in %s); remove it, or upgrade the instance", e.Since)
	}
	return msg + "; remove it, or list it in the signer's pluginActions if a plugin of the instance registers it"
}

// Unwrap returns ErrUnsupported.
func (e *UnsupportedError) Unwrap() error { return ErrUnsupported }

// Check reports restrictions the release would misread, as an *UnsupportedError: any
// restriction at all when it ignores "_r", and the first action (in the order of
// [Restrictions.Actions]) it does not know by name or abbreviation when unknown names break
// it. Unrestricted tokens always pass.
func (p *Profile) Check(r Restrictions) error {
	p = p.orNewest()
	if r.IsZero() {
		return nil
	}
	if !p.EnforcesRestrictions {
		return &UnsupportedError{Release: p.Release}
	}
	if !p.UnknownActionsBreak {
		return nil
	}
	for _, a := range r.Actions() {
		if _, ok := p.Lookup(a); !ok {
			since, _ := builtinSince(a)
			return &UnsupportedError{Release: p.Release, Action: a, Since: since}
		}
	}
	return nil
}

// UnknownNames returns the names in restrictions (as they would be written into "_r": after
// abbreviation) that the release does not know by name or abbreviation, in order, without
// duplicates.
func (p *Profile) UnknownNames(r Restrictions) []string {
	p = p.orNewest()
	var out []string
	for _, a := range r.Actions() {
		if _, ok := p.Lookup(a); !ok {
			out = append(out, a)
		}
	}
	return out
}

// Outcome returns what the release does with a request whose token got err from
// [Verifier.Verify] (nil: accepted). Verify answers as the newest release; older ones
// ignore the tokens it rejects with HTTP 401.
func (p *Profile) Outcome(err error) Outcome {
	p = p.orNewest()
	var invalid *InvalidTokenError
	var server *ServerError
	switch {
	case err == nil:
		return OutcomeActor
	case errors.Is(err, ErrNotDatasetteToken):
		return OutcomeAnonymous
	case errors.As(err, &invalid):
		return p.InvalidTokens
	case errors.As(err, &server):
		return OutcomeServerError
	default:
		return OutcomeUndetermined
	}
}

// Actor returns the actor the release builds from a verified token: the newest release's
// actor, without "_r" when the release ignores restrictions.
func (p *Profile) Actor(v *Verified) Actor {
	a := v.Actor
	if !p.orNewest().EnforcesRestrictions {
		a.Restrictions = nil
	}
	return a
}

// String names the release and, when it has plugin actions, how many.
func (p *Profile) String() string {
	p = p.orNewest()
	n := 0
	for _, a := range p.actions {
		if a.Plugin {
			n++
		}
	}
	if n == 0 {
		return "Datasette " + p.Release.String()
	}
	return "Datasette " + p.Release.String() + " (+" + strconv.Itoa(n) + " plugin actions)"
}

// IsNewest reports whether p mints as the newest known release with no plugin actions does
// (nil included).
func (p *Profile) IsNewest() bool {
	if p == nil {
		return true
	}
	for _, a := range p.actions {
		if a.Plugin {
			return false
		}
	}
	return p.Rules == newestProfile.Rules && len(p.actions) == len(newestProfile.actions)
}

// UnknownInRestrictionsJSON returns the entries of a token's "_r" value (the raw JSON of
// [Actor.Restrictions]) that the release does not know by name or abbreviation, in order
// ("a", then "d", then "r"), without duplicates; entries that are not strings are given as
// their JSON text. It returns nil for a value it cannot read as Datasette's "_r" shape.
func (p *Profile) UnknownInRestrictionsJSON(raw []byte) []string {
	p = p.orNewest()
	var r struct {
		A []json.RawMessage                       `json:"a"`
		D map[string][]json.RawMessage            `json:"d"`
		R map[string]map[string][]json.RawMessage `json:"r"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &r) != nil {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	check := func(list []json.RawMessage) {
		for _, e := range list {
			var s string
			name := string(e)
			if json.Unmarshal(e, &s) == nil {
				if _, ok := p.Lookup(s); ok {
					continue
				}
				name = s
			}
			if !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
	}
	check(r.A)
	for _, db := range sortedKeys(r.D) {
		check(r.D[db])
	}
	for _, db := range sortedKeys(r.R) {
		for _, res := range sortedKeys(r.R[db]) {
			check(r.R[db][res])
		}
	}
	return out
}

// sortedKeys returns m's keys in order (encoding/json maps lose the payload's order).
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
