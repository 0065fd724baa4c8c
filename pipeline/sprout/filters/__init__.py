"""The shared filter stage: ordered rules, cheap first, ROUGE-L next; every drop is counted and kept with its reason."""
