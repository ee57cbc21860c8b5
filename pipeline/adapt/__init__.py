"""Adaptation: a Whisper model fine-tuned on the segments reviewers checked (issue 22).

`pairs` collects (audio, text) from the archive and splits it by recording, `train` fine-tunes a
store checkpoint reproducibly and resumably, `score` runs held-out recordings through the real
transcription path before and after, `enter` puts the result in the store and routes it only when it
wins. No Prefect import: the CLI and a flow both call `run.adapt`.
"""
