"""The stages of one video: media (probe, extract), audio slices, voiced regions, translation, checkpoints."""
