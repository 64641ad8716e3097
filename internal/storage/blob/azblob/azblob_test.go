package azblob_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	azstorage "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	azb "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/blob/azblob"

	"github.com/moat-registry/moat/internal/storage/blob"
	"github.com/moat-registry/moat/internal/storage/blob/blobtest"
	"github.com/moat-registry/moat/internal/testsupport/azuritetest"
)

func TestMain(m *testing.M) { os.Exit(azuritetest.Main(m)) }

func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) (blob.Store, func() blob.Store) {
		s, open := azuritetest.New(t)
		return s, func() blob.Store { return open() }
	})
}

func BenchmarkStore(b *testing.B) {
	blobtest.Bench(b, func(b *testing.B) blob.Store {
		s, _ := azuritetest.New(b)
		return s
	})
}

// TestSAS runs a push and a read with a container-scoped SAS, the credential
// that cannot create the container and must authorise the commit's copy.
func TestSAS(t *testing.T) {
	cfg := azuritetest.Config(t)
	if _, err := azblob.New(t.Context(), cfg); err != nil { // creates the container
		t.Fatalf("New with the account key: %v", err)
	}
	cfg.AccountKey, cfg.SAS = "", containerSAS(t, cfg)
	s, err := azblob.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New with a SAS: %v", err)
	}
	p := []byte("pushed with a SAS")
	st, err := s.StartUpload(t.Context(), "sas", "")
	if err == nil {
		st, err = s.Append(t.Context(), "sas", st, bytes.NewReader(p))
	}
	if err == nil {
		_, err = s.Commit(t.Context(), "sas", st, digest.FromBytes(p))
	}
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	r, err := s.Open(t.Context(), digest.FromBytes(p))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	got, err := io.ReadAll(r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil || !bytes.Equal(got, p) {
		t.Fatalf("read %q, %v; want %q", got, err, p)
	}

}

// TestEmulatorHonoursCopyConditions checks what Commit's atomicity rests on:
// a server-side copy refuses a changed source (If-Match) and an existing
// target (If-None-Match: *).
func TestEmulatorHonoursCopyConditions(t *testing.T) {
	cfg := azuritetest.Config(t)
	if _, err := azblob.New(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	cred, err := container.NewSharedKeyCredential(cfg.Account, cfg.AccountKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := container.NewClientWithSharedKeyCredential(cfg.Endpoint+"/"+cfg.Container, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	src := c.NewBlockBlobClient("src")
	up, err := src.UploadBuffer(ctx, []byte("source"), nil)
	if err != nil {
		t.Fatal(err)
	}
	stale := azcore.ETag(`"0x8D00000000000"`)
	_, err = c.NewBlobClient("dst").StartCopyFromURL(ctx, src.URL(), &azb.StartCopyFromURLOptions{
		SourceModifiedAccessConditions: &azb.SourceModifiedAccessConditions{SourceIfMatch: &stale},
	})
	// Azure says SourceConditionNotMet, Azurite ConditionNotMet; Commit
	// handles both.
	if !bloberror.HasCode(err, bloberror.SourceConditionNotMet, bloberror.ConditionNotMet) {
		t.Fatalf("copy from a changed source: %v, want a failed condition", err)
	}
	if _, err := c.NewBlobClient("dst").GetProperties(ctx, nil); !bloberror.HasCode(err, bloberror.BlobNotFound) {
		t.Fatalf("refused copy left a target: %v", err)
	}
	if _, err := c.NewBlockBlobClient("dst").UploadBuffer(ctx, []byte("existing"), nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.NewBlobClient("dst").StartCopyFromURL(ctx, src.URL(), &azb.StartCopyFromURLOptions{
		SourceModifiedAccessConditions: &azb.SourceModifiedAccessConditions{SourceIfMatch: up.ETag},
		AccessConditions:               &azb.AccessConditions{ModifiedAccessConditions: &azb.ModifiedAccessConditions{IfNoneMatch: to(azcore.ETagAny)}},
	})
	if err == nil {
		t.Fatal("copy over an existing blob with If-None-Match: * succeeded")
	}
}

func to[T any](v T) *T { return &v }

// containerSAS signs a SAS with every right moat needs on cfg's container.
func containerSAS(t *testing.T, cfg azblob.Config) string {
	t.Helper()
	cred, err := azstorage.NewSharedKeyCredential(cfg.Account, cfg.AccountKey)
	if err != nil {
		t.Fatal(err)
	}
	q, err := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		ExpiryTime:    time.Now().Add(time.Hour),
		ContainerName: cfg.Container,
		Permissions:   (&sas.ContainerPermissions{Read: true, Add: true, Create: true, Write: true, Delete: true}).String(),
	}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	return q.Encode()
}

// BenchmarkBlockSize compares block sizes and staging concurrency on whole
// and chunked pushes, the two knobs of Append's pipeline.
func BenchmarkBlockSize(b *testing.B) {
	for _, v := range []struct{ block, conc int }{{2 << 20, 4}, {4 << 20, 4}, {8 << 20, 4}, {4 << 20, 8}} {
		b.Run(fmt.Sprintf("block=%dMiB/conc=%d", v.block>>20, v.conc), func(b *testing.B) {
			cfg := azuritetest.Config(b)
			cfg.BlockSize, cfg.Concurrency = v.block, v.conc
			s, err := azblob.New(b.Context(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Run("64MiB", func(b *testing.B) { blobtest.BenchPush(b, s, 64<<20, 64<<20, digest.SHA256) })
			b.Run("64MiB-in-4MiB", func(b *testing.B) { blobtest.BenchPush(b, s, 64<<20, 4<<20, digest.SHA256) })
		})
	}
}

// TestForeignUploadContentRefused: an upload blob whose blocks were not
// written by this store (another tool, a damaged upload) is an error for
// Append and Commit, never content to trust.
func TestForeignUploadContentRefused(t *testing.T) {
	cfg := azuritetest.Config(t)
	s, err := azblob.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	st, err := s.StartUpload(ctx, "foreign", "")
	if err != nil {
		t.Fatal(err)
	}
	cred, err := container.NewSharedKeyCredential(cfg.Account, cfg.AccountKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := container.NewClientWithSharedKeyCredential(cfg.Endpoint+"/"+cfg.Container, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	bb := c.NewBlockBlobClient("uploads/foreign")
	if _, err := bb.StageBlock(ctx, "Zm9yZWlnbg==", streaming.NopCloser(bytes.NewReader([]byte("foreign"))), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := bb.CommitBlockList(ctx, []string{"Zm9yZWlnbg=="}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "foreign", st, bytes.NewReader([]byte("x"))); err == nil {
		t.Fatal("Append to an upload with foreign blocks succeeded")
	}
	if _, err := s.Commit(ctx, "foreign", st, digest.FromString("")); err == nil {
		t.Fatal("Commit of an upload with foreign blocks succeeded")
	}
}

// TestReaderNeverMixesVersions: a reader opened before its blob was deleted
// and pushed again fails rather than read the new version's bytes.
func TestReaderNeverMixesVersions(t *testing.T) {
	s, _ := azuritetest.New(t)
	ctx := t.Context()
	p := bytes.Repeat([]byte("moat"), 1000)
	push := func(id string) {
		t.Helper()
		st, err := s.StartUpload(ctx, id, "")
		if err == nil {
			st, err = s.Append(ctx, id, st, bytes.NewReader(p))
		}
		if err == nil {
			_, err = s.Commit(ctx, id, st, digest.FromBytes(p))
		}
		if err != nil {
			t.Fatalf("push: %v", err)
		}
	}
	push("first")
	r, err := s.Open(ctx, digest.FromBytes(p))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	}()
	if err := s.Delete(ctx, digest.FromBytes(p)); err != nil {
		t.Fatal(err)
	}
	push("second")
	if n, err := io.ReadFull(r, make([]byte, 10)); err == nil {
		t.Fatalf("read %d bytes of a blob replaced after Open", n)
	}
}
