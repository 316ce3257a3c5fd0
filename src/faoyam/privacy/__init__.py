"""The privacy engine: declarations, the processing register, and subject operations.

Every domain declares its personal data where it stores it (see ``declarations``); the
operations here — export, erasure, retention — read those declarations and nothing else.
"""
