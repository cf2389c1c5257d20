"""Data stage: labelled records, statistics, the split, the unlabelled corpus, augmentation,
text helpers, tabular I/O, PII rules and the review loop."""
