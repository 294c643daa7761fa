# Sourced by tools/build-*.sh after they set `tool` (the name their messages start with): the
# cache layout, the Go toolchain rules, the stamp check and the build lock they all follow, so
# each script only says what it builds and what its stamp records.
# shellcheck shell=bash

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_dir="${CORAL_CACHE_DIR:-$repo_root/.cache}"
bin_dir="$cache_dir/bin"

die() {
    echo "${tool:?}: $*" >&2
    exit 1
}

# require_go ADVICE: stops with ADVICE (which Go to install) when there is no `go`; sets
# go_version and go_platform for the stamp.
require_go() {
    command -v go >/dev/null 2>&1 || die "'go' is not on PATH; install Go $1"
    # Never let `go` fetch a different toolchain: that would be a prebuilt binary download.
    export GOTOOLCHAIN=local
    # shellcheck disable=SC2034 # the sourcing script puts both in its stamp
    go_version="$(go env GOVERSION)"
    # shellcheck disable=SC2034
    go_platform="$(go env GOOS)/$(go env GOARCH)"
}

# True when $stamp_file holds $expected_stamp and every name in $outputs is in $bin_dir.
# shellcheck disable=SC2154 # the sourcing script sets outputs, stamp_file and expected_stamp
up_to_date() {
    [[ -f "${stamp_file:?}" && "$(<"$stamp_file")" == "${expected_stamp:?}" ]] || return 1
    local name
    for name in "${outputs[@]}"; do
        [[ -x "$bin_dir/$name" ]] || return 1
    done
}

# exit_if_up_to_date LOCK MESSAGE: exits (printing "$tool: MESSAGE" unless MESSAGE is empty)
# when up to date; otherwise returns holding the lock file LOCK (fd 9, until the script ends).
exit_if_up_to_date() {
    if ! up_to_date; then
        mkdir -p "$bin_dir"
        exec 9>"$cache_dir/$1"
        flock 9
        # Another caller may have finished the build while this one waited for the lock.
        up_to_date || return 0
    fi
    [[ -z "$2" ]] || echo "$tool: $2"
    exit 0
}

# Go's module and build caches are shared by every checkout on this machine (a second clone
# or worktree links in seconds instead of compiling for minutes); both are safe for concurrent
# use. CORAL_GO_CACHE moves them (e.g. to measure a cold build); the binaries and stamps stay
# per checkout in $bin_dir. No cgo.
go_cache_dir="${CORAL_GO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/coral-infra/go}"
start_go_build() {
    export GOPATH="$go_cache_dir"
    export GOMODCACHE="$go_cache_dir/pkg/mod"
    export GOCACHE="$go_cache_dir/build"
    export CGO_ENABLED=0
    # -modcacherw keeps the module cache removable with `rm -rf`; -trimpath keeps the binaries independent of paths.
    export GOFLAGS="-modcacherw -trimpath"
    # A half-finished build must not look finished.
    rm -f "$stamp_file"
}

# check_outputs STEP: stops unless STEP left every name in $outputs in $bin_dir.
# shellcheck disable=SC2154
check_outputs() {
    local name
    for name in "${outputs[@]}"; do
        [[ -x "$bin_dir/$name" ]] || die "$1 finished but $bin_dir/$name is missing"
    done
}
