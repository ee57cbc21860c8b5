"""One video's run: its options, the one orchestration of stages every entry point calls, batches."""
