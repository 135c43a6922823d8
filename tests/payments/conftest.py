"""Fixtures for the payments tests: a localstripe server for the session, Stripe settings pointed
at it, dj-stripe's Account linked to the test key, and Stripe customers with cards attached."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import stripe

# Looks like a real test key (dj-stripe validates `sk_test_` + 24 or more letters and digits).
LOCALSTRIPE_SECRET_KEY = "sk_test_" + "TollgatePaymentsLocalstripe2024"
ACCOUNT_ID = "acct_1TollgateTests"

# Stripe's test cards (https://docs.stripe.com/testing), as localstripe knows them.
CARD_DECLINED_ON_CHARGE = "4000000000000341"
CARD_REQUIRES_AUTHENTICATION = "4000002500003155"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def localstripe_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """localstripe in a subprocess on a free loopback port, with this session's own store file."""
    workdir = tmp_path_factory.mktemp("localstripe")
    port = _free_port()
    log = (workdir / "localstripe.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("localstripe_server.py")),
            "--port",
            str(port),
            "--store",
            str(workdir / "localstripe.pickle"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            log.close()
            raise RuntimeError("localstripe exited: " + (workdir / "localstripe.log").read_text())
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("localstripe did not start within 30 s") from None
            time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture
def stripe_api(localstripe_url: str, settings, db) -> Iterator[str]:
    """Stripe and dj-stripe pointed at localstripe, with dj-stripe's Account row linked to the key
    (localstripe has no GET /v1/account for dj-stripe to discover it)."""
    from djstripe.models import Account, APIKey

    from payments.providers import stripe as stripe_provider

    settings.STRIPE_API_HOST = localstripe_url
    settings.STRIPE_TEST_SECRET_KEY = LOCALSTRIPE_SECRET_KEY
    settings.STRIPE_LIVE_MODE = False
    stripe_provider.configure()
    account, _ = Account.objects.get_or_create(
        id=ACCOUNT_ID, defaults={"livemode": False, "stripe_data": {"id": ACCOUNT_ID, "object": "account"}}
    )
    api_key, _ = APIKey.objects.get_or_create_by_api_key(LOCALSTRIPE_SECRET_KEY)
    api_key.djstripe_owner_account = account
    api_key.save()
    yield localstripe_url
    stripe.api_base = stripe.DEFAULT_API_BASE


def localstripe_post(base_url: str, path: str, data: dict[str, str]) -> int:
    """POST a form to localstripe's own endpoints (`/_config/...`, `/v1/.../_authenticate`), which
    the stripe library does not know; returns the HTTP status."""
    body = urllib.parse.urlencode(data).encode()
    request = urllib.request.Request(
        base_url + path,
        data=body,
        headers={"Authorization": f"Bearer {LOCALSTRIPE_SECRET_KEY}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def make_card(number: str) -> str:
    """A PaymentMethod for one of Stripe's test card numbers."""
    payment_method = stripe.PaymentMethod.create(
        type="card",
        card={"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        api_key=LOCALSTRIPE_SECRET_KEY,
    )
    return payment_method["id"]


@pytest.fixture
def stripe_customer(stripe_api):
    """A `stripe` customer with its Stripe customer created and pm_card_visa as default."""
    from payments import services
    from tests.factories.customers import make_customer

    def build(*, payment_method: str | None = "pm_card_visa", currency: str = "USD", **fields):
        customer = make_customer(
            external_id=fields.pop("external_id", f"cust_{uuid.uuid4().hex[:10]}"),
            payment_provider="stripe",
            currency=currency,
            email="billing@example.com",
            **fields,
        )
        services.stripe_customer_sync(customer_id=customer.pk)
        customer.refresh_from_db()
        if payment_method:
            services.customer_payment_method_attach(customer=customer, provider_method_id=payment_method)
        return customer

    return build
