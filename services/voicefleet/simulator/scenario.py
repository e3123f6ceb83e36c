"""Scripted turns: what the simulated model answers, response by response, loaded from JSON or YAML.

```yaml
default_reply: "Sure, I can help with that."
turns:
  - user_text: "What is the weather in Paris?"
    function_call: {name: get_weather, arguments: {city: Paris}}
  - say: "The forecast says {function_output}."
```
Each response (in the default conversation) takes the next turn; when they run out, `default_reply` is spoken.
`{function_output}` is replaced by the output of the latest `function_call_output` item, `{user_text}` by the
latest user text, so a test can check that a tool result really reached the model.

There is no speech recogniser: a turn's `user_text` is what the user is taken to have said in the audio committed
before that turn's response. It becomes that item's input transcription and the `{user_text}` value.
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
    user_text: str | None = None
    """The words of the user audio this turn answers (None: the transcript names the audio length instead)."""


@dataclass(frozen=True, slots=True)
class Scenario:
    turns: tuple[ScriptedTurn, ...] = ()
    default_reply: str = DEFAULT_REPLY

    def turn(self, index: int) -> ScriptedTurn:
        return self.turns[index] if index < len(self.turns) else ScriptedTurn(say=self.default_reply)


class ScriptCursor:
    """Where a session is in its scenario: the turn of the next response, and whether its user_text was heard."""

    def __init__(self, scenario: Scenario) -> None:
        self._scenario = scenario
        self._index = 0
        self._heard_index = -1

    def next_turn(self) -> ScriptedTurn:
        turn = self._scenario.turn(self._index)
        self._index += 1
        return turn

    def hear_user(self) -> str | None:
        """The scripted words of user audio just committed: the upcoming turn's `user_text`, once.

        A second commit before that turn's response (create_response off, or a response still running) is
        other speech, so it gets no scripted words rather than a copy of the first one's.
        """
        if self._heard_index == self._index:
            return None
        self._heard_index = self._index
        return self._scenario.turn(self._index).user_text


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
    say, user_text = raw.get("say"), raw.get("user_text")
    if user_text is not None and not isinstance(user_text, str):
        raise ValueError(f"turn {index + 1}: user_text must be a string")
    return ScriptedTurn(say=str(say) if say is not None else None, function_call=step, user_text=user_text)


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
