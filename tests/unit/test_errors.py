"""Every error class survives the trip between replicas (JSON through Redis) as itself."""

from __future__ import annotations

import json

import pytest

from kbbot import errors
from kbbot.errors import KbbotError, error_payload, rebuild_error

SAMPLES: list[KbbotError] = [
    errors.KbbotError("something went wrong"),
    errors.ConfigError("REDIS_URL must look like redis://host:6379/0"),
    errors.DataDirError("KBBOT_DATA_DIR /data: the disk is full"),
    errors.InvalidQuestion("the question is empty"),
    errors.SaveError("the thread is too long to save"),
    errors.TranscriptError("thread.txt is not a transcript"),
    errors.ExportError("export.zip has no channels.json or users.json: not a Slack export"),
    errors.SearchIndexError("the index file cannot be read"),
    errors.ShuttingDown(),
    errors.OverAiBudget(),
    errors.KnowledgeBaseError("the wiki failed", status=418),
    errors.BadRequest("bad request", status=400),
    errors.Unauthorized("check the token", status=401),
    errors.QuotaExceeded("the monthly AI quota is used up", status=402),
    errors.Forbidden("the token lacks wiki.write", status=403),
    errors.NotFound("no such page", status=404),
    errors.VersionConflict("someone else kept editing", status=409),
    errors.RateLimited("slow down", retry_after=7.5),
    errors.Unavailable("the wiki is down", status=503),
    errors.TransportFailure("did not answer in time (ReadTimeout)", request_sent=True, timed_out=True),
    errors.BadResponse("not JSON", status=200),
    errors.Unsupported("MatHub cannot delete pages"),
]


def test_every_error_class_has_a_sample() -> None:
    classes = {cls for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, KbbotError)}
    assert classes == {type(sample) for sample in SAMPLES}


@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: type(e).__name__)
def test_round_trip_keeps_class_message_and_fields(error: KbbotError) -> None:
    rebuilt = rebuild_error(json.loads(json.dumps(error_payload(error))))
    assert type(rebuilt) is type(error)
    assert str(rebuilt) == str(error) and vars(rebuilt) == vars(error)


@pytest.mark.parametrize("payload", [{}, {"error": "SomethingNewer", "message": "m"}, {"error": "Exception"}])
def test_unknown_or_foreign_names_become_unavailable(payload: dict[str, str]) -> None:
    rebuilt = rebuild_error(payload)
    assert type(rebuilt) is errors.Unavailable and str(rebuilt)
