"""Evaluation: metrics, baselines, the test-split report and the generalisation scoreboard."""
