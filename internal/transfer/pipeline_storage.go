package transfer

// Where pipelines keep archives: an Azure Blob Storage container (ACR's
// only kind, through the azblob SDK) or a local directory (file:///abs/dir,
// moat's own).
//
// Decisions:
//   - An archive becomes visible whole or not at all: a file is written
//     under a dot-name in the directory and renamed when complete; a blob is
//     uploaded as blocks and exists only once its block list is committed.
//     Without OverwriteBlobs an existing archive of that name fails the run
//     (for blobs the commit carries If-None-Match: *).
//   - Names starting with "." are never archives (partial files); a source
//     trigger also skips files changed in the last second (another tool may
//     still be copying one in).
//   - The credential of a container is the pipeline's secret: a SAS token
//     (ACR's way), or "AccountKey=…" (optionally with "AccountName=…") for
//     shared-key access. Plain http is refused except to loopback (Azurite):
//     a credential never travels in clear over a network.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/moat-registry/moat/internal/atomicfile"
)

// Storage types (ACR's names, and moat's local directory).
const (
	StorageTypeBlobContainer = "AzureStorageBlobContainer"
	StorageTypeBlob          = "AzureStorageBlob"
)

// ArchiveStorage is a container or directory of archives.
type ArchiveStorage interface {
	// Create starts writing archive name; nothing is visible before Commit.
	Create(ctx context.Context, name string, overwrite bool) (ArchiveWriter, error)
	// Open reads archive name and returns its size.
	Open(ctx context.Context, name string) (io.ReadCloser, int64, error)
	// List names the archives, sorted, skipping ones that may be partial.
	List(ctx context.Context) ([]string, error)
	// Delete removes archive name.
	Delete(ctx context.Context, name string) error
	// String names the storage for messages, without credentials.
	String() string
}

// ArchiveWriter is an archive being written.
type ArchiveWriter interface {
	io.Writer
	// Commit makes the archive visible under its name.
	Commit() error
	// Abort drops what was written.
	Abort()
}

// ErrArchiveNotFound: no archive of that name.
var ErrArchiveNotFound = errors.New("archive not found")

var archiveNameRE = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}$`)

// ValidArchiveName checks a run's blob name: no path separators, no leading dot.
func ValidArchiveName(name string) error {
	if !archiveNameRE.MatchString(name) {
		return fmt.Errorf("the archive name %q is invalid: use 1 to 255 letters, digits, '.', '_' and '-', not starting with '.'", name)
	}
	return nil
}

// OpenStorage opens the storage at uri with the credential (ignored for a
// directory).
func OpenStorage(uri, credential string) (ArchiveStorage, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("the storage uri %q is invalid: %v", uri, err)
	}
	switch strings.ToLower(u.Scheme) {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("the storage uri %q names host %q; use file:///ABSOLUTE/DIR", uri, u.Host)
		}
		if !filepath.IsAbs(u.Path) {
			return nil, fmt.Errorf("the storage uri %q needs an absolute path (file:///ABSOLUTE/DIR)", uri)
		}
		return dirStorage{dir: filepath.Clean(u.Path)}, nil
	case "https", "http":
		return openContainer(u, credential)
	}
	return nil, fmt.Errorf("the storage uri %q is neither an Azure Blob container (https://ACCOUNT.blob.core.windows.net/CONTAINER) nor a directory (file:///DIR)", uri)
}

// ValidateStorageURI checks uri without opening anything (for the API).
func ValidateStorageURI(uri string) error {
	u, err := url.Parse(uri)
	if err != nil {
		return fmt.Errorf("the storage uri %q is invalid: %v", uri, err)
	}
	switch strings.ToLower(u.Scheme) {
	case "file":
		_, err := OpenStorage(uri, "")
		return err
	case "https", "http":
		_, _, err := splitContainerURL(u)
		return err
	}
	return fmt.Errorf("the storage uri %q is neither an Azure Blob container (https://ACCOUNT.blob.core.windows.net/CONTAINER) nor a directory (file:///DIR)", uri)
}

// IsDirectoryURI reports whether uri is a file:// directory.
func IsDirectoryURI(uri string) bool {
	return strings.HasPrefix(strings.ToLower(uri), "file:")
}

type dirStorage struct{ dir string }

func (s dirStorage) String() string { return "file://" + s.dir }

func (s dirStorage) check() error {
	fi, err := os.Stat(s.dir)
	if err != nil {
		return fmt.Errorf("the directory %s does not exist or cannot be read: %w", s.dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", s.dir)
	}
	return nil
}

func (s dirStorage) Create(_ context.Context, name string, overwrite bool) (ArchiveWriter, error) {
	if err := ValidArchiveName(name); err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	final := filepath.Join(s.dir, name)
	if !overwrite {
		if _, err := os.Stat(final); err == nil {
			return nil, fmt.Errorf("the archive %s already exists in %s; the pipeline option %s replaces it", name, s, OptOverwriteBlobs)
		}
	}
	f, err := os.CreateTemp(s.dir, "."+name+".*.partial")
	if err != nil {
		return nil, fmt.Errorf("creating the archive in %s: %w", s, err)
	}
	return &fileWriter{f: f, final: final, overwrite: overwrite}, nil
}

type fileWriter struct {
	f         *os.File
	final     string
	overwrite bool
	off       int64 // bytes written
	flushed   int64 // writeback started up to here
}

// writebackChunk is how much written data waits before its writeback is
// started (see startWriteback).
const writebackChunk = 8 << 20

func (w *fileWriter) Write(b []byte) (int, error) {
	n, err := w.f.Write(b)
	w.off += int64(n)
	if w.off-w.flushed >= writebackChunk {
		atomicfile.StartWriteback(w.f, w.flushed, w.off-w.flushed)
		w.flushed = w.off
	}
	return n, err
}

func (w *fileWriter) Commit() error {
	if err := w.f.Sync(); err != nil {
		w.Abort()
		return fmt.Errorf("writing %s: %w", w.final, err)
	}
	if err := w.f.Close(); err != nil {
		_ = os.Remove(w.f.Name())
		return fmt.Errorf("writing %s: %w", w.final, err)
	}
	if !w.overwrite {
		// Link fails if the name was taken meanwhile; rename would replace it.
		if err := os.Link(w.f.Name(), w.final); err != nil {
			_ = os.Remove(w.f.Name())
			if errors.Is(err, os.ErrExist) {
				return fmt.Errorf("the archive %s already exists; the pipeline option %s replaces it", w.final, OptOverwriteBlobs)
			}
			return fmt.Errorf("publishing %s: %w", w.final, err)
		}
		_ = os.Remove(w.f.Name())
		return nil
	}
	if err := os.Rename(w.f.Name(), w.final); err != nil {
		_ = os.Remove(w.f.Name())
		return fmt.Errorf("publishing %s: %w", w.final, err)
	}
	return nil
}

func (w *fileWriter) Abort() {
	_ = w.f.Close()
	_ = os.Remove(w.f.Name())
}

func (s dirStorage) Open(_ context.Context, name string) (io.ReadCloser, int64, error) {
	if err := ValidArchiveName(name); err != nil {
		return nil, 0, err
	}
	if err := s.check(); err != nil {
		return nil, 0, err
	}
	f, err := os.Open(filepath.Join(s.dir, name)) //nolint:gosec // G304: name is a validated archive name (no separators) in the pipeline's directory
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, fmt.Errorf("%w: %s in %s", ErrArchiveNotFound, name, s)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("opening %s in %s: %w", name, s, err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, 0, fmt.Errorf("opening %s in %s: %w", name, s, err)
	}
	return f, fi.Size(), nil
}

// settle is how long a file must be unchanged before a trigger takes it.
const settle = time.Second

func (s dirStorage) List(context.Context) ([]string, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", s, err)
	}
	var out []string
	for _, e := range ents {
		if !e.Type().IsRegular() || ValidArchiveName(e.Name()) != nil {
			continue
		}
		fi, err := e.Info()
		if err != nil || time.Since(fi.ModTime()) < settle {
			continue
		}
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out, nil
}

func (s dirStorage) Delete(_ context.Context, name string) error {
	if err := ValidArchiveName(name); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(s.dir, name)); err != nil {
		return fmt.Errorf("deleting %s from %s: %w", name, s, err)
	}
	return nil
}

// splitContainerURL returns the service URL and the container name of a
// container URL, refusing plain http beyond loopback.
func splitContainerURL(u *url.URL) (service, ctr string, err error) {
	if strings.EqualFold(u.Scheme, "http") {
		host := u.Hostname()
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return "", "", fmt.Errorf("the storage uri %s uses plain http to a host that is not loopback; use https", u.Redacted())
		}
	}
	if u.RawQuery != "" {
		return "", "", errors.New("the storage uri must not carry a query (a SAS belongs in the Key Vault secret keyVaultUri names)")
	}
	p := strings.Trim(u.Path, "/")
	i := strings.LastIndexByte(p, '/')
	ctr = p[i+1:]
	if ctr == "" {
		return "", "", fmt.Errorf("the storage uri %s names no container (https://ACCOUNT.blob.core.windows.net/CONTAINER)", u.Redacted())
	}
	base := *u
	base.Path = "/" + p[:max(i, 0)]
	return strings.TrimSuffix(base.String(), "/"), ctr, nil
}

type containerStorage struct {
	c    *container.Client
	name string // the container URL, for messages
}

func openContainer(u *url.URL, credential string) (ArchiveStorage, error) {
	service, ctr, err := splitContainerURL(u)
	if err != nil {
		return nil, err
	}
	ctrURL := service + "/" + ctr
	credential = strings.TrimSpace(credential)
	var c *container.Client
	switch {
	case credential == "":
		return nil, fmt.Errorf("the container %s needs a credential: the pipeline's keyVaultUri must name a secret holding a SAS token", ctrURL)
	case strings.Contains(credential, "AccountKey="):
		kv := map[string]string{}
		for part := range strings.SplitSeq(credential, ";") {
			if k, v, ok := strings.Cut(part, "="); ok {
				kv[k] = v
			}
		}
		account := kv["AccountName"]
		if account == "" {
			if strings.EqualFold(u.Scheme, "http") || net.ParseIP(u.Hostname()) != nil {
				account = strings.Trim(strings.TrimPrefix(service, u.Scheme+"://"+u.Host), "/") // Azurite: /ACCOUNT/CONTAINER
			} else {
				account, _, _ = strings.Cut(u.Hostname(), ".")
			}
		}
		cred, err := azblobSharedKey(account, kv["AccountKey"])
		if err != nil {
			return nil, err
		}
		if c, err = container.NewClientWithSharedKeyCredential(ctrURL, cred, nil); err != nil {
			return nil, fmt.Errorf("the container %s: %w", ctrURL, err)
		}
	default:
		var err error
		if c, err = container.NewClientWithNoCredential(ctrURL+"?"+strings.TrimPrefix(credential, "?"), nil); err != nil {
			return nil, fmt.Errorf("the container %s: %w", ctrURL, err)
		}
	}
	return &containerStorage{c: c, name: ctrURL}, nil
}

func (s *containerStorage) String() string { return s.name }

// storageError names a container's failures clearly.
func (s *containerStorage) storageError(what string, err error) error {
	switch {
	case bloberror.HasCode(err, bloberror.ContainerNotFound):
		return fmt.Errorf("%s: the container %s does not exist", what, s.name)
	case bloberror.HasCode(err, bloberror.AuthenticationFailed, bloberror.AuthorizationFailure,
		bloberror.AuthorizationPermissionMismatch, bloberror.AuthorizationResourceTypeMismatch):
		return fmt.Errorf("%s: the container %s refused the pipeline's credential (check the SAS in the Key Vault secret): %w", what, s.name, err)
	}
	return fmt.Errorf("%s in %s: %w", what, s.name, err)
}

func (s *containerStorage) Create(ctx context.Context, name string, overwrite bool) (ArchiveWriter, error) {
	if err := ValidArchiveName(name); err != nil {
		return nil, err
	}
	// Fail early (before any byte moves) when the container is missing.
	pager := s.c.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{MaxResults: toPtr(int32(1))})
	if _, err := pager.NextPage(ctx); err != nil {
		return nil, s.storageError("writing the archive "+name, err)
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	opts := &blockblob.UploadStreamOptions{BlockSize: 8 << 20, Concurrency: 4}
	if !overwrite {
		opts.AccessConditions = &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: toPtr(azcore.ETagAny)}}
	}
	bb := s.c.NewBlockBlobClient(name)
	uctx, cancel := context.WithCancel(ctx)
	go func() {
		_, err := bb.UploadStream(uctx, pr, opts)
		_ = pr.CloseWithError(err) // unblock a writer if the upload stopped early
		done <- err
	}()
	return &blobWriter{pw: pw, done: done, cancel: cancel, s: s, name: name}, nil
}

type blobWriter struct {
	pw     *io.PipeWriter
	done   chan error
	cancel context.CancelFunc
	s      *containerStorage
	name   string
}

func (w *blobWriter) Write(b []byte) (int, error) { return w.pw.Write(b) }

func (w *blobWriter) Commit() error {
	_ = w.pw.Close()
	err := <-w.done
	w.cancel()
	if bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) {
		return fmt.Errorf("the archive %s already exists in %s; the pipeline option %s replaces it", w.name, w.s.name, OptOverwriteBlobs)
	}
	if err != nil {
		return w.s.storageError("writing the archive "+w.name, err)
	}
	return nil
}

func (w *blobWriter) Abort() {
	// The block list is never committed, so no blob appears.
	w.cancel()
	_ = w.pw.CloseWithError(errors.New("aborted"))
	if err := <-w.done; err == nil {
		// Cannot happen: the stream ended in an error before it was complete.
		return
	}
}

func (s *containerStorage) Open(ctx context.Context, name string) (io.ReadCloser, int64, error) {
	if err := ValidArchiveName(name); err != nil {
		return nil, 0, err
	}
	resp, err := s.c.NewBlobClient(name).DownloadStream(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return nil, 0, fmt.Errorf("%w: %s in %s", ErrArchiveNotFound, name, s.name)
	}
	if err != nil {
		return nil, 0, s.storageError("reading the archive "+name, err)
	}
	var size int64
	if resp.ContentLength != nil {
		size = *resp.ContentLength
	}
	return resp.Body, size, nil
}

func (s *containerStorage) List(ctx context.Context) ([]string, error) {
	var out []string
	pager := s.c.NewListBlobsFlatPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, s.storageError("listing archives", err)
		}
		for _, b := range page.Segment.BlobItems {
			if b.Name != nil && ValidArchiveName(*b.Name) == nil {
				out = append(out, *b.Name)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

func (s *containerStorage) Delete(ctx context.Context, name string) error {
	if _, err := s.c.NewBlobClient(name).Delete(ctx, nil); err != nil {
		return s.storageError("deleting the archive "+name, err)
	}
	return nil
}

func toPtr[T any](v T) *T { return &v }

func azblobSharedKey(account, key string) (*container.SharedKeyCredential, error) {
	if account == "" || key == "" {
		return nil, errors.New("the storage credential has AccountKey= but no account name could be found (add AccountName=)")
	}
	cred, err := container.NewSharedKeyCredential(account, key)
	if err != nil {
		return nil, fmt.Errorf("the storage credential's AccountKey is invalid: %w", err)
	}
	return cred, nil
}
