"""Look inside a model: its layers, feature maps, filters, units and attention."""
