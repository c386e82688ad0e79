"""seed_library: a few authors, books and loans (the sample project's own command)."""

from datetime import UTC, date, datetime
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import transaction

from tests.sample_project.library.models import Author, Book, Loan

AUTHORS = {
    ("Ursula K. Le Guin", date(1929, 10, 21)): [
        ("A Wizard of Earthsea", "9780553383041", 183, Decimal("9.99")),
        ("The Dispossessed", "9780061054884", 387, Decimal("15.50")),
    ],
    ("Stanisław Lem", date(1921, 9, 12)): [("Solaris", "9780156027601", 204, None)],
    ("Octavia E. Butler", None): [
        ("Kindred", "9780807083697", 264, Decimal("12.00")),
        ("Parable of the Sower", "9781538732182", 345, Decimal("0.05")),
    ],
}


class Command(BaseCommand):
    help = "Adds a few authors, books and loans."

    def handle(self, *args, **options):
        with transaction.atomic():
            for (name, born), books in AUTHORS.items():
                author = Author.objects.create(name=name, born=born)
                for title, isbn, pages, price in books:
                    book = Book.objects.create(
                        author=author, title=title, isbn=isbn, pages=pages, price=price, tags=["fiction", title[0]]
                    )
                    Loan.objects.create(
                        book=book, borrower_email=f"reader.{isbn}@example.org", lent_at=datetime(2026, 1, 5, tzinfo=UTC)
                    )
        self.stdout.write(
            f"{Author.objects.count()} authors, {Book.objects.count()} books, {Loan.objects.count()} loans"
        )
