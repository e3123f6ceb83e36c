"""Server-side tools: plain Python functions the worker runs for the model, without the client's help.

Operators write a module of functions decorated with ``@tool`` and name it in ``VOICEFLEET_TOOLS``::

    from voicefleet.tools import tool

    @tool(description="Current weather for a city.", parameters={...JSON schema...}, timeout_s=2.0)
    async def get_weather(location: str, unit: str = "celsius") -> dict: ...

Sync functions run in a thread. A tool that raises, times out, or is called with arguments that are not valid
JSON or do not match its schema returns an error output the model can speak about; the session never hangs.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import jsonschema
import orjson

_MARK = "__voicefleet_tool__"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    func: Callable[..., Any]
    timeout_s: float | None = None

    def spec(self) -> dict[str, Any]:
        """The GA `session.tools` entry."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }


def tool(
    *,
    description: str,
    parameters: dict[str, Any] | None = None,
    name: str | None = None,
    timeout_s: float | None = None,
) -> Callable[[F], F]:
    """Mark a function as a server-side tool. The function itself is returned unchanged."""

    def mark(func: F) -> F:
        schema = parameters or {"type": "object", "properties": {}, "additionalProperties": False}
        jsonschema.Draft202012Validator.check_schema(schema)
        setattr(func, _MARK, Tool(name or func.__name__, description, schema, func, timeout_s))
        return func

    return mark


@dataclass(frozen=True, slots=True)
class ToolResult:
    output: str
    outcome: str  # ok | error | timeout


def _error(message: str) -> str:
    return orjson.dumps({"error": message}).decode()


class ToolRegistry:
    def __init__(self, tools: Iterable[Tool] = (), global_timeout_s: float = 10.0) -> None:
        self.tools = {t.name: t for t in tools}
        self.global_timeout_s = global_timeout_s

    @classmethod
    def from_module(cls, module_name: str, global_timeout_s: float = 10.0) -> ToolRegistry:
        if not module_name:
            return cls((), global_timeout_s)
        module = importlib.import_module(module_name)
        found = [
            getattr(obj, _MARK)
            for obj in vars(module).values()
            if isinstance(getattr(obj, _MARK, None), Tool)
        ]
        return cls(found, global_timeout_s)

    def specs(self) -> list[dict[str, Any]]:
        return [t.spec() for t in self.tools.values()]

    async def run(self, name: str, arguments: str) -> ToolResult:
        spec = self.tools.get(name)
        if spec is None:
            return ToolResult(_error(f"Unknown tool '{name}'."), "error")
        try:
            args = orjson.loads(arguments or "{}")
        except orjson.JSONDecodeError:
            return ToolResult(_error(f"Arguments for '{name}' are not valid JSON."), "error")
        if not isinstance(args, dict):
            return ToolResult(_error(f"Arguments for '{name}' must be a JSON object."), "error")
        try:
            jsonschema.validate(args, spec.parameters)
        except jsonschema.ValidationError as exc:
            return ToolResult(_error(f"Invalid arguments for '{name}': {exc.message}"), "error")
        timeout = min(spec.timeout_s or self.global_timeout_s, self.global_timeout_s)
        try:
            if inspect.iscoroutinefunction(spec.func):
                value = await asyncio.wait_for(spec.func(**args), timeout)
            else:
                value = await asyncio.wait_for(asyncio.to_thread(spec.func, **args), timeout)
        except TimeoutError:
            return ToolResult(
                _error(f"The tool '{name}' did not answer within {timeout:g} seconds."), "timeout"
            )
        except Exception as exc:  # a tool's failure must never end the session
            return ToolResult(_error(f"The tool '{name}' failed: {type(exc).__name__}: {exc}"), "error")
        if isinstance(value, str):
            return ToolResult(value, "ok")
        try:
            return ToolResult(orjson.dumps(value).decode(), "ok")
        except TypeError:
            return ToolResult(str(value), "ok")
