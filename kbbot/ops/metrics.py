"""Prometheus metrics behind the :class:`~kbbot.core.ports.MetricsSink` hooks.

:class:`Metrics` owns its own ``CollectorRegistry`` (never the process-global one), so that tests and
several bots in one process never collide, and it is handed in like every other dependency. The core and the
backends only see the ``MetricsSink`` protocol and never import prometheus.

Label values are bounded: anything that is not a short, plain token is folded into ``other`` so that a bug (or
user text sneaking into a label) cannot explode the number of series.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Awaitable, Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from kbbot.core.ports import FeedbackCounts, MetricsSink, QuotaState
from kbbot.core.quota_forecast import QuotaForecast

_LABEL = re.compile(r"^[A-Za-z0-9_.:/ -]{1,40}$")

#: Seconds. Answers from the cache take milliseconds, AI answers several seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)


def _label(value: object) -> str:
    text = str(value)
    return text if _LABEL.match(text) else "other"


class Metrics:
    """Counters and histograms for questions, cache, upstream calls, 429s, the 402 breaker and saves.

    With ``knowledgebases`` (a KBBOT_CONFIG file) every series of one knowledgebase carries a ``kb`` label and
    each knowledgebase reports through its own :meth:`for_kb` view; the environment's single knowledgebase keeps
    the label-free series it always had.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        namespace: str = "kbbot",
        knowledgebases: tuple[str, ...] = (),
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        reg, ns = self.registry, namespace
        self._kb: tuple[str, ...] = ("kb",) if knowledgebases else ()
        #: The knowledgebase that label-less calls (the scrape-time quota refresh) stand for.
        self._default_kb = knowledgebases[0] if knowledgebases else None
        kb = list(self._kb)
        self.questions = Counter(
            "questions", "Questions answered, by platform and answer source.", ["platform", "source", *kb],
            namespace=ns, registry=reg,
        )
        self.question_seconds = Histogram(
            "question_duration_seconds", "Time from question to answer.", ["platform", "source", *kb],
            namespace=ns, registry=reg, buckets=LATENCY_BUCKETS,
        )
        self.cache_hits = Counter("cache_hits", "Answer-cache hits.", kb, namespace=ns, registry=reg)
        self.cache_misses = Counter("cache_misses", "Answer-cache misses.", kb, namespace=ns, registry=reg)
        self.upstream_calls = Counter(
            "upstream_requests", "Knowledgebase API calls, by endpoint and HTTP status.",
            ["endpoint", "status", *kb],
            namespace=ns, registry=reg,
        )
        self.upstream_seconds = Histogram(
            "upstream_request_duration_seconds", "Knowledgebase API call latency.", ["endpoint", *kb],
            namespace=ns, registry=reg, buckets=LATENCY_BUCKETS,
        )
        self.rate_limited = Counter(
            "upstream_rate_limited", "429 responses from the knowledgebase API.", ["endpoint", *kb],
            namespace=ns, registry=reg,
        )
        self.quota_paused_gauge = Gauge(
            "quota_paused", "1 while AI answers are paused after a 402 (monthly AI quota used up).", kb,
            namespace=ns, registry=reg,
        )
        self.quota_next_probe = Gauge(
            "quota_next_probe_timestamp_seconds",
            "Unix time of the next allowed AI probe while paused (0 when not paused).", kb,
            namespace=ns, registry=reg,
        )
        self.saves = Counter(
            "thread_saves", "Thread saves, by outcome.", ["outcome", *kb], namespace=ns, registry=reg
        )
        self.save_seconds = Histogram(
            "thread_save_duration_seconds", "Time to save a thread as a page.", ["outcome", *kb],
            namespace=ns, registry=reg, buckets=LATENCY_BUCKETS,
        )
        # Replicas sharing a Redis outbox all report its one count: aggregate with max, not sum.
        self.saves_queued = Gauge(
            "thread_saves_queued",
            "Thread saves waiting in the outbox to be retried (the wiki was down, or the save keeps failing).", kb,
            namespace=ns, registry=reg,
        )
        self.feedback = Gauge(
            "feedback_votes", "Answer feedback votes, by verdict.", ["verdict"], namespace=ns, registry=reg
        )
        # Knowledgebases on one token share its quota: their series show the same count.
        self.ai_quota_used = Gauge(
            "ai_quota_used_ratio",
            "Share of the month's billed AI quota used (PERFECTWIKI_AI_QUOTA_MONTHLY); alert at 0.8.", kb,
            namespace=ns, registry=reg,
        )
        self.ai_quota_runs_out = Gauge(
            "ai_quota_runs_out_timestamp_seconds",
            "Unix time (UTC midnight) of the day the AI quota runs out at the current rate (0: lasts the month).",
            kb, namespace=ns, registry=reg,
        )

    def for_kb(self, name: str) -> MetricsSink:
        """The sink one knowledgebase's parts report to (this one itself without knowledgebase labels)."""
        return KnowledgebaseMetrics(self, name) if self._kb else self

    def _with_kb(self, kb: str | None, *labels: str) -> tuple[str, ...]:
        if not self._kb:
            return labels
        return (*labels, _label(kb or self._default_kb))

    # --- MetricsSink ----------------------------------------------------------------------------------------

    def question(self, platform: str, source: str, seconds: float, *, kb: str | None = None) -> None:
        labels = self._with_kb(kb, _label(platform), _label(source))
        self.questions.labels(*labels).inc()
        self.question_seconds.labels(*labels).observe(max(0.0, seconds))

    def cache(self, hit: bool, *, kb: str | None = None) -> None:
        counter = self.cache_hits if hit else self.cache_misses
        (counter.labels(*self._with_kb(kb)) if self._kb else counter).inc()

    def upstream(self, endpoint: str, status: int | str, seconds: float, *, kb: str | None = None) -> None:
        endpoint_label = _label(endpoint)
        self.upstream_calls.labels(*self._with_kb(kb, endpoint_label, _label(status))).inc()
        self.upstream_seconds.labels(*self._with_kb(kb, endpoint_label)).observe(max(0.0, seconds))
        if str(status) == "429":
            self.rate_limited.labels(*self._with_kb(kb, endpoint_label)).inc()

    def save(self, outcome: str, seconds: float | None = None, *, kb: str | None = None) -> None:
        labels = self._with_kb(kb, _label(outcome))
        self.saves.labels(*labels).inc()
        if seconds is not None:
            self.save_seconds.labels(*labels).observe(max(0.0, seconds))

    def quota_paused(self, paused: bool, *, kb: str | None = None) -> None:
        paused_gauge, next_probe = self._quota_gauges(kb)
        paused_gauge.set(1 if paused else 0)
        if not paused:
            next_probe.set(0)

    def _quota_gauges(self, kb: str | None) -> tuple[Gauge, Gauge]:
        if not self._kb:
            return self.quota_paused_gauge, self.quota_next_probe
        labels = self._with_kb(kb)
        return self.quota_paused_gauge.labels(*labels), self.quota_next_probe.labels(*labels)

    # --- shared state, refreshed at scrape time ------------------------------------------------------------

    def quota_state(self, state: QuotaState, *, kb: str | None = None) -> None:
        """With Redis another replica may have tripped the breaker: the scrape reads the shared state."""
        self.quota_paused(state.paused, kb=kb)
        self._quota_gauges(kb)[1].set(state.next_probe_at or 0 if state.paused else 0)

    def queued_saves(self, count: int, *, kb: str | None = None) -> None:
        (self.saves_queued.labels(*self._with_kb(kb)) if self._kb else self.saves_queued).set(count)

    def feedback_counts(self, counts: FeedbackCounts) -> None:
        self.feedback.labels("helpful").set(counts.helpful)
        self.feedback.labels("not_helpful").set(counts.not_helpful)

    def ai_quota(self, forecast: QuotaForecast | None, *, kb: str | None = None) -> None:
        """``forecast`` None (no quota set, or no AI): no series for that knowledgebase."""
        if forecast is None:
            return
        used, runs_out = self.ai_quota_used, self.ai_quota_runs_out
        if self._kb:
            used, runs_out = used.labels(*self._with_kb(kb)), runs_out.labels(*self._with_kb(kb))
        used.set(forecast.used_ratio)
        day = forecast.runs_out
        runs_out.set(calendar.timegm(day.timetuple()) if day is not None else 0)

    def save_counts(self) -> dict[str, int]:
        """This process's thread saves by outcome (for the dashboard)."""
        counts = dict.fromkeys(("created", "updated", "queued", "failed"), 0)
        for metric in self.saves.collect():  # summed over knowledgebases when they are labelled
            for sample in metric.samples:
                outcome = sample.labels.get("outcome", "")
                if sample.name.endswith("_total") and outcome in counts:
                    counts[outcome] += int(sample.value)
        return counts

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class KnowledgebaseMetrics:
    """One knowledgebase's :class:`~kbbot.core.ports.MetricsSink`: the shared metrics, its ``kb`` label bound."""

    def __init__(self, metrics: Metrics, kb: str) -> None:
        self._metrics = metrics
        self.kb = kb

    def question(self, platform: str, source: str, seconds: float) -> None:
        self._metrics.question(platform, source, seconds, kb=self.kb)

    def cache(self, hit: bool) -> None:
        self._metrics.cache(hit, kb=self.kb)

    def upstream(self, endpoint: str, status: int | str, seconds: float) -> None:
        self._metrics.upstream(endpoint, status, seconds, kb=self.kb)

    def save(self, outcome: str, seconds: float | None = None) -> None:
        self._metrics.save(outcome, seconds, kb=self.kb)

    def quota_paused(self, paused: bool) -> None:
        self._metrics.quota_paused(paused, kb=self.kb)


#: Something to run before each scrape (e.g. copy the shared 402 state into the gauge).
Refresher = Callable[[Metrics], Awaitable[None]]
