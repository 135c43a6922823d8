"""The customer portal's pages, under /portal/<token>/ (the token is the credential)."""

from django.urls import path

from . import views

app_name = "portal"

urlpatterns = [
    path("<str:token>/", views.home, name="home"),
    path("<str:token>/billing-details", views.billing_details, name="billing-details"),
    path("<str:token>/invoices/<str:invoice_id>/pay", views.pay, name="pay"),
    path("<str:token>/invoices/<str:invoice_id>/pdf", views.invoice_pdf, name="invoice-pdf"),
    path("<str:token>/credit_notes/<str:credit_note_id>/pdf", views.credit_note_pdf, name="credit-note-pdf"),
]
