"""Race helper for the PostgreSQL concurrency tests: threads released together, each with its own
database connection (closed when it is done), so the test sees what the database let through."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection


def race(target: Callable[[], Any], count: int = 2, *, timeout: float = 60) -> list[Any]:
    """Run `target` in `count` threads released at once by a barrier; return each thread's result
    or the exception it raised (in finishing order), so the test asserts on both."""
    barrier = threading.Barrier(count)
    results: list[Any] = []

    def run() -> None:
        barrier.wait()
        try:
            results.append(target())
        except Exception as error:  # reported to the test, not lost in the thread
            results.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return results
