"""The parameter and output JSON Schemas of today's built-in activities (SPEC §8, docs/workflows.md).

A stand-in until the activities carry their own metadata: `service.activity_catalogue` is the one place
that reads this module.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

TEMPLATE_NOTE = "Strings are templates: {{ inputs.x }}, {{ nodes.<id>.<output> }}, {{ credentials.<name>.<field> }}."


def _obj(properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": True}
    if required:
        schema["required"] = list(required)
    return schema


def _s(description: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, **extra}


def _t(kind: str | list[str], description: str, **extra: Any) -> Schema:
    return {"type": kind, "description": description, **extra}


_PATH = _s("file path, relative to the execution's working folder")
_ENCODING = _s("text encoding", default="utf-8")

BUILTIN_ACTIVITIES: list[dict[str, Any]] = [
    {
        "name": "shell.run",
        "category": "Process",
        "description": "Run a command; its output lines go to the execution log.",
        "params": _obj(
            {
                "command": _t(
                    ["string", "array"], "the command line, or a list of arguments", items={"type": "string"}
                ),
                "shell": _t("boolean", "run through the shell (default: true for a string command)"),
                "cwd": _s("working folder", default="."),
                "env": _t("object", "extra environment variables", additionalProperties={"type": "string"}),
            },
            ("command",),
        ),
        "outputs": _obj(
            {"exitCode": _t("integer", "exit status"), "stdout": _s("standard output"), "stderr": _s("standard error")}
        ),
    },
    {
        "name": "python.run",
        "category": "Process",
        "description": "Run an inline Python script in a subprocess; it may assign `result`.",
        "params": _obj(
            {
                "script": _s("Python source", format="code"),
                "args": _t("array", "arguments (sys.argv[1:])", items={"type": "string"}),
            },
            ("script",),
        ),
        "outputs": _obj(
            {
                "exitCode": _t("integer", "exit status"),
                "stdout": _s("standard output"),
                "stderr": _s("standard error"),
                "result": {"description": "the value the script assigns to `result`"},
            }
        ),
    },
    {
        "name": "http.request",
        "category": "Network",
        "description": "Send an HTTP request.",
        "params": _obj(
            {
                "method": _s("HTTP method", default="GET", enum=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]),
                "url": _s("URL", format="uri"),
                "headers": _t("object", "request headers", additionalProperties={"type": "string"}),
                "params": _t("object", "query parameters"),
                "json": {"description": "a JSON body (not with body)"},
                "body": _s("a text body (not with json)"),
                "timeoutSeconds": _t("number", "request timeout", exclusiveMinimum=0),
            },
            ("url",),
        ),
        "outputs": _obj(
            {
                "status": _t("integer", "status code"),
                "headers": _t("object", "response headers"),
                "text": _s("body as text"),
                "json": {"description": "body as JSON (null when it is not JSON)"},
            }
        ),
    },
    {
        "name": "file.read",
        "category": "Files",
        "description": "Read a text file.",
        "params": _obj({"path": _PATH, "encoding": _ENCODING}, ("path",)),
        "outputs": _obj({"content": _s("the file's text")}),
    },
    {
        "name": "file.write",
        "category": "Files",
        "description": "Write text to a file, creating folders.",
        "params": _obj(
            {
                "path": _PATH,
                "content": _s("text to write", format="textarea"),
                "append": _t("boolean", "add to the end instead of replacing", default=False),
                "encoding": _ENCODING,
            },
            ("path",),
        ),
        "outputs": _obj({"path": _s("the file written"), "bytes": _t("integer", "bytes written")}),
    },
    {
        "name": "file.copy",
        "category": "Files",
        "description": "Copy a file or folder (into it when the destination is a folder).",
        "params": _obj({"source": _PATH, "destination": _PATH}, ("source", "destination")),
        "outputs": _obj({"path": _s("the copy")}),
    },
    {
        "name": "file.move",
        "category": "Files",
        "description": "Move a file or folder (into it when the destination is a folder).",
        "params": _obj({"source": _PATH, "destination": _PATH}, ("source", "destination")),
        "outputs": _obj({"path": _s("the new path")}),
    },
    {
        "name": "file.delete",
        "category": "Files",
        "description": "Delete a file, or a folder with recursive.",
        "params": _obj(
            {"path": _PATH, "recursive": _t("boolean", "delete a folder and its content", default=False)}, ("path",)
        ),
        "outputs": _obj({"deleted": _t("boolean", "false when it was absent")}),
    },
    {
        "name": "file.list",
        "category": "Files",
        "description": "List the files of a folder matching a pattern.",
        "params": _obj(
            {
                "path": _s("folder", default="."),
                "pattern": _s("glob pattern", default="*"),
                "recursive": _t("boolean", "look in sub-folders", default=False),
            }
        ),
        "outputs": _obj({"files": _t("array", "matching file paths", items={"type": "string"})}),
    },
    {
        "name": "json.parse",
        "category": "Data",
        "description": "Parse JSON text.",
        "params": _obj({"text": _s("JSON text", format="textarea")}, ("text",)),
        "outputs": _obj({"value": {"description": "the parsed value"}}),
    },
    {
        "name": "csv.read",
        "category": "Data",
        "description": "Read CSV from a file or from text.",
        "params": _obj(
            {
                "path": _PATH,
                "text": _s("CSV text (instead of path)", format="textarea"),
                "delimiter": _s("field separator", default=","),
                "header": _t("boolean", "first row names the columns", default=True),
            }
        ),
        "outputs": _obj({"rows": _t("array", "rows (objects keyed by header, or lists)")}),
    },
    {
        "name": "csv.write",
        "category": "Data",
        "description": "Write rows to a CSV file.",
        "params": _obj(
            {
                "path": _PATH,
                "rows": _t("array", "objects or lists"),
                "columns": _t("array", "column order", items={"type": "string"}),
                "delimiter": _s("field separator", default=","),
            },
            ("path", "rows"),
        ),
        "outputs": _obj({"path": _s("the file written"), "count": _t("integer", "rows written")}),
    },
    {
        "name": "log.message",
        "category": "Basics",
        "description": "Write a line to the execution log.",
        "params": _obj(
            {
                "message": _s("the text"),
                "level": _s("log level", default="INFO", enum=["DEBUG", "INFO", "WARNING", "ERROR"]),
            },
            ("message",),
        ),
        "outputs": _obj({}),
    },
    {
        "name": "vars.set",
        "category": "Basics",
        "description": "Set a workflow variable, read later as {{ vars.<name> }}.",
        "params": _obj({"name": _s("variable name"), "value": {"description": "the value"}}, ("name", "value")),
        "outputs": _obj({"value": {"description": "the value set"}}),
    },
    {
        "name": "control.if",
        "category": "Control",
        "description": "Choose a branch: edges with when true or false follow the result.",
        "params": _obj({"condition": _s("an expression, e.g. {{ nodes.get.status == 200 }}")}, ("condition",)),
        "outputs": _obj({"result": _t("boolean", "matched by the outgoing edges' when")}),
    },
    {
        "name": "control.foreach",
        "category": "Control",
        "description": "Run a list of sub-nodes once per item ({{ item }}, {{ index }}).",
        "params": _obj(
            {
                "items": _t(["array", "string"], "the list, or an expression that gives one"),
                "nodes": _t("array", "the sub-nodes run for each item", items={"type": "object"}),
            },
            ("items", "nodes"),
        ),
        "outputs": _obj({"results": _t("array", "each iteration's node outputs")}),
    },
    {
        "name": "control.delay",
        "category": "Control",
        "description": "Wait a number of seconds.",
        "params": _obj({"seconds": _t("number", "how long", minimum=0)}, ("seconds",)),
        "outputs": _obj({}),
    },
    {
        "name": "control.fail",
        "category": "Control",
        "description": "Fail the workflow with a message.",
        "params": _obj({"message": _s("why")}),
        "outputs": _obj({}),
    },
]
