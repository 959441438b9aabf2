package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// CompletionOptions holds the parameters of "datasette-token completion".
type CompletionOptions struct {
	// Shell is bash, zsh or fish.
	Shell string
	IOStreams
}

// NewCompletionOptions returns CompletionOptions writing to streams.
func NewCompletionOptions(streams IOStreams) *CompletionOptions {
	return &CompletionOptions{IOStreams: streams}
}

func (o *CompletionOptions) command() *Command {
	return &Command{
		Path:         ProgramName + " completion",
		UsagePieces:  "{bash|zsh|fish}",
		Interspersed: true,
		Params: []Param{
			choiceArgument(&o.Shell, "bash", "zsh", "fish"),
			helpOption(completionHelp),
		},
	}
}

// Complete parses the command line (without "completion") into o.
func (o *CompletionOptions) Complete(args []string) error {
	_, err := o.command().Parse(args, o.Getenv)
	return err
}

// Validate has nothing to check beyond parsing.
func (o *CompletionOptions) Validate() error { return nil }

// Run prints the static completion script for the shell.
func (o *CompletionOptions) Run() error {
	script := map[string]string{"bash": bashCompletion, "zsh": zshCompletion, "fish": fishCompletion}[o.Shell]
	script = strings.ReplaceAll(script, "@ACTIONS@", strings.Join(dstoken.BuiltinActions(), " "))
	if _, err := io.WriteString(o.Out, script); err != nil {
		return fmt.Errorf("write %s completion script: %w", o.Shell, err)
	}
	return nil
}

const bashCompletion = `# bash completion for datasette-token
# Load with: source <(datasette-token completion bash)
_datasette_token() {
    local cur="${COMP_WORDS[COMP_CWORD]}" cmd="" i n=0
    COMPREPLY=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
            -*) ;;
            *) cmd="${COMP_WORDS[i]}"; break ;;
        esac
    done
    # Which value of an option with several values is being typed?
    local actions="@ACTIONS@"
    for ((i = COMP_CWORD - 1; i > 0 && i >= COMP_CWORD - 3; i--)); do
        case "${COMP_WORDS[i]}" in
            -a|--all) [ $((COMP_CWORD - i)) -eq 1 ] && COMPREPLY=($(compgen -W "$actions" -- "$cur")) && return ;;
            -d|--database) [ $((COMP_CWORD - i)) -eq 2 ] && COMPREPLY=($(compgen -W "$actions" -- "$cur")) && return
                [ $((COMP_CWORD - i)) -eq 1 ] && return ;;
            -r|--resource) [ $((COMP_CWORD - i)) -eq 3 ] && COMPREPLY=($(compgen -W "$actions" -- "$cur")) && return
                [ $((COMP_CWORD - i)) -lt 3 ] && return ;;
            --plugins-dir) [ $((COMP_CWORD - i)) -eq 1 ] && COMPREPLY=($(compgen -d -- "$cur")) && return ;;
            --secret-file) [ $((COMP_CWORD - i)) -eq 1 ] && COMPREPLY=($(compgen -f -- "$cur")) && return ;;
            --signer) [ $((COMP_CWORD - i)) -eq 1 ] && COMPREPLY=($(compgen -W "DatasetteSigner/ ClusterDatasetteSigner/" -- "$cur")) && return ;;
            --datasette-version) [ $((COMP_CWORD - i)) -eq 1 ] && COMPREPLY=($(compgen -W "1.0a0 1.0a2 1.0a19 1.0a37" -- "$cur")) && return ;;
            --secret|-e|--expires-after|--issued-at|--max-ttl|--at|--signing-secret|--name|--namespace|--secret-name)
                [ $((COMP_CWORD - i)) -eq 1 ] && return ;;
        esac
    done
    case "$cmd" in
        "") COMPREPLY=($(compgen -W "completion create-token decode manifest verify --help --version" -- "$cur")) ;;
        create-token) COMPREPLY=($(compgen -W "--secret --secret-file -e --expires-after -a --all -d --database -r --resource ` +
	`--debug --plugins-dir --issued-at --datasette-version --help" -- "$cur")) ;;
        manifest) COMPREPLY=($(compgen -W "-e --expires-after -a --all -d --database -r --resource ` +
	`--signer --signing-secret --name --namespace --secret-name --datasette-version --help" -- "$cur")) ;;
        verify) COMPREPLY=($(compgen -W "--secret --secret-file --max-ttl --at --no-signed-tokens --datasette-version --help" -- "$cur")) ;;
        decode) COMPREPLY=($(compgen -W "--help" -- "$cur")) ;;
        completion) COMPREPLY=($(compgen -W "bash zsh fish --help" -- "$cur")) ;;
    esac
}
complete -F _datasette_token datasette-token
`

const zshCompletion = `#compdef datasette-token
# zsh completion for datasette-token
# Load with: source <(datasette-token completion zsh)
_datasette_token() {
    local -a commands
    local state line
    commands=(
        'completion:Print a shell completion script for bash, zsh or fish'
        'create-token:Create a signed API token for the specified actor ID'
        "decode:Show a token's claims WITHOUT verifying it"
        'manifest:Print the DatasetteToken that mints this token in a cluster'
        'verify:Check whether Datasette would accept a signed API token'
    )
    _arguments -C \
        '--version[Show the version and exit]' \
        '--help[Show this message and exit]' \
        '1:command:->command' \
        '*::arg:->args'
    case $state in
        command) _describe -t commands 'datasette-token command' commands ;;
        args)
            case $words[1] in
                create-token)
                    _arguments \
                        '(--secret-file)--secret[Secret used for signing the API tokens]:secret: ' \
                        '(--secret)--secret-file[Read the secret from this file (- for standard input)]:file:_files' \
                        '(-e --expires-after)'{-e,--expires-after}'[Token should expire after this many seconds]:seconds: ' \
                        '*'{-a,--all}'[Restrict token to this action]:action:(@ACTIONS@)' \
                        '*'{-d,--database}'[Restrict token to this action on this database]:database: :action:(@ACTIONS@)' \
                        '*'{-r,--resource}'[Restrict token to this action on this database resource]:database: :resource: :action:(@ACTIONS@)' \
                        '--debug[Show decoded token]' \
                        '--plugins-dir[Path to directory containing custom plugins]:directory:_directories' \
                        '--issued-at[Unix time to issue the token at]:seconds: ' \
                        '--datasette-version[Mint as this Datasette release does]:version:(1.0a0 1.0a2 1.0a19 1.0a37)' \
                        '--help[Show this message and exit]' \
                        '1:actor ID: ' ;;
                manifest)
                    _arguments \
                        '(-e --expires-after)'{-e,--expires-after}'[Token should expire after this many seconds]:seconds: ' \
                        '*'{-a,--all}'[Restrict token to this action]:action:(@ACTIONS@)' \
                        '*'{-d,--database}'[Restrict token to this action on this database]:database: :action:(@ACTIONS@)' \
                        '*'{-r,--resource}'[Restrict token to this action on this database resource]:database: :resource: :action:(@ACTIONS@)' \
                        '(--signing-secret)--signer[The signer lending its key]:signer:(DatasetteSigner/ ClusterDatasetteSigner/)' \
                        '(--signer)--signing-secret[The Secret holding the signing secret]:secret: ' \
                        "--name[The DatasetteToken's name]:name: " \
                        "--namespace[The DatasetteToken's namespace]:namespace: " \
                        '--secret-name[The Secret the token is written to]:name: ' \
                        "--datasette-version[The Datasette release of the signer's instance]:version:(1.0a0 1.0a2 1.0a19 1.0a37)" \
                        '--help[Show this message and exit]' \
                        '1:actor ID: ' ;;
                verify)
                    _arguments \
                        '(--secret-file)--secret[Secret used for signing the API tokens]:secret: ' \
                        '(--secret)--secret-file[Read the secret from this file (- for standard input)]:file:_files' \
                        '--max-ttl[Cap token lifetimes at this many seconds]:seconds: ' \
                        '--at[Verify as of this Unix time]:seconds: ' \
                        '--no-signed-tokens[Answer as a Datasette with signed tokens off]' \
                        '--datasette-version[Answer as this Datasette release]:version:(1.0a0 1.0a2 1.0a19 1.0a37)' \
                        '--help[Show this message and exit]' \
                        '1:token: ' ;;
                decode)
                    _arguments '--help[Show this message and exit]' '1:token: ' ;;
                completion)
                    _arguments '--help[Show this message and exit]' '1:shell:(bash zsh fish)' ;;
            esac ;;
    esac
}
if [ "$funcstack[1]" = "_datasette_token" ]; then
    _datasette_token "$@"
else
    compdef _datasette_token datasette-token
fi
`

const fishCompletion = `# fish completion for datasette-token
# Load with: datasette-token completion fish | source
complete -c datasette-token -f
complete -c datasette-token -n __fish_use_subcommand -l version -d 'Show the version and exit'
complete -c datasette-token -n __fish_use_subcommand -l help -d 'Show this message and exit'
complete -c datasette-token -n __fish_use_subcommand -a completion -d 'Print a shell completion script for bash, zsh or fish'
complete -c datasette-token -n __fish_use_subcommand -a create-token -d 'Create a signed API token for the specified actor ID'
complete -c datasette-token -n __fish_use_subcommand -a decode -d "Show a token's claims WITHOUT verifying it"
complete -c datasette-token -n __fish_use_subcommand -a manifest -d 'Print the DatasetteToken that mints this token in a cluster'
complete -c datasette-token -n __fish_use_subcommand -a verify -d 'Check whether Datasette would accept a signed API token'
complete -c datasette-token -n '__fish_seen_subcommand_from create-token verify' -l secret -x -d 'Secret used for signing the API tokens'
complete -c datasette-token -n '__fish_seen_subcommand_from create-token verify' -l secret-file -r -F ` +
	`-d 'Read the secret from this file (- for standard input)'
complete -c datasette-token -n '__fish_seen_subcommand_from create-token manifest' -s e -l expires-after -x -d 'Token should expire after this many seconds'
complete -c datasette-token -n '__fish_seen_subcommand_from create-token manifest' -s a -l all -x -a '@ACTIONS@' -d 'Restrict token to this action'
complete -c datasette-token -n '__fish_seen_subcommand_from create-token manifest' -s d -l database -x ` +
	`-d 'Restrict token to this action on this database (DB ACTION)'
complete -c datasette-token -n '__fish_seen_subcommand_from create-token manifest' -s r -l resource -x ` +
	`-d 'Restrict token to this action on this resource (DB RESOURCE ACTION)'
complete -c datasette-token -n '__fish_seen_subcommand_from manifest' -l signer -x -a 'DatasetteSigner/ ClusterDatasetteSigner/' ` +
	`-d 'The signer lending its key (KIND/NAME)'
complete -c datasette-token -n '__fish_seen_subcommand_from manifest' -l signing-secret -x -d 'The Secret holding the signing secret (NAME[:KEY])'
complete -c datasette-token -n '__fish_seen_subcommand_from manifest' -l name -x -d "The DatasetteToken's name"
complete -c datasette-token -n '__fish_seen_subcommand_from manifest' -l namespace -x -d "The DatasetteToken's namespace"
complete -c datasette-token -n '__fish_seen_subcommand_from manifest' -l secret-name -x -d 'The Secret the token is written to'
complete -c datasette-token -n '__fish_seen_subcommand_from create-token' -l debug -d 'Show decoded token'
complete -c datasette-token -n '__fish_seen_subcommand_from create-token' -l plugins-dir -x ` +
	`-a '(__fish_complete_directories)' -d 'Path to directory containing custom plugins'
complete -c datasette-token -n '__fish_seen_subcommand_from create-token' -l issued-at -x -d 'Unix time to issue the token at'
complete -c datasette-token -n '__fish_seen_subcommand_from verify' -l max-ttl -x -d 'Cap token lifetimes at this many seconds'
complete -c datasette-token -n '__fish_seen_subcommand_from verify' -l at -x -d 'Verify as of this Unix time'
complete -c datasette-token -n '__fish_seen_subcommand_from verify' -l no-signed-tokens -d 'Answer as a Datasette with signed tokens off'
complete -c datasette-token -n '__fish_seen_subcommand_from create-token verify manifest' -l datasette-version -x ` +
	`-a '1.0a0 1.0a2 1.0a19 1.0a37' -d 'The Datasette release to answer as'
complete -c datasette-token -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'
complete -c datasette-token -n '__fish_seen_subcommand_from create-token verify decode manifest completion' -l help -d 'Show this message and exit'
`
