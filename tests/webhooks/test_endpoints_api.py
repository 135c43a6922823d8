"""The endpoints API in Lago's shapes: CRUD, the 10-endpoint limit, the secret shown once and
rotated, private URLs refused, the JWT public key; and lago-python-client against it, unchanged."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models.webhook_endpoint import WebhookEndpoint as LagoWebhookEndpoint

from customers.models import Organization
from tests.factories.customers import make_api_key
from tests.webhooks.conftest import register
from webhooks import keys
from webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.django_db


def test_create_answers_lago_shape_and_the_secret_once(api, receiver):
    created = register(api, receiver.url, signature_algo="hmac", name="backend")

    assert set(created) == {
        "lago_id",
        "lago_organization_id",
        "webhook_url",
        "signature_algo",
        "name",
        "event_types",
        "created_at",
        "signing_secret",
    }
    assert created["lago_organization_id"] == str(Organization.current().lago_id)
    assert (created["webhook_url"], created["signature_algo"], created["event_types"]) == (receiver.url, "hmac", None)
    assert created["signing_secret"].startswith("whsec_")
    # Stored encrypted, never in clear.
    row = WebhookEndpoint.objects.get()
    assert created["signing_secret"] not in row.signing_secret_encrypted
    assert keys.decrypt(row.signing_secret_encrypted) == created["signing_secret"]

    found = api.get(f"/api/v1/webhook_endpoints/{created['lago_id']}").json()["webhook_endpoint"]
    listed = api.get("/api/v1/webhook_endpoints").json()
    assert "signing_secret" not in found
    assert [e["lago_id"] for e in listed["webhook_endpoints"]] == [created["lago_id"]]
    assert "signing_secret" not in listed["webhook_endpoints"][0]
    assert listed["meta"]["total_count"] == 1


def test_update_delete_and_not_found(api, receiver):
    created = register(api, receiver.url)
    path = f"/api/v1/webhook_endpoints/{created['lago_id']}"

    updated = api.put(path, {"webhook_endpoint": {"signature_algo": "hmac", "event_types": ["invoice.created"]}})
    assert updated.status_code == 200
    assert updated.json()["webhook_endpoint"]["signature_algo"] == "hmac"
    assert updated.json()["webhook_endpoint"]["event_types"] == ["invoice.created"]
    assert updated.json()["webhook_endpoint"]["webhook_url"] == receiver.url
    bad = api.put(path, {"webhook_endpoint": {"event_types": ["no.such_type"]}})
    assert bad.status_code == 422
    assert bad.json()["error_details"] == {"event_types": ["value_is_invalid"]}

    deleted = api.delete(path)
    assert deleted.status_code == 200
    assert deleted.json()["webhook_endpoint"]["lago_id"] == created["lago_id"]
    missing = api.get(path)
    assert (missing.status_code, missing.json()["code"]) == (404, "webhook_endpoint_not_found")
    assert api.get("/api/v1/webhook_endpoints/not-a-uuid").status_code == 404


def test_at_most_ten_endpoints(api, receiver):
    for number in range(10):
        register(api, f"{receiver.url}/{number}")
    eleventh = api.post("/api/v1/webhook_endpoints", {"webhook_endpoint": {"webhook_url": f"{receiver.url}/10"}})
    assert eleventh.status_code == 422
    assert eleventh.json()["error_details"] == {"base": ["webhook_endpoints_limit_reached"]}


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hooks",
        "http://localhost/hooks",
        "http://10.0.0.5/hooks",
        "http://192.168.1.1/hooks",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hooks",
        "http://[::ffff:127.0.0.1]/hooks",
        "http://0.0.0.0/hooks",
    ],
)
def test_private_urls_are_refused(api, settings, url):
    settings.TOLLGATE_WEBHOOKS_ALLOW_PRIVATE_URLS = False
    response = api.post("/api/v1/webhook_endpoints", {"webhook_endpoint": {"webhook_url": url}})
    assert response.status_code == 422
    assert response.json()["error_details"] == {"webhook_url": ["url_is_private"]}
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize("url", ["ftp://example.com/x", "not a url", "http:///nohost", "file:///etc/passwd"])
def test_non_http_urls_are_refused(api, url):
    response = api.post("/api/v1/webhook_endpoints", {"webhook_endpoint": {"webhook_url": url}})
    assert response.status_code == 422
    assert response.json()["error_details"] == {"webhook_url": ["url_is_invalid"]}


def test_rotate_secret_answers_a_new_secret_once(api, receiver):
    created = register(api, receiver.url)
    rotated = api.post(f"/api/v1/webhook_endpoints/{created['lago_id']}/rotate_secret")
    assert rotated.status_code == 200
    secret = rotated.json()["webhook_endpoint"]["signing_secret"]
    assert secret != created["signing_secret"]
    row = WebhookEndpoint.objects.get()
    assert keys.decrypt(row.signing_secret_encrypted) == secret
    assert keys.decrypt(row.previous_signing_secret_encrypted) == created["signing_secret"]


def test_json_public_key_is_the_base64_of_a_pem_generated_once(api):
    first = api.get("/api/v1/webhooks/json_public_key").json()["webhook"]["public_key"]
    second = api.get("/api/v1/webhooks/json_public_key").json()["webhook"]["public_key"]
    assert first == second
    pem = base64.b64decode(first)
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    load_pem_public_key(pem)


def test_organization_shows_its_hmac_key_to_the_api_key_holder(api, anon_api):
    answer = api.get("/api/v1/organizations")
    assert answer.status_code == 200
    assert answer.json()["organization"]["hmac_key"] == Organization.current().hmac_key
    assert anon_api.get("/api/v1/organizations").status_code == 401


@pytest.mark.django_db(transaction=True)
def test_lago_python_client_unchanged(live_server, receiver):
    lago = Client(api_key=make_api_key().raw, api_url=live_server.url)

    created = lago.webhook_endpoints.create(LagoWebhookEndpoint(webhook_url=receiver.url, signature_algo="jwt"))
    found = lago.webhook_endpoints.find(created.lago_id)
    listed = lago.webhook_endpoints.find_all()
    updated = lago.webhook_endpoints.update(
        LagoWebhookEndpoint(webhook_url=f"{receiver.url}/v2", signature_algo="hmac"), created.lago_id
    )
    public_key = lago.webhooks.public_key()
    destroyed = lago.webhook_endpoints.destroy(created.lago_id)

    assert (found.webhook_url, found.signature_algo) == (receiver.url, "jwt")
    assert [e.lago_id for e in listed["webhook_endpoints"]] == [created.lago_id]
    assert listed["meta"]["total_count"] == 1
    assert (updated.webhook_url, updated.signature_algo) == (f"{receiver.url}/v2", "hmac")
    assert public_key.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert destroyed.lago_id == created.lago_id
    with pytest.raises(LagoApiError) as missing:
        lago.webhook_endpoints.find(created.lago_id)
    assert missing.value.status_code == 404


def test_a_configured_key_file_replaces_the_stored_pair(api, settings, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "webhooks.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    settings.TOLLGATE_WEBHOOKS_PRIVATE_KEY_FILE = str(path)

    answered = base64.b64decode(api.get("/api/v1/webhooks/json_public_key").json()["webhook"]["public_key"])
    expected = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert answered == expected
    assert keys.signing_private_key().private_numbers() == key.private_numbers()
