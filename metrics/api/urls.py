"""metrics API routes: events (single, batch, lookups) and billable metrics."""

from django.urls import path

from . import views

urlpatterns = [
    path("events", views.EventsView.as_view(), name="events"),
    path("events/batch", views.EventsBatchView.as_view(), name="events-batch"),
    path("events/<path:transaction_id>", views.EventDetailView.as_view(), name="event"),
    path("billable_metrics", views.BillableMetricsView.as_view(), name="billable-metrics"),
    path(
        "billable_metrics/evaluate_expression",
        views.EvaluateExpressionView.as_view(),
        name="billable-metrics-evaluate-expression",
    ),
    path("billable_metrics/<str:code>", views.BillableMetricDetailView.as_view(), name="billable-metric"),
]
