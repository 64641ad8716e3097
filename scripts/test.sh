#!/usr/bin/env bash
# The one test command: installs what the tests need (skopeo, PostgreSQL,
# npm from Debian's packages when missing; golangci-lint)
# and runs every check CI runs: gofmt, go vet, golangci-lint, the unit and
# end-to-end tests (race detector on the concurrent packages) and a short fuzz
# pass over every fuzz target. Non-interactive; works from any directory.
#
# Environment:
#   MOAT_FUZZ_TIME    seconds per fuzz target (default 5; 0 skips fuzzing)
#   MOAT_FUZZ_BUDGET  upper bound in seconds for all fuzz targets together
#                     (default 200; the per-target time shrinks to fit, to 4 s at least)
#   MOAT_TOOLS_DIR    where pinned tools are installed (default ~/.cache/moat-tools)
#   MOAT_E2E_RACE     1 (default) builds the end-to-end tests' server with -race
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

golangci_version="v2.15.0"
fuzz_time="${MOAT_FUZZ_TIME:-5}"
fuzz_budget="${MOAT_FUZZ_BUDGET:-200}"
tools_dir="${MOAT_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/moat-tools}"

# Packages whose code runs concurrently (and everything below them) get the
# race detector.
race_dirs=(internal/storage internal/dataplane internal/server internal/identity internal/replica internal/arm)

start_time=$(date +%s)
log_dir="$(mktemp -d "${TMPDIR:-/tmp}/moat-test.XXXXXX")"
trap 'rm -rf "$log_dir"' EXIT

passed=0
failed=0
skipped=0
failed_steps=()

step() { printf '\n==> [%ss] %s\n' "$(($(date +%s) - start_time))" "$*"; }
die() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------

# install_system_tools installs, from Debian's packages, what the tests run
# and the machine lacks: skopeo (end-to-end tests), PostgreSQL's server
# binaries (initdb, pg_ctl: the postgres store's tests start a throw-away
# cluster) and npm (the Azure blob store's tests install Azurite with it).
install_system_tools() {
	local pg_bin=""
	# Debian keeps the server binaries off PATH.
	if ! command -v initdb >/dev/null 2>&1; then
		pg_bin=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n1)
		if [[ -n "$pg_bin" && -x "$pg_bin/initdb" ]]; then
			export PATH="$pg_bin:$PATH"
		fi
	fi
	local missing=()
	command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
	command -v initdb >/dev/null 2>&1 || missing+=(postgresql)
	command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
	if ((${#missing[@]} == 0)); then
		return
	fi
	if [[ "$(id -u)" != "0" ]]; then
		die "missing Debian packages: ${missing[*]}; install them (apt-get install ${missing[*]}) and run again"
	fi
	step "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q </dev/null
	apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
	if ! command -v initdb >/dev/null 2>&1; then
		pg_bin=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n1)
		export PATH="${pg_bin:-/nonexistent}:$PATH"
	fi
	for tool in skopeo initdb pg_ctl npm; do
		command -v "$tool" >/dev/null 2>&1 || die "$tool still missing after apt-get install"
	done
}

install_golangci_lint() {
	local bin_dir="$tools_dir/golangci-lint-$golangci_version"
	golangci_lint="$bin_dir/golangci-lint"
	if [[ -x "$golangci_lint" ]] && "$golangci_lint" version 2>/dev/null | grep -q "version ${golangci_version#v} "; then
		return
	fi
	step "installing golangci-lint $golangci_version into $bin_dir"
	mkdir -p "$bin_dir"
	GOBIN="$bin_dir" go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$golangci_version" </dev/null
	"$golangci_lint" version | grep -q "version ${golangci_version#v} " || die "golangci-lint $golangci_version did not install"
}

# --- go test output ------------------------------------------------------------

# count_results adds the test results of a `go test -v` log to the totals.
count_results() {
	local log="$1" n
	n=$(grep -cE '^\s*--- PASS: ' "$log" || true)
	passed=$((passed + n))
	n=$(grep -cE '^\s*--- FAIL: ' "$log" || true)
	failed=$((failed + n))
	n=$(grep -cE '^\s*--- SKIP: ' "$log" || true)
	skipped=$((skipped + n))
	# Name every skipped test, with its reason (the line after), in the summary.
	grep -A1 -E '^\s*--- SKIP: ' "$log" >>"$log_dir/skipped.txt" || true
}

# show_progress keeps the live output of `go test -v` short: package results,
# failures and panics.
show_progress() {
	grep --line-buffered -E '^(ok|FAIL|---  ?FAIL|\?|panic:)|^\s*--- FAIL: |^# |\[build failed\]|^\S+\.go:[0-9]+' || true
}

# run_go_test runs go test -v with the given arguments, counts the results and,
# on failure, prints the full log (without the noise of passing tests).
run_go_test() {
	local name="$1"
	shift
	local log="$log_dir/$name.log"
	local rc
	set +e
	go test -v "$@" </dev/null 2>&1 | tee "$log" | show_progress
	rc=${PIPESTATUS[0]}
	set -e
	count_results "$log"
	if [[ "$rc" != "0" ]]; then
		# A build failure or panic leaves no --- FAIL line; count it once.
		if ! grep -qE '^\s*--- FAIL: ' "$log"; then
			failed=$((failed + 1))
		fi
		failed_steps+=("$name")
		printf '\n---- full log of %s (passing-test lines omitted) ----\n' "$name"
		grep -vE '^(=== (RUN|PAUSE|CONT|NAME)|\s*--- (PASS|SKIP): )' "$log" || true
		printf -- '---- end of %s ----\n' "$name"
	fi
}

# --- steps -------------------------------------------------------------------

step "environment: $(go version), $(nproc) cores, CI=${CI:-}"
install_system_tools
install_golangci_lint
printf 'skopeo: %s\npostgres: %s\nnpm: %s\ngolangci-lint: %s\n' "$(skopeo --version)" "$(initdb --version)" "$(npm --version)" "$("$golangci_lint" version | head -n1)"

step "gofmt"
go_files=()
while IFS= read -r f; do
	if [[ -f "$f" ]]; then
		go_files+=("$f")
	fi
done < <(git ls-files --cached --others --exclude-standard -- '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*')
unformatted=""
if ((${#go_files[@]} > 0)); then
	unformatted=$(gofmt -l "${go_files[@]}" </dev/null)
fi
if [[ -n "$unformatted" ]]; then
	printf 'files need gofmt:\n%s\n' "$unformatted"
	failed_steps+=("gofmt")
	failed=$((failed + 1))
else
	echo "all files formatted"
fi

step "go vet"
if ! go vet ./... </dev/null; then
	failed_steps+=("go vet")
	failed=$((failed + 1))
fi

step "golangci-lint"
if ! "$golangci_lint" run ./... </dev/null; then
	failed_steps+=("golangci-lint")
	failed=$((failed + 1))
fi

module_path=$(go list -m)
mapfile -t all_pkgs < <(go list ./...)
race_pkgs=()
other_pkgs=()
for p in "${all_pkgs[@]}"; do
	is_race=false
	for d in "${race_dirs[@]}"; do
		if [[ "$p" == "$module_path/$d" || "$p" == "$module_path/$d/"* ]]; then
			is_race=true
			break
		fi
	done
	if [[ "$is_race" == true ]]; then
		race_pkgs+=("$p")
	else
		other_pkgs+=("$p")
	fi
done

if ((${#race_pkgs[@]} > 0)); then
	step "go test -race (${#race_pkgs[@]} concurrent packages)"
	run_go_test race -race -count=1 -timeout=10m "${race_pkgs[@]}"
fi
if ((${#other_pkgs[@]} > 0)); then
	step "go test (${#other_pkgs[@]} packages; the end-to-end server built with -race)"
	# test/e2e builds the moat binary it runs; with the race detector in it,
	# a race under real clients fails the run (the server exits non-zero).
	MOAT_E2E_RACE="${MOAT_E2E_RACE:-1}" run_go_test unit -count=1 -timeout=10m "${other_pkgs[@]}"
fi
# test/sdkbeta is a module of its own (the preview armcontainerregistry
# cannot be required next to v1.2.0 in one module); it runs from its directory.
step "go test test/sdkbeta (armcontainerregistry v1.3.0-beta.3 against moat serve)"
pushd test/sdkbeta >/dev/null
run_go_test sdkbeta -count=1 -timeout=5m ./...
popd >/dev/null

# Fuzz pass: every Fuzz target for a few seconds, the whole pass bounded by
# the budget. The seed corpora already ran as plain tests above.
if [[ "$fuzz_time" != "0" ]]; then
	targets=()
	for p in "${all_pkgs[@]}"; do
		dir=$(go list -f '{{.Dir}}' "$p")
		# Cheap pre-filter: only packages with a func Fuzz in a test file.
		if ! grep -qsE '^func Fuzz[A-Za-z0-9_]*\(' "$dir"/*_test.go; then
			continue
		fi
		while read -r name; do
			if [[ "$name" == Fuzz* ]]; then
				targets+=("$p $name")
			fi
		done < <(go test -list '^Fuzz' "$p" </dev/null 2>/dev/null || true)
	done
	if ((${#targets[@]} > 0)); then
		per=$fuzz_time
		if ((per * ${#targets[@]} > fuzz_budget)); then
			per=$((fuzz_budget / ${#targets[@]}))
			# Below 4 s the engine spends most of the time on its baseline.
			if ((per < 4)); then
				per=4
			fi
		fi
		step "fuzz: ${#targets[@]} targets, ${per}s each"
		for t in "${targets[@]}"; do
			read -r p name <<<"$t"
			log="$log_dir/fuzz-${name}.log"
			printf '%-60s ' "$p $name"
			ok=0
			if go test -run '^$' -fuzz "^${name}\$" -fuzztime "${per}s" "$p" </dev/null >"$log" 2>&1; then
				ok=1
			elif grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; then
				# Go 1.26's fuzzing coordinator can report its own -fuzztime
				# deadline as a failure (golang/go#75804, fixed in Go 1.27):
				# no input failed and none was written. Run it again with a
				# count instead of a duration, which sets no deadline to race;
				# the count is what the first run reached (at least 1,000 per
				# second of its time), so it takes about as long. A real
				# failure still writes its input and fails.
				n=$(grep -oE 'execs: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+' || true)
				if [[ -z "$n" ]] || ((n < per * 1000)); then
					n=$((per * 1000))
				fi
				printf '(engine deadline, again for %sx) ' "$n"
				if go test -run '^$' -fuzz "^${name}\$" -fuzztime "${n}x" -timeout 5m "$p" </dev/null >"$log" 2>&1; then
					ok=1
				fi
			fi
			if ((ok)); then
				passed=$((passed + 1))
				echo ok
			else
				failed=$((failed + 1))
				failed_steps+=("fuzz $name")
				echo FAIL
				# go test names the failing input it wrote under testdata/fuzz;
				# committing that file turns it into a regression test.
				cat "$log"
			fi
		done
	else
		step "fuzz: no fuzz targets found"
	fi
fi

elapsed=$(($(date +%s) - start_time))
step "summary (${elapsed}s)"
if ((${#failed_steps[@]} > 0)); then
	printf 'failed: %s\n' "${failed_steps[*]}"
fi
if ((skipped > 0)); then
	echo "skipped tests:"
	grep -vE '^--$' "$log_dir/skipped.txt" || true
fi
echo "summary: ${passed} passed, ${failed} failed, ${skipped} skipped"
if ((${#failed_steps[@]} > 0)); then
	exit 1
fi
