package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/moat-registry/moat/internal/atomicfile"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/storage/meta"
)

// prepareDataDir creates the data directory (0700: it holds the CA key and
// the admin password) and returns its absolute path.
func prepareDataDir(dir string, logger *slog.Logger) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("data directory %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return "", fmt.Errorf("creating the data directory: %w", err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("data directory: %w", err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("data directory %s is not a directory", abs)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		logger.Warn("the data directory is accessible to other users; it holds keys and the admin password",
			"path", abs, "mode", fi.Mode().Perm().String())
	}
	return abs, nil
}

// ensureAdmin makes sure the deployment admin exists and returns where its
// password is, for the banner (never the password itself).
//
// A generated password is written to <data-dir>/admin-password (0600). When
// the password comes from MOAT_ADMIN_PASSWORD, a leftover admin-password
// file no longer holds the password and is removed, so nobody trusts it.
func ensureAdmin(ctx context.Context, ids *identity.Service, envPassword, dataDir string, logger *slog.Logger) (string, error) {
	pw, created, err := ids.EnsureAdmin(ctx, envPassword)
	if err != nil {
		return "", fmt.Errorf("setting up the admin user: %w", err)
	}
	path := filepath.Join(dataDir, adminPasswordFile)
	switch {
	case envPassword != "":
		if err := os.Remove(path); err == nil {
			logger.Info("removed the stale generated admin password file", "path", path)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("removing the stale %s: %w", path, err)
		}
		return "password from $" + adminPasswordEnv, nil
	case created:
		if err := atomicfile.Write(path, []byte(pw+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("writing the generated admin password (set %s to choose one instead): %w", adminPasswordEnv, err)
		}
		logger.Info("generated the admin password", "path", path)
		return "password in " + path, nil
	}
	if _, err := os.Stat(path); err == nil {
		return "password in " + path, nil
	}
	return "password set earlier (set $" + adminPasswordEnv + " to reset it)", nil
}

// defaultResourceID is the ARM id prefix of the default registry.
const defaultResourceID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/moat/providers/Microsoft.ContainerRegistry/registries/"

// ensureDefaultRegistry creates the default registry unless it exists. A
// replica starting at the same time may create it first; that is fine.
func ensureDefaultRegistry(ctx context.Context, store meta.Store, name string, logger *slog.Logger) error {
	_, err := store.GetRegistry(ctx, name)
	if err == nil {
		return nil
	}
	if !errors.Is(err, meta.ErrNotFound) {
		return fmt.Errorf("reading the default registry %q: %w", name, err)
	}
	_, err = store.CreateRegistry(ctx, meta.Registry{
		Name:       name,
		ResourceID: defaultResourceID + name,
		Location:   "local",
		SKU:        "Premium",
		Properties: []byte("{}"),
	})
	switch {
	case err == nil:
		logger.Info("created the default registry", "name", name)
	case errors.Is(err, meta.ErrAlreadyExists):
	default:
		return fmt.Errorf("creating the default registry %q: %w", name, err)
	}
	return nil
}
