"""Tasks by name: what a job's ``task`` field means, checked at enqueue and looked up by workers."""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Iterator

#: ``async def task(job, *args)``; its return value (JSON-serialisable) becomes the job's result.
Task = Callable[..., Awaitable[Any]]


class UnknownTask(ValueError):
    """No task of that name is registered: enqueueing it would leave a job no worker can run."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Unknown task: {name}")
        self.name = name


class TaskRegistry:
    """Maps task names (the original's, e.g. ``thumbnail_task``) to coroutine functions.

    Web-only and worker processes build the same registry, so a name accepted at enqueue is one
    that some worker can run.
    """

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}

    def register(self, name: str, task: Task) -> Task:
        """Add ``task`` under ``name``; registering a name twice is a wiring bug, so it raises."""
        if name in self._tasks:
            raise ValueError(f"task {name!r} is already registered")
        self._tasks[name] = task
        return task

    def task(self, name: str) -> Callable[[Task], Task]:
        """Decorator form of ``register``."""
        return lambda fn: self.register(name, fn)

    def get(self, name: str) -> Task:
        try:
            return self._tasks[name]
        except KeyError:
            raise UnknownTask(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._tasks))

    def names(self) -> list[str]:
        return sorted(self._tasks)

