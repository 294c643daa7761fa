#!/usr/bin/env bash
# Builds tools/tailscale-conformance — a run of Tailscale's own Go client
# (tailscale.com/client/tailscale/v2, pinned in its go.mod/go.sum, fetched through the Go module
# proxy) against our Tailscale API stand-in — into .cache/bin/tailscale-conformance, for
# tests/standin_apis/test_conformance.py. Same cache layout and rules as the other build
# scripts (tools/lib.sh: GOTOOLCHAIN=local, CGO off, Go caches shared per machine, binaries under
# .cache), with its own lock.
#
# Idempotent: exits at once when .cache/bin/tailscale-conformance.stamp matches the module's
# sources, this script, Go and the platform.
# Environment: CORAL_CACHE_DIR overrides the cache directory (default: <repo>/.cache).
set -euo pipefail

tool=build-conformance
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

parse_build_args "$@"
module_dir="$repo_root/tools/tailscale-conformance"
stamp_file="$bin_dir/tailscale-conformance.stamp"
outputs=(tailscale-conformance)

require_go "(1.24 or later)"
inputs_sum="$(cat "${BASH_SOURCE[0]}" "$module_dir/go.mod" "$module_dir/go.sum" "$module_dir"/*.go |
    sha256sum | cut -c1-16)"
expected_stamp="inputs=$inputs_sum go=$go_version platform=$go_platform cgo=0"

exit_if_up_to_date conformance.lock ""
start_go_build
started=$SECONDS
client="$(grep -o 'tailscale.com/client/tailscale/v2 v[^ ]*' "$module_dir/go.mod")"
# -mod=readonly: go.sum is the pin; a build that would change it fails instead.
(cd "$module_dir" &&
    go_build_with_progress "tailscale-conformance ($client)" -mod=readonly -buildvcs=false \
        -ldflags "-s -w" -o "$bin_dir/tailscale-conformance" -- .) || exit 1

check_outputs "go build"
printf '%s\n' "$expected_stamp" >"$stamp_file"
echo "build-conformance: built in $(format_elapsed $((SECONDS - started))) into $bin_dir" >&2
