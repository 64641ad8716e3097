package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	azarm "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/moat-registry/moat/internal/armtemplate"
)

// TestDeploymentThroughAzureSDK deploys the seed's firewall template to a
// real `moat serve` with armresources (azidentity token from moat's
// issuer) and checks that the registry it makes enforces the template's
// network rules on its data plane: pushes from loopback pass while the
// rule admits 127.0.0.1, and are refused once a second deployment
// replaces the rule.
func TestDeploymentThroughAzureSDK(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const password = "deploy-sdk-secret-1"
	m := startManagedMoat(t, password)
	m.putGroup(t, "infra")
	ctx := context.Background()
	client, err := armresources.NewDeploymentsClient("00000000-0000-0000-0000-000000000000", m.cred,
		&azarm.ClientOptions{ClientOptions: m.opts, DisableRPRegistration: true})
	if err != nil {
		t.Fatal(err)
	}
	seed := string(readFile(t, filepath.Join("..", "..", "internal", "arm", "testdata", "deploy", "seed003-firewall.json")))
	deploy := func(deployment, ip string) *armresources.DeploymentExtended {
		t.Helper()
		root, _, err := armtemplate.ReadJSONC([]byte(strings.ReplaceAll(seed, "_PublicIPv4Address_", ip)))
		if err != nil {
			t.Fatal(err)
		}
		poller, err := client.BeginCreateOrUpdate(ctx, "infra", deployment, armresources.Deployment{Properties: &armresources.DeploymentProperties{
			Mode:       to.Ptr(armresources.DeploymentModeIncremental),
			Template:   root,
			Parameters: map[string]any{"registryName": map[string]any{"value": "fwsdkreg1"}},
		}}, nil)
		if err != nil {
			t.Fatalf("BeginCreateOrUpdate: %v", err)
		}
		res, err := poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 50 * time.Millisecond})
		if err != nil {
			t.Fatalf("PollUntilDone: %v", err)
		}
		return &res.DeploymentExtended
	}
	d := deploy("firewall", "127.0.0.1")
	if *d.Properties.ProvisioningState != armresources.ProvisioningStateSucceeded || len(d.Properties.OutputResources) != 1 {
		t.Fatalf("deployment %+v", d.Properties)
	}

	ref, err := name.ParseReference("fwsdkreg1.localhost:" + m.port + "/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	opts := []remote.Option{remote.WithAuth(&authn.Basic{Username: "admin", Password: password}), remote.WithTransport(m.http.Transport)}
	if err := remote.Write(ref, img, opts...); err != nil {
		t.Fatalf("push allowed by the deployed rule: %v", err)
	}
	deploy("firewall", "203.0.113.9")
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := remote.Head(ref, opts...)
		if err != nil && strings.Contains(err.Error(), "DENIED") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the rule changed, loopback still reaches the registry: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
