"""plans API routes: taxes, plans, add-ons, coupons, applied coupons, subscriptions (also a
customer's applied coupons and subscriptions)."""

from django.urls import path

from . import views

urlpatterns = [
    path("taxes", views.TaxesView.as_view(), name="taxes"),
    path("taxes/<str:code>", views.TaxView.as_view(), name="tax"),
    path("plans", views.PlansView.as_view(), name="plans"),
    path("plans/<str:code>", views.PlanView.as_view(), name="plan"),
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
]
