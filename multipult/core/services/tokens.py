"""API tokens: create (the secret is returned once, only its SHA-256 is kept), authenticate, revoke."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from dbops.exceptions import UserAdminError
from multipult.core.models import ApiToken

TOKEN_PREFIX = "mpt_"  # noqa: S105 - marks a MultiPULT token, not a secret
PREFIX_CHARS = 12  # "mpt_" and 8 random characters: the row's lookup key, safe to show
LAST_USED_GRANULARITY = timedelta(minutes=1)  # at most one UPDATE a minute per token


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown to the operator once; never stored, logged or shown again


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_token_create(*, user_id: int, name: str) -> IssuedToken:
    """A new token for the user; the secret is in the result only."""
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        raise UserAdminError(f"There is no user #{user_id}.", parameter="user_id")
    if not user.is_active:
        raise UserAdminError(f"User #{user_id} {user.username} is inactive; a token would not work.")
    if not name.strip():
        raise UserAdminError("A token needs a name saying what it is for.", parameter="name")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name.strip(), prefix=secret[:PREFIX_CHARS], digest=_digest(secret))
    return IssuedToken(token=token, secret=secret)


def api_token_revoke(*, token_id: int) -> ApiToken:
    """Revokes a token (idempotent); requests with it are refused from then on."""
    token = ApiToken.objects.filter(pk=token_id).first()
    if token is None:
        raise UserAdminError(f"There is no API token #{token_id}.", parameter="token_id")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def api_token_authenticate(*, secret: str):
    """The active user a valid, unrevoked token belongs to; None for anything else."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) <= PREFIX_CHARS:
        return None
    token = ApiToken.objects.select_related("user").filter(prefix=secret[:PREFIX_CHARS]).first()
    if token is None or token.revoked_at is not None or not token.user.is_active:
        return None
    if not hmac.compare_digest(token.digest, _digest(secret)):
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_GRANULARITY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user
