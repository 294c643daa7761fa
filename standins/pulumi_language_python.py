"""A stand-in for Pulumi's Python language host plugin (`pulumi-language-python`).

Why a stand-in: the real host is the Go module
github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3, which the module proxy
reachable here does not serve (403 for its version list, for v3.272.0 and for commits), so it
cannot be built. The engine (the Go-built `pulumi` CLI) only needs the plugin protocol: start,
print the gRPC port, answer `GetPluginInfo`, `GetRequiredPackages`/`GetRequiredPlugins` and
`Run`. `Run` does what the real host does: it starts the SDK's own runner script
`pulumi-language-python-exec` (from the sdk/v3 module, installed beside this launcher by
tools/build-pulumi.sh) with the project's virtualenv (`runtime.options.virtualenv` of
Pulumi.yaml), the run's flags on the command line and the stack config in `PULUMI_CONFIG` /
`PULUMI_CONFIG_SECRET_KEYS`. Everything the program does after that (resource registration,
secrets, the dynamic providers) is the real SDK talking to the real engine.

Methods the engine treats as optional (Handshake, About, dependencies, codegen) answer
UNIMPLEMENTED, which the engine tolerates.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from pulumi.runtime.proto import language_pb2, language_pb2_grpc, plugin_pb2

from standins.plugin_server import serve_plugin

VERSION = "3.272.0"
"""The Python SDK version this stand-in runs programs with (pyproject's pin)."""

BAIL_EXIT_CODE = 32
"""The SDK's exit code for 'errors were already reported to the engine' (pulumi.runtime)."""


def _runner() -> str:
    """The SDK's program runner, expected beside this plugin's launcher on PATH."""
    found = shutil.which("pulumi-language-python-exec")
    if found is None:
        raise RuntimeError(
            "pulumi-language-python-exec is not on PATH; run tools/build-pulumi.sh, which "
            "installs it from the sdk/v3 module into .cache/bin"
        )
    return found


def _python(info: Any, root: Path) -> str:
    """The virtualenv's interpreter, as Pulumi.yaml's `runtime.options.virtualenv` names it."""
    options = json_format.MessageToDict(info.options) if info.HasField("options") else {}
    virtualenv = options.get("virtualenv")
    if not virtualenv:
        return os.environ.get("PULUMI_PYTHON_CMD", "python3")
    venv = Path(virtualenv) if Path(virtualenv).is_absolute() else root / virtualenv
    python = venv / "bin" / "python"
    if not python.exists():
        raise RuntimeError(
            f"Pulumi.yaml runtime.options.virtualenv is {virtualenv!r}, but {python} does not "
            "exist; create it with `make venv`"
        )
    return str(python)


class LanguageHost(language_pb2_grpc.LanguageRuntimeServicer):
    def __init__(self, engine_address: str) -> None:
        self._engine_address = engine_address

    def GetPluginInfo(self, request: Any, context: Any) -> Any:
        return plugin_pb2.PluginInfo(version=VERSION)

    def GetRequiredPlugins(self, request: Any, context: Any) -> Any:
        # Plugins are found on PATH when resources ask for them (no acquisition offline).
        return language_pb2.GetRequiredPluginsResponse()

    def GetRequiredPackages(self, request: Any, context: Any) -> Any:
        return language_pb2.GetRequiredPackagesResponse()

    def Run(self, request: Any, context: Any) -> Any:
        root = Path(request.info.root_directory or request.pwd)
        try:
            python = _python(request.info, root)
            runner = _runner()
        except RuntimeError as error:
            return language_pb2.RunResponse(error=str(error))
        flags = {
            "monitor": request.monitor_address,
            "engine": self._engine_address,
            "project": request.project,
            "stack": request.stack,
            "pwd": request.pwd,
            "dry_run": "true" if request.dryRun else "false",
            "parallel": str(request.parallel),
            "organization": request.organization,
            "root_directory": str(root),
        }
        args = [python, "-u", runner]
        for name, value in flags.items():
            if value:
                args += [f"--{name}", value]
        args.append(request.info.entry_point or request.program or ".")
        args += list(request.args)
        env = dict(os.environ)
        env["PULUMI_CONFIG"] = json.dumps(dict(request.config))
        env["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(list(request.configSecretKeys))
        env["PATH"] = f"{Path(python).parent}{os.pathsep}{env.get('PATH', '')}"
        # The program writes to the engine's terminal like the real host's child does.
        code = subprocess.run(args, cwd=request.pwd or None, env=env, check=False).returncode
        if code == 0:
            return language_pb2.RunResponse()
        if code == BAIL_EXIT_CODE:
            return language_pb2.RunResponse(bail=True)
        return language_pb2.RunResponse(error=f"Program exited with non-zero exit code: {code}")


def main(argv: list[str]) -> None:
    # The engine passes its own address last; leading `-flag=value` options are tracing etc.
    positional = [arg for arg in argv if not arg.startswith("-")]
    engine_address = positional[-1] if positional else ""
    serve_plugin(
        language_pb2_grpc.add_LanguageRuntimeServicer_to_server,
        LanguageHost(engine_address),
        max_workers=4,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
