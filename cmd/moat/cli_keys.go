package main

// moat keys list|rotate: the operator's view of the token-signing keys. They
// live in the metadata store, so these commands open it as `moat serve`
// does (--data-dir, --database, and the same MOAT_ environment) rather than
// going through the management API: key material is the deployment's own,
// not any ARM resource's, and rotating must work when no login does (a
// leaked key is the reason to rotate). Run them next to the servers, or
// anywhere that reaches the shared PostgreSQL store.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/moat-registry/moat/internal/config"
	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/storage/meta"
)

var keyColumns = []column{
	{"Kid", "kid"}, {"State", "state"}, {"Created", "createdAt"}, {"Retired", "retiredAt"}, {"VerifiesUntil", "verifiesUntil"},
}

type keyStoreOptions struct {
	dataDir  string
	database string
}

func (o *keyStoreOptions) register(f *pflag.FlagSet) {
	f.StringVar(&o.dataDir, "data-dir", "./moat-data", "the servers' data directory (for the default SQLite store)")
	f.StringVar(&o.database, "database", "", "metadata store: postgres://…, sqlite:<path>; default <data-dir>/meta.db")
}

// withIdentity opens the metadata store and an identity service over it.
func (o *keyStoreOptions) withIdentity(cmd *cobra.Command, fn func(ctx context.Context, ids *identity.Service) error) error {
	if err := config.Apply(cmd.Flags(), config.Options{EnvPrefix: envPrefix}); err != nil {
		return &usageError{err: err}
	}
	if o.dataDir == "" && o.database == "" {
		return usagef("--data-dir must not be empty")
	}
	ctx := cmd.Context()
	store, _, err := openMetaStore(ctx, o.database, o.dataDir)
	if err != nil {
		return fmt.Errorf("opening the metadata store: %w", err)
	}
	defer func(s meta.Store) { _ = s.Close() }(store)
	ids, err := identity.New(ctx, store, identity.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	return fn(ctx, ids)
}

func newKeysCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "List or rotate the keys that sign moat's tokens (operator commands: they open the metadata store)",
		Args:  noArgs,
		RunE:  subcommandRequired,
	}
	var out outputOptions
	addOutputFlags(cmd, &out)

	var lo keyStoreOptions
	list := &cobra.Command{
		Use:   "list [--data-dir DIR | --database DSN]",
		Short: "List the signing keys, newest first, with their state (active, verifying, expired)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			return lo.withIdentity(cmd, func(ctx context.Context, ids *identity.Service) error {
				keys, err := ids.SigningKeys(ctx)
				if err != nil {
					return err
				}
				return printKeys(stdout, &out, keys)
			})
		},
	}
	lo.register(list.Flags())

	var ro keyStoreOptions
	rotate := &cobra.Command{
		Use:   "rotate [--data-dir DIR | --database DSN]",
		Short: "Add a new signing key and retire the old one",
		Long: "Add a new signing key and retire the active one. Servers sign with the new key within\n" +
			"a minute; tokens the old key signed keep verifying until they expire (the token\n" +
			"lifetime plus a minute and a little clock skew), then the old key verifies nothing.\n" +
			"Prints the keys afterwards.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			return ro.withIdentity(cmd, func(ctx context.Context, ids *identity.Service) error {
				if _, err := ids.RotateSigningKey(ctx); err != nil {
					return err
				}
				keys, err := ids.SigningKeys(ctx)
				if err != nil {
					return err
				}
				return printKeys(stdout, &out, keys)
			})
		},
	}
	ro.register(rotate.Flags())
	cmd.AddCommand(list, rotate)
	return cmd
}

// printKeys prints keys through the JSON shape the other commands print.
func printKeys(w io.Writer, out *outputOptions, keys []identity.SigningKeyInfo) error {
	v, err := jsonShape(keys)
	if err != nil {
		return err
	}
	return out.print(w, v, keyColumns)
}

// jsonShape turns v into the maps and slices out.print takes.
func jsonShape(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding the result: %w", err)
	}
	var shaped any
	if err := json.Unmarshal(b, &shaped); err != nil {
		return nil, fmt.Errorf("decoding the result: %w", err)
	}
	return shaped, nil
}
