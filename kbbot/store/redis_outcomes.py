"""The outcome log (:class:`kbbot.core.outcomes.OutcomeLog`) in Redis, shared by every replica.

Under the knowledgebase's namespace: ``<prefix>outcomes`` is a sorted set (score = Unix time, member = the
outcome as JSON with a random id, so two identical outcomes stay two), ``<prefix>ai-calls`` a hash of billed
AI calls per UTC day. Retention trims both by score/day.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, cast

from kbbot.core.outcomes import Kind, Outcome, day_of
from kbbot.store.sqlite_outcomes import MAX_QUESTION_CHARS

if TYPE_CHECKING:
    from redis.asyncio import Redis

_KINDS = frozenset(kind.value for kind in Kind)


class RedisOutcomeLog:
    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self._redis = redis
        self._outcomes = f"{prefix}outcomes"
        self._calls = f"{prefix}ai-calls"

    async def record(self, outcome: Outcome) -> None:
        question = outcome.question[:MAX_QUESTION_CHARS] if outcome.question is not None else None
        member = json.dumps(
            [uuid.uuid4().hex[:12], outcome.at, outcome.platform, outcome.channel, outcome.knowledgebase,
             outcome.kind.value, outcome.source, question],
            ensure_ascii=False,
        )
        await self._redis.zadd(self._outcomes, {member: outcome.at})

    async def since(self, at: float) -> list[Outcome]:
        members = await self._redis.zrangebyscore(self._outcomes, at, "+inf")
        outcomes = []
        for raw in members:
            try:
                _, when, platform, channel, kb, kind, source, question = json.loads(cast(bytes, raw))
            except (ValueError, TypeError):
                continue  # not ours (or from a future version): skip rather than fail the report
            if kind in _KINDS:
                outcomes.append(Outcome(float(when), platform, channel, kb, Kind(kind), source, question))
        return outcomes

    async def count_ai_call(self, day: str) -> None:
        await self._redis.hincrby(self._calls, day, 1)

    async def ai_calls(self, since_day: str) -> dict[str, int]:
        raw = await self._redis.hgetall(self._calls)
        days = {_str(day): int(calls) for day, calls in raw.items()}
        return {day: calls for day, calls in days.items() if day >= since_day}

    async def prune(self, before: float) -> int:
        gone = int(await self._redis.zremrangebyscore(self._outcomes, "-inf", f"({before}"))
        cutoff = day_of(before)
        old = [day for day in map(_str, await self._redis.hkeys(self._calls)) if day < cutoff]
        if old:
            await self._redis.hdel(self._calls, *old)
        return gone

    async def aclose(self) -> None:
        return None  # the client belongs to the store bundle


def _str(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
