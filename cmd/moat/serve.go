package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/moat-registry/moat/internal/config"
	"github.com/moat-registry/moat/internal/dataplane"
	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/server"
	"github.com/moat-registry/moat/internal/server/localca"
	"github.com/moat-registry/moat/internal/storage/blob"
	"github.com/moat-registry/moat/internal/transfer"
)

const (
	envPrefix = "MOAT_"
	// adminPasswordEnv sets the admin password. It is deliberately not a
	// flag: secrets do not belong in argv (visible in ps) or in config files.
	adminPasswordEnv  = "MOAT_ADMIN_PASSWORD" //nolint:gosec // G101: the name of the variable, not a credential
	adminPasswordFile = "admin-password"
	// purgeEvery is how often abandoned uploads are looked for.
	purgeEvery = time.Hour
)

// serveOptions are moat serve's options; every one is a flag, a MOAT_*
// variable and a key of the config file.
type serveOptions struct {
	configFile      string
	dataDir         string
	listen          string
	tlsCert         string
	tlsKey          string
	insecureHTTP    bool
	defaultRegistry string
	domain          string
	logLevel        string
	logFormat       string
	trustedProxies  []netip.Prefix
	proxyProtocol   bool
	shutdownTimeout time.Duration
	uploadTTL       time.Duration
	maxManifestSize int64
	database        string
	blobStore       string
	blobRedirectTTL time.Duration
	bodyStall       time.Duration
	pipelineLease   time.Duration
	// importCAFiles and importPlainHTTPLoopback: importconfig.go.
	importCAFiles           []string
	importPlainHTTPLoopback bool
	// goDefaultProcs is Go's GOMAXPROCS before moat serve raised it (see
	// extraProcs); not an option, only logged.
	goDefaultProcs int
}

func (o *serveOptions) register(f *pflag.FlagSet) {
	f.StringVar(&o.configFile, "config", "", "YAML file with options (keys are the flag names)")
	f.StringVar(&o.dataDir, "data-dir", "./moat-data", "directory for the database, blobs, local CA and admin password")
	f.StringVar(&o.listen, "listen", "127.0.0.1:5443", "address to listen on (host:port)")
	f.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate file (PEM, with chain) instead of the local CA's")
	f.StringVar(&o.tlsKey, "tls-key", "", "TLS private key file (PEM) for --tls-cert")
	f.BoolVar(&o.insecureHTTP, "insecure-http", false, "serve plain HTTP (only on a loopback address)")
	f.StringVar(&o.defaultRegistry, "default-registry", "moat", "registry served at the listen address itself, created on first start")
	f.StringVar(&o.domain, "domain", "localhost", "other registries are served at {name}.{domain}")
	f.Var(config.NewEnum(&o.logLevel, "info", "debug", "info", "warn", "error"), "log-level", "log level")
	f.Var(config.NewEnum(&o.logFormat, "text", "text", "json"), "log-format", "log format")
	f.Var(config.NewPrefixes(&o.trustedProxies), "trusted-proxies", "comma-separated CIDRs of proxies whose X-Forwarded-For (or, with --proxy-protocol, PROXY header) is trusted (default none)")
	f.BoolVar(&o.proxyProtocol, "proxy-protocol", false, "read a PROXY protocol v1/v2 header from --trusted-proxies (required from them); refuse it from anyone else")
	f.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long in-flight requests may finish after SIGTERM/SIGINT")
	f.DurationVar(&o.bodyStall, "body-stall-timeout", server.DefaultBodyStallTimeout, "a request body that sends nothing for this long fails (there is no whole-request timeout)")
	f.DurationVar(&o.uploadTTL, "upload-ttl", 24*time.Hour, "uploads idle longer than this are removed")
	f.Var(config.NewByteSize(&o.maxManifestSize, 4<<20), "max-manifest-size", "largest manifest accepted (e.g. 4MiB)")
	f.StringVar(&o.database, "database", "", "metadata store: postgres://… for replicas, sqlite:<path>; default <data-dir>/meta.db")
	f.StringVar(&o.blobStore, "blob-store", "", "blob store: azblob://<account>/<container>[?endpoint=…], file:<dir>; default <data-dir>/blobs")
	f.DurationVar(&o.blobRedirectTTL, "blob-redirect-ttl", 0, "answer blob downloads with a redirect to a SAS URL valid this long (azblob with an account key only; 0 = off, the default; see the README on network rules)")
	f.DurationVar(&o.pipelineLease, "pipeline-lease-ttl", 30*time.Second, "lease of the replica running transfer pipelines and import operations: a dead replica's work moves to another within about this")
	f.StringSliceVar(&o.importCAFiles, "import-ca-file", nil, "PEM CA certificates trusted, besides the system roots, for registries imported from (e.g. another moat's ca.pem)")
	f.BoolVar(&o.importPlainHTTPLoopback, "import-plain-http-loopback", false, "allow importing over plain HTTP from loopback sources (tests, a local registry)")
	f.VisitAll(func(fl *pflag.Flag) {
		fl.Usage += " [$" + config.EnvName(envPrefix, fl.Name) + "]"
	})
}

// validate checks what the flag types cannot.
func (o *serveOptions) validate() error {
	switch {
	case (o.tlsCert == "") != (o.tlsKey == ""):
		return errors.New("--tls-cert and --tls-key go together: give both or neither")
	case o.insecureHTTP && o.tlsCert != "":
		return errors.New("--insecure-http and --tls-cert contradict each other: choose one")
	case o.dataDir == "":
		return errors.New("--data-dir must not be empty")
	case o.shutdownTimeout <= 0:
		return fmt.Errorf("--shutdown-timeout must be positive, not %s", o.shutdownTimeout)
	case o.bodyStall <= 0:
		return fmt.Errorf("--body-stall-timeout must be positive, not %s", o.bodyStall)
	case o.pipelineLease < time.Second:
		return fmt.Errorf("--pipeline-lease-ttl must be at least 1s, not %s", o.pipelineLease)
	case o.uploadTTL <= 0:
		return fmt.Errorf("--upload-ttl must be positive, not %s", o.uploadTTL)
	case o.maxManifestSize <= 0:
		return errors.New("--max-manifest-size must be positive")
	case o.blobRedirectTTL < 0:
		return fmt.Errorf("--blob-redirect-ttl must not be negative, not %s", o.blobRedirectTTL)
	case o.proxyProtocol && len(o.trustedProxies) == 0:
		return errors.New("--proxy-protocol needs --trusted-proxies: only those proxies may send the header")
	}
	if _, _, err := net.SplitHostPort(o.listen); err != nil {
		return fmt.Errorf("--listen %q: want host:port: %w", o.listen, err)
	}
	o.domain = strings.TrimSuffix(strings.ToLower(o.domain), ".")
	if !validHostname(o.domain) {
		return fmt.Errorf("--domain %q is not a valid DNS name", o.domain)
	}
	o.defaultRegistry = strings.ToLower(o.defaultRegistry)
	if !validRegistryName(o.defaultRegistry) {
		return fmt.Errorf("--default-registry %q: want 1 to 50 letters and digits", o.defaultRegistry)
	}
	return nil
}

func newServeCmd(stderr io.Writer) *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the registry",
		Long: "Run the registry. Every option is also read from the environment (MOAT_ and the flag\n" +
			"name in upper case with '_' for '-') and from the YAML file given by --config, in that\n" +
			"order after the command line. The admin password comes from " + adminPasswordEnv + ";\n" +
			"without it, one is generated on first start and written to <data-dir>/" + adminPasswordFile + ".",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := config.Apply(cmd.Flags(), config.Options{EnvPrefix: envPrefix, ConfigFlag: "config"}); err != nil {
				return err
			}
			if err := o.validate(); err != nil {
				return err
			}
			// Here rather than in serve: it changes the whole process,
			// and serve also runs inside tests.
			var err error
			if o.goDefaultProcs, err = applyServeProcs(os.LookupEnv); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// The first signal starts a graceful shutdown; restoring the
			// default handling lets a second one end the process at once.
			context.AfterFunc(ctx, stop)
			err = serve(ctx, o, os.LookupEnv, stderr)
			if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
				return nil // stopped by a signal during start-up: not a failure
			}
			return err
		},
	}
	o.register(cmd.Flags())
	return cmd
}

func newLogger(o *serveOptions, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		level = slog.LevelInfo // unreachable: the Enum only admits valid levels
	}
	hopts := &slog.HandlerOptions{Level: level}
	if o.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, hopts))
	}
	return slog.New(slog.NewTextHandler(w, hopts))
}

// serve runs the registry until ctx is done. It returns an error for
// anything that stops start-up, and after shutdown if requests had to be cut
// off or a store did not close cleanly.
func serve(ctx context.Context, o *serveOptions, lookupEnv func(string) (string, bool), stderr io.Writer) (err error) {
	logger := newLogger(o, stderr)

	// Refuse plain HTTP on a non-loopback address before touching the disk.
	if o.insecureHTTP {
		if err := server.CheckLoopback(ctx, o.listen, nil); err != nil {
			return fmt.Errorf("--insecure-http is only allowed on a loopback address (127.0.0.1, ::1, localhost): %w", err)
		}
	}

	// The store specs and the files flags name too: a refused start must
	// not leave a data dir behind.
	metaSpec, err := parseDatabase(o.database)
	if err != nil {
		return err
	}
	blobSpec, err := parseBlobStore(o.blobStore)
	if err != nil {
		return err
	}
	ownCert, err := loadOwnCert(o, logger)
	if err != nil {
		return err
	}
	importCAs, err := loadImportCAs(o.importCAFiles)
	if err != nil {
		return err
	}

	dataDir, err := prepareDataDir(o.dataDir, logger)
	if err != nil {
		return err
	}

	metaStore, metaDesc, err := metaSpec.open(ctx, dataDir)
	if err != nil {
		return fmt.Errorf("opening the metadata store: %w", err)
	}
	serving := false
	defer func() {
		if cerr := metaStore.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing the metadata store: %w", cerr))
		}
		if serving {
			logger.Info("moat stopped")
		}
	}()
	blobStore, blobDesc, err := blobSpec.open(ctx, dataDir)
	if err != nil {
		return fmt.Errorf("opening the blob store: %w", err)
	}
	logger.Info("storage", "metadata", metaDesc, "blobs", blobDesc)
	logger.Info("runtime", "gomaxprocs", runtime.GOMAXPROCS(0), "go-default", o.goDefaultProcs, "cpus", runtime.NumCPU())
	ids, err := identity.New(ctx, metaStore, identity.Options{Logger: logger})
	if err != nil {
		return fmt.Errorf("starting identity: %w", err)
	}
	envPassword, _ := lookupEnv(adminPasswordEnv)
	adminNote, err := ensureAdmin(ctx, ids, envPassword, dataDir, logger)
	if err != nil {
		return err
	}
	if err := ensureDefaultRegistry(ctx, metaStore, o.defaultRegistry, logger); err != nil {
		return err
	}
	if err := ensureDefenderScanner(ctx, ids, dataDir, logger); err != nil {
		return err
	}

	metrics := server.NewMetricsRegistry()
	plane, err := dataplane.New(dataplane.Options{
		Meta:            metaStore,
		Blobs:           blobStore,
		Identity:        ids,
		Domain:          o.domain,
		DefaultRegistry: o.defaultRegistry,
		Logger:          logger,
		Metrics:         metrics,
		MaxManifestSize: o.maxManifestSize,
		BlobRedirectTTL: o.blobRedirectTTL,
	})
	if err != nil {
		return fmt.Errorf("starting the data plane: %w", err)
	}
	defer func() { _ = plane.Close() }() // after serving stops, before the stores close: flushes audit records

	tlsConf, caPath, ca, err := setupTLS(o, ownCert, dataDir, logger)
	if err != nil {
		return err
	}
	endpoints := newEndpointFollower()
	importer := &transfer.Remote{Blobs: blobStore, RootCAs: importCAs, PlainHTTPLoopback: o.importPlainHTTPLoopback, Logger: logger}
	pipes := transfer.NewPipelines(transfer.PipelinesOptions{Meta: metaStore, Blobs: blobStore, Logger: logger, Lease: o.pipelineLease})
	mgmt := newManagementPlane(o, planeDeps{
		importer:         importer,
		pipelines:        pipes,
		meta:             metaStore,
		ids:              ids,
		onRegistryChange: endpoints.afterChange(announceRegistryChange(metaStore, plane, logger)),
	}, logger)
	srv, err := server.New(server.Config{
		TLS:              tlsConf,
		TrustedProxies:   o.trustedProxies,
		ProxyProtocol:    o.proxyProtocol,
		Ready:            metaStore.Ping,
		Metrics:          metrics,
		ShutdownTimeout:  o.shutdownTimeout,
		BodyStallTimeout: o.bodyStall,
		Logger:           logger,
	}, server.Planes{Data: plane, Management: mgmt, Identity: identityPlane(ids)})
	if err != nil {
		return err
	}
	ln, err := server.Listen(ctx, o.listen, o.insecureHTTP)
	if err != nil {
		return err
	}

	url := baseURL(tlsConf != nil, ln.Addr())
	logger.Info("moat is serving", "version", version, "url", url, "default_registry", o.defaultRegistry,
		"domain", o.domain, "data_dir", dataDir, "ca", caPath, "admin_user", identity.AdminName, "admin_password", adminNote)
	printBanner(stderr, url, o, caPath, adminNote)

	if err := endpoints.start(ctx, metaStore, plane, ln.Addr(), tlsConf, ca, o, logger); err != nil {
		_ = ln.Close()
		return err
	}
	defer endpoints.stop()
	bg := startBackground(ctx, metaStore, plane, o.uploadTTL, logger, endpoints.trigger)
	defer func() {
		bg.stop()
		logger.Debug("closing the stores")
	}()
	// Transfer pipeline runs and source triggers, on one replica at a time.
	pctx, pstop := context.WithCancel(ctx)
	pdone := make(chan struct{})
	go func() { defer close(pdone); pipes.Run(pctx) }()
	defer func() { pstop(); <-pdone }()

	// Requests are drained before this runs; the bytes of their last
	// uploads may still be on their way to the disk.
	defer settleBlobs(blobStore, logger)
	serving = true
	return srv.Serve(ctx, ln)
}

// settleBlobs waits, for a while, for a blob store that finishes uploads in
// the background (the fs store's sessions) to have done so.
func settleBlobs(store blob.Store, logger *slog.Logger) {
	s, ok := store.(interface{ Settle(context.Context) error })
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	if err := s.Settle(ctx); err != nil {
		logger.Warn("uploads' last bytes were not all stored before stopping; those uploads must start again", "error", err)
	}
}

// settleTimeout bounds settleBlobs: a session has at most 24 MiB to write.
const settleTimeout = 30 * time.Second

// printBanner tells a human how to reach moat. It never prints the
// password, only where it is.
func printBanner(w io.Writer, url string, o *serveOptions, caPath, adminNote string) {
	host := strings.TrimPrefix(strings.TrimPrefix(url, "https://"), "http://")
	_, port, _ := net.SplitHostPort(host)
	lines := []string{
		fmt.Sprintf("moat %s serving %s (registry %q; other registries at {name}.%s:%s)", version, url, o.defaultRegistry, o.domain, port),
	}
	if caPath != "" {
		lines = append(lines, "  TLS: clients must trust the CA in "+caPath)
	}
	lines = append(lines, fmt.Sprintf("  admin user %q: %s", identity.AdminName, adminNote))
	for _, l := range lines {
		_, _ = fmt.Fprintln(w, l) // stderr: nothing useful to do if it fails
	}
}

func baseURL(tls bool, addr net.Addr) string {
	scheme := "http"
	if tls {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return scheme + "://" + addr.String()
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// purgeLoop removes abandoned uploads every purgeEvery (or every ttl, when
// that is shorter) until ctx is done.
func purgeLoop(ctx context.Context, plane *dataplane.Handler, ttl time.Duration, logger *slog.Logger) {
	every := min(purgeEvery, max(ttl, time.Minute))
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := plane.PurgeUploads(ctx, ttl)
		switch {
		case err != nil && ctx.Err() == nil:
			logger.Error("purging abandoned uploads", "error", err)
		case n > 0:
			logger.Info("purged abandoned uploads", "count", n, "idle_longer_than", ttl)
		}
	}
}

// loadOwnCert loads --tls-cert and --tls-key, if given; nil otherwise.
func loadOwnCert(o *serveOptions, logger *slog.Logger) (*server.CertFiles, error) {
	if o.insecureHTTP || o.tlsCert == "" {
		return nil, nil
	}
	return server.LoadCertFiles(o.tlsCert, o.tlsKey, logger)
}

// setupTLS returns the TLS configuration (nil for --insecure-http) and,
// when that is what clients must trust, the local CA and its path. ownCert
// is loadOwnCert's.
func setupTLS(o *serveOptions, ownCert *server.CertFiles, dataDir string, logger *slog.Logger) (*tls.Config, string, *localca.CA, error) {
	switch {
	case o.insecureHTTP:
		logger.Warn("serving plain HTTP; use this only for local testing")
		return nil, "", nil, nil
	case ownCert != nil:
		return server.TLSConfig(ownCert.GetCertificate), "", nil, nil
	}
	ca, err := localca.Load(dataDir, certificateNames(o.listen, o.domain, o.defaultRegistry), localca.Options{Logger: logger})
	if err != nil {
		return nil, "", nil, err
	}
	if ca.CACreated {
		logger.Info("created a local CA; clients must trust it", "ca", ca.CAPath())
	}
	if ca.CertIssued {
		leaf := ca.Certificate().Leaf
		logger.Info("issued a server certificate", "dns", leaf.DNSNames, "ips", leaf.IPAddresses, "expires", leaf.NotAfter)
	}
	return server.TLSConfig(ca.GetCertificate), ca.CAPath(), ca, nil
}

// certificateNames are the names the local CA's server certificate covers:
// localhost and the domain with their subdomains (each registry's login
// server), the loopback addresses and the listen host. The default
// registry's login server is also named explicitly: some clients (curl,
// browsers) refuse a wildcard directly under a one-label name such as
// "*.localhost". When listening on
// every interface, the machine's host name and interface addresses are
// added so that clients on the network can connect by them.
func certificateNames(listen, domain, defaultRegistry string) []string {
	names := []string{"localhost", "*.localhost", domain, "*." + domain, defaultRegistry + "." + domain, "127.0.0.1", "::1"}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return names
	}
	ip, ipErr := netip.ParseAddr(host)
	switch {
	case host == "" || (ipErr == nil && ip.IsUnspecified()):
		if h, err := os.Hostname(); err == nil && validHostname(strings.ToLower(h)) {
			names = append(names, strings.ToLower(h))
		}
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if p, err := netip.ParsePrefix(a.String()); err == nil && !p.Addr().IsLinkLocalUnicast() {
					names = append(names, p.Addr().String())
				}
			}
		}
	case ipErr == nil:
		names = append(names, ip.String())
	case validHostname(strings.ToLower(host)):
		names = append(names, strings.ToLower(host))
	}
	return names
}

// validHostname accepts DNS names made of letters, digits and hyphens (no
// wildcard).
func validHostname(h string) bool {
	return !strings.HasPrefix(h, "*.") && localca.ValidDNSName(h)
}

// validRegistryName: ACR registry names are letters and digits only (so
// that "{name}.{domain}" is a single DNS label); stored lower-case.
func validRegistryName(n string) bool {
	if n == "" || len(n) > 50 {
		return false
	}
	for _, r := range n {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}
