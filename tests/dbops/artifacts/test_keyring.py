"""The key ring: order (newest first), the single-key variable as its oldest key, key ids, and the ring's
keys masked one by one wherever secrets are masked (show_config, logs, driver messages)."""

from __future__ import annotations

import json
import logging

import pytest

from dbops.artifacts.keyring import key_id_of, key_ring, ring_keys_for, ring_newest_key
from dbops.exceptions import EncryptionError, KeyUnavailable
from multipult.core.services.configuration import mask_configured_secrets
from multipult.logging import SecretMaskingFilter
from tests.commands import run_command


def test_the_first_listed_key_encrypts_and_the_single_key_comes_last(settings):
    settings.BACKUP_ENCRYPTION_KEYS = ["newest key", "older key"]
    settings.BACKUP_ENCRYPTION_KEY = "oldest key"
    assert [key.key_id for key in key_ring()] == [key_id_of(k) for k in ("newest key", "older key", "oldest key")]
    assert ring_newest_key().passphrase == "newest key"
    settings.BACKUP_ENCRYPTION_KEY = "newest key"  # listed twice: once in the ring
    assert len(key_ring()) == 2
    settings.BACKUP_ENCRYPTION_KEYS = []
    assert ring_newest_key().passphrase == "newest key"  # the single key alone is a one-key ring


def test_lookups_by_key_id(settings):
    settings.BACKUP_ENCRYPTION_KEYS, settings.BACKUP_ENCRYPTION_KEY = ["k-new", "k-old"], None
    assert [key.passphrase for key in ring_keys_for(key_id_of("k-old"), what="backup #1")] == ["k-old"]
    assert len(ring_keys_for("", what="a file")) == 2  # unknown key: every key is a candidate
    with pytest.raises(KeyUnavailable, match=r"backup #1 was encrypted with key 0123456789abcdef, which is not"):
        ring_keys_for("0123456789abcdef", what="backup #1")
    settings.BACKUP_ENCRYPTION_KEYS = []
    with pytest.raises(KeyUnavailable, match="no key is configured"):
        ring_keys_for("", what="a file")
    with pytest.raises(EncryptionError, match="Encryption needs a key"):
        ring_newest_key()


def test_key_ids_tell_keys_apart_and_do_not_contain_them():
    ids = {key_id_of(key) for key in ("a", "b", "correct horse battery staple", "correct horse battery stapl")}
    assert len(ids) == 4
    key_id = key_id_of("correct horse battery staple")
    assert key_id == key_id_of("correct horse battery staple")  # stable across calls and processes
    assert len(key_id) == 16 and int(key_id, 16) >= 0 and "horse" not in key_id


def test_every_key_of_the_ring_is_masked(monkeypatch):
    monkeypatch.setenv("BACKUP_ENCRYPTION_KEYS", "first-ring-secret,second-ring-secret")
    shown = run_command("show_config", "--json")
    entry = next(e for e in json.loads(shown) if e["name"] == "BACKUP_ENCRYPTION_KEYS")
    assert entry["value"] == "********" and entry["secret"]
    assert "ring-secret" not in shown

    record = logging.LogRecord("t", logging.WARNING, __file__, 1, "tried %s", ("second-ring-secret",), None)
    SecretMaskingFilter().filter(record)
    assert record.getMessage() == "tried ********"
    assert mask_configured_secrets("driver said: first-ring-secret") == "driver said: ********"
