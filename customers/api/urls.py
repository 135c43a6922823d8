"""customers API routes: the organization and customers.

`customers/<external_id>` matches one path segment only, so the longer customer paths other apps
own (current_usage, payments, applied_coupons, ...) reach their views.
"""

from django.urls import path

from . import views

urlpatterns = [
    path("organizations", views.OrganizationView.as_view(), name="organization"),
    path("customers", views.CustomersView.as_view(), name="customers"),
    path("customers/<str:external_id>", views.CustomerView.as_view(), name="customer"),
]
