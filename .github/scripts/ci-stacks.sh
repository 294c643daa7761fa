#!/usr/bin/env bash
# Prints, as a JSON array, the stacks CI previews: one per stacks/Pulumi.<stack>.yaml, minus
# the stacks that must never reach a real account from CI. `local` is the sandbox stack for the
# offline demo (headscale on loopback): previewing it in CI would only fail, and deploying it
# would be wrong, so it is excluded here by name, not by accident.
#
# Usage: ci-stacks.sh [STACKS_DIR]   (default: <repo>/stacks)
# Environment: CI_EXCLUDED_STACKS  space-separated names to leave out (default: "local").
set -euo pipefail

stacks_dir="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/stacks}"
excluded=" ${CI_EXCLUDED_STACKS-local} "

[[ -d "$stacks_dir" ]] || {
    echo "ci-stacks: no directory $stacks_dir" >&2
    exit 1
}

names=()
shopt -s nullglob
for file in "$stacks_dir"/Pulumi.*.yaml; do
    name="${file##*/Pulumi.}"
    name="${name%.yaml}"
    if [[ ! "$name" =~ ^[A-Za-z0-9_.-]+$ ]]; then
        echo "ci-stacks: stack file $file has a name CI cannot pass safely" >&2
        exit 1
    fi
    [[ "$excluded" == *" $name "* ]] && continue
    names+=("\"$name\"")
done

if ((${#names[@]} == 0)); then
    echo "ci-stacks: no stacks to preview in $stacks_dir" >&2
    exit 1
fi
(
    IFS=,
    printf '[%s]\n' "${names[*]}"
)
