"""Helpers shared by every test group (tests/unit, tests/cli, tests/properties), importable as
``helpers`` because tests/conftest.py's folder is on pytest's path: ``cli`` runs cnngrad and judges
the outcome, ``randomnets`` draws random valid specs, ``torchnet`` rebuilds a model in PyTorch."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]      # the repository root, whatever folder pytest started in
