from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=200, unique=True)
    born = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Book(models.Model):
    author = models.ForeignKey(Author, on_delete=models.PROTECT, related_name="books")
    title = models.CharField(max_length=300)
    isbn = models.CharField(max_length=13, unique=True)
    pages = models.PositiveIntegerField(default=0)
    price = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    tags = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return self.title


class Loan(models.Model):
    book = models.ForeignKey(Book, on_delete=models.CASCADE, related_name="loans")
    borrower_email = models.EmailField()
    lent_at = models.DateTimeField()
    returned = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.book} lent to {self.borrower_email}"
