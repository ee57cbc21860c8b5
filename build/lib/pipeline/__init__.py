"""testimony: offline video -> linked bilingual transcript pipeline (no Prefect import here)."""

__version__ = "0.1.0"
