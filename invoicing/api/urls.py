"""invoicing API routes: invoices (with refresh, finalize, void, download), fees, a customer's
current usage, signed PDF links, and the credit notes routes.

Every pattern names one path segment per parameter, so `invoices/<id>/retry_payment` (payments'
route, included after these) is never swallowed here.
"""

from django.urls import include, path

from . import views

urlpatterns = [
    path("invoices", views.InvoicesView.as_view(), name="invoices"),
    path("invoices/<str:invoice_id>", views.InvoiceView.as_view(), name="invoice"),
    path("invoices/<str:invoice_id>/refresh", views.InvoiceRefreshView.as_view(), name="invoice-refresh"),
    path("invoices/<str:invoice_id>/finalize", views.InvoiceFinalizeView.as_view(), name="invoice-finalize"),
    path("invoices/<str:invoice_id>/void", views.InvoiceVoidView.as_view(), name="invoice-void"),
    path("invoices/<str:invoice_id>/download", views.InvoiceDownloadView.as_view(), name="invoice-download"),
    path("fees", views.FeesView.as_view(), name="fees"),
    path("fees/<str:fee_id>", views.FeeView.as_view(), name="fee"),
    path(
        "customers/<str:external_id>/current_usage",
        views.CustomerCurrentUsageView.as_view(),
        name="customer-current-usage",
    ),
    # A signed, expiring link to an invoice's or a credit note's PDF (no API key needed).
    path("documents/<str:token>", views.document_download, name="invoicing-document"),
    path("", include("invoicing.api.credit_notes")),
    path("", include("invoicing.api.emails")),
    # Lago's /analytics/* (gross revenue, invoiced usage, collection, MRR, overdue balance).
    path("", include("invoicing.api.analytics")),
    path("", include("invoicing.wallets.api_urls")),
]
