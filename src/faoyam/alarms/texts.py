"""What a notification says: the alarm type in the recipient's language (English, Thai)."""

from __future__ import annotations

LABELS = {
    "videoMotion": ("Motion", "ตรวจพบการเคลื่อนไหว"),
    "motion": ("Motion", "ตรวจพบการเคลื่อนไหว"),
    "human": ("Person detected", "ตรวจพบบุคคล"),
    "person": ("Person detected", "ตรวจพบบุคคล"),
    "doorbell": ("Doorbell ring", "มีคนกดกริ่ง"),
    "tamper": ("Camera tampered with", "มีการรบกวนกล้อง"),
    "alarmLocal": ("Local alarm", "สัญญาณเตือนภายในอุปกรณ์"),
    "online": ("Device online", "อุปกรณ์ออนไลน์"),
    "offline": ("Device offline", "อุปกรณ์ออฟไลน์"),
    "storageFailure": ("Storage problem", "ที่เก็บข้อมูลมีปัญหา"),
    "storageFull": ("Storage full", "ที่เก็บข้อมูลเต็ม"),
}


def label(kind: str, lang: str | None = "en") -> str:
    en, th = LABELS.get(kind, ("Alarm", "สัญญาณเตือน"))
    return th if (lang or "en").startswith("th") else en
