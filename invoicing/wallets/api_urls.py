"""Wallet routes (included by invoicing.api.urls). One path segment per parameter."""

from django.urls import path

from . import api

urlpatterns = [
    path("wallets", api.WalletsView.as_view(), name="wallets"),
    path("wallets/<str:wallet_id>", api.WalletView.as_view(), name="wallet"),
    path("wallets/<str:wallet_id>/metadata", api.WalletMetadataView.as_view(), name="wallet-metadata"),
    path("wallets/<str:wallet_id>/metadata/<str:key>", api.WalletMetadataKeyView.as_view(), name="wallet-metadata-key"),
    path(
        "wallets/<str:wallet_id>/wallet_transactions",
        api.WalletTransactionListView.as_view(),
        name="wallet-transactions",
    ),
    path("customers/<str:external_id>/wallets", api.CustomerWalletsView.as_view(), name="customer-wallets"),
    path("customers/<str:external_id>/wallets/<str:code>", api.CustomerWalletView.as_view(), name="customer-wallet"),
    path(
        "customers/<str:external_id>/wallets/<str:code>/metadata",
        api.CustomerWalletMetadataView.as_view(),
        name="customer-wallet-metadata",
    ),
    path(
        "customers/<str:external_id>/wallets/<str:code>/metadata/<str:key>",
        api.CustomerWalletMetadataKeyView.as_view(),
        name="customer-wallet-metadata-key",
    ),
    path("wallet_transactions", api.WalletTransactionsView.as_view(), name="wallet-transactions-create"),
    path("wallet_transactions/<str:transaction_id>", api.WalletTransactionView.as_view(), name="wallet-transaction"),
    path(
        "wallet_transactions/<str:transaction_id>/consumptions",
        api.WalletTransactionConsumptionsView.as_view(),
        name="wallet-transaction-consumptions",
    ),
    path(
        "wallet_transactions/<str:transaction_id>/fundings",
        api.WalletTransactionFundingsView.as_view(),
        name="wallet-transaction-fundings",
    ),
]
