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
    add_checkout_sessions(server.app, port=args.port)
    web.run_app(server.app, host="127.0.0.1", port=args.port, print=None)


# localstripe (1.15) has no Checkout. These two routes answer Stripe's documented shape of a
# Checkout Session (https://docs.stripe.com/api/checkout/sessions/object) for what Tollgate sends,
# keeping the request's parameters so a test can read back what was asked of Stripe. They never
# take a payment: a test plays the customer by confirming a PaymentIntent with the session's
# payment_intent_data, as Checkout does, and posting Stripe's webhook for it.
def add_checkout_sessions(app: web.Application, *, port: int) -> None:
    sessions: dict[str, dict[str, object]] = {}

    async def create(request: web.Request) -> web.Response:
        data = await server.get_post_data(request) or {}
        mode = data.get("mode")
        if mode not in ("payment", "setup", "subscription") or not data.get("success_url"):
            raise server.UserError(400, "mode and success_url are required")
        session_id = "cs_test_" + resources.random_id(24)
        session = {
            "id": session_id,
            "object": "checkout.session",
            "livemode": False,
            "mode": mode,
            "status": "open",
            "payment_status": "unpaid" if mode == "payment" else "no_payment_required",
            "customer": data.get("customer"),
            "success_url": data["success_url"],
            "cancel_url": data.get("cancel_url"),
            "currency": (data.get("currency") or None),
            "metadata": data.get("metadata") or {},
            "url": f"http://127.0.0.1:{port}/checkout/{session_id}",
            # Not Stripe's: what the request asked, for tests to read back.
            "_request": data,
        }
        sessions[session_id] = session
        return server.json_response(session)

    def retrieve(request: web.Request) -> web.Response:
        session = sessions.get(request.match_info["id"])
        if session is None:
            raise server.UserError(404, "No such checkout.session")
        return server.json_response(session)

    app.router.add_post("/v1/checkout/sessions", create)
    app.router.add_get("/v1/checkout/sessions/{id}", retrieve)


if __name__ == "__main__":
    main()
