"""Scripted turns: what the simulated model answers, response by response, loaded from JSON or YAML.

```yaml
default_reply: "Sure, I can help with that."
turns:
  - function_call: {name: get_weather, arguments: {city: Paris}}
  - say: "The forecast says {function_output}."
```
Each response (in the default conversation) takes the next turn; when they run out, `default_reply` is spoken.
`{function_output}` is replaced by the output of the latest `function_call_output` item, `{user_text}` by the
latest user text, so a test can check that a tool result really reached the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_REPLY = "Hello! This is the voicefleet simulator. How can I help you today?"


@dataclass(frozen=True, slots=True)
class FunctionCallStep:
    name: str
    arguments: str
    """JSON text, exactly as it will be streamed in `response.function_call_arguments.delta` events."""


@dataclass(frozen=True, slots=True)
class ScriptedTurn:
    say: str | None = None
    function_call: FunctionCallStep | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    turns: tuple[ScriptedTurn, ...] = ()
    default_reply: str = DEFAULT_REPLY

    def turn(self, index: int) -> ScriptedTurn:
        return self.turns[index] if index < len(self.turns) else ScriptedTurn(say=self.default_reply)


@dataclass(slots=True)
class TemplateValues:
    function_output: str = ""
    user_text: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def render(template: str, values: TemplateValues) -> str:
    """Replace known placeholders only (tool outputs are often JSON, whose braces must survive)."""
    text = template.replace("{function_output}", values.function_output)
    return text.replace("{user_text}", values.user_text)


def _turn_from_dict(raw: Any, index: int) -> ScriptedTurn:
    if not isinstance(raw, dict) or not ({"say", "function_call"} & raw.keys()):
        raise ValueError(f"turn {index + 1}: expected a mapping with 'say' and/or 'function_call'")
    call = raw.get("function_call")
    step = None
    if call is not None:
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise ValueError(f"turn {index + 1}: function_call needs a 'name'")
        arguments = call.get("arguments", {})
        step = FunctionCallStep(
            call["name"], arguments if isinstance(arguments, str) else json.dumps(arguments)
        )
    say = raw.get("say")
    return ScriptedTurn(say=str(say) if say is not None else None, function_call=step)


def scenario_from_dict(data: Any) -> Scenario:
    if not isinstance(data, dict):
        raise ValueError("a scenario is a mapping with 'turns' and optionally 'default_reply'")
    turns = tuple(_turn_from_dict(raw, i) for i, raw in enumerate(data.get("turns") or []))
    return Scenario(turns=turns, default_reply=str(data.get("default_reply", DEFAULT_REPLY)))


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario file; `.json` is parsed as JSON, anything else as YAML (a superset of JSON)."""
    text = Path(path).read_text(encoding="utf-8")
    data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    return scenario_from_dict(data)
