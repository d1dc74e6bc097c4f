"""server_cipher session tokens (OpenNebula 6.x): AES-256-CBC, PKCS#7, base64.

key = the first 32 characters of the server account's stored password (the
lowercase SHA-256 hex of its plaintext), IV = the first 16 characters of the key.
Both oned (onelite) and the EC2 service use this module.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def _cipher(stored_password: str) -> Cipher:
    key = stored_password[:32].encode()
    return Cipher(algorithms.AES(key), modes.CBC(key[:16]))


def encrypt(stored_password: str, plaintext: str) -> str:
    padder = padding.PKCS7(128).padder()
    data = padder.update(plaintext.encode()) + padder.finalize()
    enc = _cipher(stored_password).encryptor()
    return base64.b64encode(enc.update(data) + enc.finalize()).decode()


def decrypt(stored_password: str, token: str) -> str | None:
    """The plaintext, or None when the token was not made with this key."""
    try:
        raw = base64.b64decode(token, validate=True)
        if len(stored_password) < 32 or not raw or len(raw) % 16:
            return None
        dec = _cipher(stored_password).decryptor()
        data = dec.update(raw) + dec.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return (unpadder.update(data) + unpadder.finalize()).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
