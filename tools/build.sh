#!/usr/bin/env bash
# Builds what `make demo` or `make test` needs before either starts (the Makefile's `tools`
# target), side by side, with one progress display:
#   venv        tools/make-venv.sh (pip; mostly network and disk, so it runs beside the rest)
#   pulumi      tools/build-pulumi.sh
#   tailscale   tools/build-binaries.sh tailscale tailscaled [containerboot: test only]
#   headscale   tools/build-binaries.sh headscale
#   actionlint  tools/build-actionlint.sh (test only)
#   conformance tools/build-conformance.sh (test only: Tailscale's Go client vs our stand-in)
# The Go builds run CORAL_BUILD_JOBS at a time (default: the number of cores, at least 1): on 2
# cores two builds overlap each other's single-threaded phases (module downloads, resolving,
# linking) instead of leaving a core idle. What is already built is skipped after a stamp check.
#
# Usage: build.sh demo|test
# Progress: on a terminal, one line per running build redrawn in place; otherwise (CI, pipes) a
# line per running build at least every CORAL_PROGRESS_INTERVAL seconds (default 15).
set -euo pipefail

tool=build
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

target=${1:-}
names=(venv pulumi tailscale headscale)
case "$target" in
    demo) tailscale_names="tailscale tailscaled" ;;
    test)
        tailscale_names="tailscale tailscaled containerboot"
        names+=(actionlint conformance)
        ;;
    *) die "usage: build.sh demo|test" ;;
esac
command_of() {
    case "$1" in
        venv) printf '%s' "$repo_root/tools/make-venv.sh" ;;
        pulumi) printf '%s' "$repo_root/tools/build-pulumi.sh" ;;
        tailscale) printf '%s %s' "$repo_root/tools/build-binaries.sh" "$tailscale_names" ;;
        headscale) printf '%s' "$repo_root/tools/build-binaries.sh headscale" ;;
        actionlint) printf '%s' "$repo_root/tools/build-actionlint.sh" ;;
        conformance) printf '%s' "$repo_root/tools/build-conformance.sh" ;;
    esac
}

pending=()
current=()
for name in "${names[@]}"; do
    read -ra command <<<"$(command_of "$name")"
    if bash "${command[@]}" --check; then current+=("$name"); else pending+=("$name"); fi
done
if ((${#pending[@]} == 0)); then
    echo "build: up to date (${current[*]}; binaries in $bin_dir)"
    exit 0
fi
cores=$(nproc 2>/dev/null || echo 1)
max_jobs=${CORAL_BUILD_JOBS:-$cores}
((max_jobs >= 1)) || max_jobs=1
echo "build: building ${pending[*]} (${current[*]:+up to date: ${current[*]}; }$max_jobs Go builds at a time on $cores cores; a first build takes about 10 minutes on 2 cores; later ones reuse Go's caches in $go_cache_dir)"

work=$(mktemp -d "${TMPDIR:-/tmp}/coral-build.XXXXXX")
declare -A pids=()
cleanup() {
    local name
    for name in "${!pids[@]}"; do kill -- "-${pids[$name]}" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_job() {
    local name=$1 command
    read -ra command <<<"$(command_of "$name")"
    # Each build leads its own process group, so a failure or Ctrl-C stops all of it.
    CORAL_PROGRESS_STATUS="$work/$name.status" setsid bash "${command[@]}" >"$work/$name.log" 2>&1 &
    pids[$name]=$!
    printf '%s: starting\n' "$name" >"$work/$name.status"
}

# The display: finished builds' last lines stay; running builds' status lines are redrawn.
interactive=false
if [[ -t 1 && ${TERM:-dumb} != dumb ]]; then interactive=true; fi
drawn=0
last_lines=-1
started=$SECONDS
draw() {
    local name line cols
    if [[ $interactive == true ]]; then
        cols=$(tput cols 2>/dev/null || echo 100)
        if ((drawn > 0)); then printf '\033[%dA\033[J' "$drawn"; fi
        for line in "$@"; do printf '%s\n' "$line"; done
        drawn=0
        for name in "${!pids[@]}"; do
            line=$(<"$work/$name.status")
            printf '%s\n' "${line:0:$((cols - 1))}"
            drawn=$((drawn + 1))
        done
    else
        for line in "$@"; do printf '%s\n' "$line"; done
        if ((last_lines < 0 || SECONDS - last_lines >= progress_interval)); then
            for name in "${!pids[@]}"; do printf '%s\n' "$(<"$work/$name.status")"; done
            last_lines=$SECONDS
        fi
    fi
}

queue=()
for name in "${pending[@]}"; do
    # pip is not CPU-bound: it starts at once, beside the Go builds.
    if [[ $name == venv ]]; then start_job venv; else queue+=("$name"); fi
done
go_running() {
    local name n=0
    for name in "${!pids[@]}"; do [[ $name == venv ]] || n=$((n + 1)); done
    printf '%s' "$n"
}
failed=""
while ((${#queue[@]} > 0 || ${#pids[@]} > 0)); do
    while ((${#queue[@]} > 0)) && (($(go_running) < max_jobs)); do
        start_job "${queue[0]}"
        queue=("${queue[@]:1}")
    done
    finished=()
    for name in "${!pids[@]}"; do
        kill -0 "${pids[$name]}" 2>/dev/null && continue
        rc=0
        wait "${pids[$name]}" || rc=$?
        unset "pids[$name]"
        if ((rc == 0)); then
            finished+=("$(grep -v '^\s*$' "$work/$name.log" | tail -n 1)")
        else
            finished+=("$name: FAILED (exit code $rc); the end of its output:")
            while IFS= read -r line; do finished+=("  $line"); done < <(tail -n 40 "$work/$name.log")
            failed="$failed $name"
        fi
    done
    draw "${finished[@]}"
    [[ -z $failed ]] || break
    sleep 1
done
if [[ -n $failed ]]; then
    echo "build: stopped: ${failed# } failed (see above); nothing was left half-built (stamps are written last)" >&2
    exit 1
fi
echo "build: done in $(format_elapsed $((SECONDS - started))); binaries in $bin_dir"
