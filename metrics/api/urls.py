"""metrics API routes."""

urlpatterns: list = []
