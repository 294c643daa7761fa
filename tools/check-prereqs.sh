#!/usr/bin/env bash
# The prerequisites of `make demo` and `make test`, checked before anything is installed or
# built, one line per problem, in a second or two when all is well (the Makefile's `tools`
# target runs it first):
#   - Python >= requires-python of pyproject.toml ($PYTHON, default python3), with venv;
#   - Go >= GO_MIN_VERSION of tools/versions.env (the pinned tailscale and headscale need it);
#   - root and util-linux unshare/nsenter: the sandbox runs each pod in its own mount namespace
#     (required by `make demo`; without them `make test` skips its e2e and integration suites);
#   - the OpenSSH client (ssh, ssh-agent, ssh-keygen): `tailscale ssh` runs it, and the tests use
#     the stack's SSH config block with it the way editors do;
#   - free disk for what this run will build (Go's caches take about 7 GB on the first build);
#   - the package registries this run will download from: PyPI (or $PIP_INDEX_URL) when the
#     venv is to be installed, the Go module proxy ($GOPROXY or `go env GOPROXY`) when a Go
#     build is to run. A run with everything built needs neither.
#   - make demo: no sandbox already running in this checkout.
#
# Usage: check-prereqs.sh demo|test
set -uo pipefail

tool=prereqs
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tools/versions.env disable=SC1091
source "$repo_root/tools/versions.env"

mode=${1:-}
[[ $mode == demo || $mode == test ]] || die "usage: check-prereqs.sh demo|test"
started_ns=$(date +%s%N)
problems=0
fail() {
    echo "make $mode: $*" >&2
    problems=$((problems + 1))
}
version_at_least() { [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]; }

# What this run will install or build (stamp checks only: no lock, no Go build).
venv_pending=false
bash "$repo_root/tools/make-venv.sh" --check || venv_pending=true

summary=()
python=${PYTHON:-python3}
python_min=$(sed -n 's/^requires-python = ">=\([0-9.]*\)".*/\1/p' "$repo_root/pyproject.toml")
if ! command -v "$python" >/dev/null 2>&1; then
    fail "no '$python' on PATH: install Python >= $python_min (or run: make PYTHON=/path/to/python3.11 $mode)"
else
    python_version=$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null)
    if ! version_at_least "${python_version:-0}" "$python_min"; then
        fail "$python is Python ${python_version:-unknown}; coral-infra needs >= $python_min (pyproject.toml): install it or run make PYTHON=python$python_min $mode"
    elif [[ $venv_pending == true ]] && ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
        fail "$python cannot create a virtualenv (no ensurepip): install its venv package, e.g. apt-get install python3-venv"
    else
        summary+=("Python $python_version")
    fi
fi

go_pending=false
if ! command -v go >/dev/null 2>&1; then
    fail "no 'go' on PATH: install Go >= $GO_MIN_VERSION (tailscale, headscale and the Pulumi CLI are compiled from source; https://go.dev/dl/)"
else
    go_version=$(GOTOOLCHAIN=local go env GOVERSION 2>/dev/null)
    go_version=${go_version#go}
    if ! version_at_least "${go_version:-0}" "$GO_MIN_VERSION"; then
        fail "Go ${go_version:-unknown} is too old: the pinned tailscale $TAILSCALE_VERSION and headscale $HEADSCALE_VERSION need Go >= $GO_MIN_VERSION (tools/versions.env)"
    else
        summary+=("Go $go_version")
        checks=("build-pulumi.sh" "build-binaries.sh tailscale tailscaled headscale")
        if [[ $mode == test ]]; then checks+=("build-binaries.sh containerboot" "build-actionlint.sh"); fi
        for check in "${checks[@]}"; do
            read -ra command <<<"$check"
            bash "$repo_root/tools/${command[0]}" "${command[@]:1}" --check || go_pending=true
        done
    fi
fi

missing_tools=()
for name in unshare nsenter chroot; do
    command -v "$name" >/dev/null 2>&1 || missing_tools+=("$name")
done
if [[ $(id -u) == 0 && ${#missing_tools[@]} == 0 ]]; then
    summary+=("root with unshare")
elif [[ $mode == demo ]]; then
    fail "the sandbox needs root and util-linux unshare/nsenter (each simulated pod runs in its own mount namespace)${missing_tools[*]:+; missing: ${missing_tools[*]}}: run it as root, e.g. sudo make demo"
else
    echo "make test: warning: not root or no unshare/nsenter: the e2e and integration suites (pods in their own mount namespaces) will be skipped; run as root for the whole suite" >&2
fi

missing_ssh=()
for name in ssh ssh-agent ssh-keygen; do
    command -v "$name" >/dev/null 2>&1 || missing_ssh+=("$name")
done
if ((${#missing_ssh[@]} > 0)); then
    fail "no OpenSSH client (${missing_ssh[*]} missing): \`tailscale ssh\` and the SSH config block need it; install it, e.g. apt-get install openssh-client"
fi

# Free space where the caches grow: Go's (shared per machine) and this checkout's.
free_gb() {
    local dir=$1
    until [[ -d $dir ]]; do dir=$(dirname "$dir"); done
    df -P -BG "$dir" 2>/dev/null | awk 'NR == 2 { sub("G", "", $4); print $4 }'
}
need_go_gb=0
need_repo_gb=1
if [[ $go_pending == true ]]; then need_go_gb=7; fi
if [[ $venv_pending == true ]]; then need_repo_gb=2; fi
free_go=$(free_gb "$go_cache_dir")
free_repo=$(free_gb "$cache_dir")
if ((need_go_gb > 0 && ${free_go:-0} < need_go_gb)); then
    fail "only ${free_go:-?} GB free for Go's caches in $go_cache_dir; the first build needs about $need_go_gb GB (free some, or set CORAL_GO_CACHE to a disk with room)"
elif ((${free_repo:-0} < need_repo_gb)); then
    fail "only ${free_repo:-?} GB free in $cache_dir; $([[ $venv_pending == true ]] && echo "the venv and ")the sandbox need about $need_repo_gb GB"
else
    summary+=("${free_repo} GB free")
fi

# Registries: only those this run downloads from; both asked at once, a few seconds at most.
reach() {
    local url=$1
    if command -v curl >/dev/null 2>&1; then
        curl -sS -o /dev/null --max-time 5 -f "$url" 2>&1 | head -n 1
    else
        "$python" -c 'import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=5).close()
except Exception as e:
    print(e)' "$url"
    fi
}
probe_dir=$(mktemp -d "${TMPDIR:-/tmp}/coral-prereqs.XXXXXX")
trap 'rm -rf "$probe_dir"' EXIT
if [[ $venv_pending == true ]]; then
    pypi=${PIP_INDEX_URL:-https://pypi.org/simple}
    reach "${pypi%/}/pip/" >"$probe_dir/pypi" &
fi
if [[ $go_pending == true && -n ${go_version:-} ]]; then
    goproxy=${GOPROXY:-$(GOTOOLCHAIN=local go env GOPROXY)}
    proxy=${goproxy%%[,|]*}
    case "$proxy" in
        off) fail "GOPROXY=off, but this run builds Go tools from the module proxy: set GOPROXY (e.g. https://proxy.golang.org)" ;;
        direct) ;; # modules from their origin servers: nothing single to ask
        *) reach "${proxy%/}/tailscale.com/@v/$TAILSCALE_VERSION.info" >"$probe_dir/goproxy" & ;;
    esac
fi
wait
if [[ -f $probe_dir/pypi ]]; then
    if [[ -s $probe_dir/pypi ]]; then
        fail "cannot reach PyPI at ${pypi} ($(<"$probe_dir/pypi")): the venv is installed from it; set PIP_INDEX_URL to a reachable index"
    else
        summary+=("PyPI reachable")
    fi
fi
if [[ -f $probe_dir/goproxy ]]; then
    if [[ -s $probe_dir/goproxy ]]; then
        fail "cannot reach the Go module proxy at $proxy ($(<"$probe_dir/goproxy")): the tools are built from it; set GOPROXY to a reachable proxy"
    else
        summary+=("Go module proxy reachable")
    fi
fi

if [[ $mode == demo ]]; then
    demo_dir=${CORAL_DEMO_DIR:-$cache_dir/demo}
    if [[ -e $demo_dir/sandbox.lock ]] && ! flock -n "$demo_dir/sandbox.lock" true; then
        pid=$(cat "$demo_dir/sandbox.pid" 2>/dev/null || echo '?')
        fail "a sandbox is already running in this checkout (pid ${pid}): use it (its instructions are in its terminal), or stop it with: make demo-down"
    fi
fi

((problems == 0)) || exit 1
elapsed_ms=$((($(date +%s%N) - started_ns) / 1000000))
joined=$(printf '%s, ' "${summary[@]}")
echo "prerequisites: ok (${joined%, }; checked in $((elapsed_ms / 1000)).$(printf '%02d' $((elapsed_ms % 1000 / 10)))s)"
