"""Where the small checkpoints fv ships live (fv/assets/checkpoints): the demo's baseline and onlyDM, and
both_retrievedMcs' expression embedder. A path only, so the command line can name it without loading torch."""

from __future__ import annotations

from pathlib import Path

SHIPPED = Path(__file__).resolve().parents[1] / "assets" / "checkpoints"
