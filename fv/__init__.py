"""fv: emotion-driven facial video generation (neutral -> emotion -> neutral)."""

__version__ = "0.1.0"
