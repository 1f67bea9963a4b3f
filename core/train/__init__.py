"""Training in MedLens: the data, the recipe, the live run and the card of what was trained."""
