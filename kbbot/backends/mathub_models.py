"""Pydantic models of the MatHub bot API responses (``shared/api/mathub-bot-api-wiki.txt``).

Validation is the line between "the server said something" and "we know what it said": a body that does not
fit becomes :class:`~kbbot.errors.BadResponse` in the backend, never a ``KeyError`` three calls later. Unknown
fields are ignored (servers add fields); the ones we rely on are required.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator


def _id_to_str(value: Any) -> Any:
    # Ids are documented as strings ("wiki-uuid"); a server with integer ids is still unambiguous.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


PageId = Annotated[str, BeforeValidator(_id_to_str), Field(min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class _SingleObject(_Model):
    """A single page object: the API text shows it bare, some deployments wrap it as ``{"data": {...}}``
    like the list; both are accepted."""

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, value: Any) -> Any:
        if isinstance(value, dict) and "id" not in value and isinstance(value.get("data"), dict):
            return value["data"]
        return value


class WikiPageSummary(_Model):
    """A page as ``GET /projects/:slug/wiki`` lists it (no content)."""

    id: PageId
    slug: str | None = None
    title: str
    review_status: str | None = Field(None, alias="reviewStatus")
    version: int | None = None
    created_at: str | None = Field(None, alias="createdAt")
    updated_at: str | None = Field(None, alias="updatedAt")


class WikiPageList(_Model):
    """``{"data": [...], "limit": 20, "offset": 0}``."""

    data: list[WikiPageSummary]
    limit: int | None = None
    offset: int | None = None


class WikiPage(_SingleObject):
    """The full page object of ``GET /wiki/:id`` (and, we assume, of create/edit responses)."""

    id: PageId
    slug: str | None = None
    title: str
    content: str
    version: int
    review_status: str | None = Field(None, alias="reviewStatus")
    parent_id: str | None = Field(None, alias="parentId")
    created_at: str | None = Field(None, alias="createdAt")
    updated_at: str | None = Field(None, alias="updatedAt")


class CreatedPage(_SingleObject):
    """What create needs back: the new page's id (the rest is optional, we know what we sent)."""

    id: PageId
    slug: str | None = None
    version: int | None = None


class ErrorBody(_Model):
    """``{"error": "Version conflict. Fetch latest and retry."}``."""

    error: str = ""
