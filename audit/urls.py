"""audit API routes: Lago's activity and API logs."""

from django.urls import path

from . import api

urlpatterns = [
    path("activity_logs", api.ActivityLogsView.as_view(), name="activity-logs"),
    path("activity_logs/<str:activity_id>", api.ActivityLogView.as_view(), name="activity-log"),
    path("api_logs", api.ApiLogsView.as_view(), name="api-logs"),
    path("api_logs/<str:request_id>", api.ApiLogView.as_view(), name="api-log"),
]
