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
import re

import click
from click.core import ParameterSource


@click.group(name="datasette-token")
@click.version_option(
    os.environ.get("DATASETTE_TOKEN_VERSION", "REF"),
    prog_name="datasette-token",
    message="%(prog)s %(version)s",
)
def cli():
    """Mint, verify and inspect Datasette signed API tokens (dstok_...)."""


def emit(**params):
    click.echo(json.dumps(params, sort_keys=True))


class SourceOption(click.Option):
    """An option that records where its value came from before its callback
    runs (click sets the parameter source only after the callback)."""

    def consume_value(self, ctx, opts):
        value, source = super().consume_value(ctx, opts)
        ctx.meta["source:" + self.name] = source
        return value, source


def _both_given(ctx):
    return (
        ctx.meta.get("source:secret") == ParameterSource.COMMANDLINE
        and ctx.meta.get("source:secret_file") == ParameterSource.COMMANDLINE
    )


def _conflict(ctx):
    raise click.UsageError("'--secret' and '--secret-file' cannot be used together.", ctx)


def secret_callback(ctx, param, value):
    """--secret: required unless --secret-file was given (processed first)."""
    if _both_given(ctx):
        _conflict(ctx)
    if value is None and ctx.params.get("secret_file") is None:
        raise click.MissingParameter(
            ctx=ctx, param=param, message="Or read it from a file with '--secret-file'."
        )
    return value


def secret_file_callback(ctx, param, value):
    if value is not None and _both_given(ctx):
        _conflict(ctx)
    return value


def secret_options(f):
    """--secret and --secret-file, as create-token and verify declare them."""
    f = click.option(
        "--secret-file",
        type=click.Path(exists=True, dir_okay=False, readable=True, allow_dash=True),
        metavar="PATH",
        cls=SourceOption,
        callback=secret_file_callback,
        help="Read the secret from this file (- for standard input), without "
        "one trailing newline",
    )(f)
    return click.option(
        "--secret",
        help="Secret used for signing the API tokens",
        envvar="DATASETTE_SECRET",
        show_envvar=True,
        cls=SourceOption,
        callback=secret_callback,
    )(f)


_RELEASE = re.compile(r"^([0-9]{1,4})\.([0-9]{1,4})(?:\.([0-9]{1,4}))?(?:(a|b|rc)([0-9]{1,4}))?$")


def release_callback(ctx, param, value):
    """--datasette-version: a Datasette release, 1.0a0 or later."""
    if value is None:
        return None
    m = _RELEASE.match(value) if len(value) <= 32 else None
    if m is None or value.endswith("\n"):
        raise click.BadParameter(f"{value!r} is not a Datasette release such as 1.0a19.")
    if int(m.group(1)) == 0:
        raise click.BadParameter(f"Datasette {value} has no signed API tokens (they arrived in 1.0a0).")
    return value


def release_option(help):
    return click.option(
        "--datasette-version",
        metavar="VERSION",
        callback=release_callback,
        help=help,
    )


@cli.command(name="create-token")
@click.argument("id")
@secret_options
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
@release_option("Mint as this Datasette release's create-token does (its options, abbreviations and warnings)  [default: the newest known, 1.0a37]")
def create_token(
    id, secret, secret_file, expires_after, alls, databases, resources, debug, plugins_dir, issued_at, datasette_version
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

    Rather than --secret, which other users can see in the process list,
    prefer the DATASETTE_SECRET environment variable or --secret-file.
    """
    emit(
        id=id,
        secret=secret,
        secret_file=secret_file,
        expires_after=expires_after,
        all=list(alls),
        database=[list(d) for d in databases],
        resource=[list(r) for r in resources],
        debug=debug,
        plugins_dir=plugins_dir,
        issued_at=issued_at,
        datasette_version=datasette_version,
    )


@cli.command()
@click.argument("token")
@secret_options
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
@release_option("Answer as this Datasette release  [default: the newest known, 1.0a37]")
def verify(token, secret, secret_file, max_ttl, at, no_signed_tokens, datasette_version):
    """
    Check whether Datasette would accept a signed API token

    Prints the actor Datasette would build from TOKEN as one line of JSON and
    exits 0, or prints why Datasette would reject it and exits 1. A TOKEN of -
    is read from standard input.
    """
    if token == "-" and secret_file == "-":
        raise click.UsageError(
            "The token and the secret cannot both be read from standard input ('-')."
        )
    emit(
        token=token,
        secret=secret,
        secret_file=secret_file,
        max_ttl=max_ttl,
        at=at,
        no_signed_tokens=no_signed_tokens,
        datasette_version=datasette_version,
    )


@cli.command()
@click.argument("token")
def decode(token):
    """
    Show a token's claims WITHOUT verifying it

    Prints the actor, the issue and expiry times (RFC 3339, UTC) and the
    restrictions with full action names. The signature is not checked:
    anyone can forge these claims. A TOKEN of - is read from standard input.
    """
    emit(token=token)


@cli.command()
@click.argument("id")
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
    "--signer",
    metavar="KIND/NAME",
    help="The signer lending its key: DatasetteSigner/NAME (in the token's namespace) or ClusterDatasetteSigner/NAME",
)
@click.option(
    "--signing-secret",
    metavar="NAME[:KEY]",
    help="Or the Secret, in the token's namespace, holding the signing secret under KEY (default: DATASETTE_SECRET)",
)
@click.option(
    "--name",
    help="The DatasetteToken's name  [default: the actor ID made a valid name]",
)
@click.option("--namespace", help="The DatasetteToken's namespace  [default: none, kubectl's]")
@click.option(
    "--secret-name",
    help="The Secret the token is written to  [default: the DatasetteToken's name]",
)
@release_option("The Datasette release of the signer's instance: check the restrictions against it and record it in an annotation")
def manifest(id, expires_after, alls, databases, resources, signer, signing_secret, name, namespace, secret_name, datasette_version):
    """
    Print the DatasetteToken that mints this token in a cluster

    Takes create-token's ID, -e, -a, -d and -r (no secret is needed) and prints
    the YAML of a DatasetteToken that makes the operator mint the same token,
    with -e as expiresAfter and -a, -d and -r as restrictions, in order. Name
    the signing key with exactly one of --signer and --signing-secret.

    Example:

    \b
        datasette-token manifest ci-bot -e 86400 -d analytics view-database \\
            --signer DatasetteSigner/analytics --namespace analytics \\
            | kubectl apply -f -
    """
    emit(
        id=id,
        expires_after=expires_after,
        all=list(alls),
        database=[list(d) for d in databases],
        resource=[list(r) for r in resources],
        signer=signer,
        signing_secret=signing_secret,
        name=name,
        namespace=namespace,
        secret_name=secret_name,
        datasette_version=datasette_version,
    )


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
