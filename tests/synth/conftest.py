"""Shared by the synth tests: the attributes of one plain face."""

from __future__ import annotations

BASE = dict(
    x=0.0,
    y=0.0,
    size=1.0,
    yaw=0.0,
    roll=0.0,
    mouth_open=0,
    skin_tone=1,
    hair_colour=1,
    hair_length=0,
    beard=0,
    glasses=0,
    age=0,
    eye_size=1,
)
