package dataplane

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/opencontainers/go-digest"
)

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// wantBlob checks that repo serves exactly b under its digest, by GET and
// HEAD.
func (e *env) wantBlob(repo string, b []byte, opts ...reqOpt) {
	e.t.Helper()
	d := digest.FromBytes(b)
	r := e.do(http.MethodGet, "/v2/"+repo+"/blobs/"+d.String(), opts...).wantStatus(e.t, http.StatusOK)
	if !bytes.Equal(r.body, b) {
		e.t.Fatalf("blob %s: got %d bytes, want %d", d, len(r.body), len(b))
	}
	r.wantHeader(e.t, "Docker-Content-Digest", d.String())
	h := e.do(http.MethodHead, "/v2/"+repo+"/blobs/"+d.String(), opts...).wantStatus(e.t, http.StatusOK)
	h.wantHeader(e.t, "Content-Length", strconv.Itoa(len(b))).wantHeader(e.t, "Docker-Content-Digest", d.String())
}

func (e *env) wantNoBlob(repo string, d digest.Digest, opts ...reqOpt) {
	e.t.Helper()
	e.do(http.MethodGet, "/v2/"+repo+"/blobs/"+d.String(), opts...).wantError(e.t, http.StatusNotFound, "BLOB_UNKNOWN")
	e.do(http.MethodHead, "/v2/"+repo+"/blobs/"+d.String(), opts...).wantStatus(e.t, http.StatusNotFound)
}

func TestUpload_MonolithicPost(t *testing.T) {
	e := newEnv(t)
	b := randomBytes(t, 4096)
	d := digest.FromBytes(b)
	r := e.do(http.MethodPost, "/v2/lib/app/blobs/uploads/?digest="+d.String(), body(b)).wantStatus(t, http.StatusCreated)
	r.wantHeader(t, "Location", "/v2/lib/app/blobs/"+d.String()).wantHeader(t, "Docker-Content-Digest", d.String())
	e.wantBlob("lib/app", b)
}

func TestUpload_EmptyBlob(t *testing.T) {
	e := newEnv(t)
	e.pushBlob("app", []byte{})
	e.wantBlob("app", []byte{})
}

func TestUpload_PostThenPut(t *testing.T) {
	e := newEnv(t)
	b := randomBytes(t, 1000)
	d := digest.FromBytes(b)
	r := e.do(http.MethodPost, "/v2/app/blobs/uploads/").wantStatus(t, http.StatusAccepted)
	loc := r.Header.Get("Location")
	id := r.Header.Get("Docker-Upload-UUID")
	if id == "" || !strings.HasSuffix(loc, "/"+id) || len(id) != 36 {
		t.Fatalf("Location %q, Docker-Upload-UUID %q", loc, id)
	}
	r.wantHeader(t, "Range", "0-0")
	e.do(http.MethodPut, loc+"?digest="+d.String(), body(b)).wantStatus(t, http.StatusCreated).
		wantHeader(t, "Location", "/v2/app/blobs/"+d.String())
	e.wantBlob("app", b)
	// The upload is finished: its URL is gone.
	e.do(http.MethodGet, loc).wantError(t, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
}

func TestUpload_ChunkedWithContentRange(t *testing.T) {
	for _, prefix := range []string{"", "bytes "} {
		t.Run(fmt.Sprintf("prefix %q", prefix), func(t *testing.T) {
			e := newEnv(t)
			b := randomBytes(t, 3000)
			loc := e.startUpload("app")
			for _, c := range [][2]int{{0, 1024}, {1024, 2048}} {
				r := e.do(http.MethodPatch, loc, body(b[c[0]:c[1]]),
					header("Content-Range", fmt.Sprintf("%s%d-%d", prefix, c[0], c[1]-1))).wantStatus(t, http.StatusAccepted)
				r.wantHeader(t, "Range", fmt.Sprintf("0-%d", c[1]-1))
				loc = r.Header.Get("Location")
			}
			// The last chunk comes with the closing PUT.
			e.do(http.MethodPut, loc+"?digest="+digest.FromBytes(b).String(), body(b[2048:]),
				header("Content-Range", fmt.Sprintf("%s2048-2999", prefix))).wantStatus(t, http.StatusCreated)
			e.wantBlob("app", b)
		})
	}
}

func TestUpload_ChunkWithoutContentLength(t *testing.T) {
	e := newEnv(t)
	b := randomBytes(t, 2000)
	loc := e.startUpload("app")
	e.do(http.MethodPatch, loc, chunkedBody(b[:1000]), header("Content-Range", "0-999")).wantStatus(t, http.StatusAccepted)
	// A chunk longer or shorter than its range is refused and changes nothing.
	e.do(http.MethodPatch, loc, chunkedBody(b[1000:1600]), header("Content-Range", "1000-1499")).
		wantError(t, http.StatusBadRequest, "SIZE_INVALID")
	e.do(http.MethodPatch, loc, chunkedBody(b[1000:1400]), header("Content-Range", "1000-1499")).
		wantError(t, http.StatusBadRequest, "SIZE_INVALID")
	e.do(http.MethodGet, loc).wantStatus(t, http.StatusNoContent).wantHeader(t, "Range", "0-999")
	e.do(http.MethodPatch, loc, chunkedBody(b[1000:]), header("Content-Range", "1000-1999")).wantStatus(t, http.StatusAccepted)
	e.do(http.MethodPut, loc+"?digest="+digest.FromBytes(b).String()).wantStatus(t, http.StatusCreated)
	e.wantBlob("app", b)
}

func TestUpload_Streamed(t *testing.T) {
	e := newEnv(t)
	b := randomBytes(t, 70000)
	loc := e.startUpload("app")
	r := e.do(http.MethodPatch, loc, chunkedBody(b)).wantStatus(t, http.StatusAccepted)
	r.wantHeader(t, "Range", "0-69999")
	e.do(http.MethodPut, r.Header.Get("Location")+"?digest="+digest.FromBytes(b).String(), header("Content-Length", "0")).
		wantStatus(t, http.StatusCreated)
	e.wantBlob("app", b)
}

func TestUpload_OutOfOrderChunkIs416(t *testing.T) {
	e := newEnv(t)
	b := randomBytes(t, 3000)
	loc := e.startUpload("app")
	r := e.do(http.MethodPatch, loc, body(b[1000:2000]), header("Content-Range", "1000-1999")).
		wantError(t, http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID")
	r.wantHeader(t, "Location", loc).wantHeader(t, "Range", "0-0")
	e.do(http.MethodPatch, loc, body(b[:1000]), header("Content-Range", "0-999")).wantStatus(t, http.StatusAccepted)
	// Resending the same chunk is out of order too.
	e.do(http.MethodPatch, loc, body(b[:1000]), header("Content-Range", "0-999")).
		wantError(t, http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID").wantHeader(t, "Range", "0-999")
	// So is a final chunk with the PUT that skips ahead; the upload survives it.
	e.do(http.MethodPut, loc+"?digest="+digest.FromBytes(b).String(), body(b[2000:]), header("Content-Range", "2000-2999")).
		wantError(t, http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID")
	e.do(http.MethodGet, loc).wantStatus(t, http.StatusNoContent).wantHeader(t, "Range", "0-999").wantHeader(t, "Location", loc)
	e.do(http.MethodPatch, loc, body(b[1000:2000]), header("Content-Range", "1000-1999")).wantStatus(t, http.StatusAccepted)
	e.do(http.MethodPut, loc+"?digest="+digest.FromBytes(b).String(), body(b[2000:]), header("Content-Range", "2000-2999")).
		wantStatus(t, http.StatusCreated)
	e.wantBlob("app", b)
}

func TestUpload_BadRequests(t *testing.T) {
	e := newEnv(t)
	loc := e.startUpload("app")
	e.do(http.MethodPatch, loc, body([]byte("abc")), header("Content-Range", "zero-two")).
		wantError(t, http.StatusBadRequest, "BLOB_UPLOAD_INVALID")
	e.do(http.MethodPatch, loc, body([]byte("abc")), header("Content-Range", "0-9")).
		wantError(t, http.StatusBadRequest, "SIZE_INVALID")
	e.do(http.MethodPut, loc).wantError(t, http.StatusBadRequest, "DIGEST_INVALID")
	e.do(http.MethodPut, loc+"?digest=sha256:nope").wantError(t, http.StatusBadRequest, "DIGEST_INVALID")
	e.do(http.MethodPut, loc+"?digest=md5:abcd").wantError(t, http.StatusBadRequest, "DIGEST_INVALID")
	e.do(http.MethodPost, "/v2/app/blobs/uploads/?digest=sha256:short", body([]byte("x"))).
		wantError(t, http.StatusBadRequest, "DIGEST_INVALID")
	e.do(http.MethodPost, "/v2/app/blobs/uploads/?digest-algorithm=md5").wantError(t, http.StatusBadRequest, "DIGEST_INVALID")
	// An empty PATCH is fine and changes nothing.
	e.do(http.MethodPatch, loc, header("Content-Length", "0")).wantStatus(t, http.StatusAccepted).wantHeader(t, "Range", "0-0")
}

func TestUpload_DigestMismatchLeavesNothing(t *testing.T) {
	e := newEnv(t)
	b := randomBytes(t, 2048)
	wrong := digest.FromBytes(append(b, 'x'))

	// Monolithic POST.
	e.do(http.MethodPost, "/v2/app/blobs/uploads/?digest="+wrong.String(), body(b)).wantError(t, http.StatusBadRequest, "DIGEST_INVALID")
	e.wantNoBlob("app", wrong)
	e.wantNoBlob("app", digest.FromBytes(b))

	// Chunked: the upload is discarded with its bytes.
	loc := e.startUpload("app")
	e.do(http.MethodPatch, loc, body(b)).wantStatus(t, http.StatusAccepted)
	e.do(http.MethodPut, loc+"?digest="+wrong.String()).wantError(t, http.StatusBadRequest, "DIGEST_INVALID")
	e.wantNoBlob("app", wrong)
	e.wantNoBlob("app", digest.FromBytes(b))
	e.do(http.MethodGet, loc).wantError(t, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	if _, err := e.blobs.Stat(context.Background(), wrong); err == nil {
		t.Error("the blob store has a blob under the wrong digest")
	}
}

func TestUpload_Sha512(t *testing.T) {
	e := newEnv(t)
	b := randomBytes(t, 3000)
	d := digest.SHA512.FromBytes(b)
	e.do(http.MethodPost, "/v2/app/blobs/uploads/?digest="+d.String(), body(b)).wantStatus(t, http.StatusCreated).
		wantHeader(t, "Docker-Content-Digest", d.String())
	r := e.do(http.MethodGet, "/v2/app/blobs/"+d.String()).wantStatus(t, http.StatusOK)
	if !bytes.Equal(r.body, b) {
		t.Fatal("sha512 blob content differs")
	}

	// Chunked, announced with digest-algorithm, and unannounced.
	for _, q := range []string{"?digest-algorithm=sha512", ""} {
		b := randomBytes(t, 2500)
		d := digest.SHA512.FromBytes(b)
		r := e.do(http.MethodPost, "/v2/app/blobs/uploads/"+q).wantStatus(t, http.StatusAccepted)
		loc := r.Header.Get("Location")
		e.do(http.MethodPatch, loc, body(b[:1000]), header("Content-Range", "0-999")).wantStatus(t, http.StatusAccepted)
		e.do(http.MethodPut, loc+"?digest="+d.String(), body(b[1000:]), header("Content-Range", "1000-2499")).
			wantStatus(t, http.StatusCreated).wantHeader(t, "Docker-Content-Digest", d.String())
		got := e.do(http.MethodGet, "/v2/app/blobs/"+d.String()).wantStatus(t, http.StatusOK)
		if !bytes.Equal(got.body, b) {
			t.Fatalf("sha512 chunked blob %q differs", q)
		}
	}
}

func TestUpload_CancelAndUnknown(t *testing.T) {
	e := newEnv(t)
	loc := e.startUpload("app")
	e.do(http.MethodPatch, loc, body([]byte("some bytes"))).wantStatus(t, http.StatusAccepted)
	e.do(http.MethodDelete, loc).wantStatus(t, http.StatusNoContent)
	e.do(http.MethodGet, loc).wantError(t, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	e.do(http.MethodPatch, loc, body([]byte("x"))).wantError(t, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	e.do(http.MethodDelete, loc).wantError(t, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	e.do(http.MethodGet, "/v2/app/blobs/uploads/00000000-0000-4000-8000-000000000000").wantError(t, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	e.do(http.MethodGet, "/v2/app/blobs/uploads/not*an*id").wantError(t, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	e.do(http.MethodPut, "/v2/app/blobs/uploads/"+strings.Repeat("a", 129)+"?digest="+digest.FromString("").String()).
		wantError(t, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
}

func TestUpload_BelongsToItsRepositoryAndRegistry(t *testing.T) {
	e := newEnv(t)
	loc := e.startUpload("app")
	id := loc[strings.LastIndexByte(loc, '/')+1:]
	e.do(http.MethodGet, "/v2/other/blobs/uploads/"+id).wantError(t, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	e.do(http.MethodPatch, "/v2/other/blobs/uploads/"+id, body([]byte("x"))).wantError(t, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	e.do(http.MethodGet, loc, host(hostOther)).wantError(t, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	e.do(http.MethodDelete, loc, host(hostOther)).wantError(t, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	// Still intact for its owner.
	e.do(http.MethodGet, loc).wantStatus(t, http.StatusNoContent)
}

// TestUpload_ResumesOnAnotherHandler is the scale-out promise: the upload's
// state lives in the stores, so a second process continues where the first
// stopped.
func TestUpload_ResumesOnAnotherHandler(t *testing.T) {
	e := newEnv(t)
	h2 := e.newHandler()
	srv2 := httptest.NewServer(h2)
	defer srv2.Close()

	b := randomBytes(t, 5000)
	loc := e.startUpload("app")
	e.do(http.MethodPatch, loc, body(b[:2000]), header("Content-Range", "0-1999")).wantStatus(t, http.StatusAccepted)
	e.doURL(srv2.URL, http.MethodGet, loc).wantStatus(t, http.StatusNoContent).wantHeader(t, "Range", "0-1999")
	e.doURL(srv2.URL, http.MethodPatch, loc, body(b[2000:4000]), header("Content-Range", "2000-3999")).wantStatus(t, http.StatusAccepted)
	e.do(http.MethodPatch, loc, body(b[4000:4500])).wantStatus(t, http.StatusAccepted).wantHeader(t, "Range", "0-4499")
	e.doURL(srv2.URL, http.MethodPut, loc+"?digest="+digest.FromBytes(b).String(), body(b[4500:])).wantStatus(t, http.StatusCreated)
	e.wantBlob("app", b)
}

func TestUpload_ConcurrentChunksOfOneUpload(t *testing.T) {
	e := newEnv(t)
	b := randomBytes(t, 1000)
	loc := e.startUpload("app")
	// Two identical first chunks race: exactly one wins, the other is out of
	// order, and the upload stays consistent.
	codes := make(chan int, 2)
	for range 2 {
		go func() {
			req, _ := http.NewRequest(http.MethodPatch, e.srv.URL+loc, bytes.NewReader(b))
			req.SetBasicAuth("admin", adminPassword)
			req.Header.Set("Content-Range", "0-999")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				codes <- 0
				return
			}
			_ = resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	got := map[int]int{<-codes: 1}
	got[<-codes]++
	if got[http.StatusAccepted] != 1 || got[http.StatusRequestedRangeNotSatisfiable] != 1 {
		t.Fatalf("statuses %v, want one 202 and one 416", got)
	}
	e.do(http.MethodPut, loc+"?digest="+digest.FromBytes(b).String()).wantStatus(t, http.StatusCreated)
	e.wantBlob("app", b)
}

func TestMount_WithinRegistry(t *testing.T) {
	e := newEnv(t)
	b := randomBytes(t, 100)
	d := e.pushBlob("base", b)
	r := e.do(http.MethodPost, "/v2/app/blobs/uploads/?mount="+d.String()+"&from=base").wantStatus(t, http.StatusCreated)
	r.wantHeader(t, "Location", "/v2/app/blobs/"+d.String()).wantHeader(t, "Docker-Content-Digest", d.String())
	e.wantBlob("app", b)
}

func TestMount_MissingInSourceStartsUpload(t *testing.T) {
	e := newEnv(t)
	d := digest.FromString("never pushed")
	r := e.do(http.MethodPost, "/v2/app/blobs/uploads/?mount="+d.String()+"&from=base").wantStatus(t, http.StatusAccepted)
	if !strings.HasPrefix(r.Header.Get("Location"), "/v2/app/blobs/uploads/") {
		t.Fatalf("Location %q", r.Header.Get("Location"))
	}
	// Without from, moat does not search: an upload starts.
	b := randomBytes(t, 10)
	d = e.pushBlob("base", b)
	e.do(http.MethodPost, "/v2/app/blobs/uploads/?mount="+d.String()).wantStatus(t, http.StatusAccepted)
	e.wantNoBlob("app", d)
	e.do(http.MethodPost, "/v2/app/blobs/uploads/?mount="+d.String()+"&from=Bad").wantError(t, http.StatusBadRequest, "NAME_INVALID")
	e.do(http.MethodPost, "/v2/app/blobs/uploads/?mount=sha256:x&from=base").wantError(t, http.StatusBadRequest, "DIGEST_INVALID")
}

func TestMount_NeverAcrossRegistries(t *testing.T) {
	e := newEnv(t)
	b := randomBytes(t, 100)
	d := e.pushBlob("base", b) // in the default registry
	// The same repository names in the other registry: the mount finds nothing.
	e.do(http.MethodPost, "/v2/app/blobs/uploads/?mount="+d.String()+"&from=base", host(hostOther)).wantStatus(t, http.StatusAccepted)
	e.wantNoBlob("app", d, host(hostOther))
	e.wantNoBlob("base", d, host(hostOther))
}

func TestMount_BearerTokenMustCoverTheSource(t *testing.T) {
	e := newEnv(t)
	d := e.pushBlob("base", randomBytes(t, 10))
	path := "/v2/app/blobs/uploads/?mount=" + d.String() + "&from=base"

	// A token for the target only: the challenge asks for the source too.
	tok := e.token("moat.localhost", "repository:app:pull,push")
	r := e.do(http.MethodPost, path, bearer(tok)).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
	if got := r.Header.Get("WWW-Authenticate"); !strings.Contains(got, `scope="repository:app:pull,push repository:base:pull"`) {
		t.Fatalf("challenge %q", got)
	}
	tok = e.token("moat.localhost", "repository:app:pull,push", "repository:base:pull")
	e.do(http.MethodPost, path, bearer(tok)).wantStatus(t, http.StatusCreated)
}

func TestBlob_OnlyVisibleWhereLinked(t *testing.T) {
	e := newEnv(t)
	b := randomBytes(t, 100)
	d := e.pushBlob("a", b)
	e.wantNoBlob("b", d)
	e.do(http.MethodGet, "/v2/a/blobs/sha256:zzz").wantError(t, http.StatusBadRequest, "DIGEST_INVALID")
}

func TestBlob_Range(t *testing.T) {
	e := newEnv(t)
	b := randomBytes(t, 2048)
	d := e.pushBlob("app", b)
	path := "/v2/app/blobs/" + d.String()
	tests := []struct {
		rng          string
		status       int
		want         []byte
		contentRange string
	}{
		{"bytes=500-1499", http.StatusPartialContent, b[500:1500], "bytes 500-1499/2048"},
		{"bytes=500-", http.StatusPartialContent, b[500:], "bytes 500-2047/2048"},
		{"bytes=-500", http.StatusPartialContent, b[1548:], "bytes 1548-2047/2048"},
		{"bytes=2000-5000", http.StatusPartialContent, b[2000:], "bytes 2000-2047/2048"},
		{"bytes=500-0", http.StatusRequestedRangeNotSatisfiable, nil, ""},
		{"bytes=5000-10000", http.StatusRequestedRangeNotSatisfiable, nil, ""},
	}
	for _, tt := range tests {
		r := e.do(http.MethodGet, path, header("Range", tt.rng)).wantStatus(t, tt.status)
		if tt.want != nil && !bytes.Equal(r.body, tt.want) {
			t.Errorf("Range %s: wrong bytes", tt.rng)
		}
		if tt.contentRange != "" {
			r.wantHeader(t, "Content-Range", tt.contentRange)
		}
	}
}

func TestBlob_Delete(t *testing.T) {
	e := newEnv(t)
	b := randomBytes(t, 100)
	d := e.pushBlob("a", b)
	e.pushBlob("b", b)
	e.do(http.MethodDelete, "/v2/a/blobs/"+d.String()).wantStatus(t, http.StatusAccepted)
	e.wantNoBlob("a", d)
	e.do(http.MethodDelete, "/v2/a/blobs/"+d.String()).wantError(t, http.StatusNotFound, "BLOB_UNKNOWN")
	// The bytes stay for the other repository.
	e.wantBlob("b", b)
}

func TestPurgeUploads(t *testing.T) {
	e := newEnv(t)
	old := e.startUpload("app")
	e.do(http.MethodPatch, old, body([]byte("stale"))).wantStatus(t, http.StatusAccepted)
	n, err := e.h.PurgeUploads(context.Background(), time.Hour)
	if err != nil || n != 0 {
		t.Fatalf("PurgeUploads(1h) = %d, %v; want nothing purged", n, err)
	}
	time.Sleep(10 * time.Millisecond)
	n, err = e.h.PurgeUploads(context.Background(), time.Nanosecond)
	if err != nil || n != 1 {
		t.Fatalf("PurgeUploads = %d, %v; want 1", n, err)
	}
	e.do(http.MethodGet, old).wantError(t, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
}

func TestBodyReader(t *testing.T) {
	boom := errors.New("connection reset by peer")
	_, err := io.ReadAll(bodyReader{iotest.ErrReader(boom)})
	var be *bodyError
	if !errors.As(err, &be) || !errors.Is(err, boom) {
		t.Errorf("error %v is not a bodyError wrapping the cause", err)
	}
	b, err := io.ReadAll(bodyReader{strings.NewReader("ok")})
	if err != nil || string(b) != "ok" {
		t.Errorf("clean read: %q, %v", b, err)
	}
}

// TestUpload_ClientGoneMidChunk: a chunk cut off by the client leaves the
// upload where it was, and the client can resend it.
func TestUpload_ClientGoneMidChunk(t *testing.T) {
	e := newEnv(t)
	b := randomBytes(t, 1000)
	loc := e.startUpload("app")
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: x\r\nAuthorization: Basic %s\r\nContent-Length: 1000\r\nContent-Range: 0-999\r\n\r\n%s",
		loc, base64.StdEncoding.EncodeToString([]byte("admin:"+adminPassword)), b[:300])
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	// The server notices when it reads the body; wait for its log line.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(e.logs.String(), `"method":"PATCH"`) {
		if time.Now().After(deadline) {
			t.Fatal("the cut-off PATCH was never logged")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if strings.Contains(e.logs.String(), `"status":500`) {
		t.Errorf("a client that went away was logged as a server error: %s", e.logs.String())
	}
	e.do(http.MethodGet, loc).wantStatus(t, http.StatusNoContent).wantHeader(t, "Range", "0-0")
	e.do(http.MethodPatch, loc, body(b), header("Content-Range", "0-999")).wantStatus(t, http.StatusAccepted)
	e.do(http.MethodPut, loc+"?digest="+digest.FromBytes(b).String()).wantStatus(t, http.StatusCreated)
	e.wantBlob("app", b)
}
