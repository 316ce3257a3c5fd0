"""Server-side motion detection settings per channel (docs/motion-detection.md)."""
