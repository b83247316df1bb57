"""Graceful shutdown: stop intake, finish in-flight work (bounded), then close — on a real SIGTERM too."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from kbbot.ops.shutdown import GracefulShutdown, ShuttingDown, TaskTracker

ROOT = Path(__file__).resolve().parents[3]


async def test_tracker_waits_for_in_flight_work() -> None:
    tracker = TaskTracker()
    done: list[int] = []

    async def work(i: int) -> int:
        await asyncio.sleep(0.05 * i)
        done.append(i)
        return i

    tasks = [tracker.spawn(work(i)) for i in range(1, 4)]
    assert tracker.in_flight() == 3
    assert await tracker.drain(5) == 0
    assert sorted(done) == [1, 2, 3] and [t.result() for t in tasks] == [1, 2, 3]
    assert tracker.in_flight() == 0


async def test_tracker_refuses_new_work_after_close() -> None:
    tracker = TaskTracker()
    tracker.close()

    async def work() -> None:
        raise AssertionError("must never start")

    coro = work()
    with pytest.raises(ShuttingDown) as info:
        tracker.spawn(coro)
    assert "ask again" in str(info.value)
    assert coro.cr_frame is None  # closed, so no "never awaited" warning
    with pytest.raises(ShuttingDown):
        async with tracker.work():
            pass


async def test_tracker_drain_is_bounded_and_cancels_stragglers() -> None:
    tracker = TaskTracker()
    cancelled = asyncio.Event()

    async def stuck() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    tracker.spawn(stuck())
    # Bounded: it returns after its 0.2 s, long before the straggler's 60 s (the guard would fire first).
    assert await asyncio.wait_for(tracker.drain(0.2), 30) == 1
    assert cancelled.is_set()


async def test_tracker_work_block_is_tracked() -> None:
    tracker = TaskTracker()
    entered = asyncio.Event()
    finished = False

    async def inline() -> None:
        nonlocal finished
        async with tracker.work():
            entered.set()
            await asyncio.sleep(0.1)
            finished = True

    task = asyncio.create_task(inline())
    await entered.wait()
    assert tracker.in_flight() == 1
    await tracker.drain(5)
    assert finished and task.done()


async def test_shutdown_order_intake_then_drain_then_close_in_reverse() -> None:
    tracker = TaskTracker()
    shutdown = GracefulShutdown(tracker, grace_seconds=5, step_timeout_seconds=1)
    events: list[str] = []

    async def answer() -> None:
        await asyncio.sleep(0.1)
        events.append("answer finished")

    async def stop_server() -> None:
        events.append("intake stopped")

    async def flush_outbox() -> None:
        events.append("outbox flushed")

    async def close_stores() -> None:
        events.append("stores closed")

    async def broken_closer() -> None:
        raise RuntimeError("close failed")

    shutdown.on_stop_intake(stop_server)
    shutdown.on_close(close_stores)
    shutdown.on_close(broken_closer, name="broken")
    shutdown.on_close(flush_outbox)
    tracker.spawn(answer())
    assert not shutdown.draining
    shutdown.request(signal.SIGTERM)
    assert shutdown.draining
    await asyncio.wait_for(shutdown.wait(), 1)
    report = await shutdown.run()
    assert events == ["intake stopped", "answer finished", "outbox flushed", "stores closed"]
    assert report.cancelled == 0 and report.failed_steps == ("broken",)


async def test_second_signal_stops_waiting() -> None:
    tracker = TaskTracker()
    shutdown = GracefulShutdown(tracker, grace_seconds=30)

    async def slow() -> None:
        await asyncio.sleep(60)

    intake_stopped = asyncio.Event()

    async def stop_intake() -> None:
        intake_stopped.set()

    tracker.spawn(slow())
    shutdown.on_stop_intake(stop_intake)
    shutdown.request()
    runner = asyncio.create_task(shutdown.run())
    await intake_stopped.wait()  # the last step before the drain; a few loop turns later run() waits in it
    for _ in range(20):
        await asyncio.sleep(0)
    assert not runner.done()
    shutdown.request()  # impatient operator: second Ctrl-C
    report = await asyncio.wait_for(runner, 2)
    assert report.cancelled == 1


_PROGRAM = """
import asyncio
from kbbot.ops.shutdown import GracefulShutdown, TaskTracker

async def main():
    tracker = TaskTracker()
    shutdown = GracefulShutdown(tracker, grace_seconds=5)
    shutdown.install()

    async def answer():
        await asyncio.sleep(0.3)
        print("answer delivered", flush=True)

    async def flush():
        print("outbox flushed", flush=True)

    shutdown.on_close(flush)
    tracker.spawn(answer())
    print("ready", flush=True)
    await shutdown.wait()
    print("draining", flush=True)
    try:
        tracker.spawn(answer())
    except Exception as exc:
        print("refused:", type(exc).__name__, flush=True)
    report = await shutdown.run()
    print("exit", report.cancelled, flush=True)

asyncio.run(main())
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_real_signal_in_a_subprocess(sig: signal.Signals) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _PROGRAM,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    assert (await asyncio.wait_for(proc.stdout.readline(), 20)).strip() == b"ready"
    proc.send_signal(sig)
    out = (await asyncio.wait_for(proc.stdout.read(), 10)).decode().splitlines()
    assert await proc.wait() == 0
    assert out == ["draining", "refused: ShuttingDown", "answer delivered", "outbox flushed", "exit 0"]


async def test_a_drain_step_may_take_longer_than_the_step_timeout() -> None:
    # `kbbot run` drains Slack's in-flight answers in a stop-intake step: an AI answer often takes longer than
    # the few seconds a close step gets, and must not be cut off (nor the clean stop reported as failed).
    shutdown = GracefulShutdown(TaskTracker(), grace_seconds=5, step_timeout_seconds=0.05)
    events: list[str] = []

    async def drain_answers() -> None:
        await asyncio.sleep(0.3)
        events.append("answers drained")

    async def hung_intake() -> None:
        await asyncio.sleep(10)

    shutdown.on_stop_intake(drain_answers, name="drain", timeout_seconds=5)
    shutdown.on_stop_intake(hung_intake, name="hung")  # the default step timeout still bounds the others
    report = await asyncio.wait_for(shutdown.run(), 3)
    assert events == ["answers drained"]
    assert report.failed_steps == ("hung",)


async def test_one_grace_period_covers_intake_steps_and_the_drain(monkeypatch: pytest.MonkeyPatch) -> None:
    # What stopping intake waited (Slack's own drain) is taken off the tracker's drain, so a stop never takes
    # much longer than grace_seconds however the waiting is split.
    tracker = TaskTracker()
    shutdown = GracefulShutdown(tracker, grace_seconds=0.2, step_timeout_seconds=5)
    intake_seconds = 0.15

    async def slow_intake_drain() -> None:
        await asyncio.sleep(intake_seconds)

    drains: list[float] = []
    real_drain = tracker.drain

    async def drain(timeout_seconds: float) -> int:
        drains.append(timeout_seconds)
        return await real_drain(timeout_seconds)

    monkeypatch.setattr(tracker, "drain", drain)
    straggler = tracker.spawn(asyncio.sleep(10))
    shutdown.on_stop_intake(slow_intake_drain, name="slack drain", timeout_seconds=5)
    report = await asyncio.wait_for(shutdown.run(), 5)
    assert straggler.cancelled() and report.cancelled == 1
    # The drain got what the intake step left of the answer time, not a fresh answer time of its own.
    assert drains[0] <= shutdown.answer_seconds - intake_seconds + 0.01
