#!/usr/bin/env bash
# Creates .venv and installs the project with its dev dependencies (pyproject.toml), with
# progress: on a fresh machine pip downloads and installs about 90 packages, which takes
# minutes. Rebuilt only when pyproject.toml is newer than .venv/.installed.
#
# Usage: make-venv.sh [--check]   (--check: exit 0 when up to date, 1 when it would install)
# Environment: PYTHON (default python3) creates the venv; pip honours PIP_INDEX_URL etc.
set -euo pipefail

tool=venv
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_build_args "$@"

venv="$repo_root/.venv"
installed="$venv/.installed"
if [[ -f $installed && $installed -nt $repo_root/pyproject.toml && -x $venv/bin/python ]]; then
    [[ $check_only == true ]] || echo "venv: up to date ($venv)"
    exit 0
fi
[[ $check_only == false ]] || exit 1

take_lock venv.lock
python="${PYTHON:-python3}"
started=$SECONDS
rm -f "$installed"
log="$(mktemp "${TMPDIR:-/tmp}/coral-venv.XXXXXX")"
trap 'rm -f "$log"' EXIT

# pip names each requirement as it resolves it ("Collecting x"), then installs them all at once.
count_pip() {
    local collected
    collected=$(grep -c '^Collecting ' "$1" || true)
    if grep -q '^Installing collected packages' "$1"; then
        printf '%s packages resolved and downloaded, installing them' "$collected"
    else
        printf '%s packages resolved and downloaded' "$collected"
    fi
}

run_with_progress "creating $venv with $python" "$log" count_pip -- "$python" -m venv "$venv" ||
    die "could not create the venv with $python"
run_with_progress "upgrading pip" "$log" count_pip -- \
    "$venv/bin/python" -m pip install --progress-bar off --upgrade pip ||
    die "pip could not upgrade itself"
(cd "$repo_root" &&
    run_with_progress "installing coral-infra and its dev dependencies" "$log" count_pip -- \
        "$venv/bin/python" -m pip install --progress-bar off -e '.[dev]') ||
    die "pip install failed"
touch "$installed"
echo "venv: installed in $(format_elapsed $((SECONDS - started))) into $venv"
