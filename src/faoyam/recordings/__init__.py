"""Recordings: per-channel recording settings and the index of recorded segments.

The media worker's recorder (``faoyam.media.recorder``) writes fragmented-MP4 segments into
the blob store and indexes them here; retention (``recordings.retention``) deletes them by
age and quota. See docs/recording.md.
"""
