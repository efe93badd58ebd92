"""Responsible ML for every run: bias metrics (SageMaker Clarify's definitions) and model explanations.

Both run as post-training steps (mlexp.posttrain.STEPS): ``mlexp.responsible.bias:BiasStep``
writes bias.json, ``mlexp.responsible.explain:ExplainStep`` writes explain.json. Nothing here is
imported unless a run reaches those steps.
"""
