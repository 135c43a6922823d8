"""invoicing API routes."""

urlpatterns: list = []
