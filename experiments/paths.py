"""Where the experiments find the repository's configs: this package (unlike the library) runs
from a checkout."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
