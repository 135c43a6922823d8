"""customers API routes."""

urlpatterns: list = []
