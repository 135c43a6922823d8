"""plans API routes: taxes, plans (their charges, filters, metadata), add-ons, coupons, applied
coupons, subscriptions (their charges and charge filters), and a customer's applied coupons and
subscriptions."""

from django.urls import include, path

from . import charge_views, views

urlpatterns = [
    path("taxes", views.TaxesView.as_view(), name="taxes"),
    path("taxes/<str:code>", views.TaxView.as_view(), name="tax"),
    path("plans", views.PlansView.as_view(), name="plans"),
    path("plans/<str:code>", views.PlanView.as_view(), name="plan"),
    path("plans/<str:code>/charges", charge_views.PlanChargesView.as_view(), name="plan-charges"),
    path("plans/<str:code>/charges/<str:charge_code>", charge_views.PlanChargeView.as_view(), name="plan-charge"),
    path(
        "plans/<str:code>/charges/<str:charge_code>/filters",
        charge_views.PlanChargeFiltersView.as_view(),
        name="plan-charge-filters",
    ),
    path(
        "plans/<str:code>/charges/<str:charge_code>/filters/<str:filter_id>",
        charge_views.PlanChargeFilterView.as_view(),
        name="plan-charge-filter",
    ),
    path("plans/<str:code>/metadata", charge_views.PlanMetadataView.as_view(), name="plan-metadata"),
    path("plans/<str:code>/metadata/<str:key>", charge_views.PlanMetadataKeyView.as_view(), name="plan-metadata-key"),
    path("", include("plans.api.fixed_charges")),
    path("add_ons", views.AddOnsView.as_view(), name="add-ons"),
    path("add_ons/<str:code>", views.AddOnView.as_view(), name="add-on"),
    path("coupons", views.CouponsView.as_view(), name="coupons"),
    path("coupons/<str:code>", views.CouponView.as_view(), name="coupon"),
    path("applied_coupons", views.AppliedCouponsView.as_view(), name="applied-coupons"),
    path(
        "customers/<str:external_customer_id>/applied_coupons",
        views.CustomerAppliedCouponsView.as_view(),
        name="customer-applied-coupons",
    ),
    path(
        "customers/<str:external_customer_id>/subscriptions",
        views.CustomerSubscriptionsView.as_view(),
        name="customer-subscriptions",
    ),
    path(
        "customers/<str:external_customer_id>/applied_coupons/<str:applied_coupon_id>",
        views.CustomerAppliedCouponView.as_view(),
        name="customer-applied-coupon",
    ),
    path("subscriptions", views.SubscriptionsView.as_view(), name="subscriptions"),
    path("subscriptions/<str:external_id>", views.SubscriptionView.as_view(), name="subscription"),
    path(
        "subscriptions/<str:external_id>/charges",
        charge_views.SubscriptionChargesView.as_view(),
        name="subscription-charges",
    ),
    path(
        "subscriptions/<str:external_id>/charges/<str:code>",
        charge_views.SubscriptionChargeView.as_view(),
        name="subscription-charge",
    ),
    path(
        "subscriptions/<str:external_id>/charges/<str:code>/filters",
        charge_views.SubscriptionChargeFiltersView.as_view(),
        name="subscription-charge-filters",
    ),
    path(
        "subscriptions/<str:external_id>/charges/<str:code>/filters/<str:filter_id>",
        charge_views.SubscriptionChargeFilterView.as_view(),
        name="subscription-charge-filter",
    ),
    # Features and entitlements (plans.entitlements): /features, /plans/{code}/entitlements,
    # /subscriptions/{external_id}/entitlements.
    path("", include("plans.entitlements.api")),
]
