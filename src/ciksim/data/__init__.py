"""Data shipped with ciksim: protocols and parameter sets (TOML)."""
