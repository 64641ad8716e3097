package config

import (
	"errors"
	"io/fs"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// opts is a small option set like moat serve's.
type opts struct {
	config   string
	dataDir  string
	insecure bool
	timeout  time.Duration
	level    string
	proxies  []netip.Prefix
	size     int64
}

func newFlags(o *opts) *pflag.FlagSet {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.StringVar(&o.config, "config", "", "config file")
	fs.StringVar(&o.dataDir, "data-dir", "./moat-data", "data dir")
	fs.BoolVar(&o.insecure, "insecure-http", false, "plain HTTP")
	fs.DurationVar(&o.timeout, "shutdown-timeout", 30*time.Second, "drain time")
	fs.Var(NewEnum(&o.level, "info", "debug", "info", "warn", "error"), "log-level", "level")
	fs.Var(NewPrefixes(&o.proxies), "trusted-proxies", "proxies")
	fs.Var(NewByteSize(&o.size, 4<<20), "max-manifest-size", "size")
	fs.Bool("help", false, "help")
	return fs
}

func load(t *testing.T, args []string, env map[string]string, files map[string]string) (opts, error) {
	t.Helper()
	var o opts
	flags := newFlags(&o)
	if err := flags.Parse(args); err != nil {
		return o, err
	}
	err := Apply(flags, Options{
		EnvPrefix:  "MOAT_",
		ConfigFlag: "config",
		LookupEnv: func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		},
		ReadFile: func(name string) ([]byte, error) {
			if s, ok := files[name]; ok {
				return []byte(s), nil
			}
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		},
	})
	return o, err
}

func TestPrecedence(t *testing.T) {
	file := map[string]string{"moat.yaml": `
data-dir: /from/file
insecure_http: true
shutdown-timeout: 5s
log-level: warn
trusted-proxies: [10.0.0.0/8, "fd00::/8"]
max-manifest-size: 8MiB
`}
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		files map[string]string
		check func(t *testing.T, o opts)
	}{
		{
			name: "defaults",
			check: func(t *testing.T, o opts) {
				want := opts{dataDir: "./moat-data", timeout: 30 * time.Second, level: "info", size: 4 << 20}
				if !reflect.DeepEqual(o, want) {
					t.Errorf("got %+v, want %+v", o, want)
				}
			},
		},
		{
			name:  "file over defaults",
			args:  []string{"--config", "moat.yaml"},
			files: file,
			check: func(t *testing.T, o opts) {
				want := opts{
					config: "moat.yaml", dataDir: "/from/file", insecure: true, timeout: 5 * time.Second,
					level: "warn", size: 8 << 20,
					proxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")},
				}
				if !reflect.DeepEqual(o, want) {
					t.Errorf("got %+v, want %+v", o, want)
				}
			},
		},
		{
			name:  "env over file",
			args:  []string{"--config", "moat.yaml"},
			env:   map[string]string{"MOAT_DATA_DIR": "/from/env", "MOAT_INSECURE_HTTP": "false", "MOAT_TRUSTED_PROXIES": "192.0.2.1,2001:db8::/32"},
			files: file,
			check: func(t *testing.T, o opts) {
				if o.dataDir != "/from/env" || o.insecure {
					t.Errorf("env did not win over file: %+v", o)
				}
				if got := NewPrefixes(&[]netip.Prefix{}).String(); got != "" {
					t.Errorf("fresh Prefixes = %q", got)
				}
				want := []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("2001:db8::/32")}
				if !reflect.DeepEqual(o.proxies, want) {
					t.Errorf("proxies = %v, want %v", o.proxies, want)
				}
				if o.level != "warn" || o.timeout != 5*time.Second {
					t.Errorf("file values lost for options env did not set: %+v", o)
				}
			},
		},
		{
			name:  "flag over env and file",
			args:  []string{"--config", "moat.yaml", "--data-dir", "/from/flag", "--log-level", "DEBUG", "--trusted-proxies", "10.1.0.0/16", "--trusted-proxies", "10.2.0.0/16"},
			env:   map[string]string{"MOAT_DATA_DIR": "/from/env", "MOAT_LOG_LEVEL": "error"},
			files: file,
			check: func(t *testing.T, o opts) {
				if o.dataDir != "/from/flag" || o.level != "debug" {
					t.Errorf("flag did not win: %+v", o)
				}
				want := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("10.2.0.0/16")}
				if !reflect.DeepEqual(o.proxies, want) {
					t.Errorf("repeated flag: proxies = %v, want %v", o.proxies, want)
				}
			},
		},
		{
			name:  "config file named by the environment",
			env:   map[string]string{"MOAT_CONFIG": "moat.yaml"},
			files: file,
			check: func(t *testing.T, o opts) {
				if o.config != "moat.yaml" || o.dataDir != "/from/file" {
					t.Errorf("MOAT_CONFIG not used: %+v", o)
				}
			},
		},
		{
			name:  "config flag over MOAT_CONFIG",
			args:  []string{"--config", "other.yaml"},
			env:   map[string]string{"MOAT_CONFIG": "moat.yaml"},
			files: map[string]string{"moat.yaml": "data-dir: /wrong\n", "other.yaml": "data-dir: /right\n"},
			check: func(t *testing.T, o opts) {
				if o.dataDir != "/right" {
					t.Errorf("data-dir = %q", o.dataDir)
				}
			},
		},
		{
			name: "empty env var counts as unset",
			env:  map[string]string{"MOAT_DATA_DIR": "", "MOAT_SHUTDOWN_TIMEOUT": ""},
			check: func(t *testing.T, o opts) {
				if o.dataDir != "./moat-data" || o.timeout != 30*time.Second {
					t.Errorf("empty env changed values: %+v", o)
				}
			},
		},
		{
			name: "unrelated MOAT_ variables are ignored",
			env:  map[string]string{"MOAT_ADMIN_PASSWORD": "secret", "MOAT_HELP": "true"},
			check: func(t *testing.T, o opts) {
				if o.dataDir != "./moat-data" {
					t.Errorf("got %+v", o)
				}
			},
		},
		{
			name:  "empty file and comment-only file",
			args:  []string{"--config", "empty.yaml"},
			files: map[string]string{"empty.yaml": "# nothing here\n"},
			check: func(t *testing.T, o opts) {
				if o.dataDir != "./moat-data" {
					t.Errorf("got %+v", o)
				}
			},
		},
		{
			name:  "scalar list in file and empty list",
			args:  []string{"--config", "c.yaml"},
			files: map[string]string{"c.yaml": "trusted_proxies: 10.0.0.0/8, 192.0.2.0/24\nmax_manifest_size: 1048576\n"},
			check: func(t *testing.T, o opts) {
				if len(o.proxies) != 2 || o.size != 1<<20 {
					t.Errorf("got %+v", o)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := load(t, tt.args, tt.env, tt.files)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			tt.check(t, o)
		})
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		files map[string]string
		want  []string // substrings of the error
	}{
		{
			name: "bad flag value names the flag",
			args: []string{"--shutdown-timeout", "soon"},
			want: []string{"--shutdown-timeout", "soon"},
		},
		{
			name: "bad env value names the variable and option",
			env:  map[string]string{"MOAT_SHUTDOWN_TIMEOUT": "soon"},
			want: []string{"environment variable MOAT_SHUTDOWN_TIMEOUT", "option shutdown-timeout", `"soon"`},
		},
		{
			name: "bad env enum",
			env:  map[string]string{"MOAT_LOG_LEVEL": "loud"},
			want: []string{"MOAT_LOG_LEVEL", "log-level", "must be one of debug, info, warn, error"},
		},
		{
			name: "bad env bool",
			env:  map[string]string{"MOAT_INSECURE_HTTP": "yes please"},
			want: []string{"MOAT_INSECURE_HTTP", "insecure-http"},
		},
		{
			name: "all bad env values are reported",
			env:  map[string]string{"MOAT_LOG_LEVEL": "loud", "MOAT_MAX_MANIFEST_SIZE": "huge"},
			want: []string{"MOAT_LOG_LEVEL", "MOAT_MAX_MANIFEST_SIZE"},
		},
		{
			name:  "bad file value names the file, line and option",
			args:  []string{"--config", "c.yaml"},
			files: map[string]string{"c.yaml": "data-dir: /x\nlog-level: loud\n"},
			want:  []string{"config file c.yaml line 2", "option log-level", `"loud"`},
		},
		{
			name:  "bad CIDR in file list",
			args:  []string{"--config", "c.yaml"},
			files: map[string]string{"c.yaml": "trusted-proxies:\n  - 10.0.0.0/8\n  - 10.1.2.3/8\n"},
			want:  []string{"option trusted-proxies", "host bits set", "10.0.0.0/8"},
		},
		{
			name:  "unknown keys are all named",
			args:  []string{"--config", "c.yaml"},
			files: map[string]string{"c.yaml": "datadir: /x\nlisten: 1\nzeta: 2\n"},
			want:  []string{"unknown option(s): datadir, listen, zeta"},
		},
		{
			name:  "config key inside the file",
			args:  []string{"--config", "c.yaml"},
			files: map[string]string{"c.yaml": "config: other.yaml\n"},
			want:  []string{"unknown option(s): config"},
		},
		{
			name:  "same option in both spellings",
			args:  []string{"--config", "c.yaml"},
			files: map[string]string{"c.yaml": "data-dir: /a\ndata_dir: /b\n"},
			want:  []string{"option data-dir is set twice"},
		},
		{
			name:  "duplicate key",
			args:  []string{"--config", "c.yaml"},
			files: map[string]string{"c.yaml": "data-dir: /a\ndata-dir: /b\n"},
			want:  []string{"config file c.yaml line 2", "option data-dir is set twice"},
		},
		{
			name:  "null value",
			args:  []string{"--config", "c.yaml"},
			files: map[string]string{"c.yaml": "data-dir:\n"},
			want:  []string{"option data-dir", "no value given"},
		},
		{
			name:  "mapping value",
			args:  []string{"--config", "c.yaml"},
			files: map[string]string{"c.yaml": "data-dir: {a: b}\n"},
			want:  []string{"option data-dir", "must be a value or a list"},
		},
		{
			name:  "list for a non-list option",
			args:  []string{"--config", "c.yaml"},
			files: map[string]string{"c.yaml": "data-dir: [a, b]\n"},
			want:  []string{"option data-dir", "a list is not allowed"},
		},
		{
			name:  "file is not a mapping",
			args:  []string{"--config", "c.yaml"},
			files: map[string]string{"c.yaml": "- a\n- b\n"},
			want:  []string{"config file c.yaml", "want a mapping"},
		},
		{
			name:  "file is not YAML",
			args:  []string{"--config", "c.yaml"},
			files: map[string]string{"c.yaml": "data-dir: [unclosed\n"},
			want:  []string{"config file c.yaml"},
		},
		{
			name: "missing file",
			args: []string{"--config", "nope.yaml"},
			want: []string{"reading config file", "nope.yaml"},
		},
		{
			name: "missing file named by the environment",
			env:  map[string]string{"MOAT_CONFIG": "nope.yaml"},
			want: []string{"reading config file", "nope.yaml"},
		},
		{
			name:  "file errors are reported even when a flag overrides the option",
			args:  []string{"--config", "c.yaml", "--data-dir", "/x"},
			files: map[string]string{"c.yaml": "data-dirr: /y\n"},
			want:  []string{"unknown option(s): data-dirr"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.args, tt.env, tt.files)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestMissingFileIsNotExist(t *testing.T) {
	_, err := load(t, []string{"--config", "nope.yaml"}, nil, nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist in the chain", err)
	}
}

func TestFileValueIsNotAppliedWhenFlagGiven(t *testing.T) {
	o, err := load(t, []string{"--config", "c.yaml", "--trusted-proxies", "10.0.0.0/8"}, nil,
		map[string]string{"c.yaml": "trusted-proxies: [192.0.2.0/24]\n"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}; !reflect.DeepEqual(o.proxies, want) {
		t.Fatalf("proxies = %v, want %v", o.proxies, want)
	}
}

func TestEnvName(t *testing.T) {
	for flag, want := range map[string]string{
		"data-dir":          "MOAT_DATA_DIR",
		"listen":            "MOAT_LISTEN",
		"max-manifest-size": "MOAT_MAX_MANIFEST_SIZE",
	} {
		if got := EnvName("MOAT_", flag); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", flag, got, want)
		}
	}
}
