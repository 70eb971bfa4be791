"""Sampling throughput benchmark: prints a table and writes JSON (same as `fv bench`).

    .venv/bin/python benchmarks/throughput.py [CHECKPOINT] --backend torch --backend onnxruntime \
        --steps 10 --steps 50 --videos 8 --json benchmarks/results/throughput.json
"""

import sys

from fv.cli.main import _register, app

if __name__ == "__main__":
    _register()
    sys.exit(app(["bench", *sys.argv[1:]]))
