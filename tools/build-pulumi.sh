#!/usr/bin/env bash
# Builds the Pulumi engine pieces the end-to-end tests and the sandbox (`make demo`) run, into
# .cache/bin next to the daemons of tools/build-binaries.sh, sharing its Go caches:
#   pulumi                          the CLI, from the wrapper module tools/pulumi-cli
#                                   (github.com/pulumi/pulumi/pkg/v3 at PULUMI_CLI_VERSION)
#   pulumi-language-python-exec     the SDK's program runner, and
#   pulumi-resource-pulumi-python   the dynamic-provider launcher (`python -m pulumi.dynamic`),
#                                   both from the sdk/v3 module at PULUMI_PYTHON_SDK_VERSION
#                                   (the pinned Python SDK), exec bits restored
#   pulumi-language-python          launchers of the stand-ins standins/pulumi_language_python.py
#   pulumi-resource-tailscale       and standins/pulumi_tailscale_provider.py, for the two
#                                   plugins the module proxy does not serve (see versions.env)
#
# Idempotent: when .cache/bin/pulumi.stamp matches the pins, the Go toolchain, the platform
# and this checkout, it exits at once without touching Go (--check: only say, by exit code).
# Concurrent callers of this checkout wait on its own lock (pulumi.lock), so the daemons of
# tools/build-binaries.sh may build at the same time.
#
# Environment: CORAL_CACHE_DIR overrides the cache directory (default: <repo>/.cache).
set -euo pipefail

tool=build-pulumi
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tools/versions.env disable=SC1091
source "$repo_root/tools/versions.env"

parse_build_args "$@"
stamp_file="$bin_dir/pulumi.stamp"
wrapper_dir="$repo_root/tools/pulumi-cli"
outputs=(pulumi pulumi-language-python-exec pulumi-resource-pulumi-python
    pulumi-language-python pulumi-resource-tailscale)

require_go ">= $GO_MIN_VERSION"
# The wrapper module's go.mod/go.sum and this script (it writes the launchers) are inputs.
inputs_sum="$(cat "$wrapper_dir/go.mod" "$wrapper_dir/go.sum" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
expected_stamp="pulumi=$PULUMI_CLI_VERSION sdk=$PULUMI_PYTHON_SDK_VERSION inputs=$inputs_sum go=$go_version platform=$go_platform root=$repo_root"

exit_if_up_to_date pulumi.lock "up to date ($PULUMI_CLI_VERSION)"
start_go_build
started=$SECONDS

version="${PULUMI_CLI_VERSION#v}"
(cd "$wrapper_dir" &&
    go_build_with_progress "pulumi CLI $PULUMI_CLI_VERSION" -buildvcs=false \
        -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version" \
        -o "$bin_dir/pulumi" -- github.com/pulumi/pulumi/pkg/v3/cmd/pulumi) || exit 1

# The scripts come from the sdk/v3 module at the Python SDK's version. The module cache is
# read-only content: copy them out and make them executable (module zips carry no mode bits).
sdk_module="github.com/pulumi/pulumi/sdk/v3@$PULUMI_PYTHON_SDK_VERSION"
go mod download "$sdk_module" || die "cannot download $sdk_module"
sdk_dir="$GOMODCACHE/$sdk_module"
[[ -d "$sdk_dir/python" ]] || die "$sdk_module has no python/ directory"
install -m 0755 "$sdk_dir/python/cmd/pulumi-language-python-exec" "$bin_dir/"
install -m 0755 "$sdk_dir/python/dist/pulumi-resource-pulumi-python" "$bin_dir/"

write_launcher() {
    local name="$1" module="$2"
    cat >"$bin_dir/$name" <<LAUNCHER
#!/bin/sh
# Written by tools/build-pulumi.sh: runs $module with the project's virtualenv.
PYTHONPATH="$repo_root\${PYTHONPATH:+:\$PYTHONPATH}" exec "$repo_root/.venv/bin/python" -m $module "\$@"
LAUNCHER
    chmod 0755 "$bin_dir/$name"
}
write_launcher pulumi-language-python standins.pulumi_language_python
write_launcher pulumi-resource-tailscale standins.pulumi_tailscale_provider

check_outputs build
"$bin_dir/pulumi" version >/dev/null || die "$bin_dir/pulumi does not run"
printf '%s\n' "$expected_stamp" >"$stamp_file"
echo "build-pulumi: built in $(format_elapsed $((SECONDS - started))) into $bin_dir"
