"""Session continuity in the core: upstream loss and rotation, client detach and resume, drain, handover."""

from __future__ import annotations

from tests.unit.helpers import (
    DEFAULTS,
    closes,
    delta,
    frame,
    make_session,
    ready,
    session_obj,
    to_client,
    to_upstream,
)
from voicefleet.realtime.actions import Action, Checkpoint, ReplaceUpstream
from voicefleet.realtime.continuity import RESUME_NOTE, SessionState
from voicefleet.realtime.conversation import ConversationLog
from voicefleet.realtime.limits import SessionLimits
from voicefleet.realtime.policy import SessionPolicy, default_session
from voicefleet.realtime.session import RealtimeSession, SessionIdentity


def _replace(actions: list[Action]) -> ReplaceUpstream | None:
    return next((a for a in actions if isinstance(a, ReplaceUpstream)), None)


def _with_history(core: RealtimeSession) -> None:
    user = {
        "id": "u1",
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "Hi there"}],
    }
    reply = {
        "id": "a1",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_audio", "transcript": "Hello!"}],
    }
    core.upstream_text(frame("conversation.item.done", item=user), 1.0)
    core.upstream_text(frame("conversation.item.done", item=reply), 1.5)


def _rebuild(core: RealtimeSession, now: float) -> tuple[list[Action], list[Action]]:
    """A new upstream opens and answers; (actions on session.created, actions on session.updated)."""
    core.upstream_opened(now)
    created = core.upstream_text(frame("session.created", session=session_obj(id="sess_new")), now)
    updated = core.upstream_text(frame("session.updated", session=session_obj(id="sess_new")), now)
    return created, updated


def test_lost_upstream_is_rebuilt_and_the_client_only_sees_notices() -> None:
    core = make_session()
    ready(core, expires_at=123, object="realtime.session")
    _with_history(core)
    lost = core.upstream_lost(1006, "", 2.0)
    assert [e["type"] for e in to_client(lost)] == ["fleet.upstream"]
    assert to_client(lost)[0]["state"] == "reconnecting"
    assert _replace(lost) is not None and closes(lost) == []
    held = frame("input_audio_buffer.append", audio="AAAA")
    assert core.client_text(held, 2.1) == []  # held for the new upstream
    created, updated = _rebuild(core, 2.5)
    sent = to_upstream(created)
    assert sent[0]["type"] == "session.update"
    assert (
        "expires_at" not in sent[0]["session"]
        and "id" not in sent[0]["session"]
        and "object" not in sent[0]["session"]
    )
    items = [e["item"] for e in sent[1:] if e["type"] == "conversation.item.create"]
    assert [(i["role"], i["content"][0]["text"]) for i in items] == [
        ("user", "Hi there"),
        ("assistant", "Hello!"),
        ("system", RESUME_NOTE),
    ]
    assert sent[-1] == {"type": "input_audio_buffer.append", "audio": "AAAA"}
    assert to_client(created) == []
    assert [(e["type"], e["state"]) for e in to_client(updated)] == [("fleet.upstream", "restored")]
    # The replayed items' own events are not shown to the client: it has them already.
    echo = frame("conversation.item.added", item={"id": items[0]["id"], "type": "message"})
    assert to_client(core.upstream_text(echo, 2.6)) == []
    assert core.state is SessionState.ACTIVE


def test_a_response_cut_by_the_loss_is_reported_failed() -> None:
    core = make_session()
    ready(core)
    core.upstream_text(frame("response.created", response={"id": "resp_9"}), 1.0)
    done = [e for e in to_client(core.upstream_lost(1011, "", 1.2)) if e["type"] == "response.done"]
    assert done[0]["response"]["id"] == "resp_9" and done[0]["response"]["status"] == "failed"


def test_session_expired_is_retried_and_repeated_failures_end_the_session() -> None:
    core = make_session(limits=SessionLimits(max_upstream_reconnects=2))
    ready(core)
    core.upstream_text(
        frame("error", error={"type": "invalid_request_error", "code": "session_expired"}), 1.0
    )
    assert _replace(core.upstream_lost(1000, "", 1.0)) is not None
    assert _replace(core.upstream_lost(1006, "", 1.5)) is not None  # the reconnect itself failed
    final = core.upstream_lost(1006, "", 2.0)
    assert _replace(final) is None and closes(final)[0].code == 1011


def test_rotation_happens_silently_at_a_turn_boundary_before_the_cap() -> None:
    core = make_session(limits=SessionLimits(upstream_max_session_s=8.0))
    ready(core)  # upstream opened at t=0; rotation is due from t=6
    core.upstream_text(frame("response.created", response={"id": "r1"}), 5.9)
    assert _replace(core.tick(6.2)) is None  # mid-response: wait
    core.upstream_text(frame("response.done", response={"id": "r1", "status": "completed"}), 6.3)
    assert _replace(core.tick(6.4)) is None  # transcripts of the turn may still arrive
    rotation = core.tick(6.6)
    assert _replace(rotation) is not None and to_client(rotation) == []
    _, updated = _rebuild(core, 7.0)
    assert to_client(updated) == []
    assert _replace(core.tick(8.0)) is None  # the new upstream has its own clock


def test_detached_client_resumes_with_every_event_after_last_seq() -> None:
    core = make_session(limits=SessionLimits(resume_grace_s=30))
    ready(core)  # seq 1-2
    core.upstream_text(delta("a1", 100), 1.0)  # seq 3, the client got it
    core.client_detached(1.1)
    core.upstream_text(delta("a1", 100), 1.2)  # seq 4
    core.upstream_text(frame("response.done", response={"id": "resp_1", "status": "completed"}), 1.3)  # seq 5
    assert core.tick(20.0) == []  # within grace
    frames, gap = core.client_attached(25.0, last_seq=3)
    assert len(frames) == 2 and not gap
    assert '"response.done"' in frames[1]


def test_grace_period_ends_the_session() -> None:
    core = make_session(limits=SessionLimits(resume_grace_s=30))
    ready(core)
    core.client_detached(1.0)
    out = core.tick(31.5)
    assert core.state is SessionState.CLOSED and core.end_reason == "client_gone"
    assert [a.reason for a in out if isinstance(a, Checkpoint)] == ["ended"]


def test_resume_elsewhere_replays_the_record_and_continues_the_count() -> None:
    record = ConversationLog([{"id": "u1", "type": "message", "role": "user", "text": "Book a table"}])
    config = session_obj(id="sess_old", expires_at=99)
    core = RealtimeSession(
        SessionIdentity("vf_test", "token-2", resumed=True),
        SessionPolicy(default_session(DEFAULTS)),
        SessionLimits(),
        0.0,
        record,
        initial_seq=41,
        effective_session=config,
    )
    created, updated = _rebuild(core, 0.1)
    assert [e["type"] for e in to_upstream(created)] == [
        "session.update",
        "conversation.item.create",
        "conversation.item.create",
    ]
    events = to_client(updated)
    assert [e["type"] for e in events] == ["session.created", "fleet.session"]
    assert (events[1]["resumed"], events[1]["replayed"], events[1]["resume_token"]) == (True, 1, "token-2")
    assert core.seq == 43


def test_drain_of_a_detached_session_checkpoints_it_for_resume_elsewhere() -> None:
    core = make_session()
    ready(core)
    core.client_detached(1.0)
    out = core.drain(2.0)
    assert [a.reason for a in out if isinstance(a, Checkpoint)] == ["migrate"]
    assert core.state is SessionState.CLOSED


def test_a_stale_owner_stops_without_writing() -> None:
    core = make_session()
    ready(core)
    out = core.stale_owner(3.0)
    assert not [a for a in out if isinstance(a, Checkpoint)]
    assert closes(out)[0].code == 1012


def test_each_final_item_and_late_transcript_is_checkpointed_before_the_turn_ends() -> None:
    core = make_session()
    ready(core)
    user = {
        "id": "u1",
        "type": "message",
        "role": "user",
        "content": [{"type": "input_audio", "transcript": None}],
    }
    reply = {
        "id": "a1",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_audio", "transcript": "Hi"}],
    }
    for event in (frame("conversation.item.done", item=user), frame("conversation.item.done", item=reply)):
        out = core.upstream_text(event, 1.0)
        assert [a.reason for a in out if isinstance(a, Checkpoint)] == ["item"]
    late = frame("conversation.item.input_audio_transcription.completed", item_id="u1", transcript="Hello")
    assert [a.reason for a in core.upstream_text(late, 1.2) if isinstance(a, Checkpoint)] == ["item"]
    mcp = frame("conversation.item.done", item={"id": "m1", "type": "mcp_call"})
    assert not [a for a in core.upstream_text(mcp, 1.3) if isinstance(a, Checkpoint)]


def test_the_turn_checkpoint_is_a_barrier_before_response_done_reaches_the_client() -> None:
    core = make_session()
    ready(core)
    out = core.upstream_text(frame("response.done", response={"id": "r1", "status": "completed"}), 1.0)
    kinds = [("checkpoint", a.barrier) if isinstance(a, Checkpoint) else type(a).__name__ for a in out]
    assert kinds.index(("checkpoint", True)) < kinds.index("SendClient")


def test_the_replay_ring_is_bounded_by_bytes_and_reports_the_gap() -> None:
    core = make_session(limits=SessionLimits(ring_bytes=48_000))
    ready(core)  # seq 1-2
    for _ in range(20):
        core.upstream_text(delta("a1", 100), 1.0)  # ~6.5 KB each
    assert core.ring.bytes <= 48_000 and len(core.ring) < 22
    frames, gap = core.client_attached(2.0, last_seq=2)
    assert gap and 0 < len(frames) < 20
    frames, gap = core.client_attached(2.0, last_seq=core.seq - 2)
    assert len(frames) == 2 and not gap
