"""The drill's own settings (the scenario file says everything else)."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict

from garde.settings import environment, load_settings, setting

POSTGRES_DEFAULT = "postgresql://127.0.0.1:5432/test"


class DrillSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    postgres: str = setting(
        POSTGRES_DEFAULT,
        help="PostgreSQL database where sites sharing a journal get a schema (dropped after)",
        env="GARDE_DRILL_POSTGRES",
        min_length=1,
    )


TABLES = (DrillSettings,)


def drill_settings(env: Mapping[str, str] | None = None) -> DrillSettings:
    """The drill's settings from the environment (``SettingsInvalid`` names a bad one)."""
    return load_settings(
        DrillSettings, env=environment() if env is None else env, docs="docs/drills.md"
    )
