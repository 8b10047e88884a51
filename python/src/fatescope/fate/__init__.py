"""The fate-effect model: encoding, pyro model and guides, fit, export, diagnostics, recovery."""
