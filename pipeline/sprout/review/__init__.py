"""Reviewing a run by hand: `sprout inspect` (a local page over a run's rows, rejects, lineage and report) and
`sprout curate` (the dataset the reviewer's marks make)."""
