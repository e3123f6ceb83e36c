"""Server-side tool calls in the core: run without the client, follow up once, hide from the client."""

from __future__ import annotations

import asyncio

import orjson

from tests.unit.helpers import WEATHER_TOOL, frame, make_session, ready, to_client, to_upstream
from voicefleet.realtime.actions import RunTool
from voicefleet.realtime.session import RealtimeSession
from voicefleet.tools import ToolRegistry, tool


def _call_events(
    core: RealtimeSession, name: str, call_id: str, item_id: str, now: float = 1.0
) -> list[object]:
    item = {"id": item_id, "type": "function_call", "call_id": call_id, "name": name, "arguments": ""}
    out: list[object] = []
    out += core.upstream_text(
        frame("response.output_item.added", response_id="r1", output_index=0, item=item), now
    )
    out += core.upstream_text(frame("conversation.item.added", item=item), now)
    out += core.upstream_text(
        frame(
            "response.function_call_arguments.delta",
            response_id="r1",
            item_id=item_id,
            call_id=call_id,
            delta="{",
        ),
        now,
    )
    out += core.upstream_text(
        frame(
            "response.function_call_arguments.done",
            response_id="r1",
            item_id=item_id,
            call_id=call_id,
            name=name,
            arguments='{"location":"Paris"}',
        ),
        now,
    )
    return out


def _done(core: RealtimeSession, *items: dict[str, object]) -> list[object]:
    return core.upstream_text(
        frame("response.done", response={"id": "r1", "status": "completed", "output": list(items)}), 2.0
    )


def test_server_tool_runs_without_the_client_and_follows_up_once() -> None:
    core = make_session(tools=[WEATHER_TOOL])
    ready(core)
    core.upstream_text(frame("response.created", response={"id": "r1"}), 1.0)
    out = _call_events(core, "get_weather", "call_1", "fc_1")
    assert to_client(out) == []  # hidden from the client
    (run,) = [a for a in out if isinstance(a, RunTool)]
    assert (run.call_id, run.name, run.arguments) == ("call_1", "get_weather", '{"location":"Paris"}')
    item = {
        "id": "fc_1",
        "type": "function_call",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": "{}",
    }
    done = _done(core, item)
    assert [e["response"]["output"] for e in to_client(done)] == [[]]
    assert not [a for a in done if isinstance(a, RunTool)]  # not run twice
    assert to_upstream(done) == []  # no response.create before the output exists
    finished = core.tool_finished("call_1", '{"temperature": 18}', 3.0)
    create, follow = to_upstream(finished)
    assert create["type"] == "conversation.item.create"
    assert create["item"]["type"] == "function_call_output"
    assert (create["item"]["call_id"], create["item"]["output"]) == ("call_1", '{"temperature": 18}')
    assert follow["type"] == "response.create"
    # The output item's own events are hidden too.
    echo = frame("conversation.item.added", item={"id": create["item"]["id"], "type": "function_call_output"})
    assert to_client(core.upstream_text(echo, 3.1)) == []


def test_two_calls_in_one_response_get_one_follow_up_after_both() -> None:
    core = make_session(tools=[WEATHER_TOOL])
    ready(core)
    _call_events(core, "get_weather", "call_a", "fc_a")
    _call_events(core, "get_weather", "call_b", "fc_b")
    _done(core)
    assert [e["type"] for e in to_upstream(core.tool_finished("call_b", "{}", 3.0))] == [
        "conversation.item.create"
    ]
    assert [e["type"] for e in to_upstream(core.tool_finished("call_a", "{}", 3.2))] == [
        "conversation.item.create",
        "response.create",
    ]


def test_tool_finishing_before_response_done_follows_up_at_done() -> None:
    core = make_session(tools=[WEATHER_TOOL])
    ready(core)
    _call_events(core, "get_weather", "call_1", "fc_1")
    assert [e["type"] for e in to_upstream(core.tool_finished("call_1", "{}", 1.5))] == [
        "conversation.item.create"
    ]
    assert [e["type"] for e in to_upstream(_done(core))] == ["response.create"]


def test_call_seen_only_in_response_done_still_runs() -> None:
    core = make_session(tools=[WEATHER_TOOL])
    ready(core)
    item = {
        "id": "fc_9",
        "type": "function_call",
        "call_id": "call_9",
        "name": "get_weather",
        "arguments": "{}",
    }
    runs = [a for a in _done(core, item) if isinstance(a, RunTool)]
    assert [r.call_id for r in runs] == ["call_9"]


def test_client_side_tool_passes_through_unchanged() -> None:
    core = make_session(tools=[WEATHER_TOOL])
    ready(core)
    out = _call_events(core, "open_door", "call_c", "fc_c")
    assert [e["type"] for e in to_client(out)] == [
        "response.output_item.added",
        "conversation.item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
    ]
    assert not [a for a in out if isinstance(a, RunTool)]


@tool(description="slow", timeout_s=0.05)
async def _slow() -> str:
    await asyncio.sleep(5)
    return "never"


@tool(description="boom")
def _boom() -> str:
    raise RuntimeError("the database is down")


@tool(
    description="typed",
    parameters={"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
)
async def _double(n: int) -> dict[str, int]:
    return {"n": n * 2}


async def test_tool_registry_turns_failures_into_outputs_the_model_can_speak_about() -> None:
    registry = ToolRegistry(
        [_slow.__voicefleet_tool__, _boom.__voicefleet_tool__, _double.__voicefleet_tool__]
    )  # type: ignore[attr-defined]
    timed_out = await registry.run("_slow", "{}")
    assert timed_out.outcome == "timeout" and "did not answer" in orjson.loads(timed_out.output)["error"]
    failed = await registry.run("_boom", "{}")
    assert failed.outcome == "error" and "the database is down" in orjson.loads(failed.output)["error"]
    assert (await registry.run("_double", "{not json")).outcome == "error"
    bad = await registry.run("_double", '{"n": "two"}')
    assert "Invalid arguments" in orjson.loads(bad.output)["error"]
    good = await registry.run("_double", '{"n": 21}')
    assert (good.outcome, orjson.loads(good.output)) == ("ok", {"n": 42})


async def test_calls_run_concurrently() -> None:
    registry = ToolRegistry([_double.__voicefleet_tool__])  # type: ignore[attr-defined]
    results = await asyncio.gather(*(registry.run("_double", f'{{"n": {i}}}') for i in range(20)))
    assert [orjson.loads(r.output)["n"] for r in results] == [i * 2 for i in range(20)]


def test_example_tools_module_loads_with_schemas() -> None:
    registry = ToolRegistry.from_module("voicefleet.examples.tools")
    assert sorted(registry.tools) == ["check_url", "get_weather"]
    assert registry.tools["get_weather"].spec()["parameters"]["required"] == ["location"]
