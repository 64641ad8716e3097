package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/moat-registry/moat/internal/storage/blob"
	"github.com/moat-registry/moat/internal/storage/blob/azblob"
	"github.com/moat-registry/moat/internal/storage/blob/fs"
	"github.com/moat-registry/moat/internal/storage/meta"
	"github.com/moat-registry/moat/internal/storage/meta/postgres"
	"github.com/moat-registry/moat/internal/storage/meta/sqlite"
)

// openMetaStore opens the metadata store named by --database: empty for the
// embedded SQLite file in the data dir, sqlite:<path> for another file, or a
// postgres:// (postgresql://) DSN for several replicas. A DSN's password is
// never echoed: errors name the kind of store only.
func openMetaStore(ctx context.Context, database, dataDir string) (meta.Store, string, error) {
	switch {
	case database == "":
		path := filepath.Join(dataDir, "meta.db")
		s, err := sqlite.Open(ctx, path)
		return s, "sqlite " + path, err
	case strings.HasPrefix(database, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(database, "sqlite:"), "//")
		if path == "" {
			return nil, "", fmt.Errorf("--database %q: want sqlite:<path>", database)
		}
		s, err := sqlite.Open(ctx, path)
		return s, "sqlite " + path, err
	case strings.HasPrefix(database, "postgres://"), strings.HasPrefix(database, "postgresql://"):
		s, err := postgres.Open(ctx, database)
		return s, "postgres", err
	}
	scheme, _, _ := strings.Cut(database, ":")
	return nil, "", fmt.Errorf("--database: unknown kind %q: want postgres://… or sqlite:<path> (empty for <data-dir>/meta.db)", scheme)
}

// openBlobStore opens the blob store named by --blob-store: empty for the
// blobs directory in the data dir, file:<dir> for another directory, or
// azblob://<account>/<container>[?endpoint=…] with the credential in
// MOAT_AZBLOB_ACCOUNT_KEY, MOAT_AZBLOB_SAS or MOAT_AZBLOB_CREDENTIAL (see
// azblob.ParseURL).
func openBlobStore(ctx context.Context, spec, dataDir string) (blob.Store, string, error) {
	switch {
	case spec == "":
		dir := filepath.Join(dataDir, "blobs")
		s, err := fs.New(dir)
		return s, "directory " + dir, err
	case strings.HasPrefix(spec, "file:"):
		dir := strings.TrimPrefix(strings.TrimPrefix(spec, "file:"), "//")
		if dir == "" {
			return nil, "", fmt.Errorf("--blob-store %q: want file:<dir>", spec)
		}
		s, err := fs.New(dir)
		return s, "directory " + dir, err
	case strings.HasPrefix(spec, "azblob:"):
		cfg, err := azblob.ParseURL(spec)
		if err != nil {
			return nil, "", fmt.Errorf("--blob-store: %w", err)
		}
		s, err := azblob.New(ctx, cfg)
		return s, cfg.String(), err
	}
	scheme, _, _ := strings.Cut(spec, ":")
	return nil, "", fmt.Errorf("--blob-store: unknown kind %q: want azblob://… or file:<dir> (empty for <data-dir>/blobs)", scheme)
}
