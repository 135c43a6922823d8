"""Credit notes API routes (filled by the credit-notes work): /credit_notes, estimate, void, download."""

urlpatterns: list = []
