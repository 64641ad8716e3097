package identity

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/moat-registry/moat/internal/storage/meta"
)

// FuzzMSIRequest: whatever the header and selector, the endpoint answers
// 200 only for the real secret and otherwise 400 or 401, never 5xx.
func FuzzMSIRequest(f *testing.F) {
	store := openStore(f)
	ctx := context.Background()
	s, err := New(ctx, store, Options{BcryptCost: bcrypt.MinCost, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	for _, id := range []string{miGroup, aciID} {
		if _, err := store.PutResource(ctx, meta.Resource{ID: id, Type: "test", Name: "x"}); err != nil {
			f.Fatal(err)
		}
	}
	mi, err := s.EnsureManagedIdentity(ctx, aciID, false)
	if err != nil {
		f.Fatal(err)
	}
	secret, err := s.SetIdentityHost(ctx, aciID, mi.PrincipalID, nil)
	if err != nil {
		f.Fatal(err)
	}
	h := s.ManagedIdentityHandler()
	f.Add(secret[:40], "", "https://management.azure.com/")
	f.Add(secret[:36]+"~", "client_id", "https://containerregistry.azure.net/.default")
	f.Add("~", "mi_res_id", "")
	f.Add(mi.PrincipalID+"~x", "principal_id", "https://management.core.windows.net/")
	f.Add("\x00", "object_id", "https://vault.azure.net")
	f.Fuzz(func(t *testing.T, header, selector, resource string) {
		q := url.Values{"api-version": {"2019-08-01"}, "resource": {resource}}
		if selector != "" {
			q.Set(selector, mi.ClientID)
		}
		req := httptest.NewRequest(http.MethodGet, MSIPath+"?"+q.Encode(), nil)
		req.Header["X-Identity-Header"] = []string{header}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusBadRequest, http.StatusUnauthorized:
		case http.StatusOK:
			if header != secret {
				t.Fatalf("header %q got a token", header)
			}
		default:
			t.Fatalf("header %q selector %q resource %q: status %d %s", header, selector, resource, rec.Code, rec.Body)
		}
	})
}
