"""Look inside a model: its layers, feature maps, filters, what its units want to see,
attention."""
