from django.apps import AppConfig

from billing_project.periodic import PeriodicTaskSpec


class PlansConfig(AppConfig):
    name = "plans"
    verbose_name = "Plans and subscriptions"

    periodic_tasks = [
        PeriodicTaskSpec(
            name="Activate due subscriptions",
            task="plans.tasks.activate_due_subscriptions",
            minute="5",
            description="Every hour at :05 (before invoicing's :10 run): start pending subscriptions, "
            "end subscriptions past their ending_at, apply downgrades whose billing period ended.",
        )
    ]

    def ready(self) -> None:
        from customers.api.serializers import CUSTOMER_ANSWER_PARTS, CUSTOMER_ANSWER_PREFETCH
        from customers.signals import customer_deleted, customer_saved
        from metrics.signals import billable_metric_deleted, known_subscription_ids_requested, rollup_keys_requested

        from . import receivers
        from .api.serializers import customer_taxes

        if customer_taxes not in CUSTOMER_ANSWER_PARTS:
            CUSTOMER_ANSWER_PARTS.append(customer_taxes)
            CUSTOMER_ANSWER_PREFETCH.append("applied_taxes__tax")

        billable_metric_deleted.connect(receivers.retire_charges_of_deleted_metric, dispatch_uid="plans-retire-charges")
        known_subscription_ids_requested.connect(receivers.known_subscription_ids, dispatch_uid="plans-known-subs")
        rollup_keys_requested.connect(receivers.grouped_by_keys, dispatch_uid="plans-rollup-keys")
        customer_saved.connect(receivers.apply_customer_tax_codes, dispatch_uid="plans-customer-tax-codes")
        customer_deleted.connect(
            receivers.end_subscriptions_of_deleted_customer, dispatch_uid="plans-end-deleted-customer-subscriptions"
        )
