"""create_user / assign_role: accounts and roles from the command line, each change audit-logged."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone

from dbops.exceptions import UserAdminError
from multipult.core.models import AuditLog, Role

User = get_user_model()


@dataclass(frozen=True)
class RoleAssignment:
    user: User
    role: Role
    added: bool  # False when the user already had the role


def password_problems(username: str, email: str, password: str) -> list[str]:
    """What the configured password validators say against this password for this user (empty: usable)."""
    try:
        validate_password(password, user=User(username=username.strip(), email=email))
    except ValidationError as exc:
        return list(exc.messages)
    return []


def user_create(
    *,
    username: str,
    email: str,
    password: str | None,
    superuser: bool = False,
    using: str = DEFAULT_DB_ALIAS,
) -> User:
    """Creates one user; password None gives an unusable password. Checks everything before writing."""
    problems = []
    username = username.strip()
    if not username:
        problems.append("the username is empty")
    else:
        try:
            User.username_validator(username)
        except ValidationError as exc:
            problems.extend(exc.messages)
        if User.objects.using(using).filter(username__iexact=username).exists():
            problems.append(f"a user named {username!r} already exists")
    try:
        validate_email(email)
    except ValidationError:
        problems.append(f"{email!r} is not a valid email address")
    if password is not None:
        problems.extend(f"password: {message}" for message in password_problems(username, email, password))
    if problems:
        raise UserAdminError("Cannot create the user: " + "; ".join(problems) + ".")

    with transaction.atomic(using=using):
        user = User(username=username, email=User.objects.normalize_email(email))
        user.is_staff = user.is_superuser = superuser
        if password is None:
            user.set_unusable_password()
        else:
            user.set_password(password)
        user.save(using=using)
        _audit(user, AuditLog.Action.CREATE, {"username": username, "superuser": superuser}, using)
    return user


def role_assign(
    *, role_name: str, user_id: int | None = None, username: str | None = None, using: str = DEFAULT_DB_ALIAS
) -> RoleAssignment:
    """Gives a user (by id or by username) a role (idempotent). Unknown user or role: UserAdminError
    naming the known roles."""
    if (user_id is None) == (username is None):
        raise UserAdminError("Name the user by id or by username (one of the two).", parameter="user_id")
    users = User.objects.using(using)
    user = users.filter(pk=user_id).first() if user_id is not None else users.filter(username=username).first()
    role = Role.objects.using(using).filter(name=role_name).first()
    problems = []
    if user is None:
        problems.append(f"no user with id {user_id}" if user_id is not None else f"no user named {username!r}")
    if role is None:
        known = ", ".join(Role.objects.using(using).order_by("name").values_list("name", flat=True)) or "none yet"
        problems.append(f"no role named {role_name!r} (known roles: {known})")
    if problems:
        raise UserAdminError("Cannot assign the role: " + "; ".join(problems) + ".")
    with transaction.atomic(using=using):
        added = not user.roles.filter(pk=role.pk).exists()
        if added:
            user.roles.add(role)
            _audit(user, AuditLog.Action.UPDATE, {"roles": {"added": role.name}}, using)
    return RoleAssignment(user=user, role=role, added=added)


def _audit(user: User, action: str, changes: dict, using: str) -> None:
    AuditLog.objects.using(using).create(
        actor=None,  # the command line has no authenticated actor
        action=action,
        entity_type=User._meta.label_lower,
        entity_id=user.pk,
        timestamp=timezone.now(),
        changes=changes,
    )
