"""The synthetic benchmark: faces with planted biases, where every attribute is known.

Three "datasets" render the same kind of head in three styles (``photo``, ``portrait``,
``anime``). Shared content (position, size, yaw, roll, mouth) comes from one distribution;
skin tone, hair, beard, glasses, age and eye size from per-dataset priors. Because every
attribute is known, the benchmark measures whether a projection a -> b moves the attribute
distribution to b's prior while keeping the shared content.

Modules:

* :mod:`~net2fair.synth.priors`: the attributes, the priors (``priors.yaml``) and sampling;
* :mod:`~net2fair.synth.shapes`, :mod:`~net2fair.synth.features`,
  :mod:`~net2fair.synth.render`: the renderer (geometry and canvas, the parts of a face,
  whole faces in each style);
* :mod:`~net2fair.synth.files`: the benchmark as image folders with ``labels.csv``;
* :mod:`~net2fair.synth.estimators`: the CNN that reads attributes back from pixels, and
  :mod:`~net2fair.synth.train_estimators`: its training;
* :mod:`~net2fair.synth.benchmark`: the bias benchmark run on a model.

Nothing is imported here, so that ``python -m net2fair.synth.priors`` and the renderer do not
pay for torch.
"""
