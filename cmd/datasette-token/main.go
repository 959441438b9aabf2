// Command datasette-token mints, verifies and decodes Datasette signed API
// tokens (dstok_...). Its create-token subcommand accepts exactly the options
// of Datasette's "datasette create-token" and produces the same tokens, in a
// few milliseconds instead of Datasette's start-up time; its manifest
// subcommand prints the DatasetteToken that makes the operator mint the same
// token in a cluster.
package main

import (
	"os"

	"github.com/datasette-token-operator/datasette-token-operator/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.SystemStreams()))
}
