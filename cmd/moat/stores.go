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

// metaSpec is a parsed --database. Parsing touches nothing, so serve checks
// the value before it creates the data directory: a refused value leaves no
// trace on disk.
type metaSpec struct {
	// sqlitePath is the SQLite file; empty for the default in the data dir
	// (and unused with a DSN).
	sqlitePath string
	// dsn is a postgres:// (postgresql://) DSN; empty for SQLite.
	dsn string
}

// parseDatabase reads --database: empty for the embedded SQLite file in the
// data dir, sqlite:<path> for another file, or a postgres:// (postgresql://)
// DSN for several replicas. A DSN's password is never echoed: errors name
// the kind of store only.
func parseDatabase(database string) (metaSpec, error) {
	switch {
	case database == "":
		return metaSpec{}, nil
	case strings.HasPrefix(database, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(database, "sqlite:"), "//")
		if path == "" {
			return metaSpec{}, fmt.Errorf("--database %q: want sqlite:<path>", database)
		}
		return metaSpec{sqlitePath: path}, nil
	case strings.HasPrefix(database, "postgres://"), strings.HasPrefix(database, "postgresql://"):
		return metaSpec{dsn: database}, nil
	}
	scheme, _, _ := strings.Cut(database, ":")
	return metaSpec{}, fmt.Errorf("--database: unknown kind %q: want postgres://… or sqlite:<path> (empty for <data-dir>/meta.db)", scheme)
}

// open opens the store and describes it for the start-up log.
func (s metaSpec) open(ctx context.Context, dataDir string) (meta.Store, string, error) {
	if s.dsn != "" {
		st, err := postgres.Open(ctx, s.dsn)
		return st, "postgres", err
	}
	path := s.sqlitePath
	if path == "" {
		path = filepath.Join(dataDir, "meta.db")
	}
	st, err := sqlite.Open(ctx, path)
	return st, "sqlite " + path, err
}

// openMetaStore parses --database and opens it.
func openMetaStore(ctx context.Context, database, dataDir string) (meta.Store, string, error) {
	spec, err := parseDatabase(database)
	if err != nil {
		return nil, "", err
	}
	return spec.open(ctx, dataDir)
}

// blobSpec is a parsed --blob-store; like metaSpec, checked before any I/O.
type blobSpec struct {
	// dir is the blob directory; empty for <data-dir>/blobs (and unused
	// with azblob).
	dir string
	// az is the Azure Blob Storage container, credential included; nil for
	// a directory.
	az *azblob.Config
}

// parseBlobStore reads --blob-store: empty for the blobs directory in the
// data dir, file:<dir> for another directory, or
// azblob://<account>/<container>[?endpoint=…] with the credential in
// MOAT_AZBLOB_ACCOUNT_KEY, MOAT_AZBLOB_SAS or MOAT_AZBLOB_CREDENTIAL (see
// azblob.ParseURL, which reads them).
func parseBlobStore(spec string) (blobSpec, error) {
	switch {
	case spec == "":
		return blobSpec{}, nil
	case strings.HasPrefix(spec, "file:"):
		dir := strings.TrimPrefix(strings.TrimPrefix(spec, "file:"), "//")
		if dir == "" {
			return blobSpec{}, fmt.Errorf("--blob-store %q: want file:<dir>", spec)
		}
		return blobSpec{dir: dir}, nil
	case strings.HasPrefix(spec, "azblob:"):
		cfg, err := azblob.ParseURL(spec)
		if err != nil {
			return blobSpec{}, fmt.Errorf("--blob-store: %w", err)
		}
		return blobSpec{az: &cfg}, nil
	}
	scheme, _, _ := strings.Cut(spec, ":")
	return blobSpec{}, fmt.Errorf("--blob-store: unknown kind %q: want azblob://… or file:<dir> (empty for <data-dir>/blobs)", scheme)
}

// open opens the store and describes it for the start-up log.
func (s blobSpec) open(ctx context.Context, dataDir string) (blob.Store, string, error) {
	if s.az != nil {
		st, err := azblob.New(ctx, *s.az)
		return st, s.az.String(), err
	}
	dir := s.dir
	if dir == "" {
		dir = filepath.Join(dataDir, "blobs")
	}
	st, err := fs.New(dir)
	return st, "directory " + dir, err
}
