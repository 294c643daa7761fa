#!/usr/bin/env bash
# Builds the real daemons the integration tests and benchmarks drive (tailscale, tailscaled,
# containerboot, headscale) from the Go module proxy, at the versions pinned in
# tools/versions.env, into .cache/bin. Release downloads are not reachable, so source builds
# are the only way to get them; Go's module and build caches are shared by the checkouts of
# this machine (tools/lib.sh), so only the first checkout compiles.
#
# Idempotent: when .cache/bin/versions.stamp matches the pins, the Go toolchain and the
# platform, it exits at once without touching Go. Concurrent callers are serialised by a lock.
#
# Environment: CORAL_CACHE_DIR overrides the cache directory (default: <repo>/.cache).
set -euo pipefail

tool=build-binaries
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tools/versions.env disable=SC1091
source "$repo_root/tools/versions.env"

stamp_file="$bin_dir/versions.stamp"
outputs=(tailscale tailscaled containerboot headscale)

require_go ">= $GO_MIN_VERSION"
lowest="$(printf '%s\n%s\n' "$GO_MIN_VERSION" "${go_version#go}" | sort -V | head -n1)"
[[ "$lowest" == "$GO_MIN_VERSION" ]] ||
    die "Go ${go_version#go} is too old: headscale $HEADSCALE_VERSION and tailscale $TAILSCALE_VERSION need Go >= $GO_MIN_VERSION"

expected_stamp="headscale=$HEADSCALE_VERSION tailscale=$TAILSCALE_VERSION go=$go_version platform=$go_platform cgo=0"

exit_if_up_to_date build.lock "up to date ($expected_stamp)"
start_go_build
export GOBIN="$bin_dir"

started=$SECONDS
ts_version="${TAILSCALE_VERSION#v}"
# `go install mod@version` embeds no VCS data, so without the stamps tailscale would call
# itself "x.y.z-ERR-BuildInfo" to the control server.
echo "build-binaries: tailscale $TAILSCALE_VERSION (tailscale, tailscaled, containerboot)"
go install \
    -ldflags "-s -w -X tailscale.com/version.longStamp=$ts_version -X tailscale.com/version.shortStamp=$ts_version" \
    "tailscale.com/cmd/tailscale@$TAILSCALE_VERSION" \
    "tailscale.com/cmd/tailscaled@$TAILSCALE_VERSION" \
    "tailscale.com/cmd/containerboot@$TAILSCALE_VERSION"

# Not `go install headscale@version`: that also asks the proxy for the module's version list
# (to look for a deprecation notice), which the proxy we have answers with 403 for headscale.
# Building inside the downloaded module is the same build: its own go.mod/go.sum rule.
echo "build-binaries: headscale $HEADSCALE_VERSION"
headscale_module="github.com/juanfont/headscale@$HEADSCALE_VERSION"
go mod download "$headscale_module"
(cd "$GOMODCACHE/$headscale_module" &&
    go build -buildvcs=false -ldflags "-s -w" -o "$bin_dir/headscale" ./cmd/headscale)

check_outputs "go install"
printf '%s\n' "$expected_stamp" >"$stamp_file"
echo "build-binaries: built in $((SECONDS - started))s into $bin_dir"
