#!/usr/bin/env bash
# Benchmarks moat against CNCF Distribution on this machine and writes
# BENCHMARKS.md at the repository root.
#
# Builds moat and the driver (hack/bench), installs Distribution's `registry`
# (cached in .bench/bin), starts both registries on loopback with their
# storage in one temporary directory (so on the same disk), runs the driver,
# and stops both on exit. Takes a few minutes and about 6 GB of temporary
# disk space, freed at the end.
#
#   ./scripts/bench.sh           the benchmark; writes BENCHMARKS.md
#   ./scripts/bench.sh --quick   small sizes, short runs: checks the harness;
#                                writes .bench/BENCHMARKS.quick.md
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo_root="$(pwd)"

dist_version="v3.1.2"
bin_dir="$repo_root/.bench/bin"
out="$repo_root/BENCHMARKS.md"
quick_flag=()
command_line="./scripts/bench.sh"

for arg in "$@"; do
	case "$arg" in
	--quick)
		quick_flag=(-quick)
		out="$repo_root/.bench/BENCHMARKS.quick.md"
		command_line="./scripts/bench.sh --quick"
		;;
	*)
		echo "usage: $0 [--quick]" >&2
		exit 2
		;;
	esac
done

mkdir -p "$bin_dir"
echo "==> building moat and the benchmark driver"
go build -o "$bin_dir/moat" ./cmd/moat
go build -o "$bin_dir/bench" ./hack/bench

if [[ -x "$bin_dir/registry" ]] && "$bin_dir/registry" --version 2>/dev/null | grep -q "$dist_version"; then
	echo "==> Distribution $dist_version: cached in $bin_dir"
else
	echo "==> installing Distribution $dist_version into $bin_dir"
	GOBIN="$bin_dir" go install "github.com/distribution/distribution/v3/cmd/registry@$dist_version"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/moat-bench.XXXXXX")"
pids=()
cleanup() {
	local rc=$?
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [[ "$rc" != "0" ]]; then
		mkdir -p "$repo_root/.bench"
		cp "$work"/*.log "$repo_root/.bench/" 2>/dev/null || true
		echo "bench.sh: failed; server logs copied to .bench/" >&2
	fi
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port prints a TCP port on 127.0.0.1 that nothing listens on.
free_port() {
	local port
	for _ in $(seq 1 50); do
		port=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return
		fi
	done
	echo "bench.sh: no free port found" >&2
	exit 1
}

moat_port="$(free_port)"
dist_port="$(free_port)"
while [[ "$dist_port" == "$moat_port" ]]; do dist_port="$(free_port)"; done
password="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"

mkdir -p "$work/moat" "$work/distribution" "$work/bound"
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
MOAT_ADMIN_PASSWORD="$password" "$bin_dir/moat" serve \
	--data-dir "$work/moat" --listen "127.0.0.1:$moat_port" --insecure-http --log-level warn \
	>"$work/moat.log" 2>&1 &
pids+=($!)
"$bin_dir/registry" serve "$work/distribution.yml" >"$work/distribution.log" 2>&1 &
pids+=($!)

moat_version="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git status --porcelain 2>/dev/null)" ]]; then
	moat_version="$moat_version (with uncommitted changes)"
fi

echo "==> running the benchmark"
BENCH_MOAT_PASSWORD="$password" "$bin_dir/bench" \
	-moat "http://127.0.0.1:$moat_port" \
	-distribution "http://127.0.0.1:$dist_port" \
	-disk "$work/bound" \
	-out "$out" \
	-command "$command_line" \
	-moat-version "commit $moat_version" \
	-distribution-version "$dist_version" \
	"${quick_flag[@]}" </dev/null

echo "==> wrote ${out#"$repo_root"/}"
