"""The key ring of encrypted backups: BACKUP_ENCRYPTION_KEYS, newest first.

The first listed key encrypts new backups; every listed key decrypts. BACKUP_ENCRYPTION_KEY (the
single key of earlier versions) still works: it is a one-key ring, or, when both are set, the oldest
key of the ring. Rotating is "put the new key first, keep the old ones after it".

Manifests and the catalog name a backup's key by its id, never the key: 16 hex characters of an scrypt
derivation of the key under a fixed label. The id tells keys apart, cannot be turned back into the key,
and costs a guesser as much per try as the backups' own key derivation does (it is no shortcut for
trying passphrases).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from django.conf import settings

from dbops.exceptions import EncryptionError, KeyUnavailable

KEY_ID_LENGTH = 16
_KEY_ID_LABEL = b"multipult-dbops backup key id v1"


@dataclass(frozen=True)
class RingKey:
    key_id: str
    passphrase: str = field(repr=False)


@functools.lru_cache(maxsize=32)
def key_id_of(passphrase: str) -> str:
    # `cryptography` is imported on first use: most commands never encrypt (start-up time).
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    derived = Scrypt(salt=_KEY_ID_LABEL, length=32, n=2**14, r=8, p=1).derive(passphrase.encode())
    return derived.hex()[:KEY_ID_LENGTH]


def key_ring() -> list[RingKey]:
    """The configured keys, newest first, without repeats."""
    passphrases = list(getattr(settings, "BACKUP_ENCRYPTION_KEYS", None) or [])
    single = getattr(settings, "BACKUP_ENCRYPTION_KEY", None)
    if single:
        passphrases.append(single)
    ring, seen = [], set()
    for passphrase in passphrases:
        if passphrase and passphrase not in seen:
            seen.add(passphrase)
            ring.append(RingKey(key_id_of(passphrase), passphrase))
    return ring


def ring_newest_key() -> RingKey:
    """The key new backups are encrypted with."""
    ring = key_ring()
    if not ring:
        raise EncryptionError(
            "Encryption needs a key: set BACKUP_ENCRYPTION_KEYS (newest first) or BACKUP_ENCRYPTION_KEY."
        )
    return ring[0]


def ring_ids() -> list[str]:
    return [key.key_id for key in key_ring()]


def ring_keys_for(key_id: str, *, what: str) -> list[RingKey]:
    """The ring keys that may decrypt `what` (a backup encrypted with key `key_id`; "" when the key is
    not known, e.g. a file or a backup from before key ids): that one key, or the whole ring.

    Raises KeyUnavailable when the ring cannot have it."""
    ring = key_ring()
    if not ring:
        raise KeyUnavailable(
            f"Key unavailable: {what} is encrypted and no key is configured "
            "(BACKUP_ENCRYPTION_KEYS or BACKUP_ENCRYPTION_KEY)."
        )
    if not key_id:
        return ring
    matching = [key for key in ring if key.key_id == key_id]
    if not matching:
        listed = ", ".join(key.key_id for key in ring)
        raise KeyUnavailable(
            f"Key unavailable: {what} was encrypted with key {key_id}, which is not in the key ring "
            f"(BACKUP_ENCRYPTION_KEYS has {listed}); add that key to decrypt it."
        )
    return matching
