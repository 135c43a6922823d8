from django.apps import AppConfig

from billing_project.periodic import PeriodicTaskSpec

from .wallets.periodic import WALLET_PERIODIC_TASKS


class InvoicingConfig(AppConfig):
    name = "invoicing"
    verbose_name = "Invoicing"

    periodic_tasks = [
        PeriodicTaskSpec(
            name="invoicing: bill due subscriptions",
            task="invoicing.tasks.bill_due_subscriptions",
            minute="10",
            description="every hour at :10 UTC (after plans' :05 activations): one task per subscription-period "
            "whose billing period ended in its customer's timezone",
        ),
        PeriodicTaskSpec(
            name="invoicing: finalize drafts past their grace period",
            task="invoicing.tasks.finalize_due_drafts",
            minute="20",
            description="every hour at :20 UTC: refresh drafts that received late events, finalize those "
            "whose grace period has passed",
        ),
        PeriodicTaskSpec(
            name="invoicing: bill pay-in-advance events missed",
            task="invoicing.tasks.bill_missed_pay_in_advance_events",
            minute="*/10",
            description="every 10 minutes: events of the last 24 hours (TOLLGATE_PAY_IN_ADVANCE_SWEEP_HOURS) that a "
            "pay-in-advance charge prices and that have no fee yet (their announcement was lost) are billed",
        ),
        PeriodicTaskSpec(
            name="invoicing: render missing invoice PDFs",
            task="invoicing.tasks.render_missing_invoice_pdfs",
            minute="5-59/10",
            description="every 10 minutes (at :05, :15, ...): finalized invoices still without a PDF 10 minutes "
            "after finalization (their task was lost) are rendered",
        ),
        PeriodicTaskSpec(
            name="invoicing: send due document e-mails",
            task="invoicing.mail.tasks.send_due_document_emails",
            minute="*/2",
            description="every 2 minutes: e-mails whose task was lost (pending 2 minutes after they were queued) "
            "and retries that are due (TOLLGATE_EMAIL_RETRY_DELAYS) are sent",
        ),
        *WALLET_PERIODIC_TASKS,
    ]

    def ready(self) -> None:
        from metrics.signals import events_stored
        from plans.signals import subscription_started, subscription_terminated

        from . import receivers
        from .mail import receivers as mail_receivers
        from .mail import tasks as mail_tasks  # noqa: F401  (registers the e-mail outbox's Celery tasks)
        from .signals import credit_note_created_in_tx, invoice_finalized_in_tx, invoice_one_off_created_in_tx
        from .wallets import tasks as wallet_tasks  # noqa: F401  (registers the wallets' Celery tasks)

        # Issue e-mails: outbox rows written in the issuing transaction (email_settings decide).
        invoice_finalized_in_tx.connect(mail_receivers.on_invoice_finalized, dispatch_uid="invoicing.mail.finalized")
        invoice_one_off_created_in_tx.connect(
            mail_receivers.on_invoice_finalized, dispatch_uid="invoicing.mail.one_off"
        )
        credit_note_created_in_tx.connect(
            mail_receivers.on_credit_note_created, dispatch_uid="invoicing.mail.credit_note"
        )

        subscription_started.connect(receivers.bill_started_subscription, dispatch_uid="invoicing.bill_started")
        subscription_terminated.connect(receivers.bill_terminated_subscription, dispatch_uid="invoicing.bill_ended")
        events_stored.connect(receivers.bill_pay_in_advance_events, dispatch_uid="invoicing.bill_pay_in_advance")
