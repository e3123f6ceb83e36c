"""Barge-in in the core: truncation at what the user heard, cancel handling, races."""

from __future__ import annotations

from tests.unit.helpers import delta, frame, make_session, ready, to_client, to_upstream
from voicefleet.realtime.limits import SessionLimits
from voicefleet.realtime.playback import PlaybackTracker
from voicefleet.realtime.session import RealtimeSession


def _playing(now: float = 0.0, *, interrupt_response: bool = True, grace: float = 0.25) -> RealtimeSession:
    core = make_session(limits=SessionLimits(client_truncate_grace_s=grace))
    ready(
        core,
        audio={"input": {"turn_detection": {"type": "server_vad", "interrupt_response": interrupt_response}}},
    )
    core.upstream_text(frame("response.created", response={"id": "resp_1"}), now)
    return core


def _speech(core: RealtimeSession, now: float) -> list[dict[str, object]]:
    return to_upstream(
        core.upstream_text(frame("input_audio_buffer.speech_started", audio_start_ms=1, item_id="u2"), now)
    )


def test_interruption_mid_item_without_acks_truncates_at_wall_clock_after_grace() -> None:
    core = _playing()
    core.upstream_text(delta("a1", 1000), 0.0)  # one second of audio, sent at once (faster than real time)
    assert _speech(core, 0.4) == []  # waits for a client that might truncate itself
    assert core.tick(0.5) == []
    (truncate,) = to_upstream(core.tick(0.66))
    assert truncate["type"] == "conversation.item.truncate"
    assert (truncate["item_id"], truncate["audio_end_ms"], truncate["content_index"]) == ("a1", 400, 0)
    assert core.interruptions == 1


def test_interruption_with_playback_acks_truncates_at_once_from_the_ack() -> None:
    core = _playing()
    core.upstream_text(delta("a1", 1000), 0.0)
    # The client started playing late: 300 ms heard at t=0.5 (network and jitter buffer delay).
    core.client_text(frame("fleet.playback", item_id="a1", played_ms=300), 0.5)
    (truncate,) = _speech(core, 0.6)
    assert truncate["audio_end_ms"] == 400  # 300 ms reported + 100 ms played since


def test_estimate_is_clamped_to_audio_sent() -> None:
    core = _playing()
    core.upstream_text(delta("a1", 200), 0.0)
    core.upstream_text(delta("a1", 100), 0.1)
    core.client_text(frame("fleet.playback", item_id="a1", played_ms=5000), 0.2)  # a client over-reporting
    assert _speech(core, 0.25) == []  # clamped to 300 ms sent: fully heard, nothing to cut


def test_item_fully_played_needs_no_truncate() -> None:
    core = _playing()
    core.upstream_text(delta("a1", 500), 0.0)
    core.upstream_text(frame("response.done", response={"id": "resp_1", "status": "completed"}), 0.1)
    assert _speech(core, 0.8) == []
    assert core.tick(2.0) == []
    assert core.interruptions == 0


def test_two_items_in_one_response_cut_the_one_playing_and_zero_the_next() -> None:
    core = _playing()
    core.upstream_text(delta("a1", 500), 0.0)
    core.upstream_text(delta("a2", 500, response_id="resp_1"), 0.05)
    core.upstream_text(delta("a3", 300), 0.06)
    core.client_text(frame("fleet.playback", item_id="a1", played_ms=100), 0.1)
    cuts = _speech(core, 0.7)
    # a1 (500 ms) was heard in full; 100 + 600 ms of playback means 200 ms into a2; a3 never started.
    assert [(c["item_id"], c["audio_end_ms"]) for c in cuts] == [("a2", 200), ("a3", 0)]


def test_playback_run_restarts_after_the_client_drained_its_buffer() -> None:
    tracker = PlaybackTracker()
    tracker.audio_sent("a1", 48 * 300, now=0.0)
    tracker.audio_sent("b1", 48 * 1000, now=5.0)  # long after a1 finished playing
    assert tracker.truncation_plan(5.4) == [("b1", 400)]


def test_client_that_truncates_itself_within_grace_gets_no_second_truncate() -> None:
    core = _playing()
    core.upstream_text(delta("a1", 1000), 0.0)
    _speech(core, 0.4)
    own = frame("conversation.item.truncate", item_id="a1", content_index=0, audio_end_ms=390)
    assert [e["audio_end_ms"] for e in to_upstream(core.client_text(own, 0.45))] == [390]
    assert to_upstream(core.tick(1.0)) == []


def test_late_client_truncate_after_the_worker_truncated_is_not_sent_twice() -> None:
    core = _playing(grace=0.0)
    core.upstream_text(delta("a1", 1000), 0.0)
    (ours,) = _speech(core, 0.4)
    assert ours["audio_end_ms"] == 400
    late = frame("conversation.item.truncate", item_id="a1", content_index=0, audio_end_ms=420)
    assert to_upstream(core.client_text(late, 0.9)) == []


def test_worker_cancels_when_server_does_not_and_absorbs_the_race() -> None:
    core = _playing(interrupt_response=False, grace=0.0)
    core.upstream_text(delta("a1", 1000), 0.0)
    sent = _speech(core, 0.3)
    assert [e["type"] for e in sent] == ["response.cancel", "conversation.item.truncate"]
    assert sent[0]["response_id"] == "resp_1"
    race = frame(
        "error",
        error={
            "type": "invalid_request_error",
            "code": "response_cancel_not_active",
            "event_id": sent[0]["event_id"],
        },
    )
    assert to_client(core.upstream_text(race, 0.31)) == []
    # A client's own cancel that lost the same race is not shown as a failure either.
    client_race = frame(
        "error",
        error={"type": "invalid_request_error", "code": "response_cancel_not_active", "event_id": "c7"},
    )
    assert to_client(core.upstream_text(client_race, 0.32)) == []


def test_server_auto_cancel_means_no_cancel_from_the_worker() -> None:
    core = _playing(interrupt_response=True, grace=0.0)
    core.upstream_text(delta("a1", 1000), 0.0)
    assert [e["type"] for e in _speech(core, 0.3)] == ["conversation.item.truncate"]


def test_truncated_transcript_keeps_what_was_heard() -> None:
    core = _playing(grace=0.0)
    core.upstream_text(delta("a1", 1000), 0.0)
    reply = {
        "id": "a1",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_audio", "transcript": "0123456789"}],
    }
    core.upstream_text(frame("conversation.item.done", item=reply), 0.1)
    _speech(core, 0.3)
    core.upstream_text(
        frame("conversation.item.truncated", item_id="a1", content_index=0, audio_end_ms=300), 0.35
    )
    assert core.conversation.records()[0]["text"] == "012…"
