"""`generators.self_instruct:` Self-Instruct's settings (Wang et al., 2023), beside the generator that reads them."""

from __future__ import annotations

from pydantic import Field

from sprout.config.base import MODE_HELP, PromptMode, SamplingConfig, Strict


class SelfInstructConfig(Strict):
    mode: PromptMode = Field("chat", description=MODE_HELP)
    target: int = Field(40, gt=0, description="new tasks to grow (each with at least one accepted instance)")
    requests_per_batch: int = Field(8, gt=0, description="list-continuation prompts per proposal round")
    tasks_per_batch: int = Field(16, gt=0, description="tasks taken from the backlog for instances per batch")
    max_batches: int = Field(40, gt=0, description="stop even if the target is not reached")
    in_context: int = Field(8, gt=1)
    from_seeds: int = Field(6, gt=0)
    list_stops_at: int = Field(16, gt=2, description="the model may continue the list up to this item, exclusive")
    instances_per_task: int = Field(5, gt=0)
    classify_examples: int = Field(8, ge=2)
    instance_examples: int = Field(2, ge=1, description="seed tasks shown as worked examples per instance prompt")
    sampling: SamplingConfig = SamplingConfig(temperature=0.7, top_p=0.5, presence_penalty=2.0, max_tokens=320)
    classify_sampling: SamplingConfig = SamplingConfig(temperature=0.0, max_tokens=4)
    instance_sampling: SamplingConfig = SamplingConfig(temperature=0.7, top_p=0.9, max_tokens=256)
