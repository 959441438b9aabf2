package dstoken

// builtinActions lists Datasette's 21 built-in actions and their
// abbreviations, in Datasette's registration order.
var builtinActions = [...][2]string{
	{"view-instance", "vi"},
	{"permissions-debug", "pd"},
	{"debug-menu", "dm"},
	{"view-database", "vd"},
	{"view-database-download", "vdd"},
	{"execute-sql", "es"},
	{"execute-write-sql", "ews"},
	{"create-table", "ct"},
	{"create-view", "cv"},
	{"store-query", "sq"},
	{"view-table", "vt"},
	{"insert-row", "ir"},
	{"delete-row", "dr"},
	{"update-row", "ur"},
	{"alter-table", "at"},
	{"set-column-type", "sct"},
	{"drop-table", "dt"},
	{"drop-view", "dv"},
	{"view-query", "vq"},
	{"update-query", "uq"},
	{"delete-query", "dq"},
}

var (
	abbrByName = map[string]string{}
	nameByAbbr = map[string]string{}
)

func init() {
	for _, a := range builtinActions {
		abbrByName[a[0]] = a[1]
		nameByAbbr[a[1]] = a[0]
	}
}

// BuiltinActions returns the full names of Datasette's 21 built-in actions,
// in Datasette's order.
func BuiltinActions() []string {
	names := make([]string, len(builtinActions))
	for i, a := range builtinActions {
		names[i] = a[0]
	}
	return names
}

// Abbreviate returns the abbreviation Datasette writes into a token for the
// action name, and true, when action is one of the 21 built-in action names
// (exact, case-sensitive match). Anything else, including an abbreviation
// given as input, is returned unchanged with false: Datasette keeps it
// verbatim.
func Abbreviate(action string) (abbr string, builtin bool) {
	if a, ok := abbrByName[action]; ok {
		return a, true
	}
	return action, false
}

// ActionName returns the full name of a built-in action abbreviation, and
// true. Anything else is returned unchanged with false.
func ActionName(abbr string) (string, bool) {
	if n, ok := nameByAbbr[abbr]; ok {
		return n, true
	}
	return abbr, false
}

// UnknownActions returns the actions in r that are not built-in action names
// (Datasette's CLI warns "Unknown permission: X" for each but still mints
// them), in order of appearance (All, then Databases, then Resources, each in
// slice order), without duplicates.
func UnknownActions(r Restrictions) []string {
	var unknown []string
	for _, a := range r.Actions() {
		if _, builtin := abbrByName[a]; !builtin {
			unknown = append(unknown, a)
		}
	}
	return unknown
}

// Actions returns every action named in r, in order of appearance (All, then Databases, then
// Resources, each in slice order), without duplicates.
func (r Restrictions) Actions() []string {
	var out []string
	seen := map[string]bool{}
	add := func(actions []string) {
		for _, a := range actions {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	add(r.All)
	for _, d := range r.Databases {
		add(d.Actions)
	}
	for _, res := range r.Resources {
		add(res.Actions)
	}
	return out
}
