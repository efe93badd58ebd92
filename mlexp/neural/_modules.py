"""The torch modules behind `model=mlp` and `model=torch_linear`: plain feed-forward networks on tabular rows."""

from typing import Sequence

from torch import nn

__all__ = ["MLP", "LinearModel", "ACTIVATIONS"]

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid, "leaky_relu": nn.LeakyReLU}


class MLP(nn.Sequential):
    """Linear -> activation -> dropout, once per hidden size, then a linear output layer (logits or values).

    A Sequential itself (no wrapper module), so a forward pass costs no more calls than a hand-written one.
    """

    def __init__(self, n_features: int, n_outputs: int, hidden_sizes: Sequence[int] = (64,),
                 dropout: float = 0.0, activation: str = "relu"):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation={activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        layers = []
        width = n_features
        for size in hidden_sizes:
            layers += [nn.Linear(width, int(size)), ACTIVATIONS[activation]()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = int(size)
        layers.append(nn.Linear(width, n_outputs))
        super().__init__(*layers)


class LinearModel(nn.Linear):
    """One linear layer: logistic (softmax) regression with cross-entropy, linear regression with MSE."""

    def __init__(self, n_features: int, n_outputs: int):
        super().__init__(n_features, n_outputs)
