"""Archive writes that tankoubons follow: a member's tag change or deletion re-imputes its tanks.

A tank is found by its members' tags (imputed into ``INDEX_*``) and stands in for them in
grouped search, so every path that changes an archive's tags or deletes it goes through here
(the archive API, the importer, plugins, restore, clean), as the original's ``set_tags`` and
``delete_archive`` update the tanks holding the archive.
"""

from __future__ import annotations

from typing import Collection, Mapping

from lrrd.store.archives import ArchiveStore, as_text
from lrrd.store.tankoubons import TankoubonStore

__all__ = ["delete_archive", "refresh_tanks_of_many", "set_archive_tags"]


async def set_archive_tags(archives: ArchiveStore, tankoubons: TankoubonStore, arcid: str,
                           tags: str, append: bool = False) -> str:
    """``ArchiveStore.set_tags``, then the tanks holding ``arcid`` re-imputed (when the tags
    changed). Returns the new tags."""
    old, new = await archives.change_tags(arcid, tags, append)
    if new != old:
        await tankoubons.refresh_tanks_of_archive(arcid, old)
    return new


async def delete_archive(archives: ArchiveStore, tankoubons: TankoubonStore,
                         arcid: str) -> bool:
    """``ArchiveStore.delete`` (which takes the id out of its tanks), then those tanks re-imputed
    without its tags and regrouped (a tank left empty leaves grouped search). The tanks are
    read first: once deleted, nothing says where the archive was."""
    tanks = await tankoubons.tanks_of_archive(arcid)
    old = as_text((await archives.get_fields(arcid, "tags")).get("tags"))
    deleted = await archives.delete(arcid)
    if deleted and tanks:
        await tankoubons.refresh_tanks(tanks, old)
    return deleted


async def refresh_tanks_of_many(tankoubons: TankoubonStore, old_tags: Mapping[str, str],
                                skip: Collection[str] = ()) -> None:
    """After many archives' tags changed at once (a restore; ``old_tags`` maps each to its tags
    before): every tank holding any of them (but those in ``skip``, refreshed already) is
    re-imputed once. One pass over the tanks instead of a ``tanks_of_archive`` scan each."""
    if not old_tags:
        return
    ids = [tank_id for tank_id in await tankoubons.ids() if tank_id not in skip]
    for tank in await tankoubons.get_many(ids):
        if tank is None:
            continue
        changed = [arcid for arcid in tank.archives if arcid in old_tags]
        if changed:
            await tankoubons.refresh_tanks([tank.id], ",".join(old_tags[a] for a in changed))
