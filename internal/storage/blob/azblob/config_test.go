package azblob

import (
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

const clientID = "6a2f3b1c-9d8e-4f70-a1b2-c3d4e5f60718"

var mi = map[string]string{EnvCredential: CredentialManagedIdentity}

const sasToken = "sv=2024-08-04&ss=b&srt=co&sp=racwdl&se=2030-01-01T00:00:00Z&sig=c2lnbmF0dXJl"

func TestParseURL(t *testing.T) {
	key := map[string]string{EnvAccountKey: "a2V5"}
	tests := []struct {
		name    string
		url     string
		env     map[string]string
		want    Config
		wantErr string
	}{
		{"azure", "azblob://myaccount/registry", key,
			Config{Account: "myaccount", Container: "registry", AccountKey: "a2V5"}, ""},
		{"azurite", "azblob://devstoreaccount1/moat?endpoint=http://127.0.0.1:10000/devstoreaccount1", key,
			Config{Account: "devstoreaccount1", Container: "moat", Endpoint: "http://127.0.0.1:10000/devstoreaccount1", AccountKey: "a2V5"}, ""},
		{"https endpoint", "azblob://acct1/c-1-2?endpoint=https://blob.example.net/", key,
			Config{Account: "acct1", Container: "c-1-2", Endpoint: "https://blob.example.net/", AccountKey: "a2V5"}, ""},
		{"ipv6 loopback", "azblob://acct1/ccc?endpoint=http://[::1]:10000/acct1", key,
			Config{Account: "acct1", Container: "ccc", Endpoint: "http://[::1]:10000/acct1", AccountKey: "a2V5"}, ""},
		{"sas", "azblob://acct1/ccc", map[string]string{EnvSAS: "?" + sasToken},
			Config{Account: "acct1", Container: "ccc", SAS: "?" + sasToken}, ""},
		{"system-assigned identity", "azblob://acct1/ccc", mi,
			Config{Account: "acct1", Container: "ccc", ManagedIdentity: true}, ""},
		{"user-assigned identity", "azblob://acct1/ccc", map[string]string{EnvCredential: "managed-identity", EnvClientID: clientID},
			Config{Account: "acct1", Container: "ccc", ManagedIdentity: true, ClientID: clientID}, ""},
		{"identity over https to Azurite", "azblob://devstoreaccount1/moat?endpoint=https://127.0.0.1:10000/devstoreaccount1", mi,
			Config{Account: "devstoreaccount1", Container: "moat", Endpoint: "https://127.0.0.1:10000/devstoreaccount1", ManagedIdentity: true}, ""},

		{"wrong scheme", "https://acct1/ccc", key, Config{}, "scheme must be azblob"},
		{"no scheme", "acct1/ccc", key, Config{}, "scheme must be azblob"},
		{"user info", "azblob://acct1:secretkey@acct1/ccc", key, Config{}, "credentials do not belong in the URL"},
		{"port", "azblob://acct1:99/ccc", key, Config{}, "want azblob://"},
		{"fragment", "azblob://acct1/ccc#x", key, Config{}, "want azblob://"},
		{"no container", "azblob://acct1", key, Config{}, "container name"},
		{"nested path", "azblob://acct1/ccc/ddd", key, Config{}, "container name"},
		{"upper-case container", "azblob://acct1/Registry", key, Config{}, "container name"},
		{"double hyphen", "azblob://acct1/a--b", key, Config{}, "container name"},
		{"short container", "azblob://acct1/ab", key, Config{}, "container name"},
		{"upper-case account", "azblob://Acct1/ccc", key, Config{}, "account name"},
		{"short account", "azblob://ac/ccc", key, Config{}, "account name"},
		{"long account", "azblob://" + strings.Repeat("a", 25) + "/ccc", key, Config{}, "account name"},
		{"unknown parameter", "azblob://acct1/ccc?key=abc", key, Config{}, `unknown parameter "key"`},
		{"repeated endpoint", "azblob://acct1/ccc?endpoint=https://a/&endpoint=https://b/", key, Config{}, "given 2 times"},
		{"http to a remote host", "azblob://acct1/ccc?endpoint=http://blob.example.net/", key, Config{}, "plain http only to a loopback host"},
		{"endpoint with query", "azblob://acct1/ccc?endpoint=" + "https://h/%3Fsig%3Dx", key, Config{}, "no credentials, query"},
		{"endpoint not a URL", "azblob://acct1/ccc?endpoint=ftp://h/", key, Config{}, "want an http(s) URL"},
		{"bad query", "azblob://acct1/ccc?endpoint=%zz", key, Config{}, "query"},
		{"no credential", "azblob://acct1/ccc", nil, Config{}, "no credential"},
		{"two credentials", "azblob://acct1/ccc", map[string]string{EnvAccountKey: "a2V5", EnvSAS: sasToken}, Config{}, "MOAT_AZBLOB_ACCOUNT_KEY, MOAT_AZBLOB_SAS are all set; choose one"},
		{"identity and key", "azblob://acct1/ccc", map[string]string{EnvCredential: "managed-identity", EnvAccountKey: "a2V5"}, Config{},
			"MOAT_AZBLOB_CREDENTIAL=managed-identity, MOAT_AZBLOB_ACCOUNT_KEY are all set; choose one"},
		{"identity and SAS", "azblob://acct1/ccc", map[string]string{EnvCredential: "managed-identity", EnvSAS: sasToken}, Config{},
			"MOAT_AZBLOB_CREDENTIAL=managed-identity, MOAT_AZBLOB_SAS are all set; choose one"},
		{"three credentials", "azblob://acct1/ccc", map[string]string{EnvCredential: "managed-identity", EnvAccountKey: "a2V5", EnvSAS: sasToken}, Config{},
			"MOAT_AZBLOB_CREDENTIAL=managed-identity, MOAT_AZBLOB_ACCOUNT_KEY, MOAT_AZBLOB_SAS are all set"},
		{"unknown credential kind", "azblob://acct1/ccc", map[string]string{EnvCredential: "hunter2"}, Config{}, "MOAT_AZBLOB_CREDENTIAL must be managed-identity or unset"},
		{"credential kind in another case", "azblob://acct1/ccc", map[string]string{EnvCredential: "Managed-Identity"}, Config{}, "must be managed-identity"},
		{"client id without identity", "azblob://acct1/ccc", map[string]string{EnvAccountKey: "a2V5", EnvClientID: clientID}, Config{},
			"MOAT_AZBLOB_CLIENT_ID names a user-assigned managed identity, but MOAT_AZBLOB_CREDENTIAL is not managed-identity"},
		{"client id not a GUID", "azblob://acct1/ccc", map[string]string{EnvCredential: "managed-identity", EnvClientID: "my-identity"}, Config{}, "is not a client id"},
		{"client id one short", "azblob://acct1/ccc", map[string]string{EnvCredential: "managed-identity", EnvClientID: clientID[1:]}, Config{}, "is not a client id"},
		{"identity over http", "azblob://devstoreaccount1/moat?endpoint=http://127.0.0.1:10000/devstoreaccount1", mi, Config{}, "need an https endpoint"},
		{"not a SAS", "azblob://acct1/ccc", map[string]string{EnvSAS: "hunter2"}, Config{}, "is not a SAS token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseURL(tc.url, env(tc.env))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseURL(%q) error %v, want one containing %q", tc.url, err, tc.wantErr)
				}
				for _, secret := range []string{"secretkey", "hunter2", "c2lnbmF0dXJl"} {
					if strings.Contains(err.Error(), secret) {
						t.Fatalf("error %q reveals a secret", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("parseURL(%q): %v", tc.url, err)
			}
			if got != tc.want {
				t.Fatalf("parseURL(%q) = %+v, want %+v", tc.url, got, tc.want)
			}
		})
	}
}

func TestConfigStringHidesSecrets(t *testing.T) {
	for _, c := range []Config{
		{Account: "acct1", Container: "ccc", AccountKey: "c2VjcmV0a2V5"},
		{Account: "acct1", Container: "ccc", SAS: sasToken},
		{Account: "acct1", Container: "ccc", ManagedIdentity: true, ClientID: clientID},
	} {
		for _, s := range []string{c.String(), c.LogValue().String()} {
			if strings.Contains(s, "c2VjcmV0a2V5") || strings.Contains(s, "sig=") {
				t.Errorf("%q reveals the credential", s)
			}
		}
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"azblob://acct1/ccc",
		"azblob://devstoreaccount1/moat?endpoint=http://127.0.0.1:10000/devstoreaccount1",
		"azblob://a:b@acct1/ccc",
		"azblob://acct1/ccc?endpoint=%zz",
		"azblob:opaque",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, e := range []map[string]string{{EnvAccountKey: "a2V5"}, mi} {
			c, err := parseURL(s, env(e))
			if err != nil {
				continue
			}
			if err := c.validate(); err != nil {
				t.Fatalf("parseURL(%q) accepted a config validate refuses: %v", s, err)
			}
		}
	})
}

func TestConfigStringNamesCredential(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{AccountKey: "a2V5"}, "(credential: account key)"},
		{Config{SAS: sasToken}, "(credential: SAS)"},
		{Config{ManagedIdentity: true}, "(credential: managed identity (system-assigned))"},
		{Config{ManagedIdentity: true, ClientID: clientID}, "(credential: managed identity, client id " + clientID + ")"},
	} {
		if got := tc.c.String(); !strings.HasSuffix(got, tc.want) {
			t.Errorf("String() = %q, want it to end in %q", got, tc.want)
		}
	}
}

func TestHostStyle(t *testing.T) {
	for _, tc := range []struct {
		endpoint string
		want     bool
	}{
		{"", true}, // https://acct1.blob.core.windows.net/
		{"https://acct1.blob.core.chinacloudapi.cn/", true},
		{"https://acct1.blob.localhost:10000", true},
		{"https://127.0.0.1:10000/acct1", false},
		{"https://[::1]:10000/acct1", false},
		{"https://localhost:10000/acct1", false},
		{"https://acct10.blob.core.windows.net/", false},
		{"https://blob.example.net/acct1", false},
	} {
		if got := (Config{Account: "acct1", Endpoint: tc.endpoint}).hostStyle(); got != tc.want {
			t.Errorf("hostStyle(%q) = %v, want %v", tc.endpoint, got, tc.want)
		}
	}
}
