"""Import from the admin with a preview, as django-import-export does: upload a file, see the dry run
(every validation problem, or per entity the rows that would be created and updated), then confirm;
the confirmed import takes a rollback snapshot first. Both steps are `import_data`, the service the
import_data command calls; this module only keeps the uploaded file between the two requests."""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import time
import uuid
from pathlib import Path

from django import forms
from django.contrib import messages
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import reverse

from dbops.conf import dbops_setting
from dbops.exceptions import ConfigurationError, DbopsError, ImportValidationError
from dbops.services.datamigration.formats import FORMATS
from dbops.services.datamigration.imports import MODES, import_data

PROBLEMS_SHOWN = 50
FORM_OVERHEAD_BYTES = 64 << 10  # multipart boundaries, the CSRF token, format and mode
PENDING_HOURS = 24  # an upload never confirmed is removed at the next upload after this
_SIGNING_SALT = "dbops.admin.imports"
_UPLOAD_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def pending_uploads_dir() -> Path:
    """Uploads between preview and confirmation (personal data, often): a folder only this process's OS user
    can enter, never served. DBOPS["IMPORT_UPLOAD_DIR"], or one per user in the system's temporary folder.

    A folder in a shared /tmp can be made first by someone else (to read the uploads or plant a link):
    a symlink, another owner or any access for group or others is refused, not used."""
    configured = dbops_setting("IMPORT_UPLOAD_DIR")
    folder = Path(configured) if configured else Path(tempfile.gettempdir()) / f"dbops-admin-imports-{os.getuid()}"
    folder.mkdir(mode=0o700, parents=bool(configured), exist_ok=True)
    facts = os.lstat(folder)
    if not stat.S_ISDIR(facts.st_mode) or facts.st_uid != os.getuid() or facts.st_mode & 0o077:
        raise ConfigurationError(
            f"The folder for uploads awaiting confirmation, {folder}, is not private to this user (a link, "
            f"another owner, or open to group or others): nothing is kept there. Remove it, or set "
            f'DBOPS["IMPORT_UPLOAD_DIR"] to a folder only this user can enter.'
        )
    return folder


def _drop_stale_uploads(folder: Path) -> None:
    cutoff = time.time() - PENDING_HOURS * 3600
    for upload in folder.iterdir():
        if upload.stat().st_mtime < cutoff:
            shutil.rmtree(upload, ignore_errors=True)


def upload_keep(uploaded_file, *, user_id: int) -> str:
    """Saves an upload for the confirmation step; the signed token names it and its uploader only."""
    folder = pending_uploads_dir()
    _drop_stale_uploads(folder)
    key = uuid.uuid4().hex
    (folder / key).mkdir(mode=0o700)
    name = _UPLOAD_NAME.sub("_", Path(uploaded_file.name).name)[-100:] or "upload"
    with open(folder / key / name, "wb") as target:
        for chunk in uploaded_file.chunks():
            target.write(chunk)
    return signing.dumps({"key": key, "name": name, "user": user_id}, salt=_SIGNING_SALT)


def upload_path(token: str, *, user_id: int) -> Path:
    """The kept upload a token names; PermissionDenied for a forged token or another user's upload."""
    try:
        kept = signing.loads(token, salt=_SIGNING_SALT, max_age=PENDING_HOURS * 3600)
    except signing.BadSignature as exc:
        raise PermissionDenied("The upload token is not valid (or has expired): upload the file again.") from exc
    if kept.get("user") != user_id:
        raise PermissionDenied("That upload belongs to another user.")
    return pending_uploads_dir() / kept["key"] / kept["name"]


def upload_limit_refusal(size: int) -> str | None:
    limit = dbops_setting("IMPORT_UPLOAD_MAX_BYTES")
    if size <= limit:
        return None
    return (
        f"The file is larger than the {filesizeformat(limit)} the import page accepts "
        '(DBOPS["IMPORT_UPLOAD_MAX_BYTES"]); import it with `manage.py import_data`.'
    )


class ImportUploadForm(forms.Form):
    file = forms.FileField(help_text="An export_data file: .json, .jsonl, .sql, or the .zip the csv format writes.")

    def clean_file(self):
        uploaded = self.cleaned_data["file"]
        if refusal := upload_limit_refusal(uploaded.size):  # a chunked upload says no length up front
            raise forms.ValidationError(refusal)
        return uploaded

    format = forms.ChoiceField(choices=[(name, name) for name in FORMATS])
    mode = forms.ChoiceField(
        choices=[(name, name) for name in MODES],
        help_text="insert refuses ids that exist; upsert updates them.",
    )


class ImportConfirmForm(forms.Form):
    token = forms.CharField(widget=forms.HiddenInput)
    format = forms.ChoiceField(choices=[(name, name) for name in FORMATS], widget=forms.HiddenInput)
    mode = forms.ChoiceField(choices=[(name, name) for name in MODES], widget=forms.HiddenInput)


def has_import_permission(request) -> bool:
    # Overwrites application data (upsert) like a restore, so the same permission; superusers hold it.
    return request.user.is_active and request.user.has_perm("dbops.restore_backup")


def import_view(model_admin, request):
    """GET: the upload form. POST with a file: the dry run. POST with `confirm`: the import itself."""
    if not has_import_permission(request):
        raise PermissionDenied
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": "Import data from a file",
        "form": ImportUploadForm(),
    }
    if request.method != "POST":
        return TemplateResponse(request, "admin/dbops/datatransferrun/import.html", context)
    # Refused before the body is read (request.POST would read all of it): the form's fields are small.
    if refusal := upload_limit_refusal(int(request.META.get("CONTENT_LENGTH") or 0) - FORM_OVERHEAD_BYTES):
        context["refusal"] = refusal
        return TemplateResponse(request, "admin/dbops/datatransferrun/import.html", context, status=413)
    if "confirm" in request.POST:
        return _confirm(model_admin, request, context)
    form = ImportUploadForm(request.POST, request.FILES)
    context["form"] = form
    if not form.is_valid():
        return TemplateResponse(request, "admin/dbops/datatransferrun/import.html", context)
    try:
        token = upload_keep(form.cleaned_data["file"], user_id=request.user.pk)
    except ConfigurationError as exc:
        context["refusal"] = str(exc)
        return TemplateResponse(request, "admin/dbops/datatransferrun/import.html", context, status=500)
    fmt, mode = form.cleaned_data["format"], form.cleaned_data["mode"]
    context.update(file_name=form.cleaned_data["file"].name, fmt=fmt, mode=mode)
    try:
        result = import_data(input_path=upload_path(token, user_id=request.user.pk), fmt=fmt, mode=mode, dry_run=True)
    except ImportValidationError as exc:
        shutil.rmtree(upload_path(token, user_id=request.user.pk).parent, ignore_errors=True)
        context.update(problems=exc.problems[:PROBLEMS_SHOWN], problems_total=exc.total)
    except DbopsError as exc:
        shutil.rmtree(upload_path(token, user_id=request.user.pk).parent, ignore_errors=True)
        context.update(refusal=str(exc))
    else:
        context.update(
            preview=result,
            confirm_form=ImportConfirmForm(initial={"token": token, "format": fmt, "mode": mode}),
        )
    return TemplateResponse(request, "admin/dbops/datatransferrun/import.html", context)


def _confirm(model_admin, request, context):
    form = ImportConfirmForm(request.POST)
    if not form.is_valid():
        raise PermissionDenied("The confirmation is incomplete: upload the file again.")
    path = upload_path(form.cleaned_data["token"], user_id=request.user.pk)
    if not path.exists():
        model_admin.message_user(request, "The uploaded file is gone (expired): upload it again.", messages.ERROR)
        return HttpResponseRedirect(request.path)
    try:
        result = import_data(
            input_path=path, fmt=form.cleaned_data["format"], mode=form.cleaned_data["mode"], snapshot=True
        )
    except DbopsError as exc:
        # the data changed since the preview (or the database refused): nothing was imported
        model_admin.message_user(request, f"Nothing was imported: {exc}", messages.ERROR)
        return HttpResponseRedirect(request.path)
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)
    counts = ", ".join(f"{item.entity} {item.created} created / {item.updated} updated" for item in result.entities)
    model_admin.message_user(
        request,
        f"Imported {result.total_rows} row(s) from {path.name} (run #{result.run_id}): {counts}. "
        f"Snapshot {result.snapshot_id} rolls it back.",
        messages.SUCCESS,
    )
    return HttpResponseRedirect(reverse("admin:dbops_datatransferrun_changelist"))
