package cli

// Help texts, as click 8.4 lays them out at its default width of 78 columns
// (testdata/clickref.py declares the same commands; click_diff_test.go checks
// these against it). create-token's description and options are those of
// Datasette's create-token, plus --secret-file and --issued-at (--secret also
// shows its environment variable, as click's show_envvar does).

// rootHelp is the --help text of the group.
const rootHelp = `Usage: datasette-token [OPTIONS] COMMAND [ARGS]...

  Mint, verify and inspect Datasette signed API tokens (dstok_...).

Options:
  --version  Show the version and exit.
  --help     Show this message and exit.

Commands:
  completion    Print a shell completion script for bash, zsh or fish
  create-token  Create a signed API token for the specified actor ID
  decode        Show a token's claims WITHOUT verifying it
  manifest      Print the DatasetteToken that mints this token in a cluster
  verify        Check whether Datasette would accept a signed API token
`

// createTokenHelp is the --help text of create-token; the text above Options is Datasette's own,
// with a last paragraph of ours.
const createTokenHelp = `Usage: datasette-token create-token [OPTIONS] ID

  Create a signed API token for the specified actor ID

  Example:

      datasette create-token root --secret mysecret

  To allow only "view-database-download" for all databases:

      datasette create-token root --secret mysecret \
          --all view-database-download

  To allow "create-table" against a specific database:

      datasette create-token root --secret mysecret \
          --database mydb create-table

  To allow "insert-row" against a specific table:

      datasette create-token root --secret myscret \
          --resource mydb mytable insert-row

  Restricted actions can be specified multiple times using multiple --all,
  --database, and --resource options.

  Add --debug to see a decoded version of the token.

  Rather than --secret, which other users can see in the process list, prefer
  the DATASETTE_SECRET environment variable or --secret-file.

Options:
  --secret TEXT                   Secret used for signing the API tokens  [env
                                  var: DATASETTE_SECRET]
  --secret-file PATH              Read the secret from this file (- for
                                  standard input), without one trailing
                                  newline
  -e, --expires-after INTEGER     Token should expire after this many seconds
  -a, --all ACTION                Restrict token to this action
  -d, --database DB ACTION        Restrict token to this action on this
                                  database
  -r, --resource DB RESOURCE ACTION
                                  Restrict token to this action on this
                                  database resource (a table, SQL view or
                                  named query)
  --debug                         Show decoded token
  --plugins-dir DIRECTORY         Path to directory containing custom plugins
  --issued-at INTEGER             Unix time (seconds) to issue the token at
                                  instead of now, for reproducible tokens (not
                                  in Datasette)
  --datasette-version VERSION     Mint as this Datasette release's create-
                                  token does (its options, abbreviations and
                                  warnings)  [default: the newest known,
                                  1.0a37]
  --help                          Show this message and exit.
`

// verifyHelp is the --help text of verify.
const verifyHelp = `Usage: datasette-token verify [OPTIONS] TOKEN

  Check whether Datasette would accept a signed API token

  Prints the actor Datasette would build from TOKEN as one line of JSON and
  exits 0, or prints why Datasette would reject it and exits 1. A TOKEN of -
  is read from standard input.

Options:
  --secret TEXT                Secret used for signing the API tokens  [env
                               var: DATASETTE_SECRET]
  --secret-file PATH           Read the secret from this file (- for standard
                               input), without one trailing newline
  --max-ttl INTEGER            Datasette's max_signed_tokens_ttl setting: cap
                               token lifetimes at this many seconds (0: no
                               cap)
  --at FLOAT                   Verify as of this Unix time in seconds, may be
                               fractional (default: now)
  --no-signed-tokens           Answer as a Datasette whose allow_signed_tokens
                               setting is off
  --datasette-version VERSION  Answer as this Datasette release  [default: the
                               newest known, 1.0a37]
  --help                       Show this message and exit.
`

// decodeHelp is the --help text of decode.
const decodeHelp = `Usage: datasette-token decode [OPTIONS] TOKEN

  Show a token's claims WITHOUT verifying it

  Prints the actor, the issue and expiry times (RFC 3339, UTC) and the
  restrictions with full action names. The signature is not checked: anyone
  can forge these claims. A TOKEN of - is read from standard input.

Options:
  --help  Show this message and exit.
`

// manifestHelp is the --help text of manifest.
const manifestHelp = `Usage: datasette-token manifest [OPTIONS] ID

  Print the DatasetteToken that mints this token in a cluster

  Takes create-token's ID, -e, -a, -d and -r (no secret is needed) and prints
  the YAML of a DatasetteToken that makes the operator mint the same token,
  with -e as expiresAfter and -a, -d and -r as restrictions, in order. Name
  the signing key with exactly one of --signer and --signing-secret.

  Example:

      datasette-token manifest ci-bot -e 86400 -d analytics view-database \
          --signer DatasetteSigner/analytics --namespace analytics \
          | kubectl apply -f -

Options:
  -e, --expires-after INTEGER     Token should expire after this many seconds
  -a, --all ACTION                Restrict token to this action
  -d, --database DB ACTION        Restrict token to this action on this
                                  database
  -r, --resource DB RESOURCE ACTION
                                  Restrict token to this action on this
                                  database resource (a table, SQL view or
                                  named query)
  --signer KIND/NAME              The signer lending its key:
                                  DatasetteSigner/NAME (in the token's
                                  namespace) or ClusterDatasetteSigner/NAME
  --signing-secret NAME[:KEY]     Or the Secret, in the token's namespace,
                                  holding the signing secret under KEY
                                  (default: DATASETTE_SECRET)
  --name TEXT                     The DatasetteToken's name  [default: the
                                  actor ID made a valid name]
  --namespace TEXT                The DatasetteToken's namespace  [default:
                                  none, kubectl's]
  --secret-name TEXT              The Secret the token is written to
                                  [default: the DatasetteToken's name]
  --datasette-version VERSION     The Datasette release of the signer's
                                  instance: check the restrictions against it
                                  and record it in an annotation
  --help                          Show this message and exit.
`

// completionHelp is the --help text of completion.
const completionHelp = `Usage: datasette-token completion [OPTIONS] {bash|zsh|fish}

  Print a shell completion script for bash, zsh or fish

  For example: source <(datasette-token completion bash)

Options:
  --help  Show this message and exit.
`
