"""Model compression of PyTorch models: pruning, int8 quantization and knowledge distillation (docs/compress.md).

Reached from the `compress` post-training step (step.py), `mode=compress` (mode.py) and the
sweep summary callback (sweep.py); torch is imported only by the modules that compress.
"""
