"""Run localstripe on a loopback port with its store in a file of our choosing.

localstripe keeps its state in a pickle at the fixed path /tmp/localstripe.pickle, so two test
sessions (or a developer's own localstripe) would share and corrupt each other's objects. This
wrapper redirects the store's load and dump to `--store` and listens on 127.0.0.1 only.

    python tests/payments/localstripe_server.py --port 8420 --store /tmp/session/localstripe.pickle
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

from aiohttp import web
from localstripe import resources, server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--store", type=Path, required=True)
    args = parser.parse_args()
    store_path: Path = args.store

    def load(store: resources.Store) -> None:
        if store_path.exists():
            with store_path.open("rb") as file:
                data = pickle.load(file)  # noqa: S301 - our own file, written below
            store.clear()
            store.update(data)

    def dump(store: resources.Store) -> None:
        with store_path.open("wb") as file:
            pickle.dump(dict(store), file, protocol=pickle.HIGHEST_PROTOCOL)

    # Ignored: patching localstripe's persistence methods with our own file's is the point here.
    resources.Store.try_load_from_disk = load  # type: ignore[method-assign]
    resources.Store.dump_to_disk = dump  # type: ignore[method-assign]
    web.run_app(server.app, host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
