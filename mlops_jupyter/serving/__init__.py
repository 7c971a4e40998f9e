"""HTTP serving of registered models: ``mlops serve churn@production --port 8080``."""
