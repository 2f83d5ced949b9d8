"""The categories area: the ten category operations of the spec, with the original's rules.

LRR-NOTES §9.1: a category is static iff its ``search`` is empty; ``pinned`` is an integer on the
wire; an update falls back to the current name and predicate when they are empty (so a predicate
cannot be cleared) but recomputes ``pinned`` (so omitting it unpins); delete always answers 200
and unlinks the bookmark; the bookmark link lives in DB0.
"""

from __future__ import annotations

from typing import Any

from twisted.web.iweb import IRequest

from lrrd.api.area import area_app, field
from lrrd.api.errors import ApiError, api_response, refusal_as_400, write_json
from lrrd.api.locking import write_lock
from lrrd.store.archives import ArchiveStore, as_text
from lrrd.store.categories import BookmarkError, CategoryError, CategoryStore
from lrrd.store.locks import LockStore
from lrrd.store.tankoubons import TANK_ID_RE, TankoubonStore

NO_CATEGORY = "The given category does not exist."


def pinned_param(value: str | None) -> bool:
    """The original's test: Perl-true (not "" nor "0") and not the string "false"."""
    return value not in (None, "", "0", "false")


async def member_title(archives: ArchiveStore, tanks: TankoubonStore, member_id: str) -> str | None:
    """What the success messages call an archive: its title (a tank's name for a tank id)."""
    if TANK_ID_RE.match(member_id):
        found = await tanks.get(member_id, page=0, pagesize=1)
        return None if found is None else found[0].name
    raw = (await archives.get_fields(member_id, "title")).get("title")
    return None if raw is None else as_text(raw)


class CategoriesApi:
    """``/api/categories*``: static and dynamic categories and the bookmark link."""

    app = area_app()

    def __init__(self, categories: CategoryStore, archives: ArchiveStore,
                 tankoubons: TankoubonStore, locks: LockStore) -> None:
        self._categories = categories
        self._archives = archives
        self._tanks = tankoubons
        self._locks = locks

    # -- list, create, read ----------------------------------------------------------------------
    @app.route("/categories", methods=["GET"], endpoint="getCategoryList")
    async def list_categories(self, request: IRequest) -> bytes:
        return write_json(request, await self._categories.list_all())

    @app.route("/categories", methods=["PUT"], endpoint="createCategory")
    async def create_category(self, request: IRequest) -> bytes:
        name = field(request, "name") or ""
        if name == "":
            raise ApiError(400, "Category name not specified.", operation="create_category",
                           envelope="api_response")
        created = await self._categories.create(
            name, field(request, "search") or "", pinned_param(field(request, "pinned")))
        return write_json(request, {"operation": "create_category", "category_id": created,
                                    "success": 1})

    @app.route("/categories/<string:cat_id>", methods=["GET"], endpoint="getCategory")
    async def get_category(self, request: IRequest, cat_id: str) -> bytes:
        category = await self._categories.get(cat_id)
        if category is None:
            # The original answers 500 here (its 400 is not in the spec); a clean 400 instead.
            raise ApiError(400, NO_CATEGORY, operation="get_category", envelope="api_response")
        return write_json(request, category)

    # -- update and delete -----------------------------------------------------------------------
    @app.route("/categories/<string:cat_id>", methods=["PUT"], endpoint="updateCategory")
    async def update_category(self, request: IRequest, cat_id: str) -> bytes:
        operation = "update_category"
        category = await self._categories.get(cat_id)
        if category is None:
            raise ApiError(400, NO_CATEGORY, operation=operation, envelope="api_response")
        async with write_lock(self._locks, "category", cat_id, operation):
            updated = await self._categories.update(
                cat_id,
                field(request, "name") or category["name"],
                # An empty value falls back to the current one: a predicate cannot be cleared.
                field(request, "search") or category["search"],
                pinned_param(field(request, "pinned")),
            )
        if not updated:
            raise ApiError(400, NO_CATEGORY, operation=operation, envelope="api_response")
        return write_json(request, {"operation": operation, "category_id": cat_id, "success": 1})

    @app.route("/categories/<string:cat_id>", methods=["DELETE"], endpoint="deleteCategory")
    async def delete_category(self, request: IRequest, cat_id: str) -> bytes:
        operation = "delete_category"
        async with write_lock(self._locks, "category", cat_id, operation):
            # A missing category still "succeeds", as in the original.
            await self._categories.delete(cat_id)
        return write_json(request, api_response(operation))

    # -- membership ------------------------------------------------------------------------------
    @app.route("/categories/<string:cat_id>/<string:member_id>", methods=["PUT"],
               endpoint="addToCategory")
    async def add_to_category(self, request: IRequest, cat_id: str, member_id: str) -> bytes:
        operation = "add_to_category"
        async with write_lock(self._locks, "category", cat_id, operation):
            with refusal_as_400(operation, CategoryError):
                await self._categories.add_archive(cat_id, member_id)
        return write_json(request, api_response(
            operation, success_message=await self._message("Added", "to", cat_id, member_id)))

    @app.route("/categories/<string:cat_id>/<string:member_id>", methods=["DELETE"],
               endpoint="removeFromCategory")
    async def remove_from_category(self, request: IRequest, cat_id: str, member_id: str) -> bytes:
        operation = "remove_from_category"
        async with write_lock(self._locks, "category", cat_id, operation):
            with refusal_as_400(operation, CategoryError):
                await self._categories.remove_archive(cat_id, member_id)
        return write_json(request, api_response(
            operation, success_message=await self._message("Removed", "from", cat_id, member_id)))

    async def _message(self, verb: str, preposition: str, cat_id: str, member_id: str) -> str:
        """``Added "<title>" to category "<name>"!``, or the ids when either is unknown."""
        category = await self._categories.get(cat_id)
        title = await member_title(self._archives, self._tanks, member_id)
        if category is None or title is None:
            return f"{verb} {member_id} {preposition} Category {cat_id}!"
        return f'{verb} "{title}" {preposition} category "{category["name"]}"!'

    # -- the bookmark link -----------------------------------------------------------------------
    @app.route("/categories/bookmark_link", methods=["GET"], endpoint="getBookmarkLink")
    async def get_bookmark_link(self, request: IRequest) -> bytes:
        return write_json(request, {"operation": "get_bookmark_link", "success": 1,
                                    "category_id": await self._categories.get_bookmark_link()})

    @app.route("/categories/bookmark_link/<string:cat_id>", methods=["PUT"],
               endpoint="updateBookmarkLink")
    async def update_bookmark_link(self, request: IRequest, cat_id: str) -> bytes:
        operation = "update_bookmark_link"
        try:
            await self._categories.link_bookmark(cat_id)
        except BookmarkError as exc:
            body: dict[str, Any] = {"operation": operation, "success": 0, "category_id": cat_id,
                                    "error": exc.message}
            return write_json(request, body, exc.status)
        return write_json(request, {"operation": operation, "category_id": cat_id, "success": 1})

    @app.route("/categories/bookmark_link", methods=["DELETE"], endpoint="removeBookmarkLink")
    async def remove_bookmark_link(self, request: IRequest) -> bytes:
        return write_json(request, {"operation": "remove_bookmark_link", "success": 1,
                                    "category_id": await self._categories.unlink_bookmark()})
