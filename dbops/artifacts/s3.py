"""The S3 client of the streaming paths (multipart uploads, ranged reads), and their retry rule: a fault
another attempt may not meet (5xx, throttling, a cut connection, a timeout) is retried with exponential
backoff, each call on its own; anything else (access denied, no such bucket) fails at once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import urllib3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.core.files.storage import Storage

from dbops.conf import dbops_setting
from dbops.exceptions import UploadError

logger = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 0.25
RETRY_MAX_SECONDS = 4.0
READ_CHUNK = 1 << 20
CLIENTS_KEPT = 16
_sessions: dict[tuple, object] = {}
_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()
_RETRYABLE_CODES = {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "RequestTimeTooSkewed"}


def s3_client(storage: Storage):
    """A boto3 client with the storage's credentials and endpoint, but without botocore's own retries
    (ours are per part, counted and logged) and with the configured timeouts. One per configuration in
    a process (clients are thread-safe): making one costs a quarter of a second, and each boto3 session
    loads S3's service model again (about 13 MB here)."""
    timeout = dbops_setting("S3_TIMEOUT_SECONDS")
    storage_config = getattr(storage, "client_config", None)
    credentials = tuple(
        getattr(storage, name, None) for name in ("session_profile", "access_key", "secret_key", "security_token")
    )
    where = (storage.region_name, storage.use_ssl, storage.endpoint_url, storage.verify, timeout)
    options = sorted(
        (name, repr(value)) for name, value in vars(storage_config or Config())["_user_provided_options"].items()
    )
    key = (credentials, where, tuple(options))
    with _clients_lock:  # a boto3 session is not thread-safe; the clients it makes are
        client = _clients.get(key)
        if client is None:
            config = Config(
                retries={"total_max_attempts": 1},
                connect_timeout=timeout,
                read_timeout=timeout,
                request_checksum_calculation="when_required",  # Content-MD5 per part instead (see _upload_part)
                response_checksum_validation="when_required",
            )
            config = storage_config.merge(config) if storage_config else config
            session = _sessions.get(credentials)
            if session is None:  # django-storages' way to the configured credentials
                session = _sessions[credentials] = storage._create_session()
            if len(_clients) >= CLIENTS_KEPT:
                _clients.clear()
            client = _clients[key] = session.client(
                "s3",
                region_name=storage.region_name,
                use_ssl=storage.use_ssl,
                endpoint_url=storage.endpoint_url,
                verify=storage.verify,
                config=config,
            )
        return client


def retryable(exc: BaseException) -> bool:
    """A fault that another attempt may not meet: 5xx, throttling, a cut connection or a timeout."""
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status >= 500 or exc.response.get("Error", {}).get("Code") in _RETRYABLE_CODES
    return isinstance(exc, (BotoCoreError, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError))


def s3_error_text(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def with_retries(what: str, call: Callable[[], object], *, attempts: int) -> object:
    """Runs `call` up to `attempts` times while it fails retryably, backing off exponentially."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as exc:
            if not retryable(exc) or attempt == attempts:
                tries = f" after {attempt} attempts" if attempt > 1 else ""
                raise UploadError(f"S3 {what} failed{tries}: {s3_error_text(exc)}") from exc
            logger.warning("S3 %s: attempt %d/%d failed (%s); retrying", what, attempt, attempts, s3_error_text(exc))
            time.sleep(min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** (attempt - 1)))
    raise AssertionError("unreachable")


class S3ObjectReader:
    """Reads one S3 object as a stream, without a local copy; a read cut off mid-object (reset,
    timeout, 5xx) carries on from the byte it reached with a ranged GET, up to the attempt budget."""

    def __init__(self, storage: Storage, key: str) -> None:
        self._client, self._bucket, self._key = s3_client(storage), storage.bucket_name, key
        self._attempts = dbops_setting("S3_PART_ATTEMPTS")
        self._body = None
        self.position = 0

    def _open(self) -> None:
        ranged = {"Range": f"bytes={self.position}-"} if self.position else {}
        response = with_retries(
            f"read of {self._key}",
            lambda: self._client.get_object(Bucket=self._bucket, Key=self._key, **ranged),
            attempts=self._attempts,
        )
        self._body = response["Body"]

    def read(self, size: int = READ_CHUNK) -> bytes:
        size = READ_CHUNK if size is None or size < 0 else size
        for attempt in range(1, self._attempts + 1):
            try:
                if self._body is None:
                    self._open()
                data = self._body.read(size)
                self.position += len(data)
                return data
            except UploadError:
                raise
            except Exception as exc:
                self._body = None
                if not retryable(exc) or attempt == self._attempts:
                    what = f"S3 read of {self._key} failed at byte {self.position}: {s3_error_text(exc)}"
                    raise UploadError(what) from exc
                logger.warning("S3 read of %s cut at byte %d (%s); resuming", self._key, self.position, exc)
                time.sleep(min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** (attempt - 1)))
        raise AssertionError("unreachable")

    def tell(self) -> int:
        return self.position

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if self._body is not None:
            self._body.close()
