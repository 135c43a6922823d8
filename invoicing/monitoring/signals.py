"""Signals of usage monitoring, for the apps to the right (webhooks). Sent INSIDE the
transaction that wrote the rows, so an outbox row commits (or rolls back) with them.

alert_triggered_in_tx: kwargs triggered_alert_id (a TriggeredAlert: one evaluation's new
crossings of one alert), announced as alert.triggered.
"""

from django.dispatch import Signal

alert_triggered_in_tx = Signal()
