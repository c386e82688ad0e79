"""The typed-name confirmation shared by every destructive admin page (restore, snapshot rollback):
the page says what will be overwritten, and the form only validates when the user types the name
of the database that is about to be replaced."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from django import forms
from django.db import DatabaseError
from django.template.response import TemplateResponse

from dbops.engines import get_connector
from dbops.exceptions import DbopsError


@dataclass(frozen=True)
class TargetDatabase:
    """The database a destructive operation overwrites, described for a human."""

    alias: str
    name: str
    engine: str
    host: str

    @property
    def confirmation_name(self) -> str:
        # An SQLite NAME is a path; asking for its file name is enough to prove intent.
        return Path(self.name).name if self.engine == "sqlite" else self.name


def target_database(alias: str) -> TargetDatabase:
    connector = get_connector(alias)
    settings_dict = connector.settings_dict
    host = settings_dict.get("HOST") or ""
    if host and settings_dict.get("PORT"):
        host = f"{host}:{settings_dict['PORT']}"
    return TargetDatabase(alias=alias, name=connector.database_name, engine=connector.engine, host=host)


class TypedConfirmationForm(forms.Form):
    typed_name = forms.CharField(
        label="Type the database name to confirm",
        max_length=1024,
        strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "size": 40}),
    )

    def __init__(self, *args, expected_name: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.expected_name = expected_name

    def clean_typed_name(self) -> str:
        typed = self.cleaned_data["typed_name"]
        if typed != self.expected_name:
            raise forms.ValidationError(
                "That is not the database name. Type %(name)s exactly, or go back.",
                code="mismatch",
                params={"name": self.expected_name},
            )
        return typed


@dataclass
class ConfirmationPage:
    """Everything the confirmation template shows; built by the admin that owns the object."""

    title: str
    action_label: str
    target: TargetDatabase
    source_facts: list[tuple[str, str]]
    overwritten: list[str]
    tables: list[tuple[str, object]] = field(default_factory=list)
    current_rows: dict[str, int] = field(default_factory=dict)  # the target's row count of each table now
    source_noun: str = "backup"
    safety_backup: bool = True
    safety_note: str = ""  # shown instead of the safety-backup line when there is none
    blocking_problem: str = ""
    cancel_url: str = ""

    @property
    def table_rows(self) -> list[tuple[str, object, object]]:
        """(table, rows in the source, rows in the target now or "—" when it has no such table)."""
        return [(table, rows, self.current_rows.get(table, "—")) for table, rows in self.tables]


def current_row_counts(alias: str) -> dict[str, int]:
    """Row counts of the target's tables as they are now (exact), shown beside the source's before a
    destructive operation; {} when they cannot be read (the page says so rather than failing)."""
    try:
        return get_connector(alias).table_counts()
    except (DbopsError, DatabaseError):
        return {}


def render_confirmation(request, model_admin, obj, page: ConfirmationPage, form: TypedConfirmationForm):
    opts = model_admin.model._meta
    context = {
        **model_admin.admin_site.each_context(request),
        "title": page.title,
        "subtitle": str(obj),
        "opts": opts,
        "app_label": opts.app_label,
        "original": obj,
        "page": page,
        "form": form,
        "has_view_permission": model_admin.has_view_permission(request, obj),
    }
    return TemplateResponse(request, "admin/dbops/typed_confirmation.html", context)
