"""The alarms domain's public surface (B11, RET5, R7): raising alarms, the message center,
preferences and consent, the device owner's arming schedules and detection switch.

Other domains call these (the MQTT gateway ``record_device_alarm``, the server-side motion
detection ``raise_alarm``); the tables stay this domain's business.
"""

from __future__ import annotations

from faoyam.alarms.inbox import (  # noqa: F401 - re-exported
    AlarmView,
    MessageView,
    alarm_snapshot,
    delete_messages,
    list_device_alarms,
    list_messages,
    mark_read,
    message_for_alarm,
    message_one,
    unread_count,
)
from faoyam.alarms.intake import DETECTION_KINDS, Flooded, raise_alarm, record_device_alarm  # noqa: F401
from faoyam.alarms.outbox import dispatch_once  # noqa: F401 - re-exported (tests, benchmarks)
from faoyam.alarms.settings import (  # noqa: F401 - re-exported
    add_push_subscription,
    consent_history,
    detection_enabled,
    get_message_callback,
    get_schedules,
    get_user_settings,
    list_preferences,
    remove_push_subscription,
    set_detection,
    set_message_callback,
    set_preference,
    set_schedule,
    set_user_settings,
)
