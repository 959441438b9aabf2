package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"
)

// Input limits. Nothing is read without a bound.
const (
	// maxSecretFileSize bounds what --secret-file reads: 1 MiB, Kubernetes'
	// limit on a whole Secret, far above any signing secret.
	maxSecretFileSize = 1 << 20
	// maxStdinTokenSize bounds what a TOKEN of "-" reads from standard input;
	// the token itself must then be within dstoken.MaxTokenSize.
	maxStdinTokenSize = 1 << 20
)

// stdinName is the argument meaning standard input, for a TOKEN or a --secret-file.
const stdinName = "-"

// errNoStdin is returned when "-" asks for standard input and there is none.
var errNoStdin = errors.New("standard input is not available")

// secretOptions are --secret (or $DATASETTE_SECRET) and --secret-file, which
// create-token and verify share. Exactly one of --secret and --secret-file
// may be given on the command line; --secret-file wins over the environment.
type secretOptions struct {
	// Secret is the signing secret: --secret, $DATASETTE_SECRET, or (once
	// read by resolve) the content of File.
	Secret string
	// File is --secret-file: a path, or "-" for standard input.
	File string

	flagValue string // --secret or $DATASETTE_SECRET, as given

	fromEnv   bool // Secret came from $DATASETTE_SECRET
	given     bool // --secret was on the command line
	fileGiven bool // --secret-file was on the command line
}

// params returns the --secret and --secret-file options of c, bound to s,
// as testdata/clickref.py declares them.
func (s *secretOptions) params(c *Command) []Param {
	conflict := func() error {
		return &UsageError{Command: c, Message: "'--secret' and '--secret-file' cannot be used together."}
	}
	file := existingFileSetter(&s.File)
	return []Param{
		&Option{
			Names: []string{"--secret"}, Nargs: 1, Required: true,
			EnvVar: "DATASETTE_SECRET", ShowEnvVar: true, FromEnv: &s.fromEnv,
			Waived:        func() bool { return s.fileGiven },
			MissingDetail: "Or read it from a file with '--secret-file'.",
			Set: func(v []string) error {
				if !s.fromEnv {
					s.given = true
					if s.fileGiven {
						return conflict()
					}
				}
				s.Secret, s.flagValue = v[0], v[0]
				return nil
			},
		},
		&Option{Names: []string{"--secret-file"}, Nargs: 1, Set: func(v []string) error {
			if err := file(v); err != nil {
				return err
			}
			s.fileGiven = true
			if s.given {
				return conflict()
			}
			return nil
		}},
	}
}

// resolve reads --secret-file, if given, into Secret: the file's bytes
// without exactly one trailing newline ("\n"), so that both a Kubernetes
// Secret mounted as a file (no newline) and "echo secret > file" work.
func (s *secretOptions) resolve(in io.Reader) error {
	if !s.fileGiven {
		return nil
	}
	data, err := readBounded(s.File, in, maxSecretFileSize)
	if err != nil {
		return fmt.Errorf("read --secret-file: %w", err)
	}
	s.Secret = strings.TrimSuffix(string(data), "\n")
	return nil
}

// validSecret rejects a secret that is not valid UTF-8, which Datasette
// cannot encode. The message never shows the secret.
func validSecret(secret string) error {
	for i := 0; i < len(secret); {
		r, size := utf8.DecodeRuneInString(secret[i:])
		if r == utf8.RuneError && size <= 1 {
			return fmt.Errorf("the secret is not valid UTF-8 (at byte %d), which Datasette cannot encode", i)
		}
		i += size
	}
	return nil
}

// readToken returns token, or for "-" the token read from in with the
// surrounding whitespace (such as echo's newline) removed.
func readToken(token string, in io.Reader) (string, error) {
	if token != stdinName {
		return token, nil
	}
	data, err := readBounded(stdinName, in, maxStdinTokenSize)
	if err != nil {
		return "", fmt.Errorf("read the token: %w", err)
	}
	token = strings.TrimSpace(string(data))
	if token == "" {
		return "", errors.New("read the token: standard input is empty")
	}
	return token, nil
}

// readBounded reads the file at path ("-": in) and fails if it holds more
// than limit bytes.
func readBounded(path string, in io.Reader, limit int64) ([]byte, error) {
	name := "standard input"
	r := in
	if path != stdinName {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer func() { _ = f.Close() }()
		r, name = f, path
	} else if in == nil {
		return nil, errNoStdin
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return data, nil
}
