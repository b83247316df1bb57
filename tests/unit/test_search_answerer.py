from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kbbot.backends.local import LocalBackend
from kbbot.core.models import Source
from kbbot.core.ports import Answerer
from kbbot.search.answerer import DEFAULT_AUTO_MIN_RELEVANCE, DEFAULT_MIN_RELEVANCE, NOT_FOUND, SearchAnswerer
from kbbot.search.index import IndexedPage, SearchIndex
from kbbot.search.sync import IndexSyncer


@pytest.fixture
async def index(tmp_path: Path) -> AsyncIterator[SearchIndex]:
    async with SearchIndex(tmp_path / "index.sqlite3") as idx:
        yield idx


@pytest.fixture
async def sample(index: SearchIndex, tmp_path: Path) -> SearchIndex:
    await IndexSyncer(LocalBackend(None, tmp_path / "pages"), index).sync()
    return index


async def test_vpn_question_quotes_the_vpn_page(sample: SearchIndex) -> None:
    answerer: Answerer = SearchAnswerer(sample)
    answer = await answerer.answer("How do I set up the VPN?")
    assert answer.source is Source.SEARCH and not answer.empty
    assert answer.text.startswith("From the wiki:\n\n> ")
    assert answer.related_pages[0].id == "vpn-setup"
    assert answer.related_pages[0].title == "VPN setup"
    assert answer.related_pages[0].url and answer.related_pages[0].url.startswith("file://")
    # file: URLs are not linked in the text (renderers refuse them); the related pages keep them.
    assert "— **VPN setup**" in answer.text and "file://" not in answer.text
    assert "VPN" in answer.text.split("—")[0]
    assert len(answer.related_pages) <= 3


async def test_passages_are_quoted_line_by_line(sample: SearchIndex) -> None:
    answer = await SearchAnswerer(sample).answer("can I deploy to production on a friday", limit=2)
    head, *blocks = answer.text.split("\n\n")
    assert head == "From the wiki:"
    assert blocks and len(blocks) % 2 == 0 and len(blocks) <= 4
    for quote, source in zip(blocks[::2], blocks[1::2], strict=True):
        lines = quote.split("\n")
        assert all(line.startswith(">") for line in lines)
        assert all(line.endswith("  ") for line in lines[:-1])  # hard breaks keep the page's lines
        assert source.startswith("— **") and source.endswith("**")
    assert "Fridays" in answer.text
    assert answer.related_pages[0].id == "deploys"


async def test_the_passage_answers_what_the_title_does_not(sample: SearchIndex) -> None:
    answer = await SearchAnswerer(sample).answer("how do I set up the VPN on linux")
    assert answer.related_pages[0].id == "vpn-setup"
    assert "> sudo apt install wireguard" in answer.text


async def test_nothing_matches(sample: SearchIndex) -> None:
    for question in ("zzqx flibbertigibbet", "how do I", "🤖", '"NEAR(*'):
        answer = await SearchAnswerer(sample).answer(question)
        assert answer.empty and answer.source is Source.SEARCH
        assert answer.text == NOT_FOUND and answer.related_pages == ()


async def test_empty_index(index: SearchIndex) -> None:
    answer = await SearchAnswerer(index).answer("vpn")
    assert answer.empty


async def test_long_paragraph_is_trimmed_around_the_match(index: SearchIndex) -> None:
    filler = " ".join(f"Sentence number {n} talks about nothing in particular." for n in range(60))
    text = filler + " The flux capacitor needs 1.21 gigawatts. " + filler
    await index.upsert(IndexedPage(id="long", title="Long page", text=text, url="https://w.example/long"))
    answer = await SearchAnswerer(index, max_passage_chars=200).answer("flux capacitor")
    quote = answer.text.split("\n\n")[1]
    assert "flux capacitor" in quote
    assert quote.startswith("> … ") and quote.split("\n")[0].endswith("…")
    assert len(quote) < 300
    assert "— [Long page](https://w.example/long)" in answer.text


async def test_title_only_match_quotes_the_page_start(index: SearchIndex) -> None:
    await index.upsert(IndexedPage(id="x", title="Kubernetes", text="Our cluster runs three nodes."))
    answer = await SearchAnswerer(index).answer("kubernetes")
    assert "> Our cluster runs three nodes." in answer.text
    assert "— **Kubernetes**" in answer.text  # no URL configured: the title, unlinked


async def test_mentions_in_pages_are_neutralized(index: SearchIndex) -> None:
    await index.upsert(IndexedPage(id="x", title="Pager policy", text="Ping @everyone and <!channel> for the pager."))
    answer = await SearchAnswerer(index).answer("pager policy")
    assert "@everyone" not in answer.text and "<!channel>" not in answer.text
    assert "@\u200beveryone" in answer.text


async def test_weak_matches_are_left_out(index: SearchIndex) -> None:
    await index.upsert_many(
        [
            IndexedPage(id="vpn", title="VPN setup", tags=("vpn",), text="Install the VPN client. VPN VPN."),
            IndexedPage(id="other", title="Cafeteria", text="The menu mentions setup of tables once."),
        ]
    )
    answer = await SearchAnswerer(index).answer("vpn setup")
    assert [p.id for p in answer.related_pages] == ["vpn"]


async def test_huge_and_hostile_questions(sample: SearchIndex) -> None:
    answerer = SearchAnswerer(sample)
    answer = await answerer.answer("vpn setup " + '🤖 NEAR( " * - : ^ ((' * 10_000)
    # "near" is a word the wiki lacks, so this may well be a don't-know; either way the VPN page is first.
    assert answer.related_pages[0].id == "vpn-setup"
    answer = await answerer.answer("vpn setup " + '🤖 " * - : ^ ((' * 10_000)
    assert not answer.empty and answer.related_pages[0].id == "vpn-setup"
    answer = await answerer.answer("password reset", limit=0)  # at least one page, whatever the caller asks
    assert len(answer.related_pages) == 1


async def test_quoted_text_is_verbatim_but_never_a_heading(index: SearchIndex) -> None:
    text = "Run ls *.txt in my_dir and $K(\\mathbb{Z}, 2)$.\n# start it at boot\n  # indented comment"
    url = "https://kb.example/shell tips (v2)"
    await index.upsert(IndexedPage(id="x", title="Shell [tips] (v2)", text=text, url=url))
    answer = await SearchAnswerer(index).answer("shell tips txt boot comment")
    assert "> Run ls *.txt in my_dir and $K(\\mathbb{Z}, 2)$.  \n" in answer.text
    assert "> \\# start it at boot  \n>   \\# indented comment" in answer.text
    assert "— [Shell (tips) (v2)](https://kb.example/shell%20tips%20%28v2%29)" in answer.text
    assert answer.related_pages[0].url == "https://kb.example/shell tips (v2)"  # the PageRef keeps the real URL


async def test_a_page_known_by_its_title_alone_is_named_not_an_empty_quote(index: SearchIndex) -> None:
    # Before the first sync the fallback indexes titles only (IndexSyncer.index_titles; its notice says so):
    # the answer used to be "From the wiki:" over an empty quote (">").
    await index.upsert(IndexedPage(id="fg", title="Fundamental group", text=""))
    answer = await SearchAnswerer(index).answer("what is the fundamental group")
    assert not answer.empty and answer.text == "From the wiki:\n\n— **Fundamental group**"
    assert [page.id for page in answer.related_pages] == ["fg"]


async def test_a_numbered_heading_is_not_read_as_the_first_step(sample: SearchIndex) -> None:
    # vpn-setup.md: "## 1. Get your configuration" over steps 1-3; Markdown renderers showed it as step 1 and
    # the real steps as 2, 3, 4.
    answer = await SearchAnswerer(sample).answer("How do I set up the VPN?")
    assert "> 1\\. Get your configuration  \n> 1. Open the Access Portal" in answer.text
    assert "\u200b" not in answer.text  # plain Markdown: no invisible marker in the data


@pytest.mark.parametrize(
    "question",
    [
        "what's the wifi password in the office",
        "zzzqqq nothing matches",
        "how do I cook pasta",
        "can I expense a gym membership",
        "who is the CEO",
        # The topic word is one no page has, and a specific one: the rest of the question is in the wiki.
        "which font should I use in release notes",
        "how do I renew my passport",
        "how do I connect a projector in the meeting room",
        # The procedure asked for is one no page describes: "order" is on no page.
        "how do I order business cards",
        # Adversarial: nothing to search for, or nothing but symbols and control characters.
        "",
        "   ",
        "how do I do it",
        "🤖🤖 \x00\x07",
        "FONT FONT FONT",
    ],
)
async def test_out_of_scope_is_an_honest_dont_know(sample: SearchIndex, question: str) -> None:
    answer = await SearchAnswerer(sample).answer(question)
    assert answer.empty and answer.source is Source.SEARCH
    assert answer.text.startswith(NOT_FOUND) and "From the wiki" not in answer.text and ">" not in answer.text
    assert len(answer.related_pages) <= 3
    assert answer.relevance is not None and answer.relevance < DEFAULT_MIN_RELEVANCE


@pytest.mark.parametrize(
    ("question", "page", "fact"),
    [
        ("how do i reqest vacaton", "leave-and-pto", "Time off → Request"),  # typos
        ("parental leave in Germany", "leave-and-pto", "16 weeks"),  # not the sick leave next to it
        ("rollback a bad deploy", "deploys", "--rollback"),  # the command under the lead-in
        ("I forgot my pasword", "password-reset", "/recover"),
        # A specific word the wiki lacks, but the rest of the question is held together: still answered.
        ("typo in my last commit message", "git-workflow", "git commit --amend"),
        # "counselling" is no typo and no topic of its own: another form of the wiki's "counsellor".
        ("how many counselling sessions do I get", "benefits", "six per year"),
        # Typos only, and unicode the index folds away.
        ("reqest vacaton", "leave-and-pto", "Time off → Request"),
        ("pässwört réset 🤖", "password-reset", "/recover"),
    ],
)
async def test_the_quoted_passage_answers(sample: SearchIndex, question: str, page: str, fact: str) -> None:
    answer = await SearchAnswerer(sample).answer(question)
    assert not answer.empty and answer.related_pages[0].id == page
    assert fact in answer.text
    assert answer.text.count("\n— ") <= 2  # at most two passages


async def test_two_passages_that_answer_about_as_well_are_both_quoted(index: SearchIndex) -> None:
    text = (
        "Severity levels\n\nSEV1 and SEV2 need a status page update within 30 minutes.\n\n"
        "Examples\n\nSeverity | Meaning\nSEV1 | Robots stopped\nSEV2 | Major feature broken\n\n"
        "Tools\n\nThe incident bot opens a channel."
    )
    await index.upsert(IndexedPage(id="inc", title="Incidents", text=text))
    answer = await SearchAnswerer(index).answer("what counts as sev2")
    assert "status page update" in answer.text and "Major feature broken" in answer.text
    assert "incident bot" not in answer.text
    # Both passages are one source: the page is named once, under the second (each used to repeat it).
    assert answer.text.count("— **Incidents**") == 1 and answer.text.endswith("\n\n— **Incidents**")
    assert answer.text.count("\n\n> ") == 2


async def test_the_threshold_is_a_setting(sample: SearchIndex) -> None:
    question = "where is the Munich office"
    assert (await SearchAnswerer(sample).answer(question)).empty
    lenient = await SearchAnswerer(sample, min_relevance=0.0).answer(question)
    assert not lenient.empty and lenient.text.startswith("From the wiki:")
    strict = await SearchAnswerer(sample, min_relevance=0.99).answer("installing wireguard on my macbook")
    assert strict.empty and strict.related_pages[0].id == "vpn-setup"  # the page is still offered


async def test_not_found_offers_the_closest_pages(sample: SearchIndex) -> None:
    # Perfect Wiki's AI said isEmptyResult: the honest reply, with what the index finds closest.
    answer = await SearchAnswerer(sample).not_found("vpn handshake never completes")
    assert answer.empty and answer.text.startswith(NOT_FOUND)
    assert answer.related_pages[0].id == "vpn-setup" and len(answer.related_pages) <= 3
    nothing = await SearchAnswerer(sample).not_found("zzzqqq")
    assert nothing.empty and nothing.text == NOT_FOUND and nothing.related_pages == ()


def test_auto_answers_need_the_higher_threshold() -> None:
    from kbbot.core.models import Answer

    assert Answer("From the wiki: …", source=Source.SEARCH, relevance=0.7).confident(0.66)
    assert not Answer("From the wiki: …", source=Source.SEARCH, relevance=0.7).confident(0.8)
    assert Answer("An AI answer.").confident(0.8)  # no relevance: the AI answered
    assert not Answer(NOT_FOUND, empty=True, relevance=0.9).confident(0.0)
    assert not Answer("   ").confident(0.0)


def test_settings_defaults_are_the_calibrated_ones() -> None:
    from kbbot.config import Settings

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.search_min_relevance == DEFAULT_MIN_RELEVANCE
    assert settings.auto_answer_min_relevance == DEFAULT_AUTO_MIN_RELEVANCE


async def test_a_word_typed_as_code_is_answered_where_the_code_is(sample: SearchIndex, index: SearchIndex) -> None:
    # "--rollback flag?" on the handbook quoted the on-call steps ("Mitigate first (rollback, failover, feature
    # flag off)"): both words, but "rollback" in prose. The deploys page holds the option itself.
    answer = await SearchAnswerer(sample).answer("--rollback flag?")
    assert not answer.empty and answer.related_pages[0].id == "deploys"
    assert "./scripts/promote <service> --rollback" in answer.text
    # The word in prose counts as found elsewhere on the page: less than typed as a plain word.
    await index.upsert(
        IndexedPage(id="oncall", title="On call", text="When paged\n\nMitigate first (rollback, feature flag off).")
    )
    await index.upsert(IndexedPage(id="other", title="Other", text="Nothing about it."))
    as_code = await SearchAnswerer(index, min_relevance=0.0).answer("--rollback flag?")
    as_word = await SearchAnswerer(index, min_relevance=0.0).answer("rollback flag?")
    assert as_word.relevance == 1.0 and (as_code.relevance or 0.0) < 0.7


async def test_an_option_named_by_a_stopword_is_quoted(sample: SearchIndex) -> None:
    # "--from" holds no search term ("from" is a stopword): the passage with the option still wins.
    answer = await SearchAnswerer(sample).answer("the --from flag of promote")
    assert answer.related_pages[0].id == "deploys" and "--from staging" in answer.text


async def test_a_passage_that_only_points_to_another_page_gives_way_to_it(index: SearchIndex) -> None:
    # travel.md: "Meals while travelling are covered up to the daily limit in [[expenses]]" — the link shown
    # as the page's title — was quoted for the meal limit instead of the passage that states it.
    await index.upsert(
        IndexedPage(
            id="travel",
            title="Business travel",
            text="What to book\n\nMeals while travelling are covered up to the daily limit in Expenses and refunds.",
        )
    )
    await index.upsert(
        IndexedPage(
            id="expenses",
            title="Expenses and refunds",
            text="What you can expense\n\n- Meals while travelling: up to €60 per day.\n- Books: €500 a year.",
        )
    )
    answer = await SearchAnswerer(index).answer("wat is the expnse limit for meals")
    assert not answer.empty and answer.related_pages[0].id == "expenses"
    assert answer.text.index("€60") < answer.text.index("— **Expenses and refunds**")


async def test_of_two_pages_that_rank_alike_the_one_that_answers_more_leads(sample: SearchIndex) -> None:
    # "who is on call this week" led with the onboarding intro (its title says "your first week"; bm25 liked
    # that) and quoted the on-call rotation second, though that passage holds both words of the question.
    answer = await SearchAnswerer(sample).answer("who is on call this week")
    assert answer.related_pages[0].id == "on-call-and-incidents"
    assert answer.text.startswith("From the wiki:\n\n> The rotation") and "Onboarding" not in answer.text
    # …unless its passage sends the reader to the first page: code-review.md's "see Git workflow for branch
    # names" holds every word of "branch naming convention", the page it names holds the answer.
    branch = await SearchAnswerer(sample).answer("branch naming convention")
    assert branch.related_pages[0].id == "git-workflow" and "<your-handle>/<ticket>" in branch.text


@pytest.mark.parametrize(
    "question", ["is there parking at the Berlin office", "what's the wifi password in the office"]
)
async def test_a_more_relevant_second_page_never_answers_what_the_first_cannot(
    sample: SearchIndex, question: str
) -> None:
    # The rule above applies only when the first page answers: else a lower-ranked page with a stray match would
    # turn an honest "I couldn't find this" into a quote.
    assert (await SearchAnswerer(sample).answer(question)).empty
