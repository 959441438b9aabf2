package cli

import (
	"os"
	"strings"
)

// Setters reproducing click's parameter types. Their error messages are the
// type's own; Command.Parse prefixes "Invalid value for <param>: ".

// intSetter is click's INTEGER (Python int()) into an int64. Values Python
// accepts but that do not fit 64 bits are rejected with their own message.
// set, if not nil, records that a value was given.
func intSetter(dst *int64, set *bool) func([]string) error {
	return func(v []string) error {
		n, valid, inRange := parsePyInt(v[0])
		if !valid {
			return invalidValue("%s is not a valid integer.", pyRepr(v[0]))
		}
		if !inRange {
			return invalidValue("%s is out of range (datasette-token handles 64-bit integers only).", pyRepr(v[0]))
		}
		*dst = n
		if set != nil {
			*set = true
		}
		return nil
	}
}

// floatSetter is click's FLOAT (Python float()).
func floatSetter(dst *float64, set *bool) func([]string) error {
	return func(v []string) error {
		f, ok := parsePyFloat(v[0])
		if !ok {
			return invalidValue("%s is not a valid float.", pyRepr(v[0]))
		}
		*dst, *set = f, true
		return nil
	}
}

// choiceArgument is a click argument of type Choice(choices).
func choiceArgument(dst *string, choices ...string) *Argument {
	metavar := "{" + strings.Join(choices, "|") + "}"
	quoted := make([]string, len(choices))
	for i, c := range choices {
		quoted[i] = pyRepr(c)
	}
	return &Argument{
		Metavar:       metavar,
		Required:      true,
		MissingDetail: "Choose from:\n\t" + strings.Join(choices, ",\n\t"),
		Set: func(v string) error {
			for _, c := range choices {
				if v == c {
					*dst = v
					return nil
				}
			}
			return invalidValue("%s is not one of %s.", pyRepr(v), strings.Join(quoted, ", "))
		},
	}
}

// existingDirSetter is click's Path(exists=True, file_okay=False,
// dir_okay=True), as Datasette declares --plugins-dir: the path must exist
// (following symlinks), must not be a regular file, and must be readable.
func existingDirSetter(dst *string) func([]string) error {
	return func(v []string) error {
		path := v[0]
		name := pyRepr(pyFilename(path))
		fi, err := os.Stat(path)
		switch {
		case err != nil:
			return invalidValue("Directory %s does not exist.", name)
		case fi.Mode().IsRegular():
			return invalidValue("Directory %s is a file.", name)
		case !readable(path):
			return invalidValue("Directory %s is not readable.", name)
		}
		*dst = path
		return nil
	}
}

// existingFileSetter is click's Path(exists=True, dir_okay=False,
// readable=True, allow_dash=True), as --secret-file is declared: "-" (standard
// input) or a path that exists (following symlinks), is not a directory and
// is readable.
func existingFileSetter(dst *string) func([]string) error {
	return func(v []string) error {
		path := v[0]
		if path == stdinName {
			*dst = path
			return nil
		}
		name := pyRepr(pyFilename(path))
		fi, err := os.Stat(path)
		switch {
		case err != nil:
			return invalidValue("File %s does not exist.", name)
		case fi.IsDir():
			return invalidValue("File %s is a directory.", name)
		case !readable(path):
			return invalidValue("File %s is not readable.", name)
		}
		*dst = path
		return nil
	}
}
