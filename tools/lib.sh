# Sourced by tools/build-*.sh and tools/make-venv.sh after they set `tool` (the name their
# messages start with): the cache layout, the Go toolchain rules, the stamp check, the build lock
# and the progress reports they all follow, so each script only says what it builds and what its
# stamp records.
#
# Every script takes --check (exit 0 when up to date, 1 when it would build; no lock, no Go
# build), which tools/build.sh and tools/check-prereqs.sh use to know what a run will build.
# shellcheck shell=bash

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_dir="${CORAL_CACHE_DIR:-$repo_root/.cache}"
bin_dir="$cache_dir/bin"

die() {
    progress_end
    echo "${tool:?}: $*" >&2
    exit 1
}

# parse_build_args "$@": sets check_only (--check) and requested (the other arguments).
check_only=false
requested=()
parse_build_args() {
    local arg
    for arg in "$@"; do
        case "$arg" in
            --check) check_only=true ;;
            -*) die "unknown option $arg (only --check)" ;;
            *) requested+=("$arg") ;;
        esac
    done
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
# With --check it only answers: exit 0 when up to date, 1 otherwise.
exit_if_up_to_date() {
    if ! up_to_date; then
        if [[ $check_only == true ]]; then exit 1; fi
        take_lock "$1"
        # Another caller may have finished the build while this one waited for the lock.
        up_to_date || return 0
    fi
    if [[ $check_only == true ]]; then exit 0; fi
    [[ -z "$2" ]] || echo "$tool: $2"
    exit 0
}

# take_lock NAME: holds $cache_dir/NAME (on a new fd) until the script ends; while another
# build of this checkout holds it, says so instead of waiting in silence.
take_lock() {
    local fd waited=$SECONDS
    mkdir -p "$bin_dir"
    exec {fd}>"$cache_dir/$1"
    flock -n "$fd" && return 0
    progress_start "waiting for another build of this checkout (lock $cache_dir/$1)"
    until flock -w 1 "$fd"; do
        progress_report "still waiting" "$((SECONDS - waited))"
    done
    progress_end
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

# ------------------------------------------------------------------------------ progress
# A long step says what it does, then its progress and elapsed time: a bar redrawn in place when
# stderr is a terminal, otherwise (CI logs, make output piped) a line at least every
# $CORAL_PROGRESS_INTERVAL seconds (default 15). Under tools/build.sh, which runs several steps
# at once and draws them together, the step writes its status line to $CORAL_PROGRESS_STATUS.
progress_interval=${CORAL_PROGRESS_INTERVAL:-15}
progress_mode=lines
if [[ -n ${CORAL_PROGRESS_STATUS:-} ]]; then
    progress_mode=status
elif [[ -t 2 && ${TERM:-dumb} != dumb ]]; then
    progress_mode=bar
fi
progress_what=""
progress_last=0
progress_open=false
progress_finished=false

# progress_start WHAT: begins a step; its first report is shown at once.
progress_start() {
    progress_what=$1
    progress_last=-1
}

# format_elapsed SECONDS -> "42s" or "3m07s"
format_elapsed() {
    local s=$1
    if ((s < 60)); then printf '%ds' "$s"; else printf '%dm%02ds' "$((s / 60))" "$((s % 60))"; fi
}

# progress_bar DONE TOTAL -> "[#########...........]" (20 cells)
progress_bar() {
    local done=$1 total=$2 width=20 filled
    ((total > 0)) || total=1
    filled=$((done * width / total))
    ((filled <= width)) || filled=$width
    printf '[%s%s]' "$(printf '%*s' "$filled" '' | tr ' ' '#')" "$(printf '%*s' "$((width - filled))" '' | tr ' ' '.')"
}

# progress_report DETAIL ELAPSED: the step's current state, e.g. "312/947 packages".
progress_report() {
    local line
    line="${tool:?}: $progress_what: $1, $(format_elapsed "$2")"
    case "$progress_mode" in
        status)
            printf '%s\n' "$line" >"$CORAL_PROGRESS_STATUS.tmp"
            mv -f "$CORAL_PROGRESS_STATUS.tmp" "$CORAL_PROGRESS_STATUS"
            ;;
        bar)
            printf '\r\033[K%s' "$line" >&2
            progress_open=true
            ;;
        lines)
            if ((progress_last < 0 || $2 - progress_last >= progress_interval)); then
                printf '%s\n' "$line" >&2
                progress_last=$2
            fi
            ;;
    esac
}

# progress_end: finishes a bar's line so the next message starts on its own.
progress_end() {
    if [[ $progress_open == true ]]; then
        printf '\n' >&2
        progress_open=false
    fi
}

# run_with_progress WHAT LOG COUNTER -- COMMAND...: runs COMMAND with its output in LOG and
# reports every second, with the detail COUNTER prints (a function given LOG and the elapsed
# seconds). On failure prints the end of LOG and returns the command's status.
run_with_progress() {
    local what=$1 log=$2 counter=$3 pid rc started=$SECONDS
    shift 4
    progress_start "$what"
    : >"$log" # exists before the counter first reads it
    "$@" >>"$log" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        progress_report "$("$counter" "$log")" "$((SECONDS - started))"
        sleep 1
    done
    rc=0
    wait "$pid" || rc=$?
    if ((rc == 0)); then
        # The final state (e.g. all packages compiled), shown whatever the interval.
        progress_last=-1
        progress_finished=true
        progress_report "$("$counter" "$log")" "$((SECONDS - started))"
        progress_finished=false
    fi
    progress_end
    if ((rc != 0)); then
        echo "$tool: $what failed (exit code $rc); the end of its output:" >&2
        tail -n 40 "$log" >&2
    fi
    return "$rc"
}

# go_build_with_progress WHAT [BUILD FLAGS...] -- PACKAGES...: in the current directory (a
# module), lists the library packages the build will compile (`go list -deps`: the stale ones;
# this also downloads the modules they come from), then `go build -v`s them, reporting
# "<compiled>/<to compile> packages". -v names each package as its compile starts, so the count
# is what the compiler got through; the main packages and the link come after the last one.
go_build_with_progress() {
    local what=$1 flags=() packages=() seen_separator=false arg
    shift
    for arg in "$@"; do
        if [[ $seen_separator == true ]]; then
            packages+=("$arg")
        elif [[ $arg == -- ]]; then
            seen_separator=true
        else
            flags+=("$arg")
        fi
    done
    local work stale
    work=$(mktemp -d "${TMPDIR:-/tmp}/coral-build.XXXXXX") || die "cannot make a temporary directory"
    # shellcheck disable=SC2064 # expand now: the directory of this build
    trap "rm -rf '$work'" EXIT
    run_with_progress "$what: resolving packages" "$work/list.log" count_module_downloads -- \
        go list -x -deps -f '{{if and .Stale (ne .Name "main")}}{{.ImportPath}}{{end}}' "${packages[@]}" ||
        die "go list failed for ${packages[*]}"
    stale=$(count_import_paths "$work/list.log")
    go_build_total=$stale
    run_with_progress "$what" "$work/build.log" count_compiled -- \
        go build -v "${flags[@]}" "${packages[@]}" || die "go build of $what failed"
    rm -rf "$work"
    trap - EXIT
}

# Lines that are bare import paths: what `go list -f` and `go build -v` print per package. The
# rest (`-x` commands, WORK=..., "# get ..." downloads, "go: ..." notes, "file.go:1: ..."
# errors) holds a space, "#", "=" or ":".
count_import_paths() {
    grep -c -E '^[^[:space:]#=:]+$' "$1" || true
}

# Counters for run_with_progress.
count_module_downloads() {
    local n
    n=$(grep -c -E '^# get .*\.zip: 200' "$1" || true)
    printf '%s modules downloaded' "$n"
}
go_build_total=0
count_compiled() {
    local n
    n=$(count_import_paths "$1")
    if [[ $progress_finished == true ]]; then
        printf '%s %s/%s packages compiled, linked' "$(progress_bar 1 1)" "$go_build_total" "$go_build_total"
    elif ((n >= go_build_total)); then
        printf '%s %s/%s packages compiled, linking' "$(progress_bar 1 1)" "$go_build_total" "$go_build_total"
    else
        printf '%s %s/%s packages compiled' "$(progress_bar "$n" "$go_build_total")" "$n" "$go_build_total"
    fi
}
