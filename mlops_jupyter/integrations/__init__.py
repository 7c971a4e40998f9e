"""Other tools a team already uses: a Weights & Biases mirror, MLflow export and import."""
