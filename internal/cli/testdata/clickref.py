"""Reference click application for the differential parser test.

It declares the same commands and options as datasette-token (create-token
declares exactly Datasette's create-token options, plus --issued-at) and, when
parsing succeeds, prints the parsed parameters as JSON instead of acting on
them. internal/cli's click_diff_test.go runs it with many argument lists and
compares its stdout, stderr and exit code with datasette-token's parser.

Usage: python3 clickref.py ARG... (the program name is always datasette-token)
"""

import json
import os

import click


@click.group(name="datasette-token")
@click.version_option(os.environ.get("DATASETTE_TOKEN_VERSION", "REF"), prog_name="datasette-token")
def cli():
    """Mint, verify and inspect Datasette signed API tokens (dstok_...)."""


def emit(**params):
    click.echo(json.dumps(params, sort_keys=True))


@cli.command(name="create-token")
@click.argument("id")
@click.option(
    "--secret",
    help="Secret used for signing the API tokens",
    envvar="DATASETTE_SECRET",
    required=True,
)
@click.option(
    "-e",
    "--expires-after",
    help="Token should expire after this many seconds",
    type=int,
)
@click.option(
    "alls",
    "-a",
    "--all",
    type=str,
    metavar="ACTION",
    multiple=True,
    help="Restrict token to this action",
)
@click.option(
    "databases",
    "-d",
    "--database",
    type=(str, str),
    metavar="DB ACTION",
    multiple=True,
    help="Restrict token to this action on this database",
)
@click.option(
    "resources",
    "-r",
    "--resource",
    type=(str, str, str),
    metavar="DB RESOURCE ACTION",
    multiple=True,
    help="Restrict token to this action on this database resource (a table, SQL view or named query)",
)
@click.option(
    "--debug",
    help="Show decoded token",
    is_flag=True,
)
@click.option(
    "--plugins-dir",
    type=click.Path(exists=True, file_okay=False, dir_okay=True),
    help="Path to directory containing custom plugins",
)
@click.option(
    "--issued-at",
    type=int,
    help="Unix time (seconds) to issue the token at instead of now, for reproducible tokens (not in Datasette)",
)
def create_token(
    id, secret, expires_after, alls, databases, resources, debug, plugins_dir, issued_at
):
    """
    Create a signed API token for the specified actor ID

    Example:

        datasette create-token root --secret mysecret

    To allow only "view-database-download" for all databases:

    \b
        datasette create-token root --secret mysecret \\
            --all view-database-download

    To allow "create-table" against a specific database:

    \b
        datasette create-token root --secret mysecret \\
            --database mydb create-table

    To allow "insert-row" against a specific table:

    \b
        datasette create-token root --secret myscret \\
            --resource mydb mytable insert-row

    Restricted actions can be specified multiple times using
    multiple --all, --database, and --resource options.

    Add --debug to see a decoded version of the token.
    """
    emit(
        id=id,
        secret=secret,
        expires_after=expires_after,
        all=list(alls),
        database=[list(d) for d in databases],
        resource=[list(r) for r in resources],
        debug=debug,
        plugins_dir=plugins_dir,
        issued_at=issued_at,
    )


@cli.command()
@click.argument("token")
@click.option(
    "--secret",
    help="Secret used for signing the API tokens",
    envvar="DATASETTE_SECRET",
    required=True,
)
@click.option(
    "--max-ttl",
    type=int,
    default=0,
    help="Datasette's max_signed_tokens_ttl setting: cap token lifetimes at this many seconds (0: no cap)",
)
@click.option(
    "--at",
    type=float,
    help="Verify as of this Unix time in seconds, may be fractional (default: now)",
)
@click.option(
    "--no-signed-tokens",
    is_flag=True,
    help="Answer as a Datasette whose allow_signed_tokens setting is off",
)
def verify(token, secret, max_ttl, at, no_signed_tokens):
    """
    Check whether Datasette would accept a signed API token

    Prints the actor Datasette would build from TOKEN as one line of JSON and
    exits 0, or prints why Datasette would reject it and exits 1.
    """
    emit(token=token, secret=secret, max_ttl=max_ttl, at=at, no_signed_tokens=no_signed_tokens)


@cli.command()
@click.argument("token")
def decode(token):
    """
    Show a token's claims WITHOUT verifying it

    Prints the actor, the issue and expiry times (RFC 3339, UTC) and the
    restrictions with full action names. The signature is not checked:
    anyone can forge these claims.
    """
    emit(token=token)


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell):
    """
    Print a shell completion script for bash, zsh or fish

    For example: source <(datasette-token completion bash)
    """
    emit(shell=shell)


if __name__ == "__main__":
    cli(prog_name="datasette-token")
