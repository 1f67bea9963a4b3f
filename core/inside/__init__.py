"""Look inside a model: its layer graph and receptive fields, the feature maps of a layer,
its filters, what a unit wants to see, how a convolution computes, attention and a
GAN's latent space.

Each view is a module of its own; nothing is imported here, so importing `core.inside`
loads no TensorFlow.
"""
