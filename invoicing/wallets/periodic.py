"""The wallets' periodic tasks, listed on InvoicingConfig.periodic_tasks (setup_periodic_tasks
installs them)."""

from billing_project.periodic import PeriodicTaskSpec

WALLET_PERIODIC_TASKS = [
    PeriodicTaskSpec(
        name="wallets: recurring interval top-ups",
        task="invoicing.wallets.tasks.recurring_interval_top_ups",
        minute="5",
        description="every hour at :05 UTC: each active interval rule that reached a new boundary since its "
        "start tops up once (the boundary is the top-up's unique key, a retry credits nothing more)",
    ),
    PeriodicTaskSpec(
        name="wallets: terminate expired wallets",
        task="invoicing.wallets.tasks.expire_wallets",
        minute="*/15",
        description="every 15 minutes: active wallets past expiration_at are terminated, their remaining "
        "credits recorded as voided (expired)",
    ),
    PeriodicTaskSpec(
        name="wallets: refresh ongoing balances",
        task="invoicing.wallets.tasks.refresh_ongoing_balances",
        minute="*/5",
        description="every 5 minutes: balance minus current usage for every active wallet, then threshold rules",
    ),
    PeriodicTaskSpec(
        name="wallets: settle paid credit invoices",
        task="invoicing.wallets.tasks.settle_paid_credit_invoices",
        minute="*/10",
        description="every 10 minutes: purchased credits still pending on a paid credit invoice settle",
    ),
]
