"""api_token: creates, lists and revokes the bearer tokens of API clients (/graphql)."""

from __future__ import annotations

from django.core.management.base import CommandError

from dbops.management.base import DbopsCommand
from dbops.management.options import add_limit_option
from dbops.management.output import page_of, write_more
from multipult.core.models import ApiToken
from multipult.core.services.tokens import api_token_create, api_token_revoke


class Command(DbopsCommand):
    help = (
        "create --user-id N --name NAME prints a new token once (only its hash is kept); "
        "list shows tokens without their secret; revoke --token-id N refuses it from then on."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["create", "list", "revoke"], help="What to do.")
        parser.add_argument("--user-id", type=int, help="create: the user the token acts as.")
        parser.add_argument("--name", default="", help="create: what the token is for (e.g. the client's name).")
        parser.add_argument("--token-id", type=int, help="revoke: the token's id (see list).")
        add_limit_option(parser, what="tokens, newest first")

    def handle(self, *args, **options):
        action = options["action"]
        needed = {"create": "user_id", "revoke": "token_id"}.get(action)
        if needed and options[needed] is None:
            raise CommandError(f"{action} needs --{needed.replace('_', '-')}.")
        if action == "create":
            issued = api_token_create(user_id=options["user_id"], name=options["name"])
            self.stdout.write(self.style.SUCCESS(f"API token #{issued.token.pk} for {issued.token.user.username}:"))
            self.stdout.write(issued.secret)
            self.stdout.write("It is shown only now: send it as 'Authorization: Bearer <token>'.")
        elif action == "revoke":
            token = api_token_revoke(token_id=options["token_id"])
            self.stdout.write(self.style.SUCCESS(f"API token #{token.pk} ({token.name}) is revoked."))
        else:
            tokens = ApiToken.objects.select_related("user").order_by("-created_at", "-id")
            page = page_of(tokens, limit=options["limit"])
            for token in page.items:
                state = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "active"
                used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
                owner = token.user.username
                self.stdout.write(f"#{token.pk} {token.prefix}… {owner} {token.name!r} {state}, used {used}")
            write_more(self.stdout, page, "tokens")
