// Package sdkbeta tests moat's management API with the preview release of
// the Azure SDK for Go's container registry client,
// armcontainerregistry v1.3.0-beta.3 (api-version 2025-03-01-preview), for
// the registry properties only preview api-versions carry
// (policies.softDeletePolicy) and those the stable v1.2.0 client cannot
// send in an update (anonymousPullEnabled).
//
// It is a module of its own because one module can require only one
// version of armcontainerregistry, and moat's own module pins v1.2.0. The
// test builds the moat binary from the parent module (go build -C ../..),
// runs `moat serve` on loopback with its local CA, and talks to it over TLS
// with azidentity tokens from moat's issuer. Run it with
//
//	cd test/sdkbeta && go test ./...
package sdkbeta
