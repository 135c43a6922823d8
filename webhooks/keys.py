"""The secrets webhooks sign with: the RSA key pair of X-Lago-Signature (jwt), generated once and
kept in the database (or read from TOLLGATE_WEBHOOKS_PRIVATE_KEY_FILE), and the endpoints' signing
secrets. Everything secret at rest is encrypted with a Fernet key derived from SECRET_KEY."""

from __future__ import annotations

import base64
import secrets
from functools import cache

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import IntegrityError, transaction

from .models import SigningKeyPair

SIGNING_SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)


@cache
def _fernet(secret_key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"tollgate-webhooks-at-rest").derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt(plain: str) -> str:
    return _fernet(settings.SECRET_KEY).encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    return _fernet(settings.SECRET_KEY).decrypt(token.encode()).decode()


def new_signing_secret() -> str:
    return SIGNING_SECRET_PREFIX + secrets.token_urlsafe(32)


def _generate() -> SigningKeyPair:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return SigningKeyPair(id=1, private_key_encrypted=encrypt(private_pem), public_key_pem=public_pem)


def _key_pair() -> SigningKeyPair:
    pair = SigningKeyPair.objects.filter(id=1).first()
    if pair is not None:
        return pair
    try:
        with transaction.atomic():
            pair = _generate()
            pair.save(force_insert=True)
            return pair
    except IntegrityError:  # another process generated it first: theirs is the one
        return SigningKeyPair.objects.get(id=1)


def _file_private_key() -> RSAPrivateKey | None:
    path = settings.TOLLGATE_WEBHOOKS_PRIVATE_KEY_FILE
    if not path:
        return None
    with open(path) as handle:
        return _load_private_key(handle.read())


@cache
def _load_private_key(pem: str) -> RSAPrivateKey:
    # Loading an RSA key validates it (~100 ms): once per process and key.
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, RSAPrivateKey)
    return key


@cache
def _decrypt_private_key(secret_key: str, token: str) -> RSAPrivateKey:
    return _load_private_key(_fernet(secret_key).decrypt(token.encode()).decode())


def signing_private_key() -> RSAPrivateKey:
    """The key X-Lago-Signature (jwt) is signed with: the configured file's, else the stored
    pair's (read each time, one small row; decrypted and loaded once per process)."""
    key = _file_private_key()
    if key is not None:
        return key
    return _decrypt_private_key(settings.SECRET_KEY, _key_pair().private_key_encrypted)


def private_key_pem() -> str:
    key = _file_private_key()
    if key is not None:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
    return decrypt(_key_pair().private_key_encrypted)


def public_key_pem() -> str:
    key = _file_private_key()
    if key is not None:
        return (
            key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
    return _key_pair().public_key_pem
