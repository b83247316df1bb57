"""Follow-ups in a conversation: which replies need no answer, and the standalone question sent upstream.

The wiki's AI is stateless (it gets ``q`` and nothing else), so "and on a Mac?" after "How do I set up the
VPN?" means nothing to it. Instead of asking a language model to rewrite the question (billed, slow, and
impossible to explain), the rule is plain and deterministic:

* a follow-up that is short (at most :data:`SHORT_WORDS` words) or starts with a pronoun or a
  connective ("it", "that", "and", "what about" …) gets the content words of the thread's topic question
  added in brackets: ``and on a Mac (set up VPN)?``;
* the topic question is the latest earlier question not led that way (so "what about Windows?" after
  "and on a Mac?" carries the VPN topic, not "Mac"); words the follow-up already has are not repeated.

The standalone form is what the cache key, the single-flight, the AI call and the search fallback all see,
so the same follow-up in another thread on the same topic is answered from the cache.

Acknowledgements ("thanks!", "ok", "got it, thanks", "perfect, that worked", 👍) are recognised by a small
word list: they get no answer and cost no AI call. A question mark or a question word always makes a
question.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from kbbot.core.stopwords import STOPWORDS

#: A follow-up of at most this many words is taken to lean on the thread's topic ("Mac?", "VPN on Mac?").
SHORT_WORDS = 3
#: At most this many words of the topic are carried over (a long first question is not a better topic).
MAX_CARRIED = 8

_WORD = re.compile(r"\w+", re.UNICODE)
#: Letters or digits anywhere: without them a reply is emoji, punctuation or whitespace only.
_ALNUM = re.compile(r"[^\W_]", re.UNICODE)

#: Words that open a question ("how", "what" …); any of them anywhere makes a question.
QUESTION_WORDS = frozenset(["what", "how", "why", "where", "when", "who", "whom", "whose", "which"])
#: Words that open a yes/no question when they come first ("can I …", "does it …").
_LEADING_AUXILIARIES = frozenset(
    [
        "can", "could", "do", "does", "did", "is", "are", "was", "were", "should", "would", "will", "shall",
        "may", "might", "must", "has", "have", "had", "am",
    ]
)
#: Everything an acknowledgement is made of: thanks, agreement, "that worked", laughter.
_ACK_WORDS = frozenset(
    """
    thanks thank thx ty tysm tyvm cheers ta merci danke gracias kudos appreciated appreciate much very so lot lots
    ok okay okey k kk alright right sure fine good great cool nice neat perfect awesome amazing excellent
    brilliant wonderful fantastic super sweet lovely helpful helps helped useful
    got it that this works worked working work did does do the trick solved fixed done sorted resolved
    yes yep yeah yup ya no nope nah np problem noted understood roger ack makes sense clear see
    ah oh aha ahh ohh lol haha hah heh wow yay hooray
    i i'm im you u all a again man mate guys folks now will try that's thats its it's that'll
    """.split()  # noqa: SIM905 - a word list reads best as words
)
#: Words that make a follow-up lean on what came before when it starts with them.
_LEADS = frozenset(
    """
    it its this that these those they them their there then and or but also so same else too either
    """.split()  # noqa: SIM905
)
#: Two-word openings that lean on the topic ("what about …", "how about …").
_LEAD_PAIRS = frozenset({("what", "about"), ("how", "about")})
#: "set up", "log in": a particle after a kept word is part of the topic.
_PARTICLES = frozenset(["up", "in", "out", "off", "down", "over", "back"])


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def is_question(text: str) -> bool:
    """A question mark, a question word anywhere, or a leading auxiliary ("can I …") makes a question."""
    if "?" in text or "？" in text:
        return True
    words = [w.casefold() for w in _words(text)]
    return bool(words) and (words[0] in _LEADING_AUXILIARIES or any(w in QUESTION_WORDS for w in words))


def is_acknowledgement(text: str) -> bool:
    """True for replies that need no answer: emoji or punctuation only, or thanks/agreement words only
    ("thanks!", "ok", "got it, thanks", "perfect, that worked"). Never for a question (see :func:`is_question`).
    """
    if is_question(text):
        return False
    if not _ALNUM.search(text):
        return True  # "👍", "🙏🙏", ":+1:" without letters … (Slack's :emoji: names are letters: see below)
    stripped = _SLACK_EMOJI.sub(" ", text)
    words = [w.casefold() for w in _words(stripped)]
    return all(w in _ACK_WORDS for w in words)


#: Slack writes emoji as ``:name:`` (``:+1:``, ``:pray::skin-tone-2:``) in message text.
_SLACK_EMOJI = re.compile(r":[a-z0-9_+\-']+:")


def content_words(text: str) -> list[str]:
    """The words that carry a question's topic, in order, as typed: stopwords and 1-letter words dropped, a
    particle kept after a kept word ("set up"), each word once."""
    out: list[str] = []
    seen: set[str] = set()
    previous_kept = False
    for word in _words(text):
        folded = word.casefold()
        keep = len(folded) > 1 and folded not in STOPWORDS
        particle = folded in _PARTICLES and previous_kept
        if (keep or particle) and folded not in seen:
            out.append(word)
            seen.add(folded)
        previous_kept = keep or particle
    return out


def _led(text: str) -> bool:
    """Led by a pronoun or a connective: "and on a Mac?", "does it work offline?", "what about Windows?"."""
    words = [w.casefold() for w in _words(text)]
    if not words:
        return False
    if words[0] in _LEADS or tuple(words[:2]) in _LEAD_PAIRS:
        return True
    return words[0] in _LEADING_AUXILIARIES and len(words) > 1 and words[1] in _LEADS  # "does it …"


def leans_on_context(text: str) -> bool:
    """True when ``text`` alone probably does not say what it is about: pronoun- or connective-led, or short
    (at most :data:`SHORT_WORDS` words: "Mac?", "VPN on Mac?")."""
    return _led(text) or len(_words(text)) <= SHORT_WORDS


def standalone_question(text: str, earlier: Sequence[str]) -> str:
    """``text`` as a question that stands on its own, carrying the topic of ``earlier`` (the thread's earlier
    questions, oldest first) when it leans on context; otherwise ``text`` unchanged (see the module doc)."""
    if not earlier or not leans_on_context(text):
        return text
    topic = next((q for q in reversed(earlier) if not _led(q) and content_words(q)), None)
    sources = [topic] if topic is not None else list(earlier)
    have = {w.casefold() for w in _words(text)}
    carried: list[str] = []
    for source in sources:
        for word in content_words(source):
            if word.casefold() not in have:
                have.add(word.casefold())
                carried.append(word)
    carried = carried[:MAX_CARRIED]
    if not carried:
        return text
    # Inside the sentence, before its closing "?": "and on a Mac?" and "and on a Mac" stay one cache key.
    body, end = _TRAILING.fullmatch(text).groups()  # type: ignore[union-attr]  # matches every string
    return f"{body} ({' '.join(carried)}){end}"


_TRAILING = re.compile(r"(.*?)([\s?!.…？！。]*)", re.DOTALL)
