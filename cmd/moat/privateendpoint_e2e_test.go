package main

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"

	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

const peSub = defaultSubscriptionID

// peClient calls the management API with the CLI profile's token.
type peClient struct {
	t     *testing.T
	url   string
	token string
	http  *http.Client
}

func (c *peClient) call(method, path, body string) (int, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.url+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// putEndpoint creates private endpoint name in group pe at ip, connected
// to registry reg.
func (c *peClient) putEndpoint(name, reg, ip string, manual bool) map[string]any {
	c.t.Helper()
	list := "privateLinkServiceConnections"
	if manual {
		list = "manualPrivateLinkServiceConnections"
	}
	body := `{"location":"local","properties":{"` + list + `":[{"name":"to-registry","properties":{
		"privateLinkServiceId":"/subscriptions/` + peSub + `/resourceGroups/pe/providers/Microsoft.ContainerRegistry/registries/` + reg + `",
		"groupIds":["registry"],"requestMessage":"from the build network"}}],
		"ipConfigurations":[{"name":"ip","properties":{"groupId":"registry","memberName":"registry","privateIPAddress":"` + ip + `"}}]}}`
	status, out := c.call(http.MethodPut, "/subscriptions/"+peSub+"/resourceGroups/pe/providers/Microsoft.Network/privateEndpoints/"+name+"?api-version=2024-05-01", body)
	if status != http.StatusCreated {
		c.t.Fatalf("PUT private endpoint %s: %d %v", name, status, out)
	}
	return out
}

// connectionOf returns the name of the connection endpoint pe made.
func connectionOf(t *testing.T, cfg, reg, pe string) string {
	t.Helper()
	var conns []map[string]any
	if err := json.Unmarshal([]byte(cliOK(t, cfg, "acr", "private-endpoint-connection", "list", "-r", reg, "-g", "pe")), &conns); err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		if id, _ := cliDig(c, "properties.privateEndpoint.id").(string); strings.HasSuffix(id, "/privateEndpoints/"+pe) {
			return c["name"].(string)
		}
	}
	t.Fatalf("no connection of %s in %v", pe, conns)
	return ""
}

// TestPrivateEndpointsEndToEnd: a Premium registry with public network
// access disabled is reached only through its private endpoint's own
// listener (a 127.0.0.x address on moat's port), with go-containerregistry
// (crane's library) and moat's CLI. Rejecting the connection refuses the
// next request with DENIED; a manual connection is Pending until approved;
// deleting the endpoint or its connection closes the listener. No restart.
func TestPrivateEndpointsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const password = "pe-secret-1"
	dataDir := filepath.Join(t.TempDir(), "data")
	p, url := startMoat(t, []string{"MOAT_ADMIN_PASSWORD=" + password}, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir)
	defer p.stop(t)
	addr := strings.TrimPrefix(url, "https://")
	_, port, _ := net.SplitHostPort(addr)
	ca := filepath.Join(dataDir, "ca.pem")
	cfg := filepath.Join(t.TempDir(), "cfg")
	if r := cli(t, cfg, []string{"MOAT_PASSWORD=" + password}, "", "login", "--server", url, "--ca-file", ca, "-u", "admin"); r.code != 0 {
		t.Fatalf("login: %s", r.stderr)
	}
	cliOK(t, cfg, "group", "create", "-n", "pe")
	cliOK(t, cfg, "acr", "create", "-n", "pereg01", "-g", "pe", "--sku", "Premium", "--public-network-enabled", "false")
	var prof profile
	if err := json.Unmarshal(readFile(t, filepath.Join(cfg, "profile.json")), &prof); err != nil {
		t.Fatal(err)
	}
	mgmt := &peClient{t: t, url: url, token: prof.AccessToken, http: clientTrusting(t, ca, addr)}

	pe := mgmt.putEndpoint("pe1", "pereg01", "127.0.0.77", false)
	if got := cliDig(pe, "properties.privateLinkServiceConnections"); !strings.Contains(jsonString(t, got), `"status":"Approved"`) {
		t.Fatalf("the creator may approve: the connection should be Approved: %v", got)
	}

	auth := remote.WithAuth(&authn.Basic{Username: "admin", Password: password})
	viaPE := remote.WithTransport(clientTrusting(t, ca, "127.0.0.77:"+port).Transport)
	viaMain := remote.WithTransport(clientTrusting(t, ca, addr).Transport)
	ref, err := name.ParseReference("pereg01.localhost:" + port + "/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, auth, viaPE); err != nil {
		t.Fatalf("push through the private endpoint: %v", err)
	}
	pull := func(opt remote.Option) error {
		got, err := remote.Image(ref, auth, opt)
		if err != nil {
			return err
		}
		_, err = got.RawManifest()
		return err
	}
	if err := pull(viaPE); err != nil {
		t.Fatalf("pull through the private endpoint: %v", err)
	}
	// By address, as a client without the private DNS name does: the
	// listener's certificate names its address.
	byIP, err := name.ParseReference("127.0.0.77:" + port + "/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Image(byIP, auth, remote.WithTransport(clientTrusting(t, ca, "127.0.0.77:"+port).Transport)); err != nil {
		t.Fatalf("pull from https://127.0.0.77:%s: %v", port, err)
	}
	if err := pull(viaMain); err == nil || !strings.Contains(err.Error(), "DENIED: client with IP '127.0.0.1' is not allowed access") {
		t.Fatalf("pull through the public listener: %v, want DENIED", err)
	}
	// Another registry is not reachable through this endpoint.
	other, _ := name.ParseReference("moat.localhost:" + port + "/app:v1")
	if _, err := remote.Head(other, auth, viaPE); err == nil || !strings.Contains(err.Error(), "NAME_UNKNOWN: registry \"moat\" is not served on this private endpoint") {
		t.Fatalf("the default registry through pereg01's endpoint: %v, want NAME_UNKNOWN", err)
	}
	// Nor the management plane.
	if c, body := get(t, clientTrusting(t, ca, "127.0.0.77:"+port), "https://pereg01.localhost:"+port+"/subscriptions/"+peSub+"/resourcegroups?api-version=2021-04-01", nil); c != http.StatusNotFound {
		t.Fatalf("management plane on the private endpoint: %d %s", c, body)
	}

	// Reject: the next request through the endpoint is refused; approve again.
	conn := connectionOf(t, cfg, "pereg01", "pe1")
	if out := cliOK(t, cfg, "acr", "private-endpoint-connection", "reject", "-r", "pereg01", "-g", "pe", "-n", conn, "-o", "tsv",
		"--query", "properties.privateLinkServiceConnectionState.status"); out != "Rejected\n" {
		t.Fatalf("reject: %q", out)
	}
	if err := pull(viaPE); err == nil || !strings.Contains(err.Error(), "DENIED") {
		t.Fatalf("pull through a rejected endpoint: %v, want DENIED", err)
	}
	cliOK(t, cfg, "acr", "private-endpoint-connection", "approve", "-r", "pereg01", "-g", "pe", "-n", conn)
	if err := pull(viaPE); err != nil {
		t.Fatalf("pull after approving again: %v", err)
	}
	show := cliOK(t, cfg, "acr", "show", "-n", "pereg01", "-g", "pe", "--query", "properties.privateEndpointConnections[0].properties.privateLinkServiceConnectionState.status", "-o", "tsv")
	if show != "Approved\n" {
		t.Fatalf("acr show: %q", show)
	}

	// A manual connection is Pending, refused, until the registry owner approves it.
	mgmt.putEndpoint("pe2", "pereg01", "127.0.0.78", true)
	viaPE2 := remote.WithTransport(clientTrusting(t, ca, "127.0.0.78:"+port).Transport)
	if err := pull(viaPE2); err == nil || !strings.Contains(err.Error(), "DENIED") {
		t.Fatalf("pull through a pending endpoint: %v, want DENIED", err)
	}
	conn2 := connectionOf(t, cfg, "pereg01", "pe2")
	if out := cliOK(t, cfg, "acr", "private-endpoint-connection", "show", "-r", "pereg01", "-g", "pe", "-n", conn2, "-o", "tsv",
		"--query", "properties.privateLinkServiceConnectionState.[status, description]"); out != "Pending\nfrom the build network\n" {
		t.Fatalf("show pending: %q", out)
	}
	cliOK(t, cfg, "acr", "private-endpoint-connection", "approve", "-r", "pereg01", "-g", "pe", "-n", conn2)
	if err := pull(viaPE2); err != nil {
		t.Fatalf("pull after approving the manual connection: %v", err)
	}

	// Deleting the endpoint, or the registry's connection, closes the listener.
	if status, out := mgmt.call(http.MethodDelete, "/subscriptions/"+peSub+"/resourceGroups/pe/providers/Microsoft.Network/privateEndpoints/pe1?api-version=2024-05-01", ""); status != http.StatusOK {
		t.Fatalf("DELETE pe1: %d %v", status, out)
	}
	wantRefused(t, "127.0.0.77:"+port)
	cliOK(t, cfg, "acr", "private-endpoint-connection", "delete", "-r", "pereg01", "-g", "pe", "-n", conn2, "--yes")
	wantRefused(t, "127.0.0.78:"+port)
	cliFails(t, cfg, 1, "moat: PrivateEndpointConnectionNotFound: ", "acr", "private-endpoint-connection", "show", "-r", "pereg01", "-g", "pe", "-n", conn2)
}

// wantRefused fails unless a TCP connection to addr is refused now.
func wantRefused(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		_ = c.Close()
		t.Fatalf("%s still accepts connections", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dialling %s: %v, want connection refused", addr, err)
	}
}

func jsonString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// eventually retries check every 50 ms for up to 5 s (another replica
// follows the change feed within a second).
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPrivateEndpointsFollowOtherReplicas: two replicas share one data
// directory (SQLite file, blobs, CA). An endpoint created, rejected and
// deleted through replica A opens, refuses and closes its listener on
// replica B too, through the change feed, without a restart.
func TestPrivateEndpointsFollowOtherReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const password = "pe-secret-2"
	dataDir := filepath.Join(t.TempDir(), "data")
	env := []string{"MOAT_ADMIN_PASSWORD=" + password}
	pa, urlA := startMoat(t, env, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir)
	defer pa.stop(t)
	pb, urlB := startMoat(t, env, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir)
	defer pb.stop(t)
	addrA := strings.TrimPrefix(urlA, "https://")
	_, portB, _ := net.SplitHostPort(strings.TrimPrefix(urlB, "https://"))
	ca := filepath.Join(dataDir, "ca.pem")
	cfg := filepath.Join(t.TempDir(), "cfg")
	if r := cli(t, cfg, []string{"MOAT_PASSWORD=" + password}, "", "login", "--server", urlA, "--ca-file", ca, "-u", "admin"); r.code != 0 {
		t.Fatalf("login: %s", r.stderr)
	}
	cliOK(t, cfg, "group", "create", "-n", "pe")
	cliOK(t, cfg, "acr", "create", "-n", "pereg02", "-g", "pe", "--sku", "Premium", "--public-network-enabled", "false")
	var prof profile
	if err := json.Unmarshal(readFile(t, filepath.Join(cfg, "profile.json")), &prof); err != nil {
		t.Fatal(err)
	}
	mgmt := &peClient{t: t, url: urlA, token: prof.AccessToken, http: clientTrusting(t, ca, addrA)}
	mgmt.putEndpoint("pe3", "pereg02", "127.0.0.79", false)

	auth := remote.WithAuth(&authn.Basic{Username: "admin", Password: password})
	viaB := remote.WithTransport(clientTrusting(t, ca, "127.0.0.79:"+portB).Transport)
	ref, err := name.ParseReference("pereg02.localhost:" + portB + "/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "push through replica B's listener of the endpoint made on A", func() error { return remote.Write(ref, img, auth, viaB) })

	conn := connectionOf(t, cfg, "pereg02", "pe3")
	cliOK(t, cfg, "acr", "private-endpoint-connection", "reject", "-r", "pereg02", "-g", "pe", "-n", conn)
	eventually(t, "replica B refuses the rejected endpoint", func() error {
		_, err := remote.Head(ref, auth, viaB)
		if err == nil || !strings.Contains(err.Error(), "DENIED") {
			return errors.New("not DENIED yet: " + errString(err))
		}
		return nil
	})
	if status, out := mgmt.call(http.MethodDelete, "/subscriptions/"+peSub+"/resourceGroups/pe/providers/Microsoft.Network/privateEndpoints/pe3?api-version=2024-05-01", ""); status != http.StatusOK {
		t.Fatalf("DELETE pe3: %d %v", status, out)
	}
	eventually(t, "replica B closes the deleted endpoint's listener", func() error {
		c, err := net.DialTimeout("tcp", "127.0.0.79:"+portB, time.Second)
		if err == nil {
			_ = c.Close()
			return errors.New("still accepting")
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return err
		}
		return nil
	})
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}
