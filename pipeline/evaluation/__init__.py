"""Scoring transcription and translation on clips with reference texts (`testimony eval`)."""
