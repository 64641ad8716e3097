// Command moat is the one moat binary: `moat serve` runs the registry,
// `moat version` says which build this is, and the az-style client commands
// (login, logout, group, acr, resource, deployment; cli_*.go) manage a
// deployment through its ARM-compatible API. The commands own flags and
// output only; what they do lives in internal packages that the tests use
// directly.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/spf13/cobra"
)

// version is set at build time:
//
//	go build -ldflags "-X main.version=v1.2.3" ./cmd/moat
var version = "dev"

func main() {
	root := newRootCmd(os.Stdout, os.Stderr)
	root.SetArgs(joinBareBoolValues(os.Args[1:]))
	if err := root.Execute(); err != nil {
		// One clear line; cobra's own error printing and usage are silenced,
		// and several errors (errors.Join) are put on that one line.
		fmt.Fprintf(os.Stderr, "moat: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
		os.Exit(exitCode(err))
	}
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "moat",
		Short:         "moat is a self-hosted OCI container registry with Azure Container Registry's network-security model",
		Version:       version,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newServeCmd(stderr), newVersionCmd(stdout), newCheckCmd())
	root.AddCommand(newKeysCmd(stdout)) // cli_keys.go
	addClientCommands(root, stdout, stderr)
	return root
}

func newVersionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print moat's version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintf(stdout, "moat %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}
