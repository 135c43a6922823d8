"""payments API routes: /payments, an invoice's retry_payment, a customer's payment methods."""

from django.urls import include, path

from . import views

urlpatterns = [
    path("", include("payments.api.receipts")),
    path("", include("payments.api.payment_requests")),
    path("payments", views.PaymentsView.as_view(), name="payments"),
    path("payments/<str:lago_id>", views.PaymentDetailView.as_view(), name="payment"),
    path(
        "invoices/<str:invoice_id>/retry_payment",
        views.InvoiceRetryPaymentView.as_view(),
        name="invoice-retry-payment",
    ),
    path(
        "wallet_transactions/<str:transaction_id>/payment_url",
        views.WalletTransactionPaymentUrlView.as_view(),
        name="wallet-transaction-payment-url",
    ),
    path("customers/<str:external_id>/payments", views.CustomerPaymentsView.as_view(), name="customer-payments"),
    path(
        "customers/<str:external_id>/payment_methods",
        views.CustomerPaymentMethodsView.as_view(),
        name="customer-payment-methods",
    ),
    path(
        "customers/<str:external_id>/payment_methods/<str:payment_method_id>/set_as_default",
        views.CustomerPaymentMethodDefaultView.as_view(),
        name="customer-payment-method-set-default",
    ),
]
