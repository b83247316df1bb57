"""Secret masking (kbbot.core.secrets): every kind the issue names, link tokens, counts, no false alarms."""

from __future__ import annotations

import pytest

from kbbot.core.models import Attachment, Thread, ThreadMessage
from kbbot.core.secrets import MASK, mask_text, mask_thread, strip_link_tokens
from tests.planted_secrets import LEAKS, PLANTED


@pytest.mark.parametrize("kind", sorted(PLANTED))
def test_each_kind_is_masked(kind: str) -> None:
    masked, count = mask_text(f"here it is: {PLANTED[kind]} — careful")
    assert LEAKS[kind] not in masked
    assert MASK in masked and count >= 1
    assert masked.startswith("here it is: ") and masked.endswith(" — careful")


def test_password_in_url_keeps_the_host() -> None:
    masked, count = mask_text("clone https://deploy:hunter2hunter2@git.example.com/repo.git")
    assert "hunter2" not in masked and count == 1
    assert masked == f"clone https://{MASK}@git.example.com/repo.git"


def test_slack_file_link_token_is_stripped_not_masked() -> None:
    url = "https://files.slack.com/files-pri/T0AB-F0CD/report.pdf?t=xoxe-123456789012-abcdef0123456789"
    assert strip_link_tokens(url) == ("https://files.slack.com/files-pri/T0AB-F0CD/report.pdf", 1)
    assert strip_link_tokens("x?t=xoxe-1-a&dl=1 y?dl=1&t=xoxe-2-b&z=1 w?dl=1&t=xoxe-3-c") == (
        "x?dl=1 y?dl=1&z=1 w?dl=1",
        3,
    )
    masked, count = mask_text(f"see <{url}>")
    assert masked == "see <https://files.slack.com/files-pri/T0AB-F0CD/report.pdf>" and count == 1


@pytest.mark.parametrize(
    "text",
    [
        "commit 3f786850e387550fdab836ed7e6dc881de23001b fixed it",
        "the password is in the vault, ask @ops",
        "mail me at ada@example.com or see https://example.com/a@b",
        "uuid 123e4567-e89b-12d3-a456-426614174000 and base64 aGVsbG8gd29ybGQ=",
        "",
        "ünïcødé 🎉 \x00\x1f",
        "xoxo-see-you-all and we use APACHEKAFKA2024 today",
        "com.example.MyService.handleRequest(Request.java:42) and NodeJS.Timeout.refresh()",
    ],
)
def test_ordinary_chat_is_left_alone(text: str) -> None:
    assert mask_text(text) == (text, 0)


def test_huge_text_is_linear_enough() -> None:
    # Adversarial: a long run of token-ish characters must not blow up (regexes are bounded or linear).
    text = ("xoxb-" + "1" * 50 + " ") * 2000 + "A" * 100_000
    masked, count = mask_text(text)
    assert count == 1 and masked.count(MASK) == 2000 and "xoxb-" not in masked  # one secret, 2000 times


def test_mask_thread_counts_messages_attachments_and_title() -> None:
    thread = Thread(
        "slack",
        "C1:1.0",
        (
            ThreadMessage("ada", "U1", "2026-01-01T00:00:00+00:00", f"token {PLANTED['slack bot']}"),
            ThreadMessage(
                "bob",
                "U2",
                "2026-01-01T00:01:00+00:00",
                "file attached",
                attachments=(
                    Attachment("log.txt", "https://files.slack.com/files-pri/T1-F1/log.txt?t=xoxe-1-abcdef0123"),
                    Attachment(f"key {PLANTED['aws']}.txt", f"https://example.com/?key={PLANTED['github']}"),
                ),
            ),
            ThreadMessage("cy", "U3", "2026-01-01T00:02:00+00:00", "nothing here"),
        ),
        title_hint=f"leaked {PLANTED['jwt']}",
    )
    masked, title = mask_thread(thread, f"title {PLANTED['gcp']}")
    assert masked.count == 6  # slack bot, link token, aws, github, the hint's jwt, the title's gcp
    assert title is not None and PLANTED["gcp"] not in title
    text = repr(masked.thread)
    for secret in ("slack bot", "aws", "github", "jwt"):
        assert LEAKS[secret] not in text
    assert "xoxe" not in text
    log, keyfile = masked.thread.messages[1].attachments
    assert log.url == "https://files.slack.com/files-pri/T1-F1/log.txt"
    assert keyfile.url == ""  # a link that held a secret is dropped, its (masked) name stays
    assert masked.thread.messages[2] is thread.messages[2]


def test_nothing_to_mask_returns_the_same_thread() -> None:
    thread = Thread("text", "k", (ThreadMessage("a", "a", "", "hello"),))
    masked, title = mask_thread(thread, None)
    assert masked.thread is thread and masked.count == 0 and title is None
