"""The optimizer node: wired to the loss, its params configure training.

It computes nothing in the graph; the trainer reads its params to build the optimizer
(:mod:`engine.train.optim`), the learning-rate schedule and gradient clipping.
"""

from __future__ import annotations

from engine.core.registry import OpSpec, Param, Port, ShapeError, register

# The choices the trainer implements (engine.train.optim); declared here, on the op spec.
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "step", "cosine")
DECAY_SETS = ("all_2d", "no_embeddings")


def _infer(inputs, params):
    (loss,) = inputs
    if loss.dtype != "float" or loss.shape != ():
        raise ShapeError("the optimizer must be wired to a scalar loss", port="loss")
    return []


register(OpSpec(
    name="optimizer",
    category="optimizer",
    doc="""Gradient descent on every trainable weight, minimising the wired loss.

    SGD (momentum, Nesterov), Adam, AdamW (decoupled weight decay) or RMSprop; learning-rate
    schedule constant, step or cosine, each with optional linear warm-up; gradient clipping
    by global norm. Weight decay applies to 2-D and larger weights (optionally not to
    embeddings); biases and norm parameters never decay.""",
    inputs=[Port("loss")],
    outputs=[],
    params=[
        Param("algorithm", "choice", "adamw", choices=OPTIMIZERS, doc="Update rule."),
        Param("lr", "float", 1e-3, minimum=0.0, hot=True, doc="Learning rate."),
        Param("beta1", "float", 0.9, minimum=0.0, maximum=1.0, exclusive_maximum=True,
              doc="Adam: first moment decay (below 1)."),
        Param("beta2", "float", 0.999, minimum=0.0, maximum=1.0, exclusive_maximum=True,
              doc="Adam: second moment decay (below 1)."),
        Param("eps", "float", 1e-8, minimum=0.0, doc="Denominator epsilon."),
        Param("weight_decay", "float", 0.0, minimum=0.0, hot=True,
              doc="Weight decay (decoupled for AdamW, L2 otherwise)."),
        Param("decay_set", "choice", "all_2d", choices=DECAY_SETS,
              doc="Which weights decay: all 2-D+ weights, or all but embeddings."),
        Param("momentum", "float", 0.0, minimum=0.0, maximum=1.0, doc="SGD / RMSprop momentum."),
        Param("nesterov", "bool", False, doc="SGD: Nesterov momentum."),
        Param("alpha", "float", 0.99, minimum=0.0, maximum=1.0, doc="RMSprop smoothing."),
        Param("schedule", "choice", "constant", choices=SCHEDULES, doc="Learning-rate schedule."),
        Param("warmup", "int", 0, minimum=0, doc="Linear warm-up steps."),
        Param("min_lr", "float", 0.0, minimum=0.0, doc="Cosine: rate at the last step."),
        Param("step_size", "int", 100, minimum=1, doc="Step schedule: steps between decays."),
        Param("gamma", "float", 0.1, minimum=0.0, doc="Step schedule: decay factor."),
        Param("clip_norm", "float", 0.0, minimum=0.0, hot=True,
              doc="Clip gradients to this global norm (0: off)."),
    ],
    infer=_infer,
    forward=lambda ctx, params, loss: (),
    backward=lambda ctx, params: (None,),
    family="optimizer",
))
