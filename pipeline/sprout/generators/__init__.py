"""Generators: build prompts from the pool (seeded RNG) and parse completions into candidate records."""
