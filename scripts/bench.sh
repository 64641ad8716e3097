#!/usr/bin/env bash
# Benchmarks moat on this machine and writes its sections of BENCHMARKS.md
# at the repository root (each mode replaces only its own sections and keeps
# the others').
#
#   ./scripts/bench.sh             moat against CNCF Distribution: builds moat
#                                  and the driver (hack/bench), installs
#                                  Distribution's `registry` (cached in
#                                  .bench/bin), starts both on loopback with
#                                  their storage in one temporary directory (so
#                                  on the same disk). A few minutes, about 6 GB
#                                  of temporary disk.
#   ./scripts/bench.sh --scaleout  moat embedded (SQLite + directory) against
#                                  one replica on PostgreSQL + Azurite and two
#                                  replicas on the same database and container
#                                  (issue 8). Starts a throw-away PostgreSQL
#                                  cluster (initdb/pg_ctl) and Azurite (npm
#                                  azurite@3.37.0, cached) on loopback ports.
#   ./scripts/bench.sh --firewall  one moat with its registry's firewall off
#                                  and on (200 IP rules), configured through
#                                  the management API, and the network
#                                  decision's Go benchmark (issue 5).
#   --quick                        with any mode: small sizes, short runs, to
#                                  check the harness; writes
#                                  .bench/BENCHMARKS.quick.md instead.
#
# Everything listens on loopback; servers are stopped and temporary
# directories removed on exit, also on failure or ^C (server logs are then
# copied to .bench/).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo_root="$(pwd)"

dist_version="v3.1.2"
bin_dir="$repo_root/.bench/bin"
out="$repo_root/BENCHMARKS.md"
quick_flag=()
mode=compare
azurite_version="3.37.0"

usage() {
	echo "usage: $0 [--scaleout | --firewall] [--quick]" >&2
	exit 2
}
for arg in "$@"; do
	case "$arg" in
	--quick)
		quick_flag=(-quick)
		out="$repo_root/.bench/BENCHMARKS.quick.md"
		;;
	--scaleout | --firewall)
		[[ "$mode" == compare ]] || usage
		mode="${arg#--}"
		;;
	*) usage ;;
	esac
done
command_line="./scripts/bench.sh${*:+ $*}"

# moat reads every option from MOAT_* too: none from the caller's
# environment may change what is measured.
for var in $(compgen -e | grep '^MOAT_' || true); do
	unset "$var"
done

mkdir -p "$bin_dir"
echo "==> building moat and the benchmark driver"
go build -o "$bin_dir/moat" ./cmd/moat
go build -o "$bin_dir/bench" ./hack/bench

moat_version="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
# BENCHMARKS.md itself does not count: the previous run rewrote it.
if [[ -n "$(git status --porcelain -- . ':!BENCHMARKS.md' 2>/dev/null)" ]]; then
	moat_version="$moat_version (with uncommitted changes)"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/moat-bench.XXXXXX")"
pids=()
pg_dir=""  # the PostgreSQL cluster's directory, once made
pg_data="" # its data directory, once the server started
pg_user="" # whom the cluster runs as when we are root
cleanup() {
	local rc=$?
	# A second ^C must not cut the cleanup short and leave servers behind.
	trap '' INT TERM
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [[ -n "$pg_data" ]] && ! as_pg pg_ctl stop -D "$pg_data" -m immediate -w >/dev/null 2>&1; then
		echo "bench.sh: could not stop PostgreSQL in $pg_data" >&2
	fi
	if [[ "$rc" != "0" ]]; then
		mkdir -p "$repo_root/.bench"
		cp "$work"/*.log "$repo_root/.bench/" 2>/dev/null || true
		if [[ -n "$pg_dir" ]]; then
			cp "$pg_dir/server.log" "$repo_root/.bench/postgres.log" 2>/dev/null || true
		fi
		echo "bench.sh: failed; server logs copied to .bench/" >&2
	fi
	rm -rf "$work"
	if [[ -n "$pg_dir" ]]; then
		rm -rf "$pg_dir"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
	echo "bench.sh: $*" >&2
	exit 1
}

# free_port prints a TCP port on 127.0.0.1 that nothing listens on and that
# this run has not handed out yet. It runs in a subshell ($(free_port)), so
# the ports handed out are remembered in a file.
free_port() {
	local port
	for _ in $(seq 1 50); do
		port=$((20000 + RANDOM % 40000))
		if ! grep -qx "$port" "$work/ports" 2>/dev/null && ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port" >>"$work/ports"
			echo "$port"
			return
		fi
	done
	die "no free port found"
}

# wait_port PORT NAME PID LOG waits until something accepts connections on
# 127.0.0.1:PORT, failing with LOG's end if process PID exits first.
wait_port() {
	for _ in $(seq 1 600); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
			return
		fi
		kill -0 "$3" 2>/dev/null || die "$2 exited at start: $(tail -n 20 "$4" 2>/dev/null)"
		sleep 0.1
	done
	die "$2 does not listen on 127.0.0.1:$1 after 60s: $(tail -n 20 "$4" 2>/dev/null)"
}

password="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"

# start_moat NAME PORT [ARGS…] starts moat on 127.0.0.1:PORT with its data
# dir in the work directory and its log in NAME.log, and waits until it
# listens. Extra environment comes from the caller.
start_moat() {
	local name="$1" port="$2"
	shift 2
	mkdir -m 700 "$work/$name"
	MOAT_ADMIN_PASSWORD="$password" "$bin_dir/moat" serve \
		--data-dir "$work/$name" --listen "127.0.0.1:$port" --insecure-http --log-level warn --shutdown-timeout 5s "$@" \
		>"$work/$name.log" 2>&1 &
	pids+=($!)
	wait_port "$port" "moat ($name)" "$!" "$work/$name.log"
}

# as_pg runs a PostgreSQL tool: as pg_user when set (initdb refuses to run
# as root), like internal/testsupport/pgtest.
as_pg() {
	if [[ -n "$pg_user" ]]; then
		setpriv --reuid="$pg_user" --regid="$(id -g "$pg_user")" --clear-groups -- env LC_ALL=C.UTF-8 TZ=UTC "$@"
	else
		env LC_ALL=C.UTF-8 TZ=UTC "$@"
	fi
}

# start_postgres PORT starts a throw-away cluster on 127.0.0.1:PORT with its
# unix socket in its own directory.
start_postgres() {
	local port="$1" u
	if ! command -v initdb >/dev/null || ! command -v pg_ctl >/dev/null; then
		die "--scaleout needs PostgreSQL's initdb and pg_ctl on PATH"
	fi
	if [[ "$(id -u)" == 0 ]]; then
		for u in postgres nobody; do
			if id -u "$u" >/dev/null 2>&1 && [[ "$(id -u "$u")" != 0 ]]; then
				pg_user="$u"
				break
			fi
		done
		[[ -n "$pg_user" ]] || die "running as root and no unprivileged user (postgres, nobody) to run initdb as"
		command -v setpriv >/dev/null || die "running as root and setpriv is missing: cannot run initdb as $pg_user"
	fi
	# Not inside $work (mode 0700, root's): the cluster's user must own its
	# directory.
	pg_dir="$(mktemp -d "${TMPDIR:-/tmp}/moat-bench-pg.XXXXXX")"
	if [[ -n "$pg_user" ]]; then
		chown "$pg_user:$(id -g "$pg_user")" "$pg_dir"
	fi
	as_pg initdb -D "$pg_dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
		>"$work/initdb.log" 2>&1 || die "initdb failed: $(tail -n 20 "$work/initdb.log")"
	# Default durability (fsync, synchronous_commit on): a deployment's
	# settings, not a test's.
	pg_data="$pg_dir/data"
	as_pg pg_ctl start -D "$pg_data" -w -t 60 -l "$pg_dir/server.log" \
		-o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$pg_dir -c max_connections=200" \
		>"$work/pg_ctl.log" 2>&1 ||
		die "pg_ctl start failed: $(cat "$work/pg_ctl.log" "$pg_dir/server.log" 2>/dev/null | tail -n 20)"
}

# azurite_bin prints the path of azurite-blob: the tests' cached install
# (internal/testsupport/azuritetest), else one in .bench, installed with npm
# when missing.
azurite_bin() {
	local cached="${XDG_CACHE_HOME:-$HOME/.cache}/moat-tools/azurite-$azurite_version/node_modules/.bin/azurite-blob"
	local local_dir="$repo_root/.bench/azurite-$azurite_version"
	if [[ -x "$cached" ]]; then
		echo "$cached"
		return
	fi
	if [[ ! -x "$local_dir/node_modules/.bin/azurite-blob" ]]; then
		command -v npm >/dev/null || die "--scaleout needs Azurite: npm not found and no azurite in $cached"
		echo "==> installing azurite@$azurite_version into ${local_dir#"$repo_root"/}" >&2
		npm install --prefix "$local_dir" --no-audit --no-fund --loglevel=error "azurite@$azurite_version" >&2 ||
			die "npm install azurite@$azurite_version failed"
	fi
	echo "$local_dir/node_modules/.bin/azurite-blob"
}

run_compare() {
	if [[ -x "$bin_dir/registry" ]] && "$bin_dir/registry" --version 2>/dev/null | grep -q "$dist_version"; then
		echo "==> Distribution $dist_version: cached in $bin_dir"
	else
		echo "==> installing Distribution $dist_version into $bin_dir"
		GOBIN="$bin_dir" go install "github.com/distribution/distribution/v3/cmd/registry@$dist_version"
	fi

	local moat_port dist_port
	moat_port="$(free_port)"
	dist_port="$(free_port)"

	mkdir -p "$work/distribution" "$work/bound"
	cat >"$work/distribution.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/distribution
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$dist_port
  secret: $(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
EOF

	echo "==> starting moat on 127.0.0.1:$moat_port and Distribution on 127.0.0.1:$dist_port (data in $work)"
	start_moat moat "$moat_port"
	"$bin_dir/registry" serve "$work/distribution.yml" >"$work/distribution.log" 2>&1 &
	pids+=($!)

	echo "==> running the benchmark"
	BENCH_MOAT_PASSWORD="$password" "$bin_dir/bench" \
		-moat "http://127.0.0.1:$moat_port" \
		-distribution "http://127.0.0.1:$dist_port" \
		-disk "$work/bound" \
		-moat-data "$work/moat" \
		-distribution-data "$work/distribution" \
		-out "$out" \
		-command "$command_line" \
		-moat-version "commit $moat_version" \
		-distribution-version "$dist_version" \
		"${quick_flag[@]}" </dev/null
}

run_scaleout() {
	local pg_port az_port embedded_port r1_port r2_port az pg_version
	pg_port="$(free_port)"
	az_port="$(free_port)"
	embedded_port="$(free_port)"
	r1_port="$(free_port)"
	r2_port="$(free_port)"

	echo "==> starting PostgreSQL on 127.0.0.1:$pg_port"
	start_postgres "$pg_port"
	pg_version="$(as_pg postgres --version 2>/dev/null | sed 's/^postgres (PostgreSQL) /PostgreSQL /')" || pg_version=""

	az="$(azurite_bin)"
	echo "==> starting Azurite $azurite_version on 127.0.0.1:$az_port"
	# TMPDIR: Azurite's telemetry leaves a directory there.
	mkdir -p "$work/azurite" "$work/azurite-tmp"
	TMPDIR="$work/azurite-tmp" "$az" --blobHost 127.0.0.1 --blobPort "$az_port" --location "$work/azurite" \
		--silent --skipApiVersionCheck --loose >"$work/azurite.log" 2>&1 &
	pids+=($!)
	wait_port "$az_port" Azurite "$!" "$work/azurite.log"

	local dsn="postgres://postgres@127.0.0.1:$pg_port/postgres?sslmode=disable"
	local blob_store="azblob://devstoreaccount1/bench?endpoint=http://127.0.0.1:$az_port/devstoreaccount1"
	# Azurite's well-known development key: public, and good for nothing
	# but a local emulator.
	local az_key="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

	echo "==> starting moat: embedded on 127.0.0.1:$embedded_port, replicas on 127.0.0.1:$r1_port and 127.0.0.1:$r2_port"
	start_moat embedded "$embedded_port"
	# One replica after the other: the first applies the migrations.
	MOAT_AZBLOB_ACCOUNT_KEY="$az_key" start_moat replica1 "$r1_port" --database "$dsn" --blob-store "$blob_store"
	MOAT_AZBLOB_ACCOUNT_KEY="$az_key" start_moat replica2 "$r2_port" --database "$dsn" --blob-store "$blob_store"

	echo "==> running the scale-out benchmark"
	BENCH_MOAT_PASSWORD="$password" "$bin_dir/bench" -mode scaleout \
		-embedded "http://127.0.0.1:$embedded_port" \
		-replicas "http://127.0.0.1:$r1_port,http://127.0.0.1:$r2_port" \
		-postgres-version "$pg_version" \
		-azurite-version "$azurite_version" \
		-out "$out" \
		-command "$command_line" \
		-moat-version "commit $moat_version" \
		"${quick_flag[@]}" </dev/null
}

run_firewall() {
	# Decide only: BenchmarkCompile10000 measures building a policy, once
	# per configuration change, not per request.
	local benchtime=2s
	if [[ ${#quick_flag[@]} != 0 ]]; then
		benchtime=100000x
	fi
	local go_bench="go test -run '^\$' -bench '^BenchmarkDecide\$' -benchtime $benchtime ./internal/netrule"
	echo "==> $go_bench"
	go test -run '^$' -bench '^BenchmarkDecide$' -benchtime "$benchtime" ./internal/netrule | tee "$work/netrule-bench.txt"

	local moat_port
	moat_port="$(free_port)"
	echo "==> starting moat on 127.0.0.1:$moat_port"
	start_moat moat "$moat_port"

	echo "==> running the firewall benchmark"
	BENCH_MOAT_PASSWORD="$password" "$bin_dir/bench" -mode firewall \
		-moat "http://127.0.0.1:$moat_port" \
		-netrule-bench "$work/netrule-bench.txt" \
		-netrule-bench-command "$go_bench" \
		-out "$out" \
		-command "$command_line" \
		-moat-version "commit $moat_version" \
		"${quick_flag[@]}" </dev/null
}

"run_$mode"
echo "==> wrote ${out#"$repo_root"/}"
