#!/usr/bin/env bash
# Builds the real daemons the sandbox, the integration tests and the benchmarks drive
# (tailscale, tailscaled, containerboot, headscale) from the Go module proxy, at the versions
# pinned in tools/versions.env, into .cache/bin. Release downloads are not reachable, so source
# builds are the only way to get them; Go's module and build caches are shared by the checkouts
# of this machine (tools/lib.sh), so only the first checkout compiles.
#
# Usage: build-binaries.sh [--check] [NAME...]   NAME: tailscale tailscaled containerboot
# headscale (default: all four). Only the names asked for are built: `make demo` needs no
# containerboot (only the benchmark and the integration tests compare against it), which saves
# about 160 of the ~950 packages of the tailscale build.
#
# Idempotent: a binary whose stamp (.cache/bin/<name>.stamp) matches the pins, the Go toolchain
# and the platform is not rebuilt; when all asked for are current it exits at once without
# touching Go. The tailscale binaries and headscale have separate locks, so tools/build.sh can
# build them side by side.
#
# Environment: CORAL_CACHE_DIR overrides the cache directory (default: <repo>/.cache).
set -euo pipefail

tool=build-binaries
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tools/versions.env disable=SC1091
source "$repo_root/tools/versions.env"

parse_build_args "$@"
tailscale_names=(tailscale tailscaled containerboot)
if ((${#requested[@]} == 0)); then requested=("${tailscale_names[@]}" headscale); fi

require_go ">= $GO_MIN_VERSION"
lowest="$(printf '%s\n%s\n' "$GO_MIN_VERSION" "${go_version#go}" | sort -V | head -n1)"
[[ "$lowest" == "$GO_MIN_VERSION" ]] ||
    die "Go ${go_version#go} is too old: headscale $HEADSCALE_VERSION and tailscale $TAILSCALE_VERSION need Go >= $GO_MIN_VERSION"

stamp_of() {
    case "$1" in
        tailscale | tailscaled | containerboot) printf 'tailscale=%s' "$TAILSCALE_VERSION" ;;
        headscale) printf 'headscale=%s' "$HEADSCALE_VERSION" ;;
        *) die "unknown binary '$1' (one of: ${tailscale_names[*]} headscale)" ;;
    esac
    printf ' go=%s platform=%s cgo=0' "$go_version" "$go_platform"
}

# Sets `missing` to the asked-for names whose binary or stamp is not current.
find_missing() {
    local name
    missing=()
    for name in "${requested[@]}"; do
        stamp_file="$bin_dir/$name.stamp"
        expected_stamp="$(stamp_of "$name")"
        outputs=("$name")
        up_to_date || missing+=("$name")
    done
}

find_missing
if ((${#missing[@]} == 0)); then
    [[ $check_only == true ]] || echo "build-binaries: up to date (${requested[*]})"
    exit 0
fi
[[ $check_only == false ]] || exit 1

# One lock per module: a tailscale build and a headscale build may run at the same time.
split_missing() {
    local name
    want_tailscale=()
    want_headscale=false
    for name in "${missing[@]}"; do
        if [[ $name == headscale ]]; then want_headscale=true; else want_tailscale+=("$name"); fi
    done
}
split_missing
if ((${#want_tailscale[@]} > 0)); then take_lock tailscale.lock; fi
if [[ $want_headscale == true ]]; then take_lock headscale.lock; fi
# Another caller may have built some of them while this one waited.
find_missing
((${#missing[@]} > 0)) || exit 0
split_missing

start_go_build
started=$SECONDS
write_stamps() {
    local name
    for name in "$@"; do
        [[ -x "$bin_dir/$name" ]] || die "the build finished but $bin_dir/$name is missing"
        stamp_of "$name" >"$bin_dir/$name.stamp"
        printf '\n' >>"$bin_dir/$name.stamp"
    done
}

build_tailscale() {
    local names=("$@") packages=() name ts_version="${TAILSCALE_VERSION#v}"
    for name in "${names[@]}"; do
        rm -f "$bin_dir/$name.stamp"
        packages+=("./cmd/$name")
    done
    # Built inside the downloaded module (its own go.mod/go.sum), as `go install mod@version`
    # would, so `go list` can count the packages first. Without the version stamps tailscale
    # would call itself "x.y.z-ERR-BuildInfo" to the control server.
    # (Run as `(build_tailscale) || exit 1`, where errexit is off: every step checks itself.)
    go mod download "tailscale.com@$TAILSCALE_VERSION" || die "cannot download tailscale.com@$TAILSCALE_VERSION"
    cd "$GOMODCACHE/tailscale.com@$TAILSCALE_VERSION" || die "no tailscale.com@$TAILSCALE_VERSION in $GOMODCACHE"
    go_build_with_progress "tailscale $TAILSCALE_VERSION (${names[*]})" -buildvcs=false \
        -ldflags "-s -w -X tailscale.com/version.longStamp=$ts_version -X tailscale.com/version.shortStamp=$ts_version" \
        -o "$bin_dir/" -- "${packages[@]}" || exit 1
    write_stamps "${names[@]}"
}

# Not `go install headscale@version`: that also asks the proxy for the module's version list
# (to look for a deprecation notice), which the proxy we have answers with 403 for headscale.
# Building inside the downloaded module is the same build: its own go.mod/go.sum rule.
build_headscale() {
    local module="github.com/juanfont/headscale@$HEADSCALE_VERSION"
    rm -f "$bin_dir/headscale.stamp"
    go mod download "$module" || die "cannot download $module"
    cd "$GOMODCACHE/$module" || die "no $module in $GOMODCACHE"
    go_build_with_progress "headscale $HEADSCALE_VERSION" -buildvcs=false -ldflags "-s -w" \
        -o "$bin_dir/headscale" -- ./cmd/headscale || exit 1
    write_stamps headscale
}

if ((${#want_tailscale[@]} > 0)); then (build_tailscale "${want_tailscale[@]}") || exit 1; fi
if [[ $want_headscale == true ]]; then (build_headscale) || exit 1; fi
echo "build-binaries: built ${missing[*]} in $(format_elapsed $((SECONDS - started))) into $bin_dir"
