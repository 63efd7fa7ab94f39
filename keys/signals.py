"""What the keys app tells the floors above it, without importing them."""

from __future__ import annotations

from django.dispatch import Signal

# A workspace's data key was re-wrapped under another master key. Sent inside the re-wrap's
# transaction (a receiver's writes roll back with it) with: workspace, from_master_key,
# to_master_key, actor_name. The audit app records it (audit/receivers.py).
data_key_rotated = Signal()
