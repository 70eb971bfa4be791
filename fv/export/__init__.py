"""ONNX and TensorRT builds of the engine's networks, with parity checks against PyTorch.

Entry point: fv.export.stages.export_checkpoint (what `fv export` calls). Kept import-light: the CLI
imports fv.export.errors at start-up.
"""
