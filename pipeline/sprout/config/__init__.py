"""Run configuration: YAML validated by pydantic. A bad key names itself, its line and the valid keys; exit 2.

Where each part lives (import from the module, not from this package):
- config/base.py: `Strict`, `SamplingConfig` (and its one conversion to `Sampling`), `PriceConfig`, prompt modes
- config/loader.py: `load_config`, `dump_resolved`, the `--set` engine, YAML line lookup, renamed keys
- config/paths.py: `in_the_way`, `OutputFolder`, `OutputFile`
- config/filters.py: `FilterConfig` (its rule keys come from filters/registry.py), `JudgeConfig`, the default rule
  lists and the rule-needs check
- config/run.py: `RunConfig` (the root of a command's config), `GeneratorsConfig`, `DataConfig`
- backends/config.py: the `backend:` union, one model per kind
- generators/<name>/config.py: each generator's section, beside the generator
"""
