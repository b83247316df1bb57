"""KB_BACKEND=mathub answers from the full-text index: sync from the local MatHub server, then SearchAnswerer.

MatHub has no AI endpoint, so this is the whole answering path for MatHub: list (paged) → fetch changed pages
→ extract text ([[slug]] → titles, LaTeX kept) → FTS5 → extractive answer linking the pages.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from kbbot.core.models import Source
from kbbot.runtime import open_runtime
from kbbot.search.answerer import SearchAnswerer
from tests.fakes.mathub import FakeMatHub, mathub_settings

TEMPLATE = "https://mathub.example/p/algebraic-topology/wiki/{slug}"


def seed(server: FakeMatHub) -> None:
    server.add_page(
        "Serre Spectral Sequence",
        "# Serre Spectral Sequence\n\nFor a fibration $F \\to E \\to B$ the Serre spectral sequence has "
        "$E_2^{p,q} = H^p(B; H^q(F))$ and converges to the cohomology of the total space $E$.\n\n"
        "See [[eilenberg-maclane-spaces]] for the classifying spaces it is often applied to.",
        slug="serre-spectral-sequence",
    )
    server.add_page(
        "Eilenberg-MacLane Spaces",
        "# Eilenberg-MacLane Spaces\n\nAn **Eilenberg-MacLane space** $K(G, n)$ is a topological space whose "
        "only nontrivial homotopy group is $\\pi_n = G$.",
        slug="eilenberg-maclane-spaces",
    )
    for n in range(150):  # enough to need two list requests
        server.add_page(f"Exercise sheet {n}", f"Exercise {n}: compute the homology of a wedge of spheres.")


async def test_ask_via_index_with_kb_backend_mathub(
    fake_mathub: FakeMatHub, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    seed(fake_mathub)
    settings = mathub_settings(fake_mathub, mathub_page_url_template=TEMPLATE)
    assert settings.backend == "mathub"
    async with open_runtime(settings) as rt:
        index = rt.index
        report = await rt.syncer.sync()
        assert (report.listed, report.fetched, report.failed) == (152, 152, 0)

        answer = await SearchAnswerer(index).answer("What is an Eilenberg-MacLane space?")
        assert answer.source is Source.SEARCH and not answer.empty
        assert answer.related_pages[0].title == "Eilenberg-MacLane Spaces"
        assert answer.related_pages[0].url == TEMPLATE.format(slug="eilenberg-maclane-spaces")
        assert "$K(G, n)$" in answer.text  # LaTeX left readable, as written
        assert f"]({TEMPLATE.format(slug='eilenberg-maclane-spaces')})" in answer.text  # the page is linked

        # [[slug]] was indexed as the linked page's title, so the link text is searchable.
        serre = await SearchAnswerer(index).answer("fibration spectral sequence cohomology")
        assert serre.related_pages[0].title == "Serre Spectral Sequence"
        hits = await index.search("classifying Eilenberg MacLane Spaces")
        assert "Serre Spectral Sequence" in [hit.title for hit in hits]
        texts = await index.texts([serre.related_pages[0].id])
        assert "[[" not in texts[0].text

        # Incremental: someone edits one page; the next sync fetches exactly that one (by version/updatedAt).
        target = fake_mathub.page_by_slug("eilenberg-maclane-spaces")
        assert target is not None
        fake_mathub.edit_as_someone_else(
            target.id,
            target.content + "\n\nExample: $K(\\mathbb{Z}, 2)$ is infinite complex projective space.",
        )
        fake_mathub.reset_log()
        again = await rt.syncer.sync()
        assert (again.listed, again.fetched, again.changed) == (152, 1, 1)
        assert fake_mathub.count("GET", path_contains="/wiki/") == 1
        updated = await SearchAnswerer(index).answer("infinite complex projective space")
        assert "$K(\\mathbb{Z}, 2)$ is infinite complex projective space" in updated.text
        assert updated.related_pages[0].id == target.id


async def test_nothing_found_is_an_empty_answer(
    fake_mathub: FakeMatHub, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    seed(fake_mathub)
    settings = mathub_settings(fake_mathub, mathub_project="algebraic-topology", kbbot_data_dir=tmp_path)
    async with open_runtime(settings) as rt:
        await rt.syncer.sync()
        answer = await SearchAnswerer(rt.index).answer("quarterly sales forecast")
        assert answer.empty and answer.related_pages == ()
