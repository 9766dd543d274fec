"""Run profiles: ``smoke`` (tests, seconds), ``quick`` (default 2-core CPU build), ``full`` (GPU).

A profile changes sizes (samples, epochs, seeds), never code. Chapters read theirs with
:func:`get_profile` and may scale their own sizes from it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ferlib._registry import lookup


@dataclass(frozen=True)
class Profile:
    name: str
    train_size: int  # static training images
    val_size: int
    test_size: int
    epochs: int
    seeds: tuple[int, ...]
    clip_train_size: int  # video clips
    clip_test_size: int

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", 256, 64, 128, 1, (0,), 64, 32),
    "quick": Profile("quick", 4000, 800, 1500, 16, (0, 1, 2), 600, 300),
    "full": Profile("full", 40000, 5000, 10000, 40, (0, 1, 2, 3, 4), 8000, 2000),
}


def get_profile(name: str) -> Profile:
    """The profile called ``name``; an unknown name raises :class:`~ferlib.errors.ConfigError`."""
    return lookup(PROFILES, name, "profile")
