"""`python.run`: run an inline script in a subprocess and return the value it assigns to `result`."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from exekra.workflow.activities.context import ActivityContext
from exekra.workflow.activities.process import ProcessOutputs, completed, run_process
from exekra.workflow.activities.spec import Params, activity

# Runs the script as __main__ with argv = [script, *args], then writes its global `result` as JSON.
_BOOTSTRAP = """\
import json, runpy, sys
script, result_path = sys.argv[1], sys.argv[2]
sys.argv = [script, *sys.argv[3:]]
namespace = runpy.run_path(script, run_name="__main__")
payload = json.dumps(namespace.get("result"))
with open(result_path, "w", encoding="utf-8") as result_file:
    result_file.write(payload)
"""


class RunParams(Params):
    script: str
    """The Python source to run."""
    args: list[Any] = []
    """Arguments, as `sys.argv[1:]` (as text)."""


class RunOutputs(ProcessOutputs):
    result: Any
    """The JSON value of the script's global `result`; null when it sets none."""


@activity("python.run", category="Scripts", params=RunParams, outputs=RunOutputs)
def run(ctx: ActivityContext, params: RunParams) -> dict[str, Any]:
    """Run `script` with the runner's Python in the workdir, in a subprocess.

    Output is unbuffered, so lines reach the log as printed. A non-zero exit code fails the node.
    """
    args = [str(argument) for argument in params.args]
    with tempfile.TemporaryDirectory(prefix="exekra-python-") as scratch:
        script_path = Path(scratch) / f"{ctx.node_id}.py"
        script_path.write_text(params.script, encoding="utf-8")
        result_path = Path(scratch) / "result.json"
        command = [sys.executable, "-u", "-c", _BOOTSTRAP, str(script_path), str(result_path), *args]
        exit_code, stdout, stderr = run_process(ctx, command, shell=False, cwd=ctx.workdir)
        result = json.loads(result_path.read_text(encoding="utf-8")) if result_path.exists() else None
    return completed(exit_code, stdout, stderr, result=result)
