"""Alarms (B11, RET5, R7): events with snapshots, the message center, notifications by
Web Push, email, webhook and live in-app updates. See docs/alarms.md."""
