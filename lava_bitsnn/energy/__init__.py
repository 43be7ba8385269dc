"""Op counts → energy: presets with sourced constants, per-layer reports, plots."""

from lava_bitsnn.energy.presets import DEFAULT_PRESET, PRESETS, Preset, load_preset
from lava_bitsnn.energy.report import energy_report, format_table, validate_report

__all__ = ["DEFAULT_PRESET", "PRESETS", "Preset", "energy_report", "format_table",
           "load_preset", "validate_report"]
