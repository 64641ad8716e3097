package azuritetest

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestIdentity: the stand-in for Azure AD answers only the App Service
// protocol with its header, for storage, and mints a token Azurite's basic
// mode accepts (an Azure AD issuer, the storage audience, a lifetime).
func TestIdentity(t *testing.T) {
	id := NewIdentity(t)
	ask := func(header, apiVersion, resource string) (int, map[string]string) {
		t.Helper()
		q := url.Values{"api-version": {apiVersion}, "resource": {resource}}
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, id.URL+"?"+q.Encode(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if header != "" {
			req.Header.Set("X-IDENTITY-HEADER", header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var body map[string]string
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body
	}
	for name, c := range map[string]struct {
		header, version, resource string
		want                      int
	}{
		"no header":        {"", "2019-08-01", StorageResource, http.StatusUnauthorized},
		"wrong header":     {"x", "2019-08-01", StorageResource, http.StatusUnauthorized},
		"old API version":  {id.Header, "2017-09-01", StorageResource, http.StatusBadRequest},
		"another resource": {id.Header, "2019-08-01", "https://management.azure.com", http.StatusBadRequest},
	} {
		if code, _ := ask(c.header, c.version, c.resource); code != c.want {
			t.Errorf("%s: %d, want %d", name, code, c.want)
		}
	}
	code, body := ask(id.Header, "2019-08-01", StorageResource)
	if code != http.StatusOK || body["token_type"] != "Bearer" || body["resource"] != StorageResource || body["expires_on"] == "" {
		t.Fatalf("token answer %d %v", code, body)
	}
	parts := strings.Split(body["access_token"], ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", body["access_token"])
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Aud, Iss, Tid, Oid string
		Nbf, Exp, Iat      int64
	}
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	if claims.Aud != StorageResource || claims.Iss != "https://sts.windows.net/"+id.Tenant+"/" || claims.Tid != id.Tenant || claims.Oid == "" || claims.Nbf >= claims.Exp || claims.Iat == 0 {
		t.Fatalf("claims %+v", claims)
	}
	if calls := id.Calls(); len(calls) != 5 || calls[4] != (IdentityCall{Resource: StorageResource, Status: http.StatusOK}) {
		t.Fatalf("calls %+v", calls)
	}
}
