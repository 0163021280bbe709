"""The ``net2fair`` commands, one module per group; :mod:`net2fair.cli` is the entry point.

- :mod:`~net2fair.commands.common`: the one-line error, limits, output rule, loading glue
- :mod:`~net2fair.commands.parser`: the argument parser, help texts and examples
- :mod:`~net2fair.commands.train`: ``train``
- :mod:`~net2fair.commands.project`: ``project``, ``sample``
- :mod:`~net2fair.commands.report`: ``report``, ``audit``
- :mod:`~net2fair.commands.synth`: ``synth``, ``demo``, ``benchmark``
- :mod:`~net2fair.commands.models`: ``import-net2net``, ``view``

Every module imports only the standard library at module level, so ``net2fair --help``
does not pay for torch.
"""
