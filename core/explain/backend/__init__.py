"""How the explainers see a model: Keras graphs by layer path (`graph`), and class scores
with compiled gradient functions (`scores`). Private Keras calls live in
`core.models.runtime.keras_private`, nowhere else."""
