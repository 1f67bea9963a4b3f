"""Look inside a model: its layer graph and receptive fields, the feature maps of a layer,
its filters, attention and what a unit wants to see.

Each view is a module of its own; nothing is imported here, so importing `core.inside`
loads no TensorFlow.
"""
